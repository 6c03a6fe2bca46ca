package certmgr_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/steps/certmgr"
	"runbook/steps/local"
	"runbook/steps/tlspeer"
)

// machineSSLSrc replaces the Machine SSL certificate with option 3 and
// reads port 443 before and after, through the same target: the read after
// only works because the step moved the pin. A dry-run sees no replaced
// certificate, so the check is skipped there.
const machineSSLSrc = `apiVersion: runbook/v1
name: machine-ssl
title: Replace the Machine SSL certificate with a VMCA certificate
kb: ["2097936"]
params:
  sso_password:
    type: secret
    required: true
    description: Password of administrator@vsphere.local.
steps:
  - id: before
    uses: tls.peer_certificate
  - id: replace
    uses: certmgr.run
    kb: "2097936 option 3"
    with:
      option: "3"
      sso_password: "${{ params.sso_password }}"
      hostnames: ["${{ facts.pnid }}"]
  - id: after
    uses: tls.peer_certificate
  - id: changed
    uses: assert
    when: len(steps.replace.replaced) > 0
    with:
      that: "${{ steps.after.sha1 != steps.before.sha1 && steps.replace.replaced[0].new_sha1 == steps.after.sha1 && steps.replace.replaced[0].old_sha1 == steps.before.sha1 && !steps.replace.rolled_back }}"
      message: port 443 does not serve the certificate certificate-manager put in VECS
`

// TestThroughEngine runs certmgr.run through the engine with the password
// as a secret param: the dry-run changes nothing, the run replaces the
// certificate and later steps reach port 443, and no file of the run
// folder (journal, plan, backups but private keys) holds the password.
func TestThroughEngine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := engine.NewRegistry()
	local.Register(reg)
	tlspeer.Register(reg)
	certmgr.Register(reg)
	rb, err := engine.Load(reg, "machine-ssl.yaml", []byte(machineSSLSrc))
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
	d := l.Model()
	d.Lock()
	password := d.AdminPassword
	d.Unlock()
	params, err := rb.BindParams(engine.ParamInput{Env: []string{"RUNBOOK_PARAM_SSO_PASSWORD=" + password}})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	var progress bytes.Buffer
	run := func(dry bool) *engine.Result {
		t.Helper()
		r := &engine.Runner{StateDir: state, DryRun: dry, Target: tg, Progress: &progress}
		res, err := r.Run(ctx, rb, params)
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
	if s := res.Step("replace"); s == nil || s.Status != engine.StepPlanned || s.Plan == nil || len(s.Plan.Changes) == 0 {
		t.Fatalf("dry-run replace step: %+v", s)
	}

	res = run(false)
	for _, s := range res.Steps {
		if s.Status != engine.StepDone {
			t.Errorf("step %s: %s %v", s.ID, s.Status, s.Err)
		}
	}
	if s := res.Step("changed"); s == nil || s.Status != engine.StepDone {
		t.Errorf("the check after the replacement did not run: %+v", s)
	}
	if strings.Contains(progress.String(), password) {
		t.Error("the progress output holds the password")
	}
	err = filepath.WalkDir(state, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || strings.HasSuffix(p, ".key") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(password)) {
			t.Errorf("%s holds the password", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
