package apis

import (
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// GroupEventing is Knative Eventing's API group.
const GroupEventing = "eventing.knative.dev"

// Trigger annotations for delivery.
const (
	// AnnotationDeliveryOrder is "ordered" (one event at a time, in log order) or "unordered"
	// (the default); Knative's Kafka broker's key is accepted too.
	AnnotationDeliveryOrder      = "eventing.flick.dev/delivery-order"
	AnnotationKafkaDeliveryOrder = "kafka.eventing.knative.dev/delivery.order"
	// AnnotationConcurrency is how many events an unordered trigger delivers at once
	// (default 16, at most 1000).
	AnnotationConcurrency = "eventing.flick.dev/concurrency"
)

// DeliveryConcurrency is how many events the trigger delivers at once: 1 when ordered.
func (t *Trigger) DeliveryConcurrency() int {
	a := t.Metadata.Annotations
	order := a[AnnotationDeliveryOrder]
	if order == "" {
		order = a[AnnotationKafkaDeliveryOrder]
	}
	if order == "ordered" {
		return 1
	}
	if n, err := strconv.Atoi(a[AnnotationConcurrency]); err == nil && n >= 1 && n <= 1000 {
		return n
	}
	return 16
}

// Broker is Knative's broker: an address events are sent to, kept in a durable log, and
// delivered to the subscribers of its triggers.
type Broker struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta   `json:"metadata"`
	Spec     BrokerSpec   `json:"spec"`
	Status   BrokerStatus `json:"status,omitzero"`
}

// BrokerSpec is Knative's. Config chooses the store of the broker's events: kind JetStream
// (the server's --jetstream NATS server) or EventLog (the embedded log); other references,
// such as Knative's ConfigMaps, take the server's default.
type BrokerSpec struct {
	Config *KReference `json:"config,omitempty"`
	// Delivery is the default for triggers that set none.
	Delivery *DeliverySpec `json:"delivery,omitempty"`
}

// BrokerStatus reports the broker's address, and in Annotations what keeps its events.
type BrokerStatus struct {
	ObservedGeneration int64             `json:"observedGeneration,omitempty"`
	Conditions         []Condition       `json:"conditions,omitempty"`
	Address            *Addressable      `json:"address,omitempty"`
	Annotations        map[string]string `json:"annotations,omitempty"`
}

// Addressable is where to send events.
type Addressable struct {
	URL string `json:"url"`
}

// Trigger subscribes a destination to the events of a broker that pass its filters.
type Trigger struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta    `json:"metadata"`
	Spec     TriggerSpec   `json:"spec"`
	Status   TriggerStatus `json:"status,omitzero"`
}

// TriggerSpec is Knative's.
type TriggerSpec struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	Broker string `json:"broker"`
	// Filter is the legacy exact-match filter on attributes.
	Filter *TriggerFilter `json:"filter,omitempty"`
	// Filters are the CloudEvents Subscriptions API filters (exact, prefix, suffix, all, any,
	// not, cesql), ANDed.
	Filters []FilterSpec `json:"filters,omitempty"`
	// +required
	Subscriber Destination   `json:"subscriber"`
	Delivery   *DeliverySpec `json:"delivery,omitempty"`
}

// TriggerFilter is Knative's spec.filter.
type TriggerFilter struct {
	Attributes map[string]string `json:"attributes,omitempty"`
}

// FilterSpec is one entry of spec.filters.
type FilterSpec struct {
	Exact  map[string]string `json:"exact,omitempty"`
	Prefix map[string]string `json:"prefix,omitempty"`
	Suffix map[string]string `json:"suffix,omitempty"`
	// All, Any and Not nest filters: a CRD schema cannot recurse, so the API server keeps
	// them as written and Flick validates them.
	// +kubebuilder:validation:items:Type=object
	// +kubebuilder:validation:items:XPreserveUnknownFields
	All []FilterSpec `json:"all,omitempty"`
	// +kubebuilder:validation:items:Type=object
	// +kubebuilder:validation:items:XPreserveUnknownFields
	Any []FilterSpec `json:"any,omitempty"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Not   *FilterSpec `json:"not,omitempty"`
	CESQL string      `json:"cesql,omitempty"`
}

// TriggerStatus reports the resolved subscriber.
type TriggerStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	SubscriberURI      string      `json:"subscriberUri,omitempty"`
}

// Destination is Knative's duck type: a reference to an addressable object, a URI, or both
// (then the URI is resolved against the object's address).
//
// +kubebuilder:validation:XValidation:rule="has(self.ref) || has(self.uri)",message="a destination needs a ref or a uri"
type Destination struct {
	Ref *KReference `json:"ref,omitempty"`
	URI string      `json:"uri,omitempty"`
}

// KReference names an object.
type KReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	// +required
	Kind string `json:"kind"`
	// +required
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// DeliverySpec is Knative's: retries with backoff, a timeout per attempt, and where events go
// when every attempt failed.
type DeliverySpec struct {
	DeadLetterSink *Destination `json:"deadLetterSink,omitempty"`
	Retry          *int32       `json:"retry,omitempty"`
	// +kubebuilder:validation:Enum=linear;exponential
	BackoffPolicy string `json:"backoffPolicy,omitempty"`
	BackoffDelay  string `json:"backoffDelay,omitempty"` // ISO 8601 duration
	Timeout       string `json:"timeout,omitempty"`      // ISO 8601 duration
}

// Default fills in what a broker leaves out.
func (b *Broker) Default() {
	if b.Metadata.Namespace == "" {
		b.Metadata.Namespace = "default"
	}
}

// Validate checks the broker.
func (b *Broker) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &b.Metadata)
	validateDelivery(&errs, "spec.delivery", b.Spec.Delivery)
	return errs.OrNil()
}

// Config is unused for brokers: they run no instances.
func (b *Broker) Config() WorkloadConfig { return WorkloadConfig{} }

// Default fills in what a trigger leaves out.
func (t *Trigger) Default() {
	if t.Metadata.Namespace == "" {
		t.Metadata.Namespace = "default"
	}
	if t.Spec.Broker == "" {
		t.Spec.Broker = "default" // Knative's default broker name
	}
}

// Validate checks the trigger's shape; the filters' contents (CESQL) are checked by the
// eventing filter package, which the server runs on apply as well.
func (t *Trigger) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &t.Metadata)
	if !dnsLabel.MatchString(t.Spec.Broker) {
		errs.add("spec.broker", quote(t.Spec.Broker)+" is not a broker name")
	}
	validateDestination(&errs, "spec.subscriber", &t.Spec.Subscriber, true)
	validateDelivery(&errs, "spec.delivery", t.Spec.Delivery)
	for _, k := range []string{AnnotationDeliveryOrder, AnnotationKafkaDeliveryOrder} {
		if v, ok := t.Metadata.Annotations[k]; ok && v != "ordered" && v != "unordered" {
			errs.add("metadata.annotations."+k, quote(v)+" is not an order: use ordered or unordered")
		}
	}
	if v, ok := t.Metadata.Annotations[AnnotationConcurrency]; ok {
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 1000 {
			errs.add("metadata.annotations."+AnnotationConcurrency, quote(v)+" is not a number from 1 to 1000")
		}
	}
	return errs.OrNil()
}

// Config is unused for triggers.
func (t *Trigger) Config() WorkloadConfig { return WorkloadConfig{} }

// DestinationKinds are the kinds a Destination's ref may name.
var DestinationKinds = []string{"Function", "Service", "Broker", "Sequence", "Parallel"}

func validateDestination(errs *FieldErrors, field string, d *Destination, required bool) {
	if d.Ref == nil && d.URI == "" {
		if required {
			errs.add(field, "needs a ref (a Function, Service, Broker, Sequence or Parallel) or a uri")
		}
		return
	}
	if d.Ref != nil {
		known := false
		for _, k := range DestinationKinds {
			known = known || d.Ref.Kind == k
		}
		if !known {
			errs.add(field+".ref.kind", quote(d.Ref.Kind)+" is not addressable here (Function, Service, Broker, Sequence or Parallel)")
		}
		if !dnsLabel.MatchString(d.Ref.Name) {
			errs.add(field+".ref.name", quote(d.Ref.Name)+" is not a name")
		}
	}
	if d.URI != "" {
		u, err := url.Parse(d.URI)
		switch {
		case err != nil:
			errs.add(field+".uri", quote(d.URI)+" is not a URI")
		case d.Ref == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == ""):
			errs.add(field+".uri", quote(d.URI)+" must be an absolute http(s) URL when there is no ref")
		case d.Ref != nil && u.IsAbs():
			errs.add(field+".uri", "must be a path relative to the ref's address when a ref is set")
		}
	}
}

func validateDelivery(errs *FieldErrors, field string, d *DeliverySpec) {
	if d == nil {
		return
	}
	if d.DeadLetterSink != nil {
		validateDestination(errs, field+".deadLetterSink", d.DeadLetterSink, true)
	}
	if d.Retry != nil && (*d.Retry < 0 || *d.Retry > 100) {
		errs.add(field+".retry", "must be between 0 and 100")
	}
	switch d.BackoffPolicy {
	case "", "linear", "exponential":
	default:
		errs.add(field+".backoffPolicy", quote(d.BackoffPolicy)+" is not a policy: use linear or exponential")
	}
	if d.BackoffDelay != "" {
		if _, err := ParseISODuration(d.BackoffDelay); err != nil {
			errs.add(field+".backoffDelay", err.Error())
		}
	}
	if d.Timeout != "" {
		if t, err := ParseISODuration(d.Timeout); err != nil {
			errs.add(field+".timeout", err.Error())
		} else if t <= 0 {
			errs.add(field+".timeout", "must be more than zero")
		}
	}
}

// isoDuration is ISO 8601's PnDTnHnMnS (weeks, months and years are not durations Knative
// accepts for delivery).
var isoDuration = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// ParseISODuration parses an ISO 8601 duration such as PT0.2S, PT1M30S or P1DT2H.
func ParseISODuration(s string) (time.Duration, error) {
	m := isoDuration.FindStringSubmatch(s)
	if m == nil || s == "P" || s == "PT" || s[len(s)-1] == 'T' {
		return 0, errors.New(quote(s) + " is not an ISO 8601 duration (examples: PT0.2S, PT10S, PT1M)")
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
		if m[i+1] != "" {
			n, _ := strconv.ParseInt(m[i+1], 10, 64)
			d += time.Duration(n) * unit
		}
	}
	if m[4] != "" {
		f, _ := strconv.ParseFloat(m[4], 64)
		d += time.Duration(f * float64(time.Second))
	}
	return d, nil
}
