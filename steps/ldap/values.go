package ldap

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"runbook/steps/certinfo"
)

// binaryAttrs are vmdir's octet-string attributes that hold DER or other
// bytes: they are always base64 in outputs and LDIF, whatever their bytes.
var binaryAttrs = map[string]bool{
	"usercertificate":           true,
	"cacertificate":             true,
	"certificaterevocationlist": true,
	"authorityrevocationlist":   true,
	"crosscertificatepair":      true,
	"vmwstsprivatekey":          true,
	"vmwlkupssltrustanchor":     true,
}

// isBinaryAttr reports whether the attribute name holds binary values:
// one of binaryAttrs, or any name with the ";binary" option.
func isBinaryAttr(name string) bool {
	base, opts, _ := strings.Cut(strings.ToLower(name), ";")
	return binaryAttrs[base] || slices.Contains(strings.Split(opts, ";"), "binary")
}

// isSecretAttr reports whether the attribute name holds a secret that must
// never reach outputs, plans or logs: private keys and passwords.
func isSecretAttr(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "privatekey") || strings.Contains(n, "password")
}

// operationalAttrs are maintained by directory servers (vmdir, OpenLDAP,
// Active Directory style). Restore never writes them, and comparisons of
// entries ignore them.
var operationalAttrs = map[string]bool{
	"usncreated":            true,
	"usnchanged":            true,
	"objectguid":            true,
	"createtimestamp":       true,
	"modifytimestamp":       true,
	"creatorsname":          true,
	"modifiersname":         true,
	"entryuuid":             true,
	"entrycsn":              true,
	"entrydn":               true,
	"structuralobjectclass": true,
	"hassubordinates":       true,
	"subschemasubentry":     true,
	"vmwattributemetadata":  true,
}

func isOperationalAttr(name string) bool { return operationalAttrs[strings.ToLower(name)] }

// isText reports whether v is UTF-8 text without control characters other
// than tab and line breaks.
func isText(v []byte) bool {
	if !utf8.Valid(v) {
		return false
	}
	for _, c := range v {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// Entry is a directory entry as search outputs show it.
//
// Binary values — userCertificate, cACertificate, vmwLKUPSslTrustAnchor and
// the other certificate attributes, and every attribute with a value that
// is not UTF-8 text — are standard base64 (the DER of a certificate, as a
// Lookup Service sslTrust holds it), and their names are listed in Binary.
// Secrets are never shown: a vmwSTSPrivateKey value reads
// "<private key, N bytes>" and a password "<password>".
type Entry struct {
	// DN is the entry's distinguished name as the server returns it.
	DN string `json:"dn" expr:"dn"`
	// Attrs maps each attribute name to its values in server order.
	Attrs map[string][]string `json:"attrs" expr:"attrs"`
	// Binary names the attributes of Attrs whose values are base64.
	Binary []string `json:"binary" expr:"binary"`
}

// outputEntry converts e for outputs. names maps lower-case attribute names
// to the spelling the runbook asked for.
func outputEntry(e *entry, names map[string]string) Entry {
	out := Entry{DN: e.DN, Attrs: make(map[string][]string, len(e.Attrs)), Binary: []string{}}
	for _, a := range e.Attrs {
		name := a.Name
		if n, ok := names[strings.ToLower(name)]; ok {
			name = n
		}
		vals := make([]string, len(a.Values))
		switch {
		case isSecretAttr(name):
			for i, v := range a.Values {
				vals[i] = secretMarker(name, v)
			}
		case isBinaryAttr(name) || !allText(a.Values):
			for i, v := range a.Values {
				vals[i] = base64.StdEncoding.EncodeToString(v)
			}
			if !slices.Contains(out.Binary, name) {
				out.Binary = append(out.Binary, name)
			}
		default:
			for i, v := range a.Values {
				vals[i] = string(v)
			}
		}
		out.Attrs[name] = append(out.Attrs[name], vals...)
	}
	return out
}

func allText(vs [][]byte) bool {
	for _, v := range vs {
		if !isText(v) {
			return false
		}
	}
	return true
}

// secretMarker stands in for a secret value.
func secretMarker(name string, v []byte) string {
	if strings.Contains(strings.ToLower(name), "privatekey") {
		return fmt.Sprintf("<private key, %d bytes>", len(v))
	}
	return "<password>"
}

// describeValue shows a value in a plan: text as it is, a secret as a
// marker, and other binary values by size and SHA-256 (certificates also by
// subject and expiry).
func describeValue(name string, v []byte) string {
	if isSecretAttr(name) {
		return secretMarker(name, v)
	}
	if !isBinaryAttr(name) && isText(v) {
		return string(v)
	}
	sum := sha256.Sum256(v)
	digest := strings.ToUpper(hex.EncodeToString(sum[:8])) + "…"
	if c, err := x509.ParseCertificate(v); err == nil {
		subject, err := certinfo.Name(c.RawSubject)
		if err != nil {
			subject = c.Subject.String()
		}
		return fmt.Sprintf("<certificate %q, expires %s, %d bytes, sha256 %s>",
			subject, c.NotAfter.UTC().Format("2006-01-02"), len(v), digest)
	}
	return fmt.Sprintf("<%d bytes, sha256 %s>", len(v), digest)
}

// describeAttr shows an attribute's values in a plan, one "name: value"
// line each.
func describeAttr(name string, values [][]byte) string {
	lines := make([]string, len(values))
	for i, v := range values {
		lines[i] = name + ": " + describeValue(name, v)
	}
	return strings.Join(lines, "\n")
}

// describeEntry shows every attribute of e in a plan, one line per value.
func describeEntry(e *entry) string {
	var parts []string
	for _, a := range e.Attrs {
		if isOperationalAttr(a.Name) {
			continue
		}
		parts = append(parts, describeAttr(a.Name, a.Values))
	}
	return strings.Join(parts, "\n")
}

// base64Prefix marks a params value given as base64 bytes.
const base64Prefix = "base64:"

// paramValue decodes a value given in params: "base64:" and standard
// base64 (white space ignored) is binary, anything else is the text itself.
func paramValue(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, base64Prefix)
	if !ok {
		return []byte(s), nil
	}
	b64 = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, b64)
	v, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("value %q: bad base64 after %q: %w", abbreviate(s), base64Prefix, err)
	}
	return v, nil
}

// paramValues decodes a list of params values.
func paramValues(ss []string) ([][]byte, error) {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		v, err := paramValue(s)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// sameValues reports whether an attribute holds what it should: binary
// values byte for byte in the same order (a certificate chain is leaf
// first); other values as a set; objectClass values case-insensitively and
// ignoring "top", which servers add.
func sameValues(name string, want, have [][]byte) bool {
	if isBinaryAttr(name) {
		return slices.EqualFunc(want, have, bytes.Equal)
	}
	eq := bytes.Equal
	if strings.EqualFold(name, "objectClass") {
		eq = bytes.EqualFold
		notTop := func(v []byte) bool { return !bytes.EqualFold(v, []byte("top")) }
		want, have = filterValues(want, notTop), filterValues(have, notTop)
	}
	if len(want) != len(have) {
		return false
	}
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h []byte) bool { return eq(w, h) }) {
			return false
		}
	}
	for _, h := range have {
		if !slices.ContainsFunc(want, func(w []byte) bool { return eq(w, h) }) {
			return false
		}
	}
	return true
}

func filterValues(vs [][]byte, keep func([]byte) bool) [][]byte {
	var out [][]byte
	for _, v := range vs {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

// difference returns the name of the first attribute of want that have
// lacks or holds other values of, or "" when have holds everything want
// does. Attributes only have holds (server-maintained ones, the RDN) are
// not differences.
func difference(want, have *entry) string {
	for _, a := range want.Attrs {
		if isOperationalAttr(a.Name) {
			continue
		}
		if !sameValues(a.Name, a.Values, have.get(a.Name)) {
			return a.Name
		}
	}
	return ""
}
