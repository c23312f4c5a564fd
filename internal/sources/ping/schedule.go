// Package ping runs PingSources (Knative's sources.knative.dev/v1, Fission's TimeTrigger): a
// fixed event sent to a sink on a cron schedule. A tick fires once across restarts of the
// server: the last tick the sink accepted is kept in a state file, and a tick missed while the
// server was down fires on start only if it is recent enough (the catch-up window), never as a
// backlog. The package knows nothing of the API types, the store or HTTP; the caller's Send
// delivers the event. It must never import the reconciler, the server or the engine.
package ping

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// DefaultSchedule is the schedule Knative gives a PingSource that has none: every minute.
// Parse does not apply it; the API's defaulting does.
const DefaultSchedule = "* * * * *"

// Schedule is a parsed cron schedule: the instants at which a source fires (its ticks).
// The zero Schedule never fires.
type Schedule struct {
	text  string
	spec  *cron.SpecSchedule // 5 fields or a named descriptor; nil for @every
	every time.Duration      // @every's interval, whole seconds
}

// The 5 standard fields, and the named descriptors, with no seconds field: Knative's syntax.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var fieldNames = [5]string{"minute", "hour", "day-of-month", "month", "day-of-week"}

var descriptors = map[string]bool{
	"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true,
	"@daily": true, "@midnight": true, "@hourly": true,
}

// Parse parses a schedule in standard cron syntax (5 fields: minute hour day-of-month month
// day-of-week), a descriptor (@yearly, @annually, @monthly, @weekly, @daily, @midnight,
// @hourly) or "@every <duration>" (whole seconds, at least 1s), optionally prefixed by
// Knative's "CRON_TZ=<zone> ". The schedule runs in timezone, an IANA name; empty means UTC,
// so a schedule does not depend on the machine's zone.
//
// @every d fires at the whole multiples of d since the Unix epoch, whatever the time zone:
// robfig/cron counts from when its cron started, which would move the ticks at every restart
// and make "once per tick" meaningless. (Knative rejects @every; we accept it.)
func Parse(schedule, timezone string) (Schedule, error) {
	text := strings.TrimSpace(schedule)
	if text == "" {
		return Schedule{}, errors.New("schedule is empty")
	}
	// robfig/cron handles the prefix too, but panics on a prefix with nothing after it and
	// would take a missing zone to mean the machine's; so it is read here.
	if zone, rest, ok := cutZone(text); ok {
		if timezone != "" && zone != timezone {
			return Schedule{}, fmt.Errorf("schedule %q: time zone %q conflicts with timezone %q", schedule, zone, timezone)
		}
		if rest == "" {
			return Schedule{}, fmt.Errorf("schedule %q: nothing after the time zone", schedule)
		}
		loc, err := loadZone(zone)
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: %w", schedule, err)
		}
		return parseIn(schedule, rest, loc)
	}
	loc, err := loadZone(timezone)
	if err != nil {
		return Schedule{}, fmt.Errorf("timezone %q: %w", timezone, err)
	}
	return parseIn(schedule, text, loc)
}

// cutZone splits "CRON_TZ=Europe/Paris 0 9 * * *" (or robfig's "TZ=") into zone and rest.
func cutZone(text string) (zone, rest string, ok bool) {
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if after, found := strings.CutPrefix(text, prefix); found {
			zone, rest = after, ""
			if i := strings.IndexAny(after, " \t"); i >= 0 {
				zone, rest = after[:i], strings.TrimSpace(after[i:])
			}
			return zone, rest, true
		}
	}
	return "", "", false
}

func loadZone(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		// time.LoadLocation accepts it, but it is the machine's zone, not a name.
		return nil, errors.New("not an IANA time zone name")
	}
	return time.LoadLocation(name) // its error reads "unknown time zone Mars/Base"
}

// parseIn parses text, the schedule without its time zone, in loc; schedule is the whole
// input, for errors.
func parseIn(schedule, text string, loc *time.Location) (Schedule, error) {
	fields := strings.Fields(text)
	if fields[0] == "@every" {
		every, err := parseEvery(strings.Join(fields[1:], " "))
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: %w", schedule, err)
		}
		return Schedule{text: text, every: every}, nil
	}
	if strings.HasPrefix(text, "@") {
		if len(fields) != 1 || !descriptors[fields[0]] {
			return Schedule{}, fmt.Errorf("schedule %q: unknown descriptor (want @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)", schedule)
		}
	} else if len(fields) != 5 {
		return Schedule{}, fmt.Errorf("schedule %q: expected 5 fields (minute hour day-of-month month day-of-week), found %d", schedule, len(fields))
	}
	parsed, err := parser.Parse(text)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", schedule, fieldError(fields, err))
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return Schedule{}, fmt.Errorf("schedule %q: unexpected schedule type %T", schedule, parsed)
	}
	spec.Location = loc
	s := Schedule{text: text, spec: spec}
	if loc != time.UTC {
		s.text = "CRON_TZ=" + loc.String() + " " + text
	}
	// robfig/cron gives up after five years (enough for 29 February): such a schedule is
	// one that can never fire, like "0 0 30 2 *".
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return Schedule{}, fmt.Errorf("schedule %q: never fires", schedule)
	}
	return s, nil
}

func parseEvery(text string) (time.Duration, error) {
	if text == "" {
		return 0, errors.New("@every needs a duration, like @every 10s")
	}
	d, err := time.ParseDuration(text)
	if err != nil {
		return 0, fmt.Errorf("@every: %w", err)
	}
	if d < time.Second {
		return 0, fmt.Errorf("@every %s: interval must be at least 1s", text)
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("@every %s: interval must be whole seconds", text)
	}
	return d, nil
}

// fieldError names the field that robfig/cron rejected: its messages ("end of range (25)
// above maximum (23): 25") do not. Fields are checked one at a time, each among stars.
func fieldError(fields []string, err error) error {
	if len(fields) != 5 {
		return err
	}
	for i, f := range fields {
		probe := [5]string{"*", "*", "*", "*", "*"}
		probe[i] = f
		if _, perr := parser.Parse(strings.Join(probe[:], " ")); perr != nil {
			return fmt.Errorf("%s field %q: %w", fieldNames[i], f, perr)
		}
	}
	return err
}

// Next returns the first tick strictly after t, or the zero time if there is none.
//
// Ticks are computed by robfig/cron in the schedule's time zone. On daylight saving days it
// does what the wall clock says: in Europe/Paris, "30 2 * * *" does not fire on the day clocks
// spring forward (02:30 does not exist; the next tick is 02:30 the day after), and fires twice
// on the day they fall back (02:30 CEST, then 02:30 CET an hour later): two distinct ticks.
func (s Schedule) Next(t time.Time) time.Time {
	switch {
	case s.every > 0:
		step := int64(s.every / time.Second)
		sec := t.Unix() // floor: Unix's nanoseconds are never negative
		q := sec / step
		if sec%step < 0 {
			q-- // floor division before the epoch
		}
		return time.Unix((q+1)*step, 0).In(t.Location())
	case s.spec != nil:
		return s.spec.Next(t)
	}
	return time.Time{}
}

// String returns the schedule as parsed, with its time zone if not UTC.
func (s Schedule) String() string { return s.text }
