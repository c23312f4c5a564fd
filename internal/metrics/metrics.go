// Package metrics exposes Flick's Prometheus metrics. Everything is read at scrape time from
// the counters the router, the engine and the usage meter keep anyway, so the request path
// pays nothing for metrics. The names are documented in docs/metrics.md.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flickdev/flick/internal/coldstart"
	"github.com/flickdev/flick/internal/engine"
	"github.com/flickdev/flick/internal/eventing/broker"
	"github.com/flickdev/flick/internal/histogram"
	"github.com/flickdev/flick/internal/pool"
	"github.com/flickdev/flick/internal/router"
	"github.com/flickdev/flick/internal/usage"
)

// Labeler names a workload key for humans: namespace, kind (function or service), name, and
// revision (empty for functions). ok is false for keys it does not know.
type Labeler func(key string) (namespace, kind, name, revision string, ok bool)

var labels = []string{"namespace", "kind", "name", "revision"}

func desc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string{}, labels...), extra...), nil)
}

var (
	requestsTotal   = desc("flick_requests_total", "Requests answered by the data plane, by status class (2xx, 5xx...).", "code")
	requestDuration = desc("flick_request_duration_seconds", "Time from the router receiving a request to the end of its answer, including any wait for an instance.")
	inFlight        = desc("flick_requests_in_flight", "Requests being served by instances.")
	queueDepth      = desc("flick_activator_queue_depth", "Requests waiting for an instance with room.")
	desired         = desc("flick_instances_desired", "Instances the autoscaler wants.")
	ready           = desc("flick_instances_ready", "Instances serving.")
	panicMode       = desc("flick_autoscaler_panic", "1 while the autoscaler is in panic mode.")
	concurrency     = desc("flick_autoscaler_observed_concurrency", "Concurrency (in flight plus waiting) averaged over the stable window.")
	rps             = desc("flick_autoscaler_observed_rps", "Requests per second in the last second.")
	coldStarts      = desc("flick_cold_starts_total", "Requests that arrived when no instance was ready, by executor (pool or deploy).", "executor")
	coldStartWait   = desc("flick_cold_start_duration_seconds", "How long a cold-start request waited for its instance, by executor.", "executor")
	coldStartPhase  = prometheus.NewDesc("flick_cold_start_phase_seconds", "Where instance starts spend their time, by runtime, executor and phase: wait_for_pool (taking a warm instance), specialize (it loading the function), start (an instance's own start: no warm one, the deploy executor, a Go or binary exec in a spare sandbox), first_byte (instance handed over to the first byte of the answer).", []string{"runtime", "executor", "phase"}, nil)

	usageInvocations     = desc("flick_usage_invocations_total", "Metered invocations since the server's usage data began (kept across restarts).")
	usageInstanceSeconds = desc("flick_usage_instance_seconds_total", "Metered instance-seconds (ready instances × time) since the server's usage data began.")
	usageGBSeconds       = desc("flick_usage_gb_seconds_total", "Metered GB-seconds (instance-seconds × memory per instance in GiB) since the server's usage data began.")
)

// Collector reads the engine, the router and the usage meter at scrape time.
type Collector struct {
	Engine *engine.Engine
	Router *router.Router
	Label  Labeler
	// Usage is the meter's durable totals; nil leaves the flick_usage_* metrics out.
	Usage interface{ Totals() []usage.Record }
	// Pools reports the warm pools; nil leaves the flick_pool_* metrics out.
	Pools func() []pool.Status
	// ColdStarts has the phases of instance starts; nil leaves them out.
	ColdStarts *coldstart.Recorder
	// Eventing reports brokers and triggers; nil leaves the flick_broker_* and
	// flick_trigger_* metrics out.
	Eventing func() ([]broker.BrokerStats, []broker.TriggerStats)
	// Queues reports queue sources; nil leaves the flick_queue_* metrics out.
	Queues func() []QueueStat
}

// QueueStat is one queue source's figures.
type QueueStat struct {
	Namespace, Source, Type, Topic string
	Connected                      bool
	Lag                            int64 // -1: the queue cannot tell
	Delivered, Failed              int64
}

var (
	queueLabels    = []string{"namespace", "source", "type", "topic"}
	queueConnected = prometheus.NewDesc("flick_queue_connected", "1 while a queue source is connected to its queue.", queueLabels, nil)
	queueLag       = prometheus.NewDesc("flick_queue_lag_messages", "Messages of the topic the source's consumer has not acknowledged yet (absent where the queue cannot tell).", queueLabels, nil)
	queueDelivered = prometheus.NewDesc("flick_queue_messages_delivered_total", "Messages the sink accepted.", queueLabels, nil)
	queueFailed    = prometheus.NewDesc("flick_queue_messages_failed_total", "Messages the sink still refused after the last retry.", queueLabels, nil)
)

func (c *Collector) collectQueues(ch chan<- prometheus.Metric) {
	if c.Queues == nil {
		return
	}
	for _, q := range c.Queues() {
		lv := []string{q.Namespace, q.Source, q.Type, q.Topic}
		connected := 0.0
		if q.Connected {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(queueConnected, prometheus.GaugeValue, connected, lv...)
		if q.Lag >= 0 {
			ch <- prometheus.MustNewConstMetric(queueLag, prometheus.GaugeValue, float64(q.Lag), lv...)
		}
		ch <- prometheus.MustNewConstMetric(queueDelivered, prometheus.CounterValue, float64(q.Delivered), lv...)
		ch <- prometheus.MustNewConstMetric(queueFailed, prometheus.CounterValue, float64(q.Failed), lv...)
	}
}

var (
	brokerAccepted   = prometheus.NewDesc("flick_broker_events_accepted_total", "Events a broker acknowledged (202: durable in its log), replies included.", []string{"namespace", "broker"}, nil)
	triggerLabels    = []string{"namespace", "trigger", "broker"}
	triggerDelivered = prometheus.NewDesc("flick_trigger_events_delivered_total", "Events a trigger's subscriber accepted.", triggerLabels, nil)
	triggerRetried   = prometheus.NewDesc("flick_trigger_events_retried_total", "Delivery attempts made again after a failure.", triggerLabels, nil)
	triggerDead      = prometheus.NewDesc("flick_trigger_events_dead_lettered_total", "Events sent to the dead-letter sink after the last retry.", triggerLabels, nil)
	triggerLag       = prometheus.NewDesc("flick_trigger_lag_events", "Events in the broker's log after the trigger's position (not yet done with).", triggerLabels, nil)
	triggerLatency   = prometheus.NewDesc("flick_trigger_delivery_seconds", "From the broker accepting an event to the subscriber accepting it, retries included.", triggerLabels, nil)
)

func (c *Collector) collectEventing(ch chan<- prometheus.Metric) {
	if c.Eventing == nil {
		return
	}
	bs, ts := c.Eventing()
	for _, b := range bs {
		ch <- prometheus.MustNewConstMetric(brokerAccepted, prometheus.CounterValue, float64(b.Accepted), b.Namespace, b.Name)
	}
	for _, t := range ts {
		lv := []string{t.Namespace, t.Name, t.Broker}
		ch <- prometheus.MustNewConstMetric(triggerDelivered, prometheus.CounterValue, float64(t.Delivered), lv...)
		ch <- prometheus.MustNewConstMetric(triggerRetried, prometheus.CounterValue, float64(t.Retried), lv...)
		ch <- prometheus.MustNewConstMetric(triggerDead, prometheus.CounterValue, float64(t.DeadLettered), lv...)
		ch <- prometheus.MustNewConstMetric(triggerLag, prometheus.GaugeValue, float64(t.Lag), lv...)
		ch <- constHistogram(triggerLatency, t.Latency, lv)
	}
}

var (
	poolReady       = prometheus.NewDesc("flick_pool_ready", "Warm generic instances ready to specialize, per runtime.", []string{"runtime"}, nil)
	poolSpecialized = prometheus.NewDesc("flick_pool_specialized_total", "Cold starts served by specializing a warm instance.", []string{"runtime"}, nil)
	poolMisses      = prometheus.NewDesc("flick_pool_misses_total", "Cold starts that found the pool empty and started their own process.", []string{"runtime"}, nil)
	poolSpecialize  = prometheus.NewDesc("flick_pool_specialize_duration_seconds", "How long a warm instance took to load a function's code (the handoff part of a pool cold start).", []string{"runtime"}, nil)
)

func (c *Collector) collectPools(ch chan<- prometheus.Metric) {
	if c.Pools == nil {
		return
	}
	for _, p := range c.Pools() {
		ch <- prometheus.MustNewConstMetric(poolReady, prometheus.GaugeValue, float64(p.Ready), p.Runtime)
		ch <- prometheus.MustNewConstMetric(poolSpecialized, prometheus.CounterValue, float64(p.Specialized), p.Runtime)
		ch <- prometheus.MustNewConstMetric(poolMisses, prometheus.CounterValue, float64(p.Misses), p.Runtime)
		ch <- constHistogram(poolSpecialize, p.SpecializeTime, []string{p.Runtime})
	}
}

// Describe sends the descriptors.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolReady
	ch <- poolSpecialized
	ch <- poolMisses
	ch <- poolSpecialize
	ch <- coldStartPhase
	for _, d := range []*prometheus.Desc{brokerAccepted, triggerDelivered, triggerRetried, triggerDead, triggerLag, triggerLatency,
		queueConnected, queueLag, queueDelivered, queueFailed} {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{requestsTotal, requestDuration, inFlight, queueDepth, desired, ready, panicMode, concurrency, rps, coldStarts, coldStartWait,
		usageInvocations, usageInstanceSeconds, usageGBSeconds} {
		ch <- d
	}
}

// Collect sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.collectPools(ch)
	c.collectEventing(ch)
	c.collectQueues(ch)
	if c.ColdStarts != nil {
		for _, s := range c.ColdStarts.Snapshot() {
			ch <- constHistogram(coldStartPhase, s.Snapshot, []string{s.Runtime, s.Executor, s.Phase})
		}
	}
	for key, st := range c.Router.AllStats() {
		ns, kind, name, rev, ok := c.Label(key)
		if !ok {
			continue
		}
		lv := []string{ns, kind, name, rev}
		for class := 1; class <= 5; class++ {
			if n := st.Classes[class]; n > 0 {
				ch <- prometheus.MustNewConstMetric(requestsTotal, prometheus.CounterValue, float64(n), append(lv, string(rune('0'+class))+"xx")...)
			}
		}
		ch <- constHistogram(requestDuration, st.Latency, lv)
	}
	for _, key := range c.Engine.Keys() {
		ns, kind, name, rev, ok := c.Label(key)
		if !ok {
			continue
		}
		st, ok := c.Engine.Status(key)
		if !ok {
			continue
		}
		lv := []string{ns, kind, name, rev}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
		}
		gauge(inFlight, float64(st.InFlight))
		gauge(queueDepth, float64(st.Waiting))
		gauge(desired, float64(st.Desired))
		gauge(ready, float64(st.Ready))
		p := 0.0
		if st.Panic {
			p = 1
		}
		gauge(panicMode, p)
		gauge(concurrency, st.Concurrency)
		gauge(rps, st.RPS)
		ex := append(lv[:len(lv):len(lv)], st.Executor)
		ch <- prometheus.MustNewConstMetric(coldStarts, prometheus.CounterValue, float64(st.ColdStarts), ex...)
		ch <- constHistogram(coldStartWait, st.ColdWait, ex)
	}
	if c.Usage != nil {
		for _, r := range c.Usage.Totals() {
			lv := []string{r.Namespace, r.Kind, r.Name, r.Revision}
			ch <- prometheus.MustNewConstMetric(usageInvocations, prometheus.CounterValue, float64(r.Invocations), lv...)
			ch <- prometheus.MustNewConstMetric(usageInstanceSeconds, prometheus.CounterValue, r.InstanceSeconds, lv...)
			ch <- prometheus.MustNewConstMetric(usageGBSeconds, prometheus.CounterValue, r.GBSeconds, lv...)
		}
	}
}

// constHistogram turns a histogram snapshot into Prometheus's cumulative form.
func constHistogram(d *prometheus.Desc, s histogram.Snapshot, lv []string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(histogram.Bounds))
	var cum uint64
	for i, b := range histogram.Bounds {
		if i < len(s.Counts) {
			cum += s.Counts[i]
		}
		buckets[b.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(d, s.Count(), s.Sum.Seconds(), buckets, lv...)
}

// Handler serves /metrics: Flick's collector plus the Go runtime's and the process's.
func Handler(c *Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 10 * time.Second})
}
