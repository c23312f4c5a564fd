package servers

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// StartRedis is Redis for programs that are not tests (the benchmarks under bench/): the
// server's files go in a new directory under dir, a failure to start is an error, and the
// caller ends the server with Stop (nothing stops it for them) and removes dir.
func StartRedis(dir string, config ...string) (Server, error) {
	return startProgram(dir, func(tb testing.TB) Server { return Redis(tb, config...) })
}

// StartMosquitto is Mosquitto for programs that are not tests, as StartRedis is Redis.
func StartMosquitto(dir string, config ...string) (Server, error) {
	return startProgram(dir, func(tb testing.TB) Server { return Mosquitto(tb, config...) })
}

// StartRabbitMQ is RabbitMQ for programs that are not tests, as StartRedis is Redis; a
// package's TestMain uses it to share one node between its tests, since a node takes seconds
// to boot. Stop also stops the node's epmd.
func StartRabbitMQ(dir string, config ...string) (Server, error) {
	return startProgram(dir, func(tb testing.TB) Server { return RabbitMQ(tb, config...) })
}

// startProgram runs a test constructor with a programTB, turning its failure into an error.
func startProgram(dir string, start func(testing.TB) Server) (srv Server, err error) {
	defer func() {
		r := recover()
		if f, ok := r.(programFailure); ok {
			srv, err = nil, errors.New(string(f))
		} else if r != nil {
			panic(r)
		}
	}()
	return start(&programTB{dir: dir}), nil
}

// programFailure is what a programTB panics with where a test would fail.
type programFailure string

// programTB stands in for the test when a program starts a server, so the constructors stay
// written for tests. It implements only what this package calls (the embedded TB is nil);
// Cleanup does nothing, since a program stops its servers itself. A failure after the start
// (a Start after a Kill that does not come up) panics with a programFailure.
type programTB struct {
	testing.TB
	dir string
}

func (*programTB) Helper()        {}
func (*programTB) Cleanup(func()) {}
func (*programTB) Failed() bool   { return false }

func (t *programTB) TempDir() string {
	d, err := os.MkdirTemp(t.dir, "server-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (*programTB) Fatal(args ...any) { panic(programFailure(fmt.Sprint(args...))) }

func (*programTB) Fatalf(format string, args ...any) {
	panic(programFailure(fmt.Sprintf(format, args...)))
}

func (*programTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
