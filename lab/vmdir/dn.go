package vmdir

import (
	"encoding/hex"
	"sort"
	"strings"
)

// ava is one attributeType=value pair of an RDN; typ is as written, val is
// the unescaped value.
type ava struct {
	typ string
	val string
}

// rdn is a relative distinguished name: one or more AVAs joined by '+'.
type rdn []ava

// parseDN parses an RFC 4514 distinguished name (also accepting the RFC 2253
// ';' separator, quoted values and spaces around separators). The empty
// string is the empty DN (the root DSE).
func parseDN(s string) ([]rdn, error) {
	p := dnParser{s: s}
	p.skipSpaces()
	if p.i == len(s) {
		return nil, nil
	}
	var out []rdn
	for {
		r, more, err := p.rdn()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		if !more {
			return out, nil
		}
		p.skipSpaces()
		if p.i == len(s) {
			return nil, p.fail("trailing separator")
		}
	}
}

type dnParser struct {
	s string
	i int
}

func (p *dnParser) skipSpaces() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *dnParser) fail(why string) error {
	return errorf(CodeInvalidDNSyntax, "invalid DN %q: %s", p.s, why)
}

// rdn parses AVAs up to and including the next ',' or ';' (more is true)
// or up to the end (more is false).
func (p *dnParser) rdn() (r rdn, more bool, err error) {
	for {
		a, err := p.ava()
		if err != nil {
			return nil, false, err
		}
		r = append(r, a)
		if p.i == len(p.s) {
			return r, false, nil
		}
		switch p.s[p.i] {
		case '+':
			p.i++
		case ',', ';':
			p.i++
			return r, true, nil
		default:
			return nil, false, p.fail("unexpected " + string(p.s[p.i]))
		}
	}
}

func (p *dnParser) ava() (ava, error) {
	p.skipSpaces()
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != '=' {
		c := p.s[p.i]
		if !(isAlnum(c) || c == '-' || c == '.' || c == ' ') {
			return ava{}, p.fail("bad character in attribute type")
		}
		p.i++
	}
	if p.i == len(p.s) {
		return ava{}, p.fail("missing '='")
	}
	typ := strings.TrimRight(p.s[start:p.i], " ")
	if !validAttrType(typ) {
		return ava{}, p.fail("bad attribute type " + quote(typ))
	}
	p.i++ // '='
	p.skipSpaces()
	val, err := p.value()
	if err != nil {
		return ava{}, err
	}
	return ava{typ: typ, val: val}, nil
}

// value parses an attribute value and leaves p.i at the separator or end.
func (p *dnParser) value() (string, error) {
	if p.i < len(p.s) && p.s[p.i] == '#' {
		start := p.i
		p.i++
		for p.i < len(p.s) && isHex(p.s[p.i]) {
			p.i++
		}
		v := p.s[start:p.i]
		if len(v) < 3 || len(v)%2 == 0 {
			return "", p.fail("bad hex value")
		}
		p.skipSpaces()
		if p.i < len(p.s) && !isSep(p.s[p.i]) {
			return "", p.fail("garbage after hex value")
		}
		return strings.ToLower(v), nil
	}
	if p.i < len(p.s) && p.s[p.i] == '"' {
		p.i++
		var b strings.Builder
		for {
			if p.i == len(p.s) {
				return "", p.fail("unterminated quoted value")
			}
			c := p.s[p.i]
			if c == '"' {
				p.i++
				break
			}
			if c == '\\' {
				ch, err := p.escape()
				if err != nil {
					return "", err
				}
				b.WriteByte(ch)
				continue
			}
			b.WriteByte(c)
			p.i++
		}
		p.skipSpaces()
		if p.i < len(p.s) && !isSep(p.s[p.i]) {
			return "", p.fail("garbage after quoted value")
		}
		return b.String(), nil
	}
	var b strings.Builder
	keep := 0 // length of b up to the last byte that is not an unescaped space
	for p.i < len(p.s) && !isSep(p.s[p.i]) {
		c := p.s[p.i]
		if c == '\\' {
			ch, err := p.escape()
			if err != nil {
				return "", err
			}
			b.WriteByte(ch)
			keep = b.Len()
			continue
		}
		if c == '"' {
			return "", p.fail("unescaped '\"' in value")
		}
		b.WriteByte(c)
		if c != ' ' {
			keep = b.Len()
		}
		p.i++
	}
	return b.String()[:keep], nil
}

// escape decodes "\X" or "\HH" at p.i.
func (p *dnParser) escape() (byte, error) {
	if p.i+1 >= len(p.s) {
		return 0, p.fail("dangling escape")
	}
	c := p.s[p.i+1]
	if isHex(c) {
		if p.i+2 >= len(p.s) || !isHex(p.s[p.i+2]) {
			return 0, p.fail("bad hex escape")
		}
		b, _ := hex.DecodeString(p.s[p.i+1 : p.i+3])
		p.i += 3
		return b[0], nil
	}
	if strings.IndexByte(" ,+\"\\<>;=#", c) < 0 {
		return 0, p.fail("bad escape")
	}
	p.i += 2
	return c, nil
}

func isSep(c byte) bool { return c == ',' || c == ';' || c == '+' }
func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
func quote(s string) string {
	return "\"" + s + "\""
}

// validAttrType accepts a descriptor (letter then letters, digits and '-')
// or a numeric OID.
func validAttrType(t string) bool {
	if t == "" {
		return false
	}
	if '0' <= t[0] && t[0] <= '9' {
		for i := 0; i < len(t); i++ {
			if !('0' <= t[i] && t[i] <= '9' || t[i] == '.') {
				return false
			}
		}
		return !strings.Contains(t, "..") && t[len(t)-1] != '.'
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(isAlnum(c) || c == '-') {
			return false
		}
	}
	return 'a' <= t[0]|0x20 && t[0]|0x20 <= 'z'
}

// normRDN renders r in canonical form: lower-case types and values,
// insignificant spaces removed, AVAs sorted, special characters escaped.
func normRDN(r rdn) string {
	parts := make([]string, len(r))
	for i, a := range r {
		parts[i] = strings.ToLower(a.typ) + "=" + escapeDNValue(normString(a.val))
	}
	if len(parts) > 1 {
		sort.Strings(parts)
	}
	return strings.Join(parts, "+")
}

func normRDNs(rs []rdn) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = normRDN(r)
	}
	return strings.Join(parts, ",")
}

// escapeDNValue escapes a value for use in a DN string (RFC 4514 §2.4).
func escapeDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(",+\"\\<>;=", c) >= 0,
			i == 0 && (c == '#' || c == ' '),
			i == len(v)-1 && c == ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteByte('\\')
			b.WriteString(hex.EncodeToString([]byte{c}))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// NormalizeDN returns the canonical form of dn: attribute types and values
// lower-cased, insignificant spaces removed, escapes decoded and re-applied
// canonically, multi-valued RDNs sorted. Two DNs name the same entry exactly
// when their normalized forms are equal. A malformed DN yields an *Error
// with code 34 (invalidDNSyntax).
func NormalizeDN(dn string) (string, error) {
	rs, err := parseDN(dn)
	if err != nil {
		return "", err
	}
	return normRDNs(rs), nil
}

// ParentDN returns the DN of the parent of dn, as written (without its first
// RDN), or "" when dn has a single RDN or is empty. It does not validate dn.
func ParentDN(dn string) string {
	inQuote := false
	for i := 0; i < len(dn); i++ {
		switch c := dn[i]; {
		case c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == ',' || c == ';'):
			return strings.TrimSpace(dn[i+1:])
		}
	}
	return ""
}

// sortKey orders DNs hierarchically: a parent sorts before its children and
// siblings sort by their normalized RDN.
func sortKey(rs []rdn) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[len(rs)-1-i] = normRDN(r)
	}
	return strings.Join(parts, "\x00")
}
