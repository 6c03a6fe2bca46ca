package engine

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const decodeRunbook = `apiVersion: runbook/v1
name: decode
title: Decoding with
params:
  mode: {type: string, default: sub}
  n: {type: int, default: 2}
  json: {type: string, default: "[]"}
steps:
  - id: creds
    uses: test.search
    with: {base: "dc=vsphere,dc=local"}
  - id: run
    uses: test.exec
    when: false
    with:
      command: "echo"
      node: "${{ facts.pnid }}"
      env: {DOMAIN: "${{ facts.domain }}", N: "n=${{ params.n }}"}
      retries: ${{ params.n * 2 }}
      extra:
        list: [1, "${{ params.n }}", {dn: "${{ facts.domainDN }}"}]
        flag: true
  - id: scoped
    uses: test.search
    with:
      base: "${{ steps.creds.entries[1].dn }}"
      scope: "${{ params.mode }}"
      attrs: "${{ fromJSON(params.json) }}"
`

func TestResolveInterpolations(t *testing.T) {
	rb, err := Load(ltRegistry(), "decode.yaml", []byte(decodeRunbook))
	if err != nil {
		t.Fatal(err)
	}
	s := &Scope{
		Params: map[string]any{"mode": "sub", "n": 2},
		Facts:  Facts{PNID: "vcsa1.lab.test", Domain: "vsphere.local", DomainDN: "dc=vsphere,dc=local"},
	}
	got, err := ltStep(t, rb, "run").Resolve(s)
	if err != nil {
		t.Fatal(err)
	}
	four := 4
	want := &ltExecParams{
		Command: "echo",
		Effect:  "write",
		Env:     map[string]string{"DOMAIN": "vsphere.local", "N": "n=2"},
		Retries: &four,
		Extra: map[string]any{
			"list": []any{1, 2, map[string]any{"dn": "dc=vsphere,dc=local"}},
			"flag": true,
		},
		ltConn: ltConn{Node: "vcsa1.lab.test"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve =\n%#v\nwant\n%#v", got, want)
	}
	ok, err := ltStep(t, rb, "run").When.Eval(s)
	if err != nil || ok {
		t.Errorf("when: false = %v, %v", ok, err)
	}
}

func TestResolveErrors(t *testing.T) {
	rb, err := Load(ltRegistry(), "decode.yaml", []byte(decodeRunbook))
	if err != nil {
		t.Fatal(err)
	}
	scoped := ltStep(t, rb, "scoped")
	two := ltSearchOutputs{Entries: []ltEntry{{DN: "cn=a"}, {DN: "cn=b"}}}
	tests := []struct {
		name   string
		params map[string]any
		steps  map[string]any
		want   string
	}{
		{"index out of range", map[string]any{"mode": "sub"}, map[string]any{},
			`resolve step scoped: with.base: evaluate "steps.creds.entries[1].dn" at decode.yaml:26:18: index out of range`},
		{"enum", map[string]any{"mode": "subtree"}, map[string]any{"creds": two},
			`with.scope: "subtree" is not one of base, one, sub`},
		{"list of the wrong type", map[string]any{"mode": "sub", "json": `{"a": 1}`}, map[string]any{"creds": two},
			"with.attrs: want a list, got a map (decode.yaml:28:14)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scoped.Resolve(&Scope{Params: tt.params, Steps: tt.steps})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Resolve error = %v, want it to say %q", err, tt.want)
			}
		})
	}
	// With valid values the same step resolves.
	got, err := scoped.Resolve(&Scope{Params: map[string]any{"mode": "one", "json": `["cn", "dn"]`}, Steps: map[string]any{"creds": two}})
	if err != nil {
		t.Fatal(err)
	}
	want := &ltSearchParams{Base: "cn=b", Filter: "(objectClass=*)", Scope: "one", Attrs: []string{"cn", "dn"}, Timeout: 30 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve = %+v, want %+v", got, want)
	}
}

func TestResolveDefaults(t *testing.T) {
	rb, err := Load(ltRegistry(), "decode.yaml", []byte(decodeRunbook))
	if err != nil {
		t.Fatal(err)
	}
	creds := ltStep(t, rb, "creds")
	got, err := creds.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &ltSearchParams{Base: "dc=vsphere,dc=local", Filter: "(objectClass=*)", Scope: "sub", Timeout: 30 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve = %+v, want the defaults %+v", got, want)
	}
	// A step built by hand without with: still gets its required keys checked.
	bare := *creds
	bare.With, bare.with = nil, nil
	if _, err := bare.Resolve(nil); err == nil || !strings.Contains(err.Error(), `missing required key "base"`) {
		t.Errorf("Resolve without with: err = %v", err)
	}
}

func TestAssign(t *testing.T) {
	tests := []struct {
		v    any
		into any
		want any
		bad  bool
	}{
		{[]any{"a", "b"}, []string(nil), []string{"a", "b"}, false},
		{[]any{"a", 1}, []string(nil), []string{"a", "1"}, false},
		{[]any{"a", []any{}}, []string(nil), nil, true},
		{3.0, int(0), 3, false},
		{3.5, int(0), nil, true},
		{-1, uint(0), nil, true},
		{300, int8(0), nil, true},
		{"90s", ltSearchParams{}.Timeout, ltSearchParams{Timeout: 90e9}.Timeout, false},
		{"soon", ltSearchParams{}.Timeout, nil, true},
		{float64(90e9), ltSearchParams{}.Timeout, ltSearchParams{Timeout: 90e9}.Timeout, false},
		{map[string]any{"base": "x", "limit": 2}, ltSearchParams{}, ltSearchParams{Base: "x", Limit: 2}, false},
		{map[string]any{"bsae": "x"}, ltSearchParams{}, nil, true},
		{true, "", "true", false},
		{"x", false, nil, true},
	}
	for _, tt := range tests {
		dst := reflect.New(reflect.TypeOf(tt.into)).Elem()
		err := assign(dst, tt.v)
		if tt.bad {
			if err == nil {
				t.Errorf("assign(%#v) into %T = %#v, want an error", tt.v, tt.into, dst.Interface())
			}
			continue
		}
		if err != nil {
			t.Errorf("assign(%#v) into %T: %v", tt.v, tt.into, err)
			continue
		}
		if got := dst.Interface(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("assign(%#v) into %T = %#v, want %#v", tt.v, tt.into, got, tt.want)
		}
	}
}

// TestStringDefaultIsLiteral checks that a string field's default tag is
// taken as written: YAML would read 0644 as an octal number and on as true.
func TestStringDefaultIsLiteral(t *testing.T) {
	type params struct {
		Mode string `yaml:"mode" default:"0644" doc:"The mode param."`
		Flag string `yaml:"flag" default:"on" doc:"The flag param."`
	}
	reg := NewRegistry()
	reg.Register(Read[params, struct{}]{
		Spec: Spec{ID: "mode.test", Summary: "Takes a mode."},
		Run:  func(context.Context, *Env, *params) (struct{}, error) { return struct{}{}, nil },
	})
	rb, err := Load(reg, "mode.yaml", []byte("apiVersion: runbook/v1\nname: mode\ntitle: Mode\nsteps:\n  - id: m\n    uses: mode.test\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := rb.Steps[0].Resolve(&Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.(*params); p.Mode != "0644" || p.Flag != "on" {
		t.Errorf("defaults = %+v, want the tags' text", p)
	}
	if _, err := Schema(reg); err != nil {
		t.Errorf("Schema: %v", err)
	}
}

// TestRegisterChecksTags checks that Register refuses a step type whose
// params or outputs break the tag conventions the loader, the schema and
// expressions rely on.
func TestRegisterChecksTags(t *testing.T) {
	type inner struct {
		Name string `json:"name" expr:"nom"`
	}
	type embedded struct {
		Base string `yaml:"base" doc:"The base."`
	}
	tests := []struct {
		name    string
		params  any
		outputs any
		want    string // "" means registered
	}{
		{"good", struct {
			A string `yaml:"a" doc:"An a."`
		}{}, struct {
			B []struct {
				C string `json:"c" expr:"c"`
			} `json:"b" expr:"b"`
		}{}, ""},
		{"inline params", struct {
			embedded `yaml:",inline"`
		}{}, struct{}{}, ""},
		{"no yaml key", struct {
			A string `doc:"An a."`
		}{}, struct{}{}, "params field A has no yaml tag"},
		{"no doc sentence", struct {
			A string `yaml:"a" doc:"an a"`
		}{}, struct{}{}, `params field A: doc "an a" is not a sentence`},
		{"nested params", struct {
			L []struct {
				X string `yaml:"x"`
			} `yaml:"l" doc:"A list."`
		}{}, struct{}{}, `params field X: doc "" is not a sentence`},
		{"json and expr differ", struct{}{}, struct {
			B string `json:"b" expr:"bee"`
		}{}, `json "b" and expr "bee" differ`},
		{"nested outputs", struct{}{}, struct {
			L []inner `json:"l" expr:"l"`
		}{}, `outputs field inner.Name: json "name" and expr "nom" differ`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkTags(reflect.TypeOf(tc.params), reflect.TypeOf(tc.outputs))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "doc") {
			t.Errorf("Register of a step type without doc tags: %v, want a panic", r)
		}
	}()
	NewRegistry().Register(Read[struct {
		A string `yaml:"a"`
	}, struct{}]{Spec: Spec{ID: "bad.tags", Summary: "Breaks the conventions."},
		Run: func(context.Context, *Env, *struct {
			A string `yaml:"a"`
		}) (struct{}, error) {
			return struct{}{}, nil
		}})
}
