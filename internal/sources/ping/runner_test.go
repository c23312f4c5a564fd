package ping

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// start is when the tests' sources are created: half past a minute.
var start = time.Date(2026, 3, 10, 10, 0, 30, 0, time.UTC)

// clockAt returns start's day at hh:mm:ss(.fff) UTC.
func clockAt(t *testing.T, hms string) time.Time {
	t.Helper()
	return at(t, "2026-03-10T"+hms+"Z")
}

type attempt struct {
	ev  Event
	at  time.Time // the clock's time when it was sent
	err error
}

// sink records every send; fail, if set, decides which ones fail.
type sink struct {
	clock Clock
	fail  func(ev Event) error

	mu       sync.Mutex
	attempts []attempt
}

func (s *sink) send(_ context.Context, ev Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.fail != nil {
		err = s.fail(ev)
	}
	s.attempts = append(s.attempts, attempt{ev: ev, at: s.clock.Now(), err: err})
	return err
}

func (s *sink) all() []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts)
}

// accepted returns the ticks (as hh:mm:ss) the sink accepted, and for which source.
func (s *sink) accepted() []string {
	var out []string
	for _, a := range s.all() {
		if a.err == nil {
			out = append(out, a.ev.Name+"@"+a.ev.Time.Format("15:04:05"))
		}
	}
	return out
}

func open(t *testing.T, dir string, clock Clock, s *sink, log *slog.Logger) *Runner {
	t.Helper()
	r, err := Open(Options{Dir: dir, Send: s.send, Clock: clock, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

func minutely(name string) Source {
	return Source{Namespace: "ns", Name: name, Schedule: "* * * * *", Data: []byte(`{"hello":"world"}`),
		ContentType: "application/json", Created: start}
}

func upsert(t *testing.T, r *Runner, src Source) {
	t.Helper()
	if err := r.Upsert(src); err != nil {
		t.Fatal(err)
	}
}

func wantAccepted(t *testing.T, s *sink, want ...string) {
	t.Helper()
	if got := s.accepted(); !slices.Equal(got, want) {
		t.Errorf("accepted %q, want %q", got, want)
	}
}

func TestRunnerFiresOncePerTick(t *testing.T) {
	clock := newFakeClock(start)
	s := &sink{clock: clock}
	r := open(t, t.TempDir(), clock, s, nil)
	upsert(t, r, minutely("a"))

	if st, _ := r.Status("ns", "a"); !st.Next.Equal(clockAt(t, "10:01:00")) || !st.LastFired.IsZero() {
		t.Errorf("status after upsert = %+v, want next 10:01, never fired", st)
	}
	clock.runUntil(t, 1, clockAt(t, "10:02:30"))
	upsert(t, r, minutely("a")) // an unchanged resync leaves the source alone
	clock.runUntil(t, 1, clockAt(t, "10:05:30"))

	wantAccepted(t, s, "a@10:01:00", "a@10:02:00", "a@10:03:00", "a@10:04:00", "a@10:05:00")
	for _, a := range s.all() {
		if !a.at.Equal(a.ev.Time) {
			t.Errorf("tick %s sent at %s", a.ev.Time, a.at)
		}
	}
	ev := s.all()[0].ev
	want := Event{Namespace: "ns", Name: "a", ID: "ns/a/1773136860", Source: "/apis/v1/namespaces/ns/pingsources/a",
		Type: "dev.knative.sources.ping", Time: clockAt(t, "10:01:00"), DataContentType: "application/json",
		Data: []byte(`{"hello":"world"}`)}
	if ev.ID != want.ID || ev.Source != want.Source || ev.Type != want.Type || !ev.Time.Equal(want.Time) ||
		ev.Time.Location() != time.UTC || ev.DataContentType != want.DataContentType || !bytes.Equal(ev.Data, want.Data) ||
		ev.Namespace != want.Namespace || ev.Name != want.Name {
		t.Errorf("event = %+v\nwant    %+v", ev, want)
	}
	st, ok := r.Status("ns", "a")
	if !ok || !st.LastFired.Equal(clockAt(t, "10:05:00")) || !st.Next.Equal(clockAt(t, "10:06:00")) || st.LastError != nil {
		t.Errorf("status = %+v, %v; want last 10:05, next 10:06, no error", st, ok)
	}
}

func TestRunnerManySources(t *testing.T) {
	clock := newFakeClock(start)
	s := &sink{clock: clock}
	r := open(t, t.TempDir(), clock, s, nil)
	upsert(t, r, minutely("a"))
	b := minutely("b")
	b.Schedule = "*/2 * * * *"
	upsert(t, r, b)
	c := minutely("c")
	c.Schedule = "@every 20s"
	upsert(t, r, c)

	clock.runUntil(t, 3, clockAt(t, "10:02:30"))

	got := s.accepted()
	slices.Sort(got)
	want := []string{"a@10:01:00", "a@10:02:00", "b@10:02:00",
		"c@10:00:40", "c@10:01:00", "c@10:01:20", "c@10:01:40", "c@10:02:00", "c@10:02:20"}
	if !slices.Equal(got, want) {
		t.Errorf("accepted %q, want %q", got, want)
	}
}

func TestRunnerRetriesUntilAccepted(t *testing.T) {
	clock := newFakeClock(start)
	failures := 2
	s := &sink{clock: clock, fail: func(Event) error {
		if failures > 0 {
			failures--
			return errors.New("503 from sink")
		}
		return nil
	}}
	r := open(t, t.TempDir(), clock, s, nil)
	upsert(t, r, minutely("a"))

	clock.runUntil(t, 1, clockAt(t, "10:01:00.3")) // failed at 10:01:00 and 10:01:00.2
	if st, _ := r.Status("ns", "a"); st.LastError == nil || !strings.Contains(st.LastError.Error(), "503 from sink") {
		t.Errorf("status while retrying = %+v, want the send error", st)
	}
	clock.runUntil(t, 1, clockAt(t, "10:01:30"))

	all := s.all()
	var sent []string
	for _, a := range all {
		sent = append(sent, a.at.Format("15:04:05.0")+" "+a.ev.ID)
		if a.ev.ID != all[0].ev.ID {
			t.Errorf("retry has id %s, first attempt %s", a.ev.ID, all[0].ev.ID)
		}
	}
	want := []string{"10:01:00.0 ns/a/1773136860", "10:01:00.2 ns/a/1773136860", "10:01:00.6 ns/a/1773136860"}
	if !slices.Equal(sent, want) {
		t.Errorf("attempts %q, want %q (0.2 s doubling)", sent, want)
	}
	wantAccepted(t, s, "a@10:01:00")
	if st, _ := r.Status("ns", "a"); !st.LastFired.Equal(clockAt(t, "10:01:00")) || st.LastError != nil {
		t.Errorf("status = %+v, want last 10:01 and no error", st)
	}
}

// lockedBuffer lets a test read what the runner's goroutines log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRunnerNextTickWins(t *testing.T) {
	clock := newFakeClock(start)
	tick1 := clockAt(t, "10:01:00")
	s := &sink{clock: clock, fail: func(ev Event) error {
		if ev.Time.Equal(tick1) {
			return errors.New("sink down")
		}
		return nil
	}}
	var logs lockedBuffer
	r := open(t, t.TempDir(), clock, s, slog.New(slog.NewTextHandler(&logs, nil)))
	upsert(t, r, minutely("a"))

	clock.runUntil(t, 1, clockAt(t, "10:02:30"))

	// Retries at +0, 0.2, 0.6, 1.4, 3, 6.2, 12.6, 25.4 and 51 s; the next wait (30 s) would
	// pass 10:02, so 10:01 is dropped and 10:02 sent.
	var at1 []string
	for _, a := range s.all() {
		if a.ev.Time.Equal(tick1) {
			at1 = append(at1, a.at.Format("05.0"))
		}
	}
	if want := []string{"00.0", "00.2", "00.6", "01.4", "03.0", "06.2", "12.6", "25.4", "51.0"}; !slices.Equal(at1, want) {
		t.Errorf("attempts at 10:01:%q, want %q", at1, want)
	}
	wantAccepted(t, s, "a@10:02:00")
	for _, msg := range []string{
		`msg="ping: send failed; the next tick replaces this one" namespace=ns name=a tick=2026-03-10T10:01:00.000Z`,
		`msg="ping: skipping missed ticks" namespace=ns name=a first_missed=2026-03-10T10:01:00.000Z firing=2026-03-10T10:02:00.000Z`,
	} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("log lacks %s:\n%s", msg, logs.String())
		}
	}
}

func TestRunnerStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(start)
	s := &sink{clock: clock}
	r1 := open(t, dir, clock, s, nil)
	upsert(t, r1, minutely("a"))
	clock.runUntil(t, 1, clockAt(t, "10:01:10"))
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}

	// A new server, 10 s later: 10:01 is within the window, but was fired.
	r2 := open(t, dir, clock, s, nil)
	upsert(t, r2, minutely("a"))
	if st, _ := r2.Status("ns", "a"); !st.LastFired.Equal(clockAt(t, "10:01:00")) {
		t.Errorf("status after restart = %+v, want last fired 10:01", st)
	}
	clock.runUntil(t, 1, clockAt(t, "10:02:10"))
	wantAccepted(t, s, "a@10:01:00", "a@10:02:00")
}

func TestRunnerCatchesUpOnceAfterDowntime(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(start)
	s := &sink{clock: clock}
	r1 := open(t, dir, clock, s, nil)
	upsert(t, r1, minutely("a"))
	clock.runUntil(t, 1, clockAt(t, "10:01:10"))
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}

	// Down until 10:05:20: 10:02 to 10:05 missed; 10:05 is 20 s old.
	clock.set(clockAt(t, "10:05:20"))
	r2 := open(t, dir, clock, s, nil)
	upsert(t, r2, minutely("a"))
	clock.runUntil(t, 1, clockAt(t, "10:06:10"))
	wantAccepted(t, s, "a@10:01:00", "a@10:05:00", "a@10:06:00")
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}

	// Down until 10:10:30 with a 10 s window: 10:10 is stale, nothing fires before 10:11.
	clock.set(clockAt(t, "10:10:30"))
	r3 := open(t, dir, clock, s, nil)
	src := minutely("a")
	src.CatchUp = 10 * time.Second
	upsert(t, r3, src)
	clock.runUntil(t, 1, clockAt(t, "10:11:00"))
	wantAccepted(t, s, "a@10:01:00", "a@10:05:00", "a@10:06:00", "a@10:11:00")
}

// TestRunnerUnrecordedTickRefiresWithSameID stands for a crash between the sink accepting an
// event and the tick being recorded: the server stops while Send is under way, so the tick is
// not recorded; the next server sends it again, with the same id for the sink to dedupe.
func TestRunnerUnrecordedTickRefiresWithSameID(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(start)
	sending := make(chan Event, 1)
	r1, err := Open(Options{Dir: dir, Clock: clock, Send: func(ctx context.Context, ev Event) error {
		sending <- ev
		<-ctx.Done()
		return ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	upsert(t, r1, minutely("a"))
	clock.settle(t, 1)
	clock.set(clockAt(t, "10:01:00"))
	first := <-sending
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}

	clock.set(clockAt(t, "10:01:05"))
	s := &sink{clock: clock}
	r2 := open(t, dir, clock, s, nil)
	upsert(t, r2, minutely("a"))
	clock.runUntil(t, 1, clockAt(t, "10:01:30"))
	wantAccepted(t, s, "a@10:01:00")
	if got := s.all()[0].ev.ID; got != first.ID {
		t.Errorf("id after restart = %s, first sent as %s", got, first.ID)
	}
}

func TestRunnerUpsertChangedSource(t *testing.T) {
	clock := newFakeClock(start)
	s := &sink{clock: clock}
	r := open(t, t.TempDir(), clock, s, nil)
	src := minutely("a")
	src.Schedule = "@hourly"
	upsert(t, r, src)
	clock.settle(t, 1)
	if st, _ := r.Status("ns", "a"); !st.Next.Equal(clockAt(t, "11:00:00")) {
		t.Errorf("next = %s, want 11:00", st.Next)
	}

	src.Schedule = "*/2 * * * *"
	upsert(t, r, src)
	if st, _ := r.Status("ns", "a"); !st.Next.Equal(clockAt(t, "10:02:00")) {
		t.Errorf("next after the change = %s, want 10:02", st.Next)
	}
	clock.runUntil(t, 1, clockAt(t, "10:03:00"))

	src.Data = []byte(`{"v":2}`)
	src.Created = time.Time{} // zero keeps the first Created, so the source is only changed in its data
	upsert(t, r, src)
	clock.runUntil(t, 1, clockAt(t, "10:04:30"))

	wantAccepted(t, s, "a@10:02:00", "a@10:04:00")
	if got := s.all()[1].ev.Data; string(got) != `{"v":2}` {
		t.Errorf("data after the change = %s", got)
	}
}

func TestRunnerDeleteForgetsState(t *testing.T) {
	clock := newFakeClock(start)
	s := &sink{clock: clock}
	r := open(t, t.TempDir(), clock, s, nil)
	upsert(t, r, minutely("a"))
	clock.runUntil(t, 1, clockAt(t, "10:01:10"))

	if err := r.Delete("ns", "a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Status("ns", "a"); ok {
		t.Error("status of a deleted source found")
	}
	if last, err := r.state.LastFired("ns/a"); err != nil || !last.IsZero() {
		t.Errorf("state after delete = %s, %v; want none", last, err)
	}
	clock.runUntil(t, 0, clockAt(t, "10:03:00"))
	wantAccepted(t, s, "a@10:01:00")
	if err := r.Delete("ns", "never-was"); err != nil {
		t.Errorf("delete of an unknown source: %v", err)
	}
}

func TestRunnerRejects(t *testing.T) {
	clock := newFakeClock(start)
	s := &sink{clock: clock}
	if _, err := Open(Options{Dir: t.TempDir()}); err == nil {
		t.Error("Open without Send succeeded")
	}
	r := open(t, t.TempDir(), clock, s, nil)

	bad := minutely("a")
	bad.Schedule = "*/5 * *"
	if err := r.Upsert(bad); err == nil || err.Error() != `pingsource ns/a: schedule "*/5 * *": expected 5 fields (minute hour day-of-month month day-of-week), found 3` {
		t.Errorf("Upsert(bad schedule) = %v", err)
	}
	bad = minutely("a")
	bad.CatchUp = -time.Second
	if err := r.Upsert(bad); err == nil {
		t.Error("Upsert(negative catch-up) succeeded")
	}
	bad = minutely("a/b")
	if err := r.Upsert(bad); err == nil {
		t.Error("Upsert(name with a slash) succeeded")
	}
	if _, ok := r.Status("ns", "a"); ok {
		t.Error("a rejected source has a status")
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Upsert(minutely("a")); !errors.Is(err, ErrClosed) {
		t.Errorf("Upsert after Close = %v, want ErrClosed", err)
	}
	if err := r.Delete("ns", "a"); !errors.Is(err, ErrClosed) {
		t.Errorf("Delete after Close = %v, want ErrClosed", err)
	}
}

// TestRunnerRealClock runs @every 1s on the system clock for 2.5 s.
func TestRunnerRealClock(t *testing.T) {
	s := &sink{clock: SystemClock{}}
	r := open(t, t.TempDir(), SystemClock{}, s, nil)
	upsert(t, r, Source{Namespace: "ns", Name: "a", Schedule: "@every 1s"})
	select {
	case <-time.After(2500 * time.Millisecond):
	case <-t.Context().Done():
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	all := s.all()
	if len(all) < 2 || len(all) > 3 {
		t.Fatalf("%d events in 2.5 s, want 2 or 3", len(all))
	}
	for i, a := range all {
		if a.err != nil || a.ev.Time.Nanosecond() != 0 || a.at.Before(a.ev.Time) || a.at.Sub(a.ev.Time) > time.Second {
			t.Errorf("event %d: tick %s sent at %s, err %v", i, a.ev.Time, a.at, a.err)
		}
		if i > 0 && a.ev.Time.Sub(all[i-1].ev.Time) != time.Second {
			t.Errorf("ticks %s then %s, want 1 s apart", all[i-1].ev.Time, a.ev.Time)
		}
	}
}
