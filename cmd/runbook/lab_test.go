package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/steps"
	"runbook/target"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader at once.
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

// execute runs the CLI with ctx (which Main would take from signals) and
// returns its error.
func execute(ctx context.Context, stdout, stderr *syncBuffer, env []string, args ...string) error {
	a := &app{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr, env: env, registry: steps.Registry()}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

// TestLabServe starts `runbook lab serve`, reaches the lab through the
// profile it wrote, then interrupts it as Ctrl-C would.
func TestLabServe(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "rehearsal.yaml")
	ctx, interrupt := context.WithCancel(t.Context())
	defer interrupt()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- execute(ctx, &stdout, &stderr, os.Environ(), "lab", "serve", "--scenario", "partner-down", "--profile-out", profile)
	}()

	for !strings.Contains(stdout.String(), "stop with Ctrl-C") {
		select {
		case err := <-done:
			t.Fatalf("serve ended early: %v\n%s%s", err, stdout.String(), stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	out := stdout.String()
	for _, want := range []string{
		"vcsa1.lab.test", "vcsa2.lab.test", "down (connections refused)",
		"profile: " + profile, "runbook run RUNBOOK --target " + profile,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("serve output lacks %q:\n%s", want, out)
		}
	}
	p, err := target.LoadProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := target.Open(t.Context(), p, target.Options{Name: profile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Nodes()[0].LDAP(t.Context()); err != nil {
		t.Errorf("LDAP to node 1 through the served profile: %v", err)
	}
	if _, err := tg.Nodes()[0].DialTLS(t.Context(), 0); err != nil {
		t.Errorf("TLS to node 1 through the served profile: %v", err)
	}
	if _, err := tg.Nodes()[1].DialTLS(t.Context(), 0); err == nil {
		t.Error("node 2 of partner-down answered")
	}
	tg.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 4 { // profile, SSO password, two root passwords
		t.Errorf("serve wrote %q", files)
	}

	interrupt()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after interrupt: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after the interrupt")
	}
	if !strings.Contains(stderr.String(), "lab partner-down stopped") {
		t.Errorf("stderr: %s", stderr.String())
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Errorf("serve left %q behind", files)
	}
}

// TestRunAgainstLab runs a runbook with --target lab:healthy: the run is
// journaled against lab:healthy and says it is a rehearsal.
func TestRunAgainstLab(t *testing.T) {
	dir := t.TempDir()
	rb := filepath.Join(dir, "facts.yaml")
	err := os.WriteFile(rb, []byte(`apiVersion: runbook/v1
name: facts
title: Show the target's facts
steps:
  - id: pnid
    uses: assert
    with:
      that: "${{ facts.pnid == \"vcsa1.lab.test\" && facts.domain == \"vsphere.local\" && facts.nodeType == \"embedded\" }}"
      message: unexpected facts
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "RUNBOOK_STATE_DIR="+filepath.Join(dir, "state"), "NO_COLOR=1")
	var stdout, stderr syncBuffer
	if err := execute(t.Context(), &stdout, &stderr, env, "run", rb, "--target", "lab:healthy"); err != nil {
		t.Fatalf("run: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "rehearsal against the simulated lab (scenario healthy)") {
		t.Errorf("stderr does not say it is a rehearsal:\n%s", stderr.String())
	}
	runs, err := engine.Runs(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Target != "lab:healthy" {
		t.Errorf("runs = %+v, want one against lab:healthy", runs)
	}

	stdout, stderr = syncBuffer{}, syncBuffer{}
	err = execute(t.Context(), &stdout, &stderr, env, "run", rb, "--target", filepath.Join(dir, "nope.yaml"))
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("run with a missing profile = %v, want a usage error naming it", err)
	}
}

// TestTrustOnFirstUse runs against a served lab whose profile pins nothing:
// without --trust-on-first-use the run refuses and prints the thumbprint to
// pin; with it, the run goes on and says what it trusted.
func TestTrustOnFirstUse(t *testing.T) {
	l, err := lab.Start(t.Context(), "healthy")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	profile, err := l.Profile(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	var unpinned []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "tls_thumbprint:") || strings.Contains(line, "host_key:") {
			continue
		}
		unpinned = append(unpinned, line)
	}
	if err := os.WriteFile(profile, []byte(strings.Join(unpinned, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "RUNBOOK_STATE_DIR="+filepath.Join(dir, "state"), "NO_COLOR=1")
	hostKey := l.Nodes()[0].SSHHostKey

	var stdout, stderr syncBuffer
	err = execute(t.Context(), &stdout, &stderr, env, "run", "sts-check", "--target", profile)
	if err == nil || !strings.Contains(err.Error()+stderr.String(), hostKey) {
		t.Fatalf("unpinned run = %v, want a refusal that prints the host key %s to pin\n%s", err, hostKey, stderr.String())
	}

	stdout, stderr = syncBuffer{}, syncBuffer{}
	if err := execute(t.Context(), &stdout, &stderr, env, "run", "sts-check", "--target", profile, "--trust-on-first-use"); err != nil {
		t.Fatalf("run with --trust-on-first-use: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), hostKey) {
		t.Errorf("the run did not say which host key it trusted:\n%s", stderr.String())
	}
}
