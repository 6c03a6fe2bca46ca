package certinfo

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"runbook/internal/testbin"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenNow is the clock the golden files were computed with.
var goldenNow = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// TestGolden parses the OpenSSL-made fixtures (see testdata/gen.sh) and
// compares the full description with testdata/NAME.golden.json.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			infos, err := ParseAt(string(src), goldenNow)
			if err != nil {
				t.Fatalf("ParseAt: %v", err)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(infos); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file; got:\n%s", name, got)
			}
		})
	}
}

// TestFixturesAgainstOpenSSL checks every fixture certificate against what
// openssl prints for it.
func TestFixturesAgainstOpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	inputs, _ := filepath.Glob("testdata/*.in")
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			certs, err := Decode(string(src))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range certs {
				checkOpenSSL(t, openssl, c)
			}
		})
	}
}

// TestKBRebuild checks the sslTrust and 64-column forms against what
// OpenSSL wrote for the same certificate (testdata/gen.sh): the sslTrust is
// the PEM body joined, and the PEM body is OpenSSL's own 64-column lines.
func TestKBRebuild(t *testing.T) {
	trust, err := os.ReadFile("testdata/machine-ssltrust.in")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("testdata/machine-body.in")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{string(trust), string(body)} {
		infos, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if infos[0].Base64 != string(trust) {
			t.Errorf("Base64 is not the sslTrust string")
		}
		want := "-----BEGIN CERTIFICATE-----\n" + string(body) + "-----END CERTIFICATE-----\n"
		if infos[0].PEM != want {
			t.Errorf("PEM:\n%s\nwant OpenSSL's:\n%s", infos[0].PEM, want)
		}
	}
}

// testCA issues certificates for the tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue signs tmpl with ca (self-signed when ca is nil) and returns the
// parsed certificate and its key.
func issue(t testing.TB, ca *testCA, tmpl *x509.Certificate) *testCA {
	t.Helper()
	key := newKey(t)
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{c, key}
}

func rootTemplate() *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(0xC3A1F4),
		Subject: pkix.Name{
			CommonName: "CA", Country: []string{"US"}, Province: []string{"California"},
			Organization: []string{"vcsa1.lab.test"}, OrganizationalUnit: []string{"VMware Engineering"},
		},
		NotBefore:             time.Date(2019, 4, 6, 11, 57, 19, 0, time.UTC),
		NotAfter:              time.Date(2029, 4, 6, 11, 57, 19, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          []byte{0x1c, 0x3f, 0x00, 0xab},
	}
}

func leafTemplate() *x509.Certificate {
	u, _ := url.Parse("https://vcsa1.lab.test/")
	return &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes([]byte{0x8a, 0x01}),
		Subject:               pkix.Name{CommonName: "vcsa1.lab.test", Organization: []string{"VMware"}},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 6876, 1}},
		DNSNames:              []string{"vcsa1.lab.test", "vcsa1"},
		IPAddresses:           []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("2001:db8::10")},
		EmailAddresses:        []string{"admin@lab.test"},
		URIs:                  []*url.URL{u},
		SubjectKeyId:          []byte{0xde, 0xad, 0xbe, 0xef},
	}
}

// TestDescribe checks each field of generated certificates against the
// templates they were made from and against independent computations.
func TestDescribe(t *testing.T) {
	root := issue(t, nil, rootTemplate())
	leaf := issue(t, root, leafTemplate())
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	tests := []struct {
		name string
		cert *x509.Certificate
		want Info
	}{
		{
			name: "root",
			cert: root.cert,
			want: Info{
				Subject:      "CN=CA, OU=VMware Engineering, O=vcsa1.lab.test, ST=California, C=US",
				Issuer:       "CN=CA, OU=VMware Engineering, O=vcsa1.lab.test, ST=California, C=US",
				Serial:       "C3A1F4",
				NotBefore:    rootTemplate().NotBefore,
				NotAfter:     rootTemplate().NotAfter,
				DaysLeft:     1404, // 2025-06-01T12:00 → 2029-04-06T11:57:19
				SANs:         []string{},
				IsCA:         true,
				IsLeaf:       false,
				SKID:         "1C3F00AB",
				AKID:         "",
				KeyAlgorithm: "ECDSA P-256",
				KeyUsage:     []string{"keyCertSign", "cRLSign"},
				ExtKeyUsage:  []string{},
			},
		},
		{
			name: "leaf",
			cert: leaf.cert,
			want: Info{
				Subject:   "CN=vcsa1.lab.test, O=VMware",
				Issuer:    "CN=CA, OU=VMware Engineering, O=vcsa1.lab.test, ST=California, C=US",
				Serial:    "8A01",
				NotBefore: leafTemplate().NotBefore,
				NotAfter:  leafTemplate().NotAfter,
				DaysLeft:  213, // 2025-06-01T12:00 → 2026-01-01T00:00 is 213.5 days
				SANs: []string{"vcsa1.lab.test", "vcsa1", "192.0.2.10", "2001:db8::10",
					"admin@lab.test", "https://vcsa1.lab.test/"},
				IsCA:         false,
				IsLeaf:       true,
				SKID:         "DEADBEEF",
				AKID:         "1C3F00AB",
				KeyAlgorithm: "ECDSA P-256",
				KeyUsage:     []string{"digitalSignature", "keyEncipherment"},
				ExtKeyUsage:  []string{"serverAuth", "clientAuth", "1.3.6.1.4.1.6876.1"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Describe(tc.cert, now)
			want := tc.want
			s1, s256 := sha1.Sum(tc.cert.Raw), sha256.Sum256(tc.cert.Raw)
			want.SHA1 = spacedHex(s1[:])
			want.SHA256 = spacedHex(s256[:])
			want.Base64 = base64.StdEncoding.EncodeToString(tc.cert.Raw)
			want.PEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.cert.Raw}))
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(want, "", "  ")
				t.Errorf("Describe:\n got %s\nwant %s", g, w)
			}
		})
	}
}

// spacedHex formats b as "AB:CD" independently of colonHex.
func spacedHex(b []byte) string {
	pairs := make([]string, len(b))
	for i, x := range b {
		pairs[i] = strings.ToUpper(hex.EncodeToString([]byte{x}))
	}
	return strings.Join(pairs, ":")
}

// TestIsLeafFollowsExtensionPresence checks checksts's rule: an
// authorityKeyIdentifier extension makes a leaf even when it carries no
// keyIdentifier, and a CA certificate with the extension is a leaf too.
func TestIsLeafFollowsExtensionPresence(t *testing.T) {
	root := issue(t, nil, rootTemplate())
	// An AKI with only authorityCertSerialNumber: [2] INTEGER 1.
	akiNoKeyID, _ := asn1.Marshal(struct {
		Serial asn1.RawValue
	}{asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte{1}}})
	selfWithAKI := rootTemplate()
	selfWithAKI.ExtraExtensions = []pkix.Extension{{Id: oidAuthorityKeyID, Value: akiNoKeyID}}
	inter := rootTemplate()
	inter.Subject.CommonName = "intermediate"
	tests := []struct {
		name   string
		cert   *x509.Certificate
		isLeaf bool
		isCA   bool
		akid   string
	}{
		{"self-signed root", root.cert, false, true, ""},
		{"intermediate CA signed by root", issue(t, root, inter).cert, true, true, "1C3F00AB"},
		{"AKI without keyIdentifier", issue(t, nil, selfWithAKI).cert, true, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Describe(tc.cert, goldenNow)
			if got.IsLeaf != tc.isLeaf || got.IsCA != tc.isCA || got.AKID != tc.akid {
				t.Errorf("isLeaf=%v isCA=%v akid=%q, want %v %v %q", got.IsLeaf, got.IsCA, got.AKID, tc.isLeaf, tc.isCA, tc.akid)
			}
		})
	}
}

// TestDecodeForms feeds one chain in every accepted form and expects the
// same certificates back, in order.
func TestDecodeForms(t *testing.T) {
	root := issue(t, nil, rootTemplate())
	leaf := issue(t, root, leafTemplate())
	leafPEM, rootPEM := PEM64(leaf.cert.Raw), PEM64(root.cert.Raw)
	leafB64 := Base64(leaf.cert.Raw)
	key, _ := x509.MarshalECPrivateKey(leaf.key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: key}))
	var wrapped strings.Builder
	for s := leafB64; len(s) > 0; {
		n := min(64, len(s))
		wrapped.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	one := []*x509.Certificate{leaf.cert}
	two := []*x509.Certificate{leaf.cert, root.cert}

	tests := []struct {
		name  string
		input string
		want  []*x509.Certificate
	}{
		{"PEM", leafPEM, one},
		{"PEM chain", leafPEM + rootPEM, two},
		{"PEM CRLF", strings.ReplaceAll(leafPEM+rootPEM, "\n", "\r\n"), two},
		{"PEM with text around and a key", "subject=x\n" + leafPEM + "\n" + keyPEM + "trailer\n" + rootPEM, two},
		{"PEM after a label on the same line", "Alias :\t__MACHINE_CERT\nCertificate :\t" + leafPEM, one},
		{"PEM with BOM and blank lines", "\uFEFF\n\n" + leafPEM + "\n\n", one},
		{"sslTrust single line", leafB64, one},
		{"sslTrust with surrounding space", "  " + leafB64 + "\n", one},
		{"base64 wrapped at 64", wrapped.String(), one},
		{"base64 without padding", strings.TrimRight(leafB64, "="), one},
		{"base64 of two concatenated DER", Base64(append(append([]byte{}, leaf.cert.Raw...), root.cert.Raw...)), two},
		{"raw DER", string(leaf.cert.Raw), one},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.input)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d certificates, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !got[i].Equal(tc.want[i]) {
					t.Errorf("certificate %d differs", i)
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	root := issue(t, nil, rootTemplate())
	good := PEM64(root.cert.Raw)
	lines := strings.Split(good, "\n")
	lines[3] = lines[3][:20] + "!!" + lines[3][22:] // not base64
	broken := strings.Join(lines, "\n")
	notDER := Base64([]byte("hello, this is not a certificate"))
	keyDER, _ := x509.MarshalECPrivateKey(root.key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	corrupt := append([]byte{}, root.cert.Raw...)
	corrupt[len(corrupt)/2] ^= 0xff

	tests := []struct {
		name, input, wantErr string
	}{
		{"empty", "", "no certificate in input"},
		{"white space", " \n\t", "no certificate in input"},
		{"prose", "SSL trust: (none)", "neither PEM nor base64 DER"},
		{"malformed PEM block", broken, "1 of 1 CERTIFICATE blocks are malformed"},
		{"one malformed block of two", good + broken, "1 of 2 CERTIFICATE blocks are malformed"},
		{"only a private key", keyPEM, "no certificate in input"},
		{"base64 that is not a certificate", notDER, "parse base64 DER certificate"},
		{"corrupt DER in PEM", PEM64(corrupt), "parse PEM certificate 1"},
		{"truncated sslTrust", Base64(root.cert.Raw[:len(root.cert.Raw)-10]), "parse base64 DER certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.input)
			if err == nil {
				t.Fatalf("Parse succeeded with %d certificates, want error %q", len(got), tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestDaysLeftAndExpired(t *testing.T) {
	notAfter := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		now      time.Time
		days     int
		expiring bool
	}{
		{"a year before", notAfter.AddDate(-1, 0, 0), 365, false},
		{"one day and a second before", notAfter.Add(-24*time.Hour - time.Second), 1, false},
		{"exactly one day before", notAfter.Add(-24 * time.Hour), 1, false},
		{"one second before", notAfter.Add(-time.Second), 0, false},
		{"at notAfter (still valid)", notAfter, 0, false},
		{"one second after", notAfter.Add(time.Second), -1, true},
		{"exactly one day after", notAfter.Add(24 * time.Hour), -1, true},
		{"a day and a second after", notAfter.Add(24*time.Hour + time.Second), -2, true},
		{"other time zone, same instant", notAfter.In(time.FixedZone("X", 5*3600)).Add(-time.Hour), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := daysLeft(notAfter, tc.now); got != tc.days {
				t.Errorf("daysLeft = %d, want %d", got, tc.days)
			}
			c := &x509.Certificate{NotAfter: notAfter, SerialNumber: big.NewInt(1)}
			if got := Describe(c, tc.now).Expired; got != tc.expiring {
				t.Errorf("Expired = %v, want %v", got, tc.expiring)
			}
		})
	}
	// Far-future certificates (notAfter 9999-12-31) exceed time.Duration.
	far := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	if got, want := daysLeft(far, goldenNow), 2912656; got != want {
		t.Errorf("daysLeft(9999-12-31) = %d, want %d", got, want)
	}
}

func TestThumbprint(t *testing.T) {
	tests := []struct {
		der  string
		h    crypto.Hash
		want string
	}{
		// FIPS 180 "abc" test vectors.
		{"abc", crypto.SHA1, "A9:99:3E:36:47:06:81:6A:BA:3E:25:71:78:50:C2:6C:9C:D0:D8:9D"},
		{"abc", crypto.SHA256, "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"},
		{"abc", crypto.MD4, ""}, // not linked in
	}
	for _, tc := range tests {
		if got := Thumbprint([]byte(tc.der), tc.h); got != tc.want {
			t.Errorf("Thumbprint(%q, %v) = %q, want %q", tc.der, tc.h, got, tc.want)
		}
	}
}

func TestParseThumbprint(t *testing.T) {
	sha1Hex := "a9993e364706816aba3e25717850c26c9cd0d89d"
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"openssl form", "A9:99:3E:36:47:06:81:6A:BA:3E:25:71:78:50:C2:6C:9C:D0:D8:9D", true},
		{"lower-case bare", sha1Hex, true},
		{"windows viewer with invisible mark", "\u200ea9 99 3e 36 47 06 81 6a ba 3e 25 71 78 50 c2 6c 9c d0 d8 9d", true},
		{"too short", "A9:99:3E", false},
		{"not hex", "ZZ:99:3E:36:47:06:81:6A:BA:3E:25:71:78:50:C2:6C:9C:D0:D8:9D", false},
		{"odd digits", sha1Hex[1:], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseThumbprint(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParseThumbprint(%q) = %x, want error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != sha1Hex {
				t.Errorf("got %x, want %s", got, sha1Hex)
			}
		})
	}
}

// TestPEM64 checks the KB 2121701 Task 1 layout line by line.
func TestPEM64(t *testing.T) {
	for _, n := range []int{0, 1, 47, 48, 49, 96, 1000} {
		der := bytes.Repeat([]byte{0xA5}, n)
		got := PEM64(der)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if !strings.HasSuffix(got, "\n") || lines[0] != "-----BEGIN CERTIFICATE-----" || lines[len(lines)-1] != "-----END CERTIFICATE-----" {
			t.Fatalf("n=%d: bad armor:\n%s", n, got)
		}
		body := lines[1 : len(lines)-1]
		for i, l := range body {
			if len(l) != 64 && i != len(body)-1 || len(l) > 64 || len(l) == 0 {
				t.Errorf("n=%d: line %d has %d characters", n, i+1, len(l))
			}
		}
		if joined := strings.Join(body, ""); joined != Base64(der) {
			t.Errorf("n=%d: body %q is not the base64 %q", n, joined, Base64(der))
		}
		if strings.Contains(Base64(der), "\n") {
			t.Errorf("n=%d: Base64 contains a newline", n)
		}
	}
}

func TestSerialHex(t *testing.T) {
	tests := []struct {
		n    *big.Int
		want string
	}{
		{big.NewInt(0), "00"},
		{big.NewInt(1), "01"},
		{big.NewInt(0x8a), "8A"},
		{big.NewInt(0x1234), "1234"},
		{big.NewInt(0x12345), "012345"},
		{big.NewInt(-1), "-01"},
		{nil, ""},
	}
	for _, tc := range tests {
		if got := SerialHex(tc.n); got != tc.want {
			t.Errorf("SerialHex(%v) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// atv builds one attribute of a raw name.
type atv struct {
	oid   asn1.ObjectIdentifier
	tag   int
	value []byte
}

// rawName encodes RDNs (each a list of attributes) as a DER Name.
func rawName(t testing.TB, rdns ...[]atv) []byte {
	t.Helper()
	var seq []attributeSET
	for _, rdn := range rdns {
		var set attributeSET
		for _, a := range rdn {
			set = append(set, attribute{Type: a.oid, Value: asn1.RawValue{Tag: a.tag, Bytes: a.value}})
		}
		seq = append(seq, set)
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

var (
	oidCN    = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidO     = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU    = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidC     = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidDC    = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidEmail = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	oidOther = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 6876, 99}
)

func utf8v(oid asn1.ObjectIdentifier, s string) atv { return atv{oid, asn1.TagUTF8String, []byte(s)} }

func bmp(s string) []byte {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r>>8), byte(r))
	}
	return b
}

// nameCases are names with every rendering rule; the openssl column says
// whether Go's x509 accepts the name in a certificate, so that openssl can
// be asked too.
var nameCases = []struct {
	name    string
	rdns    [][]atv
	want    string
	openssl bool
}{
	{"VMCA root order", [][]atv{
		{utf8v(oidOU, "VMware Engineering")}, {utf8v(oidO, "vcsa1.lab.test")}, {atv{oidC, asn1.TagPrintableString, []byte("US")}},
		{atv{oidDC, asn1.TagIA5String, []byte("local")}}, {atv{oidDC, asn1.TagIA5String, []byte("vsphere")}}, {utf8v(oidCN, "CA")},
	}, "CN=CA, DC=vsphere, DC=local, C=US, O=vcsa1.lab.test, OU=VMware Engineering", true},
	{"specials escaped", [][]atv{{utf8v(oidO, `a,b+c"d\e<f>g;h=i`)}}, `O=a\,b\+c\"d\\e\<f\>g\;h=i`, true},
	{"leading hash and spaces", [][]atv{{utf8v(oidCN, "# x ")}, {utf8v(oidOU, " y#")}}, `OU=\ y#, CN=\# x\ `, true},
	{"control characters", [][]atv{{utf8v(oidCN, "a\x01b\x7fc")}}, `CN=a\01b\7Fc`, true},
	{"multi-valued RDN", [][]atv{{utf8v(oidC, "US")}, {utf8v(oidCN, "n"), utf8v(oidOU, "ops")}}, "OU=ops + CN=n, C=US", true},
	{"UTF-8 kept", [][]atv{{utf8v(oidCN, "Café ü")}}, "CN=Café ü", true},
	{"BMPString", [][]atv{{atv{oidCN, asn1.TagBMPString, bmp("Zürich")}}}, "CN=Zürich", true},
	{"T61String as Latin-1", [][]atv{{atv{oidO, asn1.TagT61String, []byte("M\xfcller")}}}, "O=Müller", true},
	{"emailAddress and unknown OID", [][]atv{{atv{oidEmail, asn1.TagIA5String, []byte("a@b.c")}}, {utf8v(oidOther, "v")}}, "1.3.6.1.4.1.6876.99=#0C0176, emailAddress=a@b.c", true},
	{"UniversalString", [][]atv{{atv{oidCN, 28, []byte{0, 0, 0, 'h', 0, 0, 0, 'i'}}}}, "CN=hi", false},
	{"non-string value as DER hex", [][]atv{{atv{oidCN, asn1.TagInteger, []byte{0x01, 0xff}}}}, "CN=#020201FF", false},
	{"invalid UTF-8 byte escaped", [][]atv{{utf8v(oidCN, "a\xffb")}}, `CN=a\FFb`, false},
	{"empty name", nil, "", false},
}

func TestName(t *testing.T) {
	for _, tc := range nameCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Name(rawName(t, tc.rdns...))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Name = %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range [][]byte{nil, {0x30, 0x05}, append(rawName(t), 0)} {
		if got, err := Name(bad); err == nil {
			t.Errorf("Name(%x) = %q, want error", bad, got)
		}
	}
}

// TestGeneratedAgainstOpenSSL issues certificates with Go, including every
// name rendering rule openssl can be asked about, and compares with openssl.
func TestGeneratedAgainstOpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	root := issue(t, nil, rootTemplate())
	certs := map[string]*x509.Certificate{
		"root": root.cert,
		"leaf": issue(t, root, leafTemplate()).cert,
	}
	for i, tc := range nameCases {
		if !tc.openssl {
			continue
		}
		tmpl := leafTemplate()
		tmpl.SerialNumber = big.NewInt(int64(i + 1))
		tmpl.RawSubject = rawName(t, tc.rdns...)
		certs["name "+tc.name] = issue(t, root, tmpl).cert
	}
	for name, c := range certs {
		t.Run(name, func(t *testing.T) { checkOpenSSL(t, openssl, c) })
	}
}

func needOpenSSL(t *testing.T) string {
	t.Helper()
	return testbin.Need(t, "openssl", "openssl")
}

// openSSLNameOpt makes openssl print names as Name does.
const openSSLNameOpt = "esc_2253,esc_ctrl,utf8,dump_nostr,dump_unknown,dump_der,sep_comma_plus_space,dn_rev,sname"

// checkOpenSSL compares Describe(c) with openssl's view of c.
func checkOpenSSL(t *testing.T, openssl string, c *x509.Certificate) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "c.pem")
	if err := os.WriteFile(file, []byte(PEM64(c.Raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) map[string]string {
		out, err := exec.Command(openssl, append([]string{"x509", "-in", file, "-noout"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
		fields := map[string]string{}
		for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			k, v, _ := strings.Cut(line, "=")
			fields[strings.ToLower(k)] = v
		}
		return fields
	}
	info := Describe(c, goldenNow)
	// OpenSSL 3.0 prints only the last -fingerprint digest, so ask twice.
	if got := run("-fingerprint", "-sha1")["sha1 fingerprint"]; got != info.SHA1 {
		t.Errorf("sha1: openssl %q, certinfo %q", got, info.SHA1)
	}
	if got := run("-fingerprint", "-sha256")["sha256 fingerprint"]; got != info.SHA256 {
		t.Errorf("sha256: openssl %q, certinfo %q", got, info.SHA256)
	}
	f := run("-subject", "-issuer", "-serial", "-startdate", "-enddate", "-nameopt", openSSLNameOpt)
	if f["subject"] != info.Subject {
		t.Errorf("subject: openssl %q, certinfo %q", f["subject"], info.Subject)
	}
	if f["issuer"] != info.Issuer {
		t.Errorf("issuer: openssl %q, certinfo %q", f["issuer"], info.Issuer)
	}
	if f["serial"] != info.Serial {
		t.Errorf("serial: openssl %q, certinfo %q", f["serial"], info.Serial)
	}
	for _, d := range []struct {
		key  string
		want time.Time
	}{{"notbefore", info.NotBefore}, {"notafter", info.NotAfter}} {
		got, err := time.Parse("Jan _2 15:04:05 2006 MST", f[d.key])
		if err != nil {
			t.Errorf("%s: parse openssl date %q: %v", d.key, f[d.key], err)
		} else if !got.Equal(d.want) {
			t.Errorf("%s: openssl %v, certinfo %v", d.key, got, d.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/*.in")
	for _, in := range inputs {
		b, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("")
	f.Add("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n")
	f.Add("MIIBkTCB+wIJAK")
	f.Add("\x30\x82\x01\x00")
	f.Fuzz(func(t *testing.T, input string) {
		infos, err := ParseAt(input, goldenNow)
		if err == nil && len(infos) == 0 {
			t.Fatal("no error and no certificate")
		}
		for _, info := range infos {
			if _, err := Decode(info.PEM); err != nil {
				t.Fatalf("re-encoded PEM does not parse: %v", err)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	src, err := os.ReadFile("testdata/sts-chain-vecs.in")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAt(string(src), goldenNow); err != nil {
			b.Fatal(err)
		}
	}
}
