package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/flickdev/flick/internal/autoscaler"
	"github.com/flickdev/flick/pkg/apis"
)

// FileConfig is the server's config file (flick server --config FILE). Its autoscaler section
// takes the keys of Knative's config-autoscaler ConfigMap, as cluster-wide defaults that a
// workload's autoscaling.knative.dev/* annotations override.
type FileConfig struct {
	Autoscaler AutoscalerDefaults `json:"autoscaler"`
	// Limits are the default resource limits of every instance (memory, cpu, pids), for the
	// limits a workload leaves unset.
	Limits map[string]string `json:"limits,omitempty"`
	// Eventing configures brokers.
	Eventing EventingConfig `json:"eventing,omitzero"`
}

// EventingConfig is the eventing section of the config file.
type EventingConfig struct {
	// Retention bounds each broker's log: records older than MaxAge, or past MaxBytes in
	// all, go (whole segments at a time). Unset keeps everything.
	Retention struct {
		MaxAge   string `json:"maxAge,omitempty"`
		MaxBytes string `json:"maxBytes,omitempty"`
	} `json:"retention,omitzero"`
}

// BrokerRetention parses the retention settings.
func (fc FileConfig) BrokerRetention() (maxAge time.Duration, maxBytes int64, err error) {
	r := fc.Eventing.Retention
	if r.MaxAge != "" {
		if maxAge, err = time.ParseDuration(r.MaxAge); err != nil || maxAge <= 0 {
			return 0, 0, fmt.Errorf("eventing.retention.maxAge: %q is not a positive duration (e.g. 168h)", r.MaxAge)
		}
	}
	if r.MaxBytes != "" {
		if maxBytes, err = apis.ParseMemory(r.MaxBytes); err != nil || maxBytes <= 0 {
			return 0, 0, fmt.Errorf("eventing.retention.maxBytes: %q is not a size (e.g. 10Gi)", r.MaxBytes)
		}
	}
	return maxAge, maxBytes, nil
}

// DefaultLimits apply when neither the config file nor a workload sets a limit: enough
// pids for any runtime, few enough that a fork bomb stays inside its sandbox.
var DefaultLimits = map[string]string{"pids": "1024"}

// InstanceLimits are the defaults for instances: the file's, over DefaultLimits.
func (fc FileConfig) InstanceLimits() (apis.ResourceLimits, error) {
	merged := map[string]string{}
	for k, v := range DefaultLimits {
		merged[k] = v
	}
	for k, v := range fc.Limits {
		merged[k] = v
	}
	l, errs := apis.ParseLimits("limits", merged)
	if err := errs.OrNil(); err != nil {
		return l, err
	}
	return l, nil
}

// AutoscalerDefaults are Knative's config-autoscaler keys.
type AutoscalerDefaults struct {
	StableWindow               string   `json:"stable-window,omitempty"`
	PanicWindowPercentage      *float64 `json:"panic-window-percentage,omitempty"`
	PanicThresholdPercentage   *float64 `json:"panic-threshold-percentage,omitempty"`
	ContainerConcurrencyTarget *float64 `json:"container-concurrency-target-default,omitempty"`
	TargetUtilization          *float64 `json:"container-concurrency-target-percentage,omitempty"`
	RPSTarget                  *float64 `json:"requests-per-second-target-default,omitempty"`
	MaxScaleUpRate             *float64 `json:"max-scale-up-rate,omitempty"`
	MaxScaleDownRate           *float64 `json:"max-scale-down-rate,omitempty"`
	ActivationScale            *int     `json:"activation-scale,omitempty"`
	ScaleDownDelay             string   `json:"scale-down-delay,omitempty"`
	RetentionPeriod            string   `json:"scale-to-zero-pod-retention-period,omitempty"`
}

// LoadConfig reads a config file; unknown keys and bad values are errors naming the key.
func LoadConfig(path string) (FileConfig, error) {
	var fc FileConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("config file: %w", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fc, fmt.Errorf("config file %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil && !strings.Contains(err.Error(), "EOF") {
		return fc, fmt.Errorf("config file %s: %s", path, strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := fc.Autoscaler.Apply(autoscaler.Defaults()); err != nil {
		return fc, fmt.Errorf("config file %s: %w", path, err)
	}
	if _, err := fc.InstanceLimits(); err != nil {
		return fc, fmt.Errorf("config file %s: %w", path, err)
	}
	if _, _, err := fc.BrokerRetention(); err != nil {
		return fc, fmt.Errorf("config file %s: %w", path, err)
	}
	return fc, nil
}

// Apply returns the defaults with the file's values laid over them.
func (a AutoscalerDefaults) Apply(c autoscaler.Config) (autoscaler.Config, error) {
	dur := func(key, v string, dst *time.Duration, positive bool) error {
		if v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || (positive && d == 0) {
			return fmt.Errorf("autoscaler.%s: %q is not a valid duration", key, v)
		}
		*dst = d
		return nil
	}
	num := func(key string, v *float64, lo, hi float64, set func(float64)) error {
		if v == nil {
			return nil
		}
		if *v < lo || *v > hi {
			return fmt.Errorf("autoscaler.%s: %g is outside %g..%g", key, *v, lo, hi)
		}
		set(*v)
		return nil
	}
	panicPct := 100 * c.PanicWindow.Seconds() / c.StableWindow.Seconds()
	for _, err := range []error{
		dur("stable-window", a.StableWindow, &c.StableWindow, true),
		dur("scale-down-delay", a.ScaleDownDelay, &c.ScaleDownDelay, false),
		dur("scale-to-zero-pod-retention-period", a.RetentionPeriod, &c.RetentionPeriod, false),
		num("panic-window-percentage", a.PanicWindowPercentage, 1, 100, func(v float64) { panicPct = v }),
		num("panic-threshold-percentage", a.PanicThresholdPercentage, 110, 1000, func(v float64) { c.PanicThreshold = v / 100 }),
		num("container-concurrency-target-default", a.ContainerConcurrencyTarget, 0.01, 1e9, func(v float64) { c.Target = v }),
		num("container-concurrency-target-percentage", a.TargetUtilization, 1, 100, func(v float64) { c.TargetUtilization = v / 100 }),
		num("requests-per-second-target-default", a.RPSTarget, 0.01, 1e9, func(v float64) { c.RPSTarget = v }),
		num("max-scale-up-rate", a.MaxScaleUpRate, 1.0001, 1e9, func(v float64) { c.MaxScaleUpRate = v }),
		num("max-scale-down-rate", a.MaxScaleDownRate, 1.0001, 1e9, func(v float64) { c.MaxScaleDownRate = v }),
	} {
		if err != nil {
			return c, err
		}
	}
	if a.ActivationScale != nil {
		if *a.ActivationScale < 1 {
			return c, fmt.Errorf("autoscaler.activation-scale: must be 1 or more")
		}
		c.ActivationScale = *a.ActivationScale
	}
	c.PanicWindow = time.Duration(float64(c.StableWindow) * panicPct / 100)
	return c, nil
}
