package engine_test

import (
	"testing"

	"github.com/flickdev/flick/internal/testinstance"
)

func TestMain(m *testing.M) { testinstance.Main(m) }

type reply = testinstance.Reply
