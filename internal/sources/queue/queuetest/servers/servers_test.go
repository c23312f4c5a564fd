package servers

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
)

// TestRedisKill: what redis acknowledged before a Kill is there after Start, on the same URL.
func TestRedisKill(t *testing.T) {
	srv := Redis(t)
	if !strings.HasPrefix(srv.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(srv.URL(), "/0") {
		t.Errorf("URL %q, want redis://127.0.0.1:PORT/0", srv.URL())
	}
	opts, err := goredis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	defer c.Close()
	if err := c.Set(t.Context(), "k", "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	srv.Kill() // a second time does nothing
	srv.Start()
	if got, err := c.Get(t.Context(), "k").Result(); got != "kept" {
		t.Errorf("after Kill and Start: GET k = %q, %v; want kept", got, err)
	}
	srv.Stop()
	srv.Start()
	if got, err := c.Get(t.Context(), "k").Result(); got != "kept" {
		t.Errorf("after Stop and Start: GET k = %q, %v; want kept", got, err)
	}
}

// TestMosquittoConfig: mosquitto lets anyone in, unless the test's config says otherwise.
func TestMosquittoConfig(t *testing.T) {
	open := Mosquitto(t)
	if want := "mqtt://" + open.Addr(); open.URL() != want {
		t.Errorf("URL %q, want %q", open.URL(), want)
	}
	if err := mqttConnect(t, open.Addr(), "", ""); err != nil {
		t.Errorf("anonymous connect: %v", err)
	}
	open.Kill()
	open.Start()
	if err := mqttConnect(t, open.Addr(), "", ""); err != nil {
		t.Errorf("anonymous connect after Kill and Start: %v", err)
	}

	closed := Mosquitto(t, "allow_anonymous false", "password_file "+MosquittoPasswordFile(t, "flick", "pw"))
	if err := mqttConnect(t, closed.Addr(), "", ""); err == nil {
		t.Error("anonymous connect succeeded with allow_anonymous false")
	}
	if err := mqttConnect(t, closed.Addr(), "flick", "wrong"); err == nil {
		t.Error("connect with a wrong password succeeded")
	}
	if err := mqttConnect(t, closed.Addr(), "flick", "pw"); err != nil {
		t.Errorf("connect with the password: %v", err)
	}
}

// TestRabbitMQKill: the test's config replaces the default user, Kill really kills the node,
// and a durable queue's persistent message that was confirmed before the Kill is there
// after Start, on the same URL.
func TestRabbitMQKill(t *testing.T) {
	srv := RabbitMQ(t, "default_user = flick", "default_pass = pw")
	if want := "amqp://" + srv.Addr() + "/"; srv.URL() != want {
		t.Errorf("URL %q, want %q", srv.URL(), want)
	}
	if conn, err := amqp.Dial(srv.URL()); err == nil {
		conn.Close()
		t.Error("guest logged in, want only the config's user")
	}
	ch := amqpChannel(t, WithUser(srv.URL(), "flick", "pw"))
	if _, err := ch.QueueDeclare("kept", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirm, err := ch.PublishWithDeferredConfirmWithContext(t.Context(), "", "kept", false, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("m")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := confirm.WaitContext(t.Context()); !ok || err != nil {
		t.Fatalf("publish not confirmed: %v, %v", ok, err)
	}

	srv.Kill()
	if c, err := net.Dial("tcp", srv.Addr()); err == nil {
		c.Close()
		t.Fatal("the node still accepts connections after Kill")
	}
	srv.Kill() // a second time does nothing
	srv.Start()
	ch = amqpChannel(t, WithUser(srv.URL(), "flick", "pw"))
	if m, ok, err := ch.Get("kept", true); !ok || string(m.Body) != "m" {
		t.Errorf("after Kill and Start: get from kept = %q, %v, %v; want m", m.Body, ok, err)
	}
}

// amqpChannel is a channel on a new connection to url, closed when the test ends.
func amqpChannel(t *testing.T, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func mqttConnect(t *testing.T, addr, username, password string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: "servers-test", CleanStart: true, KeepAlive: 30}
	if username != "" {
		cp.Username, cp.UsernameFlag = username, true
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	if _, err := c.Connect(ctx, cp); err != nil {
		return err
	}
	return c.Disconnect(&paho.Disconnect{})
}

func TestWithUser(t *testing.T) {
	for in, want := range map[string]string{
		"redis://127.0.0.1:6379/0":    "redis://u:p%40ss@127.0.0.1:6379/0",
		"mqtt://127.0.0.1:1883":       "mqtt://u:p%40ss@127.0.0.1:1883",
		"mqtt://old:x@127.0.0.1:1883": "mqtt://u:p%40ss@127.0.0.1:1883",
	} {
		if got := WithUser(in, "u", "p@ss"); got != want {
			t.Errorf("WithUser(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMissingBinary: a server that is not installed fails the test, naming scripts/deps.sh.
func TestMissingBinary(t *testing.T) {
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		binary(tb, "flick-no-such-server")
		tb.fatal = "binary returned"
	}()
	<-done
	if !strings.Contains(tb.fatal, "flick-no-such-server") || !strings.Contains(tb.fatal, "scripts/deps.sh") {
		t.Errorf("failure %q, want one naming the program and scripts/deps.sh", tb.fatal)
	}
}

// fatalTB records a Fatalf and ends the goroutine, as testing does.
type fatalTB struct {
	testing.TB
	fatal string
}

func (tb *fatalTB) Fatalf(format string, args ...any) {
	tb.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
