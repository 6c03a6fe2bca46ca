package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"runbook/engine"
	"runbook/steps"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"runbook": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scripts in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("RUNBOOK_STATE_DIR", filepath.Join(env.WorkDir, "state"))
			env.Setenv("NO_COLOR", "1")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": exitcodeCmd,
		},
	})
}

// exitcodeCmd runs `exitcode N prog args…` and fails unless prog exits with N.
func exitcodeCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N prog [args…]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// TestSchemaUpToDate fails when schemas/runbook.schema.json is not what
// `runbook schema` generates from the registered step types.
func TestSchemaUpToDate(t *testing.T) {
	want, err := engine.Schema(steps.Registry())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "schemas", "runbook.schema.json")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run `go run ./cmd/runbook schema -f schemas/runbook.schema.json` (or go test ./cmd/runbook -run TestSchemaUpToDate -update)", path)
	}
}

// TestBuiltinRunbooksLint checks every embedded runbook loads cleanly.
func TestBuiltinRunbooksLint(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"lint"}, nil, &out, &errb); code != 0 {
		t.Fatalf("runbook lint exited %d:\n%s%s", code, out.String(), errb.String())
	}
}
