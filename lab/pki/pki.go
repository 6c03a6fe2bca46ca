// Package pki issues the real X.509 certificates of the simulated vCenter
// SSO domain: the VMCA root, the certificates it signs (machine SSL,
// solution users, STS signing) and self-signed third-party certificates.
//
// All validity periods come from the caller, who takes them from the lab's
// clock, so a certificate the lab calls expired is expired for crypto/x509
// and for openssl alike. Keys are RSA 2048 as VMCA generates them; see
// KeyPool for how the lab keeps key generation off its start-up path.
package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Usage says what a certificate is for; values combine with |.
type Usage uint8

const (
	// UsageServer is a TLS server certificate: digitalSignature and
	// keyEncipherment, extended key usage serverAuth.
	UsageServer Usage = 1 << iota
	// UsageClient is a TLS client certificate: extended key usage clientAuth.
	UsageClient
	// UsageSigning is a signing certificate such as the STS token signer:
	// digitalSignature and nonRepudiation.
	UsageSigning
)

// Request describes a certificate to issue. Subject attributes are encoded
// in the order CN, DC…, C, ST, L, O, OU, emailAddress, which is how VMCA
// lays out its subjects (CN=CA, DC=vsphere, DC=local, C=US, …).
type Request struct {
	// CommonName is the subject CN.
	CommonName string
	// DomainComponents are subject DC values, most significant last, such
	// as ["vsphere", "local"].
	DomainComponents []string
	// Country is the two-letter subject C.
	Country string
	// State is the subject ST.
	State string
	// Locality is the subject L.
	Locality string
	// Organization is the subject O.
	Organization string
	// OrgUnit is the subject OU.
	OrgUnit string
	// Email is the subject emailAddress.
	Email string
	// DNSNames are subjectAltName DNS entries.
	DNSNames []string
	// IPs are subjectAltName IP entries.
	IPs []net.IP
	// NotBefore starts the validity period.
	NotBefore time.Time
	// NotAfter ends the validity period.
	NotAfter time.Time
	// Usage selects key usage and extended key usage.
	Usage Usage
	// Key is the key to certify; when nil a Fresh key is generated.
	Key *rsa.PrivateKey
}

// Cert is an issued certificate with its private key.
type Cert struct {
	// DER is the certificate in DER form.
	DER []byte
	// Key is the private key; nil for a certificate loaded without one.
	Key crypto.Signer
	// KeyPKCS8 is Key as unencrypted PKCS#8 DER, the form vmdir and VECS keep.
	KeyPKCS8 []byte
	// X509 is the parsed certificate.
	X509 *x509.Certificate
}

// CA is a certificate authority that can issue certificates.
type CA struct {
	Cert
}

// NewRoot creates a self-signed VMCA-style root with subject
// CN=<cn>, DC=vsphere, DC=local, C=US, ST=California, O=VMware,
// OU=VMware Engineering and a fresh key. Use NewRootCA for other subjects.
func NewRoot(cn string, notBefore, notAfter time.Time) (*CA, error) {
	return NewRootCA(Request{
		CommonName:       cn,
		DomainComponents: []string{"vsphere", "local"},
		Country:          "US",
		State:            "California",
		Organization:     "VMware",
		OrgUnit:          "VMware Engineering",
		NotBefore:        notBefore,
		NotAfter:         notAfter,
	})
}

// NewRootCA creates a self-signed root CA (basicConstraints CA:TRUE,
// keyCertSign and cRLSign, subject key identifier, no authority key
// identifier) from req. Its Usage and SANs are ignored.
func NewRootCA(req Request) (*CA, error) {
	key, err := keyFor(req)
	if err != nil {
		return nil, fmt.Errorf("create root ca: %w", err)
	}
	tmpl, err := template(req, key)
	if err != nil {
		return nil, fmt.Errorf("create root ca: %w", err)
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.DNSNames, tmpl.IPAddresses, tmpl.ExtKeyUsage = nil, nil, nil
	c, err := create(tmpl, tmpl, key, key)
	if err != nil {
		return nil, fmt.Errorf("create root ca: %w", err)
	}
	return &CA{Cert: *c}, nil
}

// SelfSigned creates a self-signed end-entity certificate, as third-party
// solutions such as SRM and the SMS service present.
func SelfSigned(req Request) (*Cert, error) {
	key, err := keyFor(req)
	if err != nil {
		return nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	tmpl, err := template(req, key)
	if err != nil {
		return nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	tmpl.BasicConstraintsValid = true
	c, err := create(tmpl, tmpl, key, key)
	if err != nil {
		return nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	return c, nil
}

// Issue signs a certificate for req with the CA. The result carries an
// authority key identifier equal to the CA's subject key identifier.
func (ca *CA) Issue(req Request) (*Cert, error) {
	if ca == nil || ca.Key == nil || ca.X509 == nil {
		return nil, errors.New("issue certificate: ca has no key")
	}
	key, err := keyFor(req)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	tmpl, err := template(req, key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	tmpl.BasicConstraintsValid = true
	tmpl.AuthorityKeyId = ca.X509.SubjectKeyId
	c, err := create(tmpl, ca.X509, key, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate %q: %w", req.CommonName, err)
	}
	return c, nil
}

// CRL returns an empty certificate revocation list signed by the CA, in
// DER, valid from now for one week, as VMCA publishes next to its root.
func (ca *CA) CRL(now time.Time) ([]byte, error) {
	if ca == nil || ca.Key == nil {
		return nil, errors.New("create crl: ca has no key")
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(now.Unix()),
		ThisUpdate: now.UTC().Truncate(time.Second),
		NextUpdate: now.UTC().Truncate(time.Second).Add(7 * 24 * time.Hour),
	}, ca.X509, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("create crl: %w", err)
	}
	return der, nil
}

// LoadCA reads a CA from a PEM certificate (the first one is used, as
// /var/lib/vmware/vmca/root.cer may hold a chain) and a PEM private key.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	ders, err := DecodeCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	if len(ders) == 0 {
		return nil, errors.New("load ca: no certificate in pem data")
	}
	_, pkcs8, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	c, err := ParseCert(ders[0], pkcs8)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	if !c.X509.IsCA {
		return nil, fmt.Errorf("load ca: %s is not a ca certificate", SubjectDN(c.X509))
	}
	return &CA{Cert: *c}, nil
}

// ParseCert builds a Cert from DER and an optional PKCS#8 DER key, checking
// that the key matches the certificate.
func ParseCert(der, keyPKCS8 []byte) (*Cert, error) {
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	c := &Cert{DER: der, X509: x}
	if len(keyPKCS8) == 0 {
		return c, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(keyPKCS8)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse private key: %T cannot sign", k)
	}
	if !KeyMatches(x, signer) {
		return nil, errors.New("parse certificate: private key does not match the certificate")
	}
	c.Key, c.KeyPKCS8 = signer, keyPKCS8
	return c, nil
}

// KeyMatches reports whether key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	return ok && pub.Equal(cert.PublicKey)
}

// PEM returns the certificate as PEM.
func (c *Cert) PEM() []byte { return EncodeCert(c.DER) }

// KeyPEM returns the private key as PEM ("PRIVATE KEY", PKCS#8).
func (c *Cert) KeyPEM() []byte { return EncodeKey(c.KeyPKCS8) }

// TLS returns a tls.Certificate presenting c followed by chain (DER).
func (c *Cert) TLS(chain ...[]byte) tls.Certificate {
	t := tls.Certificate{Certificate: [][]byte{c.DER}, PrivateKey: c.Key, Leaf: c.X509}
	t.Certificate = append(t.Certificate, chain...)
	return t
}

// ValidAt reports whether t lies within cert's validity period, inclusive,
// as crypto/x509 and openssl judge it.
func ValidAt(cert *x509.Certificate, t time.Time) bool {
	return !t.Before(cert.NotBefore) && !t.After(cert.NotAfter)
}

func keyFor(req Request) (*rsa.PrivateKey, error) {
	if req.Key != nil {
		return req.Key, nil
	}
	return Fresh()
}

func template(req Request, key *rsa.PrivateKey) (*x509.Certificate, error) {
	if !req.NotAfter.After(req.NotBefore) {
		return nil, fmt.Errorf("validity period %s – %s is empty", req.NotBefore, req.NotAfter)
	}
	subject, err := asn1.Marshal(subjectRDNs(req))
	if err != nil {
		return nil, fmt.Errorf("encode subject: %w", err)
	}
	skid, err := keyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	t := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		RawSubject:   subject,
		NotBefore:    req.NotBefore.UTC().Truncate(time.Second),
		NotAfter:     req.NotAfter.UTC().Truncate(time.Second),
		SubjectKeyId: skid,
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
	}
	if req.Usage&UsageServer != 0 {
		t.KeyUsage |= x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if req.Usage&UsageClient != 0 {
		t.KeyUsage |= x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if req.Usage&UsageSigning != 0 {
		t.KeyUsage |= x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	}
	return t, nil
}

func create(tmpl, parent *x509.Certificate, key *rsa.PrivateKey, signer crypto.Signer) (*Cert, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return &Cert{DER: der, Key: key, KeyPKCS8: pkcs8, X509: x}, nil
}

// keyID is the RFC 5280 method-1 key identifier: SHA-1 of the
// subjectPublicKey bit string.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	sum := sha1.Sum(info.PublicKey.Bytes)
	return sum[:], nil
}
