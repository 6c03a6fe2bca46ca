package engine

import (
	"context"
	"errors"
	"flag"
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
