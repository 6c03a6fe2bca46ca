package shell

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
)

// testSecret is the run's secret in these tests.
const testSecret = "S3cret-Pa55"

// testLab starts a lab in scenario and returns it with an Env whose target
// is the lab, as the engine builds one for a step.
func testLab(t testing.TB, scenario string, opts ...lab.Option) (*lab.Lab, *engine.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, scenario, opts...)
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
	return l, newEnv(t, tg)
}

// newEnv returns an Env over tg with testSecret as the run's secret.
func newEnv(t testing.TB, tg engine.Target) *engine.Env {
	return &engine.Env{
		RunID:     "test-run",
		RunDir:    t.TempDir(),
		BackupDir: t.TempDir(),
		StepID:    "step",
		Target:    tg,
		Out:       &bytes.Buffer{},
		Redact:    func(s string) string { return strings.ReplaceAll(s, testSecret, "***") },
		Secrets:   []string{testSecret},
	}
}

// snapshotUnchanged fails the test when the lab changed since before.
func snapshotUnchanged(t *testing.T, l *lab.Lab, before []byte, what string) {
	t.Helper()
	if after := l.Snapshot(); !bytes.Equal(before, after) {
		t.Errorf("%s changed the lab:\n%s", what, firstDiff(before, after))
	}
}

// firstDiff shows the first line that differs between two snapshots.
func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "- " + x + "\n+ " + y
		}
	}
	return "(no line differs)"
}
