package ldapd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"runbook/lab/vmdir"
)

const (
	suffix    = "dc=vsphere,dc=local"
	adminDN   = "cn=Administrator,cn=Users," + suffix
	adminUPN  = "administrator@vsphere.local"
	adminPass = "VMware1!"
	tenantDN  = "cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=Services," + suffix
	chainsDN  = "cn=TrustedCertificateChains," + tenantDN
	cred1DN   = "cn=TenantCredential-1," + tenantDN
	chain1DN  = "cn=TrustedCertChain-1," + chainsDN
)

// fixture is a small SSO domain: the administrator and one STS signing
// credential with its trusted chain. Certificates are filled in by
// newDirectory.
const fixture = `
dn: cn=Users,dc=vsphere,dc=local
objectClass: container

dn: cn=Administrator,cn=Users,dc=vsphere,dc=local
objectClass: user
userPrincipalName: Administrator@VSPHERE.LOCAL
userPassword: VMware1!

dn: cn=Services,dc=vsphere,dc=local
objectClass: container

dn: cn=IdentityManager,cn=Services,dc=vsphere,dc=local
objectClass: container

dn: cn=Tenants,cn=IdentityManager,cn=Services,dc=vsphere,dc=local
objectClass: container

dn: cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=Services,dc=vsphere,dc=local
objectClass: vmwSTSTenant

dn: cn=TrustedCertificateChains,cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=Services,dc=vsphere,dc=local
objectClass: container
`

// pki is a test CA with a server certificate for 127.0.0.1 and a signing
// certificate standing in for the STS one.
type pki struct {
	caDER, leafDER, signDER []byte
	signKey                 []byte // PKCS#8 DER
	caFile                  string // CA certificate, PEM
	server                  *tls.Config
	roots                   *x509.CertPool
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, leafKey, signKey := key(), key(), key()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA", Organization: []string{"VMware"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, leafKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	signTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "ssoserverSign"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	signDER, err := x509.CreateCertificate(rand.Reader, signTmpl, ca, signKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	signPK, err := x509.MarshalPKCS8PrivateKey(signKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &pki{
		caDER: caDER, leafDER: leafDER, signDER: signDER, signKey: signPK, caFile: caFile, roots: roots,
		server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey}}},
	}
}

// newDirectory returns the fixture directory with TenantCredential-1 and
// TrustedCertChain-1 holding p's signing certificate and CA.
func newDirectory(t testing.TB, p *pki) *vmdir.Directory {
	t.Helper()
	d := vmdir.New(suffix)
	entries, err := vmdir.ParseLDIF(strings.NewReader(fixture))
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries,
		vmdir.NewEntry(cred1DN, vmdir.StrAttr("objectClass", "top", "vmwSTSTenantCredential"),
			vmdir.Attr{Name: "userCertificate", Values: [][]byte{p.signDER, p.caDER}},
			vmdir.Attr{Name: "vmwSTSPrivateKey", Values: [][]byte{p.signKey}}),
		vmdir.NewEntry(chain1DN, vmdir.StrAttr("objectClass", "top", "vmwSTSTenantTrustedCertificateChain"),
			vmdir.Attr{Name: "userCertificate", Values: [][]byte{p.signDER, p.caDER}}),
	)
	for _, e := range entries {
		if err := d.Add(e); err != nil {
			t.Fatalf("add %s: %v", e.DN, err)
		}
	}
	return d
}

// start runs a server for d with LDAPS and stops it when the test ends.
func start(t testing.TB, d *vmdir.Directory, p *pki, faults Faults) *Server {
	t.Helper()
	s, err := Start(context.Background(), Config{Dir: d, TLS: p.server, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// transports are the two ways a client reaches the server.
var transports = []string{"ldap", "ldaps"}

func dial(t testing.TB, s *Server, p *pki, transport string) *ldap.Conn {
	t.Helper()
	var c *ldap.Conn
	var err error
	switch transport {
	case "ldap":
		c, err = ldap.DialURL("ldap://" + s.LDAPAddr())
	case "ldaps":
		c, err = ldap.DialURL("ldaps://"+s.LDAPSAddr(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: p.roots}))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func bindAdmin(t testing.TB, c *ldap.Conn) {
	t.Helper()
	if err := c.Bind(adminDN, adminPass); err != nil {
		t.Fatal(err)
	}
}

// code returns the LDAP result code of a go-ldap error (0 for nil, -1 for
// errors that carry none, such as network errors).
func code(err error) int {
	if err == nil {
		return 0
	}
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode != ldap.ErrorNetwork {
		return int(le.ResultCode)
	}
	return -1
}

func wantCode(t testing.TB, err error, want int) {
	t.Helper()
	if got := code(err); got != want {
		t.Fatalf("result code %d (%v), want %d", got, err, want)
	}
}

func (p *pki) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.roots, ServerName: "127.0.0.1"}
}
