package local_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/steps/local"
)

// runbookSrc uses every local step type the way runbooks do, with
// interpolations between them. %[1]s is a certificate file, %[2]s a file
// the write step creates.
const runbookSrc = `apiVersion: runbook/v1
name: local-steps
title: Exercise the local step types
steps:
  - id: read
    uses: exec
    with:
      argv: [cat, "%[1]s"]
      effect: read
  - id: cert
    uses: cert.parse
    with:
      cert: "${{ steps.read.stdout }}"
  - id: fresh
    uses: assert
    with:
      that: "${{ steps.cert.count == 1 && !steps.cert.expired && steps.cert.isLeaf == false }}"
      message: certificate is not a single valid root
  - id: show
    uses: note
    with:
      message: "SHA1 Fingerprint=${{ steps.cert.sha1 }}"
  - id: settle
    uses: sleep
    with: {duration: 1ms}
  - id: go_on
    uses: confirm
    with:
      prompt: Write the marker?
      answer: true
  - id: write
    uses: exec
    with:
      argv: [/bin/sh, -c, 'printf %%s "$SUBJECT" > "$1"', sh, "%[2]s"]
      env: {SUBJECT: "${{ steps.cert.subject }}"}
      check: [test, -s, "%[2]s"]
`

// TestThroughEngine loads and runs a runbook with the engine, so that the
// params structs are known to decode as runbooks write them and the
// outputs to type-check in expressions.
func TestThroughEngine(t *testing.T) {
	dir := t.TempDir()
	certFile, marker := filepath.Join(dir, "machine.crt"), filepath.Join(dir, "marker")
	if err := os.WriteFile(certFile, selfSigned(t), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := engine.NewRegistry()
	local.Register(reg)
	rb, err := engine.Load(reg, "local-steps.yaml", fmt.Appendf(nil, runbookSrc, certFile, marker))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	run := func(dry bool) *engine.Result {
		t.Helper()
		r := &engine.Runner{StateDir: t.TempDir(), DryRun: dry}
		res, err := r.Run(context.Background(), rb, map[string]any{})
		if err != nil {
			t.Fatalf("Run (dry-run %v): %v", dry, err)
		}
		return res
	}

	res := run(true)
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a dry-run ran the write command: %v", err)
	}
	if s := res.Step("write"); s == nil || s.Status != engine.StepPlanned || s.Plan == nil || s.Plan.InPlace {
		t.Fatalf("dry-run write step: %+v", s)
	}
	if s := res.Step("cert"); s == nil || s.Status != engine.StepDone {
		t.Fatalf("dry-run did not run the read steps: %+v", s)
	}

	res = run(false)
	for _, s := range res.Steps {
		if s.Status != engine.StepDone {
			t.Errorf("step %s: %s %v", s.ID, s.Status, s.Err)
		}
	}
	got, err := os.ReadFile(marker)
	if err != nil || string(got) != "CN=runbook test root, O=VMware" {
		t.Errorf("marker %q, %v", got, err)
	}
	if s := res.Step("show"); s == nil || !strings.HasPrefix(fmt.Sprint(s.Outputs), "{SHA1 Fingerprint=") {
		t.Errorf("note outputs: %+v", s)
	}

	res = run(true)
	if s := res.Step("write"); s == nil || s.Plan == nil || !s.Plan.InPlace {
		t.Errorf("after the run, the write step is not in place: %+v", s)
	}
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "runbook test root", Organization: []string{"VMware"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
