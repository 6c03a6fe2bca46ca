package pki

import (
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// PEM block types.
const (
	BlockCertificate = "CERTIFICATE"
	BlockPrivateKey  = "PRIVATE KEY"
	BlockCRL         = "X509 CRL"
)

// EncodeCert returns der as a PEM "CERTIFICATE" block.
func EncodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: BlockCertificate, Bytes: der})
}

// EncodeCerts returns each DER certificate as a PEM block, concatenated.
func EncodeCerts(ders ...[]byte) []byte {
	var out []byte
	for _, d := range ders {
		out = append(out, EncodeCert(d)...)
	}
	return out
}

// EncodeKey returns a PKCS#8 DER key as a PEM "PRIVATE KEY" block.
func EncodeKey(pkcs8 []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: BlockPrivateKey, Bytes: pkcs8})
}

// EncodeCRL returns a DER CRL as a PEM "X509 CRL" block.
func EncodeCRL(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: BlockCRL, Bytes: der})
}

// DecodeCerts returns the DER bytes of every CERTIFICATE block in data, in
// order. Other blocks are skipped; data without any PEM block is an error.
func DecodeCerts(data []byte) ([][]byte, error) {
	var ders [][]byte
	found := false
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		found = true
		if b.Type == BlockCertificate {
			ders = append(ders, b.Bytes)
		}
	}
	if !found {
		return nil, errors.New("decode pem: no pem block found")
	}
	return ders, nil
}

// ParseCerts parses every CERTIFICATE block in data.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	ders, err := DecodeCerts(data)
	if err != nil {
		return nil, err
	}
	out := make([]*x509.Certificate, 0, len(ders))
	for i, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ParseKey parses the first private key block in data (PKCS#8
// "PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY" or SEC 1 "EC PRIVATE KEY") and
// returns it with its PKCS#8 DER form.
func ParseKey(data []byte) (crypto.Signer, []byte, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, nil, errors.New("parse private key: no private key block found")
		}
		var k any
		var err error
		switch b.Type {
		case BlockPrivateKey:
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("parse private key: %w", err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, nil, fmt.Errorf("parse private key: %T cannot sign", k)
		}
		pkcs8, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, nil, fmt.Errorf("encode private key: %w", err)
		}
		return signer, pkcs8, nil
	}
}

// TrustString returns der as one base64 line without PEM armor, the form
// of a Lookup Service sslTrust value.
func TrustString(der []byte) string {
	return base64.StdEncoding.EncodeToString(der)
}

// ParseTrust decodes an sslTrust value back to DER. It tolerates PEM armor
// and whitespace, as people paste them.
func ParseTrust(s string) ([]byte, error) {
	s = strings.ReplaceAll(s, "-----BEGIN CERTIFICATE-----", "")
	s = strings.ReplaceAll(s, "-----END CERTIFICATE-----", "")
	s = strings.Join(strings.Fields(s), "")
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode ssl trust: %w", err)
	}
	return der, nil
}

// Thumbprint returns the SHA-1 fingerprint of der as upper-case,
// colon-separated hex pairs, as `openssl x509 -fingerprint -sha1` prints it.
func Thumbprint(der []byte) string {
	sum := sha1.Sum(der)
	return colonHex(sum[:])
}

// Thumbprint256 returns the SHA-256 fingerprint of der like Thumbprint.
func Thumbprint256(der []byte) string {
	sum := sha256.Sum256(der)
	return colonHex(sum[:])
}

// SHA1Hex returns the lower-case 40-hex SHA-1 of der, the alias VECS gives
// TRUSTED_ROOTS and TRUSTED_ROOT_CRLS entries.
func SHA1Hex(der []byte) string {
	sum := sha1.Sum(der)
	return hex.EncodeToString(sum[:])
}

// SHA256Hex returns the lower-case hex SHA-256 of data.
func SHA256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// NormalizeThumbprint strips colons, spaces and invisible characters from a
// pasted thumbprint and lower-cases it.
func NormalizeThumbprint(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// SKIDHex returns cert's subject key identifier as upper-case hex without
// separators, the RDN under which vmdir keeps a trusted CA.
func SKIDHex(cert *x509.Certificate) string {
	return strings.ToUpper(hex.EncodeToString(cert.SubjectKeyId))
}

func colonHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	parts := make([]string, 0, len(b))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}
