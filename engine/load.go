package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/conf"
	"gopkg.in/yaml.v3"
)

// Load reads a runbook from src, checks it against the step types in reg,
// and compiles its expressions. path is only used in positions.
//
// Load is strict: unknown keys, wrong types, unknown step types, bad or
// duplicate ids, bad expressions, references to unknown params, facts,
// outputs or later steps, and `with:` mappings that do not fit the step
// type's params are all errors. Load collects every problem in the file and
// returns them as Diagnostics, sorted by position.
func Load(reg *Registry, path string, src []byte) (*Runbook, error) {
	l := &loader{reg: reg, path: path, src: src}
	rb := l.load()
	if len(l.diags) > 0 {
		return nil, sortDiagnostics(l.diags)
	}
	return rb, nil
}

// loader holds the state of one Load.
type loader struct {
	reg   *Registry
	path  string
	src   []byte
	lines []string
	diags Diagnostics
	env   *envLayout
	conf  *conf.Config
	// suggested holds, per mapping node, the keys a did-you-mean proposed
	// for an unknown key; a missing key that was proposed is not reported
	// again.
	suggested map[*yaml.Node]map[string]bool
}

func (l *loader) errorf(p Pos, format string, args ...any) {
	l.diags = append(l.diags, Diagnostic{Pos: p, Message: fmt.Sprintf(format, args...)})
}

func (l *loader) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: l.path, Line: 1, Col: 1}
	}
	return Pos{File: l.path, Line: n.Line, Col: n.Column}
}

// The keys of a runbook, a param, a step, a condition and a retry.
var (
	runbookKeys   = []string{"apiVersion", "name", "title", "description", "kb", "params", "lock", "guards", "steps"}
	paramKeys     = []string{"type", "description", "default", "required", "values"}
	stepKeys      = []string{"id", "name", "kb", "uses", "when", "require", "assert", "with", "retry", "timeout", "on_failure"}
	conditionKeys = []string{"expr", "message"}
	retryKeys     = []string{"attempts", "delay"}
)

var (
	runbookNamePattern = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	identPattern       = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	kbPattern          = regexp.MustCompile(`^[0-9]+$`)
	yamlErrLine        = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// keyValue is one key of a mapping and its value.
type keyValue struct {
	key, val *yaml.Node
}

// mapping returns the keys of mapping node n, reporting a node that is not
// a mapping, keys that are not strings, duplicates, and keys not in known.
// what names the mapping in messages ("runbook", "step", ...).
func (l *loader) mapping(n *yaml.Node, what string, known []string) map[string]keyValue {
	if n.Kind == yaml.AliasNode {
		l.errorf(l.pos(n), "YAML aliases are not supported in runbooks; write the %s out", what)
		return nil
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(l.pos(n), "%s: want a mapping, got %s", what, nodeKind(n))
		return nil
	}
	out := make(map[string]keyValue, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			l.errorf(l.pos(k), "%s: keys must be strings, got %s", what, nodeKind(k))
			continue
		case k.Value == "<<":
			l.errorf(l.pos(k), "YAML merge keys are not supported in runbooks; write the keys out")
			continue
		}
		if prev, dup := out[k.Value]; dup {
			l.errorf(l.pos(k), "duplicate key %q in %s (first at line %d)", k.Value, what, prev.key.Line)
			continue
		}
		if known != nil && !contains(known, k.Value) {
			l.errorf(l.pos(k), "unknown key %q in %s%s", k.Value, what, didYouMean(k.Value, known))
			l.suggest(n, nearest(k.Value, known))
			continue
		}
		if v.Kind == yaml.AliasNode {
			l.errorf(l.pos(v), "YAML aliases are not supported in runbooks; write the value of %q out", k.Value)
			continue
		}
		out[k.Value] = keyValue{k, v}
	}
	return out
}

// suggest records that a did-you-mean proposed key in mapping n.
func (l *loader) suggest(n *yaml.Node, key string) {
	if key == "" {
		return
	}
	if l.suggested == nil {
		l.suggested = map[*yaml.Node]map[string]bool{}
	}
	if l.suggested[n] == nil {
		l.suggested[n] = map[string]bool{}
	}
	l.suggested[n][key] = true
}

// missing reports that mapping n lacks key, unless a did-you-mean already
// proposed key for a misspelt one.
func (l *loader) missing(n *yaml.Node, key, format string, args ...any) {
	if !l.suggested[n][key] {
		l.errorf(l.pos(n), format, args...)
	}
}

// str returns the string value of a scalar, reporting anything else.
func (l *loader) str(kv keyValue) (string, bool) {
	n := kv.val
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		hint := ""
		if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
			hint = fmt.Sprintf("; quote it: %q", n.Value)
		}
		l.errorf(l.pos(n), "%s: want a string, got %s%s", kv.key.Value, nodeKind(n), hint)
		return "", false
	}
	return n.Value, true
}

// exprText returns the text of an expression: a string, or a bare true or
// false.
func (l *loader) exprText(kv keyValue) (string, bool) {
	if n := kv.val; n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		return n.Value, true
	}
	return l.str(kv)
}

func (l *loader) duration(kv keyValue) (time.Duration, bool) {
	s, ok := l.str(kv)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		l.errorf(l.pos(kv.val), "%s: %q is not a duration such as 90s, 5m or 1h30m", kv.key.Value, s)
		return 0, false
	}
	return d, true
}

// seq returns the items of a sequence node, reporting anything else.
func (l *loader) seq(kv keyValue) ([]*yaml.Node, bool) {
	if kv.val.Kind != yaml.SequenceNode {
		l.errorf(l.pos(kv.val), "%s: want a list, got %s", kv.key.Value, nodeKind(kv.val))
		return nil, false
	}
	return kv.val.Content, true
}

func (l *loader) strList(kv keyValue) []string {
	items, ok := l.seq(kv)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		if s, ok := l.str(keyValue{&yaml.Node{Value: fmt.Sprintf("%s[%d]", kv.key.Value, i)}, item}); ok {
			out = append(out, s)
		}
	}
	return out
}

func (l *loader) load() *Runbook {
	sum := sha256.Sum256(l.src)
	rb := &Runbook{Path: l.path, Digest: hex.EncodeToString(sum[:]), Source: l.src}
	root := l.parse()
	if root == nil {
		return nil
	}
	m := l.mapping(root, "runbook", runbookKeys)
	if m == nil {
		return nil
	}
	l.header(rb, root, m)
	if kv, ok := m["params"]; ok {
		rb.Params = l.params(kv)
	}
	var shapes []*stepShape
	if kv, ok := m["steps"]; !ok {
		l.missing(root, "steps", "missing key %q: a runbook needs at least one step", "steps")
	} else if items, ok := l.seq(kv); ok {
		if len(items) == 0 {
			l.errorf(l.pos(kv.val), "steps: a runbook needs at least one step")
		}
		shapes = l.steps(items)
	}
	for _, s := range shapes {
		rb.Steps = append(rb.Steps, s.step)
	}
	l.env = newEnvLayout(rb.Params, rb.Steps)

	if kv, ok := m["lock"]; ok {
		if s, ok := l.str(kv); ok {
			rb.Lock = &Template{Raw: s, Pos: l.pos(kv.val)}
			if strings.TrimSpace(s) == "" {
				l.errorf(l.pos(kv.val), "lock: empty lock key")
			}
			if t := l.compileTemplate(s, l.site(kv.val), visibility{why: "the lock"}, false); t != nil {
				rb.Lock.program = t
			}
		}
	}
	if kv, ok := m["guards"]; ok {
		rb.Guards = l.conditions(kv, true, visibility{why: "a guard"})
	}
	for i, s := range shapes {
		l.stepExprs(s, i)
	}
	return rb
}

// parse reads the single YAML document of the file and returns its root.
func (l *loader) parse() (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on malformed input before; a runbook file
		// must never crash the engine.
		if r := recover(); r != nil {
			l.errorf(l.pos(nil), "cannot parse YAML: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(l.src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errorf(l.pos(nil), "empty runbook: want apiVersion, name, title and steps")
		} else {
			l.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.errorf(l.pos(&extra), "a runbook file holds one YAML document; remove this one or the --- before it")
	} else if !errors.Is(err, io.EOF) {
		l.yamlError(err)
	}
	if len(doc.Content) == 0 {
		l.errorf(l.pos(nil), "empty runbook: want apiVersion, name, title and steps")
		return nil
	}
	return doc.Content[0]
}

// yamlError reports a YAML syntax error at the line it names.
func (l *loader) yamlError(err error) {
	msg := err.Error()
	p := l.pos(nil)
	if m := yamlErrLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	l.errorf(p, "YAML syntax: %s", msg)
}

// header reads apiVersion, name, title, description and kb.
func (l *loader) header(rb *Runbook, root *yaml.Node, m map[string]keyValue) {
	if kv, ok := m["apiVersion"]; !ok {
		l.missing(root, "apiVersion", "missing key %q: the first line should be apiVersion: %s", "apiVersion", APIVersion)
	} else if s, ok := l.str(kv); ok && s != APIVersion {
		l.errorf(l.pos(kv.val), "unknown apiVersion %q: this engine reads %s", s, APIVersion)
	}
	if kv, ok := m["name"]; !ok {
		l.missing(root, "name", "missing key %q", "name")
	} else if s, ok := l.str(kv); ok {
		if !runbookNamePattern.MatchString(s) {
			l.errorf(l.pos(kv.val), "name %q: use lower-case words joined by dashes, such as sts-regenerate", s)
		}
		rb.Name = s
	}
	if kv, ok := m["title"]; !ok {
		l.missing(root, "title", "missing key %q", "title")
	} else if s, ok := l.str(kv); ok {
		if strings.TrimSpace(s) == "" {
			l.errorf(l.pos(kv.val), "title: empty title")
		}
		rb.Title = s
	}
	if kv, ok := m["description"]; ok {
		rb.Description, _ = l.str(kv)
	}
	if kv, ok := m["kb"]; ok {
		items, ok := l.seq(kv)
		for i, item := range items {
			if item.Kind != yaml.ScalarNode || !kbPattern.MatchString(item.Value) {
				l.errorf(l.pos(item), "kb[%d]: want a KB article number such as \"76719\"", i)
				continue
			}
			if item.ShortTag() != "!!str" {
				l.errorf(l.pos(item), "kb[%d]: quote the article number: \"%s\"", i, item.Value)
				continue
			}
			rb.KB = append(rb.KB, item.Value)
		}
		_ = ok
	}
}

// params reads the params mapping.
func (l *loader) params(kv keyValue) []*ParamDecl {
	m := l.mapping(kv.val, "params", nil)
	var out []*ParamDecl
	for i := 0; i+1 < len(kv.val.Content) && m != nil; i += 2 {
		k := kv.val.Content[i]
		if got, ok := m[k.Value]; !ok || got.key != k {
			continue // reported by mapping
		}
		if p := l.param(k, kv.val.Content[i+1]); p != nil {
			out = append(out, p)
		}
	}
	return out
}

var paramTypes = []string{
	string(ParamString), string(ParamInt), string(ParamBool), string(ParamDuration),
	string(ParamList), string(ParamEnum), string(ParamSecret),
}

// param reads one param declaration.
func (l *loader) param(k, v *yaml.Node) *ParamDecl {
	p := &ParamDecl{Name: k.Value, Pos: l.pos(k)}
	if !identPattern.MatchString(k.Value) {
		l.errorf(l.pos(k), "param name %q: use lower-case letters, digits and _, starting with a letter", k.Value)
	}
	m := l.mapping(v, "param "+k.Value, paramKeys)
	if m == nil {
		return p
	}
	typed := false
	if kv, ok := m["type"]; !ok {
		l.missing(v, "type", "param %s: missing key %q (one of %s)", k.Value, "type", strings.Join(paramTypes, ", "))
	} else if s, ok := l.str(kv); ok {
		if contains(paramTypes, s) {
			p.Type, typed = ParamType(s), true
		} else {
			l.errorf(l.pos(kv.val), "param %s: unknown type %q%s; want one of %s", k.Value, s, didYouMean(s, paramTypes), strings.Join(paramTypes, ", "))
		}
	}
	if kv, ok := m["description"]; ok {
		p.Description, _ = l.str(kv)
	}
	if kv, ok := m["values"]; ok {
		p.Values = l.strList(kv)
		if typed && p.Type != ParamEnum {
			l.errorf(l.pos(kv.key), "param %s: values are only for enum params", k.Value)
		}
		seen := map[string]bool{}
		for i, s := range p.Values {
			if seen[s] {
				l.errorf(l.pos(kv.val.Content[i]), "param %s: duplicate value %q", k.Value, s)
			}
			seen[s] = true
		}
	} else if p.Type == ParamEnum {
		l.errorf(l.pos(v), "param %s: an enum needs values", k.Value)
	}
	explicit := false
	if kv, ok := m["required"]; ok {
		if kv.val.Kind != yaml.ScalarNode || kv.val.ShortTag() != "!!bool" {
			l.errorf(l.pos(kv.val), "required: want true or false, got %s", nodeKind(kv.val))
		} else {
			p.Required, explicit = kv.val.Value == "true", true
		}
	}
	if p.Type == ParamSecret && !explicit {
		// A secret cannot have a default, so it is required unless said otherwise.
		p.Required = true
	}
	if kv, ok := m["default"]; ok {
		switch {
		case p.Type == ParamSecret:
			l.errorf(l.pos(kv.key), "param %s: a secret cannot have a default; it comes from the environment, a file or the prompt", k.Value)
		case p.Required:
			l.errorf(l.pos(kv.key), "param %s: a required param cannot have a default", k.Value)
		case typed:
			val, err := p.fromNode(kv.val)
			if err != nil {
				l.errorf(l.pos(kv.val), "param %s: default: %v", k.Value, err)
			} else {
				p.Default = val
			}
		}
	}
	return p
}

// stepShape is a step after the first pass, with the nodes the second pass
// compiles.
type stepShape struct {
	step *Step
	node *yaml.Node
	m    map[string]keyValue
	// badWith is set when `with:` is there but could not be read.
	badWith bool
}

// hasKey reports whether mapping n has key.
func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// steps reads the structure of every step: ids, types and plain settings.
// Expressions and `with:` are compiled afterwards, once every step id is
// known.
func (l *loader) steps(items []*yaml.Node) []*stepShape {
	first := map[string]int{}
	var out []*stepShape
	for i, n := range items {
		st := &Step{Pos: l.pos(n), OnFailure: Abort}
		what := fmt.Sprintf("step %d", i+1)
		m := l.mapping(n, what, stepKeys)
		if m == nil {
			out = append(out, &stepShape{step: st, node: n})
			continue
		}
		if kv, ok := m["id"]; !ok {
			l.missing(n, "id", "%s: missing key %q", what, "id")
		} else if s, ok := l.str(kv); ok {
			switch line, dup := first[s]; {
			case !identPattern.MatchString(s):
				l.errorf(l.pos(kv.val), "step id %q: use lower-case letters, digits and _, starting with a letter", s)
			case dup:
				l.errorf(l.pos(kv.val), "duplicate step id %q (first at line %d)", s, line)
			default:
				first[s] = kv.val.Line
				st.ID = s
			}
		}
		if st.ID != "" {
			what = "step " + st.ID
		}
		if kv, ok := m["uses"]; !ok {
			l.missing(n, "uses", "%s: missing key %q", what, "uses")
		} else if s, ok := l.str(kv); ok {
			st.Uses = s
			if t, found := l.reg.Lookup(s); found {
				st.Type = t
				st.Effect = t.Effect()
			} else {
				l.errorf(l.pos(kv.val), "unknown step type %q%s", s, didYouMean(s, l.reg.IDs()))
			}
		}
		if kv, ok := m["name"]; ok {
			st.Name, _ = l.str(kv)
		}
		if kv, ok := m["kb"]; ok {
			st.KB, _ = l.str(kv)
		}
		if kv, ok := m["timeout"]; ok {
			if d, ok := l.duration(kv); ok {
				if d == 0 {
					l.errorf(l.pos(kv.val), "timeout: must be more than 0")
				}
				st.Timeout = d
			}
		}
		if kv, ok := m["on_failure"]; ok {
			if s, ok := l.str(kv); ok {
				switch OnFailure(s) {
				case Abort, Continue:
					st.OnFailure = OnFailure(s)
				default:
					l.errorf(l.pos(kv.val), "on_failure: %q is not abort or continue%s", s, didYouMean(s, []string{"abort", "continue"}))
				}
			}
		}
		if kv, ok := m["retry"]; ok {
			st.Retry = l.retry(kv)
		}
		shape := &stepShape{step: st, node: n, m: m}
		if kv, ok := m["with"]; ok {
			st.With = kv.val
		} else if hasKey(n, "with") {
			shape.badWith = true // reported by mapping
		}
		out = append(out, shape)
	}
	return out
}

func (l *loader) retry(kv keyValue) Retry {
	var r Retry
	m := l.mapping(kv.val, "retry", retryKeys)
	if m == nil {
		return r
	}
	if a, ok := m["attempts"]; ok {
		n, err := strconv.Atoi(a.val.Value)
		switch {
		case a.val.Kind != yaml.ScalarNode || a.val.ShortTag() != "!!int" || err != nil:
			l.errorf(l.pos(a.val), "attempts: want a whole number, got %s", nodeKind(a.val))
		case n < 1:
			l.errorf(l.pos(a.val), "attempts: want 1 or more, got %d", n)
		default:
			r.Attempts = n
		}
	} else {
		l.missing(kv.val, "attempts", "retry: missing key %q", "attempts")
	}
	if d, ok := m["delay"]; ok {
		r.Delay, _ = l.duration(d)
	}
	return r
}

// stepExprs compiles the expressions and checks the `with:` of the step at
// index i.
func (l *loader) stepExprs(s *stepShape, i int) {
	st := s.step
	if s.m == nil {
		return
	}
	before := visibility{upTo: i, self: st.ID}
	if kv, ok := s.m["when"]; ok {
		if text, ok := l.exprText(kv); ok {
			st.When = &Condition{Expr: text, Pos: l.pos(kv.val)}
			if p := l.compileCondition(text, l.site(kv.val), before); p != nil {
				st.When.program = p
			}
		}
	}
	if kv, ok := s.m["require"]; ok {
		st.Require = l.conditions(kv, false, before)
	}
	if kv, ok := s.m["assert"]; ok {
		st.Assert = l.conditions(kv, false, visibility{upTo: i + 1, self: st.ID})
	}
	if !s.badWith {
		l.checkWith(st, s.m, before)
	}
}

// conditions reads a list of {expr, message}.
func (l *loader) conditions(kv keyValue, needMessage bool, vis visibility) []*Condition {
	items, ok := l.seq(kv)
	if !ok {
		return nil
	}
	out := make([]*Condition, 0, len(items))
	for i, item := range items {
		what := fmt.Sprintf("%s[%d]", kv.key.Value, i)
		m := l.mapping(item, what, conditionKeys)
		if m == nil {
			continue
		}
		c := &Condition{Pos: l.pos(item)}
		if mk, ok := m["message"]; ok {
			c.Message, _ = l.str(mk)
		} else if needMessage {
			l.missing(item, "message", "%s: missing key %q: say why the run is refused", what, "message")
		}
		ek, ok := m["expr"]
		if !ok {
			l.missing(item, "expr", "%s: missing key %q", what, "expr")
			continue
		}
		text, ok := l.exprText(ek)
		if !ok {
			continue
		}
		c.Expr, c.Pos = text, l.pos(ek.val)
		if p := l.compileCondition(text, l.site(ek.val), vis); p != nil {
			c.program = p
		}
		out = append(out, c)
	}
	return out
}

// checkWith checks the step's `with:` against its params struct, compiles
// its interpolations, and resolves the step's effect from the load-time
// params.
func (l *loader) checkWith(st *Step, m map[string]keyValue, vis visibility) {
	w := &stepWith{holes: map[*yaml.Node]*template{}, layout: l.env}
	st.with = w
	d := &decoder{l: l, vis: vis, holes: w.holes}
	if st.Type == nil {
		if st.With != nil {
			var x any
			d.decode(st.With, reflect.ValueOf(&x).Elem(), "with")
		}
		return
	}
	usesPos := l.pos(m["uses"].val)
	pt := st.Type.ParamsType()
	if err := defaultsProblem(pt); err != nil {
		l.errorf(usesPos, "step type %s: %v", st.Uses, err)
		return
	}
	n := st.With
	if n == nil {
		u := m["uses"].val
		n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: u.Line, Column: u.Column}
	}
	before := len(l.diags)
	p := reflect.New(pt)
	d.decode(n, p.Elem(), "with")
	if len(l.diags) > before {
		return
	}
	eff, err := effectFor(st.Type, p.Interface())
	if err != nil {
		l.errorf(usesPos, "step type %s: %v", st.Uses, err)
		return
	}
	st.Effect = eff
}

// effectFor asks the step type for its effect with these params, turning a
// panic in the step type's code into an error.
func effectFor(t StepType, p any) (e Effect, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("resolve effect: panic: %v", r)
		}
	}()
	return t.effectFor(p), nil
}

// site returns where offset off of scalar n's value lies in the file, so
// that errors inside expressions point at the right column.
func (l *loader) site(n *yaml.Node) exprSite {
	base := l.pos(n)
	fixed := func(int) Pos { return base }
	switch n.Style {
	case yaml.LiteralStyle:
		indent := -1
		for i := n.Line; i < len(l.sourceLines()); i++ { // the line after the header
			line := l.sourceLines()[i]
			if strings.TrimSpace(line) != "" {
				indent = len(line) - len(strings.TrimLeft(line, " "))
				break
			}
		}
		if indent < 0 {
			return fixed
		}
		value := []rune(n.Value)
		return func(off int) Pos {
			line, col := 0, 0
			for i := 0; i < off && i < len(value); i++ {
				if value[i] == '\n' {
					line, col = line+1, 0
				} else {
					col++
				}
			}
			return Pos{File: l.path, Line: n.Line + 1 + line, Col: indent + 1 + col}
		}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if n.Line < 1 || n.Line > len(l.sourceLines()) {
			return fixed
		}
		raw := []rune(l.sourceLines()[n.Line-1])
		start := n.Column - 1
		double := n.Style == yaml.DoubleQuotedStyle
		quote := '\''
		if double {
			quote = '"'
		}
		if start < 0 || start >= len(raw) || raw[start] != quote {
			return fixed
		}
		return func(off int) Pos {
			r := start + 1
			for v := 0; v < off; v++ {
				if r >= len(raw) {
					return base
				}
				switch {
				case double && raw[r] == '\\' && r+1 < len(raw):
					r += escapeLen(raw[r+1])
				case !double && raw[r] == '\'' && r+1 < len(raw) && raw[r+1] == '\'':
					r += 2
				default:
					r++
				}
			}
			return Pos{File: l.path, Line: n.Line, Col: r + 1}
		}
	case 0:
		if strings.Contains(n.Value, "\n") {
			return fixed
		}
		return func(off int) Pos { return Pos{File: l.path, Line: n.Line, Col: n.Column + off} }
	}
	return fixed
}

// escapeLen is the length in the source of a double-quoted escape that
// starts with a backslash followed by c.
func escapeLen(c rune) int {
	switch c {
	case 'x':
		return 4
	case 'u':
		return 6
	case 'U':
		return 10
	}
	return 2
}

func (l *loader) sourceLines() []string {
	if l.lines == nil {
		l.lines = strings.Split(string(l.src), "\n")
	}
	return l.lines
}
