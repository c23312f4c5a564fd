package apis

import (
	"errors"
	"strconv"
	"strings"
)

// Resources are Kubernetes' container resources. Limits are enforced by the sandbox:
// memory (bytes: 128Mi, 1Gi), cpu (cores: 500m, 1, 1.5) and pids (a count, a Flick
// extension). Requests are accepted for compatibility and not used on one machine.
type Resources struct {
	Limits   map[string]string `json:"limits,omitempty"`
	Requests map[string]string `json:"requests,omitempty"`
}

// ResourceLimits are parsed limits; zero means unset.
type ResourceLimits struct {
	MemoryBytes int64
	CPUMillis   int64
	Pids        int64
}

// ParseLimits parses a limits map; errors name the key under prefix.
func ParseLimits(prefix string, limits map[string]string) (ResourceLimits, FieldErrors) {
	var out ResourceLimits
	var errs FieldErrors
	for k, v := range limits {
		var err error
		switch k {
		case "memory":
			out.MemoryBytes, err = ParseMemory(v)
			if err == nil && out.MemoryBytes < 4<<20 {
				err = errors.New("is below 4Mi: no runtime starts in that")
			}
		case "cpu":
			out.CPUMillis, err = ParseCPU(v)
		case "pids":
			out.Pids, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || out.Pids < 8 {
				err = errors.New(quote(v) + " is not a process count of 8 or more")
			}
		case "ephemeral-storage", "nvidia.com/gpu":
			err = errors.New("is not supported on this platform")
		default:
			err = errors.New("unknown limit (memory, cpu, pids)")
		}
		if err != nil {
			errs.add(prefix+"."+k, err.Error())
		}
	}
	return out, errs
}

func validateResources(errs *FieldErrors, prefix string, r *Resources) {
	if r == nil {
		return
	}
	_, lerrs := ParseLimits(prefix+".limits", r.Limits)
	*errs = append(*errs, lerrs...)
	for k, v := range r.Requests {
		var err error
		switch k {
		case "memory":
			_, err = ParseMemory(v)
		case "cpu":
			_, err = ParseCPU(v)
		}
		if err != nil {
			errs.add(prefix+".requests."+k, err.Error())
		}
	}
}

// ParseMemory turns a Kubernetes quantity into bytes: 128Mi, 1Gi, 500M, 1048576.
func ParseMemory(s string) (int64, error) { return parseQuantity(s, false) }

// ParseCPU turns a CPU quantity into thousandths of a core: 500m, 1, 1.5.
func ParseCPU(s string) (int64, error) { return parseQuantity(s, true) }

func parseQuantity(s string, cpu bool) (int64, error) {
	s = strings.TrimSpace(s)
	example := "128Mi, 1Gi, 500M"
	if cpu {
		example = "500m, 1, 2"
	}
	suffixes := []struct {
		suffix string
		mult   float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"m", 1e-3},
	}
	num, mult := s, 1.0
	for _, sf := range suffixes {
		if strings.HasSuffix(s, sf.suffix) {
			num, mult = strings.TrimSuffix(s, sf.suffix), sf.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || s == "" {
		return 0, errors.New(quote(s) + " is not a quantity (examples: " + example + ")")
	}
	v *= mult
	if cpu {
		v *= 1000
	}
	if v > 0 && v < 1 {
		v = 1
	}
	return int64(v), nil
}
