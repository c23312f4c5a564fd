package router_test

import (
	"testing"

	"github.com/flickdev/flick/internal/testinstance"
)

func TestMain(m *testing.M) { testinstance.Main(m) }

type reply = testinstance.Reply

// waitFor polls cond until it holds, failing after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testinstance.WaitFor(t, patience, what, cond)
}
