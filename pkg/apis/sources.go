package apis

import (
	"encoding/base64"
	"fmt"
	"regexp"
)

// DefaultPingSchedule is Knative's: every minute.
const DefaultPingSchedule = "* * * * *"

// extensionName is a CloudEvents attribute name.
var extensionName = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

// GroupSources is Knative Eventing's group for event sources.
const GroupSources = "sources.knative.dev"

// PingSource is Knative's: a CloudEvent to a sink on a cron schedule (Fission's
// TimeTrigger).
type PingSource struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta       `json:"metadata"`
	Spec     PingSourceSpec   `json:"spec"`
	Status   PingSourceStatus `json:"status,omitzero"`
}

// PingSourceSpec is Knative's.
type PingSourceSpec struct {
	// Schedule is a cron schedule: five fields, or a descriptor such as @hourly or
	// @every 10s.
	Schedule string `json:"schedule"`
	// Timezone is an IANA time zone name (default UTC).
	Timezone string `json:"timezone,omitempty"`
	// ContentType is the data's media type.
	ContentType string `json:"contentType,omitempty"`
	// Data or DataBase64 is the event's data (at most one of them).
	Data        string       `json:"data,omitempty"`
	DataBase64  string       `json:"dataBase64,omitempty"`
	Sink        Destination  `json:"sink"`
	CEOverrides *CEOverrides `json:"ceOverrides,omitempty"`
}

// CEOverrides are extension attributes a source adds to every event it sends.
type CEOverrides struct {
	Extensions map[string]string `json:"extensions,omitempty"`
}

// PingSourceStatus reports the sink and the schedule's progress.
type PingSourceStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	SinkURI            string      `json:"sinkUri,omitempty"`
	// LastFired is the last tick whose event the sink accepted; NextTick the next one.
	LastFired string `json:"lastFired,omitempty"`
	NextTick  string `json:"nextTick,omitempty"`
	LastError string `json:"lastError,omitempty"`
}

// Default fills in what a ping source leaves out.
func (p *PingSource) Default() {
	if p.Metadata.Namespace == "" {
		p.Metadata.Namespace = "default"
	}
	if p.Spec.Schedule == "" {
		p.Spec.Schedule = DefaultPingSchedule
	}
}

// Validate checks the source's shape; the schedule and time zone are parsed by the server
// on apply.
func (p *PingSource) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &p.Metadata)
	if p.Spec.Data != "" && p.Spec.DataBase64 != "" {
		errs.add("spec.dataBase64", "set data or dataBase64, not both")
	}
	if p.Spec.DataBase64 != "" {
		if _, err := base64.StdEncoding.DecodeString(p.Spec.DataBase64); err != nil {
			errs.add("spec.dataBase64", "is not base64: "+err.Error())
		}
	}
	validateDestination(&errs, "spec.sink", &p.Spec.Sink, true)
	validateOverrides(&errs, "spec.ceOverrides", p.Spec.CEOverrides)
	return errs.OrNil()
}

// EventData is the data the source sends.
func (p *PingSource) EventData() []byte {
	if p.Spec.DataBase64 != "" {
		b, _ := base64.StdEncoding.DecodeString(p.Spec.DataBase64)
		return b
	}
	return []byte(p.Spec.Data)
}

// Config is unused for ping sources: they run no instances.
func (p *PingSource) Config() WorkloadConfig { return WorkloadConfig{} }

// reservedAttributes cannot be overridden: they are the event's identity and shape.
var reservedAttributes = []string{"specversion", "id", "source", "type", "time", "datacontenttype", "data", "data_base64"}

func validateOverrides(errs *FieldErrors, field string, o *CEOverrides) {
	if o == nil {
		return
	}
	for k := range o.Extensions {
		f := fmt.Sprintf("%s.extensions.%s", field, k)
		if !extensionName.MatchString(k) {
			errs.add(f, "extension names are lower-case letters and digits")
		}
		for _, r := range reservedAttributes {
			if k == r {
				errs.add(f, "is a CloudEvents attribute a source sets itself")
			}
		}
	}
}
