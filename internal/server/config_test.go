package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/autoscaler"
)

func TestLoadConfig(t *testing.T) {
	write := func(body string) string {
		p := filepath.Join(t.TempDir(), "flick.yaml")
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	fc, err := LoadConfig(write("autoscaler:\n  stable-window: 30s\n  panic-window-percentage: 20\n  container-concurrency-target-default: 50\n  max-scale-down-rate: 4\n  scale-down-delay: 15s\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := fc.Autoscaler.Apply(autoscaler.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	if c.StableWindow != 30*time.Second || c.PanicWindow != 6*time.Second || c.Target != 50 || c.MaxScaleDownRate != 4 || c.ScaleDownDelay != 15*time.Second || c.TargetUtilization != 0.7 {
		t.Errorf("applied: %+v", c)
	}
	for body, want := range map[string]string{
		"autoscaler:\n  stable-windw: 30s\n":              "stable-windw",
		"autoscaler:\n  stable-window: soon\n":            "autoscaler.stable-window",
		"autoscaler:\n  panic-threshold-percentage: 50\n": "autoscaler.panic-threshold-percentage",
		"autoscaler: [1, 2]\n":                            "flick.yaml",
	} {
		if _, err := LoadConfig(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to name %q", body, err, want)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestConfigLimits(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("limits:\n  memory: 256Mi\n  cpu: 500m\n"), 0o644)
	fc, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	l, err := fc.InstanceLimits()
	if err != nil || l.MemoryBytes != 256<<20 || l.CPUMillis != 500 || l.Pids != 1024 {
		t.Errorf("limits = %+v, %v; want the file's memory and cpu over the default pids", l, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("limits:\n  memory: lots\n"), 0o644)
	if _, err := LoadConfig(bad); err == nil || !strings.Contains(err.Error(), "limits.memory") || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad limit: %v, want an error naming the file and limits.memory", err)
	}
}

func TestConfigBrokerRetention(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("eventing:\n  retention:\n    maxAge: 168h\n    maxBytes: 1Gi\n"), 0o644)
	fc, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	age, size, err := fc.BrokerRetention()
	if err != nil || age != 168*time.Hour || size != 1<<30 {
		t.Errorf("retention = %v, %d, %v", age, size, err)
	}
	for body, key := range map[string]string{
		"eventing:\n  retention:\n    maxAge: forever\n": "eventing.retention.maxAge",
		"eventing:\n  retention:\n    maxBytes: lots\n":  "eventing.retention.maxBytes",
		"eventing:\n  retention:\n    maxItems: 3\n":     "maxItems",
	} {
		bad := filepath.Join(dir, "bad.yaml")
		os.WriteFile(bad, []byte(body), 0o644)
		if _, err := LoadConfig(bad); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: %v, want an error naming %s", body, err, key)
		}
	}
}
