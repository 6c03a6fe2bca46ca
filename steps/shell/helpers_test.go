package shell

import (
	"bytes"
	"context"
	"reflect"
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

// checkTags checks the struct tag conventions of a step type: every params
// field has a yaml key and a doc sentence; every outputs field, nested
// structs included, has the same json and expr name.
func checkTags(t *testing.T, id string, params, outputs reflect.Type) {
	t.Helper()
	for i := range params.NumField() {
		f := params.Field(i)
		if f.Tag.Get("yaml") == "" {
			t.Errorf("%s params %s: no yaml tag", id, f.Name)
		}
		if doc := f.Tag.Get("doc"); doc == "" || !strings.HasSuffix(doc, ".") {
			t.Errorf("%s params %s: doc %q is not a sentence", id, f.Name, doc)
		}
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(st reflect.Type) {
		for st.Kind() == reflect.Slice || st.Kind() == reflect.Pointer {
			st = st.Elem()
		}
		if st.Kind() != reflect.Struct || st == reflect.TypeFor[time.Time]() || seen[st] {
			return
		}
		seen[st] = true
		for i := range st.NumField() {
			f := st.Field(i)
			j, e := f.Tag.Get("json"), f.Tag.Get("expr")
			if j == "" || j != e {
				t.Errorf("%s outputs %s.%s: json %q and expr %q differ", id, st.Name(), f.Name, j, e)
			}
			walk(f.Type)
		}
	}
	walk(outputs)
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
