package engine

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// This file decodes a step's `with:` mapping into its params struct, by
// walking the YAML node against the struct type. The same walk checks the
// mapping at load time (reporting diagnostics and compiling ${{ }}
// interpolations) and decodes it at run time (evaluating them).
//
// Params structs describe themselves with struct tags:
//
//	yaml:"key"            the key in `with:` (default: the lower-cased field name);
//	                      yaml:",inline" merges a struct's keys into its parent
//	doc:"..."             the field's documentation, for the schema and docs
//	required:"true"       the key must be given
//	enum:"a,b"            the allowed values of a string or list of strings
//	default:"..."         the value (as YAML) used when the key is absent

// fieldInfo describes one key of a params struct.
type fieldInfo struct {
	key      string
	index    []int
	typ      reflect.Type
	doc      string
	required bool
	enum     []string
	def      *yaml.Node // parsed default, or nil
	defRaw   string
	defErr   error
}

// structInfo describes the keys of a params struct type.
type structInfo struct {
	fields []*fieldInfo
	byKey  map[string]*fieldInfo
	keys   []string // sorted
}

var structInfos sync.Map // reflect.Type → *structInfo

// infoOf returns the keys of struct type t.
func infoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byKey: map[string]*fieldInfo{}}
	collectFields(t, nil, si)
	for _, f := range si.fields {
		si.keys = append(si.keys, f.key)
	}
	sort.Strings(si.keys)
	actual, _ := structInfos.LoadOrStore(t, si)
	return actual.(*structInfo)
}

func collectFields(t reflect.Type, index []int, si *structInfo) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		inline := contains(strings.Split(opts, ","), "inline") && sf.Type.Kind() == reflect.Struct
		if tag == "-" || !sf.IsExported() && !(inline && sf.Anonymous) {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		if inline {
			collectFields(sf.Type, idx, si)
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		if _, dup := si.byKey[name]; dup {
			continue
		}
		f := &fieldInfo{
			key:      name,
			index:    idx,
			typ:      sf.Type,
			doc:      sf.Tag.Get("doc"),
			required: sf.Tag.Get("required") == "true",
		}
		if e := sf.Tag.Get("enum"); e != "" {
			for _, v := range strings.Split(e, ",") {
				f.enum = append(f.enum, strings.TrimSpace(v))
			}
		}
		if d, ok := sf.Tag.Lookup("default"); ok {
			f.defRaw = d
			var doc yaml.Node
			if sf.Type.Kind() == reflect.String {
				// A string field's default is the tag's text as written:
				// "0644" stays 0644, not the octal number YAML reads.
				f.def = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: d}
			} else if err := yaml.Unmarshal([]byte(d), &doc); err != nil {
				f.defErr = err
			} else if len(doc.Content) == 1 {
				f.def = doc.Content[0]
			} else {
				f.def = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: d}
			}
			if f.defErr == nil {
				// A default must decode into the field and be allowed.
				v := reflect.New(f.typ).Elem()
				d := &decoder{literal: true}
				d.decode(f.def, v, name)
				if d.err == nil {
					d.checkEnum(f, f.def, v, name)
				}
				f.defErr = d.err
			}
		}
		si.byKey[name] = f
		si.fields = append(si.fields, f)
	}
}

// defaultsProblem returns the first bad `default:` tag in params struct t
// and the structs it holds, or nil.
func defaultsProblem(t reflect.Type) error {
	return walkStructs(t, map[reflect.Type]bool{}, func(st reflect.Type) error {
		for _, f := range infoOf(st).fields {
			if f.defErr != nil {
				return fmt.Errorf("%s.%s: bad default %q: %w", st, f.key, f.defRaw, f.defErr)
			}
		}
		return nil
	})
}

func walkStructs(t reflect.Type, seen map[reflect.Type]bool, fn func(reflect.Type) error) error {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] || t == timeType {
		return nil
	}
	seen[t] = true
	if err := fn(t); err != nil {
		return err
	}
	for _, f := range infoOf(t).fields {
		if err := walkStructs(f.typ, seen, fn); err != nil {
			return err
		}
	}
	return nil
}

// decoder walks a YAML node against a Go value.
//
// At load time l is set: problems become diagnostics, and ${{ }} scalars
// are compiled into holes and left zero. At run time env is set: holes are
// evaluated, and the first problem is kept in err.
type decoder struct {
	l     *loader
	vis   visibility
	holes map[*yaml.Node]*template
	env   *boundEnv
	file  string
	// literal decodes ${{ }} as plain text (for defaults).
	literal bool
	err     error
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) problem(n *yaml.Node, where, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	if d.l != nil {
		d.l.errorf(d.l.pos(n), "%s", msg)
		return
	}
	if d.err == nil {
		if n != nil && n.Line > 0 {
			msg = fmt.Sprintf("%s (%s:%d:%d)", msg, d.file, n.Line, n.Column)
		}
		d.err = errors.New(msg)
	}
}

// decode decodes n into v. It reports whether v comes from an interpolation.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, where string) (hole bool) {
	if n.Kind == yaml.AliasNode {
		d.problem(n, where, "YAML aliases are not supported in runbooks; write the value out")
		return false
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	t := v.Type()
	if !d.literal && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && hasInterpolation(n.Value) {
		d.interpolate(n, v, where)
		return true
	}
	if t.Kind() != reflect.Interface && reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.problem(n, where, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return false
	}
	isNull := n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
	switch t.Kind() {
	case reflect.Pointer:
		if isNull {
			v.SetZero()
			return false
		}
		nv := reflect.New(t.Elem())
		hole = d.decode(n, nv.Elem(), where)
		v.Set(nv)
		return hole
	case reflect.Interface:
		return d.decodeAny(n, v, where)
	case reflect.Slice, reflect.Map:
		if isNull {
			v.SetZero()
			return false
		}
	}
	if isNull {
		d.problem(n, where, "no value; want %s", typeName(t))
		return false
	}
	switch {
	case t == durationType:
		if d.wantScalar(n, where, t) {
			dur, err := time.ParseDuration(n.Value)
			if err != nil {
				d.problem(n, where, "%q is not a duration such as 90s, 5m or 1h30m", n.Value)
				return false
			}
			v.SetInt(int64(dur))
		}
		return false
	case t == timeType:
		if d.wantScalar(n, where, t) {
			tm, err := time.Parse(time.RFC3339, n.Value)
			if err != nil {
				d.problem(n, where, "%q is not a time such as 2026-01-02T15:04:05Z", n.Value)
				return false
			}
			v.Set(reflect.ValueOf(tm))
		}
		return false
	}
	switch t.Kind() {
	case reflect.String:
		if d.wantTag(n, where, t, "!!str") {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		if d.wantTag(n, where, t, "!!bool") {
			b, _ := strconv.ParseBool(strings.ToLower(n.Value))
			v.SetBool(b)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if d.wantTag(n, where, t, "!!int") {
			var i int64
			if err := n.Decode(&i); err != nil || v.OverflowInt(i) {
				d.problem(n, where, "%s is out of range", n.Value)
				return false
			}
			v.SetInt(i)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if d.wantTag(n, where, t, "!!int") {
			var u uint64
			if err := n.Decode(&u); err != nil || v.OverflowUint(u) {
				d.problem(n, where, "%s is out of range (want a whole number from 0)", n.Value)
				return false
			}
			v.SetUint(u)
		}
	case reflect.Float32, reflect.Float64:
		if d.wantTag(n, where, t, "!!float", "!!int") {
			var f float64
			if err := n.Decode(&f); err != nil {
				d.problem(n, where, "%s is not a number", n.Value)
				return false
			}
			v.SetFloat(f)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.problem(n, where, "want a list, got %s", nodeKind(n))
			return false
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", where, i))
		}
		v.Set(s)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			d.problem(n, where, "params type %s has non-string keys", t)
			return false
		}
		if n.Kind != yaml.MappingNode {
			d.problem(n, where, "want a mapping, got %s", nodeKind(n))
			return false
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" && k.ShortTag() != "!!int" {
				d.problem(k, where, "keys must be strings")
				continue
			}
			if m.MapIndex(reflect.ValueOf(k.Value).Convert(t.Key())).IsValid() {
				d.problem(k, where, "duplicate key %q", k.Value)
				continue
			}
			ev := reflect.New(t.Elem()).Elem()
			d.decode(val, ev, where+"."+k.Value)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), ev)
		}
		v.Set(m)
	case reflect.Struct:
		d.decodeStruct(n, v, where)
	default:
		d.problem(n, where, "params type %s is not supported", t)
	}
	return false
}

// wantScalar reports whether n is a scalar, reporting a problem if not.
func (d *decoder) wantScalar(n *yaml.Node, where string, t reflect.Type) bool {
	if n.Kind != yaml.ScalarNode {
		d.problem(n, where, "want %s, got %s", typeName(t), nodeKind(n))
		return false
	}
	return true
}

// wantTag reports whether n is a scalar with one of the tags.
func (d *decoder) wantTag(n *yaml.Node, where string, t reflect.Type, tags ...string) bool {
	if !d.wantScalar(n, where, t) {
		return false
	}
	if contains(tags, n.ShortTag()) {
		return true
	}
	hint := ""
	if t.Kind() == reflect.String && n.Kind == yaml.ScalarNode {
		hint = fmt.Sprintf("; quote it to make it a string: %q", n.Value)
	}
	d.problem(n, where, "want %s, got %s%s", typeName(t), nodeKind(n), hint)
	return false
}

// nodeKind names what a YAML node holds.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!str":
		return "a string"
	case "!!int":
		return "an int"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a bool"
	case "!!null":
		return "nothing"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	}
	return "a " + n.ShortTag() + " value"
}

// decodeStruct decodes a mapping into a struct: known keys, required keys
// and defaults.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, where string) {
	info := infoOf(v.Type())
	if n.Kind != yaml.MappingNode {
		d.problem(n, where, "want a mapping, got %s", nodeKind(n))
		return
	}
	prefix := where
	if prefix != "" {
		prefix += "."
	}
	seen := make(map[string]bool, len(n.Content)/2)
	merged := false
	misspelt := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(k, where, "keys must be strings, got %s", nodeKind(k))
			continue
		}
		f, ok := info.byKey[k.Value]
		if !ok {
			if k.Value == "<<" {
				d.problem(k, where, "YAML merge keys are not supported in runbooks; write the keys out")
				merged = true
				continue
			}
			d.problem(k, where, "unknown key %q%s", k.Value, didYouMean(k.Value, info.keys))
			if s := nearest(k.Value, info.keys); s != "" {
				misspelt[s] = true
			}
			continue
		}
		if seen[k.Value] {
			d.problem(k, where, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		fv := fieldAlloc(v, f.index)
		hole := d.decode(val, fv, prefix+f.key)
		if !hole || d.env != nil {
			d.checkEnum(f, val, fv, prefix+f.key)
		}
	}
	for _, f := range info.fields {
		if seen[f.key] {
			continue
		}
		switch {
		case f.required && !merged && !misspelt[f.key]:
			d.problem(n, where, "missing required key %q", f.key)
		case f.def != nil && f.defErr == nil:
			dd := &decoder{literal: true}
			dd.decode(f.def, fieldAlloc(v, f.index), prefix+f.key)
		}
	}
}

// checkEnum checks a decoded value against the field's allowed values.
func (d *decoder) checkEnum(f *fieldInfo, n *yaml.Node, v reflect.Value, where string) {
	if len(f.enum) == 0 {
		return
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	check := func(s string) {
		if !contains(f.enum, s) {
			d.problem(n, where, "%q is not one of %s%s", s, strings.Join(f.enum, ", "), didYouMean(s, f.enum))
		}
	}
	switch v.Kind() {
	case reflect.String:
		check(v.String())
	case reflect.Slice:
		for i := range v.Len() {
			if e := v.Index(i); e.Kind() == reflect.String {
				check(e.String())
			}
		}
	}
}

// fieldAlloc returns the field at index in v, allocating nil embedded
// pointers on the way.
func fieldAlloc(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// decodeAny decodes n into an interface value, as plain YAML data with
// interpolations.
func (d *decoder) decodeAny(n *yaml.Node, v reflect.Value, where string) bool {
	if v.NumMethod() != 0 {
		d.problem(n, where, "params type %s is not supported", v.Type())
		return false
	}
	switch n.Kind {
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, item := range n.Content {
			d.decode(item, reflect.ValueOf(&s[i]).Elem(), fmt.Sprintf("%s[%d]", where, i))
		}
		v.Set(reflect.ValueOf(s))
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.problem(k, where, "keys must be strings, got %s", nodeKind(k))
				continue
			}
			if _, dup := m[k.Value]; dup {
				d.problem(k, where, "duplicate key %q", k.Value)
				continue
			}
			var x any
			d.decode(val, reflect.ValueOf(&x).Elem(), where+"."+k.Value)
			m[k.Value] = x
		}
		v.Set(reflect.ValueOf(m))
	case yaml.ScalarNode:
		var x any
		if err := n.Decode(&x); err != nil {
			d.problem(n, where, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			return false
		}
		if x == nil {
			v.SetZero()
		} else {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.problem(n, where, "want a value, got %s", nodeKind(n))
	}
	return false
}

// interpolate handles a scalar holding ${{ }}: at load time it compiles
// the template and checks its type against the field; at run time it
// evaluates it into v.
func (d *decoder) interpolate(n *yaml.Node, v reflect.Value, where string) {
	if d.l != nil {
		d.compileHole(n, v.Type(), where)
		return
	}
	t := d.holes[n]
	if t == nil {
		d.problem(n, where, "interpolation was not compiled by Load")
		return
	}
	val, err := t.eval(d.env)
	if err != nil {
		if d.err == nil {
			d.err = fmt.Errorf("%s: %w", where, err)
		}
		return
	}
	if err := assign(v, val); err != nil {
		d.problem(n, where, "%v", err)
	}
}

func (d *decoder) compileHole(n *yaml.Node, ft reflect.Type, where string) {
	l := d.l
	t := l.compileTemplate(n.Value, l.site(n), d.vis, true)
	if t == nil {
		return
	}
	if t.whole != nil {
		if st := t.whole.prog.Node().Type(); !fits(st, ft) {
			l.errorf(l.pos(n), "%s: the expression is %s, want %s", where, typeName(st), typeName(ft))
			return
		}
	} else if !acceptsText(ft) {
		l.errorf(l.pos(n), "%s: text with ${{ }} is a string, want %s; write the whole value as one ${{ }}", where, typeName(ft))
		return
	}
	d.holes[n] = t
}

// acceptsText reports whether a field of type t can take interpolated text.
func acceptsText(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.String || t.Kind() == reflect.Interface || t == durationType || t == timeType
}

func isInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return t != durationType
	}
	return false
}

// fits reports whether an expression of static type st may be assigned to
// a field of type ft. Unknown types (interfaces) fit; assign checks them at
// run time.
func fits(st, ft reflect.Type) bool {
	for ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	if st == nil || st.Kind() == reflect.Interface || ft.Kind() == reflect.Interface || st == ft {
		return true
	}
	if st.Kind() == reflect.Pointer {
		return fits(st.Elem(), ft)
	}
	switch {
	case ft == durationType:
		return st.Kind() == reflect.String
	case ft == timeType:
		return st.Kind() == reflect.String
	case st == durationType || st == timeType:
		return ft.Kind() == reflect.String
	}
	switch ft.Kind() {
	case reflect.String:
		return textual(st)
	case reflect.Bool:
		return st.Kind() == reflect.Bool
	case reflect.Float32, reflect.Float64:
		return isInt(st) || st.Kind() == reflect.Float32 || st.Kind() == reflect.Float64
	case reflect.Slice:
		return (st.Kind() == reflect.Slice || st.Kind() == reflect.Array) && fits(st.Elem(), ft.Elem())
	case reflect.Map:
		return st.Kind() == reflect.Map && fits(st.Elem(), ft.Elem())
	case reflect.Struct:
		return st.Kind() == reflect.Map
	}
	return isInt(ft) && isInt(st)
}

// assign stores the run-time value v in dst, converting what the
// expression language produces (int for any integer, []any for lists,
// map[string]any for maps) to the field's type.
func assign(dst reflect.Value, v any) error {
	if v == nil {
		dst.SetZero()
		return nil
	}
	return assignValue(dst, reflect.ValueOf(v))
}

func assignValue(dst reflect.Value, rv reflect.Value) error {
	for rv.Kind() == reflect.Interface || rv.Kind() == reflect.Pointer && dst.Kind() != reflect.Pointer {
		if rv.IsNil() {
			dst.SetZero()
			return nil
		}
		rv = rv.Elem()
	}
	dt := dst.Type()
	if rv.Type() == dt || dt.Kind() == reflect.Interface && rv.Type().AssignableTo(dt) {
		dst.Set(rv)
		return nil
	}
	mismatch := func() error {
		return fmt.Errorf("want %s, got %s", typeName(dt), typeName(rv.Type()))
	}
	switch {
	case dt == durationType:
		if n, ok := wholeNumber(rv); ok && rv.Kind() != reflect.String {
			// Nanoseconds, as a duration comes back from JSON.
			dst.SetInt(n)
			return nil
		}
		if rv.Kind() != reflect.String {
			return mismatch()
		}
		d, err := time.ParseDuration(rv.String())
		if err != nil {
			return fmt.Errorf("want a duration such as 90s, 5m or 1h30m: %w", err)
		}
		dst.SetInt(int64(d))
		return nil
	case dt == timeType:
		if rv.Kind() != reflect.String {
			return mismatch()
		}
		t, err := time.Parse(time.RFC3339, rv.String())
		if err != nil {
			return fmt.Errorf("want a time such as 2026-01-02T15:04:05Z: %w", err)
		}
		dst.Set(reflect.ValueOf(t))
		return nil
	}
	switch dt.Kind() {
	case reflect.Pointer:
		nv := reflect.New(dt.Elem())
		if err := assignValue(nv.Elem(), rv); err != nil {
			return err
		}
		dst.Set(nv)
	case reflect.String:
		s, err := toText(rv.Interface())
		if err != nil {
			return mismatch()
		}
		dst.SetString(s)
	case reflect.Bool:
		if rv.Kind() != reflect.Bool {
			return mismatch()
		}
		dst.SetBool(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := wholeNumber(rv)
		if !ok || dst.OverflowInt(i) {
			return mismatch()
		}
		dst.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, ok := wholeNumber(rv)
		if !ok || i < 0 || dst.OverflowUint(uint64(i)) {
			return mismatch()
		}
		dst.SetUint(uint64(i))
	case reflect.Float32, reflect.Float64:
		switch {
		case rv.CanFloat():
			dst.SetFloat(rv.Float())
		case rv.CanInt():
			dst.SetFloat(float64(rv.Int()))
		case rv.CanUint():
			dst.SetFloat(float64(rv.Uint()))
		default:
			return mismatch()
		}
	case reflect.Slice:
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return mismatch()
		}
		s := reflect.MakeSlice(dt, rv.Len(), rv.Len())
		for i := range rv.Len() {
			if err := assignValue(s.Index(i), rv.Index(i)); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		dst.Set(s)
	case reflect.Map:
		if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String || dt.Key().Kind() != reflect.String {
			return mismatch()
		}
		m := reflect.MakeMapWithSize(dt, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			ev := reflect.New(dt.Elem()).Elem()
			if err := assignValue(ev, iter.Value()); err != nil {
				return fmt.Errorf("key %s: %w", iter.Key().String(), err)
			}
			m.SetMapIndex(reflect.ValueOf(iter.Key().String()).Convert(dt.Key()), ev)
		}
		dst.Set(m)
	case reflect.Struct:
		if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
			return mismatch()
		}
		info := infoOf(dt)
		iter := rv.MapRange()
		for iter.Next() {
			f, ok := info.byKey[iter.Key().String()]
			if !ok {
				return fmt.Errorf("unknown key %q%s", iter.Key().String(), didYouMean(iter.Key().String(), info.keys))
			}
			if err := assignValue(fieldAlloc(dst, f.index), iter.Value()); err != nil {
				return fmt.Errorf("%s: %w", f.key, err)
			}
		}
	default:
		return mismatch()
	}
	return nil
}

// wholeNumber returns rv as an int64 when it is an integer or a float
// without a fraction.
func wholeNumber(rv reflect.Value) (int64, bool) {
	switch {
	case rv.Type() == durationType:
		return 0, false
	case rv.CanInt():
		return rv.Int(), true
	case rv.CanUint():
		if rv.Uint() > math.MaxInt64 {
			return 0, false
		}
		return int64(rv.Uint()), true
	case rv.CanFloat():
		f := rv.Float()
		if f != math.Trunc(f) || f > math.MaxInt64 || f < math.MinInt64 {
			return 0, false
		}
		return int64(f), true
	}
	return 0, false
}

// Resolve interpolates the step's `with:` mapping against the scope and
// decodes it strictly into a new params struct, returned as a pointer (*P
// for a step type with params P). Keys absent from `with:` take their
// `default:` tag. The mapping's keys and literal values were checked by
// Load; Resolve fails only when an interpolated value does not fit its
// field at run time, or an expression fails.
func (st *Step) Resolve(s *Scope) (any, error) {
	if st.Type == nil {
		return nil, fmt.Errorf("resolve step %s: no step type", st.ID)
	}
	p := reflect.New(st.Type.ParamsType())
	d := &decoder{file: st.Pos.File}
	if w, _ := st.with.(*stepWith); w != nil && len(w.holes) > 0 {
		env, err := s.bind(w.layout)
		if err != nil {
			return nil, fmt.Errorf("resolve step %s: %w", st.ID, err)
		}
		d.holes, d.env = w.holes, env
	}
	n := st.With
	if n == nil {
		n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	d.decode(n, p.Elem(), "with")
	if d.err != nil {
		return nil, fmt.Errorf("resolve step %s: %w", st.ID, d.err)
	}
	return p.Interface(), nil
}

// stepWith is what Load keeps about a step's `with:`: the compiled
// interpolations, by the scalar node they replace.
type stepWith struct {
	holes  map[*yaml.Node]*template
	layout *envLayout
}
