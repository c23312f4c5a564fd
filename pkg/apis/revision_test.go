package apis

import (
	"strings"
	"testing"
)

func TestNextRevision(t *testing.T) {
	owner := func(image, name string) RevisionOwner {
		return RevisionOwner{Namespace: "default", Name: "hello", Service: "hello",
			Template:    RevisionTemplate{Metadata: TemplateMeta{Name: name}, Spec: RevisionSpec{Containers: []Container{{Image: image}}}},
			Annotations: map[string]string{AnnotationMinScale: "1"}}
	}
	made := func(o RevisionOwner, existing ...*Revision) *Revision {
		t.Helper()
		r, err := NextRevision(o, existing)
		if err != nil || r == nil {
			t.Fatalf("NextRevision: %v, %v", r, err)
		}
		return r
	}
	first := made(owner("a:1", ""))
	if first.Metadata.Name != "hello-00001" || first.Generation() != 1 || first.Metadata.Labels[LabelService] != "hello" ||
		first.Metadata.Labels[LabelConfiguration] != "hello" || first.Metadata.Annotations[AnnotationMinScale] != "1" || first.Spec.TimeoutSeconds == 0 {
		t.Errorf("first revision %+v", first.Metadata)
	}
	cases := []struct {
		name     string
		owner    RevisionOwner
		existing []*Revision
		want     string // the new revision's name; "" for none
		err      string
	}{
		{"same template", owner("a:1", ""), []*Revision{first}, "", ""},
		{"changed template", owner("a:2", ""), []*Revision{first}, "hello-00002", ""},
		{"changed annotations", func() RevisionOwner { o := owner("a:1", ""); o.Annotations = nil; return o }(), []*Revision{first}, "hello-00002", ""},
		{"named by the template", owner("a:2", "hello-blue"), []*Revision{first}, "hello-blue", ""},
		{"the named revision exists with this template", owner("a:1", "hello-00001"), []*Revision{first}, "", ""},
		{"the named revision exists with another template", owner("a:2", "hello-00001"), []*Revision{first}, "", "already exists with another template"},
		{"invalid template", owner("", ""), nil, "", "revision hello-00001"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NextRevision(tc.owner, tc.existing)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if r != nil {
				got = r.Metadata.Name
			}
			if got != tc.want {
				t.Errorf("made %q, want %q", got, tc.want)
			}
		})
	}
	fn := FunctionSpec{Runtime: RuntimePython, Executor: ExecutorPool, Source: &Source{Archive: "sha256:" + strings.Repeat("0", 64)}}
	f := made(RevisionOwner{Namespace: "default", Name: "greet", Function: true, Template: RevisionTemplate{Spec: RevisionSpec{Function: &fn}}})
	if f.Metadata.Labels[LabelFunction] != "greet" || f.Metadata.Labels[LabelService] != "" {
		t.Errorf("function revision labels %v", f.Metadata.Labels)
	}
}
