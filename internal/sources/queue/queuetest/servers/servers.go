// Package servers starts the queue servers that the queue drivers' tests
// (internal/sources/queue/...) and the end-to-end tests (test/e2e) run against: each on a
// free local port, with its data in a temporary directory that survives restarts, so a test
// can crash a server under its clients and bring it back.
//
// A server that is a program (redis-server, mosquitto, rabbitmq-server) runs as a child
// process (process.go); one that is a library (Kafka's kfake) would run inside the test and
// implement Server itself. A missing program fails the test with a pointer to
// scripts/deps.sh: it is never skipped.
//
// It is for tests, TestMain functions and the benchmark programs (bench/), the last two
// through the Start functions in program.go, and must never be imported by the flick binary.
package servers

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flickdev/flick/internal/freeport"
)

// Server is a queue server a test started on a free local port, with its data in a
// temporary directory that survives restarts. It is stopped when the test ends, and its log
// is shown then if the test failed.
type Server interface {
	// URL is the server's address for a queue.Config, without credentials:
	// redis://127.0.0.1:PORT/0, mqtt://127.0.0.1:PORT, amqp://127.0.0.1:PORT/. It stays the
	// same across restarts.
	URL() string
	// Addr is the host:port the server listens on, for clients that take no URL.
	Addr() string
	// Kill ends the server the hard way, as a crash would (SIGKILL), and waits until it has
	// exited. Killing a stopped server does nothing.
	Kill()
	// Start runs the server again, on the same port and data, and waits until it accepts
	// connections.
	Start()
	// Stop ends the server gracefully and waits until it has exited. Stopping a stopped
	// server does nothing.
	Stop()
}

// WithUser returns rawURL with username and password as its userinfo.
func WithUser(rawURL, username, password string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic("servers.WithUser: " + err.Error())
	}
	u.User = url.UserPassword(username, password)
	return u.String()
}

// FreePort is a local port nobody listened on a moment ago: for a server to listen on, or
// for a client to find closed.
func FreePort(tb testing.TB) int {
	tb.Helper()
	p, err := freeport.Pick()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// sbin are the directories outside a user's PATH where Debian installs servers.
var sbin = []string{"/usr/sbin", "/usr/local/sbin"}

// binary finds a server program in dirs (where a package keeps the program itself when
// PATH has a wrapper, or none), on PATH or in sbin, and fails the test when it is not
// installed.
func binary(tb testing.TB, name string, dirs ...string) string {
	tb.Helper()
	if p := executableIn(name, dirs); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := executableIn(name, sbin); p != "" {
		return p
	}
	where := "not on PATH nor in " + strings.Join(slices.Concat(dirs, sbin), " nor ")
	tb.Fatalf("%s is not installed (%s): run scripts/deps.sh to install the test dependencies", name, where)
	return ""
}

// executableIn is the path of the first executable file name in dirs, or "".
func executableIn(name string, dirs []string) string {
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
