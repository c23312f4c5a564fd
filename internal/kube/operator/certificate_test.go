package operator

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestCertificateFor(t *testing.T) {
	owner := newUnstructured(gvk("serving.knative.dev", "Service"))
	owner.SetName("hello")
	owner.SetNamespace("team")
	owner.SetUID("u1")
	c := CertificateFor(owner, "ksvc", "hello.team.example.com", Issuer{Name: "letsencrypt", Kind: "ClusterIssuer"})
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
	if len(names) != 1 || names[0] != "hello.team.example.com" {
		t.Errorf("dnsNames %v", names)
	}
	refs := c.GetOwnerReferences()
	if len(refs) != 1 || refs[0].UID != "u1" || refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("owner references %+v", refs)
	}
}
