package apis

import (
	"encoding/json"
	"fmt"
)

// GroupFlows is Knative Eventing's group for Sequence and Parallel.
const GroupFlows = "flows.knative.dev"

// Sequence is Knative's: an event goes through its steps one after the other, each step's
// reply being the next step's input, and the last reply goes to spec.reply.
type Sequence struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta     `json:"metadata"`
	Spec     SequenceSpec   `json:"spec"`
	Status   SequenceStatus `json:"status,omitzero"`
}

// SequenceSpec is Knative's. ChannelTemplate is accepted for Knative manifests and not
// used: the hops between steps are Flick's own durable channels.
type SequenceSpec struct {
	// +required
	// +kubebuilder:validation:MinItems=1
	Steps []SequenceStep `json:"steps"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	ChannelTemplate json.RawMessage `json:"channelTemplate,omitempty"`
	Reply           *Destination    `json:"reply,omitempty"`
}

// SequenceStep is a subscriber and its delivery policy.
type SequenceStep struct {
	Destination `json:",inline"`
	Delivery    *DeliverySpec `json:"delivery,omitempty"`
}

// SequenceStatus reports the sequence's address.
type SequenceStatus struct {
	ObservedGeneration int64        `json:"observedGeneration,omitempty"`
	Conditions         []Condition  `json:"conditions,omitempty"`
	Address            *Addressable `json:"address,omitempty"`
}

// Parallel is Knative's: every event goes to each branch whose filter passes it, and each
// branch's reply goes to the branch's reply (or spec.reply).
type Parallel struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta     `json:"metadata"`
	Spec     ParallelSpec   `json:"spec"`
	Status   SequenceStatus `json:"status,omitzero"`
}

// ParallelSpec is Knative's.
type ParallelSpec struct {
	// +required
	// +kubebuilder:validation:MinItems=1
	Branches []ParallelBranch `json:"branches"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	ChannelTemplate json.RawMessage `json:"channelTemplate,omitempty"`
	Reply           *Destination    `json:"reply,omitempty"`
}

// ParallelBranch is Knative's, plus Filters: a branch may filter with the CloudEvents
// Subscriptions API's expressions (as a Trigger's spec.filters) instead of, or before, a
// filter subscriber that answers with the event to pass it on.
type ParallelBranch struct {
	Filter     *Destination  `json:"filter,omitempty"`
	Filters    []FilterSpec  `json:"filters,omitempty"`
	Subscriber Destination   `json:"subscriber"`
	Reply      *Destination  `json:"reply,omitempty"`
	Delivery   *DeliverySpec `json:"delivery,omitempty"`
}

// Default fills in what a sequence leaves out.
func (s *Sequence) Default() {
	if s.Metadata.Namespace == "" {
		s.Metadata.Namespace = "default"
	}
}

// Validate checks the sequence.
func (s *Sequence) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &s.Metadata)
	if len(s.Spec.Steps) == 0 {
		errs.add("spec.steps", "needs at least one step")
	}
	for i := range s.Spec.Steps {
		f := fmt.Sprintf("spec.steps[%d]", i)
		validateDestination(&errs, f, &s.Spec.Steps[i].Destination, true)
		validateDelivery(&errs, f+".delivery", s.Spec.Steps[i].Delivery)
	}
	if s.Spec.Reply != nil {
		validateDestination(&errs, "spec.reply", s.Spec.Reply, true)
	}
	return errs.OrNil()
}

// Config is unused for sequences: they run no instances.
func (s *Sequence) Config() WorkloadConfig { return WorkloadConfig{} }

// Default fills in what a parallel leaves out.
func (p *Parallel) Default() {
	if p.Metadata.Namespace == "" {
		p.Metadata.Namespace = "default"
	}
}

// Validate checks the parallel's shape; its branches' filters' contents (CESQL) are checked
// by the eventing filter package on apply.
func (p *Parallel) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &p.Metadata)
	if len(p.Spec.Branches) == 0 {
		errs.add("spec.branches", "needs at least one branch")
	}
	for i := range p.Spec.Branches {
		b := &p.Spec.Branches[i]
		f := fmt.Sprintf("spec.branches[%d]", i)
		if b.Filter != nil {
			validateDestination(&errs, f+".filter", b.Filter, true)
		}
		validateDestination(&errs, f+".subscriber", &b.Subscriber, true)
		if b.Reply != nil {
			validateDestination(&errs, f+".reply", b.Reply, true)
		}
		validateDelivery(&errs, f+".delivery", b.Delivery)
	}
	if p.Spec.Reply != nil {
		validateDestination(&errs, "spec.reply", p.Spec.Reply, true)
	}
	return errs.OrNil()
}

// Config is unused for parallels.
func (p *Parallel) Config() WorkloadConfig { return WorkloadConfig{} }
