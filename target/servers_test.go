package target_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"runbook/target"
)

// testCert is a self-signed certificate and its key.
type testCert struct {
	tls  tls.Certificate
	leaf *x509.Certificate
	dir  string // where cert.pem and key.pem are
}

// newCert makes a self-signed ECDSA certificate for cn and 127.0.0.1 valid
// from notBefore to notAfter, and writes it as PEM files.
func newCert(t testing.TB, cn string, notBefore, notAfter time.Time) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"runbook target tests"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{cn},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCert{
		tls:  tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		leaf: leaf,
		dir:  dir,
	}
}

// expiredCert is a self-signed certificate that expired a year ago, as
// appliances under repair serve.
func expiredCert(t testing.TB, cn string) *testCert {
	now := time.Now()
	return newCert(t, cn, now.AddDate(-3, 0, 0), now.AddDate(-1, 0, 0))
}

// profileSpec says what a test profile holds beyond the defaults.
type profileSpec struct {
	ssoUser, ssoPassword string
	sshUser, sshPassword string
	address              string
	ports                target.Ports
	tlsThumbprint        string
	hostKey              string
	pnid                 string
}

// newProfile writes the passwords to files beside a profile path in a new
// directory (the profile names them relatively) and returns the profile.
func newProfile(t testing.TB, s profileSpec) *target.Profile {
	t.Helper()
	dir := t.TempDir()
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&s.ssoUser, "administrator@vsphere.local")
	def(&s.ssoPassword, "VMware1!-sso")
	def(&s.sshUser, "root")
	def(&s.sshPassword, "VMware1!-root")
	def(&s.address, "127.0.0.1")
	def(&s.pnid, "vcsa1.lab.test")
	for name, pw := range map[string]string{"sso.pass": s.ssoPassword, "root.pass": s.sshPassword} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &target.Profile{
		Domain: "vsphere.local",
		SSO:    target.Credentials{User: s.ssoUser, PasswordFile: "sso.pass"},
		Nodes: []target.NodeProfile{{
			PNID:          s.pnid,
			Address:       s.address,
			Ports:         s.ports,
			TLSThumbprint: s.tlsThumbprint,
			SSH: target.SSHProfile{
				Credentials: target.Credentials{User: s.sshUser, PasswordFile: "root.pass"},
				HostKey:     s.hostKey,
			},
		}},
		Path: filepath.Join(dir, "profile.yaml"),
	}
}

// open opens a target and closes it when the test ends.
func open(t testing.TB, p *target.Profile, opts target.Options) (*target.Target, *target.Node) {
	t.Helper()
	tg, err := target.Open(t.Context(), p, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg, tg.Nodes()[0]
}

// splitPort returns the port of a host:port address.
func splitPort(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
