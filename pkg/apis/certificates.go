package apis

import "time"

// CertificateInfo describes a certificate the HTTPS listener serves (flick cert list).
type CertificateInfo struct {
	Host string `json:"host"`
	// Source is local-ca, acme, or where a provided certificate came from ("secret ns/name").
	Source    string    `json:"source"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	Serial    string    `json:"serial"`
}

// CertificateList is the answer of GET /apis/flick.dev/v1/certificates.
type CertificateList struct {
	Items []CertificateInfo `json:"items"`
}
