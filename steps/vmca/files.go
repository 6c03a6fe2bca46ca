package vmca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"runbook/internal/runfile"

	"runbook/steps/certinfo"
)

// material is an issued certificate, its key and the VMCA chain it was
// fetched with, checked to belong together.
type material struct {
	cerPEM, keyPEM, rootPEM []byte
	leaf                    *x509.Certificate
	chain                   []*x509.Certificate // root.cer's certificates, in file order
	keyPKCS8                []byte
}

// parseMaterial reads what certool wrote (the certificate file, whose
// first certificate is the new one, and its PEM private key) and the VMCA
// root file, and checks that the key is the certificate's and that the
// certificate chains to the root file's certificates.
func parseMaterial(cerPEM, keyPEM, rootPEM []byte) (*material, error) {
	certs, err := certinfo.Decode(string(cerPEM))
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	chain, err := certinfo.Decode(string(rootPEM))
	if err != nil {
		return nil, fmt.Errorf("parse VMCA root: %w", err)
	}
	key, pkcs8, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	m := &material{cerPEM: cerPEM, keyPEM: keyPEM, rootPEM: rootPEM, leaf: certs[0], chain: chain, keyPKCS8: pkcs8}
	if !keyMatches(m.leaf, key) {
		return nil, errors.New("the private key does not belong to the certificate")
	}
	if err := chainsTo(m.leaf, chain); err != nil {
		return nil, err
	}
	return m, nil
}

// parseKey decodes a PEM private key (PKCS#8, or PKCS#1 RSA as older
// certool builds write) and returns it with its unencrypted PKCS#8 DER,
// the form vmwSTSPrivateKey holds.
func parseKey(data []byte) (crypto.Signer, []byte, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, nil, errors.New("parse private key: no PEM private key found")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("parse private key: %w", err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, nil, fmt.Errorf("parse private key: %T cannot sign", key)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, nil, fmt.Errorf("encode private key as PKCS#8: %w", err)
		}
		return signer, der, nil
	}
}

// keyMatches reports whether key is the private half of c's public key.
func keyMatches(c *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(c.PublicKey)
}

// chainsTo checks that leaf's signature verifies with a certificate of
// chain, and so on up to a self-signed one or the end of the chain.
// Validity dates are not checked: the chain is judged on signatures, as
// STS judges its own signing chain.
func chainsTo(leaf *x509.Certificate, chain []*x509.Certificate) error {
	cur := leaf
	for depth := 0; depth <= len(chain); depth++ {
		var issuer *x509.Certificate
		for _, c := range chain {
			if c != cur && cur.CheckSignatureFrom(c) == nil {
				issuer = c
				break
			}
		}
		if issuer == nil {
			if depth == 0 {
				return fmt.Errorf("the certificate (issuer %s) is not signed by the VMCA root file's certificates", nameOf(leaf.RawIssuer))
			}
			return nil
		}
		if bytes.Equal(issuer.RawSubject, issuer.RawIssuer) && issuer.CheckSignatureFrom(issuer) == nil {
			return nil
		}
		cur = issuer
	}
	return nil
}

func nameOf(raw []byte) string {
	s, err := certinfo.Name(raw)
	if err != nil {
		return "(unreadable name)"
	}
	return s
}

// files names the local files of one issued certificate.
type files struct {
	dir  string
	base string // profile or name: sts, machine_ssl, …
}

func (f files) cer() string    { return filepath.Join(f.dir, f.base+".cer") }
func (f files) key() string    { return filepath.Join(f.dir, f.base+".key") }
func (f files) der() string    { return filepath.Join(f.dir, f.base+".der") }
func (f files) keyDER() string { return filepath.Join(f.dir, f.base+".key.der") }
func (f files) root() string   { return filepath.Join(f.dir, "root.cer") }

// chainDER names the DER file of the i-th (0-based) certificate of the
// root file, as fixsts.sh names the pieces csplit cuts: vmca01.der, …
func (f files) chainDER(i int) string {
	return filepath.Join(f.dir, fmt.Sprintf("vmca%02d.der", i+1))
}

// save writes the material: the PEM files as certool and VMCA wrote them,
// and the DER forms ldap.add reads (userCertificate:< file:, and the key
// as vmwSTSPrivateKey). Key files are readable by the owner only. Each
// file is written whole (temporary file, then rename); the certificate
// file goes last, so that a crash leaves no certificate without its key.
func (f files) save(m *material) error {
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", f.dir, err)
	}
	type write struct {
		path string
		data []byte
		perm os.FileMode
	}
	writes := []write{
		{f.key(), m.keyPEM, 0o600},
		{f.keyDER(), m.keyPKCS8, 0o600},
		{f.root(), m.rootPEM, 0o644},
	}
	for i, c := range m.chain {
		writes = append(writes, write{f.chainDER(i), c.Raw, 0o644})
	}
	writes = append(writes, write{f.der(), m.leaf.Raw, 0o644}, write{f.cer(), m.cerPEM, 0o644})
	for _, w := range writes {
		if err := runfile.Write(w.path, w.data, w.perm); err != nil {
			return err
		}
	}
	return nil
}

// load reads the files save wrote and checks them as parseMaterial does,
// and that the DER forms are those of the PEM files.
func (f files) load() (*material, error) {
	read := func(p string) ([]byte, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		return b, nil
	}
	cer, err := read(f.cer())
	if err != nil {
		return nil, err
	}
	key, err := read(f.key())
	if err != nil {
		return nil, err
	}
	root, err := read(f.root())
	if err != nil {
		return nil, err
	}
	m, err := parseMaterial(cer, key, root)
	if err != nil {
		return nil, err
	}
	want := map[string][]byte{f.der(): m.leaf.Raw, f.keyDER(): m.keyPKCS8}
	for i, c := range m.chain {
		want[f.chainDER(i)] = c.Raw
	}
	for p, data := range want {
		got, err := read(p)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(got, data) {
			return nil, fmt.Errorf("%s does not hold the DER of its PEM file", p)
		}
	}
	return m, nil
}

// outputs describes saved material as the step's outputs.
func (f files) outputs(m *material, now time.Time) issueOutputs {
	info := certinfo.Describe(m.leaf, now)
	out := issueOutputs{
		CertFile:      f.cer(),
		KeyFile:       f.key(),
		CertDERFile:   f.der(),
		KeyDERFile:    f.keyDER(),
		RootFile:      f.root(),
		ChainDERFiles: make([]string, len(m.chain)),
		CertBase64:    info.Base64,
		ChainBase64:   []string{binaryPrefix + info.Base64},
		SHA1:          info.SHA1,
		NotAfter:      info.NotAfter,
		Subject:       info.Subject,
		SANs:          info.SANs,
	}
	for i, c := range m.chain {
		out.ChainDERFiles[i] = f.chainDER(i)
		out.ChainBase64 = append(out.ChainBase64, binaryPrefix+certinfo.Base64(c.Raw))
	}
	return out
}

// binaryPrefix marks a binary value for ldap.add.
const binaryPrefix = "base64:"

// safeName turns s into a file name: letters, digits, '.', '-' and '_'
// are kept, anything else becomes '_'.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
	s = strings.TrimLeft(s, ".")
	if s == "" {
		return "_"
	}
	return s
}
