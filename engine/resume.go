package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"syscall"
	"time"
)

// priorStep is what the journal says about a step of the run being resumed.
type priorStep struct {
	// last is the step's last outcome record: done, skipped, failed,
	// refused, assert-failed or unknown.
	last RecordType
	// intent is set when a write step recorded its intent and no done
	// record followed it.
	intent  bool
	outputs json.RawMessage
}

// finished reports whether resume skips the step.
func (p *priorStep) finished() bool { return p.last == RecDone || p.last == RecSkipped }

// priorSteps folds a journal into the state of each step.
func priorSteps(recs []Record) map[string]*priorStep {
	prior := map[string]*priorStep{}
	get := func(id string) *priorStep {
		p := prior[id]
		if p == nil {
			p = &priorStep{}
			prior[id] = p
		}
		return p
	}
	for _, r := range recs {
		switch r.Type {
		case RecIntent:
			get(r.Step).intent = true
		case RecDone:
			p := get(r.Step)
			p.last, p.outputs, p.intent = RecDone, r.Outputs, false
		case RecSkipped, RecFailed, RecRefused, RecAssertFailed, RecUnknown:
			get(r.Step).last = r.Type
		}
	}
	// A write step whose done record is followed by a failed assert is
	// judged again: Check then stands in for the lost intent.
	for _, r := range recs {
		if r.Type == RecIntent {
			if p := prior[r.Step]; p.last == RecAssertFailed {
				p.intent = true
			}
		}
	}
	return prior
}

// Resume continues the run runID of rb after an interruption or a failure.
// The runbook must be the same file (same digest) and params the same
// non-secret values; secrets are bound again by the caller. Done and
// skipped steps are skipped with their outputs restored from the journal;
// a write step interrupted after its intent is judged by its Check:
// applied → done, not applied → run again, unknown → stop with a
// ResumeUnknownError. Guards are checked and the lock is taken again.
func (r *Runner) Resume(ctx context.Context, runID string, rb *Runbook, params map[string]any) (*Result, error) {
	types, err := r.stepTypes(rb)
	if err != nil {
		return nil, err
	}
	if r.DryRun || r.PlanFile != "" || r.SavePlan != "" {
		return nil, usageErrorf("resume runs the rest of a run; it takes no dry-run or plan")
	}
	dir := filepath.Join(r.StateDir, "runs", runID)
	if runID == "" || filepath.Base(runID) != runID {
		return nil, usageErrorf("invalid run id %q", runID)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, usageErrorf("no run %s in %s", runID, r.StateDir)
	}
	x := r.prepare(rb, params, types)
	x.id, x.dir = runID, dir
	j, recs, err := openJournal(filepath.Join(dir, JournalFile), x.red, x.clock)
	if errors.Is(err, errRunLive) {
		return nil, usageErrorf("run %s is still in progress in another process", runID)
	}
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("resume run %s: %w", runID, err)}
	}
	if err := x.checkResumable(recs); err != nil {
		j.close()
		return nil, err
	}
	x.j = j
	x.prior = priorSteps(recs)
	x.begin()
	w := me()
	if err := j.add(&Record{Type: RecResume, PID: w.PID, Host: w.Host, User: w.User}, false); err != nil {
		j.close()
		return nil, err
	}
	x.rep.event(Event{Type: EventRunStart, Message: "resume " + x.describe()})
	x.rep.printf("resume run %s: %s", x.id, x.describe())
	return x.finish(x.execute(ctx, nil))
}

// checkResumable refuses a run that is not this runbook's, not with these
// params or target, a dry-run, or already finished.
func (x *run) checkResumable(recs []Record) error {
	if len(recs) == 0 || recs[0].Type != RecRunStart || recs[0].Runbook == nil {
		return usageErrorf("resume run %s: the journal does not start with a run-start record", x.id)
	}
	start := recs[0]
	if start.DryRun {
		return usageErrorf("run %s was a dry-run; there is nothing to resume", x.id)
	}
	if start.Runbook.Digest != x.rb.Digest {
		return usageErrorf("runbook %s changed since run %s started (digest %s, now %s); resume needs the runbook the run started with",
			x.rb.Path, x.id, short(start.Runbook.Digest), short(x.rb.Digest))
	}
	if start.Target != x.targetName() {
		return usageErrorf("run %s is on target %q, not %q", x.id, start.Target, x.targetName())
	}
	if name := differingParam(start.Params, x.red, publicParams(x.rb, x.params)); name != "" {
		return usageErrorf("param %s differs from the one run %s started with; resume needs the same params", name, x.id)
	}
	if last := recs[len(recs)-1]; last.Type == RecRunEnd && last.Status == RunSucceeded {
		return usageErrorf("run %s already succeeded; there is nothing to resume", x.id)
	}
	return nil
}

// differingParam returns the name of the first param whose value differs
// between the journal and now, comparing as the journal stores them.
func differingParam(journaled map[string]any, red *Redactor, now map[string]any) string {
	names := map[string]bool{}
	for k := range journaled {
		names[k] = true
	}
	for k := range now {
		names[k] = true
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		a, errA := canonicalJSON(journaled[k])
		b, errB := canonicalJSON(now[k])
		if errA != nil || errB != nil || !bytes.Equal(a, red.Bytes(b)) {
			return k
		}
	}
	return ""
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// restore skips a step the journal records as done or skipped, putting
// its outputs back into the scope.
func (sr *stepRun) restore(p *priorStep) error {
	x := sr.x
	if p.last == RecSkipped {
		sr.report(StepSkipped, "skipped before the interruption")
		return nil
	}
	out := reflect.New(sr.typ.OutputsType())
	if len(p.outputs) > 0 && string(p.outputs) != "null" {
		if err := json.Unmarshal(p.outputs, out.Interface()); err != nil {
			return sr.fail(fmt.Errorf("restore outputs from the journal: %w", err), 0)
		}
	}
	sr.res.Outputs = out.Elem().Interface()
	x.setOutputs(sr.st.ID, sr.res.Outputs)
	sr.report(StepDone, "done before the interruption")
	return nil
}

// RunInfo summarizes a run for `runbook runs`.
type RunInfo struct {
	ID      string `json:"id"`
	Runbook string `json:"runbook"`
	// Path is the runbook file the run used.
	Path    string    `json:"path"`
	Target  string    `json:"target,omitempty"`
	DryRun  bool      `json:"dryRun,omitempty"`
	Status  RunStatus `json:"status"`
	Started time.Time `json:"started"`
	// Ended is when the run (or its last resume) ended; zero while it runs
	// or when its process died.
	Ended time.Time `json:"ended,omitzero"`
}

// Runs lists the runs under stateDir, oldest first. A run without a
// run-end record is running while its process holds the journal, and
// interrupted otherwise.
func Runs(stateDir string) ([]RunInfo, error) {
	entries, err := os.ReadDir(filepath.Join(stateDir, "runs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	var infos []RunInfo
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(stateDir, "runs", e.Name(), JournalFile)
		recs, err := ReadJournal(path)
		if err != nil || len(recs) == 0 || recs[0].Runbook == nil {
			continue // not a run folder, or a run that never got started
		}
		start := recs[0]
		info := RunInfo{
			ID: e.Name(), Runbook: start.Runbook.Name, Path: start.Runbook.Path,
			Target: start.Target, DryRun: start.DryRun, Started: start.Time,
		}
		switch last := recs[len(recs)-1]; {
		case last.Type == RecRunEnd:
			info.Status, info.Ended = last.Status, last.Time
		case journalHeld(path):
			info.Status = RunRunning
		default:
			info.Status = RunInterrupted
		}
		infos = append(infos, info)
	}
	sort.Slice(infos, func(i, j int) bool {
		if !infos[i].Started.Equal(infos[j].Started) {
			return infos[i].Started.Before(infos[j].Started)
		}
		return infos[i].ID < infos[j].ID
	})
	return infos, nil
}

// journalHeld reports whether a live process has the journal open for its run.
func journalHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	return errors.Is(err, syscall.EWOULDBLOCK)
}
