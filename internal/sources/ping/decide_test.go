package ping

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	const created = "2026-03-10T10:00:30Z"
	tests := []struct {
		name               string
		schedule, timezone string
		created, lastFired string
		now                string
		catchUp            time.Duration
		fire, next, missed string
	}{
		// First start: nothing before the source existed fires.
		{name: "created mid-minute waits for the next minute", schedule: "* * * * *",
			created: created, now: "2026-03-10T10:00:30Z", catchUp: time.Minute,
			next: "2026-03-10T10:01:00Z"},
		{name: "created on a tick does not fire it", schedule: "* * * * *",
			created: "2026-03-10T10:00:00Z", now: "2026-03-10T10:00:00.5Z", catchUp: time.Minute,
			next: "2026-03-10T10:01:00Z"},
		{name: "first tick after creation", schedule: "* * * * *",
			created: created, now: "2026-03-10T10:01:00Z", catchUp: time.Minute,
			fire: "2026-03-10T10:01:00Z", next: "2026-03-10T10:02:00Z"},
		{name: "created in the future (clock skew) waits for it", schedule: "* * * * *",
			created: "2026-03-10T10:10:00Z", now: "2026-03-10T10:05:00Z", catchUp: time.Minute,
			next: "2026-03-10T10:11:00Z"},
		{name: "never fired, server down since creation: only the latest", schedule: "* * * * *",
			created: "2026-03-10T09:00:00Z", now: "2026-03-10T10:05:30Z", catchUp: time.Minute,
			fire: "2026-03-10T10:05:00Z", next: "2026-03-10T10:06:00Z", missed: "2026-03-10T09:01:00Z"},

		// Normal running.
		{name: "normal tick, woken a little late", schedule: "* * * * *",
			created: created, lastFired: "2026-03-10T10:01:00Z", now: "2026-03-10T10:02:00.003Z", catchUp: time.Minute,
			fire: "2026-03-10T10:02:00Z", next: "2026-03-10T10:03:00Z"},
		{name: "woken again after firing: nothing", schedule: "* * * * *",
			created: created, lastFired: "2026-03-10T10:02:00Z", now: "2026-03-10T10:02:00.5Z", catchUp: time.Minute,
			next: "2026-03-10T10:03:00Z"},

		// Restarts.
		{name: "one missed tick inside the window fires once", schedule: "* * * * *",
			created: created, lastFired: "2026-03-10T10:01:00Z", now: "2026-03-10T10:02:40Z", catchUp: time.Minute,
			fire: "2026-03-10T10:02:00Z", next: "2026-03-10T10:03:00Z"},
		{name: "many missed ticks: only the latest fires", schedule: "* * * * *",
			created: created, lastFired: "2026-03-10T10:01:00Z", now: "2026-03-10T10:05:20Z", catchUp: time.Minute,
			fire: "2026-03-10T10:05:00Z", next: "2026-03-10T10:06:00Z", missed: "2026-03-10T10:02:00Z"},
		{name: "missed tick outside the window is skipped", schedule: "0 * * * *",
			created: "2026-03-10T08:00:30Z", lastFired: "2026-03-10T09:00:00Z", now: "2026-03-10T10:05:00Z", catchUp: time.Minute,
			next: "2026-03-10T11:00:00Z", missed: "2026-03-10T10:00:00Z"},
		{name: "window is inclusive: exactly catchUp old fires", schedule: "0 * * * *",
			created: "2026-03-10T08:00:30Z", lastFired: "2026-03-10T09:00:00Z", now: "2026-03-10T10:01:00Z", catchUp: time.Minute,
			fire: "2026-03-10T10:00:00Z", next: "2026-03-10T11:00:00Z"},
		{name: "a nanosecond past the window does not", schedule: "0 * * * *",
			created: "2026-03-10T08:00:30Z", lastFired: "2026-03-10T09:00:00Z", now: "2026-03-10T10:01:00.000000001Z", catchUp: time.Minute,
			next: "2026-03-10T11:00:00Z", missed: "2026-03-10T10:00:00Z"},
		{name: "days down, daily schedule, tick long gone", schedule: "@daily",
			created: "2026-03-01T12:00:00Z", lastFired: "2026-03-10T00:00:00Z", now: "2026-03-14T08:00:00Z", catchUp: time.Hour,
			next: "2026-03-15T00:00:00Z", missed: "2026-03-11T00:00:00Z"},
		{name: "zero window fires only a tick right on time", schedule: "* * * * *",
			created: created, lastFired: "2026-03-10T10:01:00Z", now: "2026-03-10T10:02:00Z",
			fire: "2026-03-10T10:02:00Z", next: "2026-03-10T10:03:00Z"},

		// The clock going backwards never fires a tick again.
		{name: "clock behind the last tick: wait for the one after it", schedule: "* * * * *",
			created: created, lastFired: "2026-03-10T10:05:00Z", now: "2026-03-10T10:03:00Z", catchUp: time.Minute,
			next: "2026-03-10T10:06:00Z"},
		{name: "clock back on the last tick itself", schedule: "* * * * *",
			created: created, lastFired: "2026-03-10T10:05:00Z", now: "2026-03-10T10:05:00Z", catchUp: time.Minute,
			next: "2026-03-10T10:06:00Z"},

		// Daylight saving in Europe/Paris (see TestScheduleDST).
		{name: "spring forward: no 02:30 that day", schedule: "30 2 * * *", timezone: "Europe/Paris",
			created: "2026-03-01T12:00:00Z", lastFired: "2026-03-28T01:30:00Z", now: "2026-03-29T01:30:00Z", catchUp: time.Hour,
			next: "2026-03-30T00:30:00Z"},
		{name: "fall back: the second 02:30 (CET) is another tick", schedule: "30 2 * * *", timezone: "Europe/Paris",
			created: "2026-03-01T12:00:00Z", lastFired: "2026-10-25T00:30:00Z", now: "2026-10-25T01:30:00Z", catchUp: time.Minute,
			fire: "2026-10-25T01:30:00Z", next: "2026-10-26T01:30:00Z"},

		// @every runs on a grid from the epoch.
		{name: "@every 10s first start", schedule: "@every 10s",
			created: "2026-03-10T10:00:03Z", now: "2026-03-10T10:00:03Z", catchUp: time.Minute,
			next: "2026-03-10T10:00:10Z"},
		{name: "@every 10s tick", schedule: "@every 10s",
			created: "2026-03-10T10:00:03Z", lastFired: "2026-03-10T10:00:10Z", now: "2026-03-10T10:00:20Z", catchUp: time.Minute,
			fire: "2026-03-10T10:00:20Z", next: "2026-03-10T10:00:30Z"},
		{name: "@every 10s restart after 45s down", schedule: "@every 10s",
			created: "2026-03-10T10:00:03Z", lastFired: "2026-03-10T10:00:20Z", now: "2026-03-10T10:01:05Z", catchUp: 30 * time.Second,
			fire: "2026-03-10T10:01:00Z", next: "2026-03-10T10:01:10Z", missed: "2026-03-10T10:00:30Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.schedule, tt.timezone)
			if err != nil {
				t.Fatal(err)
			}
			got := Decide(s, at(t, tt.created), at(t, tt.lastFired), at(t, tt.now), tt.catchUp)
			want := Decision{Fire: at(t, tt.fire), Next: at(t, tt.next), Missed: at(t, tt.missed)}
			if !got.Fire.Equal(want.Fire) || !got.Next.Equal(want.Next) || !got.Missed.Equal(want.Missed) {
				t.Errorf("Decide = %s\nwant     %s", show(got), show(want))
			}
		})
	}
}

func TestDecideZeroSchedule(t *testing.T) {
	now := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	if got := Decide(Schedule{}, now.Add(-time.Hour), time.Time{}, now, time.Minute); got != (Decision{}) {
		t.Errorf("Decide = %s, want nothing", show(got))
	}
}

// TestDecideTrace replays a source's life, step by step, as the runner lives it: a fired tick
// becomes lastFired for the next step; a restart keeps it (it is in the state file).
func TestDecideTrace(t *testing.T) {
	type step struct {
		note, now, fire, next string
	}
	traces := []struct {
		name, schedule string
		created        string
		catchUp        time.Duration
		steps          []step
	}{
		{"every minute, with a restart and a clock step back", "* * * * *", "2026-03-10T10:00:30Z", time.Minute, []step{
			{"created", "2026-03-10T10:00:30Z", "", "2026-03-10T10:01:00Z"},
			{"first tick", "2026-03-10T10:01:00Z", "2026-03-10T10:01:00Z", "2026-03-10T10:02:00Z"},
			{"spurious wake-up", "2026-03-10T10:01:00.2Z", "", "2026-03-10T10:02:00Z"},
			{"tick", "2026-03-10T10:02:00.001Z", "2026-03-10T10:02:00Z", "2026-03-10T10:03:00Z"},
			{"down 10:02:30-10:04:30, 10:03 and 10:04 missed: 10:04 fires", "2026-03-10T10:04:30Z", "2026-03-10T10:04:00Z", "2026-03-10T10:05:00Z"},
			{"clock steps back 40s", "2026-03-10T10:03:50Z", "", "2026-03-10T10:05:00Z"},
			{"10:04 again on the wall clock: already fired", "2026-03-10T10:04:00Z", "", "2026-03-10T10:05:00Z"},
			{"tick", "2026-03-10T10:05:00Z", "2026-03-10T10:05:00Z", "2026-03-10T10:06:00Z"},
			{"down an hour: all stale", "2026-03-10T11:05:30Z", "2026-03-10T11:05:00Z", "2026-03-10T11:06:00Z"},
		}},
		{"hourly, down past the window", "0 * * * *", "2026-03-10T09:30:00Z", 5 * time.Minute, []step{
			{"created", "2026-03-10T09:30:00Z", "", "2026-03-10T10:00:00Z"},
			{"tick", "2026-03-10T10:00:00Z", "2026-03-10T10:00:00Z", "2026-03-10T11:00:00Z"},
			{"down 10:50-11:07: 11:00 is 7 minutes old, skipped", "2026-03-10T11:07:00Z", "", "2026-03-10T12:00:00Z"},
			{"tick", "2026-03-10T12:00:00Z", "2026-03-10T12:00:00Z", "2026-03-10T13:00:00Z"},
		}},
		{"@every 10s", "@every 10s", "2026-03-10T10:00:03Z", 15 * time.Second, []step{
			{"created", "2026-03-10T10:00:03Z", "", "2026-03-10T10:00:10Z"},
			{"tick", "2026-03-10T10:00:10Z", "2026-03-10T10:00:10Z", "2026-03-10T10:00:20Z"},
			{"tick", "2026-03-10T10:00:20Z", "2026-03-10T10:00:20Z", "2026-03-10T10:00:30Z"},
			{"down 25s: 10:00:30 and :40 missed, :40 fires", "2026-03-10T10:00:45Z", "2026-03-10T10:00:40Z", "2026-03-10T10:00:50Z"},
			{"tick", "2026-03-10T10:00:50Z", "2026-03-10T10:00:50Z", "2026-03-10T10:01:00Z"},
		}},
	}
	for _, tr := range traces {
		t.Run(tr.name, func(t *testing.T) {
			s, err := Parse(tr.schedule, "")
			if err != nil {
				t.Fatal(err)
			}
			var lastFired time.Time
			for i, st := range tr.steps {
				d := Decide(s, at(t, tr.created), lastFired, at(t, st.now), tr.catchUp)
				if !d.Fire.Equal(at(t, st.fire)) || !d.Next.Equal(at(t, st.next)) {
					t.Fatalf("step %d (%s) at %s: fire %s next %s, want fire %q next %s",
						i, st.note, st.now, stamp(d.Fire), stamp(d.Next), st.fire, st.next)
				}
				if !d.Fire.IsZero() {
					lastFired = d.Fire
				}
			}
		})
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func show(d Decision) string {
	return "fire " + stamp(d.Fire) + " next " + stamp(d.Next) + " missed " + stamp(d.Missed)
}
