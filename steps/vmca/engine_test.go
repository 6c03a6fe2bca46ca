package vmca_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/steps/local"
	"runbook/steps/vmca"
)

// issueSrc issues fixsts's STS certificate and uses the outputs as the
// runbooks do: file paths for ldap.add's LDIF, base64 values.
const issueSrc = `apiVersion: runbook/v1
name: sts-cert
title: Issue an STS signing certificate
kb: ["76719"]
steps:
  - id: sts_cert
    uses: vmca.issue
    kb: "76719 steps 5-6"
    with:
      profile: sts
      hostnames: ["${{ facts.pnid }}"]
  - id: ldif
    uses: note
    with:
      message: "${{ join(map(concat([steps.sts_cert.cert_der_file], steps.sts_cert.chain_der_files), 'userCertificate:< file:' + #), '\\n') }}"
  - id: shape
    uses: assert
    when: steps.sts_cert.sha1 != ""
    with:
      that: "${{ len(steps.sts_cert.chain_base64) == 2 && steps.sts_cert.chain_base64[0] == 'base64:' + steps.sts_cert.cert_base64 && hasSuffix(steps.sts_cert.subject, 'CN=STS') }}"
      message: unexpected outputs
`

// TestThroughEngine runs vmca.issue through the engine: the dry-run
// changes nothing, the run issues the certificate, and its outputs
// type-check and hold what the runbooks use.
func TestThroughEngine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := engine.NewRegistry()
	local.Register(reg)
	vmca.Register(reg)
	rb, err := engine.Load(reg, "sts-cert.yaml", []byte(issueSrc))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	l, err := lab.Start(ctx, "healthy")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tg, err := l.Target(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	state := t.TempDir()
	run := func(dry bool) *engine.Result {
		t.Helper()
		var progress bytes.Buffer
		r := &engine.Runner{StateDir: state, DryRun: dry, Target: tg, Progress: &progress}
		res, err := r.Run(ctx, rb, map[string]any{})
		if err != nil {
			t.Fatalf("Run (dry-run %v): %v\n%s", dry, err, progress.String())
		}
		return res
	}
	snap := l.Snapshot()
	res := run(true)
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Fatal("the dry-run changed the lab")
	}
	if s := res.Step("sts_cert"); s == nil || s.Status != engine.StepPlanned || s.Plan == nil || len(s.Plan.Changes) != 1 {
		t.Fatalf("dry-run step: %+v", s)
	}
	res = run(false)
	for _, s := range res.Steps {
		if s.Status != engine.StepDone {
			t.Errorf("step %s: %s %v", s.ID, s.Status, s.Err)
		}
	}
	if s := res.Step("shape"); s == nil || s.Status != engine.StepDone {
		t.Errorf("the outputs check did not run: %+v", s)
	}
	js, err := json.Marshal(res.Step("sts_cert").Outputs)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		CertDERFile   string   `json:"cert_der_file"`
		KeyDERFile    string   `json:"key_der_file"`
		ChainDERFiles []string `json:"chain_der_files"`
	}
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	files := append([]string{out.CertDERFile, out.KeyDERFile}, out.ChainDERFiles...)
	for _, f := range files {
		if !strings.HasPrefix(f, res.RunDir) {
			t.Errorf("%s is not in the run folder %s", f, res.RunDir)
		}
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	msg := fmt.Sprint(res.Step("ldif").Outputs)
	for _, f := range append([]string{out.CertDERFile}, out.ChainDERFiles...) {
		if !strings.Contains(msg, "userCertificate:< file:"+f) {
			t.Errorf("the LDIF lines %q lack %s", msg, f)
		}
	}
}
