package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"runbook/internal/testbin"
)

var now = time.Now().UTC().Truncate(time.Second)

func testRoot(t *testing.T, seq *KeySeq, notBefore, notAfter time.Time) *CA {
	t.Helper()
	key, err := seq.Next()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewRootCA(Request{
		CommonName: "CA", DomainComponents: []string{"vsphere", "local"}, Country: "US",
		State: "California", Organization: "vcsa1.lab.test", OrgUnit: "VMware Engineering",
		NotBefore: notBefore, NotAfter: notAfter, Key: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func testLeaf(t *testing.T, ca *CA, seq *KeySeq, notBefore, notAfter time.Time, usage Usage) *Cert {
	t.Helper()
	key, err := seq.Next()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(Request{
		CommonName: "vcsa1.lab.test", Country: "US", Organization: "VMware",
		DNSNames: []string{"vcsa1.lab.test"}, IPs: []net.IP{net.ParseIP("10.0.0.11")},
		NotBefore: notBefore, NotAfter: notAfter, Usage: usage, Key: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRootSubjectAndExtensions(t *testing.T) {
	ca := testRoot(t, Pool.Seq(), now.AddDate(-1, 0, 0), now.AddDate(9, 0, 0))
	want := "CN=CA, DC=vsphere, DC=local, C=US, ST=California, O=vcsa1.lab.test, OU=VMware Engineering"
	if got := SubjectDN(ca.X509); got != want {
		t.Errorf("SubjectDN = %q, want %q", got, want)
	}
	if got := IssuerDN(ca.X509); got != want {
		t.Errorf("IssuerDN = %q, want %q", got, want)
	}
	if !ca.X509.IsCA || !ca.X509.BasicConstraintsValid {
		t.Error("root is not CA:TRUE")
	}
	if len(ca.X509.SubjectKeyId) != 20 {
		t.Errorf("SKID has %d bytes, want 20", len(ca.X509.SubjectKeyId))
	}
	if len(ca.X509.AuthorityKeyId) != 0 {
		t.Error("root carries an authority key identifier; checksts would call it a LEAF")
	}
	if ca.X509.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("root lacks keyCertSign")
	}
	if got := SKIDHex(ca.X509); len(got) != 40 || strings.ToUpper(got) != got {
		t.Errorf("SKIDHex = %q", got)
	}
}

func TestIssueVerify(t *testing.T) {
	seq := Pool.Seq()
	ca := testRoot(t, seq, now.AddDate(-1, 0, 0), now.AddDate(9, 0, 0))
	tests := []struct {
		name      string
		notBefore time.Time
		notAfter  time.Time
		usage     Usage
		eku       x509.ExtKeyUsage
		wantErr   bool
	}{
		{"valid server", now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), UsageServer | UsageClient, x509.ExtKeyUsageServerAuth, false},
		{"expired", now.AddDate(-2, 0, 0), now.AddDate(0, 0, -3), UsageServer, x509.ExtKeyUsageServerAuth, true},
		{"not yet valid", now.AddDate(0, 0, 2), now.AddDate(1, 0, 0), UsageServer, x509.ExtKeyUsageServerAuth, true},
		{"client", now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), UsageClient, x509.ExtKeyUsageClientAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := testLeaf(t, ca, seq, tt.notBefore, tt.notAfter, tt.usage)
			if !bytes.Equal(leaf.X509.AuthorityKeyId, ca.X509.SubjectKeyId) {
				t.Error("leaf AKID differs from root SKID")
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.X509)
			_, err := leaf.X509.Verify(x509.VerifyOptions{
				Roots: roots, CurrentTime: now, DNSName: "vcsa1.lab.test",
				KeyUsages: []x509.ExtKeyUsage{tt.eku},
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Verify error = %v, want error %v", err, tt.wantErr)
			}
			if ValidAt(leaf.X509, now) == tt.wantErr {
				t.Errorf("ValidAt = %v, want %v", !tt.wantErr, tt.wantErr)
			}
			if err != nil {
				var inv x509.CertificateInvalidError
				if !errors.As(err, &inv) || inv.Reason != x509.Expired {
					t.Errorf("Verify error = %v, want an expiry error", err)
				}
			}
		})
	}
}

func TestExpiredRootBreaksChain(t *testing.T) {
	seq := Pool.Seq()
	ca := testRoot(t, seq, now.AddDate(-10, 0, 0), now.AddDate(0, 0, -5))
	leaf := testLeaf(t, ca, seq, now.AddDate(-1, 0, 0), now.AddDate(1, 0, 0), UsageServer)
	roots := x509.NewCertPool()
	roots.AddCert(ca.X509)
	if _, err := leaf.X509.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now}); err == nil {
		t.Fatal("leaf under an expired root verified")
	}
}

func TestOpenSSLVerify(t *testing.T) {
	openssl := testbin.Need(t, "openssl", "openssl")
	// openssl judges at the real time, so build validity around time.Now.
	real := time.Now()
	seq := Pool.Seq()
	ca := testRoot(t, seq, real.AddDate(-1, 0, 0), real.AddDate(9, 0, 0))
	valid := testLeaf(t, ca, seq, real.AddDate(0, -1, 0), real.AddDate(1, 0, 0), UsageServer)
	expired := testLeaf(t, ca, seq, real.AddDate(-2, 0, 0), real.Add(-time.Hour), UsageServer)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root := write("root.pem", ca.PEM())
	tests := []struct {
		name string
		cert *Cert
		args []string
		want string
	}{
		{"valid", valid, nil, ": OK"},
		{"expired", expired, nil, "certificate has expired"},
		{"valid at a past time", expired, []string{"-attime", strconv.FormatInt(real.AddDate(0, -6, 0).Unix(), 10)}, ": OK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := write(tt.name+".pem", tt.cert.PEM())
			args := append([]string{"verify", "-CAfile", root}, tt.args...)
			out, _ := exec.Command(openssl, append(args, leaf)...).CombinedOutput()
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("openssl verify: %s, want %q", out, tt.want)
			}
		})
	}
}

func TestLoadCAAndPEM(t *testing.T) {
	seq := Pool.Seq()
	ca := testRoot(t, seq, now.AddDate(-1, 0, 0), now.AddDate(9, 0, 0))
	loaded, err := LoadCA(append(ca.PEM(), ca.PEM()...), ca.KeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(loaded.DER, ca.DER) || !bytes.Equal(loaded.KeyPKCS8, ca.KeyPKCS8) {
		t.Error("LoadCA did not round-trip")
	}
	leaf := testLeaf(t, loaded, seq, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), UsageServer)
	if err := leaf.X509.CheckSignatureFrom(ca.X509); err != nil {
		t.Errorf("certificate issued by the loaded CA: %v", err)
	}
	if _, err := LoadCA(ca.PEM(), leaf.KeyPEM()); err == nil {
		t.Error("LoadCA accepted a key that does not match")
	}
	if _, err := LoadCA(leaf.PEM(), leaf.KeyPEM()); err == nil {
		t.Error("LoadCA accepted a leaf certificate")
	}
	if _, err := LoadCA([]byte("junk"), ca.KeyPEM()); err == nil {
		t.Error("LoadCA accepted junk")
	}
	certs, err := ParseCerts(EncodeCerts(leaf.DER, ca.DER))
	if err != nil || len(certs) != 2 || !certs[1].Equal(ca.X509) {
		t.Errorf("ParseCerts = %d certs, %v", len(certs), err)
	}
}

func TestTrustString(t *testing.T) {
	seq := Pool.Seq()
	ca := testRoot(t, seq, now.AddDate(-1, 0, 0), now.AddDate(9, 0, 0))
	s := TrustString(ca.DER)
	if strings.ContainsAny(s, "\n -") {
		t.Errorf("TrustString has armor or line breaks: %q", s[:40])
	}
	for _, in := range []string{s, string(ca.PEM()), "  " + s[:64] + "\r\n" + s[64:] + "\n"} {
		der, err := ParseTrust(in)
		if err != nil || !bytes.Equal(der, ca.DER) {
			t.Errorf("ParseTrust(%.20q…) = %v", in, err)
		}
	}
	tp := Thumbprint(ca.DER)
	if len(tp) != 59 || strings.Count(tp, ":") != 19 || strings.ToUpper(tp) != tp {
		t.Errorf("Thumbprint = %q", tp)
	}
	if got := NormalizeThumbprint("\ufeff" + tp); got != SHA1Hex(ca.DER) {
		t.Errorf("NormalizeThumbprint = %q, want %q", got, SHA1Hex(ca.DER))
	}
	if got := NormalizeThumbprint(strings.ReplaceAll(tp, ":", " ")); got != SHA1Hex(ca.DER) {
		t.Errorf("NormalizeThumbprint with spaces = %q", got)
	}
}

func TestCRL(t *testing.T) {
	ca := testRoot(t, Pool.Seq(), now.AddDate(-1, 0, 0), now.AddDate(9, 0, 0))
	der, err := ca.CRL(now)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(ca.X509); err != nil {
		t.Error(err)
	}
	if !crl.ThisUpdate.Equal(now) {
		t.Errorf("ThisUpdate = %v, want %v", crl.ThisUpdate, now)
	}
}

func TestSelfSigned(t *testing.T) {
	key, err := Pool.Seq().Next()
	if err != nil {
		t.Fatal(err)
	}
	c, err := SelfSigned(Request{CommonName: "srm.lab.test", NotBefore: now, NotAfter: now.AddDate(1, 0, 0), Usage: UsageServer, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.X509.CheckSignature(c.X509.SignatureAlgorithm, c.X509.RawTBSCertificate, c.X509.Signature); err != nil {
		t.Error(err)
	}
	if c.X509.IsCA || len(c.X509.AuthorityKeyId) != 0 {
		t.Error("self-signed leaf is a CA or has an AKID")
	}
	if _, err := SelfSigned(Request{CommonName: "x", NotBefore: now, NotAfter: now, Key: key}); err == nil {
		t.Error("empty validity period accepted")
	}
}

func TestKeySeq(t *testing.T) {
	a, b := Pool.Seq(), Pool.Seq()
	if err := a.Prefetch(3); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := range 3 {
		ka, err := a.Next()
		if err != nil {
			t.Fatal(err)
		}
		kb, err := b.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ka.Equal(kb) {
			t.Errorf("key %d differs between sequences of one pool", i)
		}
		if ka.N.BitLen() != KeyBits {
			t.Errorf("key %d has %d bits", i, ka.N.BitLen())
		}
		n := ka.N.String()
		if seen[n] {
			t.Errorf("key %d repeats within a sequence", i)
		}
		seen[n] = true
	}
	if _, err := Pool.Key(-1); err == nil {
		t.Error("negative index accepted")
	}
}

func TestKeyPoolCache(t *testing.T) {
	dir := t.TempDir()
	a := NewKeyPool(dir)
	if err := a.Fill(0, 2); err != nil {
		t.Fatal(err)
	}
	// A new pool on the same directory (a later process) reads the keys.
	b := NewKeyPool(dir)
	for i := range 2 {
		ka, _ := a.Key(i)
		kb, err := b.Key(i)
		if err != nil {
			t.Fatal(err)
		}
		if !ka.Equal(kb) {
			t.Errorf("key %d was not read back from the cache", i)
		}
		info, err := os.Stat(filepath.Join(dir, fmt.Sprintf("key-%04d.der", i)))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("cached key %d: %v, mode %v", i, err, info.Mode())
		}
	}
	// A damaged file is replaced by a fresh key.
	if err := os.WriteFile(filepath.Join(dir, "key-0002.der"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := NewKeyPool(dir).Key(2)
	if err != nil || k.N.BitLen() != KeyBits {
		t.Fatalf("Key over a damaged cache file = %v", err)
	}
	if again, _ := NewKeyPool(dir).Key(2); !again.Equal(k) {
		t.Error("the replacement key was not cached")
	}
	if NewKeyPool("").CacheDir() != "" {
		t.Error("a pool without a directory has a cache dir")
	}
}

func BenchmarkIssue(b *testing.B) {
	seq := Pool.Seq()
	k1, _ := seq.Next()
	k2, _ := seq.Next()
	ca, err := NewRootCA(Request{CommonName: "CA", NotBefore: now, NotAfter: now.AddDate(1, 0, 0), Key: k1})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ca.Issue(Request{CommonName: "x", NotBefore: now, NotAfter: now.AddDate(1, 0, 0), Key: k2, Usage: UsageServer}); err != nil {
			b.Fatal(err)
		}
	}
}
