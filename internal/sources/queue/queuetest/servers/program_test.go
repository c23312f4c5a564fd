package servers

import (
	"net"
	"strings"
	"testing"
)

// TestStartProgram: a program starts a server without a test, and a failure is an error.
func TestStartProgram(t *testing.T) {
	srv, err := StartMosquitto(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatalf("dial mosquitto: %v", err)
	}
	c.Close()
	srv.Stop()
	if _, err := net.Dial("tcp", srv.Addr()); err == nil {
		t.Error("mosquitto still accepts connections after Stop")
	}

	_, err = startProgram(t.TempDir(), func(tb testing.TB) Server {
		binary(tb, "flick-no-such-server")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "flick-no-such-server") {
		t.Errorf("missing program: error %v, want one naming it", err)
	}
}
