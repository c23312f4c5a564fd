package ping

import "time"

// Decision is what a source does at one moment.
type Decision struct {
	// Fire is the tick to send now; zero when none is due.
	Fire time.Time
	// Next is the first tick after now that is still to come; the source waits for it. Zero
	// if the schedule never fires again.
	Next time.Time
	// Missed is the earliest due tick that will never be sent: older than the catch-up
	// window, or replaced by the later Fire. Zero if none. It is only for logging.
	Missed time.Time
}

// Decide says which tick, if any, a source fires at now, and when its next tick is due.
//
// Only ticks after both created and lastFired count: ticks before the source existed are
// never caught up, and a tick at or before the last one fired never fires again, even if the
// clock goes backwards. Of the ticks that are due (at or before now), only the latest fires,
// and only if it is at most catchUp old: a server that was down fires one event for the ticks
// it missed, or none if they are stale. lastFired is zero if the source never fired.
func Decide(s Schedule, created, lastFired, now time.Time, catchUp time.Duration) Decision {
	floor := created
	if lastFired.After(floor) {
		floor = lastFired
	}
	first := s.Next(floor)
	if first.IsZero() || first.After(now) {
		return Decision{Next: first}
	}

	// Ticks fall on whole seconds and Next is strictly after its argument, so starting a
	// nanosecond before the window's opening includes a tick right on it.
	from := now.Add(-catchUp).Add(-time.Nanosecond)
	if from.Before(floor) {
		from = floor
	}
	var fire time.Time
	for t := s.Next(from); !t.IsZero() && !t.After(now); t = s.Next(t) {
		fire = t
	}
	d := Decision{Fire: fire, Next: s.Next(now)}
	if !fire.Equal(first) {
		d.Missed = first
	}
	return d
}
