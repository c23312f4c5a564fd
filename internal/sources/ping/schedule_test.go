package ping

import (
	"testing"
	"time"
)

// at parses an RFC 3339 time for tables; "" is the zero time.
func at(t *testing.T, s string) time.Time {
	t.Helper()
	if s == "" {
		return time.Time{}
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParse(t *testing.T) {
	tests := []struct {
		schedule, timezone string
		from               string
		want               []string // the ticks after from, in UTC
		str                string
	}{
		{"* * * * *", "", "2026-03-10T10:00:30Z", []string{"2026-03-10T10:01:00Z", "2026-03-10T10:02:00Z"}, "* * * * *"},
		{"*/5 * * * *", "", "2026-03-10T10:00:00Z", []string{"2026-03-10T10:05:00Z", "2026-03-10T10:10:00Z"}, "*/5 * * * *"},
		{"  0 9 * * 1-5 ", "UTC", "2026-03-13T10:00:00Z", []string{"2026-03-16T09:00:00Z", "2026-03-17T09:00:00Z"}, "0 9 * * 1-5"},
		{"@hourly", "", "2026-03-10T10:00:30Z", []string{"2026-03-10T11:00:00Z", "2026-03-10T12:00:00Z"}, "@hourly"},
		// Midnight in Paris is 23:00 UTC in winter.
		{"@daily", "Europe/Paris", "2026-01-10T10:00:00Z", []string{"2026-01-10T23:00:00Z", "2026-01-11T23:00:00Z"}, "CRON_TZ=Europe/Paris @daily"},
		{"@midnight", "", "2026-01-10T10:00:00Z", []string{"2026-01-11T00:00:00Z"}, "@midnight"},
		{"@weekly", "", "2026-03-10T10:00:00Z", []string{"2026-03-15T00:00:00Z"}, "@weekly"},
		{"@monthly", "", "2026-03-10T10:00:00Z", []string{"2026-04-01T00:00:00Z"}, "@monthly"},
		{"@yearly", "", "2026-03-10T10:00:00Z", []string{"2027-01-01T00:00:00Z"}, "@yearly"},
		{"@annually", "", "2026-03-10T10:00:00Z", []string{"2027-01-01T00:00:00Z"}, "@annually"},
		{"0 9 * * *", "Asia/Tokyo", "2026-03-10T10:00:00Z", []string{"2026-03-11T00:00:00Z"}, "CRON_TZ=Asia/Tokyo 0 9 * * *"},
		// Knative's prefix, alone or agreeing with timezone; robfig's TZ= too.
		{"CRON_TZ=Europe/Paris 0 9 * * *", "", "2026-01-10T10:00:00Z", []string{"2026-01-11T08:00:00Z"}, "CRON_TZ=Europe/Paris 0 9 * * *"},
		{"CRON_TZ=Europe/Paris 0 9 * * *", "Europe/Paris", "2026-01-10T10:00:00Z", []string{"2026-01-11T08:00:00Z"}, "CRON_TZ=Europe/Paris 0 9 * * *"},
		{"TZ=America/New_York 0 9 * * *", "", "2026-01-10T10:00:00Z", []string{"2026-01-10T14:00:00Z"}, "CRON_TZ=America/New_York 0 9 * * *"},
		{"0 0 29 2 *", "", "2026-03-10T10:00:00Z", []string{"2028-02-29T00:00:00Z"}, "0 0 29 2 *"},
		// @every counts from the epoch, so ticks do not move with restarts; the zone does not matter.
		{"@every 10s", "", "2026-03-10T10:00:03Z", []string{"2026-03-10T10:00:10Z", "2026-03-10T10:00:20Z"}, "@every 10s"},
		{"@every 10s", "Europe/Paris", "2026-03-10T10:00:10Z", []string{"2026-03-10T10:00:20Z"}, "@every 10s"},
		{"@every 1h30m", "", "2026-03-10T10:00:00Z", []string{"2026-03-10T10:30:00Z", "2026-03-10T12:00:00Z"}, "@every 1h30m"},
		{"@every 7s", "", "1969-12-31T23:59:50Z", []string{"1969-12-31T23:59:53Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:07Z"}, "@every 7s"},
	}
	for _, tt := range tests {
		t.Run(tt.schedule+"/"+tt.timezone, func(t *testing.T) {
			s, err := Parse(tt.schedule, tt.timezone)
			if err != nil {
				t.Fatal(err)
			}
			if s.String() != tt.str {
				t.Errorf("String() = %q, want %q", s.String(), tt.str)
			}
			cur := at(t, tt.from)
			for i, w := range tt.want {
				cur = s.Next(cur)
				if !cur.Equal(at(t, w)) {
					t.Fatalf("tick %d = %s, want %s", i, cur.UTC().Format(time.RFC3339), w)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		schedule, timezone, want string
	}{
		{"", "", `schedule is empty`},
		{"   ", "UTC", `schedule is empty`},
		{"*/5 * *", "", `schedule "*/5 * *": expected 5 fields (minute hour day-of-month month day-of-week), found 3`},
		{"0 0 0 * * *", "", `schedule "0 0 0 * * *": expected 5 fields (minute hour day-of-month month day-of-week), found 6`},
		{"* * * * *", "Mars/Base", `timezone "Mars/Base": unknown time zone Mars/Base`},
		{"* * * * *", "Local", `timezone "Local": not an IANA time zone name`},
		{"CRON_TZ=Mars/Base * * * * *", "", `schedule "CRON_TZ=Mars/Base * * * * *": unknown time zone Mars/Base`},
		{"CRON_TZ=Europe/Paris * * * * *", "UTC", `schedule "CRON_TZ=Europe/Paris * * * * *": time zone "Europe/Paris" conflicts with timezone "UTC"`},
		{"CRON_TZ=Europe/Paris", "", `schedule "CRON_TZ=Europe/Paris": nothing after the time zone`},
		{"x * * * *", "", `schedule "x * * * *": minute field "x": failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax`},
		{"0 25 * * *", "", `schedule "0 25 * * *": hour field "25": end of range (25) above maximum (23): 25`},
		{"0 0 0 * *", "", `schedule "0 0 0 * *": day-of-month field "0": beginning of range (0) below minimum (1): 0`},
		{"0 0 * 13 *", "", `schedule "0 0 * 13 *": month field "13": end of range (13) above maximum (12): 13`},
		{"0 0 * * 7", "", `schedule "0 0 * * 7": day-of-week field "7": end of range (7) above maximum (6): 7`},
		{"0 0 30 2 *", "", `schedule "0 0 30 2 *": never fires`},
		{"@fortnightly", "", `schedule "@fortnightly": unknown descriptor (want @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)`},
		{"@daily 9", "", `schedule "@daily 9": unknown descriptor (want @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)`},
		{"@every", "", `schedule "@every": @every needs a duration, like @every 10s`},
		{"@every ten", "", `schedule "@every ten": @every: time: invalid duration "ten"`},
		{"@every 500ms", "", `schedule "@every 500ms": @every 500ms: interval must be at least 1s`},
		{"@every -5s", "", `schedule "@every -5s": @every -5s: interval must be at least 1s`},
		{"@every 1.5s", "", `schedule "@every 1.5s": @every 1.5s: interval must be whole seconds`},
		{"@every 10s", "Mars/Base", `timezone "Mars/Base": unknown time zone Mars/Base`},
	}
	for _, tt := range tests {
		t.Run(tt.schedule+"/"+tt.timezone, func(t *testing.T) {
			_, err := Parse(tt.schedule, tt.timezone)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse(%q, %q) error = %v, want %s", tt.schedule, tt.timezone, err, tt.want)
			}
		})
	}
}

// TestScheduleDST pins down robfig/cron's behaviour on daylight saving days, as documented
// on Schedule.Next. Europe/Paris springs forward on 2026-03-29 (02:00 CET becomes 03:00 CEST)
// and falls back on 2026-10-25 (03:00 CEST becomes 02:00 CET).
func TestScheduleDST(t *testing.T) {
	tests := []struct {
		name, schedule, from string
		want                 []string
	}{
		{"02:30 does not exist on the spring day: no tick that day", "30 2 * * *", "2026-03-27T12:00:00Z",
			[]string{"2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"}},
		{"02:30 exists twice on the autumn day: two ticks", "30 2 * * *", "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"}},
		{"hourly goes from 01:00 CET to 03:00 CEST", "0 * * * *", "2026-03-28T23:30:00Z",
			[]string{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.schedule, "Europe/Paris")
			if err != nil {
				t.Fatal(err)
			}
			cur := at(t, tt.from)
			for i, w := range tt.want {
				cur = s.Next(cur)
				if !cur.Equal(at(t, w)) {
					t.Fatalf("tick %d = %s, want %s", i, cur.UTC().Format(time.RFC3339), w)
				}
			}
		})
	}
}

func TestZeroScheduleNeverFires(t *testing.T) {
	if n := (Schedule{}).Next(time.Now()); !n.IsZero() {
		t.Errorf("Next = %s, want zero", n)
	}
}
