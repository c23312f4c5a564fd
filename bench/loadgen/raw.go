package loadgen

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/flickdev/flick/internal/httpwire"
)

// RawConn sends requests the caller wrote out in full over one kept HTTP/1.1 connection,
// written and read on the caller's goroutine. A load generator built on net/http's client
// spends about as much CPU per request as the server it measures; on a machine shared with
// that server, this one leaves the server the cores.
type RawConn struct {
	addr   string
	conn   net.Conn
	br     *bufio.Reader
	header http.Header // reused: the answer's fields are read and dropped
}

// DialRaw returns a RawConn to addr (host:port); it connects on first use.
func DialRaw(addr string) *RawConn {
	return &RawConn{addr: addr, header: http.Header{}}
}

// Do writes req (a whole HTTP/1.1 request: head and body) and returns the answer's status
// code once its body was read. A connection that failed or that the server closes is
// redialed on the next call.
func (rc *RawConn) Do(req []byte) (int, error) {
	if rc.conn == nil {
		c, err := net.Dial("tcp", rc.addr)
		if err != nil {
			return 0, fmt.Errorf("dial %s: %w", rc.addr, err)
		}
		rc.conn, rc.br = c, bufio.NewReaderSize(c, 4096)
	}
	code, keep, err := rc.exchange(req)
	if err != nil || !keep {
		rc.Close()
	}
	return code, err
}

func (rc *RawConn) exchange(req []byte) (code int, keep bool, err error) {
	if _, err := rc.conn.Write(req); err != nil {
		return 0, false, fmt.Errorf("write to %s: %w", rc.addr, err)
	}
	clear(rc.header)
	h, err := httpwire.ReadHead(rc.br, rc.header)
	if err != nil {
		return 0, false, fmt.Errorf("read from %s: %w", rc.addr, err)
	}
	body, keep := httpwire.Body(rc.br, &h, "", nil)
	if _, err := io.Copy(io.Discard, body); err != nil {
		return 0, false, fmt.Errorf("read body from %s: %w", rc.addr, err)
	}
	return h.Code, keep && !h.Close, nil
}

// Close closes the connection, if one is open.
func (rc *RawConn) Close() {
	if rc.conn != nil {
		rc.conn.Close()
		rc.conn, rc.br = nil, nil
	}
}
