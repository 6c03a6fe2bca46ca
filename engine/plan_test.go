package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const dryRunbook = `
params:
  greeting: {type: string, default: hello}
steps:
  - id: before
    uses: file.read
    with: {path: cfg}
  - id: put
    uses: file.write
    with: {path: cfg, content: "${{ params.greeting }} after ${{ steps.before.content }}"}
  - id: ask
    uses: test.confirm
    with: {prompt: "Snapshots of every node taken?"}
  - id: size
    uses: file.write
    when: facts.domain == "vsphere.local"
    with: {path: size, content: "${{ string(steps.put.bytes) }}"}
  - id: other
    uses: file.write
    when: facts.domain != "vsphere.local"
    with: {path: other, content: x}
`

func TestDryRunChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.w.write(t, "cfg", "old")
	rb := load(t, h.w, dryRunbook)
	r := h.runner()
	r.DryRun = true
	r.SavePlan = filepath.Join(t.TempDir(), "plan.json")
	params := map[string]any{"greeting": "hello"}
	res, err := r.Run(t.Context(), rb, params)
	if err != nil {
		t.Fatalf("dry-run: %v\n%s", err, h.progress.String())
	}
	if got, _ := h.w.read("cfg"); got != "old" {
		t.Errorf("cfg = %q after a dry-run", got)
	}
	if _, ok := h.w.read("size"); ok {
		t.Error("size was written by a dry-run")
	}
	for k, n := range h.w.counts {
		if strings.HasPrefix(k, "apply:") || strings.HasPrefix(k, "check:") {
			t.Errorf("%s called %d times in a dry-run", k, n)
		}
	}
	if h.w.count("read:cfg") != 1 {
		t.Errorf("the read step ran %d times, want 1 (for real)", h.w.count("read:cfg"))
	}
	if _, err := os.Stat(filepath.Join(res.RunDir, "backups")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry-run made backups: %v", err)
	}
	if res.Status != RunPlanned || !res.DryRun {
		t.Errorf("status = %s, dry = %v", res.Status, res.DryRun)
	}
	want := []string{"before=done", "put=planned", "ask=planned", "size=planned", "other=skipped"}
	if got := statuses(res); !equal(got, want) {
		t.Errorf("steps = %q, want %q", got, want)
	}
	put := res.Step("put").Plan
	if put == nil || len(put.Changes) != 1 || put.Changes[0].Before != "old" || put.Changes[0].After != "hello after old" {
		t.Fatalf("plan of put = %+v", put)
	}
	// A planned step's outputs are zero values for later steps.
	if size := res.Step("size").Plan; size.Changes[0].After != "0" {
		t.Errorf("size plan after = %q, want the zero value 0", size.Changes[0].After)
	}
	if !strings.Contains(h.progress.String(), "would ask: Snapshots of every node taken?") {
		t.Errorf("progress lacks the question:\n%s", h.progress.String())
	}

	saved, err := ReadPlanFile(r.SavePlan)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Runbook.Digest != rb.Digest || saved.Target != "lab:test" || saved.Run != res.RunID || saved.ParamsDigest == "" {
		t.Errorf("plan header = %+v", saved)
	}
	var got []string
	for _, s := range saved.Steps {
		got = append(got, s.ID+"="+string(s.Status))
		if s.Status == StepPlanned && s.Effect == EffectWrite && (s.FactsDigest == "" || s.Plan == nil) {
			t.Errorf("planned step %s has no digest or plan", s.ID)
		}
		if s.ID == "put" && !strings.Contains(s.Note, "zero values") {
			t.Errorf("note of put = %q", s.Note)
		}
	}
	if !equal(got, want) {
		t.Errorf("saved steps = %q, want %q", got, want)
	}
	inRun, err := os.ReadFile(filepath.Join(res.RunDir, "plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	if file, _ := os.ReadFile(r.SavePlan); string(file) != string(inRun) {
		t.Error("the run folder's plan differs from the saved plan")
	}
	if recs := h.journal(res.RunID); !recs[0].DryRun {
		t.Error("run-start does not say dry-run")
	}
}

func TestDryRunProgressGolden(t *testing.T) {
	h := newHarness(t)
	h.w.write(t, "cfg", "old\nsecond line")
	rb := load(t, h.w, dryRunbook)
	r := h.runner()
	r.DryRun = true
	fixed := time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)
	r.Clock = func() time.Time { return fixed }
	res, err := r.Run(t.Context(), rb, map[string]any{"greeting": "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.RunID, "20261122T093000Z-") || len(res.RunID) != len("20261122T093000Z-")+6 {
		t.Errorf("run id = %q", res.RunID)
	}
	got := strings.ReplaceAll(h.progress.String(), res.RunID, "RUN")
	golden(t, filepath.Join("testdata", "run", "dryrun.golden"), got)
}

func TestStalePlan(t *testing.T) {
	tests := []struct {
		name     string
		change   func(t *testing.T, h *harness, r *Runner, params map[string]any) *Runbook
		wantStep string
		wantWhat string
	}{
		{name: "unchanged runs"},
		{
			name: "fact of a plan changed",
			change: func(t *testing.T, h *harness, r *Runner, _ map[string]any) *Runbook {
				h.w.write(t, "size", "someone else wrote this")
				return nil
			},
			wantStep: "size",
			wantWhat: "the facts its plan relied on changed",
		},
		{
			name: "read output feeding a plan changed",
			change: func(t *testing.T, h *harness, r *Runner, _ map[string]any) *Runbook {
				h.w.write(t, "cfg", "changed")
				return nil
			},
			wantStep: "put",
			wantWhat: `(file cfg was "old" when planned, now "changed")`,
		},
		{
			name: "target facts flip a when",
			change: func(t *testing.T, h *harness, r *Runner, _ map[string]any) *Runbook {
				h.w.write(t, "domain", "corp.local")
				return nil
			},
			wantStep: "size",
			wantWhat: "was planned, now skipped",
		},
		{
			name: "params changed",
			change: func(t *testing.T, h *harness, r *Runner, params map[string]any) *Runbook {
				params["greeting"] = "bonjour"
				return nil
			},
			wantWhat: "the params differ",
		},
		{
			name: "other target",
			change: func(t *testing.T, h *harness, r *Runner, _ map[string]any) *Runbook {
				r.Target = &rtTarget{name: "lab:other", w: h.w}
				return nil
			},
			wantWhat: `the plan is for target "lab:test", not "lab:other"`,
		},
		{
			name: "runbook changed",
			change: func(t *testing.T, h *harness, r *Runner, _ map[string]any) *Runbook {
				return load(t, h.w, dryRunbook+"# edited\n")
			},
			wantWhat: "runbook test.yaml changed since the plan was made",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.w.write(t, "cfg", "old")
			rb := load(t, h.w, dryRunbook)
			planFile := filepath.Join(t.TempDir(), "plan.json")
			r := h.runner()
			r.DryRun, r.SavePlan = true, planFile
			params := map[string]any{"greeting": "hello"}
			if _, err := r.Run(t.Context(), rb, params); err != nil {
				t.Fatal(err)
			}
			r = h.runner()
			r.PlanFile, r.Yes = planFile, true
			if tc.change != nil {
				if changed := tc.change(t, h, r, params); changed != nil {
					rb = changed
				}
			}
			before, _ := h.w.read("cfg")
			res, err := r.Run(t.Context(), rb, params)
			if tc.wantWhat == "" {
				if err != nil {
					t.Fatalf("run --plan: %v\n%s", err, h.progress.String())
				}
				if got, _ := h.w.read("cfg"); got != "hello after old" {
					t.Errorf("cfg = %q after running the plan", got)
				}
				recs := h.journal(res.RunID)
				if !contains(types(recs), "plan-verified") {
					t.Errorf("journal lacks plan-verified: %q", types(recs))
				}
				return
			}
			var stale *StalePlanError
			if !errors.As(err, &stale) || ExitCode(err) != ExitStalePlan {
				t.Fatalf("err = %v, want a stale plan", err)
			}
			if stale.Step != tc.wantStep || !strings.Contains(stale.What, tc.wantWhat) {
				t.Errorf("stale = step %q, %q; want step %q, %q", stale.Step, stale.What, tc.wantStep, tc.wantWhat)
			}
			if !strings.Contains(err.Error(), planFile) {
				t.Errorf("error does not name the plan file: %v", err)
			}
			if after, _ := h.w.read("cfg"); after != before {
				t.Errorf("a stale plan changed cfg: %q → %q", before, after)
			}
			for k := range h.w.counts {
				if strings.HasPrefix(k, "apply:") {
					t.Errorf("a stale plan applied %s", k)
				}
			}
		})
	}
}

func TestCanonicalJSON(t *testing.T) {
	a, err := canonicalJSON(map[string]any{"b": 1, "a": []any{map[string]any{"z": 1.5, "y": "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := canonicalJSON(struct {
		A []struct {
			Z float64 `json:"z"`
			Y string  `json:"y"`
		} `json:"a"`
		B int `json:"b"`
	}{A: []struct {
		Z float64 `json:"z"`
		Y string  `json:"y"`
	}{{1.5, "x"}}, B: 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) || string(a) != `{"a":[{"y":"x","z":1.5}],"b":1}` {
		t.Errorf("canonical JSON differs:\n%s\n%s", a, b)
	}
}

// golden compares got with the golden file, or rewrites it with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
