package services

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/lab/model"
	"runbook/target"
)

// labNow is the lab clock of these tests.
var labNow = time.Date(2025, 6, 1, 12, 30, 0, 0, time.UTC)

// testLab starts a lab in scenario on the fixed clock and returns it with
// an Env whose target is the lab.
func testLab(t *testing.T, scenario string, opts ...lab.Option) (*lab.Lab, *engine.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, scenario, append(opts, lab.WithNow(func() time.Time { return labNow }))...)
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
	return l, &engine.Env{
		RunID: "test-run", RunDir: t.TempDir(), BackupDir: t.TempDir(), StepID: "restart",
		Target: tg, Out: &bytes.Buffer{}, Now: func() time.Time { return labNow },
	}
}

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	Register(r)
	if got := r.IDs(); !slices.Equal(got, []string{"services.restart", "services.status"}) {
		t.Fatalf("registered %v", got)
	}
	for id, eff := range map[string]engine.Effect{"services.status": engine.EffectRead, "services.restart": engine.EffectWrite} {
		st, _ := r.Lookup(id)
		if st.Effect() != eff {
			t.Errorf("%s is %s", id, st.Effect())
		}
		// Register refuses step types that break the tag conventions.
	}
}

// modelStatus is what the lab model says runs on node i.
func modelStatus(l *lab.Lab, i int) (running, stopped []string) {
	running, stopped = l.Model().Nodes[i].Services.Status()
	slices.Sort(running)
	slices.Sort(stopped)
	return running, stopped
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestStatus(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		l, env := testLab(t, "healthy", lab.WithTypes(model.Embedded, model.Management))
		before := l.Snapshot()
		out, err := runStatus(t.Context(), env, &statusParams{Node: "all"})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, l.Snapshot()) {
			t.Error("services.status changed the lab")
		}
		if !out.AllRunning || len(out.NotRunning) != 0 || len(out.Nodes) != 2 {
			t.Fatalf("outputs %+v", out)
		}
		for i, ns := range out.Nodes {
			running, stopped := modelStatus(l, i)
			if !slices.Equal(sorted(ns.Running), running) || !slices.Equal(sorted(ns.Stopped), stopped) {
				t.Errorf("node %d: %v / %v, model %v / %v", i, ns.Running, ns.Stopped, running, stopped)
			}
		}
		if out.Nodes[1].NodeType != "management" || !slices.Equal(out.Nodes[1].Required, Required["management"]) ||
			slices.Contains(out.Nodes[1].Running, "vmdird") {
			t.Errorf("management node %+v", out.Nodes[1])
		}
		if !slices.Equal(out.Running, out.Nodes[0].Running) {
			t.Error("top-level running is not the first node's")
		}

		// A required service that does not exist is not running.
		out, err = runStatus(t.Context(), env, &statusParams{Node: "vcsa2.lab.test", Required: []string{"vmafdd", "vmdird"}})
		if err != nil || out.AllRunning || !slices.Equal(out.NotRunning, []string{"vcsa2.lab.test: vmdird"}) {
			t.Errorf("management with vmdird required: %+v, %v", out, err)
		}
	})

	t.Run("sts-expired", func(t *testing.T) {
		l, env := testLab(t, "sts-expired")
		out, err := runStatus(t.Context(), env, &statusParams{Node: "all"})
		if err != nil {
			t.Fatal(err)
		}
		if out.AllRunning {
			t.Fatal("allRunning with an expired STS certificate")
		}
		for i, ns := range out.Nodes {
			for _, svc := range []string{"vmware-stsd", "vmware-vpxd-svcs", "vmware-vpxd", "vsphere-ui"} {
				if !slices.Contains(ns.Stopped, svc) || !slices.Contains(ns.NotRunning, svc) {
					t.Errorf("%s: %s is not reported stopped: %+v", ns.PNID, svc, ns)
				}
			}
			if slices.Contains(ns.NotRunning, "vmdird") || slices.Contains(ns.NotRunning, "vmafdd") {
				t.Errorf("%s: %v", ns.PNID, ns.NotRunning)
			}
			running, _ := modelStatus(l, i)
			if !slices.Equal(sorted(ns.Running), running) {
				t.Errorf("%s: running %v, model %v", ns.PNID, ns.Running, running)
			}
		}
		if !slices.Contains(out.NotRunning, "vcsa2.lab.test: vmware-stsd") {
			t.Errorf("notRunning %v", out.NotRunning)
		}
	})

	// With node: all, a node that cannot be reached is recorded, not a
	// failure; its services are unknown, so not all of them run.
	t.Run("partner-down", func(t *testing.T) {
		l, env := testLab(t, "partner-down")
		out, err := runStatus(t.Context(), env, &statusParams{Node: "all"})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Nodes) != 2 || out.AllRunning || len(out.NotRunning) != 0 {
			t.Fatalf("outputs %+v", out)
		}
		n1, n2 := out.Nodes[0], out.Nodes[1]
		running, stopped := modelStatus(l, 0)
		if !n1.Reachable || n1.Error != "" || !n1.AllRunning || !slices.Equal(sorted(n1.Running), running) || !slices.Equal(sorted(n1.Stopped), stopped) {
			t.Errorf("node 1 %+v, model %v / %v", n1, running, stopped)
		}
		if n2.PNID != "vcsa2.lab.test" || n2.Reachable || n2.AllRunning || !strings.Contains(n2.Error, "connect ssh vcsa2.lab.test") ||
			!strings.Contains(n2.Error, "connection refused") || len(n2.Running) != 0 {
			t.Errorf("node 2 %+v", n2)
		}
		if !slices.Equal(out.Running, n1.Running) {
			t.Error("top-level running is not the first node's")
		}
		// Named, the node that is down is a failure.
		if _, err := runStatus(t.Context(), env, &statusParams{Node: "vcsa2.lab.test"}); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("node 2 by name: %v", err)
		}
	})
}

// TestStatusPinMismatch: with node: all, a node whose SSH host key is not
// the pinned one fails the step; only a node that cannot be reached is
// recorded instead.
func TestStatusPinMismatch(t *testing.T) {
	l, env := testLab(t, "healthy")
	path, err := l.Profile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := target.LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	p.Nodes[1].SSH.HostKey = p.Nodes[0].SSH.HostKey
	tg, err := target.Open(t.Context(), p, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	env.Target = tg
	_, err = runStatus(t.Context(), env, &statusParams{Node: "all"})
	var pe *target.PinError
	if !errors.As(err, &pe) || pe.Node != "vcsa2.lab.test" {
		t.Errorf("error %v, want vcsa2's pin error", err)
	}
}

// commandsRun returns the service-control commands node pnid's shell ran.
func commandsRun(l *lab.Lab, pnid string) []string {
	var out []string
	for _, c := range l.SSHAudit(pnid) {
		if strings.Contains(c, "service-control --st") && !strings.Contains(c, "--status") {
			out = append(out, c)
		}
	}
	return out
}

func TestRestartHealthy(t *testing.T) {
	l, env := testLab(t, "healthy")
	ctx := t.Context()
	// One required service down, as after a crash.
	if err := l.Model().Nodes[1].Services.Stop("vsphere-ui"); err != nil {
		t.Fatal(err)
	}
	p := &restartParams{Node: "all", StopIgnore: true}

	before := l.Snapshot()
	pl, err := planRestart(ctx, env, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, l.Snapshot()) {
		t.Error("Plan changed the lab")
	}
	if pl.InPlace || len(pl.Changes) != 2 || pl.Changes[0].Object != "vcsa1.lab.test services" ||
		!strings.HasSuffix(pl.Changes[0].Before, "all required running") ||
		!strings.HasSuffix(pl.Changes[1].Before, "not running: vsphere-ui") ||
		pl.Changes[1].After != "all required running (vmafdd, vmdird, vmcad, vmware-stsd, vmware-rhttpproxy, vmware-vpxd-svcs, vmware-vpxd, vsphere-ui)" {
		t.Fatalf("plan %+v", pl)
	}
	if v, err := checkRestart(ctx, env, p); err != nil || v.State != engine.NotApplied {
		t.Fatalf("Check before = %v %q, %v", v.State, v.Detail, err)
	}
	files, err := backupRestart(ctx, env, p)
	if err != nil || len(files) != 1 {
		t.Fatalf("Backup = %v, %v", files, err)
	}
	var rec struct{ Nodes []NodeStatus }
	if data, err := os.ReadFile(files[0]); err != nil || json.Unmarshal(data, &rec) != nil ||
		len(rec.Nodes) != 2 || !slices.Contains(rec.Nodes[1].Stopped, "vsphere-ui") {
		t.Fatalf("backup %+v, %v", rec, err)
	}

	out, err := applyRestart(ctx, env, p)
	if err != nil {
		t.Fatal(err)
	}
	if !out.AllRunning || !slices.Contains(out.Nodes[1].Running, "vsphere-ui") {
		t.Errorf("outputs %+v", out)
	}
	for _, pnid := range []string{"vcsa1.lab.test", "vcsa2.lab.test"} {
		want := []string{ServiceControl + " --stop --ignore --all", ServiceControl + " --start --all"}
		if got := commandsRun(l, pnid); !slices.Equal(got, want) {
			t.Errorf("%s ran %q", pnid, got)
		}
	}
	if v, err := checkRestart(ctx, env, p); err != nil || v.State != engine.Applied || !v.Outputs.AllRunning {
		t.Fatalf("Check after = %v %q, %v", v.State, v.Detail, err)
	}
	// Applying again in the same run restarts nothing more.
	if _, err := applyRestart(ctx, env, p); err != nil {
		t.Fatal(err)
	}
	if got := commandsRun(l, "vcsa1.lab.test"); len(got) != 2 {
		t.Errorf("second Apply ran %q", got)
	}
	// A new run (another run folder) restarts again.
	env2 := *env
	env2.RunDir = t.TempDir()
	if v, err := checkRestart(ctx, &env2, p); err != nil || v.State != engine.NotApplied {
		t.Fatalf("Check in a new run = %v, %v", v.State, err)
	}
	if _, err := applyRestart(ctx, &env2, &restartParams{Node: "vcsa2.lab.test"}); err != nil {
		t.Fatal(err)
	}
	want := []string{ServiceControl + " --stop --ignore --all", ServiceControl + " --start --all", ServiceControl + " --stop --all", ServiceControl + " --start --all"}
	if got := commandsRun(l, "vcsa2.lab.test"); !slices.Equal(got, want) {
		t.Errorf("vcsa2 ran %q", got)
	}
}

// TestRestartResume interrupts a restart after the first node: Check says
// not applied, and Apply restarts the second node only.
func TestRestartResume(t *testing.T) {
	l, env := testLab(t, "healthy")
	ctx := t.Context()
	p := &restartParams{Node: "all", StopIgnore: true}
	if err := writeProgress(env, progress{Restarted: map[string]time.Time{"vcsa1.lab.test": labNow}}); err != nil {
		t.Fatal(err)
	}
	v, err := checkRestart(ctx, env, p)
	if err != nil || v.State != engine.NotApplied || v.Detail != "this run has not restarted the services on vcsa2.lab.test" {
		t.Fatalf("Check = %v %q, %v", v.State, v.Detail, err)
	}
	if _, err := applyRestart(ctx, env, p); err != nil {
		t.Fatal(err)
	}
	if got := commandsRun(l, "vcsa1.lab.test"); len(got) != 0 {
		t.Errorf("vcsa1 restarted again: %q", got)
	}
	if got := commandsRun(l, "vcsa2.lab.test"); len(got) != 2 {
		t.Errorf("vcsa2 ran %q", got)
	}
	if v, err := checkRestart(ctx, env, p); err != nil || v.State != engine.Applied {
		t.Fatalf("Check after = %v, %v", v.State, err)
	}
}

func TestRestartSTSExpired(t *testing.T) {
	l, env := testLab(t, "sts-expired")
	ctx := t.Context()
	p := &restartParams{Node: "all", StopIgnore: true}
	_, err := applyRestart(ctx, env, p)
	if err == nil {
		t.Fatal("services started with an expired STS signing certificate")
	}
	msg := err.Error()
	for _, want := range []string{
		"vcsa1.lab.test: service-control --start --all failed (exit code 1): Error executing start on service vmware-stsd",
		"Signing certificate is not valid at",
		"check the STS signing certificate (sts.certificates; KB 76719 fixsts)",
		"; not touched: vcsa2.lab.test",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if got := commandsRun(l, "vcsa2.lab.test"); len(got) != 0 {
		t.Errorf("the second node was touched: %q", got)
	}
	if v, err := checkRestart(ctx, env, p); err != nil || v.State != engine.NotApplied {
		t.Errorf("Check = %v, %v", v.State, err)
	}
	if _, err := os.Stat(filepath.Join(env.RunDir, "restart.restarted.json")); err == nil {
		t.Error("a failed node was recorded as restarted")
	}
}

// TestRestartPartnerDown: a restart must reach every node, so a node that
// is down fails it. Plan and Backup fail (the engine backs up before it
// applies, so a run restarts nothing); Apply alone restarts the first node
// and fails at the second, saying so; Check says not applied.
func TestRestartPartnerDown(t *testing.T) {
	l, env := testLab(t, "partner-down")
	ctx := t.Context()
	p := &restartParams{Node: "all", StopIgnore: true}
	if _, err := planRestart(ctx, env, p); err == nil || !strings.Contains(err.Error(), "connect ssh vcsa2.lab.test") {
		t.Errorf("Plan: %v, want vcsa2's connection error", err)
	}
	if _, err := backupRestart(ctx, env, p); err == nil || !strings.Contains(err.Error(), "connect ssh vcsa2.lab.test") {
		t.Errorf("Backup: %v, want vcsa2's connection error", err)
	}
	if got := commandsRun(l, "vcsa1.lab.test"); len(got) != 0 {
		t.Errorf("Plan or Backup restarted vcsa1: %q", got)
	}
	_, err := applyRestart(ctx, env, p)
	if err == nil || !strings.Contains(err.Error(), "connect ssh vcsa2.lab.test") || !strings.Contains(err.Error(), "restarted before it: vcsa1.lab.test") {
		t.Fatalf("Apply: %v, want vcsa2's connection error after vcsa1's restart", err)
	}
	if v, err := checkRestart(ctx, env, p); err != nil || v.State != engine.NotApplied || !strings.Contains(v.Detail, "vcsa2.lab.test") {
		t.Errorf("Check = %v %q, %v", v.State, v.Detail, err)
	}
}

// TestStatusNoneReachable: node: all fails when no node answers.
func TestStatusNoneReachable(t *testing.T) {
	l, env := testLab(t, "partner-down")
	path, err := l.Profile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prof, err := target.LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	prof.Nodes = prof.Nodes[1:]
	tg, err := target.Open(t.Context(), prof, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	env.Target = tg
	if _, err := runStatus(t.Context(), env, &statusParams{Node: "all"}); err == nil ||
		!strings.Contains(err.Error(), "no node of the target could be reached: connect ssh vcsa2.lab.test") {
		t.Errorf("error %v", err)
	}
}
