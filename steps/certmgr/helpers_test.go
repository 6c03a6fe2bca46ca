package certmgr

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/lab/model"
)

var update = flag.Bool("update", false, "rewrite golden files")

// syncBuffer is a bytes.Buffer safe for the step's progress lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// labEnv is a lab and an Env for a step on it, as the engine builds one,
// with the SSO administrator's password as the run's secret.
type labEnv struct {
	l        *lab.Lab
	d        *model.Domain
	env      *engine.Env
	out      *syncBuffer
	password string
}

func testLab(t testing.TB, scenario string) *labEnv {
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
	d := l.Model()
	d.Lock()
	password := d.AdminPassword
	d.Unlock()
	secrets := []string{password}
	out := &syncBuffer{}
	return &labEnv{l: l, d: d, out: out, password: password, env: &engine.Env{
		RunID:     "20260102-030405-test",
		RunDir:    t.TempDir(),
		BackupDir: t.TempDir(),
		StepID:    "certmgr",
		Target:    tg,
		Out:       out,
		Redact:    engine.NewRedactor(secrets).String,
		Secrets:   secrets,
		Now:       d.Now,
	}}
}

// params returns certmgr.run params for option on the first node, as a
// runbook would give them.
func (e *labEnv) params(option string) *runParams {
	return &runParams{Option: option, SSOPassword: e.password, Country: "US", Organization: "VMware",
		OrgUnit: "VMware Engineering", State: "California", Locality: "Palo Alto", Email: "email@acme.com"}
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

// stripSnapshot drops from a lab snapshot what a rolled-back
// certificate-manager run legitimately changes: BACKUP_STORE (one
// generation of backups), logs, and its working files (the certool.cfg
// working copy and the Lookup Service spec files in /tmp).
func stripSnapshot(s []byte) string {
	var out []string
	inBackup := false
	for _, l := range strings.Split(string(s), "\n") {
		if strings.HasPrefix(l, "store ") || strings.HasPrefix(l, "-- ") {
			inBackup = l == "store "+model.StoreBackup
		}
		if inBackup || strings.Contains(l, " /var/log/") || strings.Contains(l, " /var/tmp/vmware") ||
			strings.Contains(l, " /tmp/svcspec_") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// lineDiff lists the lines only in a or only in b.
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
