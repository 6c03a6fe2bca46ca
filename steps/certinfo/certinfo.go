// Package certinfo parses X.509 certificates in the forms vCenter procedures
// hand around (PEM, base64 DER, the Lookup Service's single-line sslTrust) and
// describes them the way the KB articles and their tools print them:
// OpenSSL-style thumbprints and names, KB 2121701's 64-column PEM rebuild and
// checksts's leaf/root rule.
package certinfo

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	_ "crypto/sha1" // registers crypto.SHA1 for Thumbprint
	_ "crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Info describes one certificate. Field names are what runbook expressions
// and JSON outputs see.
type Info struct {
	// Subject is the subject DN in OpenSSL's RFC 2253 order (most specific
	// first) with ", " between RDNs, e.g. "CN=vcsa1.lab.test, O=VMware, C=US".
	Subject string `json:"subject" expr:"subject"`
	// Issuer is the issuer DN, rendered as Subject is.
	Issuer string `json:"issuer" expr:"issuer"`
	// Serial is the serial number in upper-case hex, as `openssl x509 -serial`
	// prints it.
	Serial string `json:"serial" expr:"serial"`
	// NotBefore is the start of the validity period.
	NotBefore time.Time `json:"notBefore" expr:"notBefore"`
	// NotAfter is the end of the validity period.
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
	// DaysLeft is the number of whole days from the time of parsing until
	// NotAfter, rounded down; it is negative once the certificate has expired.
	DaysLeft int `json:"daysLeft" expr:"daysLeft"`
	// Expired is true when the time of parsing is after NotAfter.
	Expired bool `json:"expired" expr:"expired"`
	// SANs lists the subject alternative names: DNS names, then IP
	// addresses, e-mail addresses and URIs.
	SANs []string `json:"sans" expr:"sans"`
	// IsCA is true when basicConstraints says CA:TRUE.
	IsCA bool `json:"isCA" expr:"isCA"`
	// IsLeaf is true when the certificate has an authorityKeyIdentifier
	// extension, the rule checksts (KB 79248) uses to tell LEAF from ROOT.
	IsLeaf bool `json:"isLeaf" expr:"isLeaf"`
	// SHA1 is the SHA-1 thumbprint of the DER, "AB:CD:…" as
	// `openssl x509 -noout -fingerprint -sha1` prints it after "=".
	SHA1 string `json:"sha1" expr:"sha1"`
	// SHA256 is the SHA-256 thumbprint in the same form.
	SHA256 string `json:"sha256" expr:"sha256"`
	// SKID is the subject key identifier in upper-case hex without colons,
	// the form vmdir uses to name trusted CAs; "" when absent.
	SKID string `json:"skid" expr:"skid"`
	// AKID is the authority key identifier's keyIdentifier in the same form;
	// "" when absent.
	AKID string `json:"akid" expr:"akid"`
	// KeyAlgorithm is the public key's algorithm and size, e.g. "RSA 2048",
	// "ECDSA P-256" or "Ed25519".
	KeyAlgorithm string `json:"keyAlgorithm" expr:"keyAlgorithm"`
	// KeyUsage lists the keyUsage bits by their RFC 5280 names, e.g.
	// "digitalSignature", "keyCertSign".
	KeyUsage []string `json:"keyUsage" expr:"keyUsage"`
	// ExtKeyUsage lists the extendedKeyUsage purposes, e.g. "serverAuth";
	// purposes without a name appear as dotted OIDs.
	ExtKeyUsage []string `json:"extKeyUsage" expr:"extKeyUsage"`
	// PEM is the certificate rebuilt as KB 2121701 Task 1 does: the BEGIN
	// line, the base64 DER in 64-character lines, the END line, each
	// followed by a newline.
	PEM string `json:"pem" expr:"pem"`
	// Base64 is the DER as one base64 line without armor, the form of a
	// Lookup Service sslTrust.
	Base64 string `json:"base64" expr:"base64"`
}

// Parse decodes every certificate in input (see Decode for the accepted
// forms) and describes each one as of now.
func Parse(input string) ([]Info, error) {
	return ParseAt(input, time.Now())
}

// ParseAt is Parse with DaysLeft and Expired computed as of now.
func ParseAt(input string, now time.Time) ([]Info, error) {
	certs, err := Decode(input)
	if err != nil {
		return nil, err
	}
	infos := make([]Info, len(certs))
	for i, c := range certs {
		infos[i] = Describe(c, now)
	}
	return infos, nil
}

// errNoCert is returned for input that holds no certificate at all.
var errNoCert = errors.New("no certificate in input")

// Decode returns the certificates in input, in order. Input is one of:
//   - PEM: one or several CERTIFICATE blocks, with or without text around
//     them (other block types, such as keys, are ignored; a CERTIFICATE
//     block that does not decode is an error);
//   - base64 DER without armor: a single line (a Lookup Service sslTrust) or
//     wrapped lines (a PEM body), of one certificate or several concatenated;
//   - raw DER bytes.
//
// Line endings may be LF or CRLF.
func Decode(input string) ([]*x509.Certificate, error) {
	s := strings.TrimPrefix(strings.TrimSpace(input), "\uFEFF")
	if s == "" {
		return nil, errNoCert
	}
	if strings.Contains(s, "-----BEGIN") {
		return decodePEM(s)
	}
	if der, ok := decodeBase64(s); ok {
		certs, err := x509.ParseCertificates(der)
		if err != nil {
			return nil, fmt.Errorf("parse base64 DER certificate: %w", err)
		}
		if len(certs) == 0 {
			return nil, errNoCert
		}
		return certs, nil
	}
	if len(s) > 1 && s[0] == 0x30 && s[1]&0x80 != 0 { // SEQUENCE, long-form length: raw DER
		certs, err := x509.ParseCertificates([]byte(input))
		if err != nil {
			return nil, fmt.Errorf("parse DER certificate: %w", err)
		}
		return certs, nil
	}
	return nil, errors.New("parse certificate: input is neither PEM nor base64 DER")
}

const pemCertType = "CERTIFICATE"

func decodePEM(s string) ([]*x509.Certificate, error) {
	// A BEGIN line that does not start a line (vecs-cli prints
	// "Certificate :\t-----BEGIN CERTIFICATE-----") is moved onto its own.
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "-----BEGIN ", "\n-----BEGIN ")
	want := strings.Count(s, "-----BEGIN "+pemCertType+"-----")
	var certs []*x509.Certificate
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemCertType {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PEM certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) != want {
		return nil, fmt.Errorf("parse PEM: %d of %d CERTIFICATE blocks are malformed", want-len(certs), want)
	}
	if len(certs) == 0 {
		return nil, errNoCert
	}
	return certs, nil
}

// decodeBase64 decodes s as base64 after removing white space, with or
// without padding. It reports false when s is not base64.
func decodeBase64(s string) ([]byte, bool) {
	compact := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if der, err := enc.DecodeString(compact); err == nil && len(der) > 0 {
			return der, true
		}
	}
	return nil, false
}

// Describe describes c as of now.
func Describe(c *x509.Certificate, now time.Time) Info {
	return Info{
		Subject:      nameOrHex(c.RawSubject),
		Issuer:       nameOrHex(c.RawIssuer),
		Serial:       SerialHex(c.SerialNumber),
		NotBefore:    c.NotBefore,
		NotAfter:     c.NotAfter,
		DaysLeft:     daysLeft(c.NotAfter, now),
		Expired:      now.After(c.NotAfter),
		SANs:         sans(c),
		IsCA:         c.BasicConstraintsValid && c.IsCA,
		IsLeaf:       hasExtension(c, oidAuthorityKeyID),
		SHA1:         Thumbprint(c.Raw, crypto.SHA1),
		SHA256:       Thumbprint(c.Raw, crypto.SHA256),
		SKID:         strings.ToUpper(hex.EncodeToString(c.SubjectKeyId)),
		AKID:         strings.ToUpper(hex.EncodeToString(c.AuthorityKeyId)),
		KeyAlgorithm: keyAlgorithm(c),
		KeyUsage:     keyUsage(c.KeyUsage),
		ExtKeyUsage:  extKeyUsage(c),
		PEM:          PEM64(c.Raw),
		Base64:       Base64(c.Raw),
	}
}

// nameOrHex renders a DN, falling back to "#" and the hex DER when the DN
// does not decode (x509 has already accepted it, so this is a safeguard).
func nameOrHex(raw []byte) string {
	s, err := Name(raw)
	if err != nil {
		return "#" + strings.ToUpper(hex.EncodeToString(raw))
	}
	return s
}

// daysLeft is floor((notAfter-now)/24h), computed on Unix seconds so that
// validity periods longer than time.Duration's range do not saturate.
func daysLeft(notAfter, now time.Time) int {
	d := notAfter.Unix() - now.Unix()
	days := d / 86400
	if d%86400 < 0 {
		days--
	}
	return int(days)
}

func sans(c *x509.Certificate) []string {
	out := make([]string, 0, len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses)+len(c.URIs))
	out = append(out, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	out = append(out, c.EmailAddresses...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

var oidAuthorityKeyID = []int{2, 5, 29, 35}

func hasExtension(c *x509.Certificate, oid []int) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

// Thumbprint returns the h digest of der as upper-case hex pairs separated
// by colons, the form `openssl x509 -noout -fingerprint` prints after "=".
// It returns "" when h is not linked into the binary (SHA-1 and SHA-256
// always are).
func Thumbprint(der []byte, h crypto.Hash) string {
	if !h.Available() {
		return ""
	}
	d := h.New()
	d.Write(der)
	return colonHex(d.Sum(nil))
}

func colonHex(b []byte) string {
	const digits = "0123456789ABCDEF"
	if len(b) == 0 {
		return ""
	}
	out := make([]byte, 0, len(b)*3-1)
	for i, x := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, digits[x>>4], digits[x&0x0f])
	}
	return string(out)
}

// ParseThumbprint decodes a thumbprint typed or pasted by a person: hex
// pairs separated by colons, spaces or nothing, in either case, with the
// invisible marks Windows' certificate viewer adds when copied ignored. It
// returns the digest bytes, which must be 20 (SHA-1) or 32 (SHA-256) long.
func ParseThumbprint(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ':', ' ', '\t', '\u200e', '\u200f', '\ufeff', '\u200b':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	b, err := hex.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("parse thumbprint %q: not hex pairs", s)
	}
	if len(b) != 20 && len(b) != 32 {
		return nil, fmt.Errorf("parse thumbprint %q: %d bytes, want 20 (SHA-1) or 32 (SHA-256)", s, len(b))
	}
	return b, nil
}

// PEM64 returns der as a PEM CERTIFICATE block with 64-character base64
// lines, exactly as KB 2121701 Task 1 rebuilds a certificate from an
// sslTrust string:
//
//	-----BEGIN CERTIFICATE-----
//	MIID…(64 characters per line)
//	-----END CERTIFICATE-----
//
// Every line, the last included, ends with a newline.
func PEM64(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: pemCertType, Bytes: der}))
}

// Base64 returns der as a single line of standard base64 (with padding),
// the form of a Lookup Service sslTrust string.
func Base64(der []byte) string {
	return base64.StdEncoding.EncodeToString(der)
}

// SerialHex renders a serial number as `openssl x509 -serial` does:
// upper-case hex of the magnitude's bytes (an even number of digits), "00"
// for zero and a leading "-" for a negative serial.
func SerialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := n.Bytes()
	if len(b) == 0 {
		return "00"
	}
	s := strings.ToUpper(hex.EncodeToString(b))
	if n.Sign() < 0 {
		return "-" + s
	}
	return s
}

func keyAlgorithm(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return c.PublicKeyAlgorithm.String()
}

var keyUsageNames = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digitalSignature"},
	{x509.KeyUsageContentCommitment, "contentCommitment"},
	{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
	{x509.KeyUsageDataEncipherment, "dataEncipherment"},
	{x509.KeyUsageKeyAgreement, "keyAgreement"},
	{x509.KeyUsageCertSign, "keyCertSign"},
	{x509.KeyUsageCRLSign, "cRLSign"},
	{x509.KeyUsageEncipherOnly, "encipherOnly"},
	{x509.KeyUsageDecipherOnly, "decipherOnly"},
}

func keyUsage(u x509.KeyUsage) []string {
	out := []string{}
	for _, k := range keyUsageNames {
		if u&k.bit != 0 {
			out = append(out, k.name)
		}
	}
	return out
}

var extKeyUsageNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:                            "any",
	x509.ExtKeyUsageServerAuth:                     "serverAuth",
	x509.ExtKeyUsageClientAuth:                     "clientAuth",
	x509.ExtKeyUsageCodeSigning:                    "codeSigning",
	x509.ExtKeyUsageEmailProtection:                "emailProtection",
	x509.ExtKeyUsageIPSECEndSystem:                 "ipsecEndSystem",
	x509.ExtKeyUsageIPSECTunnel:                    "ipsecTunnel",
	x509.ExtKeyUsageIPSECUser:                      "ipsecUser",
	x509.ExtKeyUsageTimeStamping:                   "timeStamping",
	x509.ExtKeyUsageOCSPSigning:                    "OCSPSigning",
	x509.ExtKeyUsageMicrosoftServerGatedCrypto:     "msSGC",
	x509.ExtKeyUsageNetscapeServerGatedCrypto:      "nsSGC",
	x509.ExtKeyUsageMicrosoftCommercialCodeSigning: "msCodeCom",
	x509.ExtKeyUsageMicrosoftKernelCodeSigning:     "msKernelCodeSigning",
}

func extKeyUsage(c *x509.Certificate) []string {
	out := []string{}
	for _, u := range c.ExtKeyUsage {
		if name, ok := extKeyUsageNames[u]; ok {
			out = append(out, name)
		} else {
			out = append(out, fmt.Sprintf("extKeyUsage(%d)", int(u)))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		out = append(out, oid.String())
	}
	return out
}
