package engine

import (
	"math"
	"time"

	"github.com/flickdev/flick/internal/autoscaler"
	"github.com/flickdev/flick/pkg/apis"
)

// The metrics pipeline: the engine sees every request enter and leave, so it measures demand
// itself — in flight plus waiting, integrated over time — and closes one autoscaler sample per
// second. Counting in one place means no request is counted twice.

// decisionInterval is how often the autoscaler decides (Knative: 2 s); shorter for windows
// under 8 s so small test windows still behave.
func decisionInterval(stable time.Duration) time.Duration {
	d := stable / 4
	if d > 2*time.Second {
		d = 2 * time.Second
	}
	if d < 100*time.Millisecond {
		d = 100 * time.Millisecond
	}
	return d
}

// moved reports a change worth showing: 10% and at least 0.1.
func moved(old, cur float64) bool {
	diff := math.Abs(cur - old)
	return diff >= 0.1 && diff >= 0.1*math.Abs(old)
}

// accountLocked adds the demand since the last change to the current second's integral.
// Call it before changing inflight or waiting.
func (w *Workload) accountLocked(now time.Time) {
	if !w.demandSince.IsZero() {
		w.demandIntegral += float64(w.inflight+w.waiting) * now.Sub(w.demandSince).Seconds()
	}
	w.demandSince = now
}

// sampleLocked closes the current second into a sample once it is over.
func (w *Workload) sampleLocked(now time.Time) {
	w.accountLocked(now)
	if w.secStart.IsZero() {
		w.secStart = now
		return
	}
	elapsed := now.Sub(w.secStart)
	if elapsed < time.Second {
		return
	}
	own := autoscaler.Sample{
		Time:        w.secStart,
		Concurrency: w.demandIntegral / elapsed.Seconds(),
		Requests:    float64(w.secRequests) / elapsed.Seconds(),
	}
	w.last = own
	sample := own
	for source, d := range w.remote {
		if now.Sub(d.At) > remoteFresh {
			delete(w.remote, source)
			continue
		}
		sample.Concurrency += d.Concurrency
		sample.Requests += d.RPS
	}
	w.samples = append(w.samples, sample)
	w.demandIntegral, w.secRequests, w.secStart = 0, 0, now
	// Keep a stable window of samples, and a little more.
	keep := int(w.asConfig.StableWindow/time.Second) + 2
	if len(w.samples) > keep {
		w.samples = append(w.samples[:0], w.samples[len(w.samples)-keep:]...)
	}
}

// tickLocked is the engine's heartbeat for one workload: sample, and decide when due.
func (w *Workload) tickLocked(now time.Time) {
	if w.removed || w.pending {
		return
	}
	w.sampleLocked(now)
	if now.Sub(w.lastDecision) >= decisionInterval(w.asConfig.StableWindow) {
		w.decideLocked(now, false)
	}
}

// pokeLocked is the activator's nudge: a request found no capacity. Wake from zero at once and
// let the autoscaler see the current demand now rather than at its next decision.
func (w *Workload) pokeLocked(now time.Time) {
	if w.removed || w.pending || now.Before(w.retryAt) {
		return
	}
	if len(w.instances)+w.starting == 0 {
		n := max(w.asConfig.ActivationScale, 1)
		if w.asConfig.Max > 0 && n > w.asConfig.Max {
			n = w.asConfig.Max
		}
		for i := 0; i < n; i++ {
			w.startLocked()
		}
		w.desired = max(w.desired, n)
		return
	}
	w.decideLocked(now, true)
}

// decideLocked asks the autoscaler and applies its answer. A poke only scales up, and counts
// the demand of this very moment as a sample.
func (w *Workload) decideLocked(now time.Time, poke bool) {
	samples := w.samples
	if poke {
		samples = append(samples[:len(samples):len(samples)], autoscaler.Sample{Time: now, Concurrency: float64(w.inflight + w.waiting)})
	}
	d, st := autoscaler.Decide(w.asConfig, w.asState, samples, len(w.instances), now)
	if !poke {
		w.asState = st
		w.lastDecision = now
	}
	rps := w.rps
	if len(w.samples) > 0 {
		rps = w.samples[len(w.samples)-1].Requests
	}
	// Status shows what the autoscaler sees: report changes in its decision at once, and
	// drifting observations when they moved noticeably (not every wobble: each report is a
	// store write).
	if d.Panic != w.panic || d.Desired != w.desired || moved(w.stableValue, d.StableValue) || moved(w.rps, rps) {
		go w.e.onChange(w.key)
	}
	w.panic, w.stableValue, w.rps = d.Panic, d.StableValue, rps
	if poke {
		// The demand of this very moment, not diluted by window averages: what a burst needs.
		target := max(w.asConfig.Target*w.asConfig.TargetUtilization, 0.01)
		d.Desired = max(d.Desired, int(math.Ceil(float64(w.inflight+w.waiting)/target-1e-9)))
		if w.asConfig.Max > 0 {
			d.Desired = min(d.Desired, w.asConfig.Max)
		}
	}
	if now.Before(w.initialUntil) {
		// A version younger than a stable window has not been observed for long enough to
		// scale down, and holds its initial scale.
		d.Desired = max(d.Desired, w.initialCount, len(w.instances)+w.starting)
		if w.asConfig.Max > 0 {
			d.Desired = min(d.Desired, w.asConfig.Max)
		}
	}
	if now.Before(w.floorUntil) && w.floor > d.Desired {
		d.Desired = w.floor
		if w.asConfig.Max > 0 {
			d.Desired = min(d.Desired, w.asConfig.Max)
		}
	}
	if poke && d.Desired < w.desired {
		return
	}
	w.desired = d.Desired
	w.applyLocked(now)
}

// SetFloor asks for at least n instances for the next ttl (within max-scale): an outside
// signal of demand the requests do not show yet, such as a queue's backlog (KEDA's lag). A
// floor above the current scale is applied at once; the floor lapses unless renewed.
func (w *Workload) SetFloor(n int, ttl time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.floor, w.floorUntil = n, now.Add(ttl)
	if w.removed || w.pending || n <= w.desired {
		return
	}
	w.decideLocked(now, true)
}

// applyLocked starts or stops instances to reach the desired count.
func (w *Workload) applyLocked(now time.Time) {
	have := len(w.instances) + w.starting
	if have < w.desired {
		if now.Before(w.retryAt) {
			return // crash backoff
		}
		for i := have; i < w.desired; i++ {
			w.startLocked()
		}
		return
	}
	// Scale down only idle instances; busy ones finish first and are revisited next tick.
	for len(w.instances) > w.desired {
		i := w.idlestLocked()
		if i < 0 || w.instances[i].inflight > 0 {
			return
		}
		in := w.instances[i]
		w.instances = append(w.instances[:i], w.instances[i+1:]...)
		w.retireLocked(in)
		go w.e.onChange(w.key)
	}
}

// queueLimitLocked bounds the requests waiting for capacity: 10 × containerConcurrency per
// instance (counting the ones starting and wanted), or the engine's limit when unlimited.
func (w *Workload) queueLimitLocked() int {
	cc := w.spec.Config.Concurrency
	if cc <= 0 {
		return w.e.opts.MaxQueue
	}
	n := max(len(w.instances)+w.starting, w.desired, 1)
	return 10 * cc * n
}

// autoscalerConfig resolves a workload's settings over the server's defaults, with Knative's
// rules: the target is containerConcurrency when the workload sets no target (and never above
// it), 200 for rps; the stable window is the workload's scale window.
func autoscalerConfig(defaults autoscaler.Config, cfg apis.WorkloadConfig) autoscaler.Config {
	c := defaults
	a := cfg.Autoscaling
	if a.Metric != "" {
		c.Metric = a.Metric
	}
	switch {
	case a.Target > 0:
		c.Target = a.Target
	case c.Metric == autoscaler.MetricRPS:
		c.Target = c.RPSTarget
		if c.Target <= 0 {
			c.Target = 200
		}
	case cfg.Concurrency > 0:
		c.Target = float64(cfg.Concurrency)
	}
	if cfg.Concurrency > 0 && c.Metric == autoscaler.MetricConcurrency && c.Target > float64(cfg.Concurrency) {
		c.Target = float64(cfg.Concurrency)
	}
	if a.TargetUtilizationPercent > 0 {
		c.TargetUtilization = a.TargetUtilizationPercent / 100
	}
	if cfg.Scale.Window.Duration > 0 {
		c.StableWindow = cfg.Scale.Window.Duration
	}
	panicPct := 10.0
	if a.PanicWindowPercent > 0 {
		panicPct = a.PanicWindowPercent
	} else if defaults.StableWindow > 0 && defaults.PanicWindow > 0 {
		panicPct = 100 * defaults.PanicWindow.Seconds() / defaults.StableWindow.Seconds()
	}
	c.PanicWindow = time.Duration(float64(c.StableWindow) * panicPct / 100)
	if a.PanicThresholdPercent > 0 {
		c.PanicThreshold = a.PanicThresholdPercent / 100
	}
	if a.MaxScaleUpRate > 0 {
		c.MaxScaleUpRate = a.MaxScaleUpRate
	}
	if a.MaxScaleDownRate > 0 {
		c.MaxScaleDownRate = a.MaxScaleDownRate
	}
	if a.ActivationScale > 0 {
		c.ActivationScale = a.ActivationScale
	}
	if a.ScaleDownDelay > 0 {
		c.ScaleDownDelay = a.ScaleDownDelay
	}
	if a.RetentionPeriod > 0 {
		c.RetentionPeriod = a.RetentionPeriod
	}
	c.Min, c.Max = cfg.Scale.Min, cfg.Scale.Max
	return c
}

// Demand is a data plane's measure of a workload's demand over its last second, reported to
// the one that autoscales (several gateway replicas share the traffic; one decides).
type Demand struct {
	Concurrency float64   `json:"concurrency"`
	RPS         float64   `json:"rps"`
	Waiting     int       `json:"waiting"` // requests held for capacity right now
	At          time.Time `json:"-"`
}

// remoteFresh is how long a report counts: a replica that stops reporting stops adding
// demand.
const remoteFresh = 3 * time.Second

// ReportRemote adds another data plane's demand for a workload to this engine's samples;
// requests waiting there wake the workload from zero here at once.
func (e *Engine) ReportRemote(key, source string, d Demand) {
	w := e.Get(key)
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.remote == nil {
		w.remote = map[string]Demand{}
	}
	d.At = time.Now()
	w.remote[source] = d
	if d.Waiting > 0 {
		w.accountLocked(d.At)
		// Count the waiting requests as this moment's demand, as a local one would be.
		w.waiting += d.Waiting
		w.pokeLocked(d.At)
		w.waiting -= d.Waiting
	}
}

// Demand is this engine's own demand per workload over the last closed second, with the
// requests waiting now: what a replica reports to the leader.
func (e *Engine) Demand() map[string]Demand {
	out := map[string]Demand{}
	for _, key := range e.Keys() {
		w := e.Get(key)
		if w == nil {
			continue
		}
		w.mu.Lock()
		if w.last.Concurrency > 0 || w.waiting > 0 || w.inflight > 0 {
			out[key] = Demand{Concurrency: w.last.Concurrency, RPS: w.last.Requests, Waiting: w.waiting}
		}
		w.mu.Unlock()
	}
	return out
}
