package ldap

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// This file reads and writes LDIF (RFC 2849): content records ("dn:" and
// attribute lines) and change records of type add, delete and modify;
// "name:: base64" values, "name:< file:" values, folded lines and comments.

// attr is an attribute with its values, byte for byte.
type attr struct {
	Name   string
	Values [][]byte
}

// entry is a directory entry: its DN and attributes in order.
type entry struct {
	DN    string
	Attrs []attr
}

// get returns the values of the attribute name (case-insensitive), or nil.
func (e *entry) get(name string) [][]byte {
	for _, a := range e.Attrs {
		if strings.EqualFold(a.Name, name) {
			return a.Values
		}
	}
	return nil
}

// add appends values to the attribute name, creating it at the end when
// the entry does not have it yet.
func (e *entry) add(name string, values ...[]byte) {
	for i := range e.Attrs {
		if strings.EqualFold(e.Attrs[i].Name, name) {
			e.Attrs[i].Values = append(e.Attrs[i].Values, values...)
			return
		}
	}
	e.Attrs = append(e.Attrs, attr{Name: name, Values: values})
}

// Change types of LDIF change records. A content record has none.
const (
	changeAdd    = "add"
	changeDelete = "delete"
	changeModify = "modify"
)

// mod is one modification of a modify record: op is add, delete or replace.
type mod struct {
	Op string
	attr
}

// record is one LDIF record. ChangeType is "" for a content record; an add
// or content record has Attrs, a modify record Mods, a delete record
// neither.
type record struct {
	entry
	ChangeType string
	Mods       []mod
	// Line is the line the record starts on, for messages.
	Line int
}

// ldifOptions tune parseLDIF.
type ldifOptions struct {
	// ReadURL returns the content a "name:< URL" value refers to. When nil,
	// such values are an error.
	ReadURL func(u *url.URL) ([]byte, error)
}

// maxLDIF bounds what parseLDIF reads, so a wrong file cannot exhaust
// memory.
const maxLDIF = 64 << 20

// parseLDIF reads LDIF records from r. Errors name the line.
func parseLDIF(r io.Reader, opts ldifOptions) ([]record, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxLDIF+1))
	if err != nil {
		return nil, fmt.Errorf("read ldif: %w", err)
	}
	if len(data) > maxLDIF {
		return nil, fmt.Errorf("read ldif: larger than %d MiB", maxLDIF>>20)
	}
	p := &ldifParser{opts: opts}
	p.unfold(data)
	return p.records()
}

// logical is one unfolded line with the number of its first physical line;
// blank separates records.
type logical struct {
	text  string
	line  int
	blank bool
}

type ldifParser struct {
	opts  ldifOptions
	lines []logical
}

// unfold joins folded lines, drops comments and marks record separators.
func (p *ldifParser) unfold(data []byte) {
	var (
		cur     strings.Builder
		start   int
		open    bool // cur holds a line that may continue
		comment bool // the open line is a comment
	)
	flush := func() {
		if open && !comment {
			p.lines = append(p.lines, logical{text: cur.String(), line: start})
		}
		cur.Reset()
		open, comment = false, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxLDIF+1)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case line == "":
			flush()
			p.lines = append(p.lines, logical{line: n, blank: true})
		case line[0] == ' ' && open:
			if !comment {
				cur.WriteString(line[1:])
			}
		case line[0] == '#':
			flush()
			open, comment, start = true, true, n
		default:
			flush()
			cur.WriteString(line)
			open, start = true, n
		}
	}
	flush()
}

// lineError returns an error located at line.
func lineError(line int, format string, args ...any) error {
	return fmt.Errorf("ldif line %d: %s", line, fmt.Sprintf(format, args...))
}

func (p *ldifParser) records() ([]record, error) {
	var out []record
	i := 0
	skipBlank := func() {
		for i < len(p.lines) && p.lines[i].blank {
			i++
		}
	}
	skipBlank()
	// An optional version line comes first.
	if i < len(p.lines) {
		if name, _, ok := strings.Cut(p.lines[i].text, ":"); ok && strings.EqualFold(name, "version") {
			_, v, err := p.value(p.lines[i])
			if err != nil {
				return nil, err
			}
			if strings.TrimSpace(string(v)) != "1" {
				return nil, lineError(p.lines[i].line, "unsupported LDIF version %q", v)
			}
			i++
		}
	}
	for {
		skipBlank()
		if i >= len(p.lines) {
			return out, nil
		}
		j := i
		for j < len(p.lines) && !p.lines[j].blank {
			j++
		}
		rec, err := p.record(p.lines[i:j])
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
		i = j
	}
}

// record parses the lines of one record.
func (p *ldifParser) record(lines []logical) (record, error) {
	first := lines[0]
	name, v, err := p.value(first)
	if err != nil {
		return record{}, err
	}
	if !strings.EqualFold(name, "dn") {
		return record{}, lineError(first.line, "a record starts with dn:, not %s:", name)
	}
	rec := record{Line: first.line}
	if rec.DN, err = textValue(first.line, "dn", v); err != nil {
		return record{}, err
	}
	rest := lines[1:]
	if len(rest) > 0 {
		name, v, err := p.value(rest[0])
		if err != nil {
			return record{}, err
		}
		switch strings.ToLower(name) {
		case "control":
			return record{}, lineError(rest[0].line, "LDIF controls are not supported")
		case "changetype":
			ct := strings.ToLower(strings.TrimSpace(string(v)))
			switch ct {
			case changeAdd, changeDelete, changeModify:
			case "modrdn", "moddn":
				return record{}, lineError(rest[0].line, "changetype %s is not supported", ct)
			default:
				return record{}, lineError(rest[0].line, "unknown changetype %q", v)
			}
			rec.ChangeType = ct
			rest = rest[1:]
		}
	}
	switch rec.ChangeType {
	case changeDelete:
		if len(rest) > 0 {
			return record{}, lineError(rest[0].line, "a delete record has no other lines")
		}
	case changeModify:
		if rec.Mods, err = p.mods(rest); err != nil {
			return record{}, err
		}
	default:
		for _, l := range rest {
			name, v, err := p.value(l)
			if err != nil {
				return record{}, err
			}
			if strings.EqualFold(name, "changetype") || strings.EqualFold(name, "dn") {
				return record{}, lineError(l.line, "%s: out of place", name)
			}
			rec.add(name, v)
		}
		if len(rec.Attrs) == 0 {
			return record{}, lineError(first.line, "record %s has no attributes", abbreviate(rec.DN))
		}
	}
	return rec, nil
}

// mods parses the body of a modify record: "op: attr" lines, the values,
// and "-" after each.
func (p *ldifParser) mods(lines []logical) ([]mod, error) {
	var out []mod
	for i := 0; i < len(lines); {
		op, v, err := p.value(lines[i])
		if err != nil {
			return nil, err
		}
		op = strings.ToLower(op)
		if op != "add" && op != "delete" && op != "replace" {
			return nil, lineError(lines[i].line, "want add:, delete: or replace:, got %s:", op)
		}
		name, err := textValue(lines[i].line, op, v)
		if err != nil {
			return nil, err
		}
		name = strings.TrimSpace(name)
		if !validAttrName(name) {
			return nil, lineError(lines[i].line, "%q is not an attribute name", name)
		}
		m := mod{Op: op, attr: attr{Name: name}}
		i++
		for ; ; i++ {
			if i >= len(lines) {
				return nil, lineError(lines[len(lines)-1].line, "modification of %s does not end with -", name)
			}
			if lines[i].text == "-" {
				i++
				break
			}
			n, v, err := p.value(lines[i])
			if err != nil {
				return nil, err
			}
			if !strings.EqualFold(n, name) {
				return nil, lineError(lines[i].line, "value of %s inside the modification of %s", n, name)
			}
			m.Values = append(m.Values, v)
		}
		if op == "add" && len(m.Values) == 0 {
			return nil, lineError(lines[i-1].line, "add: %s without values", name)
		}
		out = append(out, m)
	}
	return out, nil
}

// value splits "name: text", "name:: base64" or "name:< URL" and returns
// the name and the value's bytes.
func (p *ldifParser) value(l logical) (string, []byte, error) {
	name, rest, ok := strings.Cut(l.text, ":")
	if !ok {
		return "", nil, lineError(l.line, "want name: value, got %q", abbreviate(l.text))
	}
	if !validAttrName(name) && !strings.EqualFold(name, "dn") {
		return "", nil, lineError(l.line, "%q is not an attribute name", abbreviate(name))
	}
	switch {
	case strings.HasPrefix(rest, ":"):
		s := strings.TrimLeft(rest[1:], " ")
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return "", nil, lineError(l.line, "%s: bad base64: %v", name, err)
		}
		return name, b, nil
	case strings.HasPrefix(rest, "<"):
		s := strings.TrimLeft(rest[1:], " ")
		u, err := url.Parse(s)
		if err != nil {
			return "", nil, lineError(l.line, "%s: bad URL: %v", name, err)
		}
		if p.opts.ReadURL == nil {
			return "", nil, lineError(l.line, "%s: values from URLs (%s) are not allowed here", name, abbreviate(s))
		}
		b, err := p.opts.ReadURL(u)
		if err != nil {
			return "", nil, lineError(l.line, "%s: %v", name, err)
		}
		return name, b, nil
	}
	return name, []byte(strings.TrimLeft(rest, " ")), nil
}

// textValue checks that a value that names something (a DN, an attribute)
// is UTF-8 text.
func textValue(line int, name string, v []byte) (string, error) {
	if !isText(v) {
		return "", lineError(line, "%s: not text", name)
	}
	return string(v), nil
}

// validAttrName reports whether s is an attribute description: a name
// (letter, then letters, digits and hyphens) or a numeric OID, optionally
// followed by ";option"s.
func validAttrName(s string) bool {
	base, opts, _ := strings.Cut(s, ";")
	if !validDescr(base) && !validOID(base) {
		return false
	}
	if opts == "" {
		return !strings.Contains(s, ";")
	}
	for o := range strings.SplitSeq(opts, ";") {
		if o == "" || strings.Trim(o, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return false
		}
	}
	return true
}

func validDescr(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

func validOID(s string) bool {
	if s == "" {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if part == "" || strings.Trim(part, "0123456789") != "" || len(part) > 1 && part[0] == '0' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// abbreviate shortens s for an error message.
func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// foldWidth is the length at which lines are folded.
const foldWidth = 76

// ldifWriter writes LDIF records.
type ldifWriter struct {
	w     *bufio.Writer
	wrote bool // a line was written
	err   error
}

func newLDIFWriter(w io.Writer) *ldifWriter { return &ldifWriter{w: bufio.NewWriter(w)} }

// comment writes "# text" lines (before the first record).
func (lw *ldifWriter) comment(text string) {
	for l := range strings.SplitSeq(text, "\n") {
		lw.line("# " + l)
	}
}

// write writes one record.
func (lw *ldifWriter) write(r *record) {
	if lw.wrote {
		lw.line("")
	}
	lw.value("dn", []byte(r.DN))
	if r.ChangeType != "" {
		lw.line("changetype: " + r.ChangeType)
	}
	switch r.ChangeType {
	case changeDelete:
	case changeModify:
		for _, m := range r.Mods {
			lw.line(m.Op + ": " + m.Name)
			for _, v := range m.Values {
				lw.value(m.Name, v)
			}
			lw.line("-")
		}
	default:
		for _, a := range r.Attrs {
			for _, v := range a.Values {
				lw.value(a.Name, v)
			}
		}
	}
}

// flush writes what is buffered and returns the first error.
func (lw *ldifWriter) flush() error {
	if lw.err == nil {
		lw.err = lw.w.Flush()
	}
	return lw.err
}

// value writes "name: value" when the value is a safe string and the
// attribute is not binary, else "name:: base64".
func (lw *ldifWriter) value(name string, v []byte) {
	if safeString(v) && !isBinaryAttr(name) {
		if len(v) == 0 {
			lw.line(name + ":")
			return
		}
		lw.line(name + ": " + string(v))
		return
	}
	lw.line(name + ":: " + base64.StdEncoding.EncodeToString(v))
}

// line writes s folded at foldWidth, and a line break.
func (lw *ldifWriter) line(s string) {
	if lw.err != nil {
		return
	}
	// The first line holds foldWidth bytes, continuation lines one less
	// after their leading space; a cut never splits a UTF-8 sequence.
	for width := foldWidth; len(s) > width; width = foldWidth - 1 {
		cut := width
		for cut > 1 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		lw.w.WriteString(s[:cut])
		lw.w.WriteString("\n ")
		s = s[cut:]
	}
	lw.w.WriteString(s)
	_, lw.err = lw.w.WriteString("\n")
	lw.wrote = true
}

// safeString reports whether v may be written as it is (RFC 2849
// SAFE-STRING, and not ending in a space, which readers would lose).
func safeString(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	if c := v[0]; c == ' ' || c == ':' || c == '<' {
		return false
	}
	for _, c := range v {
		if c == 0 || c == '\n' || c == '\r' || c > 0x7f {
			return false
		}
	}
	return v[len(v)-1] != ' '
}

// writeLDIF writes records as LDIF, with an optional comment header. Like
// ldapsearch -LLL and slapcat it writes no "version: 1" line, which slapadd
// refuses.
func writeLDIF(w io.Writer, header string, records []record) error {
	lw := newLDIFWriter(w)
	if header != "" {
		lw.comment(header)
	}
	for i := range records {
		lw.write(&records[i])
	}
	return lw.flush()
}

// readLDIFFile parses an LDIF file; "name:< file:" values are read
// relative to the file's directory.
func readLDIFFile(path string) ([]record, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := parseLDIF(f, ldifOptions{ReadURL: fileURLReader(filepath.Dir(path))})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return recs, nil
}
