package apis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Object is a typed resource that knows its defaults and rules.
type Object interface {
	Default()
	Validate() error
	Config() WorkloadConfig
}

// NewObject returns an empty typed object of the kind, by its apiVersion and kind: Flick's
// Route (flick.dev/v1) and Knative's (serving.knative.dev/v1) share the name.
func NewObject(tm TypeMeta) (Object, error) {
	kind := tm.Kind
	if kind == "Route" && tm.APIVersion == GroupFlick+"/v1" {
		return &HTTPRoute{}, nil
	}
	switch kind {
	case "Function":
		return &Function{}, nil
	case "Service":
		return &Service{}, nil
	case "Revision":
		return &Revision{}, nil
	case "Configuration":
		return &Configuration{}, nil
	case "Runtime":
		return &Runtime{}, nil
	case "Event":
		return &Event{}, nil
	case "Route":
		return &Route{}, nil
	case "Broker":
		return &Broker{}, nil
	case "Trigger":
		return &Trigger{}, nil
	case "Sequence":
		return &Sequence{}, nil
	case "Parallel":
		return &Parallel{}, nil
	case "PingSource":
		return &PingSource{}, nil
	case "ApiServerSource":
		return &ApiServerSource{}, nil
	case "QueueSource":
		return &QueueSource{}, nil
	case "Secret":
		return &Secret{}, nil
	case "SinkBinding":
		return &SinkBinding{}, nil
	case "ContainerSource":
		return &ContainerSource{}, nil
	case "DomainMapping":
		return &DomainMapping{}, nil
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// Decode turns the envelope into its typed object.
func Decode(r *Resource) (Object, error) {
	obj, err := NewObject(r.TypeMeta)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, obj); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", r.Kind, r.Key(), err)
	}
	return obj, nil
}

// Encode turns a typed object back into its envelope.
func Encode(obj Object) (*Resource, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var r Resource
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Prepare checks an object a user submitted and returns it with defaults applied. Fields the
// schema does not know are errors for Flick's own groups and warnings for Knative's (whose
// manifests may carry fields Flick does not implement yet), never a silent drop.
func Prepare(r *Resource) (*Resource, []string, error) {
	kind, err := LookupTypeMeta(r.TypeMeta)
	if err != nil {
		return nil, nil, err
	}
	obj, err := NewObject(TypeMeta{APIVersion: kind.APIVersion(), Kind: kind.Kind})
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	unknown := unknownFields(r.Spec, reflect.TypeOf(obj).Elem().Field(2).Type, "spec")
	if strings.HasPrefix(r.APIVersion, GroupFlick+"/") && len(unknown) > 0 {
		var errs FieldErrors
		for _, f := range unknown {
			errs.add(f, "unknown field")
		}
		return nil, nil, errs
	}
	for _, f := range unknown {
		warnings = append(warnings, fmt.Sprintf("%s: not supported by Flick yet, ignored", f))
	}
	var spec json.RawMessage = r.Spec
	if len(spec) == 0 {
		spec = json.RawMessage("{}")
	}
	// Decode field by field so a type error names the spec, not the envelope.
	rv := reflect.ValueOf(obj).Elem()
	rv.Field(0).Set(reflect.ValueOf(r.TypeMeta))
	rv.Field(1).Set(reflect.ValueOf(r.Metadata))
	if err := json.Unmarshal(spec, rv.Field(2).Addr().Interface()); err != nil {
		return nil, nil, &FieldError{Field: "spec", Message: jsonErrorMessage(err)}
	}
	obj.Default()
	if err := obj.Validate(); err != nil {
		return nil, nil, err
	}
	out, err := Encode(obj)
	if err != nil {
		return nil, nil, err
	}
	out.Status = nil
	return out, warnings, nil
}

// jsonErrorMessage rewrites encoding/json's type errors to name the field path.
func jsonErrorMessage(err error) string {
	var te *json.UnmarshalTypeError
	if ok := asTypeError(err, &te); ok && te.Field != "" {
		return fmt.Sprintf("field %s: cannot use a JSON %s as %s", te.Field, te.Value, te.Type)
	}
	return err.Error()
}

func asTypeError(err error, target **json.UnmarshalTypeError) bool {
	te, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*target = te
	}
	return ok
}

// unknownFields lists the paths in raw JSON that typ has no field for.
func unknownFields(raw json.RawMessage, typ reflect.Type, path string) []string {
	if len(raw) == 0 {
		return nil
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Struct:
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return nil // a type error, reported by the real decode
		}
		fields := jsonFields(typ)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, unknownFields(m[k], ft, path+"."+k)...)
		}
		return out
	case reflect.Slice:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil
		}
		var out []string
		for i, it := range items {
			out = append(out, unknownFields(it, typ.Elem(), path+"["+strconv.Itoa(i)+"]")...)
		}
		return out
	}
	return nil
}

func jsonFields(typ reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			// Only embedded structs lend their fields; encoding/json names any other
			// embedded type (such as Duration's time.Duration) after the type.
			if f.Anonymous && ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					fields[k] = v
				}
				continue
			}
			name = f.Name
		}
		fields[name] = f.Type
	}
	// Source accepts a string shorthand; its struct fields still apply.
	return fields
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?\r?$`)

// DecodeManifests splits multi-document YAML (or JSON) into resources. Errors name the
// document by its position, counting from 1.
func DecodeManifests(data []byte) ([]*Resource, error) {
	var out []*Resource
	n := 0 // the document's position
	for i, doc := range docSeparator.Split(string(data), -1) {
		// Blank text before a leading "---" is no document: the first one follows it.
		blank := isBlankYAML(doc)
		if i > 0 || !blank {
			n++
		}
		if blank {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		var r Resource
		dec := json.NewDecoder(bytes.NewReader(js))
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("document %d: %s", n, jsonErrorMessage(err))
		}
		if r.Kind == "" || r.APIVersion == "" {
			return nil, fmt.Errorf("document %d: apiVersion and kind are required", n)
		}
		out = append(out, &r)
	}
	return out, nil
}

func isBlankYAML(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}
