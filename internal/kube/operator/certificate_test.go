package operator

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestCertificateFor(t *testing.T) {
	owner := newUnstructured(gvk("serving.knative.dev", "Service"))
	owner.SetName("hello")
	owner.SetNamespace("team")
	owner.SetUID("u1")
	c := CertificateFor(owner, "ksvc", Issuer{Name: "letsencrypt", Kind: "ClusterIssuer"}, "hello.team.example.com", "next-hello.team.example.com")
	if c.GetName() != "ksvc-hello" || c.GetNamespace() != "team" || c.GetAPIVersion() != "cert-manager.io/v1" {
		t.Errorf("certificate %s/%s %s", c.GetNamespace(), c.GetName(), c.GetAPIVersion())
	}
	tests := []struct {
		path []string
		want any
	}{
		{[]string{"spec", "secretName"}, "ksvc-hello-tls"},
		{[]string{"spec", "issuerRef", "name"}, "letsencrypt"},
		{[]string{"spec", "issuerRef", "kind"}, "ClusterIssuer"},
		{[]string{"spec", "issuerRef", "group"}, "cert-manager.io"},
		{[]string{"spec", "secretTemplate", "labels", LabelCertificate}, "true"},
	}
	for _, tt := range tests {
		got, _, _ := unstructured.NestedFieldNoCopy(c.Object, tt.path...)
		if got != tt.want {
			t.Errorf("%v = %v, want %v", tt.path, got, tt.want)
		}
	}
	names, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "dnsNames")
	if strings.Join(names, ",") != "hello.team.example.com,next-hello.team.example.com" {
		t.Errorf("dnsNames %v", names)
	}
	refs := c.GetOwnerReferences()
	if len(refs) != 1 || refs[0].UID != "u1" || refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("owner references %+v", refs)
	}
}

func TestExternalHosts(t *testing.T) {
	owner := func(traffic ...map[string]any) *unstructured.Unstructured {
		u := newUnstructured(gvk("serving.knative.dev", "Service"))
		u.SetName("hello")
		u.SetNamespace("team")
		var ts []any
		for _, tr := range traffic {
			ts = append(ts, tr)
		}
		if ts != nil {
			u.Object["status"] = map[string]any{"traffic": ts}
		}
		return u
	}
	cases := []struct {
		name  string
		owner *unstructured.Unstructured
		want  []string
	}{
		{"no traffic in the status yet", owner(), []string{"hello.team.example.com"}},
		{"untagged targets", owner(map[string]any{"revisionName": "hello-00001", "percent": int64(100)}), []string{"hello.team.example.com"}},
		{"tags, sorted, once each", owner(
			map[string]any{"revisionName": "hello-00002", "tag": "next", "percent": int64(10)},
			map[string]any{"revisionName": "hello-00001", "tag": "current", "percent": int64(90)},
			map[string]any{"revisionName": "hello-00001", "tag": "current"},
		), []string{"hello.team.example.com", "current-hello.team.example.com", "next-hello.team.example.com"}},
	}
	for _, tc := range cases {
		if got := ExternalHosts(tc.owner, "example.com"); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
