package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// conn is one MQTT connection: a paho client on a watched network connection, with session
// state whose acknowledgements the driver sends itself.
type conn struct {
	client  *paho.Client
	acks    manualAcks
	net     *watchedConn
	reasons chan *paho.Disconnect // the broker's DISCONNECT, when it sent one
}

// manualAcks is paho's session state with the acknowledgements left to the driver. Left to
// itself, paho acknowledges a message as soon as the receive callback returned; its manual
// mode sends acknowledgements only in receipt order, so one failed message would hold back
// all the later ones (see the package doc).
type manualAcks struct{ *state.State }

// Ack is what paho calls once the receive callback returned: it does nothing, the handle's
// result decides.
func (manualAcks) Ack(*packets.Publish) error { return nil }

// ack sends the PUBACK of a message whose handle returned nil.
func (a manualAcks) ack(p *paho.Publish) error {
	if p.QoS == 0 {
		return nil // nothing to acknowledge
	}
	return a.State.Ack(p.Packet())
}

// connect opens an MQTT 5 connection as clientID. A persistent one resumes the client id's
// session (clean start off, a session expiry that never ends); receiveMax bounds the
// unacknowledged messages the broker sends; onPublish receives them (nil when the
// connection only publishes).
func (d *Driver) connect(ctx context.Context, clientID string, persistent bool, receiveMax int, onPublish func(paho.PublishReceived) (bool, error)) (*conn, error) {
	raw, err := d.dial(ctx)
	if err != nil {
		return nil, d.errorf("connect: %w", err)
	}
	c := &conn{
		acks:    manualAcks{state.NewInMemory()},
		net:     &watchedConn{Conn: raw, down: make(chan struct{})},
		reasons: make(chan *paho.Disconnect, 1),
	}
	cfg := paho.ClientConfig{
		ClientID: clientID,
		// paho writes from several goroutines; the wrapper serialises the writes.
		Conn:    packets.NewThreadSafeConn(c.net),
		Session: c.acks,
		OnServerDisconnect: func(dp *paho.Disconnect) {
			select {
			case c.reasons <- dp:
			default:
			}
		},
	}
	if onPublish != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onPublish}
	}
	c.client = paho.NewClient(cfg)

	rm := uint16(receiveMax)
	cp := &paho.Connect{
		ClientID:   clientID,
		KeepAlive:  d.timing.keepAlive,
		CleanStart: !persistent,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &rm},
	}
	if persistent {
		never := uint32(math.MaxUint32) // MQTT 5: 0xFFFFFFFF means the session does not expire
		cp.Properties.SessionExpiryInterval = &never
	}
	if d.server.username != "" {
		cp.UsernameFlag, cp.Username = true, d.server.username
	}
	if d.server.password != "" {
		cp.PasswordFlag, cp.Password = true, []byte(d.server.password)
	}
	ca, err := c.client.Connect(ctx, cp)
	if err != nil {
		if ca != nil && ca.ReasonCode >= 0x80 {
			reason := ""
			if ca.Properties != nil {
				reason = ca.Properties.ReasonString
			}
			meaning := (&packets.Connack{ReasonCode: ca.ReasonCode}).Reason()
			err = fmt.Errorf("refused: %w", reasonError(ca.ReasonCode, meaning, reason))
		}
		return nil, d.errorf("connect as %q: %w", clientID, err)
	}
	return c, nil
}

func (d *Driver) dial(ctx context.Context) (net.Conn, error) {
	nd := &net.Dialer{Timeout: 10 * time.Second}
	if d.server.tls != nil {
		td := &tls.Dialer{NetDialer: nd, Config: d.server.tls.Clone()}
		return td.DialContext(ctx, "tcp", d.server.addr)
	}
	return nd.DialContext(ctx, "tcp", d.server.addr)
}

// isDown reports whether the network connection ended.
func (c *conn) isDown() bool {
	select {
	case <-c.net.down:
		return true
	default:
		return false
	}
}

// disconnect ends the connection cleanly when it is still up (the session stays on the
// broker) and waits until paho has stopped. The receive callback must not block by now.
func (c *conn) disconnect() {
	c.client.Disconnect(&paho.Disconnect{ReasonCode: 0})
}

// lostError says why the connection ended: the broker's DISCONNECT reason (a session taken
// over, a server shutting down) or the network error. Call it once the receive callback no
// longer blocks.
func (c *conn) lostError() error {
	select {
	case <-c.client.Done():
	case <-time.After(5 * time.Second):
	}
	// paho reports the broker's DISCONNECT only after it stopped.
	select {
	case dp := <-c.reasons:
		reason := ""
		if dp.Properties != nil {
			reason = dp.Properties.ReasonString
		}
		meaning := (&packets.Disconnect{ReasonCode: dp.ReasonCode}).Reason()
		return fmt.Errorf("the broker disconnected: %w", reasonError(dp.ReasonCode, meaning, reason))
	case <-time.After(100 * time.Millisecond):
	}
	return fmt.Errorf("connection lost: %w", c.net.err)
}

// watchedConn tells when the network connection ends, whoever ends it: paho reports a broken
// connection only after its receive callbacks returned, and the driver has to stop them
// first.
type watchedConn struct {
	net.Conn
	down chan struct{}
	once sync.Once
	err  error // why it ended; read after down is closed
}

func (w *watchedConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if err != nil {
		w.end(err)
	}
	return n, err
}

func (w *watchedConn) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	if err != nil {
		w.end(err)
	}
	return n, err
}

func (w *watchedConn) Close() error {
	w.end(net.ErrClosed)
	return w.Conn.Close()
}

func (w *watchedConn) end(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.down)
	})
}
