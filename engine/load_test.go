package engine

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The step types below are small fakes registered into a private registry;
// their names start with lt (load test) to stay apart from other tests in
// the package.

type ltEntry struct {
	DN       string              `json:"dn" expr:"dn"`
	Attrs    map[string][]string `json:"attrs" expr:"attrs"`
	NotAfter time.Time           `json:"notAfter" expr:"notAfter"`
}

type ltSearchParams struct {
	Base    string        `yaml:"base" doc:"The search base DN." required:"true"`
	Filter  string        `yaml:"filter" doc:"The LDAP filter." default:"(objectClass=*)"`
	Scope   string        `yaml:"scope" doc:"How deep to search." enum:"base,one,sub" default:"sub"`
	Attrs   []string      `yaml:"attrs" doc:"The attributes to return."`
	Limit   int           `yaml:"limit" doc:"The most entries to return; 0 for no limit."`
	Timeout time.Duration `yaml:"timeout" doc:"How long the search may take." default:"30s"`
}

type ltSearchOutputs struct {
	Entries []ltEntry `json:"entries" expr:"entries"`
	Count   int       `json:"count" expr:"count"`
}

type ltDeleteParams struct {
	DNs    []string `yaml:"dns" doc:"The DNs to delete." required:"true"`
	Backup bool     `yaml:"backup" doc:"Save the entries first." default:"true"`
}

type ltDeleteOutputs struct {
	Deleted int `json:"deleted" expr:"deleted"`
}

type ltExecParams struct {
	Command string            `yaml:"command" doc:"The program to run." required:"true"`
	Args    []string          `yaml:"args" doc:"Its arguments."`
	Effect  string            `yaml:"effect" doc:"Whether the command changes the target." enum:"read,write" default:"write"`
	Env     map[string]string `yaml:"env" doc:"Extra environment variables."`
	Retries *int              `yaml:"retries" doc:"How often to retry."`
	Extra   any               `yaml:"extra" doc:"Anything."`
	ltConn  `yaml:",inline"`
}

type ltConn struct {
	Node string `yaml:"node" doc:"The node to run on."`
}

type ltExecOutputs struct {
	Stdout   string `json:"stdout" expr:"stdout"`
	ExitCode int    `json:"exitCode" expr:"exitCode"`
}

type ltConfirmParams struct {
	Prompt string `yaml:"prompt" doc:"The question to ask." required:"true"`
}

type ltConfirmOutputs struct {
	Yes bool `json:"yes" expr:"yes"`
}

func ltRegistry() *Registry {
	reg := NewRegistry()
	reg.Register(Read[ltSearchParams, ltSearchOutputs]{
		Spec: Spec{ID: "test.search", Summary: "Searches the directory."},
		Run: func(context.Context, *Env, *ltSearchParams) (ltSearchOutputs, error) {
			return ltSearchOutputs{}, nil
		},
	})
	reg.Register(Write[ltDeleteParams, ltDeleteOutputs]{
		Spec:  Spec{ID: "test.delete", Summary: "Deletes directory entries."},
		Plan:  func(context.Context, *Env, *ltDeleteParams) (Plan, error) { return Plan{}, nil },
		Apply: func(context.Context, *Env, *ltDeleteParams) (ltDeleteOutputs, error) { return ltDeleteOutputs{}, nil },
		Check: func(context.Context, *Env, *ltDeleteParams) (Verdict[ltDeleteOutputs], error) {
			return Verdict[ltDeleteOutputs]{}, nil
		},
	})
	reg.Register(Write[ltExecParams, ltExecOutputs]{
		Spec:  Spec{ID: "test.exec", Summary: "Runs a command on a node."},
		Plan:  func(context.Context, *Env, *ltExecParams) (Plan, error) { return Plan{}, nil },
		Apply: func(context.Context, *Env, *ltExecParams) (ltExecOutputs, error) { return ltExecOutputs{}, nil },
		Check: func(context.Context, *Env, *ltExecParams) (Verdict[ltExecOutputs], error) {
			return Verdict[ltExecOutputs]{}, nil
		},
		ReadOnly: func(p *ltExecParams) bool { return p.Effect == "read" },
	})
	reg.Register(Interactive[ltConfirmParams, ltConfirmOutputs]{
		Spec: Spec{ID: "test.confirm", Summary: "Asks the operator to confirm."},
		Ask: func(context.Context, *Env, *ltConfirmParams) (ltConfirmOutputs, error) {
			return ltConfirmOutputs{}, nil
		},
	})
	return reg
}

func ltLoad(t testing.TB, path string) *Runbook {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Load(ltRegistry(), path, src)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", path, err)
	}
	return rb
}

// TestLoadBroken loads every runbook under testdata/broken and compares
// its diagnostics with the .golden file beside it.
func TestLoadBroken(t *testing.T) {
	files, err := filepath.Glob("testdata/broken/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("only %d broken runbooks in testdata/broken", len(files))
	}
	reg := ltRegistry()
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := Load(reg, path, src)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", rb)
			}
			var diags Diagnostics
			if !errors.As(err, &diags) {
				t.Fatalf("Load error is %T, want Diagnostics: %v", err, err)
			}
			for _, d := range diags {
				if d.Pos.File != path || d.Pos.Line < 1 || d.Pos.Col < 1 {
					t.Errorf("diagnostic without a position: %v", d)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("diagnostics differ from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// FuzzLoad checks that Load never panics, that every diagnostic has a
// position, and that what loads can be documented, evaluated and resolved
// without a panic.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/valid/*.yaml", "testdata/broken/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, path := range files {
			src, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	reg := ltRegistry()
	f.Fuzz(func(t *testing.T, src []byte) {
		rb, err := Load(reg, "fuzz.yaml", src)
		if err != nil {
			var diags Diagnostics
			if !errors.As(err, &diags) || len(diags) == 0 {
				t.Fatalf("Load error is not Diagnostics: %v", err)
			}
			for _, d := range diags {
				if d.Pos.Line < 1 || d.Pos.Col < 1 || d.Message == "" {
					t.Fatalf("diagnostic without a position or message: %#v", d)
				}
			}
			return
		}
		_ = Docs(rb)
		s := &Scope{Params: map[string]any{}, Steps: map[string]any{}}
		if rb.Lock != nil {
			_, _ = rb.Lock.Render(s)
		}
		for _, g := range rb.Guards {
			_, _ = g.Eval(s)
		}
		for _, st := range rb.Steps {
			if st.When != nil {
				_, _ = st.When.Eval(s)
			}
			_, _ = st.Resolve(s)
		}
	})
}

// bigRunbook returns a runbook of n steps, each reading the one before.
func bigRunbook(n int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: runbook/v1\nname: big\ntitle: Many steps\nparams:\n  base: {type: string, default: \"dc=vsphere,dc=local\"}\nsteps:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - id: s%d\n    uses: test.search\n", i)
		if i > 0 {
			fmt.Fprintf(&b, "    when: steps.s%d.count >= 0 && len(steps.s%d.entries) < 100\n", i-1, i-1)
		}
		limit := "1"
		if i > 0 {
			limit = fmt.Sprintf("${{ steps.s%d.count + 1 }}", i-1)
		}
		fmt.Fprintf(&b, "    with:\n      base: \"cn=%d,${{ params.base }}\"\n      limit: %s\n", i, limit)
		fmt.Fprintf(&b, "    assert:\n      - expr: steps.s%d.count == len(steps.s%d.entries)\n        message: counted\n", i, i)
	}
	return []byte(b.String())
}

// BenchmarkLoad1000Steps measures Load of a runbook with 1,000 steps and
// 3,000 expressions.
func BenchmarkLoad1000Steps(b *testing.B) {
	src := bigRunbook(1000)
	reg := ltRegistry()
	if _, err := Load(reg, "big.yaml", src); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(reg, "big.yaml", src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalLate measures an assert of the last step of a 1,000-step
// runbook after every step ran, with outputs added one at a time.
func BenchmarkEvalLate(b *testing.B) {
	rb, err := Load(ltRegistry(), "big.yaml", bigRunbook(1000))
	if err != nil {
		b.Fatal(err)
	}
	s := &Scope{Params: map[string]any{"base": "dc=x"}, Steps: map[string]any{}}
	for _, st := range rb.Steps {
		s.Steps[st.ID] = ltSearchOutputs{}
		if _, err := st.Assert[0].Eval(s); err != nil {
			b.Fatal(err)
		}
	}
	last := rb.Steps[len(rb.Steps)-1]
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := last.Assert[0].Eval(s); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
