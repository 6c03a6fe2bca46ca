package services_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/steps/local"
	"runbook/steps/replication"
	"runbook/steps/services"
	"runbook/steps/shell"
	"runbook/steps/vecs"
)

// runbookSrc uses the appliance step types the way runbooks do: params
// from YAML with their defaults, a secret param, and outputs in
// expressions, so that a field that does not decode or type-check fails
// at load time here.
const runbookSrc = `apiVersion: runbook/v1
name: appliance-steps
title: Exercise the appliance step types
params:
  sso_password: {type: secret, description: SSO administrator password}
steps:
  - id: me
    uses: appliance.facts
    with: {node: all}
  - id: vecs
    uses: vecs.entries
    with: {stores: [MACHINE_SSL_CERT, TRUSTED_ROOTS]}
  - id: svc
    uses: services.status
    with: {node: all}
  - id: repl
    uses: replication.status
    with:
      sso_password: "${{ params.sso_password }}"
  - id: fine
    uses: assert
    with:
      that: "${{ steps.me.vmdirInstalled && len(steps.me.nodes) == 2 && len(steps.vecs.expired) == 0 && steps.svc.allRunning && steps.repl.healthy }}"
      message: "${{ steps.vecs.report }} ${{ join(steps.svc.notRunning, ', ') }} ${{ join(steps.repl.problems, ' ') }}"
  - id: export
    uses: vecs.export
    with: {store: MACHINE_SSL_CERT, alias: __MACHINE_CERT}
  - id: upload
    uses: sftp.put
    with:
      path: /tmp/machine.crt
      local_file: "${{ steps.export.cert_file }}"
  - id: marker
    uses: ssh.exec
    with:
      node: "${{ steps.me.nodes[1].pnid }}"
      command: echo "${{ steps.export.sha1 }}" > /tmp/sha1
      check: grep -q "${{ steps.export.sha1 }}" /tmp/sha1
  - id: read_back
    uses: sftp.get
    with: {path: /etc/vmware/deployment.node.type, to: back/node.type}
  - id: restart
    uses: services.restart
  - id: same
    uses: assert
    with:
      that: "${{ trim(steps.read_back.content) == steps.me.nodeType }}"
      message: the node type file says ${{ steps.read_back.content }}
`

func TestThroughEngine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
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

	reg := engine.NewRegistry()
	shell.Register(reg)
	vecs.Register(reg)
	services.Register(reg)
	replication.Register(reg)
	local.Register(reg)
	rb, err := engine.Load(reg, "appliance-steps.yaml", []byte(runbookSrc))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	params, err := rb.BindParams(engine.ParamInput{Env: []string{"RUNBOOK_PARAM_SSO_PASSWORD=" + l.Model().AdminPassword}})
	if err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	run := func(dry bool) *engine.Result {
		t.Helper()
		var out bytes.Buffer
		r := &engine.Runner{StateDir: stateDir, Target: tg, DryRun: dry, Output: &out}
		res, err := r.Run(ctx, rb, params)
		if err != nil {
			t.Fatalf("Run (dry-run %v): %v\n%s", dry, err, out.String())
		}
		if strings.Contains(out.String(), l.Model().AdminPassword) {
			t.Error("the run printed the password")
		}
		return res
	}

	before := l.Snapshot()
	res := run(true)
	if !bytes.Equal(before, l.Snapshot()) {
		t.Fatal("a dry-run changed the lab")
	}
	for _, id := range []string{"upload", "marker", "restart"} {
		if s := res.Step(id); s == nil || s.Status != engine.StepPlanned || s.Plan == nil || s.Plan.InPlace {
			t.Errorf("dry-run %s: %+v", id, s)
		}
	}

	res = run(false)
	for _, s := range res.Steps {
		if s.Status != engine.StepDone {
			t.Errorf("step %s: %s %v", s.ID, s.Status, s.Err)
		}
	}
	if got, err := l.Model().Nodes[1].ReadFile("/tmp/sha1"); err != nil || len(got) != 60 {
		t.Errorf("marker %q, %v", got, err)
	}
	if s := res.Step("restart"); s == nil || !strings.Contains(fmt.Sprintf("%+v", s.Outputs), "AllRunning:true") {
		t.Errorf("restart outputs: %+v", s)
	}
	if s := res.Step("upload"); s == nil || !strings.Contains(fmt.Sprintf("%+v", s.Outputs), "Path:/tmp/machine.crt") {
		t.Errorf("upload outputs: %+v", s)
	}

	res = run(true)
	for _, id := range []string{"upload", "marker"} {
		if s := res.Step(id); s == nil || s.Plan == nil || !s.Plan.InPlace {
			t.Errorf("after the run, %s is not in place: %+v", id, s)
		}
	}
}
