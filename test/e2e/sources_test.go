package e2e

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPingSource: a ping source with @every 1s fires once a second with Knative's attributes;
// across a SIGKILL and a restart 3 s later no tick fires twice and the ticks missed while the
// server was down fire once (the latest), not as a burst; a bad schedule is refused naming
// the field; flick get sources shows the source's progress.
func TestPingSource(t *testing.T) {
	s := startServer(t, "")
	rec, url := newSink(t)
	if _, errOut, code := s.flick("ping", "create", "bad", "--schedule", "* * *", "--sink", url); code == 0 || !strings.Contains(errOut, "spec.schedule") {
		t.Errorf("a bad schedule: exit %d, %s", code, errOut)
	}
	s.mustFlick("ping", "create", "tick", "--schedule", "@every 1s", "--data", `{"n": 1}`, "--sink", url+"/ping")
	eventually(t, 10*time.Second, "three ticks", func() bool { return len(rec.ids("/ping")) >= 3 })
	h := rec.header("/ping", 0)
	if h.Get("Ce-Type") != "dev.knative.sources.ping" || h.Get("Ce-Source") != "/apis/v1/namespaces/default/pingsources/tick" ||
		h.Get("Content-Type") != "application/json" || !strings.HasPrefix(h.Get("Ce-Id"), "default/tick/") || rec.body("/ping", 0) != `{"n": 1}` {
		t.Errorf("first event: %v %q", h, rec.body("/ping", 0))
	}
	eventually(t, 5*time.Second, "flick get sources to show the last tick", func() bool {
		out := s.mustFlick("get", "sources")
		return strings.Contains(out, "PingSource") && strings.Contains(out, "tick") && strings.Contains(out, "True") && !strings.Contains(out, " - ")
	})

	s.stop(syscall.SIGKILL)
	down := time.Now()
	time.Sleep(3 * time.Second)
	restarting := time.Now()
	s.start()
	up := time.Now()
	before := len(rec.ids("/ping"))
	eventually(t, 10*time.Second, "three ticks after the restart", func() bool { return len(rec.ids("/ping")) >= before+3 })

	ids := rec.ids("/ping")
	seen := map[string]bool{}
	// Ticks while no server ran: at most one fires (the latest, if it is still the latest
	// missed one when the source resumes). Ticks until the server is up: at least one fires
	// (that catch-up, or the first regular tick).
	whileDown, untilUp := 0, 0
	for _, id := range ids {
		if seen[id] {
			t.Errorf("tick %s fired twice (ids %v)", id, ids)
		}
		seen[id] = true
		unix, err := strconv.ParseInt(id[strings.LastIndexByte(id, '/')+1:], 10, 64)
		if err != nil {
			t.Fatalf("id %q does not end in the tick's Unix time", id)
		}
		tick := time.Unix(unix, 0)
		if tick.After(down) && tick.Before(restarting) {
			whileDown++
		}
		if tick.After(down) && !tick.After(up) {
			untilUp++
		}
	}
	if whileDown > 1 {
		t.Errorf("%d ticks missed while the server was down fired after the restart, want at most the latest one (ids %v)", whileDown, ids)
	}
	if untilUp == 0 {
		t.Errorf("no tick between the kill and the server being up fired: the catch-up lost it (ids %v)", ids)
	}
}
