package engine

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// This file holds the expression language: the typed environment that
// expressions are compiled against, the helper functions, compilation with
// positioned diagnostics, and evaluation against a Scope.
//
// Expressions are github.com/expr-lang/expr programs. They see three names:
//
//	params  the runbook's parameters, typed as declared
//	facts   the target's Facts
//	steps   one field per earlier step, typed as that step type's outputs
//
// plus expr-lang's builtins (len, map, filter, any, all, join, split, lower,
// upper, trim, hasPrefix, hasSuffix, now, duration, date, sort, uniq, ...)
// and the helpers below.

// helperFuncs are the functions expressions get beyond expr-lang's builtins.
var helperFuncs = []expr.Option{
	expr.Function("days", func(p ...any) (any, error) {
		return durationOf(p[0], 24*time.Hour)
	}, new(func(int) time.Duration)),
	expr.Function("hours", func(p ...any) (any, error) {
		return durationOf(p[0], time.Hour)
	}, new(func(int) time.Duration)),
	expr.Function("minutes", func(p ...any) (any, error) {
		return durationOf(p[0], time.Minute)
	}, new(func(int) time.Duration)),
	expr.Function("daysUntil", func(p ...any) (any, error) {
		t, ok := p[0].(time.Time)
		if !ok {
			return nil, fmt.Errorf("daysUntil wants a time, got %T", p[0])
		}
		return int(math.Floor(time.Until(t).Hours() / 24)), nil
	}, new(func(time.Time) int)),
	expr.Function("sha1", func(p ...any) (any, error) {
		sum := sha1.Sum([]byte(p[0].(string)))
		return hex.EncodeToString(sum[:]), nil
	}, new(func(string) string)),
	expr.Function("sha256", func(p ...any) (any, error) {
		sum := sha256.Sum256([]byte(p[0].(string)))
		return hex.EncodeToString(sum[:]), nil
	}, new(func(string) string)),
}

// durationOf returns n units as a duration.
func durationOf(n any, unit time.Duration) (any, error) {
	v := reflect.ValueOf(n)
	switch {
	case v.CanInt():
		return time.Duration(v.Int()) * unit, nil
	case v.CanUint():
		return time.Duration(v.Uint()) * unit, nil
	}
	return nil, fmt.Errorf("want a whole number, got %T", n)
}

// The fields of the environment struct, in order.
const (
	envParams = iota
	envFacts
	envSteps
)

var (
	factsType    = reflect.TypeFor[Facts]()
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
	anyType      = reflect.TypeFor[any]()
)

// envLayout is the typed environment of one runbook: a struct type with the
// fields params, facts and steps, built with reflect.StructOf, and where each
// parameter and step lives in it.
type envLayout struct {
	typ    reflect.Type
	params []paramSlot
	byName map[string]int
	steps  map[string]*stepSlot
	// stepIDs are the ids of steps in the environment, in file order.
	stepIDs []string
}

type paramSlot struct {
	name string
	typ  reflect.Type
}

type stepSlot struct {
	id    string
	uses  string
	order int // index of the step in the runbook
	field int // field index in the steps struct
	typ   reflect.Type
	// known is false when the step type is unknown; its outputs are then
	// typed any so that one mistake does not cascade.
	known bool
}

// paramGoType is the Go type expressions see for a parameter type.
func paramGoType(t ParamType) reflect.Type {
	switch t {
	case ParamString, ParamEnum, ParamSecret:
		return reflect.TypeFor[string]()
	case ParamInt:
		return reflect.TypeFor[int]()
	case ParamBool:
		return reflect.TypeFor[bool]()
	case ParamDuration:
		return durationType
	case ParamList:
		return reflect.TypeFor[[]string]()
	}
	return anyType
}

// newEnvLayout builds the environment type for the given params and steps.
// Steps with a duplicate id after the first are left out.
func newEnvLayout(params []*ParamDecl, steps []*Step) *envLayout {
	l := &envLayout{byName: map[string]int{}, steps: map[string]*stepSlot{}}
	var pf []reflect.StructField
	for _, p := range params {
		if _, dup := l.byName[p.Name]; dup {
			continue
		}
		t := paramGoType(p.Type)
		l.byName[p.Name] = len(l.params)
		l.params = append(l.params, paramSlot{name: p.Name, typ: t})
		pf = append(pf, reflect.StructField{
			Name: "P" + strconv.Itoa(len(pf)),
			Type: t,
			Tag:  reflect.StructTag(`expr:"` + p.Name + `"`),
		})
	}
	var sf []reflect.StructField
	for i, st := range steps {
		if _, dup := l.steps[st.ID]; dup || st.ID == "" {
			continue
		}
		slot := &stepSlot{id: st.ID, uses: st.Uses, order: i, field: len(sf), typ: anyType}
		if st.Type != nil {
			slot.typ, slot.known = st.Type.OutputsType(), true
		}
		l.steps[st.ID] = slot
		l.stepIDs = append(l.stepIDs, st.ID)
		sf = append(sf, reflect.StructField{
			Name: "S" + strconv.Itoa(len(sf)),
			Type: slot.typ,
			Tag:  reflect.StructTag(`expr:"` + st.ID + `"`),
		})
	}
	l.typ = reflect.StructOf([]reflect.StructField{
		{Name: "Params", Type: reflect.StructOf(pf), Tag: `expr:"params"`},
		{Name: "Facts", Type: factsType, Tag: `expr:"facts"`},
		{Name: "Steps", Type: reflect.StructOf(sf), Tag: `expr:"steps"`},
	})
	return l
}

// exprFieldNames lists the names expressions use for the fields of struct
// type t, following embedded structs, sorted.
func exprFieldNames(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("expr")
		switch {
		case tag == "-":
		case tag != "":
			names = append(names, tag)
		case f.Anonymous:
			names = append(names, exprFieldNames(f.Type)...)
		default:
			names = append(names, f.Name)
		}
	}
	sort.Strings(names)
	return names
}

// visibility says which steps an expression may read: those whose index in
// the runbook is below upTo. why explains, for the diagnostic, where the
// expression sits when it may read no step at all.
type visibility struct {
	upTo int
	self string // id of the step the expression belongs to, if any
	why  string
}

// program is a compiled expression bound to its environment layout.
type program struct {
	layout *envLayout
	prog   *vm.Program
	src    string
	pos    Pos
}

// exprSite says where an expression's text lies in the file, so that an
// error inside the expression is reported at its own line and column.
type exprSite func(off int) Pos

// compile checks src and compiles it against the layout. It reports every
// problem as a diagnostic and returns nil when there was one.
func (l *loader) compile(src string, at exprSite, vis visibility) *program {
	if strings.TrimSpace(src) == "" {
		l.errorf(at(0), "empty expression")
		return nil
	}
	tree, err := parser.ParseWithConfig(src, l.exprConfig())
	if err != nil {
		l.exprError(src, at, err, nil)
		return nil
	}
	if !l.checkRefs(tree.Node, at, vis) {
		return nil
	}
	c := l.exprConfig()
	if _, err := checker.Check(tree, c); err != nil {
		l.exprError(src, at, err, tree)
		return nil
	}
	if err := optimizer.Optimize(&tree.Node, c); err != nil {
		l.exprError(src, at, err, tree)
		return nil
	}
	prog, err := compiler.Compile(tree, c)
	if err != nil {
		if msg, _, crashed := strings.Cut(err.Error(), "\ngoroutine "); crashed {
			// expr-lang recovered from a panic of its own and put the
			// stack in the message; an author needs one line.
			err = fmt.Errorf("the expression compiler failed on this expression (%s); "+
				"write it another way, e.g. first(filter(xs, pred)) instead of filter(xs, pred)[0]", strings.TrimSpace(msg))
		}
		l.exprError(src, at, err, tree)
		return nil
	}
	lead := len([]rune(src)) - len([]rune(strings.TrimLeft(src, " \t\n")))
	return &program{layout: l.env, prog: prog, src: strings.TrimSpace(src), pos: at(lead)}
}

// exprConfig returns the expr-lang configuration for the runbook's
// environment, made once per Load so that its type cache is shared.
func (l *loader) exprConfig() *conf.Config {
	if l.conf == nil {
		c := conf.CreateNew()
		// A struct value, not a pointer, so that the compiler resolves field
		// indexes at compile time; evaluation passes a pointer.
		expr.Env(reflect.New(l.env.typ).Elem().Interface())(c)
		for _, op := range helperFuncs {
			op(c)
		}
		c.Check()
		l.conf = c
	}
	return l.conf
}

// compileCondition compiles a condition, which must be a bool.
func (l *loader) compileCondition(src string, at exprSite, vis visibility) *program {
	p := l.compile(src, at, vis)
	if p == nil {
		return nil
	}
	if t := p.prog.Node().Type(); t != nil && t.Kind() != reflect.Interface && t.Kind() != reflect.Bool {
		l.errorf(p.pos, "a condition must be true or false, but this expression is %s", typeName(t))
		return nil
	}
	return p
}

// exprError turns an expr-lang error into a diagnostic at its position.
// tree, when not nil, is the checked tree, used to list the fields of a
// value that has no field by the name used.
func (l *loader) exprError(src string, at exprSite, err error, tree *parser.Tree) {
	var fe *file.Error
	if !errors.As(err, &fe) {
		l.errorf(at(0), "%v", err)
		return
	}
	msg := fe.Message
	if msg == "unexpected token EOF" {
		msg = "unexpected end of expression"
	}
	if name, ok := strings.CutPrefix(msg, "unknown name "); ok {
		msg += didYouMean(name, []string{"params", "facts", "steps"})
	}
	if m := noFieldMessage.FindStringSubmatch(msg); m != nil && tree != nil {
		if names := fieldsAt(tree.Node, fe.From); names != nil {
			msg = fmt.Sprintf("unknown field %q", m[1])
			if hint := didYouMean(m[1], names); hint != "" {
				msg += hint
			} else {
				msg += "; the fields are " + strings.Join(names, ", ")
			}
		}
	}
	off := fe.From
	if n := len([]rune(src)); off > n {
		off = n
	}
	l.errorf(at(off), "%s", msg)
}

var noFieldMessage = regexp.MustCompile(`^(?:type \S+ has no field|unknown field) (\S+)$`)

// fieldsAt returns the field names of the value a member access at offset
// from reads, after a failed check left the types of the nodes before it.
func fieldsAt(root ast.Node, from int) []string {
	var names []string
	ast.Walk(&root, visitFunc(func(n *ast.Node) {
		m, ok := (*n).(*ast.MemberNode)
		if !ok || names != nil {
			return
		}
		if m.Location().From != from && m.Property.Location().From != from {
			return
		}
		if t := m.Node.Type(); t != nil && t.Kind() != reflect.Interface {
			names = exprFieldNames(t)
		}
	}))
	return names
}

// checkRefs checks every params.X, facts.X and steps.X.Y in the tree against
// the declared params, the Facts fields and the steps the expression may
// read, with messages that say what is wrong and what was probably meant.
func (l *loader) checkRefs(root ast.Node, at exprSite, vis visibility) bool {
	ok := true
	fail := func(n ast.Node, format string, args ...any) {
		l.errorf(at(n.Location().From), format, args...)
		ok = false
	}
	seen := map[*ast.IdentifierNode]bool{}
	var members []*ast.MemberNode
	var idents []*ast.IdentifierNode
	ast.Walk(&root, visitFunc(func(n *ast.Node) {
		switch n := (*n).(type) {
		case *ast.MemberNode:
			members = append(members, n)
		case *ast.IdentifierNode:
			idents = append(idents, n)
		}
	}))
	// Members are visited children first; look at them outermost first so
	// that steps.a.b is checked before steps.a.
	for _, m := range members {
		id, isIdent := m.Node.(*ast.IdentifierNode)
		if !isIdent {
			continue
		}
		prop, literal := m.Property.(*ast.StringNode)
		switch id.Value {
		case "params", "facts", "steps":
			seen[id] = true
		default:
			continue
		}
		if !literal {
			if id.Value == "steps" {
				fail(id, "steps must be followed by a step id, as in steps.%s", firstOr(l.env.stepIDs, "check"))
			}
			continue
		}
		switch id.Value {
		case "params":
			if _, found := l.env.byName[prop.Value]; !found {
				names := make([]string, 0, len(l.env.params))
				for _, p := range l.env.params {
					names = append(names, p.name)
				}
				fail(m.Property, "unknown param %q%s", prop.Value, didYouMean(prop.Value, names))
			}
		case "facts":
			if names := exprFieldNames(factsType); !contains(names, prop.Value) {
				fail(m.Property, "unknown fact %q%s", prop.Value, didYouMean(prop.Value, names))
			}
		case "steps":
			slot, found := l.env.steps[prop.Value]
			switch {
			case !found:
				fail(m.Property, "unknown step %q%s", prop.Value, didYouMean(prop.Value, l.env.stepIDs))
			case slot.order >= vis.upTo && slot.id == vis.self:
				fail(m.Property, "step %q cannot read its own outputs here; only its assert runs after it", prop.Value)
			case slot.order >= vis.upTo && vis.why != "":
				fail(m.Property, "%s cannot read step outputs (steps.%s)", vis.why, prop.Value)
			case slot.order >= vis.upTo:
				fail(m.Property, "step %q runs after this step; only earlier steps can be read", prop.Value)
			}
		}
	}
	// steps.X.Y: check Y against the outputs of X.
	for _, m := range members {
		inner, isMember := m.Node.(*ast.MemberNode)
		if !isMember {
			continue
		}
		id, isIdent := inner.Node.(*ast.IdentifierNode)
		stepProp, lit1 := inner.Property.(*ast.StringNode)
		prop, lit2 := m.Property.(*ast.StringNode)
		if !isIdent || id.Value != "steps" || !lit1 || !lit2 {
			continue
		}
		slot, found := l.env.steps[stepProp.Value]
		if !found || !slot.known {
			continue
		}
		if names := exprFieldNames(slot.typ); !contains(names, prop.Value) {
			fail(m.Property, "step %q (%s) has no output %q%s", slot.id, slot.uses, prop.Value, didYouMean(prop.Value, names))
		}
	}
	for _, id := range idents {
		if id.Value == "steps" && !seen[id] {
			fail(id, "steps must be followed by a step id, as in steps.%s", firstOr(l.env.stepIDs, "check"))
		}
	}
	return ok
}

type visitFunc func(n *ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(n) }

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// typeName names a Go type the way an author thinks of it.
func typeName(t reflect.Type) string {
	switch {
	case t == nil:
		return "nil"
	case t == durationType:
		return "a duration"
	case t == timeType:
		return "a time"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an int"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map:
		return "a map"
	case reflect.Struct:
		return "an object"
	case reflect.Interface:
		return "any value"
	}
	return t.String()
}

// ---------------------------------------------------------------------------
// Templates: text with ${{ expr }} interpolations.

// segment is a piece of a template: literal text, or an expression whose
// text starts at rune offset off in the template.
type segment struct {
	lit  string
	expr string
	off  int
	isEx bool
}

// splitTemplate cuts s into literal text and ${{ }} expressions. It returns
// the rune offset of an unterminated ${{ in bad (else -1).
func splitTemplate(s string) (segs []segment, bad int) {
	rs := []rune(s)
	var lit []rune
	for i := 0; i < len(rs); {
		if i+2 < len(rs) && rs[i] == '$' && rs[i+1] == '{' && rs[i+2] == '{' {
			end := closeOfInterpolation(rs, i+3)
			if end < 0 {
				return nil, i
			}
			if len(lit) > 0 {
				segs = append(segs, segment{lit: string(lit)})
				lit = nil
			}
			segs = append(segs, segment{expr: string(rs[i+3 : end]), off: i + 3, isEx: true})
			i = end + 2
			continue
		}
		lit = append(lit, rs[i])
		i++
	}
	if len(lit) > 0 {
		segs = append(segs, segment{lit: string(lit)})
	}
	return segs, -1
}

// closeOfInterpolation finds the "}}" that ends an interpolation whose
// expression starts at from, skipping string literals and balanced braces.
func closeOfInterpolation(rs []rune, from int) int {
	depth := 0
	for i := from; i < len(rs); i++ {
		switch r := rs[i]; r {
		case '"', '\'', '`':
			for i++; i < len(rs) && rs[i] != r; i++ {
				if rs[i] == '\\' && r != '`' {
					i++
				}
			}
		case '{':
			depth++
		case '}':
			if depth > 0 {
				depth--
				continue
			}
			if i+1 < len(rs) && rs[i+1] == '}' {
				return i
			}
		}
	}
	return -1
}

// hasInterpolation reports whether s holds a ${{.
func hasInterpolation(s string) bool { return strings.Contains(s, "${{") }

// template is a compiled Template: literal text and programs.
type template struct {
	parts []templatePart
	// whole is set when the text is exactly one ${{ }}: its value keeps its
	// type.
	whole *program
}

type templatePart struct {
	lit  string
	prog *program
}

// compileTemplate compiles text that may hold ${{ }}. When whole is true
// and the text is exactly one interpolation, the result keeps the
// expression's type. It returns nil after reporting a problem.
func (l *loader) compileTemplate(s string, at exprSite, vis visibility, whole bool) *template {
	segs, bad := splitTemplate(s)
	if bad >= 0 {
		l.errorf(at(bad), "unterminated ${{: close it with }}")
		return nil
	}
	t := &template{}
	ok := true
	for _, seg := range segs {
		if !seg.isEx {
			t.parts = append(t.parts, templatePart{lit: seg.lit})
			continue
		}
		off := seg.off
		lead := len([]rune(seg.expr)) - len([]rune(strings.TrimLeft(seg.expr, " \t")))
		p := l.compile(seg.expr, func(o int) Pos { return at(off + o) }, vis)
		if p == nil {
			ok = false
			continue
		}
		if whole && len(segs) == 1 {
			t.whole = p
			continue
		}
		if typ := p.prog.Node().Type(); !textual(typ) {
			l.errorf(at(off+lead), "cannot put %s into text; make it a string first (for a list: join(list, \",\"))", typeName(typ))
			ok = false
			continue
		}
		t.parts = append(t.parts, templatePart{prog: p})
	}
	if !ok {
		return nil
	}
	return t
}

// textual reports whether a value of static type t can be written into text.
func textual(t reflect.Type) bool {
	if t == nil || t == durationType || t == timeType {
		return true
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map, reflect.Struct, reflect.Func, reflect.Chan:
		return false
	}
	return true
}

// toText formats an interpolated value.
func toText(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case time.Duration:
		return v.String(), nil
	case time.Time:
		return v.UTC().Format(time.RFC3339), nil
	case fmt.Stringer:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		return strconv.FormatInt(rv.Int(), 10), nil
	case rv.CanUint():
		return strconv.FormatUint(rv.Uint(), 10), nil
	case rv.CanFloat():
		return strconv.FormatFloat(rv.Float(), 'f', -1, 64), nil
	case rv.Kind() == reflect.String:
		return rv.String(), nil
	}
	return "", fmt.Errorf("cannot put %s into text", typeName(rv.Type()))
}

// eval runs a template: the typed value of a whole interpolation, or the
// text.
func (t *template) eval(env *boundEnv) (any, error) {
	if t.whole != nil {
		return env.run(t.whole)
	}
	if len(t.parts) == 1 && t.parts[0].prog == nil {
		return t.parts[0].lit, nil
	}
	var b strings.Builder
	for _, part := range t.parts {
		if part.prog == nil {
			b.WriteString(part.lit)
			continue
		}
		v, err := env.run(part.prog)
		if err != nil {
			return nil, err
		}
		s, err := toText(v)
		if err != nil {
			return nil, fmt.Errorf("interpolate %q: %w", part.prog.src, err)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// ---------------------------------------------------------------------------
// Evaluation.

// Eval evaluates the condition against the scope. The expression was
// compiled by Load; Eval only runs it. Steps absent from the scope read as
// their zero outputs. An error means the expression failed at run time (for
// example an index out of range); it never says false.
//
// Eval keeps the expression environment in s between calls and updates it
// incrementally: facts are read on every call, params again when the Params
// map is replaced or changes size, and a step's outputs once, when its id
// first appears in Steps (assign a new Steps map to change outputs already
// there). Like its maps, a Scope must not be used by two goroutines at once.
// Template.Render and Step.Resolve share the same environment.
func (c *Condition) Eval(s *Scope) (bool, error) {
	p, ok := c.program.(*program)
	if !ok || p == nil {
		return false, fmt.Errorf("evaluate %q: condition was not compiled by Load", c.Expr)
	}
	env, err := s.bind(p.layout)
	if err != nil {
		return false, fmt.Errorf("evaluate %q: %w", c.Expr, err)
	}
	v, err := env.run(p)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("evaluate %q at %s: want true or false, got %s", c.Expr, c.Pos, typeNameOf(v))
	}
	return b, nil
}

// Render interpolates the template's ${{ }} expressions against the scope
// and returns the text.
func (t *Template) Render(s *Scope) (string, error) {
	tp, ok := t.program.(*template)
	if !ok || tp == nil {
		if hasInterpolation(t.Raw) {
			return "", fmt.Errorf("render %q: template was not compiled by Load", t.Raw)
		}
		return t.Raw, nil
	}
	env, err := s.bind(tp.layout())
	if err != nil {
		return "", fmt.Errorf("render %q: %w", t.Raw, err)
	}
	v, err := tp.eval(env)
	if err != nil {
		return "", err
	}
	text, err := toText(v)
	if err != nil {
		return "", fmt.Errorf("render %q: %w", t.Raw, err)
	}
	return text, nil
}

// layout returns the environment layout of the template's programs, or nil
// when it has none.
func (t *template) layout() *envLayout {
	if t.whole != nil {
		return t.whole.layout
	}
	for _, p := range t.parts {
		if p.prog != nil {
			return p.prog.layout
		}
	}
	return nil
}

func typeNameOf(v any) string {
	if v == nil {
		return "nil"
	}
	return typeName(reflect.TypeOf(v))
}

// boundEnv is the environment value of one runbook layout for one Scope,
// kept between evaluations and brought up to date incrementally.
type boundEnv struct {
	layout *envLayout
	ptr    reflect.Value // *env struct
	params reflect.Value // env.Params, addressable
	steps  reflect.Value // env.Steps, addressable
	facts  *Facts
	vm     vm.VM

	// What has been copied in: the identity and size of the maps, and which
	// steps are set.
	paramsMap, stepsMap uintptr
	paramsLen, stepsLen int
	set                 []bool
}

// run runs a program on the bound environment.
func (e *boundEnv) run(p *program) (any, error) {
	if e == nil {
		return nil, fmt.Errorf("evaluate %q: no environment", p.src)
	}
	v, err := e.vm.Run(p.prog, e.ptr.Interface())
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			// The message without expr-lang's snippet: the expression and
			// its position say where.
			err = errors.New(fe.Message)
		}
		return nil, fmt.Errorf("evaluate %q at %s: %w", p.src, p.pos, err)
	}
	return v, nil
}

func mapID(m any) uintptr {
	v := reflect.ValueOf(m)
	if !v.IsValid() || v.IsNil() {
		return 0
	}
	return uintptr(v.UnsafePointer())
}

// bind returns the scope's environment for the layout, brought up to date.
//
// The environment is cached in the scope and updated incrementally: facts
// are copied on every call; params are copied again when the Params map is
// replaced or changes size; a step's outputs are copied once, when they
// appear in Steps, and all steps again when the Steps map is replaced. A
// runner that must change the outputs of a step already in Steps assigns a
// new map. Like its maps, a Scope is not safe for concurrent use.
func (s *Scope) bind(layout *envLayout) (*boundEnv, error) {
	if layout == nil {
		return nil, nil
	}
	if s == nil {
		s = &Scope{}
	}
	e := s.env
	if e == nil || e.layout != layout {
		e = newBoundEnv(layout)
		s.env = e
	}
	if err := e.update(s); err != nil {
		return nil, err
	}
	return e, nil
}

func newBoundEnv(layout *envLayout) *boundEnv {
	ptr := reflect.New(layout.typ)
	env := ptr.Elem()
	return &boundEnv{
		layout: layout,
		ptr:    ptr,
		params: env.Field(envParams),
		steps:  env.Field(envSteps),
		facts:  env.Field(envFacts).Addr().Interface().(*Facts),
		set:    make([]bool, len(layout.stepIDs)),
	}
}

func (e *boundEnv) update(s *Scope) error {
	*e.facts = s.Facts
	if id := mapID(s.Params); id != e.paramsMap || len(s.Params) != e.paramsLen {
		e.params.SetZero()
		for name, v := range s.Params {
			i, ok := e.layout.byName[name]
			if !ok {
				continue
			}
			if err := assign(e.params.Field(i), v); err != nil {
				return fmt.Errorf("param %s: %w", name, err)
			}
		}
		e.paramsMap, e.paramsLen = id, len(s.Params)
	}
	id := mapID(s.Steps)
	if id != e.stepsMap {
		e.steps.SetZero()
		clear(e.set)
		e.stepsMap, e.stepsLen = id, -1
	}
	if len(s.Steps) != e.stepsLen {
		for sid, v := range s.Steps {
			slot, ok := e.layout.steps[sid]
			if !ok || e.set[slot.field] {
				continue
			}
			if err := setOutputs(e.steps.Field(slot.field), v); err != nil {
				return fmt.Errorf("outputs of step %s: %w", sid, err)
			}
			e.set[slot.field] = true
		}
		e.stepsLen = len(s.Steps)
	}
	return nil
}

// setOutputs stores a step's outputs (a value of, or pointer to, its
// outputs struct) in the environment.
func setOutputs(dst reflect.Value, v any) error {
	if v == nil {
		dst.SetZero()
		return nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && rv.Type().Elem() == dst.Type() {
		if rv.IsNil() {
			dst.SetZero()
			return nil
		}
		rv = rv.Elem()
	}
	if dst.Kind() == reflect.Interface || rv.Type() == dst.Type() {
		dst.Set(rv)
		return nil
	}
	return fmt.Errorf("got %s, want %s", rv.Type(), dst.Type())
}
