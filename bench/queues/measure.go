package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flickdev/flick/internal/sources/queue"
)

// Each message's body is "SEQ SENT": its number in the run and the Unix time in nanoseconds
// just before it was published; the answer is the same body, so the reader on the response
// topic needs nothing but the message to know its latency.
func body(seq int, sent time.Time) []byte {
	return []byte(strconv.Itoa(seq) + " " + strconv.FormatInt(sent.UnixNano(), 10))
}

func parseBody(b []byte) (seq int, sent time.Time, err error) {
	s, ns, ok := strings.Cut(string(b), " ")
	if !ok {
		return 0, time.Time{}, fmt.Errorf("body %q is not SEQ SENT", b)
	}
	seq, err = strconv.Atoi(s)
	if err != nil {
		return 0, time.Time{}, err
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	return seq, time.Unix(0, n), err
}

// reader records the answers that arrive on a response topic.
type reader struct {
	mu      sync.Mutex
	lat     []time.Duration // by seq; 0 until answered
	last    time.Time       // the latest arrival
	dups    int
	bad     int // answers that were not a message of the run
	answers atomic.Int64
}

func newReader(n int) *reader { return &reader{lat: make([]time.Duration, n)} }

func (r *reader) handle(_ context.Context, m queue.Message) error {
	now := time.Now()
	seq, sent, err := parseBody(m.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil || seq < 0 || seq >= len(r.lat):
		r.bad++
	case r.lat[seq] != 0:
		r.dups++
	default:
		r.lat[seq] = max(now.Sub(sent), 1) // never 0: 0 means missing
		r.last = now
		r.answers.Add(1)
	}
	return nil
}

// produce publishes n messages from producers goroutines through d to topic, as fast as
// they go, or, with rate > 0, each on a schedule of rate messages/s from start (so a slow
// publish does not slow the ones after it). It returns the failed publishes.
func produce(ctx context.Context, d queue.Driver, topic string, n, producers int, rate float64, start time.Time) int64 {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for ctx.Err() == nil {
				seq := int(next.Add(1) - 1)
				if seq >= n {
					return
				}
				if rate > 0 {
					time.Sleep(time.Until(start.Add(time.Duration(float64(seq) / rate * float64(time.Second)))))
				}
				if err := d.Publish(ctx, topic, queue.Message{Body: body(seq, time.Now())}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return failed.Load()
}

// result is a path's measurement, over one run or several.
type result struct {
	answered int
	dur      time.Duration   // first publish to last answer, summed over the runs
	lat      []time.Duration // sorted
	notes    []string        // what went wrong with the counts, if anything
}

// rate is answers/s.
func (r *result) rate() float64 {
	if r.dur <= 0 {
		return 0
	}
	return float64(r.answered) / r.dur.Seconds()
}

// merge adds another run of the same path.
func (r *result) merge(o result) {
	r.answered += o.answered
	r.dur += o.dur
	r.lat = append(r.lat, o.lat...)
	slices.Sort(r.lat)
	r.notes = append(r.notes, o.notes...)
}

// settle is how long the reader keeps listening after the last answer, for duplicates.
const settle = 500 * time.Millisecond

// collect waits until every message is answered (or timeout passes), then a little longer,
// and computes the result.
func collect(ctx context.Context, r *reader, n int, failed int64, start time.Time, timeout time.Duration) result {
	deadline := time.Now().Add(timeout)
	for r.answers.Load() < int64(n) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(settle)
	r.mu.Lock()
	defer r.mu.Unlock()
	var res result
	for _, l := range r.lat {
		if l != 0 {
			res.lat = append(res.lat, l)
		}
	}
	slices.Sort(res.lat)
	res.answered = len(res.lat)
	if res.answered > 0 {
		res.dur = r.last.Sub(start)
	}
	if failed > 0 {
		res.notes = append(res.notes, fmt.Sprintf("%d publishes failed", failed))
	}
	if res.answered < n {
		res.notes = append(res.notes, fmt.Sprintf("%d of %d answered within %s", res.answered, n, timeout))
	}
	if r.dups > 0 {
		res.notes = append(res.notes, fmt.Sprintf("%d answers came twice", r.dups))
	}
	if r.bad > 0 {
		res.notes = append(res.notes, fmt.Sprintf("%d answers were not messages of the run", r.bad))
	}
	return res
}
