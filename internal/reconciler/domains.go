package reconciler

import (
	"crypto/tls"
	"time"

	"github.com/flickdev/flick/internal/certs"
	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

// Certificates takes the certificates users provide through DomainMappings' TLS Secrets.
type Certificates interface {
	SetProvided(map[string]certs.Provided)
}

// handleDomainMapping installs every mapping again (the router swaps its table whole) and
// writes each one's status: whether its target exists and where its certificate comes from.
func (r *Reconciler) handleDomainMapping(ev store.Event) {
	if ev.Type == store.Modified && !generationChanged(ev.Object) {
		return // our own status write
	}
	r.installDomains()
}

// installDomains gives the router the custom domains and the certificate manager the
// mappings' certificates. When two namespaces map the same domain, the older mapping keeps
// it (Knative's ClusterDomainClaim rule).
func (r *Reconciler) installDomains() {
	items, err := r.store.List("domainmappings", "")
	if err != nil {
		r.log.Error("list domain mappings", "err", err)
		return
	}
	var mappings []*apis.DomainMapping
	stored := map[*apis.DomainMapping]*apis.Resource{}
	for _, it := range items {
		if obj, err := apis.Decode(it); err == nil {
			d := obj.(*apis.DomainMapping)
			mappings = append(mappings, d)
			stored[d] = it
		}
	}
	owners := apis.DomainOwners(mappings)
	hosts := map[string]string{}
	provided := map[string]certs.Provided{}
	for _, d := range mappings {
		it := stored[d]
		ns, host := d.Metadata.Namespace, d.Metadata.Name
		var prev apis.DomainMappingStatus
		_ = jsonUnmarshal(it.Status, &prev)
		st := apis.DomainMappingStatus{ObservedGeneration: it.Metadata.Generation}
		now := time.Now()
		conds := prev.Conditions
		ref := apis.Condition{Type: apis.ConditionReferenceResolved, Status: apis.ConditionTrue, Reason: "Resolved"}
		if _, err := r.store.Get(d.TargetPlural(), ns, d.Spec.Ref.Name); err != nil {
			ref = apis.Condition{Type: apis.ConditionReferenceResolved, Status: apis.ConditionFalse, Reason: "TargetNotFound",
				Message: d.Spec.Ref.Kind + " " + quote(d.Spec.Ref.Name) + " does not exist in " + ns + ": requests for " + host + " get 404 until it does"}
		}
		cert := apis.Condition{Type: apis.ConditionCertificateProvisioned, Status: apis.ConditionTrue, Reason: "Issued",
			Message: "a certificate is issued for " + host + " on its first HTTPS request"}
		if r.CertificatesOff {
			cert = apis.Condition{Type: apis.ConditionCertificateProvisioned, Status: apis.ConditionTrue, Reason: "HTTPOnly", Message: "the server has no HTTPS listener"}
		}
		if owner := owners[host]; owner != d {
			ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: "DomainAlreadyClaimed",
				Message: host + " is already mapped to " + owner.Metadata.Namespace + "/" + owner.Spec.Ref.Name + " by an older mapping"}
			st.Conditions = apis.SetCondition(apis.SetCondition(conds, ref, now), ready, now)
			r.writeDomainStatus(ns, host, st)
			continue
		}
		hosts[host] = ns + "/" + d.Spec.Ref.Name
		if d.Spec.TLS != nil {
			c, why := r.tlsSecret(ns, d.Spec.TLS.SecretName)
			if c != nil {
				provided[host] = certs.Provided{Cert: c, Source: "secret " + ns + "/" + d.Spec.TLS.SecretName}
				cert = apis.Condition{Type: apis.ConditionCertificateProvisioned, Status: apis.ConditionTrue, Reason: "SecretLoaded",
					Message: "serving the certificate of secret " + d.Spec.TLS.SecretName}
			} else {
				cert = apis.Condition{Type: apis.ConditionCertificateProvisioned, Status: apis.ConditionFalse, Reason: "SecretInvalid", Message: why}
			}
		}
		ready := apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionTrue, Reason: "Ready"}
		for _, c := range []apis.Condition{ref, cert} {
			if c.Status != apis.ConditionTrue {
				ready = apis.Condition{Type: apis.ConditionReady, Status: apis.ConditionFalse, Reason: c.Reason, Message: c.Message}
			}
		}
		if r.DomainURL != nil {
			st.URL = r.DomainURL(host)
			st.Address = &apis.Addressable{URL: st.URL}
		}
		st.Conditions = apis.SetCondition(apis.SetCondition(apis.SetCondition(conds, ref, now), cert, now), ready, now)
		r.writeDomainStatus(ns, host, st)
	}
	r.routes.SetDomains(hosts)
	if r.Certs != nil {
		r.Certs.SetProvided(provided)
	}
}

func (r *Reconciler) writeDomainStatus(ns, name string, st apis.DomainMappingStatus) {
	if err := r.writeStatus("domainmappings", ns, name, st); err != nil {
		r.log.Warn("write domain mapping status", "domainmapping", ns+"/"+name, "err", err)
	}
}

// tlsSecret reads a kubernetes.io/tls style secret: tls.crt and tls.key, PEM.
func (r *Reconciler) tlsSecret(ns, name string) (*tls.Certificate, string) {
	s, err := r.secret(ns, name)
	if err != nil {
		return nil, "secret " + quote(name) + " does not exist in " + ns
	}
	crt, okC := s.Value("tls.crt")
	key, okK := s.Value("tls.key")
	if !okC || !okK {
		return nil, "secret " + quote(name) + " needs the keys tls.crt and tls.key (PEM)"
	}
	c, err := certs.ParsePair([]byte(crt), []byte(key))
	if err != nil {
		return nil, "secret " + quote(name) + ": " + err.Error()
	}
	return c, ""
}

// targetAppeared refreshes domain mappings' status when a service or function comes or goes.
func (r *Reconciler) targetAppeared(ev store.Event) {
	if ev.Type == store.Modified {
		return
	}
	if items, err := r.store.List("domainmappings", ev.Object.Metadata.Namespace); err == nil && len(items) > 0 {
		r.installDomains()
	}
}
