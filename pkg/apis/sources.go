package apis

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
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
//
// +kubebuilder:validation:XValidation:rule="!(has(self.data) && has(self.dataBase64))",message="spec.data and spec.dataBase64: set at most one"
type PingSourceSpec struct {
	// Schedule is a cron schedule: five fields, or a descriptor such as @hourly or
	// @every 10s.
	// +required
	// +kubebuilder:validation:MinLength=1
	Schedule string `json:"schedule"`
	// Timezone is an IANA time zone name (default UTC).
	Timezone string `json:"timezone,omitempty"`
	// ContentType is the data's media type.
	ContentType string `json:"contentType,omitempty"`
	// Data or DataBase64 is the event's data (at most one of them).
	Data       string `json:"data,omitempty"`
	DataBase64 string `json:"dataBase64,omitempty"`
	// +required
	Sink        Destination  `json:"sink"`
	CEOverrides *CEOverrides `json:"ceOverrides,omitempty"`
}

// CEOverrides are extension attributes a source adds to every event it sends.
type CEOverrides struct {
	Extensions map[string]string `json:"extensions,omitempty"`
}

// ExtensionsOrNil is the extensions of o, which may be nil.
func (o *CEOverrides) ExtensionsOrNil() map[string]string {
	if o == nil {
		return nil
	}
	return o.Extensions
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

// QueueTypes are the queues a QueueSource consumes.
var QueueTypes = []string{"nats", "redis", "mqtt", "rabbitmq", "kafka"}

// QueueSource consumes a message queue's topic into a sink (Fission's MessageQueueTrigger):
// each message is delivered as a CloudEvent and acknowledged once the sink accepted it.
type QueueSource struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta        `json:"metadata"`
	Spec     QueueSourceSpec   `json:"spec"`
	Status   QueueSourceStatus `json:"status,omitzero"`
}

// QueueSourceSpec says which queue, which topic, and where its messages go.
type QueueSourceSpec struct {
	// Type is the queue: nats (JetStream), redis (Streams), mqtt, rabbitmq or kafka.
	// +required
	// +kubebuilder:validation:Enum=nats;redis;mqtt;rabbitmq;kafka
	Type string `json:"type"`
	// URL is the queue server, e.g. nats://127.0.0.1:4222 or kafka://host:9092,host:9092.
	// +required
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// Topic is the subject, stream key, MQTT topic, queue or Kafka topic consumed.
	// +required
	// +kubebuilder:validation:MinLength=1
	Topic string `json:"topic"`
	// ResponseTopic, when set, receives the body of every answer of the sink.
	ResponseTopic string `json:"responseTopic,omitempty"`
	// ErrorTopic, when set, receives the messages the sink still refused after the last
	// retry, with the error in headers.
	ErrorTopic string `json:"errorTopic,omitempty"`
	// MaxRetries is how many times a refused message is delivered again (default 3).
	MaxRetries *int32 `json:"maxRetries,omitempty"`
	// Concurrency is how many messages are delivered at once (default 1: in order).
	Concurrency int32 `json:"concurrency,omitempty"`
	// Group is the durable consumer's name (default flick-{namespace}-{name}).
	Group string `json:"group,omitempty"`
	// LagThreshold is the backlog one instance of the sink is expected to work through
	// (KEDA's name; default 10): a function or service sink is kept at no fewer than
	// lag / lagThreshold instances, at most concurrency.
	LagThreshold int32 `json:"lagThreshold,omitempty"`
	// ContentType is the data's media type for messages that do not say.
	ContentType string `json:"contentType,omitempty"`
	// Secret names a Secret of the namespace whose username and password keys authenticate.
	Secret string `json:"secret,omitempty"`
	// +required
	Sink Destination `json:"sink"`
}

// QueueSourceStatus reports the connection and progress.
type QueueSourceStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	SinkURI            string      `json:"sinkUri,omitempty"`
	Connected          bool        `json:"connected"`
	// Lag is the topic's messages not acknowledged yet (-1: the queue cannot tell).
	Lag       int64  `json:"lag"`
	Delivered int64  `json:"delivered,omitempty"`
	Failed    int64  `json:"failed,omitempty"`
	LastError string `json:"lastError,omitempty"`
}

// SetProgress copies a running queue source's progress into its status and returns its Ready
// condition: true while it is connected to its queue.
func (st *QueueSourceStatus) SetProgress(connected bool, lag, delivered, failed int64, lastError string) Condition {
	st.Connected, st.Lag, st.Delivered, st.Failed, st.LastError = connected, lag, delivered, failed, lastError
	if !connected {
		return Condition{Type: ConditionReady, Status: ConditionFalse, Reason: "NotConnected", Message: lastError}
	}
	return Condition{Type: ConditionReady, Status: ConditionTrue, Reason: "Connected"}
}

// Queue source defaults: retries of a refused message, and backlog per sink instance.
const (
	DefaultQueueRetries = 3
	DefaultLagThreshold = 10
)

// Default fills in what a queue source leaves out.
func (q *QueueSource) Default() {
	if q.Metadata.Namespace == "" {
		q.Metadata.Namespace = "default"
	}
	if q.Spec.MaxRetries == nil {
		n := int32(DefaultQueueRetries)
		q.Spec.MaxRetries = &n
	}
	if q.Spec.Concurrency == 0 {
		q.Spec.Concurrency = 1
	}
	if q.Spec.LagThreshold == 0 {
		q.Spec.LagThreshold = DefaultLagThreshold
	}
	if q.Spec.Group == "" {
		q.Spec.Group = "flick-" + q.Metadata.Namespace + "-" + q.Metadata.Name
	}
}

// Validate checks the queue source.
func (q *QueueSource) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &q.Metadata)
	known := false
	for _, t := range QueueTypes {
		known = known || q.Spec.Type == t
	}
	if !known {
		errs.add("spec.type", quote(q.Spec.Type)+" is not a queue: use nats, redis, mqtt, rabbitmq or kafka")
	}
	if q.Spec.URL == "" {
		errs.add("spec.url", "is required (e.g. nats://127.0.0.1:4222)")
	} else if u, err := url.Parse(q.Spec.URL); err != nil || u.Scheme == "" || u.Host == "" {
		errs.add("spec.url", quote(q.Spec.URL)+" is not a URL with a scheme and a host")
	} else if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			errs.add("spec.url", "holds a password: put credentials in a Secret and name it in spec.secret")
		}
	}
	if q.Spec.Topic == "" {
		errs.add("spec.topic", "is required")
	}
	if q.Spec.MaxRetries != nil && (*q.Spec.MaxRetries < 0 || *q.Spec.MaxRetries > 100) {
		errs.add("spec.maxRetries", "must be between 0 and 100")
	}
	if q.Spec.Concurrency < 1 || q.Spec.Concurrency > 1000 {
		errs.add("spec.concurrency", "must be between 1 and 1000")
	}
	if q.Spec.LagThreshold < 1 {
		errs.add("spec.lagThreshold", "must be at least 1")
	}
	if q.Spec.Secret != "" && !dnsLabel.MatchString(q.Spec.Secret) {
		errs.add("spec.secret", quote(q.Spec.Secret)+" is not a name")
	}
	validateDestination(&errs, "spec.sink", &q.Spec.Sink, true)
	return errs.OrNil()
}

// Config is unused for queue sources: they run no instances.
func (q *QueueSource) Config() WorkloadConfig { return WorkloadConfig{} }

// Secret holds credentials that sources use: the API and the CLI never show its values.
type Secret struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     SecretSpec `json:"spec"`
	Status   struct{}   `json:"status,omitzero"`
}

// SecretSpec is Kubernetes' Secret data: Data values in base64, StringData as they are
// (StringData wins for a key in both).
type SecretSpec struct {
	Data       map[string]string `json:"data,omitempty"`
	StringData map[string]string `json:"stringData,omitempty"`
}

// Default fills in what a secret leaves out.
func (s *Secret) Default() {
	if s.Metadata.Namespace == "" {
		s.Metadata.Namespace = "default"
	}
}

// Validate checks the secret's keys and base64 values, never quoting a value.
func (s *Secret) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &s.Metadata)
	for k, v := range s.Spec.Data {
		if _, err := base64.StdEncoding.DecodeString(v); err != nil {
			errs.add("spec.data."+k, "is not base64")
		}
	}
	return errs.OrNil()
}

// Config is unused for secrets.
func (s *Secret) Config() WorkloadConfig { return WorkloadConfig{} }

// Value is a key's value.
func (s *Secret) Value(key string) (string, bool) {
	if v, ok := s.Spec.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Spec.Data[key]
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(v)
	return string(b), err == nil
}

// Redacted is the secret as the API shows it: its keys, every value replaced.
func (s *Secret) Redacted() {
	for _, m := range []map[string]string{s.Spec.Data, s.Spec.StringData} {
		for k := range m {
			m[k] = "(redacted)"
		}
	}
}

// SinkBinding is Knative's: the Functions, Services and Configurations its subject names get
// K_SINK (the sink's URL) and K_CE_OVERRIDES in their environment, so their own code can send
// events, through a new revision.
type SinkBinding struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta        `json:"metadata"`
	Spec     SinkBindingSpec   `json:"spec"`
	Status   SinkBindingStatus `json:"status,omitzero"`
}

// SinkBindingSpec is Knative's.
type SinkBindingSpec struct {
	Subject     BindingSubject `json:"subject"`
	Sink        Destination    `json:"sink"`
	CEOverrides *CEOverrides   `json:"ceOverrides,omitempty"`
}

// BindingSubject names what is bound: a kind and a name, or a kind and a label selector.
//
// +kubebuilder:validation:XValidation:rule="has(self.name) != has(self.selector)",message="needs a name or a selector, not both"
type BindingSubject struct {
	APIVersion string `json:"apiVersion,omitempty"`
	// +required
	// +kubebuilder:validation:Enum=Function;Service;Configuration
	Kind     string         `json:"kind"`
	Name     string         `json:"name,omitempty"`
	Selector *LabelSelector `json:"selector,omitempty"`
}

// LabelSelector matches labels exactly.
type LabelSelector struct {
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// SinkBindingStatus reports the sink.
type SinkBindingStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	SinkURI            string      `json:"sinkUri,omitempty"`
}

// BindableKinds are the kinds a SinkBinding's subject may name.
var BindableKinds = []string{"Function", "Service", "Configuration"}

// Default fills in what a binding leaves out.
func (b *SinkBinding) Default() {
	if b.Metadata.Namespace == "" {
		b.Metadata.Namespace = "default"
	}
}

// Validate checks the binding.
func (b *SinkBinding) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &b.Metadata)
	known := false
	for _, k := range BindableKinds {
		known = known || b.Spec.Subject.Kind == k
	}
	if !known {
		errs.add("spec.subject.kind", quote(b.Spec.Subject.Kind)+" cannot be bound: use Function, Service or Configuration")
	}
	switch {
	case b.Spec.Subject.Name == "" && b.Spec.Subject.Selector == nil:
		errs.add("spec.subject", "needs a name or a selector")
	case b.Spec.Subject.Name != "" && b.Spec.Subject.Selector != nil:
		errs.add("spec.subject", "takes a name or a selector, not both")
	case b.Spec.Subject.Name != "" && !dnsLabel.MatchString(b.Spec.Subject.Name):
		errs.add("spec.subject.name", quote(b.Spec.Subject.Name)+" is not a name")
	}
	validateDestination(&errs, "spec.sink", &b.Spec.Sink, true)
	validateOverrides(&errs, "spec.ceOverrides", b.Spec.CEOverrides)
	return errs.OrNil()
}

// Config is unused for bindings.
func (b *SinkBinding) Config() WorkloadConfig { return WorkloadConfig{} }

// Binds says whether the binding's subject is the object of that kind, name and labels.
func (b *SinkBinding) Binds(kind, name string, labels map[string]string) bool {
	s := b.Spec.Subject
	if s.Kind != kind {
		return false
	}
	if s.Name != "" {
		return s.Name == name
	}
	for k, v := range s.Selector.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Environment variables a SinkBinding gives its subjects (Knative's names).
const (
	EnvSink        = "K_SINK"
	EnvCEOverrides = "K_CE_OVERRIDES"
)

// BindingEnv is what the bindings that bind a subject (kind, name, labels) put in its
// environment: K_SINK, and K_CE_OVERRIDES when set. Bindings apply in order and the last one
// wins; one whose sink does not resolve adds nothing.
func BindingEnv(bindings []*SinkBinding, kind, name string, labels map[string]string, sinkURL func(Destination) (string, error)) []EnvVar {
	var env []EnvVar
	for _, b := range bindings {
		if !b.Binds(kind, name, labels) {
			continue
		}
		uri, err := sinkURL(b.Spec.Sink)
		if err != nil {
			continue
		}
		env = WithSinkEnv(env, uri, b.Spec.CEOverrides)
	}
	return env
}

// WithSinkEnv is env with K_SINK set to sink and, when o is set, K_CE_OVERRIDES to o as
// JSON. env itself is not changed.
func WithSinkEnv(env []EnvVar, sink string, o *CEOverrides) []EnvVar {
	env = SetEnv(append([]EnvVar(nil), env...), EnvSink, sink)
	if o != nil {
		js, _ := json.Marshal(o)
		env = SetEnv(env, EnvCEOverrides, string(js))
	}
	return env
}

// WithEnv is a copy of t (deep: t is not changed) with env set in its function's environment,
// or its first container's.
func (t RevisionTemplate) WithEnv(env []EnvVar) RevisionTemplate {
	if len(env) == 0 {
		return t
	}
	var c RevisionTemplate
	raw, _ := json.Marshal(t)
	if json.Unmarshal(raw, &c) != nil {
		return t
	}
	switch {
	case c.Spec.Function != nil:
		for _, e := range env {
			c.Spec.Function.Env = SetEnv(c.Spec.Function.Env, e.Name, e.Value)
		}
	case len(c.Spec.Containers) > 0:
		for _, e := range env {
			c.Spec.Containers[0].Env = SetEnv(c.Spec.Containers[0].Env, e.Name, e.Value)
		}
	}
	return c
}

// SetEnv sets name to value in env, in place when it is there, appended when not.
func SetEnv(env []EnvVar, name, value string) []EnvVar {
	for i := range env {
		if env[i].Name == name {
			env[i].Value = value
			return env
		}
	}
	return append(env, EnvVar{Name: name, Value: value})
}

// ContainerSource is Knative's: a long-running process of the user's that sends events to
// K_SINK. In the embedded mode its container's command runs on the host (or its image
// runs), in a sandbox like any instance, restarted when it exits.
type ContainerSource struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta            `json:"metadata"`
	Spec     ContainerSourceSpec   `json:"spec"`
	Status   ContainerSourceStatus `json:"status,omitzero"`
}

// ContainerSourceSpec is Knative's: a pod template (its first container runs) and a sink.
type ContainerSourceSpec struct {
	Template    PodTemplate  `json:"template"`
	Sink        Destination  `json:"sink"`
	CEOverrides *CEOverrides `json:"ceOverrides,omitempty"`
}

// PodTemplate is the part of Kubernetes' PodTemplateSpec a container source uses.
type PodTemplate struct {
	Metadata ObjectMeta `json:"metadata,omitzero"`
	Spec     PodSpec    `json:"spec"`
}

// PodSpec is the part of Kubernetes' PodSpec a container source uses.
type PodSpec struct {
	Containers []Container `json:"containers"`
}

// ContainerSourceStatus reports the process.
type ContainerSourceStatus struct {
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	SinkURI            string      `json:"sinkUri,omitempty"`
	PID                int         `json:"pid,omitempty"`
	Restarts           int         `json:"restarts,omitempty"`
	LastExit           string      `json:"lastExit,omitempty"`
}

// Default fills in what a container source leaves out.
func (c *ContainerSource) Default() {
	if c.Metadata.Namespace == "" {
		c.Metadata.Namespace = "default"
	}
}

// Validate checks the container source.
func (c *ContainerSource) Validate() error {
	var errs FieldErrors
	validateMeta(&errs, &c.Metadata)
	cs := c.Spec.Template.Spec.Containers
	switch {
	case len(cs) == 0:
		errs.add("spec.template.spec.containers", "needs a container")
	case len(cs) > 1:
		errs.add("spec.template.spec.containers", "takes one container")
	case cs[0].Image == "" && len(cs[0].Command) == 0:
		errs.add("spec.template.spec.containers[0]", "needs an image or a command")
	}
	validateDestination(&errs, "spec.sink", &c.Spec.Sink, true)
	validateOverrides(&errs, "spec.ceOverrides", c.Spec.CEOverrides)
	return errs.OrNil()
}

// Config is unused for container sources: their process is not a workload.
func (c *ContainerSource) Config() WorkloadConfig { return WorkloadConfig{} }
