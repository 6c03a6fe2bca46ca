package local

import (
	"bytes"
	"strings"
	"testing"

	"runbook/engine"
)

// testEnv returns an Env like the engine builds, with its operator output
// in the returned buffer and secrets redacted as "***".
func testEnv(t *testing.T, secrets ...string) (*engine.Env, *bytes.Buffer) {
	t.Helper()
	out := &bytes.Buffer{}
	var pairs []string
	for _, s := range secrets {
		pairs = append(pairs, s, "***")
	}
	r := strings.NewReplacer(pairs...)
	return &engine.Env{
		RunID:     "test-run",
		RunDir:    t.TempDir(),
		BackupDir: t.TempDir(),
		StepID:    "step",
		Out:       out,
		Redact:    r.Replace,
		Secrets:   secrets,
	}, out
}

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	Register(r)
	want := map[string]engine.Effect{
		"assert":     engine.EffectRead,
		"note":       engine.EffectRead,
		"sleep":      engine.EffectRead,
		"confirm":    engine.EffectInteractive,
		"exec":       engine.EffectWrite,
		"cert.parse": engine.EffectRead,
	}
	if got := r.IDs(); len(got) != len(want) {
		t.Fatalf("registered %v, want %d types", got, len(want))
	}
	for id, effect := range want {
		st, ok := r.Lookup(id)
		if !ok {
			t.Errorf("%s is not registered", id)
			continue
		}
		if st.Effect() != effect {
			t.Errorf("%s: effect %s, want %s", id, st.Effect(), effect)
		}
	}
}
