package apis

import "time"

// AnnotationRollout carries a requested rollout (RolloutSpec as JSON) on a Service; the CLI's
// `flick service rollout` sets it.
const AnnotationRollout = "flick.dev/rollout"

// AnnotationRolloutDuration is Knative's gradual rollout of a new latest revision.
const AnnotationRolloutDuration = "serving.knative.dev/rollout-duration"

// RolloutSpec asks for traffic to move to a revision step by step, watching it.
type RolloutSpec struct {
	// ID tells one request from the next, so the same rollout is not started twice.
	ID    string `json:"id"`
	To    string `json:"to"`
	Steps []int  `json:"steps"`
	// Interval is how long each step lasts before the next.
	Interval Duration `json:"interval"`
	// MaxErrorRate (0..1) and MaxP99 roll back when the target breaches them; zero: unchecked.
	MaxErrorRate float64  `json:"maxErrorRate,omitempty"`
	MaxP99       Duration `json:"maxP99,omitzero"`
	// MinRequests is how many requests a step needs before its figures count (default 5).
	MinRequests int `json:"minRequests,omitempty"`
}

// Rollout phases.
const (
	RolloutProgressing = "Progressing"
	RolloutSucceeded   = "Succeeded"
	RolloutRolledBack  = "RolledBack"
)

// RolloutStatus is a rollout's progress, kept in the Service's status so a restart resumes it.
type RolloutStatus struct {
	ID      string         `json:"id"`
	To      string         `json:"to"`
	From    []TrafficSplit `json:"from"`
	Step    int            `json:"step"`
	Percent int            `json:"percent"`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:Schemaless
	StepStarted time.Time `json:"stepStarted"`
	Phase       string    `json:"phase"`
	Reason      string    `json:"reason,omitempty"`
	// Automatic marks a rollout started by the rollout-duration annotation.
	Automatic bool           `json:"automatic,omitempty"`
	History   []RolloutEvent `json:"history,omitempty"`
}

// TrafficSplit is a revision's share of traffic.
type TrafficSplit struct {
	RevisionName string `json:"revisionName"`
	Percent      int    `json:"percent"`
}

// RolloutEvent is one line of a rollout's history.
type RolloutEvent struct {
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:Schemaless
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}
