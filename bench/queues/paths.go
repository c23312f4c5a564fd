package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/flickdev/flick/bench/loadgen"
	"github.com/flickdev/flick/internal/sources/queue"
	"github.com/flickdev/flick/pkg/apis"
)

// readerConcurrency is how many answers the reader handles at once: enough that it never
// is what a path waits for.
const readerConcurrency = 64

// bench is what every run shares.
type bench struct {
	srv       *loadgen.Server
	echoURL   string
	conc      int
	producers int
	rounds    int
	timeout   time.Duration
}

// echo answers a POST with its body: the sink of both paths, costing next to nothing, so
// the figure is the path's own.
func echo(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write(b)
}

// runPath measures one path of a queue: n messages published to its input topic, answered
// on its response topic. label names its topics and groups, so runs never share them.
func (bn *bench) runPath(ctx context.Context, b *broker, prod queue.Driver, label string, flick bool, n int, rate float64) (result, error) {
	in, out := b.topic(label, "in"), b.topic(label, "out")
	r := newReader(n)
	rd, err := b.open(ctx, queue.Config{URL: b.url, Topic: out, Group: "bench-reader-" + label, Concurrency: readerConcurrency})
	if err != nil {
		return result{}, fmt.Errorf("reader: %w", err)
	}
	defer consume(ctx, rd, b.typ+" reader", r.handle)()
	var stopPath func()
	if flick {
		stopPath, err = bn.startFlick(ctx, b, "bench-"+b.typ+"-"+label, in, out)
	} else {
		stopPath, err = bn.startPlain(ctx, b, label, in, out)
	}
	if err != nil {
		return result{}, err
	}
	defer stopPath()
	start := time.Now()
	failed := produce(ctx, prod, in, n, bn.producers, rate, start)
	return collect(ctx, r, n, failed, start, bn.timeout), ctx.Err()
}

// startPlain runs the plain consumer: Flick's own driver, and for each message what Flick
// does with it, written by hand: POST the body to the sink, publish the answer to the
// response topic, acknowledge (the driver does, once handle returns nil).
func (bn *bench) startPlain(ctx context.Context, b *broker, label, in, out string) (stop func(), err error) {
	tr := &http.Transport{MaxIdleConnsPerHost: bn.conc}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var d queue.Driver
	handle := func(ctx context.Context, m queue.Message) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, bn.echoURL, bytes.NewReader(m.Body))
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the sink answered %d", resp.StatusCode)
		}
		// The header Flick puts on an answer, so both publish the same message.
		return d.Publish(ctx, out, queue.Message{Body: answer, Headers: map[string]string{"flick-source-id": m.Topic + "/" + m.ID}})
	}
	d, err = b.open(ctx, queue.Config{URL: b.url, Topic: in, Group: "bench-" + label, Concurrency: bn.conc})
	if err != nil {
		return nil, fmt.Errorf("plain consumer: %w", err)
	}
	stopConsume := consume(ctx, d, b.typ+" plain consumer", handle)
	return func() { stopConsume(); tr.CloseIdleConnections() }, nil
}

// consume runs d.Consume with h until stop is called, which then closes d.
func consume(ctx context.Context, d queue.Driver, what string, h queue.Handler) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Consume(ctx, h); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		}
	}()
	return func() {
		cancel()
		<-done
		d.Close()
	}
}

// startFlick creates a QueueSource from the CLI, as a user would, with the echo handler as a
// URI sink, and waits until it is connected to its queue (for MQTT, subscribed: messages
// published earlier would never reach it).
func (bn *bench) startFlick(ctx context.Context, b *broker, name, in, out string) (stop func(), err error) {
	err = bn.srv.Flick("queue", "create", name, "--type", b.typ, "--url", b.url, "--topic", in,
		"--sink", bn.echoURL, "--response-topic", out, "--concurrency", strconv.Itoa(bn.conc))
	if err != nil {
		return nil, err
	}
	stop = func() {
		if err := bn.srv.Flick("queue", "delete", name); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	kind, _ := apis.LookupKind("queuesource")
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := bn.srv.Client.Get(ctx, kind, "default", name)
		var st apis.QueueSourceStatus
		if err == nil && json.Unmarshal(res.Status, &st) == nil && st.Connected {
			return stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, fmt.Errorf("queue source %s not connected within 30s: %s", name, st.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
