package vmca

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testLab starts a lab in scenario and returns it with an Env whose target
// is the lab, as the engine builds one for a step.
func testLab(t testing.TB, scenario string) (*lab.Lab, *engine.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, scenario)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	tg, err := l.Target(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	red := engine.NewRedactor(nil)
	return l, &engine.Env{
		RunID:  "20260102-030405-test",
		RunDir: t.TempDir(),
		StepID: "issue",
		Target: tg,
		Out:    &bytes.Buffer{},
		Redact: red.String,
		Now:    l.Model().Now,
	}
}

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}
