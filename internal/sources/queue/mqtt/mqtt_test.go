package mqtt

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/internal/sources/queue/queuetest"
	"github.com/flickdev/flick/internal/sources/queue/queuetest/servers"
)

// setup reaches b's mosquitto.
func setup(b servers.Server) queuetest.Setup {
	return queuetest.Setup{
		Open:     Open,
		URL:      b.URL(),
		NewTopic: func(*testing.T) string { return newTopic() },
		Headers:  true,
		NoLag:    true,
	}
}

func TestConformance(t *testing.T) {
	queuetest.Run(t, setup(servers.Mosquitto(t)))
}

// TestConnectionLoss: Consume fails when the broker dies; once it is back (its persistence
// file kept the session), the next Consume gets exactly the messages not acknowledged.
func TestConnectionLoss(t *testing.T) {
	b := servers.Mosquitto(t)
	queuetest.ConnectionLoss(t, setup(b), queuetest.Outage{Kill: b.Kill, Restart: b.Start})
}

// TestTakeover: a second connection with the group's client id takes the session over, and
// the first Consume fails. (mosquitto 2.0 closes the connection without the DISCONNECT
// "session taken over" that MQTT 5 brokers may send, so the error is a lost connection.)
func TestTakeover(t *testing.T) {
	b := servers.Mosquitto(t)
	cfg := queue.Config{URL: b.URL(), Topic: newTopic(), Group: "takeover", Concurrency: 1}
	d := openT(t, cfg)
	c := queuetest.Consume(t, d, nil)
	time.Sleep(300 * time.Millisecond) // let Consume connect
	openT(t, cfg)
	err := c.Ended(t, 10*time.Second)
	t.Logf("Consume after the takeover: %v", err)
	if err == nil {
		t.Error("Consume returned nil after its session was taken over, want an error")
	}
}

// TestAuth: credentials in the URL or in Config (which override the URL's) reach a
// mosquitto with a password file, and no error quotes a password, nor does one where no
// broker listens.
func TestAuth(t *testing.T) {
	const password = "s3cret-pass"
	b := servers.Mosquitto(t, "allow_anonymous false", "password_file "+servers.MosquittoPasswordFile(t, "flick", password))
	queuetest.Credentials(t, setup(b), "flick", password)
}

// TestRetained: a new group gets the topic's retained message, once.
func TestRetained(t *testing.T) {
	b := servers.Mosquitto(t)
	topic := newTopic()
	d := openT(t, queue.Config{URL: b.URL(), Topic: "other", Group: "publisher", Concurrency: 1})
	c, err := d.publisher(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.Publish(t.Context(), &paho.Publish{QoS: 1, Retain: true, Topic: topic, Payload: []byte("retained")}); err != nil {
		t.Fatal(err)
	}

	cfg := queue.Config{URL: b.URL(), Topic: topic, Group: "retained", Concurrency: 1}
	first := queuetest.Consume(t, openT(t, cfg), nil)
	got := first.Wait(t, 1)
	if string(got[0].Body) != "retained" {
		t.Fatalf("got %q, want the retained message", got[0].Body)
	}
	if id := got[0].ID; !strings.HasPrefix(id, "sha256-") {
		t.Errorf("a message without flick-id has id %q, want a content hash", id)
	}
	first.Halt(t)

	second := queuetest.Consume(t, openT(t, cfg), nil)
	time.Sleep(time.Second)
	if got := second.Handled(); len(got) != 0 {
		t.Errorf("the retained message came again to the same group: %v", got)
	}
}

func TestContentID(t *testing.T) {
	p := func(body string) *paho.Publish {
		return &paho.Publish{Topic: "t", Payload: []byte(body), Properties: &paho.PublishProperties{
			User: paho.UserProperties{{Key: "k", Value: "v"}},
		}}
	}
	a, again, other := message(p("a")), message(p("a")), message(p("b"))
	if a.ID != again.ID || a.ID == other.ID {
		t.Errorf("ids %q, %q, %q: want the same for the same message, another for another", a.ID, again.ID, other.ID)
	}
	if a.Headers["k"] != "v" {
		t.Errorf("headers %v, want k=v", a.Headers)
	}
	withID := &paho.Publish{Topic: "t", Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: idProperty, Value: "x1"}}}}
	if m := message(withID); m.ID != "x1" || m.Headers != nil {
		t.Errorf("message with flick-id: id %q headers %v, want x1 and none", m.ID, m.Headers)
	}
}

func openT(t *testing.T, cfg queue.Config) *Driver {
	t.Helper()
	return queuetest.Open(t, Open, cfg).(*Driver)
}

func newTopic() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "flick/test/" + hex.EncodeToString(b)
}
