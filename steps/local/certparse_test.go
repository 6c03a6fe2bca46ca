package local

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runbook/internal/testbin"

	"runbook/steps/certinfo"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenNow is the clock of the golden files.
var goldenNow = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// testPKI is a VMCA-like root, a machine SSL leaf and an expired STS
// signing leaf. Ed25519 keys from fixed seeds and Ed25519's deterministic
// signatures make the certificates the same bytes on every run, so that
// golden files can hold them.
type testPKI struct {
	root, machine, sts []byte // DER
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	key := func(seed byte) ed25519.PrivateKey {
		return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	}
	rootKey, machineKey, stsKey := key(1), key(2), key(3)
	root := &x509.Certificate{
		SerialNumber: big.NewInt(0x00C3A1F4E2D1B0),
		Subject: pkix.Name{CommonName: "CA", Country: []string{"US"}, Province: []string{"California"},
			Organization: []string{"vcsa1.lab.test"}, OrganizationalUnit: []string{"VMware Engineering"}},
		NotBefore:             time.Date(2019, 4, 6, 11, 57, 19, 0, time.UTC),
		NotAfter:              time.Date(2029, 4, 6, 11, 57, 19, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          []byte{0x1c, 0x3f, 0x9e, 0x01},
	}
	machine := &x509.Certificate{
		SerialNumber:          big.NewInt(0x1b),
		Subject:               pkix.Name{CommonName: "vcsa1.lab.test", Country: []string{"US"}},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:              []string{"vcsa1.lab.test"},
		IPAddresses:           []net.IP{net.ParseIP("192.0.2.10")},
		SubjectKeyId:          []byte{0x4d, 0x01},
	}
	sts := &x509.Certificate{
		SerialNumber: big.NewInt(0x7f01),
		Subject:      pkix.Name{CommonName: "ssoserverSign"},
		NotBefore:    time.Date(2018, 8, 18, 17, 54, 52, 0, time.UTC),
		NotAfter:     time.Date(2020, 8, 18, 17, 54, 52, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		SubjectKeyId: []byte{0x57, 0x01},
	}
	create := func(tmpl, parent *x509.Certificate, pub ed25519.PublicKey, signer ed25519.PrivateKey) []byte {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	return testPKI{
		root:    create(root, root, rootKey.Public().(ed25519.PublicKey), rootKey),
		machine: create(machine, root, machineKey.Public().(ed25519.PublicKey), rootKey),
		sts:     create(sts, root, stsKey.Public().(ed25519.PublicKey), rootKey),
	}
}

func pemOf(ders ...[]byte) string {
	var b strings.Builder
	for _, d := range ders {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d}))
	}
	return b.String()
}

func setNow(t *testing.T, at time.Time) {
	t.Helper()
	old := now
	now = func() time.Time { return at }
	t.Cleanup(func() { now = old })
}

// TestCertParseGolden runs cert.parse on generated certificates in each
// input form and compares all outputs with testdata/cert-parse-NAME.json.
func TestCertParseGolden(t *testing.T) {
	setNow(t, goldenNow)
	pki := newTestPKI(t)
	tests := []struct {
		name, cert string
	}{
		{"machine-pem", pemOf(pki.machine)},
		{"sts-chain-pem", "Alias :\tTenantCredential-1\r\nCertificate :\t" + strings.ReplaceAll(pemOf(pki.sts, pki.root), "\n", "\r\n")},
		{"root-ssltrust", base64.StdEncoding.EncodeToString(pki.root)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(t)
			out, err := runCertParse(context.Background(), env, &certParseParams{Cert: tc.cert})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(out); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "cert-parse-"+tc.name+".json")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create it): %v", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("outputs differ from %s; got:\n%s", golden, buf.Bytes())
			}
		})
	}
}

// TestCertParseOutputs checks the outputs' structure: every certificate in
// certs, the first one's fields at top level, and values that follow from
// the generated certificates independently of certinfo.
func TestCertParseOutputs(t *testing.T) {
	setNow(t, goldenNow)
	pki := newTestPKI(t)
	env, _ := testEnv(t)
	out, err := runCertParse(context.Background(), env, &certParseParams{Cert: pemOf(pki.sts, pki.root)})
	if err != nil {
		t.Fatal(err)
	}
	if out.Count != 2 || len(out.Certs) != 2 {
		t.Fatalf("count %d, %d certs; want 2", out.Count, len(out.Certs))
	}
	first := out.Certs[0]
	top := certinfo.Info{
		Subject: out.Subject, Issuer: out.Issuer, Serial: out.Serial, NotBefore: out.NotBefore, NotAfter: out.NotAfter,
		DaysLeft: out.DaysLeft, Expired: out.Expired, SANs: out.SANs, IsCA: out.IsCA, IsLeaf: out.IsLeaf,
		SHA1: out.SHA1, SHA256: out.SHA256, SKID: out.SKID, AKID: out.AKID, KeyAlgorithm: out.KeyAlgorithm,
		KeyUsage: out.KeyUsage, ExtKeyUsage: out.ExtKeyUsage, PEM: out.PEM, Base64: out.Base64,
	}
	tj, _ := json.Marshal(top)
	fj, _ := json.Marshal(first)
	if !bytes.Equal(tj, fj) {
		t.Errorf("top-level fields\n%s\ndiffer from certs[0]\n%s", tj, fj)
	}
	sum := sha1.Sum(pki.sts)
	checks := []struct {
		name      string
		got, want any
	}{
		{"subject", out.Subject, "CN=ssoserverSign"},
		{"issuer", out.Issuer, "CN=CA, OU=VMware Engineering, O=vcsa1.lab.test, ST=California, C=US"},
		{"serial", out.Serial, "7F01"},
		{"expired", out.Expired, true},
		{"daysLeft", out.DaysLeft, -1748}, // 2020-08-18T17:54:52 → 2025-06-01
		{"isLeaf", out.IsLeaf, true},
		{"akid", out.AKID, "1C3F9E01"},
		{"sha1 bytes", strings.ReplaceAll(out.SHA1, ":", ""), fmt.Sprintf("%X", sum)},
		{"base64", out.Base64, base64.StdEncoding.EncodeToString(pki.sts)},
		{"pem", out.PEM, pemOf(pki.sts)},
		{"root isLeaf", out.Certs[1].IsLeaf, false},
		{"root isCA", out.Certs[1].IsCA, true},
		{"root skid", out.Certs[1].SKID, "1C3F9E01"},
		{"root daysLeft", out.Certs[1].DaysLeft, 1405},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestCertParseErrors(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct{ name, cert, want string }{
		{"empty", "", "cert: no certificate in input"},
		{"not a certificate", "hello", "cert: parse certificate: input is neither PEM nor base64 DER"},
		{"truncated sslTrust", base64.StdEncoding.EncodeToString(pki.root[:100]), "cert: parse base64 DER certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(t)
			_, err := runCertParse(context.Background(), env, &certParseParams{Cert: tc.cert})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestCertParseAgainstOpenSSL compares the outputs for the generated
// certificates with what openssl prints for them.
func TestCertParseAgainstOpenSSL(t *testing.T) {
	openssl := testbin.Need(t, "openssl", "openssl")
	setNow(t, goldenNow)
	pki := newTestPKI(t)
	for name, der := range map[string][]byte{"root": pki.root, "machine": pki.machine, "sts": pki.sts} {
		t.Run(name, func(t *testing.T) {
			env, _ := testEnv(t)
			out, err := runCertParse(context.Background(), env, &certParseParams{Cert: base64.StdEncoding.EncodeToString(der)})
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "c.pem")
			// Give openssl the step's own PEM: it must read it.
			if err := os.WriteFile(file, []byte(out.PEM), 0o600); err != nil {
				t.Fatal(err)
			}
			ask := func(args ...string) string {
				b, err := exec.Command(openssl, append([]string{"x509", "-in", file, "-noout"}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("openssl %v: %v\n%s", args, err, b)
				}
				_, v, _ := strings.Cut(strings.TrimSpace(string(b)), "=")
				return v
			}
			if got := ask("-fingerprint", "-sha1"); got != out.SHA1 {
				t.Errorf("sha1: openssl %q, step %q", got, out.SHA1)
			}
			if got := ask("-fingerprint", "-sha256"); got != out.SHA256 {
				t.Errorf("sha256: openssl %q, step %q", got, out.SHA256)
			}
			if got := ask("-subject", "-nameopt", "RFC2253,sep_comma_plus_space"); got != out.Subject {
				t.Errorf("subject: openssl %q, step %q", got, out.Subject)
			}
			if got := ask("-serial"); got != out.Serial {
				t.Errorf("serial: openssl %q, step %q", got, out.Serial)
			}
			end, err := time.Parse("Jan _2 15:04:05 2006 MST", ask("-enddate"))
			if err != nil || !end.Equal(out.NotAfter) {
				t.Errorf("enddate: openssl %v (%v), step %v", end, err, out.NotAfter)
			}
		})
	}
}
