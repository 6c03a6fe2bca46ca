package lookup_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/steps/local"
	"runbook/steps/lookup"
	"runbook/steps/sts"
	"runbook/steps/tlspeer"
)

// kbSrc is KB 2121701 Task 0–4 as a runbook over the step types of this
// package and its neighbours: compare what 443 serves with what the
// registrations of the node trust, take the old certificate from the
// registrations, re-point them.
const kbSrc = `apiVersion: runbook/v1
name: lookup-ssltrust
title: Re-point stale Lookup Service registrations
kb: ["2121701"]
steps:
  - id: served
    uses: tls.peer_certificate
    kb: "2121701 Task 0"
  - id: ls
    uses: lookup.list
    kb: "2121701 Task 0 and 1"
    with:
      url_contains: "${{ steps.served.node }}"
  - id: show
    uses: note
    with:
      message: "443 serves ${{ steps.served.sha1 }}; the registrations trust ${{ join(map(steps.ls.trusts, .sha1), ', ') }}; first endpoint ${{ steps.ls.services[0].endpoints[0].cert.sha1 }}"
  - id: old
    uses: cert.parse
    kb: "2121701 Task 1 and 2"
    when: any(steps.ls.trusts, .sha1 != steps.served.sha1)
    with:
      cert: "${{ first(filter(steps.ls.trusts, .sha1 != steps.served.sha1)).pem }}"
  - id: update
    uses: lookup.update_ssltrust
    kb: "2121701 Task 4"
    when: any(steps.ls.trusts, .sha1 != steps.served.sha1)
    with:
      old_thumbprint: "${{ steps.old.sha1 }}"
      new_cert: "${{ steps.served.pem }}"
  - id: sts
    uses: sts.certificates
  - id: sts_ok
    uses: assert
    with:
      that: "${{ steps.sts.expiredLeaves == 0 && steps.sts.active.n >= 1 && len(steps.sts.chains) > 0 }}"
      message: "${{ steps.sts.report }}"
`

// TestThroughEngine loads the runbook with the engine (params decode as
// runbooks write them, outputs type-check in expressions) and runs it
// against stale-ssltrust: the dry-run changes nothing and plans every
// stale endpoint, the run repairs them, and a second run finds nothing
// to do.
func TestThroughEngine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := engine.NewRegistry()
	local.Register(reg)
	lookup.Register(reg)
	tlspeer.Register(reg)
	sts.Register(reg)
	rb, err := engine.Load(reg, "lookup-ssltrust.yaml", []byte(kbSrc))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	l, err := lab.Start(ctx, "stale-ssltrust")
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
	d := l.Model()
	n1 := d.Nodes[0]
	trusts := func() (old, cur int) {
		c, _ := n1.MachineCert()
		regs, err := d.Registrations()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range regs {
			for _, e := range r.Endpoints {
				if strings.Contains(e.URL, "//"+n1.PNID+"/") {
					if e.SslTrust[0] == base64.StdEncoding.EncodeToString(c.Raw) {
						cur++
					} else {
						old++
					}
				}
			}
		}
		return old, cur
	}
	stale, _ := trusts()
	if stale == 0 {
		t.Fatal("stale-ssltrust has no stale endpoint")
	}

	snap := l.Snapshot()
	res := run(true)
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Fatal("the dry-run changed the lab")
	}
	u := res.Step("update")
	if u == nil || u.Status != engine.StepPlanned || u.Plan == nil || len(u.Plan.Changes) != stale {
		t.Fatalf("dry-run update step: %+v; want %d planned changes", u, stale)
	}

	res = run(false)
	for _, s := range res.Steps {
		if s.Status != engine.StepDone {
			t.Errorf("step %s: %s %v", s.ID, s.Status, s.Err)
		}
	}
	if old, cur := trusts(); old != 0 || cur != stale {
		t.Errorf("after the run %d endpoints of %s trust the old certificate, %d the new; want 0 and %d", old, n1.PNID, cur, stale)
	}
	backups, err := filepath.Glob(filepath.Join(state, "runs", "*", "backups", "update", lookup.BackupFile))
	if err != nil || len(backups) != 1 {
		t.Fatalf("backup files %v, %v", backups, err)
	}
	if data, err := os.ReadFile(backups[0]); err != nil || !bytes.Contains(data, []byte(n1.PNID)) {
		t.Errorf("backup %s: %v", backups[0], err)
	}

	res = run(false)
	if s := res.Step("update"); s == nil || s.Status != engine.StepSkipped {
		t.Errorf("second run, update step: %+v; want skipped", s)
	}
}
