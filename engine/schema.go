package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
)

// Schema returns the JSON Schema (draft 2020-12) of the runbook format,
// with the params of every step type in reg: an editor that reads it
// completes and checks `with:` for the step type a step `uses`. The output
// is deterministic (object keys sorted) and ends with a newline, so it can
// be committed and compared.
func Schema(reg *Registry) ([]byte, error) {
	g := &schemaGen{}
	defs := map[string]any{
		"interpolation": map[string]any{
			"type":        "string",
			"pattern":     `^\$\{\{[\s\S]*\}\}$`,
			"description": "A single ${{ expression }}; the field takes the expression's value.",
		},
		"template": map[string]any{
			"type":        "string",
			"pattern":     `\$\{\{`,
			"description": "Text with ${{ expression }} interpolations.",
		},
		"expression": map[string]any{
			"type":        []string{"string", "boolean"},
			"description": "An expression that is true or false. It reads params.NAME, facts.NAME and steps.ID.OUTPUT of earlier steps.",
		},
		"duration": map[string]any{
			"type":        "string",
			"pattern":     `^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$|^0$`,
			"description": "A duration such as 90s, 5m or 1h30m.",
		},
		"condition": conditionSchema(nil, "A condition: an expression and, optionally, the message shown when it is false."),
		"guard":     conditionSchema([]string{"message"}, "A guard: the run is refused, before any step, when the expression is false."),
		"param":     paramDeclSchema(),
	}
	ids := reg.IDs()
	uses := make([]any, 0, len(ids))
	var cases []any
	for _, id := range ids {
		t, _ := reg.Lookup(id)
		spec := t.Describe()
		uses = append(uses, map[string]any{
			"const":       id,
			"description": fmt.Sprintf("%s (%s)", spec.Summary, t.Effect()),
		})
		ws, err := g.structSchema(t.ParamsType())
		if err != nil {
			return nil, fmt.Errorf("schema for step type %s: %w", id, err)
		}
		ws["description"] = "Params of " + id + ": " + spec.Summary
		defs["with."+id] = ws
		then := map[string]any{
			"properties": map[string]any{"with": map[string]any{"$ref": "#/$defs/with." + id}},
		}
		if req, _ := ws["required"].([]string); len(req) > 0 {
			then["required"] = []string{"with"}
		}
		cases = append(cases, map[string]any{
			"if": map[string]any{
				"properties": map[string]any{"uses": map[string]any{"const": id}},
				"required":   []string{"uses"},
			},
			"then": then,
		})
	}
	step := map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []string{"id", "uses"},
		"properties": map[string]any{
			"id": map[string]any{
				"type": "string", "pattern": identPattern.String(),
				"description": "The step's id; later steps read its outputs as steps.ID.",
			},
			"name": map[string]any{"type": "string", "description": "What the step does, for people."},
			"kb":   map[string]any{"type": "string", "description": "The KB step this step transcribes, such as \"76719 step 8\"."},
			"uses": map[string]any{"anyOf": uses, "description": "The step type."},
			"when": map[string]any{"$ref": "#/$defs/expression", "description": "The step runs only when this is true; otherwise it is skipped."},
			"require": map[string]any{
				"type": "array", "items": map[string]any{"$ref": "#/$defs/condition"},
				"description": "The step is refused (and the run stops) unless each of these is true.",
			},
			"assert": map[string]any{
				"type": "array", "items": map[string]any{"$ref": "#/$defs/condition"},
				"description": "After the step ran, it fails unless each of these is true; they may read the step's own outputs.",
			},
			"with": map[string]any{"type": "object", "description": "The step type's params."},
			"retry": map[string]any{
				"type": "object", "additionalProperties": false, "required": []string{"attempts"},
				"properties": map[string]any{
					"attempts": map[string]any{"type": "integer", "minimum": 1, "description": "Tries in all."},
					"delay":    map[string]any{"$ref": "#/$defs/duration", "description": "The wait between tries."},
				},
				"description": "How often a failing step is tried.",
			},
			"timeout": map[string]any{"$ref": "#/$defs/duration", "description": "How long the step may take."},
			"on_failure": map[string]any{
				"enum":        []string{string(Abort), string(Continue)},
				"description": "abort (the default) stops the run when the step fails; continue goes on.",
			},
		},
	}
	if len(cases) > 0 {
		step["allOf"] = cases
	}
	defs["step"] = step
	root := map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"title":                "Runbook",
		"description":          "A runbook (" + APIVersion + "): a KB procedure transcribed step by step.",
		"type":                 "object",
		"additionalProperties": false,
		"required":             []string{"apiVersion", "name", "title", "steps"},
		"properties": map[string]any{
			"apiVersion":  map[string]any{"const": APIVersion},
			"name":        map[string]any{"type": "string", "pattern": runbookNamePattern.String(), "description": "The runbook's name: lower-case words joined by dashes."},
			"title":       map[string]any{"type": "string", "minLength": 1, "description": "One line saying what the runbook does."},
			"description": map[string]any{"type": "string", "description": "Markdown for the operator: when to use the runbook and what it changes."},
			"kb": map[string]any{
				"type": "array", "items": map[string]any{"type": "string", "pattern": kbPattern.String()},
				"description": "The KB articles the runbook transcribes, by number.",
			},
			"params": map[string]any{
				"type":                 "object",
				"propertyNames":        map[string]any{"pattern": identPattern.String()},
				"additionalProperties": map[string]any{"$ref": "#/$defs/param"},
				"description":          "The runbook's parameters; expressions read them as params.NAME.",
			},
			"lock": map[string]any{"type": "string", "description": "The lock key: one run at a time holds it. May interpolate params and facts."},
			"guards": map[string]any{
				"type": "array", "items": map[string]any{"$ref": "#/$defs/guard"},
				"description": "Conditions checked before any step runs, in dry-run too.",
			},
			"steps": map[string]any{
				"type": "array", "minItems": 1, "items": map[string]any{"$ref": "#/$defs/step"},
				"description": "The steps, run in order.",
			},
		},
		"$defs": defs,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return buf.Bytes(), nil
}

func conditionSchema(alsoRequired []string, description string) map[string]any {
	return map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"required":             append([]string{"expr"}, alsoRequired...),
		"properties": map[string]any{
			"expr":    map[string]any{"$ref": "#/$defs/expression"},
			"message": map[string]any{"type": "string", "description": "Shown to the operator when the expression is false."},
		},
		"description": description,
	}
}

func paramDeclSchema() map[string]any {
	return map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []string{"type"},
		"properties": map[string]any{
			"type": map[string]any{
				"enum":        paramTypes,
				"description": "string, int, bool, duration, list (of strings), enum (one of values) or secret (never shown, never on the command line).",
			},
			"description": map[string]any{"type": "string", "description": "What the param is, for the operator."},
			"default":     map[string]any{"description": "The value when none is given. Not for secrets or required params."},
			"required": map[string]any{
				"type":        "boolean",
				"description": "The param must be given. Secrets are required unless this is false.",
			},
			"values": map[string]any{
				"type": "array", "items": map[string]any{"type": "string"}, "uniqueItems": true, "minItems": 1,
				"description": "The allowed values of an enum.",
			},
		},
	}
}

// schemaGen turns params struct types into JSON Schema.
type schemaGen struct {
	stack []reflect.Type // structs being described, against recursion
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/$defs/" + name} }

// orInterpolation lets a field also take a single ${{ }}.
func orInterpolation(s map[string]any) map[string]any {
	return map[string]any{"anyOf": []any{s, ref("interpolation")}}
}

// structSchema describes the keys of a params struct.
func (g *schemaGen) structSchema(t reflect.Type) (map[string]any, error) {
	for _, s := range g.stack {
		if s == t {
			return map[string]any{"type": "object"}, nil
		}
	}
	g.stack = append(g.stack, t)
	defer func() { g.stack = g.stack[:len(g.stack)-1] }()

	props := map[string]any{}
	required := []string{}
	for _, f := range infoOf(t).fields {
		if f.defErr != nil {
			return nil, fmt.Errorf("%s.%s: bad default %q: %w", t, f.key, f.defRaw, f.defErr)
		}
		s, err := g.fieldSchema(f)
		if err != nil {
			return nil, err
		}
		props[f.key] = s
		if f.required {
			required = append(required, f.key)
		}
	}
	out := map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"properties":           props,
	}
	if len(required) > 0 {
		slices.Sort(required)
		out["required"] = required
	}
	return out, nil
}

func (g *schemaGen) fieldSchema(f *fieldInfo) (map[string]any, error) {
	s, err := g.typeSchema(f.typ)
	if err != nil {
		return nil, err
	}
	if len(f.enum) > 0 {
		base := f.typ
		for base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		switch base.Kind() {
		case reflect.String:
			s = orInterpolation(map[string]any{"enum": f.enum})
		case reflect.Slice:
			s = orInterpolation(map[string]any{"type": "array", "items": map[string]any{"enum": f.enum}})
		}
	}
	if f.doc != "" {
		s["description"] = f.doc
	}
	if f.def != nil {
		var v any
		if err := f.def.Decode(&v); err == nil && v != nil {
			s["default"] = jsonValue(v)
		}
	}
	return s, nil
}

// jsonValue turns a value decoded from YAML into one encoding/json takes.
func jsonValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = jsonValue(x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = jsonValue(x)
		}
		return v
	case fmt.Stringer:
		return v.String()
	}
	return v
}

func (g *schemaGen) typeSchema(t reflect.Type) (map[string]any, error) {
	if t.Kind() != reflect.Interface && reflect.PointerTo(t).Implements(unmarshalerType) {
		return map[string]any{}, nil
	}
	switch t {
	case durationType:
		return map[string]any{"anyOf": []any{ref("duration"), ref("template")}}, nil
	case timeType:
		return map[string]any{"anyOf": []any{map[string]any{"type": "string", "format": "date-time"}, ref("template")}}, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.typeSchema(t.Elem())
	case reflect.Interface:
		return map[string]any{}, nil
	case reflect.String:
		return map[string]any{"type": "string"}, nil
	case reflect.Bool:
		return orInterpolation(map[string]any{"type": "boolean"}), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return orInterpolation(map[string]any{"type": "integer"}), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return orInterpolation(map[string]any{"type": "integer", "minimum": 0}), nil
	case reflect.Float32, reflect.Float64:
		return orInterpolation(map[string]any{"type": "number"}), nil
	case reflect.Slice:
		items, err := g.typeSchema(t.Elem())
		if err != nil {
			return nil, err
		}
		return orInterpolation(map[string]any{"type": "array", "items": items}), nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map type %s has non-string keys", t)
		}
		elem, err := g.typeSchema(t.Elem())
		if err != nil {
			return nil, err
		}
		return orInterpolation(map[string]any{"type": "object", "additionalProperties": elem}), nil
	case reflect.Struct:
		s, err := g.structSchema(t)
		if err != nil {
			return nil, err
		}
		return orInterpolation(s), nil
	}
	return nil, fmt.Errorf("params type %s is not supported", t)
}
