package apis

import "time"

// Event is a record of something that happened to an object (a rollout step, a rollback),
// like Kubernetes' Events. The server writes them; users read them with flick get events.
type Event struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     EventSpec  `json:"spec"`
}

// EventSpec says what happened.
type EventSpec struct {
	InvolvedObject ObjectReference `json:"involvedObject"`
	Type           string          `json:"type"` // Normal or Warning
	Reason         string          `json:"reason"`
	Message        string          `json:"message"`
	Time           time.Time       `json:"time"`
}

// ObjectReference names an object.
type ObjectReference struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Default fills in what the server left out.
func (e *Event) Default() {
	if e.Metadata.Namespace == "" {
		e.Metadata.Namespace = "default"
	}
	if e.Spec.Type == "" {
		e.Spec.Type = EventNormal
	}
}

// Validate checks the event.
func (e *Event) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &e.Metadata)
	if e.Spec.Reason == "" {
		errs.add("spec.reason", "is required")
	}
	return errs.OrNil()
}

// Config is unused for events.
func (e *Event) Config() WorkloadConfig { return WorkloadConfig{} }
