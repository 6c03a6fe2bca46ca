package vmdir

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// filterOp is the kind of a filter node (RFC 4511 §4.5.1.7).
type filterOp int

const (
	opAnd filterOp = iota
	opOr
	opNot
	opEqual
	opSubstrings
	opGreaterOrEqual
	opLessOrEqual
	opPresent
	opApprox
	opExtensible
)

// maxFilterDepth bounds nesting so that hostile filters cannot exhaust the
// stack.
const maxFilterDepth = 100

// tri is a three-valued filter result: RFC 4511 filters evaluate to TRUE,
// FALSE or Undefined, and only TRUE selects an entry.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triUndefined
)

// filter is a compiled search filter.
type filter struct {
	op    filterOp
	kids  []*filter
	attr  string    // lower-case attribute type, options stripped
	at    *attrType // nil when the type is not in the schema
	value []byte    // assertion value (equality, ordering, approx, extensible)
	norm  string    // value prepared for at's syntax
	valid bool      // the assertion value is valid for at's syntax
	// substrings, as given and lower-cased for directory strings
	initial, initialFold []byte
	any, anyFold         [][]byte
	final, finalFold     []byte
	// extensible match
	rule    string
	dnAttrs bool
}

// compileFilter parses an RFC 4515 filter string. An empty string means
// (objectClass=*); a bare item without parentheses ("cn=x") is accepted.
func compileFilter(s string) (*filter, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = "(objectClass=*)"
	}
	if s[0] != '(' {
		s = "(" + s + ")"
	}
	p := filterParser{s: s}
	f, err := p.filter(0)
	if err != nil {
		return nil, err
	}
	if p.i != len(s) {
		return nil, p.fail("trailing characters")
	}
	return f, nil
}

type filterParser struct {
	s string
	i int
}

func (p *filterParser) fail(why string) error {
	return errorf(CodeFilterError, "bad search filter %q at offset %d: %s", p.s, p.i, why)
}

func (p *filterParser) filter(depth int) (*filter, error) {
	if depth > maxFilterDepth {
		return nil, p.fail("nested too deeply")
	}
	if p.i >= len(p.s) || p.s[p.i] != '(' {
		return nil, p.fail("expected '('")
	}
	p.i++
	if p.i >= len(p.s) {
		return nil, p.fail("unexpected end")
	}
	var f *filter
	var err error
	switch p.s[p.i] {
	case '&', '|':
		op := opAnd
		if p.s[p.i] == '|' {
			op = opOr
		}
		p.i++
		f = &filter{op: op}
		for p.i < len(p.s) && p.s[p.i] == '(' {
			kid, err := p.filter(depth + 1)
			if err != nil {
				return nil, err
			}
			f.kids = append(f.kids, kid)
		}
	case '!':
		p.i++
		kid, err := p.filter(depth + 1)
		if err != nil {
			return nil, err
		}
		f = &filter{op: opNot, kids: []*filter{kid}}
	default:
		f, err = p.item()
		if err != nil {
			return nil, err
		}
	}
	if p.i >= len(p.s) || p.s[p.i] != ')' {
		return nil, p.fail("expected ')'")
	}
	p.i++
	return f, nil
}

// item parses simple, present, substring and extensible items.
func (p *filterParser) item() (*filter, error) {
	start := p.i
	for p.i < len(p.s) && strings.IndexByte("=~<>:()", p.s[p.i]) < 0 {
		p.i++
	}
	desc := p.s[start:p.i]
	if p.i >= len(p.s) {
		return nil, p.fail("unexpected end in item")
	}
	f := &filter{}
	switch p.s[p.i] {
	case '~', '<', '>':
		c := p.s[p.i]
		if p.i+1 >= len(p.s) || p.s[p.i+1] != '=' {
			return nil, p.fail("expected '='")
		}
		p.i += 2
		f.op = map[byte]filterOp{'~': opApprox, '<': opLessOrEqual, '>': opGreaterOrEqual}[c]
		v, err := p.value(false)
		if err != nil {
			return nil, err
		}
		f.value = v[0]
	case '=':
		p.i++
		parts, err := p.value(true)
		if err != nil {
			return nil, err
		}
		switch {
		case len(parts) == 2 && len(parts[0]) == 0 && len(parts[1]) == 0:
			f.op = opPresent
		case len(parts) == 1:
			f.op = opEqual
			f.value = parts[0]
		default:
			f.op = opSubstrings
			f.initial = parts[0]
			f.final = parts[len(parts)-1]
			for _, a := range parts[1 : len(parts)-1] {
				if len(a) == 0 {
					return nil, p.fail("empty substring component")
				}
				f.any = append(f.any, a)
			}
		}
	case ':':
		// attr [":dn"] [":" rule] ":=" value, or ":dn"/":rule" without attr.
		f.op = opExtensible
		for {
			if strings.HasPrefix(p.s[p.i:], ":=") {
				p.i += 2
				break
			}
			p.i++ // ':'
			segStart := p.i
			for p.i < len(p.s) && strings.IndexByte(":=()", p.s[p.i]) < 0 {
				p.i++
			}
			seg := p.s[segStart:p.i]
			if p.i >= len(p.s) || p.s[p.i] != ':' || seg == "" {
				return nil, p.fail("bad extensible match")
			}
			if strings.EqualFold(seg, "dn") && f.rule == "" && !f.dnAttrs {
				f.dnAttrs = true
			} else if f.rule == "" {
				f.rule = seg
			} else {
				return nil, p.fail("bad extensible match")
			}
		}
		if desc == "" && f.rule == "" {
			return nil, p.fail("extensible match needs a type or a rule")
		}
		v, err := p.value(false)
		if err != nil {
			return nil, err
		}
		f.value = v[0]
	default:
		return nil, p.fail("expected a filter type")
	}
	if desc == "" && f.op != opExtensible {
		return nil, p.fail("missing attribute description")
	}
	if desc != "" {
		if i := strings.IndexByte(desc, ';'); i >= 0 {
			desc = desc[:i]
		}
		if !validAttrType(desc) {
			return nil, p.fail("bad attribute description " + quote(desc))
		}
	}
	f.attr = strings.ToLower(desc)
	f.at = lookupAttr(f.attr)
	f.prepare()
	if f.op == opSubstrings {
		fold := func(b []byte) []byte { return []byte(strings.ToLower(string(b))) }
		f.initialFold, f.finalFold = fold(f.initial), fold(f.final)
		for _, a := range f.any {
			f.anyFold = append(f.anyFold, fold(a))
		}
	}
	return f, nil
}

// value reads an assertion value up to ')'. With stars it splits the value
// at unescaped '*' (substring components); otherwise '*' is an error.
func (p *filterParser) value(stars bool) ([][]byte, error) {
	var parts [][]byte
	var cur []byte
	for {
		if p.i >= len(p.s) {
			return nil, p.fail("unexpected end in value")
		}
		c := p.s[p.i]
		switch c {
		case ')':
			return append(parts, cur), nil
		case '(':
			return nil, p.fail("unescaped '(' in value")
		case '*':
			if !stars {
				return nil, p.fail("unescaped '*' in value")
			}
			parts = append(parts, cur)
			cur = nil
			p.i++
		case '\\':
			if p.i+2 >= len(p.s) || !isHex(p.s[p.i+1]) || !isHex(p.s[p.i+2]) {
				return nil, p.fail("bad escape in value")
			}
			b, _ := hex.DecodeString(p.s[p.i+1 : p.i+3])
			cur = append(cur, b[0])
			p.i += 3
		default:
			cur = append(cur, c)
			p.i++
		}
		if cur == nil {
			cur = []byte{}
		}
	}
}

// prepare computes the normalized assertion for the attribute's syntax.
func (f *filter) prepare() {
	t := f.at
	if t == nil {
		t = &attrType{name: f.attr}
	}
	f.valid = validAssertion(t, f.value)
	if f.valid {
		f.norm = normValue(t, f.value)
	}
}

func validAssertion(t *attrType, v []byte) bool {
	switch t.syntax {
	case synInteger:
		_, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		return err == nil
	case synDN:
		_, err := NormalizeDN(string(v))
		return err == nil
	}
	return true
}

// indexedAttr is an attribute of a stored entry with its values prepared
// for matching.
type indexedAttr struct {
	t     *attrType
	vals  [][]byte
	norms []string
}

// matcher is what a filter evaluates against.
type matcher interface {
	lookup(lowerName string) *indexedAttr
}

func (f *filter) eval(m matcher) tri {
	switch f.op {
	case opAnd:
		res := triTrue
		for _, k := range f.kids {
			switch k.eval(m) {
			case triFalse:
				return triFalse
			case triUndefined:
				res = triUndefined
			}
		}
		return res
	case opOr:
		res := triFalse
		for _, k := range f.kids {
			switch k.eval(m) {
			case triTrue:
				return triTrue
			case triUndefined:
				res = triUndefined
			}
		}
		return res
	case opNot:
		switch f.kids[0].eval(m) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triUndefined
	case opPresent:
		if m.lookup(f.attr) != nil {
			return triTrue
		}
		return triFalse
	}

	ia := m.lookup(f.attr)
	if f.at == nil && ia == nil {
		return triUndefined // attribute type not recognized
	}
	if ia == nil {
		if f.op == opExtensible && f.rule != "" {
			return triUndefined
		}
		return triFalse
	}
	norm, valid := f.norm, f.valid
	if f.at == nil { // attribute known only to this entry (root DSE)
		valid = validAssertion(ia.t, f.value)
		if valid {
			norm = normValue(ia.t, f.value)
		}
	}
	switch f.op {
	case opEqual, opApprox:
		if !valid {
			return triUndefined
		}
		for _, n := range ia.norms {
			if n == norm {
				return triTrue
			}
		}
		return triFalse
	case opExtensible:
		if f.rule != "" || !valid {
			return triUndefined // only the attribute's own equality rule is supported
		}
		for _, n := range ia.norms {
			if n == norm {
				return triTrue
			}
		}
		return triFalse
	case opGreaterOrEqual, opLessOrEqual:
		if !valid || ia.t.syntax == synDN {
			return triUndefined
		}
		for i, n := range ia.norms {
			c := compareValues(ia.t, n, ia.vals[i], norm)
			if f.op == opGreaterOrEqual && c >= 0 || f.op == opLessOrEqual && c <= 0 {
				return triTrue
			}
		}
		return triFalse
	case opSubstrings:
		if ia.t.syntax == synInteger || ia.t.syntax == synDN {
			return triUndefined
		}
		initial, any, final := f.initial, f.any, f.final
		if ia.t.syntax == synString {
			initial, any, final = f.initialFold, f.anyFold, f.finalFold
		}
		for _, n := range ia.norms {
			if substringMatch(n, initial, any, final) {
				return triTrue
			}
		}
		return triFalse
	}
	return triUndefined
}

// compareValues orders a stored value (prepared as norm, raw as raw)
// against an assertion prepared as assertion.
func compareValues(t *attrType, norm string, raw []byte, assertion string) int {
	if t.syntax == synInteger {
		a, err1 := strconv.ParseInt(norm, 10, 64)
		b, err2 := strconv.ParseInt(assertion, 10, 64)
		if err1 == nil && err2 == nil {
			switch {
			case a < b:
				return -1
			case a > b:
				return 1
			}
			return 0
		}
	}
	_ = raw
	return strings.Compare(norm, assertion)
}

// substringMatch matches v against initial*any*…*final; v and the
// components are already prepared for the attribute's syntax.
func substringMatch(v string, initial []byte, any [][]byte, final []byte) bool {
	if len(initial) > 0 {
		if !strings.HasPrefix(v, string(initial)) {
			return false
		}
		v = v[len(initial):]
	}
	for _, a := range any {
		i := strings.Index(v, string(a))
		if i < 0 {
			return false
		}
		v = v[i+len(a):]
	}
	return len(final) == 0 || strings.HasSuffix(v, string(final))
}
