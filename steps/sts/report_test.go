package sts

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab/model"
)

// testCert issues a certificate valid until notAfter: a root (no
// authority key identifier) when parent is nil, else a leaf of parent.
func testCert(t testing.TB, cn string, notAfter time.Time, parent *x509.Certificate, parentKey ed25519.PrivateKey) (*x509.Certificate, ed25519.PrivateKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notAfter.AddDate(-3, 0, 0),
		NotAfter:     notAfter,
		SubjectKeyId: []byte(cn),
	}
	signer := key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		parent = tmpl
	} else {
		signer = parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if parent != tmpl && len(c.AuthorityKeyId) == 0 {
		t.Fatal("leaf without an authority key identifier")
	}
	return c, key
}

func TestDateRule(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		notAfter time.Time
		days     int
		expired  bool
	}{
		{"later today", time.Date(2025, 6, 1, 23, 59, 59, 0, time.UTC), 0, true},
		{"earlier today", time.Date(2025, 6, 1, 0, 0, 1, 0, time.UTC), 0, true},
		{"tomorrow just after midnight", time.Date(2025, 6, 2, 0, 0, 1, 0, time.UTC), 1, false},
		{"yesterday", time.Date(2025, 5, 31, 23, 59, 59, 0, time.UTC), -1, true},
		{"other zone", time.Date(2025, 6, 2, 1, 0, 0, 0, time.FixedZone("CEST", 2*3600)), 0, true},
		{"a year", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), 365, false},
		{"beyond 2262", time.Date(2300, 6, 1, 0, 0, 0, 0, time.UTC), 100441, false}, // 275 years, 66 leap days
	}
	for _, tc := range tests {
		days, expired := dateRule(tc.notAfter, at)
		if days != tc.days || expired != tc.expired {
			t.Errorf("%s: dateRule = %d, %v; want %d, %v", tc.name, days, expired, tc.days, tc.expired)
		}
	}
}

// TestReport checks checksts's text on chains made for it: thumbprints
// counted once across chains, leaves told by their authority key
// identifier, Python's rounding of years, the warning only with an
// expired certificate.
func TestReport(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	root, rootKey := testCert(t, "root", at.AddDate(0, 0, 547), nil, nil)                         // 1.4986 years: 1
	leafA, _ := testCert(t, "a", at.AddDate(0, 0, 548), root, rootKey)                            // 1.5014 years: 2
	leafOld, _ := testCert(t, "old", at.Add(-49*time.Hour), root, rootKey)                        // expired
	oldRoot, _ := testCert(t, "old root", time.Date(2025, 6, 1, 23, 0, 0, 0, time.UTC), nil, nil) // expires today
	names := func(s string) string {
		for _, c := range []struct {
			cert *x509.Certificate
			name string
		}{{root, "<ROOT>"}, {leafA, "<LEAF-A>"}, {leafOld, "<LEAF-OLD>"}, {oldRoot, "<OLD-ROOT>"}} {
			s = strings.ReplaceAll(s, sha1Of(c.cert), c.name)
		}
		return s
	}
	tests := []struct {
		name   string
		chains [][]*x509.Certificate
		want   string
	}{
		{"empty", nil, "\n0 VALID CERTS\n================\n\n\tLEAF CERTS:\n\n\tNone\n\n\tROOT CERTS:\n\n\tNone\n" +
			"\n0 EXPIRED CERTS\n================\n\n\tLEAF CERTS:\n\n\tNone\n\n\tROOT CERTS:\n\n\tNone\n"},
		{"valid, duplicates", [][]*x509.Certificate{{leafA, root}, {root}, {leafA, root}},
			"\n2 VALID CERTS\n================\n\n\tLEAF CERTS:\n\n" +
				"\t[] Certificate <LEAF-A> will expire in 548 days (2 years).\n\n\tROOT CERTS:\n\n" +
				"\t[] Certificate <ROOT> will expire in 547 days (1 years).\n" +
				"\n0 EXPIRED CERTS\n================\n\n\tLEAF CERTS:\n\n\tNone\n\n\tROOT CERTS:\n\n\tNone\n"},
		{"expired", [][]*x509.Certificate{{leafOld, root}, {leafA, root}, {oldRoot}},
			"\n2 VALID CERTS\n================\n\n\tLEAF CERTS:\n\n" +
				"\t[] Certificate <LEAF-A> will expire in 548 days (2 years).\n\n\tROOT CERTS:\n\n" +
				"\t[] Certificate <ROOT> will expire in 547 days (1 years).\n" +
				"\n2 EXPIRED CERTS\n================\n\n\tLEAF CERTS:\n\n" +
				"\t[] Certificate: <LEAF-OLD> expired on 2025-05-30 11:00:00 GMT!\n\n\tROOT CERTS:\n\n" +
				"\t[] Certificate: <OLD-ROOT> expired on 2025-06-01 23:00:00 GMT!\n" + warning},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := check(tc.chains, at)
			if got := names(r.text()); got != tc.want {
				t.Errorf("report:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParseIDM(t *testing.T) {
	at := time.Now()
	root, key := testCert(t, "root", at.AddDate(1, 0, 0), nil, nil)
	leaf, _ := testCert(t, "leaf", at.AddDate(1, 0, 0), root, key)
	pemOf := func(c *x509.Certificate) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	tests := []struct {
		name  string
		in    string
		sizes []int
		err   bool
	}{
		{"two chains", `[{"certificates":[{"encoded":` + jsonString(pemOf(leaf)) + `},{"encoded":` + jsonString(pemOf(root)) + `}]},` +
			`{"certificates":[{"encoded":` + jsonString(pemOf(root)) + `}], "extra": 1}]`, []int{2, 1}, false},
		{"empty list", `[]`, []int{}, false},
		{"null", `null`, []int{}, false},
		{"empty chain", `[{"certificates":[]}]`, []int{0}, false},
		{"not json", `<html>`, nil, true},
		{"object", `{"certificates":[]}`, nil, true},
		{"bad pem", `[{"certificates":[{"encoded":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}]}]`, nil, true},
		{"empty encoded", `[{"certificates":[{"encoded":""}]}]`, nil, true},
	}
	for _, tc := range tests {
		chains, err := parseIDM([]byte(tc.in))
		if (err != nil) != tc.err {
			t.Errorf("%s: error %v", tc.name, err)
			continue
		}
		var sizes []int
		for _, c := range chains {
			sizes = append(sizes, len(c))
		}
		if !tc.err && !slices.Equal(sizes, tc.sizes) && !(len(sizes) == 0 && len(tc.sizes) == 0) {
			t.Errorf("%s: chain sizes %v, want %v", tc.name, sizes, tc.sizes)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// FuzzParseIDM checks that the IDM parser never panics, and that what it
// accepts survives encoding back to the IDM format.
func FuzzParseIDM(f *testing.F) {
	root, key := testCert(f, "root", time.Now().AddDate(1, 0, 0), nil, nil)
	leaf, _ := testCert(f, "leaf", time.Now().AddDate(1, 0, 0), root, key)
	f.Add([]byte(encodeIDM([][]*x509.Certificate{{leaf, root}, {root}})))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"certificates":[{"encoded":"MIIB"}]}]`))
	f.Add([]byte(`[{"certificates":null},{}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		chains, err := parseIDM(data)
		if err != nil {
			return
		}
		again, err := parseIDM([]byte(encodeIDM(chains)))
		if err != nil {
			t.Fatalf("re-encoded answer does not parse: %v", err)
		}
		if len(again) != len(chains) {
			t.Fatalf("%d chains, then %d", len(chains), len(again))
		}
		for i := range chains {
			if len(again[i]) != len(chains[i]) {
				t.Fatalf("chain %d: %d certificates, then %d", i, len(chains[i]), len(again[i]))
			}
			for j := range chains[i] {
				if !bytes.Equal(again[i][j].Raw, chains[i][j].Raw) {
					t.Fatalf("chain %d certificate %d changed", i, j)
				}
			}
		}
	})
}

// encodeIDM writes chains as the IDM endpoint does.
func encodeIDM(chains [][]*x509.Certificate) string {
	out := make([]idmChain, len(chains))
	for i, c := range chains {
		for _, cert := range c {
			out[i].Certificates = append(out[i].Certificates, struct {
				Encoded string `json:"encoded"`
			}{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))})
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// TestCertificatesFallback drops the IDM request: the report then comes
// from vmdir's chains, and says so.
func TestCertificatesFallback(t *testing.T) {
	l, env, out := testLab(t, "sts-expired")
	ctx := context.Background()
	want, err := runCertificates(ctx, env, &certificatesParams{})
	if err != nil {
		t.Fatal(err)
	}
	l.Model().Faults.Reset()
	for range 3 { // the TLS handshake, and the request should it get through
		l.Model().Faults.DropNext(model.ProtoHTTPS)
	}
	got, err := runCertificates(ctx, env, &certificatesParams{Node: l.Model().Nodes[1].PNID})
	if err != nil {
		t.Fatal(err)
	}
	l.Model().Faults.Reset()
	if got.ReportSource != "vmdir" || got.IDMError == "" || !strings.Contains(out.String(), "IDM endpoint of") {
		t.Fatalf("source %q, idm error %q, operator output %q", got.ReportSource, got.IDMError, out)
	}
	if got.Report != want.Report || got.ExpiredLeaves != 1 || got.Active != want.Active {
		t.Errorf("fallback report differs:\n%s\nwant\n%s", got.Report, want.Report)
	}
	for _, c := range got.Chains {
		if c.Source == "idm" {
			t.Error("an IDM chain is listed though the endpoint did not answer")
		}
	}
}

// TestCertificatesNode checks which node is read: the one named, the
// first node's domain controller from the facts, or the first node.
func TestCertificatesNode(t *testing.T) {
	l, env, _ := testLab(t, "healthy")
	n1, n2 := l.Model().Nodes[0].PNID, l.Model().Nodes[1].PNID
	tests := []struct {
		name, node, dc, want string
	}{
		{"first", "", "", n1},
		{"named", n2, n1, n2},
		{"domain controller", "", n2, n2},
		{"domain controller outside the target", "", "psc.elsewhere.test", n1},
	}
	for _, tc := range tests {
		e := *env
		e.Facts = engine.Facts{DCName: tc.dc}
		out, err := runCertificates(context.Background(), &e, &certificatesParams{Node: tc.node})
		if err != nil || out.Node != tc.want {
			t.Errorf("%s: read %s, %v; want %s", tc.name, out.Node, err, tc.want)
		}
	}
	if _, err := runCertificates(context.Background(), &engine.Env{}, &certificatesParams{}); err == nil {
		t.Error("read without a target")
	}
}
