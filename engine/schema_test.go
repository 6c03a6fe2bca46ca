package engine

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestSchemaDeterministic(t *testing.T) {
	first, err := Schema(ltRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, err := Schema(ltRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("Schema output differs between calls")
		}
	}
	if !bytes.HasSuffix(first, []byte("}\n")) {
		t.Errorf("Schema output does not end with a newline")
	}
}

func TestSchemaContents(t *testing.T) {
	out, err := Schema(ltRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("Schema is not JSON: %v", err)
	}
	defs := s["$defs"].(map[string]any)
	search := defs["with.test.search"].(map[string]any)
	if search["additionalProperties"] != false {
		t.Errorf("with.test.search allows additional properties")
	}
	if req := search["required"].([]any); len(req) != 1 || req[0] != "base" {
		t.Errorf("with.test.search required = %v, want [base]", req)
	}
	props := search["properties"].(map[string]any)
	scope := props["scope"].(map[string]any)
	if scope["description"] != "How deep to search." || scope["default"] != "sub" {
		t.Errorf("scope = %v, want its doc and default", scope)
	}
	enum := scope["anyOf"].([]any)[0].(map[string]any)["enum"].([]any)
	if len(enum) != 3 || enum[0] != "base" {
		t.Errorf("scope enum = %v", enum)
	}
	exec := defs["with.test.exec"].(map[string]any)["properties"].(map[string]any)
	if _, ok := exec["node"]; !ok {
		t.Errorf("inline field node missing from with.test.exec: %v", exec)
	}
	step := defs["step"].(map[string]any)
	if n := len(step["allOf"].([]any)); n != 4 {
		t.Errorf("step has %d if/then cases, want 4 (one per step type)", n)
	}
	if strings.Contains(string(out), `\u003c`) {
		t.Errorf("schema escapes < as \\u003c")
	}
}
