package apis

import (
	"strconv"
	"time"
)

// Knative's autoscaling annotations beyond the scale bounds.
const (
	AnnotationMetric            = "autoscaling.knative.dev/metric"
	AnnotationTarget            = "autoscaling.knative.dev/target"
	AnnotationTargetUtilization = "autoscaling.knative.dev/target-utilization-percentage"
	AnnotationPanicWindow       = "autoscaling.knative.dev/panic-window-percentage"
	AnnotationPanicThreshold    = "autoscaling.knative.dev/panic-threshold-percentage"
	AnnotationMaxScaleUpRate    = "autoscaling.knative.dev/max-scale-up-rate"
	AnnotationMaxScaleDownRate  = "autoscaling.knative.dev/max-scale-down-rate"
	AnnotationActivationScale   = "autoscaling.knative.dev/activation-scale"
	AnnotationScaleDownDelay    = "autoscaling.knative.dev/scale-down-delay"
	AnnotationRetention         = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
)

// Autoscaling holds the autoscaler settings a workload chose; zero values mean "the server's
// default" (Knative's, unless the server's config file says otherwise).
type Autoscaling struct {
	Metric                   string
	Target                   float64
	TargetUtilizationPercent float64
	PanicWindowPercent       float64
	PanicThresholdPercent    float64
	MaxScaleUpRate           float64
	MaxScaleDownRate         float64
	ActivationScale          int
	ScaleDownDelay           time.Duration
	RetentionPeriod          time.Duration
}

// AutoscalingFromAnnotations reads Knative's autoscaling annotations through lookup (which
// returns a key's value, the field it came from, and whether it is set).
func AutoscalingFromAnnotations(lookup func(key string) (value, field string, ok bool)) (Autoscaling, FieldErrors) {
	var a Autoscaling
	var errs FieldErrors
	if v, field, ok := lookup(AnnotationMetric); ok {
		switch v {
		case "concurrency", "rps":
			a.Metric = v
		default:
			errs.add(field, quote(v)+" is not supported: use concurrency or rps")
		}
	}
	floats := []struct {
		key      string
		dst      *float64
		min, max float64
	}{
		{AnnotationTarget, &a.Target, 0.01, 1e9},
		{AnnotationTargetUtilization, &a.TargetUtilizationPercent, 1, 100},
		{AnnotationPanicWindow, &a.PanicWindowPercent, 1, 100},
		{AnnotationPanicThreshold, &a.PanicThresholdPercent, 110, 1000},
		{AnnotationMaxScaleUpRate, &a.MaxScaleUpRate, 1.0001, 1e9},
		{AnnotationMaxScaleDownRate, &a.MaxScaleDownRate, 1.0001, 1e9},
	}
	for _, f := range floats {
		v, field, ok := lookup(f.key)
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < f.min || n > f.max {
			errs.add(field, "must be a number from "+strconv.FormatFloat(f.min, 'g', -1, 64)+" to "+strconv.FormatFloat(f.max, 'g', -1, 64))
			continue
		}
		*f.dst = n
	}
	if v, field, ok := lookup(AnnotationActivationScale); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs.add(field, "must be a whole number, 1 or more")
		} else {
			a.ActivationScale = n
		}
	}
	durations := []struct {
		key string
		dst *time.Duration
		max time.Duration
	}{
		{AnnotationScaleDownDelay, &a.ScaleDownDelay, time.Hour},
		{AnnotationRetention, &a.RetentionPeriod, 24 * time.Hour},
	}
	for _, d := range durations {
		v, field, ok := lookup(d.key)
		if !ok {
			continue
		}
		n, err := time.ParseDuration(v)
		if err != nil || n < 0 || n > d.max {
			errs.add(field, "must be a duration from 0s to "+d.max.String())
			continue
		}
		*d.dst = n
	}
	return a, errs
}

// annotationLookup finds an annotation: its value, the field it came from, and whether it is
// set.
type annotationLookup func(key string) (value, field string, ok bool)

// templateAnnotations looks in a template's annotations, then (as Knative also allows) in
// its owner's.
func templateAnnotations(template, owner map[string]string) annotationLookup {
	return func(key string) (string, string, bool) {
		if v, ok := template[key]; ok {
			return v, "spec.template.metadata.annotations[" + key + "]", true
		}
		v, ok := owner[key]
		return v, "metadata.annotations[" + key + "]", ok
	}
}

// metaAnnotations looks in an object's own annotations.
func metaAnnotations(m map[string]string) annotationLookup {
	return func(key string) (string, string, bool) {
		v, ok := m[key]
		return v, "metadata.annotations[" + key + "]", ok
	}
}

// validateAnnotations checks the scale and autoscaling annotations.
func validateAnnotations(errs *FieldErrors, lookup annotationLookup) {
	_, scaleErrs := ScaleFromAnnotations(lookup)
	_, autoErrs := AutoscalingFromAnnotations(lookup)
	*errs = append(append(*errs, scaleErrs...), autoErrs...)
}

// revisionConfig is the engine's view of a revision spec with its annotations.
func revisionConfig(spec RevisionSpec, lookup annotationLookup) WorkloadConfig {
	scale, _ := ScaleFromAnnotations(lookup)
	a, _ := AutoscalingFromAnnotations(lookup)
	return WorkloadConfig{
		Timeout:     time.Duration(spec.TimeoutSeconds) * time.Second,
		Concurrency: spec.ContainerConcurrency,
		Scale:       scale,
		Autoscaling: a,
		H2C:         spec.H2C(),
	}
}

// H2C reports whether the revision's container names its port h2c: it serves HTTP/2
// without TLS (gRPC), and everything in front of it must speak h2c to it.
func (spec RevisionSpec) H2C() bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "h2c" {
				return true
			}
		}
	}
	return false
}
