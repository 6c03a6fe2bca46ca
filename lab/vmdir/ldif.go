package vmdir

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ldifWidth is the line width at which OpenLDAP's ldapsearch folds LDIF
// (checked against ldapsearch 2.5: 78 characters, continuation lines
// included).
const ldifWidth = 78

// WriteLDIF writes entries as ldapsearch -LLL prints them: a "dn:" line,
// one "name: value" line per value in stored order, a blank line after each
// entry, lines folded at 78 columns as ldapsearch does. Values that are not printable ASCII (or
// start with a space, ':' or '<', or end with a space) and userPassword
// values are written base64-encoded as "name:: …".
func WriteLDIF(w io.Writer, entries []*Entry) error {
	bw := bufio.NewWriter(w)
	for _, e := range entries {
		writeEntry(bw, e, false)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write ldif: %w", err)
	}
	return nil
}

// LDIF returns a canonical dump of the directory: entries in hierarchical
// normalized-DN order, attributes sorted by name, values in stored order,
// values of binary-syntax attributes always base64, and the operational USN
// attributes left out. Two directories holding the same data dump
// identically, whatever their write history — which is how a dry run is
// proven to have changed nothing.
func (d *Directory) LDIF() []byte {
	d.mu.RLock()
	nodes := d.subtree(d.top, nil)
	slices.SortFunc(nodes, func(a, b *node) int { return strings.Compare(a.key, b.key) })
	entries := make([]*Entry, len(nodes))
	for i, n := range nodes {
		e := n.entry.Clone()
		slices.SortFunc(e.Attrs, func(a, b Attr) int {
			return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
		})
		entries[i] = e
	}
	d.mu.RUnlock()

	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	for _, e := range entries {
		writeEntry(bw, e, true)
	}
	_ = bw.Flush() // writes to a bytes.Buffer cannot fail
	return buf.Bytes()
}

// writeEntry writes one LDIF record; canonical forces base64 for every
// value of a binary-syntax attribute.
func writeEntry(w *bufio.Writer, e *Entry, canonical bool) {
	writeLine(w, "dn", []byte(e.DN), false)
	for _, a := range e.Attrs {
		force := strings.EqualFold(a.Name, "userPassword")
		if canonical {
			if t := lookupAttr(a.Name); t != nil && t.syntax == synBinary {
				force = true
			}
		}
		for _, v := range a.Values {
			writeLine(w, a.Name, v, force)
		}
	}
	w.WriteByte('\n')
}

func writeLine(w *bufio.Writer, name string, v []byte, forceBase64 bool) {
	var line string
	switch {
	case len(v) == 0:
		line = name + ":"
	case forceBase64 || !ldifSafe(v):
		line = name + ":: " + base64.StdEncoding.EncodeToString(v)
	default:
		line = name + ": " + string(v)
	}
	first := true
	for len(line) > 0 {
		width := ldifWidth
		if !first {
			w.WriteByte(' ')
			width--
		}
		n := min(width, len(line))
		w.WriteString(line[:n])
		w.WriteByte('\n')
		line = line[n:]
		first = false
	}
}

// ldifSafe reports whether v can be written as a plain value the way
// OpenLDAP decides it: printable ASCII, not starting with a space, ':' or
// '<', not ending with a space.
func ldifSafe(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	if v[0] == ' ' || v[0] == ':' || v[0] == '<' || v[len(v)-1] == ' ' {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// ParseLDIF reads LDIF content records (RFC 2849): "dn:" records of
// "name: value" and base64 "name:: …" lines, folded lines, comments, an
// optional "version: 1" and "changetype: add". Other change types and
// "name:< URL" values are rejected. Repeated attribute lines are merged
// into one Attr in order of first appearance.
func ParseLDIF(r io.Reader) ([]*Entry, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("parse ldif: %w", err)
	}
	type line struct {
		n    int
		text string
	}
	// Unfold continuation lines, keep blank separators.
	var lines []line
	var cont strings.Builder // continuation of the last line, joined at the end
	flush := func() {
		if cont.Len() > 0 {
			lines[len(lines)-1].text += cont.String()
			cont.Reset()
		}
	}
	for i, raw := range strings.Split(string(data), "\n") {
		raw = strings.TrimSuffix(raw, "\r")
		if strings.HasPrefix(raw, " ") && len(lines) > 0 && lines[len(lines)-1].text != "" {
			cont.WriteString(raw[1:])
			continue
		}
		flush()
		lines = append(lines, line{n: i + 1, text: raw})
	}
	flush()
	var entries []*Entry
	var cur *Entry
	var index map[string]int // lower-case attribute name → index in cur.Attrs
	sawChangetype, sawVersion := false, false
	for _, l := range lines {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("parse ldif: line %d: %s", l.n, fmt.Sprintf(format, args...))
		}
		if strings.HasPrefix(l.text, "#") {
			continue
		}
		if l.text == "" {
			if cur != nil {
				entries = append(entries, cur)
				cur = nil
			}
			continue
		}
		name, val, err := parseLDIFLine(l.text)
		if err != nil {
			return nil, fail("%v", err)
		}
		switch {
		case cur == nil && strings.EqualFold(name, "version") && len(entries) == 0 && !sawVersion:
			sawVersion = true
			if string(val) != "1" {
				return nil, fail("unsupported LDIF version %q", val)
			}
		case cur == nil:
			if !strings.EqualFold(name, "dn") {
				return nil, fail("record must start with dn:, got %q", name)
			}
			cur = &Entry{DN: string(val)}
			index = map[string]int{}
			sawChangetype = false
		case strings.EqualFold(name, "changetype"):
			if sawChangetype || len(cur.Attrs) > 0 || !strings.EqualFold(string(val), "add") {
				return nil, fail("only content records and changetype: add are supported")
			}
			sawChangetype = true
		case strings.EqualFold(name, "control"):
			return nil, fail("controls are not supported")
		default:
			if i, ok := index[strings.ToLower(name)]; ok {
				cur.Attrs[i].Values = append(cur.Attrs[i].Values, val)
			} else {
				index[strings.ToLower(name)] = len(cur.Attrs)
				cur.Attrs = append(cur.Attrs, Attr{Name: name, Values: [][]byte{val}})
			}
		}
	}
	if cur != nil {
		entries = append(entries, cur)
	}
	return entries, nil
}

// parseLDIFLine splits "name: value", "name:: base64" or "name:" lines.
func parseLDIFLine(s string) (string, []byte, error) {
	i := strings.IndexByte(s, ':')
	if i <= 0 {
		return "", nil, fmt.Errorf("missing ':' in %q", truncate(s))
	}
	name := s[:i]
	if j := strings.IndexByte(name, ';'); j >= 0 {
		name = name[:j] // attribute options such as ;binary
	}
	if !validAttrType(name) {
		return "", nil, fmt.Errorf("bad attribute name %q", truncate(s[:i]))
	}
	rest := s[i+1:]
	switch {
	case strings.HasPrefix(rest, ":"):
		b64 := strings.TrimSpace(rest[1:])
		v, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return "", nil, fmt.Errorf("%s: bad base64 value: %w", name, err)
		}
		return name, v, nil
	case strings.HasPrefix(rest, "<"):
		return "", nil, fmt.Errorf("%s: URL values (:<) are not supported", name)
	default:
		return name, []byte(strings.TrimLeft(rest, " ")), nil
	}
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
