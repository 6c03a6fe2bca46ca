package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"time"
)

// Runner runs runbooks: for real, as a dry-run, from a saved plan, or
// resuming an interrupted run. Its fields are the run's options; a Runner
// may be used for several runs, one at a time.
type Runner struct {
	// StateDir holds runs (StateDir/runs/<run-id>/) and locks
	// (StateDir/locks/). It is required.
	StateDir string
	// Target is the system the run acts on; nil runs without a target.
	Target Target
	// Prompter asks the person at the terminal; nil means there is none, and
	// interactive steps fail closed unless Yes is set.
	Prompter Prompter
	// Yes answers yes to every confirmation (--yes).
	Yes bool
	// DryRun runs read steps, checks every guard and only plans write steps.
	DryRun bool
	// SavePlan, with DryRun, is where to write the plan file.
	SavePlan string
	// PlanFile is a plan to run: the run first plans again and refuses with a
	// StalePlanError when anything the plan relied on has changed.
	PlanFile string
	// Output receives events as newline-delimited JSON (`--output json`); nil
	// writes none.
	Output io.Writer
	// Progress receives human progress lines, usually stderr; nil writes none.
	Progress io.Writer
	// Color colors progress output. The caller decides (terminal, NO_COLOR).
	Color bool
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Failpoint, when set, is called at each Failpoint of each step with the
	// step's id, after the journal is synced. Tests use it to crash a run at
	// an exact point (the CLI wires it to RUNBOOK_FAILPOINT); it is nil in
	// normal runs.
	Failpoint func(p Failpoint, step string)
}

// RunStatus is the outcome of a run, as its run-end record and `runbook
// runs` show it.
type RunStatus string

// The run statuses.
const (
	// RunRunning is a run whose process is still at work.
	RunRunning RunStatus = "running"
	// RunSucceeded is a run whose steps all completed.
	RunSucceeded RunStatus = "succeeded"
	// RunPlanned is a dry-run that completed.
	RunPlanned RunStatus = "planned"
	// RunFailed is a run with a failed step.
	RunFailed RunStatus = "failed"
	// RunRefused is a run a guard or a require refused.
	RunRefused RunStatus = "refused"
	// RunAssertFailed is a run in which an assertion failed.
	RunAssertFailed RunStatus = "assert-failed"
	// RunStale is a run refused because its saved plan was stale.
	RunStale RunStatus = "stale-plan"
	// RunLocked is a run refused because another run held the lock.
	RunLocked RunStatus = "locked"
	// RunStopped is a resume stopped because an interrupted step's state is unknown.
	RunStopped RunStatus = "stopped"
	// RunInterrupted is a run that was cancelled, or whose process died
	// (no run-end record); `runbook resume` continues it.
	RunInterrupted RunStatus = "interrupted"
)

// StepStatus is what became of a step.
type StepStatus string

// The step statuses.
const (
	// StepDone is a step that ran (or, on resume, had run) to completion.
	StepDone StepStatus = "done"
	// StepSkipped is a step whose `when` was false.
	StepSkipped StepStatus = "skipped"
	// StepPlanned is a write step a dry-run planned, or an interactive step
	// it did not ask.
	StepPlanned StepStatus = "planned"
	// StepFailed is a step that failed.
	StepFailed StepStatus = "failed"
	// StepRefused is a step whose `require` was false.
	StepRefused StepStatus = "refused"
	// StepAssertFailed is a step whose `assert` was false.
	StepAssertFailed StepStatus = "assert-failed"
	// StepUnknown is an interrupted write step whose Check cannot tell.
	StepUnknown StepStatus = "unknown"
)

// Result is what a run did. Run and Resume return it also with an error,
// as far as the run got.
type Result struct {
	// RunID names the run; RunDir is its folder.
	RunID  string
	RunDir string
	DryRun bool
	Status RunStatus
	// Steps are the steps the run reached, in order.
	Steps []StepResult
	// Plan is the plan a dry-run computed.
	Plan *SavedPlan
}

// Step returns the result of the step with the given id, or nil.
func (r *Result) Step(id string) *StepResult {
	for i := range r.Steps {
		if r.Steps[i].ID == id {
			return &r.Steps[i]
		}
	}
	return nil
}

// StepResult is what became of one step.
type StepResult struct {
	ID     string
	Effect Effect
	Status StepStatus
	// Message says more about the status for people: the plan's summary, a
	// skipped step's reason, an error.
	Message string
	// Plan is a write step's plan.
	Plan *Plan
	// Outputs is the step's outputs struct (secrets not masked); zero for a
	// planned step.
	Outputs any
	// Attempts is how often the step was tried.
	Attempts int
	Elapsed  time.Duration
	Err      error
}

// Run runs rb with bound params (see Runbook.BindParams): guards, then the
// lock, then each step. With DryRun, write steps are only planned and
// nothing changes on the target; with PlanFile, the plan is checked against
// fresh facts first. The error, if any, is one of the typed errors in
// exit.go or wraps a cancelled context; ExitCode maps it to an exit code.
func (r *Runner) Run(ctx context.Context, rb *Runbook, params map[string]any) (*Result, error) {
	types, err := r.stepTypes(rb)
	if err != nil {
		return nil, err
	}
	var saved *SavedPlan
	if r.PlanFile != "" {
		if r.DryRun {
			return nil, usageErrorf("a saved plan cannot be dry-run; run it, or make a new plan with --dry-run --save-plan")
		}
		if saved, err = ReadPlanFile(r.PlanFile); err != nil {
			return nil, err
		}
		if saved.Runbook.Digest != rb.Digest {
			return nil, &StalePlanError{Plan: r.PlanFile, What: fmt.Sprintf("runbook %s changed since the plan was made", rb.Path)}
		}
	}
	if r.SavePlan != "" && !r.DryRun {
		return nil, usageErrorf("--save-plan needs --dry-run")
	}
	x, err := r.newRun(rb, params, types)
	if err != nil {
		return nil, err
	}
	return x.finish(x.execute(ctx, saved))
}

// stepTypes returns the type of each step of rb.
func (r *Runner) stepTypes(rb *Runbook) ([]StepType, error) {
	if r.StateDir == "" {
		return nil, usageErrorf("no state dir")
	}
	if rb == nil {
		return nil, usageErrorf("no runbook")
	}
	types := make([]StepType, len(rb.Steps))
	for i, st := range rb.Steps {
		if st.Type == nil {
			return nil, usageErrorf("step %s: no step type for %q; load the runbook with Load", st.ID, st.Uses)
		}
		types[i] = st.Type
	}
	return types, nil
}

// run is the state of one run (or one resume of it) while it executes.
type run struct {
	r       *Runner
	rb      *Runbook
	types   []StepType
	id, dir string
	clock   func() time.Time
	started time.Time
	j       *journal
	rep     *reporter
	red     *Redactor
	secrets []string
	params  map[string]any
	scope   *Scope
	prompt  Prompter
	out     io.Writer // redacted progress for steps
	lock    *runLock
	res     *Result

	dry bool
	// quiet suppresses journal step records, events and progress: it is set
	// while a saved plan is checked.
	quiet bool
	// plan collects the steps of a dry-run.
	plan *SavedPlan
	// prior holds what the journal says about each step, on resume.
	prior map[string]*priorStep
}

// newRun creates the run's folder and journal and records run-start.
func (r *Runner) newRun(rb *Runbook, params map[string]any, types []StepType) (*run, error) {
	x := r.prepare(rb, params, types)
	runs := filepath.Join(r.StateDir, "runs")
	if err := os.MkdirAll(runs, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	for {
		x.id = newRunID(x.started)
		x.dir = filepath.Join(runs, x.id)
		err := os.Mkdir(x.dir, 0o700)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create run folder: %w", err)
		}
	}
	j, err := createJournal(filepath.Join(x.dir, JournalFile), x.red, x.clock)
	if err != nil {
		return nil, err
	}
	x.j = j
	x.begin()
	w := me()
	rec := &Record{
		Type:    RecRunStart,
		Runbook: &RunbookRef{Name: rb.Name, Path: rb.Path, Digest: rb.Digest},
		Target:  x.targetName(),
		Params:  publicParams(rb, params),
		DryRun:  x.dry,
		PID:     w.PID, Host: w.Host, User: w.User,
	}
	err = j.add(rec, true)
	if err == nil {
		err = syncDir(x.dir) // the journal's directory entry must survive too
	}
	if err != nil {
		j.close()
		return nil, err
	}
	x.rep.event(Event{Type: EventRunStart, Message: x.describe()})
	x.rep.printf("run %s: %s", x.id, x.describe())
	return x, nil
}

// prepare builds the parts of a run shared by Run and Resume.
func (r *Runner) prepare(rb *Runbook, params map[string]any, types []StepType) *run {
	clock := r.Clock
	if clock == nil {
		clock = time.Now
	}
	secrets := rb.SecretValues(params)
	if ts, ok := r.Target.(interface{ Secrets() []string }); ok && r.Target != nil {
		// The target's credentials (profile passwords) are secrets of the run too.
		secrets = append(secrets, ts.Secrets()...)
	}
	red := NewRedactor(secrets)
	x := &run{
		r: r, rb: rb, types: types, clock: clock, started: clock(),
		red: red, secrets: secrets, params: params, dry: r.DryRun,
		prompt: r.Prompter,
	}
	if x.prompt == nil {
		x.prompt = NoTerminal{}
	}
	if r.Yes {
		x.prompt = yesPrompter{x.prompt}
	}
	x.out = red.Writer(r.Progress)
	x.res = &Result{DryRun: x.dry}
	return x
}

// begin sets up what needs the run id.
func (x *run) begin() {
	x.res.RunID, x.res.RunDir = x.id, x.dir
	x.rep = &reporter{
		run: x.id, events: x.r.Output, progress: x.r.Progress, color: x.r.Color,
		redact: x.red, clock: x.clock, total: len(x.rb.Steps),
	}
}

func (x *run) describe() string {
	s := x.rb.Name
	if t := x.targetName(); t != "" {
		s += " on " + t
	}
	if x.dry {
		s += " (dry-run: nothing will change)"
	}
	return s
}

func (x *run) targetName() string {
	if x.r.Target == nil {
		return ""
	}
	return x.r.Target.Name()
}

// newRunID returns a time-sortable run id such as 20261122T093000Z-1a2b3c.
func newRunID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// execute reads facts, checks guards, takes the lock, checks a saved plan
// and runs the steps.
func (x *run) execute(ctx context.Context, saved *SavedPlan) error {
	facts := Facts{}
	if x.r.Target != nil {
		f, err := x.r.Target.Facts(ctx)
		if err != nil {
			return fmt.Errorf("read facts of target %s: %w", x.targetName(), err)
		}
		facts = f
		if facts.Target == "" {
			facts.Target = x.targetName()
		}
	}
	x.scope = &Scope{Params: x.params, Facts: facts, Steps: map[string]any{}}
	if err := x.guards(); err != nil {
		return err
	}
	if err := x.takeLock(); err != nil {
		return err
	}
	if saved != nil {
		if err := x.verifyPlan(ctx, saved); err != nil {
			return err
		}
	}
	if x.dry {
		if err := x.startPlan(); err != nil {
			return err
		}
	}
	return x.steps(ctx)
}

// guards evaluates the runbook's guards.
func (x *run) guards() error {
	for _, g := range x.rb.Guards {
		ok, err := g.Eval(x.scope)
		if err != nil {
			return usageErrorf("guard at %s: %w", g.Pos, err)
		}
		if ok {
			x.rep.event(Event{Type: EventGuard, Status: "passed", Message: g.Expr})
			continue
		}
		refused := &GuardRefusedError{Expr: g.Expr, Message: g.Message, Pos: g.Pos}
		_ = x.j.add(&Record{Type: RecGuard, Message: refused.Error()}, false)
		x.rep.event(Event{Type: EventGuard, Status: string(StepRefused), Message: refused.Error()})
		return refused
	}
	return nil
}

// takeLock renders the runbook's lock key and takes the lock.
func (x *run) takeLock() error {
	if x.rb.Lock == nil {
		return nil
	}
	key, err := x.rb.Lock.Render(x.scope)
	if err != nil {
		return usageErrorf("render lock key at %s: %w", x.rb.Lock.Pos, err)
	}
	w := me()
	info := LockInfo{Key: key, PID: w.PID, Host: w.Host, User: w.User, RunID: x.id, Since: x.clock().UTC()}
	l, stale, err := acquireLock(x.r.StateDir, info)
	if err != nil {
		return err
	}
	x.lock = l
	rec := &Record{Type: RecLock, Lock: &info}
	if stale != nil {
		rec.Message = fmt.Sprintf("took stale lock left by run %s (pid %d on %s, user %s) since %s",
			stale.RunID, stale.PID, stale.Host, stale.User, stale.Since.Local().Format(time.RFC3339))
		x.rep.printf("lock %s: %s", key, rec.Message)
	}
	return x.j.add(rec, false)
}

// startPlan begins the plan a dry-run builds.
func (x *run) startPlan() error {
	pd, err := paramsDigest(x.rb, x.params, x.red)
	if err != nil {
		return err
	}
	x.plan = &SavedPlan{
		Version:      PlanFileVersion,
		Runbook:      RunbookRef{Name: x.rb.Name, Path: x.rb.Path, Digest: x.rb.Digest},
		Target:       x.targetName(),
		ParamsDigest: pd,
		Created:      x.clock().UTC(),
		Run:          x.id,
	}
	return nil
}

// verifyPlan plans again, quietly, and compares with the saved plan.
func (x *run) verifyPlan(ctx context.Context, saved *SavedPlan) error {
	x.dry, x.quiet = true, true
	defer func() { x.dry, x.quiet = false, false }()
	if err := x.startPlan(); err != nil {
		return err
	}
	err := x.steps(ctx)
	fresh := x.plan
	x.plan = nil
	x.scope.Steps = map[string]any{} // a new map: the expression cache sees fresh outputs
	if err != nil {
		return fmt.Errorf("check plan %s: %w", x.r.PlanFile, err)
	}
	if err := comparePlans(x.r.PlanFile, saved, fresh); err != nil {
		return err
	}
	if err := writePlan(filepath.Join(x.dir, "plan.json"), saved, x.red); err != nil {
		return err
	}
	x.rep.printf("plan %s: still current", x.r.PlanFile)
	return x.j.add(&Record{Type: RecPlanVerified, Message: x.r.PlanFile}, false)
}

// steps runs the steps in order.
func (x *run) steps(ctx context.Context) error {
	var first error
	for i, st := range x.rb.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := x.step(ctx, i, st)
		if err == nil {
			continue
		}
		if isFatal(err) || st.OnFailure != Continue || ctx.Err() != nil {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// isFatal reports whether err ends the run whatever the step's on_failure
// says: a refusal, an unknown state, a journal that cannot be written.
func isFatal(err error) bool {
	var (
		guard   *GuardRefusedError
		unknown *ResumeUnknownError
		jerr    *journalError
	)
	return errors.As(err, &guard) || errors.As(err, &unknown) || errors.As(err, &jerr)
}

// step runs one step.
func (x *run) step(ctx context.Context, i int, st *Step) error {
	sr := &stepRun{x: x, st: st, typ: x.types[i], index: i + 1, t0: x.clock()}
	sr.res = StepResult{ID: st.ID, Effect: effectOf(st)}
	if p := x.prior[st.ID]; p != nil && p.finished() {
		return sr.restore(p)
	}
	if st.When != nil {
		ok, err := st.When.Eval(x.scope)
		if err != nil {
			return sr.fail(fmt.Errorf("evaluate when: %w", err), 0)
		}
		if !ok {
			return sr.end(StepSkipped, "skipped: when "+st.When.Expr+" is false", RecSkipped, false)
		}
	}
	for _, c := range st.Require {
		ok, err := c.Eval(x.scope)
		if err != nil {
			return sr.fail(fmt.Errorf("evaluate require: %w", err), 0)
		}
		if !ok {
			refused := &GuardRefusedError{Step: st.ID, Expr: c.Expr, Message: c.Message, Pos: c.Pos}
			sr.res.Err = refused
			if err := sr.end(StepRefused, "refused: "+refusalText(c), RecRefused, false); err != nil {
				return err
			}
			return refused
		}
	}
	if err := x.record(&Record{Type: RecStepStart, Step: st.ID, Index: sr.index, Effect: sr.res.Effect}, false); err != nil {
		return err
	}
	x.rep.event(Event{Type: EventStepStart, Step: st.ID, Index: sr.index, Effect: sr.res.Effect})
	p, err := st.Resolve(x.scope)
	if err != nil {
		return sr.fail(fmt.Errorf("resolve params: %w", err), 0)
	}
	sr.params = p
	sr.env = x.env(st, "")
	switch sr.res.Effect {
	case EffectWrite:
		return sr.write(ctx)
	case EffectInteractive:
		if x.dry {
			return sr.planned(nil, "would ask: "+question(st, p))
		}
	}
	return sr.runStep(ctx)
}

func refusalText(c *Condition) string {
	if c.Message != "" {
		return c.Message
	}
	return "condition is false: " + c.Expr
}

// Failpoint names a point in a step's life where a crash can happen, for
// tests that kill a run there and resume it.
type Failpoint string

// The failpoints, in the order a write step passes them.
const (
	// FailAfterIntent is after a write step's intent record is durable,
	// before its backup and Apply.
	FailAfterIntent Failpoint = "intent"
	// FailAfterApply is after Apply returned and Check confirmed it, before
	// the done record.
	FailAfterApply Failpoint = "applied"
	// FailAfterDone is after a step's done record is written (durable for
	// write steps).
	FailAfterDone Failpoint = "done"
)

// failpoint calls the runner's Failpoint hook, outside dry-runs.
func (x *run) failpoint(p Failpoint, step string) {
	if x.r.Failpoint != nil && !x.dry {
		if err := x.j.sync(); err == nil {
			x.r.Failpoint(p, step)
		}
	}
}

// record journals r unless the run is quiet.
func (x *run) record(r *Record, durable bool) error {
	if x.quiet {
		return nil
	}
	return x.j.add(r, durable)
}

// env builds the Env a step sees.
func (x *run) env(st *Step, backupDir string) *Env {
	return &Env{
		RunID: x.id, RunDir: x.dir, BackupDir: backupDir, StepID: st.ID,
		Target: x.r.Target, Facts: x.scope.Facts, DryRun: x.dry, Yes: x.r.Yes,
		Prompter: x.prompt, Out: x.stepOut(), Redact: x.red.String, Secrets: x.secrets,
		Now: x.clock,
	}
}

func (x *run) stepOut() io.Writer {
	if x.quiet {
		return io.Discard
	}
	return x.out
}

// effectOf is the effect of this use of the step's type.
func effectOf(st *Step) Effect {
	if st.Effect != "" {
		return st.Effect
	}
	if st.Type != nil {
		return st.Type.Effect()
	}
	return EffectRead
}

// question finds what an interactive step would ask: its params' Prompt or
// Question field, else its name or id.
func question(st *Step, p any) string {
	v := reflect.ValueOf(p)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		for _, name := range []string{"Prompt", "Question", "Message"} {
			if f := v.FieldByName(name); f.IsValid() && f.Kind() == reflect.String && f.String() != "" {
				return f.String()
			}
		}
	}
	if st.Name != "" {
		return st.Name
	}
	return st.ID
}

// stepRun is one step while it runs.
type stepRun struct {
	x      *run
	st     *Step
	typ    StepType
	index  int
	t0     time.Time
	params any
	env    *Env
	res    StepResult
}

// runStep runs a read or interactive step (or a write step used read-only)
// with retries, then its asserts.
func (sr *stepRun) runStep(ctx context.Context) error {
	var out any
	n, err := sr.attempt(ctx, func(ctx context.Context) error {
		var err error
		out, err = sr.typ.run(ctx, sr.env, sr.params)
		return err
	})
	if err != nil {
		return sr.fail(err, n)
	}
	return sr.done(out, n, "done", false)
}

// write plans, or in a real run plans, records its intent, backs up,
// applies and checks a write step.
func (sr *stepRun) write(ctx context.Context) error {
	x := sr.x
	if p := x.prior[sr.st.ID]; p != nil && p.intent && !x.dry {
		return sr.resumeWrite(ctx)
	}
	return sr.planAndApply(ctx)
}

// planAndApply plans a write step and, unless dry, applies it.
func (sr *stepRun) planAndApply(ctx context.Context) error {
	x := sr.x
	var pl Plan
	n, err := sr.attempt(ctx, func(ctx context.Context) error {
		var err error
		pl, err = sr.typ.plan(ctx, sr.env, sr.params)
		return err
	})
	if err != nil {
		return sr.fail(fmt.Errorf("plan: %w", err), n)
	}
	sr.res.Plan = &pl
	if x.dry {
		return sr.planned(&pl, "")
	}
	if err := x.record(&Record{Type: RecPlan, Step: sr.st.ID, Index: sr.index, Plan: &pl}, false); err != nil {
		return err
	}
	x.rep.event(Event{Type: EventPlan, Step: sr.st.ID, Index: sr.index, Effect: EffectWrite, Message: pl.Summary, Changes: pl.Changes})
	if pl.InPlace {
		if state, _, out, err := sr.check(ctx); err == nil && state == Applied {
			return sr.done(out, 0, "already in place", true)
		}
	}
	x.rep.printf("[%d/%d] write %s: %s", sr.index, x.rep.total, sr.st.ID, pl.Summary)
	x.rep.planLines(&pl)
	return sr.apply(ctx)
}

// apply records the intent durably, backs up, applies and verifies.
func (sr *stepRun) apply(ctx context.Context) error {
	x := sr.x
	if err := x.record(&Record{Type: RecIntent, Step: sr.st.ID, Index: sr.index, Effect: EffectWrite}, true); err != nil {
		return err
	}
	x.failpoint(FailAfterIntent, sr.st.ID)
	if err := sr.backup(ctx); err != nil {
		return err
	}
	var out any
	var note string
	n, err := sr.attempt(ctx, func(ctx context.Context) error {
		o, err := sr.typ.run(ctx, sr.env, sr.params)
		if err != nil {
			return err
		}
		state, detail, _, err := sr.typ.check(ctx, sr.env, sr.params)
		if err != nil {
			return fmt.Errorf("check after apply: %w", err)
		}
		switch state {
		case Applied:
			note = "done"
		case Unknown:
			// Apply succeeded and the step cannot verify itself (an exec
			// without a check command): trust Apply, and say so.
			note = "done (not verified: " + unknownDetail(detail) + ")"
		default:
			if detail == "" {
				detail = "check says " + state.String()
			}
			return fmt.Errorf("%w: %s", errNotApplied, detail)
		}
		out = o
		return nil
	})
	if err != nil {
		return sr.fail(err, n)
	}
	x.failpoint(FailAfterApply, sr.st.ID)
	return sr.done(out, n, note, true)
}

// backup runs the step's Backup into a folder of its own and makes what it
// wrote durable, before Apply. A step type without Backup gets no folder:
// creating one costs more than the rest of a write step on some disks.
func (sr *stepRun) backup(ctx context.Context) error {
	if !hasBackup(sr.typ) {
		return nil
	}
	x := sr.x
	dir, err := x.backupDir(sr.st.ID)
	if err != nil {
		return sr.fail(err, 0)
	}
	sr.env = x.env(sr.st, dir)
	files, err := sr.typ.backup(ctx, sr.env, sr.params)
	if err != nil {
		return sr.fail(fmt.Errorf("back up: %w", err), 0)
	}
	if len(files) == 0 {
		return nil
	}
	if err := syncFiles(dir, files); err != nil {
		return sr.fail(fmt.Errorf("sync backup: %w", err), 0)
	}
	rel := make([]string, len(files))
	for i, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, f)
		}
		if r, err := filepath.Rel(x.dir, f); err == nil {
			f = r
		}
		rel[i] = f
	}
	return x.record(&Record{Type: RecBackup, Step: sr.st.ID, Index: sr.index, Backups: rel}, false)
}

// hasBackup reports whether a write step type has a Backup function.
func hasBackup(t StepType) bool {
	f := reflect.Indirect(reflect.ValueOf(t)).FieldByName("Backup")
	return f.IsValid() && f.Kind() == reflect.Func && !f.IsNil()
}

// resumeWrite judges a write step that was interrupted after its intent.
// Check sees the backup folder the interrupted attempt wrote, if any, so
// that it can compare the target with the state before.
func (sr *stepRun) resumeWrite(ctx context.Context) error {
	x := sr.x
	if dir := x.lastBackupDir(sr.st.ID); dir != "" {
		sr.env = x.env(sr.st, dir)
	}
	state, detail, out, err := sr.check(ctx)
	if err != nil {
		state, detail = Unknown, err.Error()
	}
	switch state {
	case Applied:
		return sr.done(out, 0, "applied before the interruption", true)
	case NotApplied:
		x.rep.printf("[%d/%d] write %s: not applied before the interruption; applying", sr.index, x.rep.total, sr.st.ID)
		return sr.planAndApply(ctx)
	}
	unknown := &ResumeUnknownError{RunID: x.id, Step: sr.st.ID, Detail: x.red.String(detail)}
	sr.res.Err = unknown
	if err := sr.end(StepUnknown, "cannot tell whether it took effect: "+unknownDetail(detail), RecUnknown, true); err != nil {
		return err
	}
	return unknown
}

func unknownDetail(d string) string {
	if d == "" {
		return "check cannot tell"
	}
	return d
}

// check asks the step's Check, with the step's timeout and retries.
func (sr *stepRun) check(ctx context.Context) (CheckState, string, any, error) {
	var (
		state  CheckState
		detail string
		out    any
	)
	_, err := sr.attempt(ctx, func(ctx context.Context) error {
		var err error
		state, detail, out, err = sr.typ.check(ctx, sr.env, sr.params)
		return err
	})
	return state, detail, out, err
}

// attempt calls fn up to the step's retry attempts, each with the step's
// timeout, and returns how many tries it took.
func (sr *stepRun) attempt(ctx context.Context, fn func(ctx context.Context) error) (int, error) {
	n := max(sr.st.Retry.Attempts, 1)
	for a := 1; ; a++ {
		err := sr.try(ctx, fn)
		if err == nil || a >= n || ctx.Err() != nil {
			return a, err
		}
		if !sr.x.quiet {
			sr.x.rep.printf("[%d/%d] %s %s: attempt %d of %d failed: %v; retrying in %s",
				sr.index, sr.x.rep.total, sr.res.Effect, sr.st.ID, a, n, err, sr.st.Retry.Delay)
		}
		if sr.st.Retry.Delay > 0 {
			t := time.NewTimer(sr.st.Retry.Delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return a, err
			case <-t.C:
			}
		}
	}
}

// try calls fn once, under the step's timeout.
func (sr *stepRun) try(ctx context.Context, fn func(ctx context.Context) error) error {
	if sr.st.Timeout <= 0 {
		return fn(ctx)
	}
	tctx, cancel := context.WithTimeout(ctx, sr.st.Timeout)
	defer cancel()
	err := fn(tctx)
	if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s: %w", sr.st.Timeout, err)
	}
	return err
}

// done records a completed step, stores its outputs and checks its asserts.
func (sr *stepRun) done(out any, attempts int, result string, durable bool) error {
	x := sr.x
	sr.res.Outputs, sr.res.Attempts = out, attempts
	x.setOutputs(sr.st.ID, out)
	outJSON, err := json.Marshal(out)
	if err != nil {
		return sr.fail(fmt.Errorf("encode outputs: %w", err), attempts)
	}
	rec := &Record{Type: RecDone, Step: sr.st.ID, Index: sr.index, Effect: sr.res.Effect, Attempt: attempts, Outputs: x.red.Bytes(outJSON)}
	if result != "done" {
		rec.Message = result
	}
	if err := x.record(rec, durable); err != nil {
		return err
	}
	x.failpoint(FailAfterDone, sr.st.ID)
	if x.dry {
		x.plan.Steps = append(x.plan.Steps, PlannedStep{ID: sr.st.ID, Effect: sr.res.Effect, Status: StepDone})
	}
	if err := sr.asserts(); err != nil {
		return err
	}
	sr.report(StepDone, result)
	return nil
}

// asserts checks the step's asserts after it ran.
func (sr *stepRun) asserts() error {
	for _, c := range sr.st.Assert {
		ok, err := c.Eval(sr.x.scope)
		if err != nil {
			err = sr.fail(fmt.Errorf("evaluate assert: %w", err), sr.res.Attempts)
			return err
		}
		if ok {
			continue
		}
		a := &AssertionError{Step: sr.st.ID, Expr: c.Expr, Message: c.Message, Pos: c.Pos}
		sr.res.Err = a
		msg := c.Message
		if msg == "" {
			msg = c.Expr
		}
		if err := sr.end(StepAssertFailed, "assertion failed: "+msg, RecAssertFailed, false); err != nil {
			return err
		}
		return a
	}
	return nil
}

// planned records a write step's plan, or an interactive step not asked,
// in a dry-run. Its outputs are zero values for the steps after it.
func (sr *stepRun) planned(pl *Plan, message string) error {
	x := sr.x
	ps := PlannedStep{ID: sr.st.ID, Effect: sr.res.Effect, Status: StepPlanned, Plan: pl, Note: message}
	zero := sr.typ.OutputsType().NumField() > 0
	if zero {
		ps.Note = joinNote(ps.Note, zeroOutputsNote)
	}
	if pl != nil {
		d, err := factsDigest(pl, sr.params, x.red)
		if err != nil {
			return sr.fail(err, 0)
		}
		ps.FactsDigest = d
		message = pl.Summary
		if pl.InPlace {
			message += " (already in place)"
		}
	}
	x.plan.Steps = append(x.plan.Steps, ps)
	x.setOutputs(sr.st.ID, reflect.New(sr.typ.OutputsType()).Elem().Interface())
	if err := x.record(&Record{Type: RecPlanned, Step: sr.st.ID, Index: sr.index, Effect: sr.res.Effect, Plan: pl, Message: message}, false); err != nil {
		return err
	}
	if pl != nil && !x.quiet {
		x.rep.event(Event{Type: EventPlan, Step: sr.st.ID, Index: sr.index, Effect: sr.res.Effect, Message: pl.Summary, Changes: pl.Changes})
	}
	if pl != nil {
		message = "plan: " + message
	}
	sr.report(StepPlanned, message)
	if pl != nil && !x.quiet {
		x.rep.planLines(pl)
	}
	if zero && !x.quiet {
		x.rep.printf("      (%s)", zeroOutputsNote)
	}
	return nil
}

// zeroOutputsNote explains a planned step's outputs in plans and progress.
const zeroOutputsNote = "outputs unknown until it runs; later steps of this dry-run saw zero values"

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// fail records a failed step.
//
// A step type that fails with an *AssertionError (the assert step type)
// found a problem rather than broke: it is recorded as assert-failed and
// returned as is, so that a check runbook exits with ExitAssertionFailed.
func (sr *stepRun) fail(err error, attempts int) error {
	var ae *AssertionError
	if errors.As(err, &ae) {
		ae.Message = sr.x.red.String(ae.Message)
		sr.res.Err, sr.res.Attempts = ae, attempts
		if jerr := sr.end(StepAssertFailed, "assertion failed: "+ae.Message, RecAssertFailed, false); jerr != nil {
			return jerr
		}
		return ae
	}
	se := &StepError{Step: sr.st.ID, Attempts: attempts, Err: redactError(err, sr.x.red)}
	sr.res.Err, sr.res.Attempts = se, attempts
	if jerr := sr.end(StepFailed, "failed: "+se.Err.Error(), RecFailed, false); jerr != nil {
		return jerr
	}
	return se
}

// end records and reports a step that did not complete.
func (sr *stepRun) end(status StepStatus, message string, typ RecordType, durable bool) error {
	rec := &Record{Type: typ, Step: sr.st.ID, Index: sr.index, Effect: sr.res.Effect, Attempt: sr.res.Attempts, Message: message}
	if err := sr.x.record(rec, durable); err != nil {
		return err
	}
	if sr.x.dry && status == StepSkipped {
		sr.x.plan.Steps = append(sr.x.plan.Steps, PlannedStep{ID: sr.st.ID, Effect: sr.res.Effect, Status: StepSkipped})
	}
	sr.report(status, message)
	return nil
}

// report adds the step's result and prints its progress line and event.
func (sr *stepRun) report(status StepStatus, message string) {
	x := sr.x
	sr.res.Status = status
	if sr.res.Message == "" {
		sr.res.Message = message
	}
	sr.res.Elapsed = x.clock().Sub(sr.t0)
	if x.quiet {
		return
	}
	x.res.Steps = append(x.res.Steps, sr.res)
	x.rep.event(Event{Type: EventStepEnd, Step: sr.st.ID, Index: sr.index, Effect: sr.res.Effect,
		Status: string(status), ElapsedMS: elapsedMS(sr.res.Elapsed), Message: message})
	x.rep.stepLine(sr.index, sr.st, status, message, sr.res.Elapsed)
}

// setOutputs stores a step's outputs in the scope. A step already in the
// scope (a retried read on resume, a re-planned step) gets a new map, which
// the expression code needs to see the change.
func (x *run) setOutputs(id string, out any) {
	if _, seen := x.scope.Steps[id]; seen {
		m := make(map[string]any, len(x.scope.Steps))
		for k, v := range x.scope.Steps {
			m[k] = v
		}
		x.scope.Steps = m
	}
	x.scope.Steps[id] = out
}

// lastBackupDir returns the step's newest existing backup folder, or "".
func (x *run) lastBackupDir(id string) string {
	base := filepath.Join(x.dir, "backups", id)
	last := ""
	for n, dir := 2, base; ; n, dir = n+1, base+"."+strconv.Itoa(n) {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return last
		}
		last = dir
	}
}

// backupDir creates the step's backup folder under the run folder. A step
// applied again on resume gets a new folder, so the first backup is kept.
func (x *run) backupDir(id string) (string, error) {
	base := filepath.Join(x.dir, "backups", id)
	dir := base
	for n := 2; ; n++ {
		err := os.MkdirAll(filepath.Dir(dir), 0o700)
		if err == nil {
			err = os.Mkdir(dir, 0o700)
		}
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("create backup folder: %w", err)
		}
		dir = base + "." + strconv.Itoa(n)
	}
}

// finish records run-end, writes the plan of a dry-run, releases the lock
// and the journal, and returns the result with err.
func (x *run) finish(err error) (*Result, error) {
	err = redactError(err, x.red)
	status := runStatus(err, x.dry)
	if x.dry && err == nil && x.plan != nil {
		x.res.Plan = x.plan
		if werr := x.savePlan(); werr != nil {
			err, status = werr, RunFailed
		}
	}
	x.res.Status = status
	if lerr := x.lock.release(); lerr != nil && err == nil {
		err = lerr
	}
	rec := &Record{Type: RecRunEnd, Status: status}
	if err != nil {
		rec.Message = err.Error()
	}
	jerr := x.j.add(rec, false)
	if cerr := x.j.close(); jerr == nil {
		jerr = cerr
	}
	if jerr != nil && err == nil {
		err = redactError(jerr, x.red)
	}
	elapsed := x.clock().Sub(x.started)
	ev := Event{Type: EventRunEnd, Status: string(status), ElapsedMS: elapsedMS(elapsed)}
	if err != nil {
		ev.Message = err.Error()
	}
	x.rep.event(ev)
	if err != nil {
		x.rep.printf("run %s %s (%s): %v", x.id, status, formatElapsed(elapsed), err)
	} else {
		x.rep.printf("run %s %s (%s)", x.id, status, formatElapsed(elapsed))
	}
	return x.res, err
}

// savePlan writes a dry-run's plan into the run folder and, when asked, to
// the SavePlan file.
func (x *run) savePlan() error {
	if err := writePlan(filepath.Join(x.dir, "plan.json"), x.plan, x.red); err != nil {
		return err
	}
	if x.r.SavePlan != "" {
		if err := writePlan(x.r.SavePlan, x.plan, x.red); err != nil {
			return &UsageError{Err: err}
		}
		x.rep.printf("plan saved to %s; run it with --plan %s", x.r.SavePlan, x.r.SavePlan)
	}
	return nil
}

// runStatus is the status a run ends with.
func runStatus(err error, dry bool) RunStatus {
	var (
		guard   *GuardRefusedError
		assert  *AssertionError
		stale   *StalePlanError
		locked  *LockHeldError
		unknown *ResumeUnknownError
	)
	switch {
	case err == nil && dry:
		return RunPlanned
	case err == nil:
		return RunSucceeded
	case errors.Is(err, context.Canceled):
		return RunInterrupted
	case errors.As(err, &guard):
		return RunRefused
	case errors.As(err, &stale):
		return RunStale
	case errors.As(err, &locked):
		return RunLocked
	case errors.As(err, &unknown):
		return RunStopped
	case errors.As(err, &assert):
		return RunAssertFailed
	}
	return RunFailed
}
