package vmdir

import (
	"bytes"
	"strings"
)

// Attr is one attribute of an entry: its name and its values, kept as raw
// bytes so that binary values (DER certificates, PKCS#8 keys) survive exactly.
type Attr struct {
	Name   string
	Values [][]byte
}

// Entry is a directory entry. DN is kept as written (case preserved) and
// Attrs are in insertion order; attribute names are matched case-insensitively.
type Entry struct {
	DN    string
	Attrs []Attr
}

// NewEntry returns an entry named dn with the given attributes.
func NewEntry(dn string, attrs ...Attr) *Entry {
	return &Entry{DN: dn, Attrs: attrs}
}

// StrAttr returns an attribute whose values are the given strings.
func StrAttr(name string, values ...string) Attr {
	a := Attr{Name: name, Values: make([][]byte, len(values))}
	for i, v := range values {
		a.Values[i] = []byte(v)
	}
	return a
}

// Values returns the values of the attribute name (matched
// case-insensitively), or nil when the entry does not have it. The slices
// are the entry's own; use Clone before changing them.
func (e *Entry) Values(name string) [][]byte {
	for _, a := range e.Attrs {
		if strings.EqualFold(a.Name, name) {
			return a.Values
		}
	}
	return nil
}

// Strings returns the values of the attribute name as strings.
func (e *Entry) Strings(name string) []string {
	vals := e.Values(name)
	if vals == nil {
		return nil
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = string(v)
	}
	return out
}

// First returns the first value of the attribute name, or "" when absent.
func (e *Entry) First(name string) string {
	vals := e.Values(name)
	if len(vals) == 0 {
		return ""
	}
	return string(vals[0])
}

// Clone returns a deep copy of e.
func (e *Entry) Clone() *Entry {
	if e == nil {
		return nil
	}
	c := &Entry{DN: e.DN, Attrs: make([]Attr, len(e.Attrs))}
	for i, a := range e.Attrs {
		c.Attrs[i] = cloneAttr(a)
	}
	return c
}

func cloneAttr(a Attr) Attr {
	c := Attr{Name: a.Name, Values: make([][]byte, len(a.Values))}
	for i, v := range a.Values {
		c.Values[i] = bytes.Clone(v)
		if c.Values[i] == nil {
			c.Values[i] = []byte{}
		}
	}
	return c
}

// attrIndex returns the index of the attribute name in e.Attrs, or -1.
func (e *Entry) attrIndex(name string) int {
	for i, a := range e.Attrs {
		if strings.EqualFold(a.Name, name) {
			return i
		}
	}
	return -1
}
