package engine

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ltStep(t testing.TB, rb *Runbook, id string) *Step {
	t.Helper()
	for _, st := range rb.Steps {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("no step %s", id)
	return nil
}

func ltScope(t testing.TB, rb *Runbook) *Scope {
	t.Helper()
	params, err := rb.BindParams(ParamInput{Env: []string{"RUNBOOK_PARAM_SSO_PASSWORD=s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	return &Scope{
		Params: params,
		Facts:  Facts{Domain: "vsphere.local", DomainDN: "dc=vsphere,dc=local", NodeType: "embedded"},
		Steps:  map[string]any{},
	}
}

func TestEvalConditions(t *testing.T) {
	rb := ltLoad(t, "testdata/valid/sts.yaml")
	s := ltScope(t, rb)
	remove := ltStep(t, rb, "remove_old")

	eval := func(c *Condition) bool {
		t.Helper()
		ok, err := c.Eval(s)
		if err != nil {
			t.Fatalf("Eval(%s): %v", c.Expr, err)
		}
		return ok
	}
	if !eval(rb.Guards[0]) {
		t.Errorf("guard refused an embedded node")
	}
	s.Facts.NodeType = "management"
	if eval(rb.Guards[0]) {
		t.Errorf("guard let a management node through")
	}
	// No step has run: entries are empty.
	if eval(remove.Require[0]) {
		t.Errorf("require passed with no entries")
	}
	s.Steps["creds"] = ltSearchOutputs{Count: 2, Entries: []ltEntry{
		{DN: "cn=TenantCredential-1", NotAfter: time.Now().Add(24 * time.Hour)},
		{DN: "cn=TenantCredential-2", NotAfter: time.Now().Add(400 * 24 * time.Hour)},
	}}
	if !eval(remove.Require[0]) {
		t.Errorf("require failed with two entries")
	}
	if !eval(remove.Require[2]) {
		t.Errorf("any(... notAfter - now() < days(180)) is false for a cert expiring tomorrow")
	}
	if eval(remove.Require[1]) {
		t.Errorf("steps.snapshots.yes is true before the step ran")
	}
	s.Steps["snapshots"] = &ltConfirmOutputs{Yes: true} // a pointer is accepted too
	if !eval(remove.Require[1]) {
		t.Errorf("steps.snapshots.yes is false after yes")
	}
	creds := ltStep(t, rb, "creds")
	if !eval(creds.Assert[0]) {
		t.Errorf("assert count == len(entries) failed")
	}
	// Replacing the map is seen.
	s.Steps = map[string]any{"creds": ltSearchOutputs{Count: 1}}
	if eval(creds.Assert[0]) || eval(remove.Require[1]) {
		t.Errorf("a replaced Steps map was not seen")
	}
	// Params changes are seen when the map changes.
	expiring := ltStep(t, rb, "expiring")
	if !eval(expiring.When) {
		t.Errorf("when mode == fix is false")
	}
	s.Params = map[string]any{"mode": "check", "force": false}
	if eval(expiring.When) {
		t.Errorf("when is true in check mode")
	}
}

func TestEvalErrors(t *testing.T) {
	rb := ltLoad(t, "testdata/valid/sts.yaml")
	s := ltScope(t, rb)
	s.Steps["creds"] = ltDeleteOutputs{}
	_, err := ltStep(t, rb, "remove_old").Require[0].Eval(s)
	if err == nil || !strings.Contains(err.Error(), "outputs of step creds") {
		t.Errorf("Eval with outputs of the wrong type: err = %v", err)
	}
	var c Condition
	if _, err := c.Eval(s); err == nil {
		t.Errorf("Eval of a condition not compiled by Load succeeded")
	}
}

func TestRenderLock(t *testing.T) {
	rb := ltLoad(t, "testdata/valid/sts.yaml")
	got, err := rb.Lock.Render(ltScope(t, rb))
	if err != nil {
		t.Fatal(err)
	}
	if want := "sso-domain-vsphere.local"; got != want {
		t.Errorf("lock = %q, want %q", got, want)
	}
}

func TestResolve(t *testing.T) {
	rb := ltLoad(t, "testdata/valid/sts.yaml")
	s := ltScope(t, rb)
	s.Steps["creds"] = ltSearchOutputs{Entries: []ltEntry{{DN: "cn=a"}, {DN: "cn=b"}}}
	tests := []struct {
		step string
		want any
	}{
		{"creds", &ltSearchParams{
			Base:    "cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=Services,dc=vsphere,dc=local",
			Filter:  "(objectClass=vmwSTSTenantCredential)",
			Scope:   "sub",
			Attrs:   []string{"userCertificate"},
			Timeout: 30 * time.Second,
		}},
		{"expiring", &ltSearchParams{
			Base: "dc=vsphere,dc=local", Filter: "(objectClass=*)", Scope: "sub",
			Limit: 180, Timeout: 5 * time.Minute,
		}},
		{"snapshots", &ltConfirmParams{Prompt: "Offline snapshots of every vCenter and PSC in the SSO domain taken together?"}},
		{"remove_old", &ltDeleteParams{DNs: []string{"cn=a", "cn=b"}, Backup: true}},
		{"list_files", &ltExecParams{Command: "ls", Args: []string{"-l", "vcsa1,vcsa2"}, Effect: "read"}},
	}
	for _, tt := range tests {
		got, err := ltStep(t, rb, tt.step).Resolve(s)
		if err != nil {
			t.Errorf("Resolve(%s): %v", tt.step, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Resolve(%s) = %+v, want %+v", tt.step, got, tt.want)
		}
	}
}

func TestEffects(t *testing.T) {
	rb := ltLoad(t, "testdata/valid/sts.yaml")
	want := map[string]Effect{
		"creds":      EffectRead,
		"expiring":   EffectRead,
		"snapshots":  EffectInteractive,
		"remove_old": EffectWrite,
		"list_files": EffectRead, // test.exec with effect: read
	}
	for id, e := range want {
		if got := ltStep(t, rb, id).Effect; got != e {
			t.Errorf("step %s effect = %s, want %s", id, got, e)
		}
	}
}

func benchScope(b *testing.B, rb *Runbook) *Scope {
	s := ltScope(b, rb)
	s.Steps["creds"] = ltSearchOutputs{Count: 2, Entries: []ltEntry{
		{DN: "cn=TenantCredential-1", NotAfter: time.Now().Add(400 * 24 * time.Hour)},
		{DN: "cn=TenantCredential-2", NotAfter: time.Now().Add(24 * time.Hour)},
	}}
	s.Steps["snapshots"] = ltConfirmOutputs{Yes: true}
	return s
}

// BenchmarkEvalCondition measures Condition.Eval on a scope whose
// environment is already bound: the cost of an assert after its step.
func BenchmarkEvalCondition(b *testing.B) {
	rb := ltLoad(b, "testdata/valid/sts.yaml")
	s := benchScope(b, rb)
	remove := ltStep(b, rb, "remove_old")
	for _, bc := range []struct {
		name string
		c    *Condition
	}{
		{"field", remove.Require[1]},
		{"len", remove.Require[0]},
		{"any-days", remove.Require[2]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ok, err := bc.c.Eval(s)
				if err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkAssertStep measures what the runner does around a read step
// with an assert: resolve its params, record its outputs, evaluate the
// assert (which sees the new outputs).
func BenchmarkAssertStep(b *testing.B) {
	rb := ltLoad(b, "testdata/valid/sts.yaml")
	creds := ltStep(b, rb, "creds")
	out := ltSearchOutputs{Count: 1, Entries: []ltEntry{{DN: "cn=a"}}}
	params, err := rb.BindParams(ParamInput{Env: []string{"RUNBOOK_PARAM_SSO_PASSWORD=x"}})
	if err != nil {
		b.Fatal(err)
	}
	s := &Scope{Params: params, Facts: Facts{Domain: "vsphere.local", DomainDN: "dc=vsphere,dc=local"}}
	b.ReportAllocs()
	for b.Loop() {
		s.Steps = map[string]any{}
		if _, err := creds.Resolve(s); err != nil {
			b.Fatal(err)
		}
		s.Steps["creds"] = out
		if ok, err := creds.Assert[0].Eval(s); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkResolve measures Step.Resolve of a with: with interpolations.
func BenchmarkResolve(b *testing.B) {
	rb := ltLoad(b, "testdata/valid/sts.yaml")
	s := benchScope(b, rb)
	for _, id := range []string{"creds", "remove_old"} {
		st := ltStep(b, rb, id)
		b.Run(id, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.Resolve(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHelpers evaluates the helper functions, and the expr-lang builtins
// runbooks lean on, as guards.
func TestHelpers(t *testing.T) {
	exprs := []string{
		`days(2) == hours(48) && hours(1) == minutes(60)`,
		`daysUntil(now() + days(3) + hours(1)) == 3`,
		`daysUntil(now() - hours(1)) == -1`,
		`now() + days(10) - now() < days(180)`,
		`sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"`,
		`sha1("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d"`,
		`lower("ABC") == "abc" && upper("abc") == "ABC" && trim("  x ") == "x"`,
		`hasPrefix("TenantCredential-1", "Tenant") && hasSuffix("a.local", ".local")`,
		`"y" in split("x,y", ",") && join(["a", "b"], ",") == "a,b"`,
		`uniq(["a", "a", "b"]) == ["a", "b"] && sort(["b", "a"])[0] == "a"`,
		`"vsphere.local" contains "sphere" && "a" matches "^[a-z]$"`,
		`len(filter(facts.nodes, .nodeType == "embedded")) == 1`,
		`params.n * 2 == 4 && params.wait == duration("5m") && params.wait == minutes(5)`,
		`"b" in params.list && len(params.list) == 2`,
	}
	var b strings.Builder
	b.WriteString("apiVersion: runbook/v1\nname: helpers\ntitle: Helpers\n")
	b.WriteString("params:\n  n: {type: int, default: 2}\n  wait: {type: duration, default: 5m}\n  list: {type: list, default: [a, b]}\n")
	b.WriteString("guards:\n")
	for _, e := range exprs {
		fmt.Fprintf(&b, "  - expr: %q\n    message: m\n", e)
	}
	b.WriteString("steps:\n  - id: ask\n    uses: test.confirm\n    with: {prompt: \"ok?\"}\n")
	rb, err := Load(ltRegistry(), "helpers.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	params, err := rb.BindParams(ParamInput{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Scope{Params: params, Facts: Facts{Nodes: []NodeFacts{{NodeType: "embedded"}, {NodeType: "management"}}}}
	for _, g := range rb.Guards {
		ok, err := g.Eval(s)
		if err != nil || !ok {
			t.Errorf("%s = %v, %v; want true", g.Expr, ok, err)
		}
	}
}
