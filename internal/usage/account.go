package usage

import "time"

// Sample is what the meter reads from the platform at one moment, per engine workload key.
type Sample struct {
	// Requests counts the requests the data plane answered for the workload since the server
	// started (the router's counters).
	Requests map[string]uint64
	// Instances is the number of instances alive (ready) now.
	Instances map[string]int
}

// Counters are the usage of one workload over some time.
type Counters struct {
	Invocations     uint64  `json:"invocations"`
	InstanceSeconds float64 `json:"instanceSeconds"`
	GBSeconds       float64 `json:"gbSeconds"`
}

// Add returns c plus d.
func (c Counters) Add(d Counters) Counters {
	return Counters{Invocations: c.Invocations + d.Invocations, InstanceSeconds: c.InstanceSeconds + d.InstanceSeconds, GBSeconds: c.GBSeconds + d.GBSeconds}
}

// IsZero reports whether nothing was used.
func (c Counters) IsZero() bool { return c == Counters{} }

// Account is the usage of each workload key between two samples taken dt apart: the requests
// counted between them, and its instances (the mean of the counts at both ends) for dt, each
// weighing memoryMB(key) MiB (GB-seconds are MiB/1024 × seconds, as serverless platforms
// bill). A counter that went backwards (the router forgot the workload and started again)
// counts from zero. Keys with no usage are left out.
func Account(prev, cur Sample, dt time.Duration, memoryMB func(key string) float64) map[string]Counters {
	out := map[string]Counters{}
	for key, n := range cur.Requests {
		before := prev.Requests[key]
		if n < before {
			before = 0
		}
		if n > before {
			c := out[key]
			c.Invocations = n - before
			out[key] = c
		}
	}
	if dt <= 0 {
		return out
	}
	alive := func(key string) {
		mean := float64(prev.Instances[key]+cur.Instances[key]) / 2
		if mean <= 0 {
			return
		}
		c := out[key]
		c.InstanceSeconds = mean * dt.Seconds()
		c.GBSeconds = c.InstanceSeconds * memoryMB(key) / 1024
		out[key] = c
	}
	for key := range cur.Instances {
		alive(key)
	}
	for key := range prev.Instances {
		if _, seen := cur.Instances[key]; !seen {
			alive(key)
		}
	}
	return out
}

// hourOf is the start of t's UTC hour: usage is kept in hourly buckets.
func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }
