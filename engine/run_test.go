package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The run tests act on a small world: a folder of files the step types
// below read and write for real, plus counters. Type names start with rt
// (run test) to stay apart from the other tests of the package.

// rtWorld is what the test step types act on.
type rtWorld struct {
	dir string

	mu      sync.Mutex
	counts  map[string]int
	applied map[string]bool // test.count: which steps applied

	// hangs makes file.write's Apply of a path report to sideband and
	// block until cancelled, "before" or "after" writing the file: the
	// helper process is killed there.
	hangs    map[string]string
	sideband io.Writer
}

func newWorld(t testing.TB) *rtWorld {
	return &rtWorld{dir: t.TempDir(), counts: map[string]int{}, applied: map[string]bool{}}
}

func (w *rtWorld) path(name string) string { return filepath.Join(w.dir, name) }

func (w *rtWorld) read(name string) (string, bool) {
	b, err := os.ReadFile(w.path(name))
	if err != nil {
		return "", false
	}
	return string(b), true
}

func (w *rtWorld) write(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(w.path(name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (w *rtWorld) bump(key string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts[key]++
	return w.counts[key]
}

func (w *rtWorld) count(key string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[key]
}

type rtFileParams struct {
	Path string `yaml:"path" required:"true" doc:"The path param."`
}

type rtFileOutputs struct {
	Content string `json:"content" expr:"content"`
	Exists  bool   `json:"exists" expr:"exists"`
}

type rtWriteParams struct {
	Path    string `yaml:"path" required:"true" doc:"The path param."`
	Content string `yaml:"content" doc:"The content param."`
	// Check forces Check's answer: "" (look at the file), "unknown", "never";
	// "backupdir" looks at the file only when Check is shown the backup folder.
	Check string `yaml:"check" enum:",unknown,never,backupdir" doc:"The check param."`
}

type rtWriteOutputs struct {
	Bytes int `json:"bytes" expr:"bytes"`
}

type rtFlakyParams struct {
	Key  string `yaml:"key" required:"true" doc:"The key param."`
	Fail int    `yaml:"fail" doc:"The fail param."`
}

type rtFlakyOutputs struct {
	Attempt int `json:"attempt" expr:"attempt"`
}

type rtSleepParams struct {
	For time.Duration `yaml:"for" required:"true" doc:"The for param."`
}

type rtEchoParams struct {
	Text string `yaml:"text" doc:"The text param."`
	Fail bool   `yaml:"fail" doc:"The fail param."`
}

type rtEchoOutputs struct {
	Text string `json:"text" expr:"text"`
}

type rtConfirmParams struct {
	Prompt string `yaml:"prompt" required:"true" doc:"The prompt param."`
}

type rtConfirmOutputs struct {
	Yes bool `json:"yes" expr:"yes"`
}

type rtEmpty struct{}

type rtNoopOutputs struct {
	OK bool `json:"ok" expr:"ok"`
}

type rtCountOutputs struct {
	N int `json:"n" expr:"n"`
}

// rtRegistry registers the test step types acting on w.
func rtRegistry(w *rtWorld) *Registry {
	reg := NewRegistry()
	reg.Register(Read[rtFileParams, rtFileOutputs]{
		Spec: Spec{ID: "file.read", Summary: "Reads a file of the world."},
		Run: func(_ context.Context, _ *Env, p *rtFileParams) (rtFileOutputs, error) {
			w.bump("read:" + p.Path)
			s, ok := w.read(p.Path)
			return rtFileOutputs{Content: s, Exists: ok}, nil
		},
	})
	reg.Register(Write[rtWriteParams, rtWriteOutputs]{
		Spec: Spec{ID: "file.write", Summary: "Writes a file of the world."},
		Plan: func(_ context.Context, _ *Env, p *rtWriteParams) (Plan, error) {
			cur, ok := w.read(p.Path)
			c := Change{Action: "update", Object: "file " + p.Path, Before: cur, After: p.Content}
			if !ok {
				c.Action = "create"
			}
			return Plan{
				Summary: "write " + p.Path,
				Changes: []Change{c},
				InPlace: ok && cur == p.Content,
				Facts:   map[string]any{"exists": ok, "content": cur},
			}, nil
		},
		Backup: func(_ context.Context, env *Env, p *rtWriteParams) ([]string, error) {
			cur, ok := w.read(p.Path)
			if !ok {
				return nil, nil
			}
			name := filepath.Base(p.Path)
			return []string{name}, os.WriteFile(filepath.Join(env.BackupDir, name), []byte(cur), 0o600)
		},
		Apply: func(ctx context.Context, _ *Env, p *rtWriteParams) (rtWriteOutputs, error) {
			w.bump("apply:" + p.Path)
			if w.hangs[p.Path] == "before" {
				w.hang(ctx, "hanging before "+p.Path)
			}
			if err := os.WriteFile(w.path(p.Path), []byte(p.Content), 0o600); err != nil {
				return rtWriteOutputs{}, err
			}
			if w.hangs[p.Path] == "after" {
				w.hang(ctx, "hanging after "+p.Path)
			}
			return rtWriteOutputs{Bytes: len(p.Content)}, nil
		},
		Check: func(_ context.Context, env *Env, p *rtWriteParams) (Verdict[rtWriteOutputs], error) {
			w.bump("check:" + p.Path)
			switch p.Check {
			case "backupdir":
				if fi, err := os.Stat(env.BackupDir); env.BackupDir == "" || err != nil || !fi.IsDir() {
					return Verdict[rtWriteOutputs]{State: Unknown, Detail: "check was not shown the backup folder"}, nil
				}
			case "unknown":
				return Verdict[rtWriteOutputs]{State: Unknown, Detail: "the file server does not answer"}, nil
			case "never":
				return Verdict[rtWriteOutputs]{State: NotApplied, Detail: "content still old"}, nil
			}
			if cur, ok := w.read(p.Path); ok && cur == p.Content {
				return Verdict[rtWriteOutputs]{State: Applied, Outputs: rtWriteOutputs{Bytes: len(cur)}}, nil
			}
			return Verdict[rtWriteOutputs]{State: NotApplied, Detail: "content differs"}, nil
		},
	})
	reg.Register(Read[rtFlakyParams, rtFlakyOutputs]{
		Spec: Spec{ID: "test.flaky", Summary: "Fails its first attempts."},
		Run: func(_ context.Context, _ *Env, p *rtFlakyParams) (rtFlakyOutputs, error) {
			n := w.bump("flaky:" + p.Key)
			if n <= p.Fail {
				return rtFlakyOutputs{}, fmt.Errorf("flaky attempt %d", n)
			}
			return rtFlakyOutputs{Attempt: n}, nil
		},
	})
	reg.Register(Read[rtSleepParams, rtEmpty]{
		Spec: Spec{ID: "test.sleep", Summary: "Waits, or until cancelled."},
		Run: func(ctx context.Context, _ *Env, p *rtSleepParams) (rtEmpty, error) {
			w.bump("sleep")
			select {
			case <-ctx.Done():
				return rtEmpty{}, ctx.Err()
			case <-time.After(p.For):
				return rtEmpty{}, nil
			}
		},
	})
	reg.Register(Read[rtEchoParams, rtEchoOutputs]{
		Spec: Spec{ID: "test.echo", Summary: "Logs its text and returns it."},
		Run: func(_ context.Context, env *Env, p *rtEchoParams) (rtEchoOutputs, error) {
			env.Logf("echo: %s", p.Text)
			fmt.Fprintf(env.Out, "raw: %s\n", p.Text)
			if p.Fail {
				return rtEchoOutputs{}, fmt.Errorf("echo refused %q", p.Text)
			}
			return rtEchoOutputs{Text: p.Text}, nil
		},
	})
	reg.Register(Interactive[rtConfirmParams, rtConfirmOutputs]{
		Spec: Spec{ID: "test.confirm", Summary: "Asks a yes/no question."},
		Ask: func(ctx context.Context, env *Env, p *rtConfirmParams) (rtConfirmOutputs, error) {
			yes, err := env.Prompter.Confirm(ctx, p.Prompt)
			if err != nil {
				return rtConfirmOutputs{}, err
			}
			if !yes {
				return rtConfirmOutputs{}, errors.New("the operator said no")
			}
			return rtConfirmOutputs{Yes: true}, nil
		},
	})
	reg.Register(Read[rtEmpty, rtNoopOutputs]{
		Spec: Spec{ID: "test.noop", Summary: "Does nothing."},
		Run: func(context.Context, *Env, *rtEmpty) (rtNoopOutputs, error) {
			return rtNoopOutputs{OK: true}, nil
		},
	})
	reg.Register(Write[rtEmpty, rtCountOutputs]{
		Spec: Spec{ID: "test.count", Summary: "Counts in memory."},
		Plan: func(context.Context, *Env, *rtEmpty) (Plan, error) {
			return Plan{Summary: "count"}, nil
		},
		Apply: func(_ context.Context, env *Env, _ *rtEmpty) (rtCountOutputs, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.applied[env.StepID] = true
			return rtCountOutputs{N: len(w.applied)}, nil
		},
		Check: func(_ context.Context, env *Env, _ *rtEmpty) (Verdict[rtCountOutputs], error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.applied[env.StepID] {
				return Verdict[rtCountOutputs]{State: Applied}, nil
			}
			return Verdict[rtCountOutputs]{State: NotApplied}, nil
		},
	})
	return reg
}

// hang reports to the sideband and blocks until ctx ends; the helper
// process is killed there.
func (w *rtWorld) hang(ctx context.Context, what string) {
	if w.sideband != nil {
		fmt.Fprintln(w.sideband, what)
	}
	<-ctx.Done()
}

// rtTarget is a target whose facts come from a file of the world.
type rtTarget struct {
	name string
	w    *rtWorld
}

func (t *rtTarget) Name() string { return t.name }

func (t *rtTarget) Facts(context.Context) (Facts, error) {
	domain, _ := t.w.read("domain")
	return Facts{Domain: strings.TrimSpace(domain), NodeType: "embedded"}, nil
}

func (t *rtTarget) Close() error { return nil }

// load loads a runbook for the world; src is the runbook without its header.
func load(t testing.TB, w *rtWorld, src string) *Runbook {
	t.Helper()
	rb, err := loadSrc(w, src)
	if err != nil {
		t.Fatalf("load:\n%v\n%s", err, src)
	}
	return rb
}

func loadSrc(w *rtWorld, src string) (*Runbook, error) {
	full := "apiVersion: runbook/v1\nname: test\ntitle: A test runbook\n" + src
	return Load(rtRegistry(w), "test.yaml", []byte(full))
}

// harness runs runbooks on a world and captures everything they print.
type harness struct {
	t        testing.TB
	w        *rtWorld
	state    string
	events   bytes.Buffer
	progress bytes.Buffer
}

func newHarness(t testing.TB) *harness {
	w := newWorld(t)
	w.write(t, "domain", "vsphere.local")
	return &harness{t: t, w: w, state: t.TempDir()}
}

// runner returns a Runner on the harness's state dir and target.
func (h *harness) runner() *Runner {
	return &Runner{
		StateDir: h.state,
		Target:   &rtTarget{name: "lab:test", w: h.w},
		Output:   &h.events,
		Progress: &h.progress,
	}
}

// eventsOf decodes the NDJSON events written so far.
func (h *harness) eventsOf() []Event {
	h.t.Helper()
	var evs []Event
	sc := bufio.NewScanner(bytes.NewReader(h.events.Bytes()))
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			h.t.Fatalf("event %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs
}

// journal reads the journal of a run.
func (h *harness) journal(id string) []Record {
	h.t.Helper()
	recs, err := ReadJournal(filepath.Join(h.state, "runs", id, JournalFile))
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

// types lists record types, with the step for step records.
func types(recs []Record) []string {
	var out []string
	for _, r := range recs {
		s := string(r.Type)
		if r.Step != "" {
			s += " " + r.Step
		}
		out = append(out, s)
	}
	return out
}

func statuses(res *Result) []string {
	var out []string
	for _, s := range res.Steps {
		out = append(out, s.ID+"="+string(s.Status))
	}
	return out
}

func TestRunWriteStep(t *testing.T) {
	h := newHarness(t)
	h.w.write(t, "cfg", "old")
	rb := load(t, h.w, `
steps:
  - id: before
    uses: file.read
    with: {path: cfg}
  - id: put
    uses: file.write
    with: {path: cfg, content: "new after ${{ steps.before.content }}"}
    assert:
      - expr: steps.put.bytes == 13
        message: wrote 13 bytes
`)
	res, err := h.runner().Run(t.Context(), rb, nil)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, h.progress.String())
	}
	if got, _ := h.w.read("cfg"); got != "new after old" {
		t.Errorf("cfg = %q, want %q", got, "new after old")
	}
	if res.Status != RunSucceeded {
		t.Errorf("status = %s", res.Status)
	}
	backup, err := os.ReadFile(filepath.Join(res.RunDir, "backups", "put", "cfg"))
	if err != nil || string(backup) != "old" {
		t.Errorf("backup = %q, %v; want the old content", backup, err)
	}
	want := []string{"run-start", "step-start before", "done before", "step-start put", "plan put", "intent put", "backup put", "done put", "run-end"}
	if got := types(h.journal(res.RunID)); !equal(got, want) {
		t.Errorf("journal:\n got %q\nwant %q", got, want)
	}
	recs := h.journal(res.RunID)
	if string(recs[7].Outputs) != `{"bytes":13}` {
		t.Errorf("done outputs = %s", recs[7].Outputs)
	}
	if recs[6].Backups[0] != filepath.Join("backups", "put", "cfg") {
		t.Errorf("backup record = %q", recs[6].Backups)
	}
	for _, want := range []string{"[1/2] read before: done", "[2/2] write put: write cfg", "  ~ update file cfg\n      - old\n      + new after old\n", "[2/2] write put: done"} {
		if !strings.Contains(h.progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, h.progress.String())
		}
	}
}

func TestRunStepSemantics(t *testing.T) {
	tests := []struct {
		name     string
		runbook  string
		yes      bool
		prompter Prompter
		wantErr  any // pointer to the error type wanted, or nil
		wantCode int
		want     []string // step statuses
		check    func(t *testing.T, h *harness, res *Result, err error)
	}{
		{
			name: "when false skips",
			runbook: `
steps:
  - id: a
    uses: test.noop
    when: facts.domain == "other.local"
  - id: b
    uses: test.noop
`,
			want: []string{"a=skipped", "b=done"},
		},
		{
			name: "guard refuses before any step",
			runbook: `
guards:
  - expr: facts.domain == "corp.local"
    message: this runbook is for corp.local only
steps:
  - id: a
    uses: test.noop
`,
			wantErr:  new(*GuardRefusedError),
			wantCode: ExitGuardRefused,
			check: func(t *testing.T, h *harness, res *Result, err error) {
				if !strings.Contains(err.Error(), "this runbook is for corp.local only") {
					t.Errorf("error lacks the author's message: %v", err)
				}
				if len(res.Steps) != 0 {
					t.Errorf("steps ran: %v", statuses(res))
				}
			},
		},
		{
			name: "require refuses and nothing after runs",
			runbook: `
steps:
  - id: a
    uses: file.read
    with: {path: missing}
  - id: b
    uses: file.write
    on_failure: continue
    require:
      - expr: steps.a.exists
        message: the file must exist
    with: {path: x, content: y}
  - id: c
    uses: test.noop
`,
			wantErr:  new(*GuardRefusedError),
			wantCode: ExitGuardRefused,
			want:     []string{"a=done", "b=refused"},
			check: func(t *testing.T, h *harness, res *Result, err error) {
				if !strings.Contains(err.Error(), "step b refused: the file must exist") {
					t.Errorf("error = %v", err)
				}
				if _, ok := h.w.read("x"); ok {
					t.Error("refused step wrote")
				}
			},
		},
		{
			name: "retry until success",
			runbook: `
steps:
  - id: a
    uses: test.flaky
    retry: {attempts: 3, delay: 1ms}
    with: {key: k, fail: 2}
    assert:
      - expr: steps.a.attempt == 3
`,
			want: []string{"a=done"},
			check: func(t *testing.T, h *harness, res *Result, err error) {
				if res.Steps[0].Attempts != 3 {
					t.Errorf("attempts = %d, want 3", res.Steps[0].Attempts)
				}
			},
		},
		{
			name: "retries exhausted",
			runbook: `
steps:
  - id: a
    uses: test.flaky
    retry: {attempts: 2}
    with: {key: k, fail: 5}
  - id: b
    uses: test.noop
`,
			wantErr:  new(*StepError),
			wantCode: ExitStepFailed,
			want:     []string{"a=failed"},
			check: func(t *testing.T, h *harness, res *Result, err error) {
				if h.w.count("flaky:k") != 2 {
					t.Errorf("tries = %d, want 2", h.w.count("flaky:k"))
				}
				if !strings.Contains(err.Error(), "step a failed after 2 attempts: flaky attempt 2") {
					t.Errorf("error = %v", err)
				}
			},
		},
		{
			name: "timeout per attempt",
			runbook: `
steps:
  - id: a
    uses: test.sleep
    timeout: 20ms
    retry: {attempts: 2}
    with: {for: 1h}
`,
			wantErr:  new(*StepError),
			wantCode: ExitStepFailed,
			want:     []string{"a=failed"},
			check: func(t *testing.T, h *harness, res *Result, err error) {
				if !strings.Contains(err.Error(), "timed out after 20ms") || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error = %v", err)
				}
				if h.w.count("sleep") != 2 {
					t.Errorf("attempts = %d, want 2", h.w.count("sleep"))
				}
			},
		},
		{
			name: "on_failure continue runs the rest and fails the run",
			runbook: `
steps:
  - id: a
    uses: test.echo
    on_failure: continue
    with: {text: boom, fail: true}
  - id: b
    uses: test.noop
`,
			wantErr:  new(*StepError),
			wantCode: ExitStepFailed,
			want:     []string{"a=failed", "b=done"},
			check: func(t *testing.T, h *harness, res *Result, err error) {
				if res.Status != RunFailed {
					t.Errorf("status = %s", res.Status)
				}
			},
		},
		{
			name: "on_failure abort stops",
			runbook: `
steps:
  - id: a
    uses: test.echo
    with: {text: boom, fail: true}
  - id: b
    uses: test.noop
`,
			wantErr:  new(*StepError),
			wantCode: ExitStepFailed,
			want:     []string{"a=failed"},
		},
		{
			name: "assertion failed",
			runbook: `
steps:
  - id: a
    uses: file.read
    with: {path: domain}
    on_failure: continue
    assert:
      - expr: steps.a.content == "corp.local"
        message: domain file says corp.local
  - id: b
    uses: test.noop
`,
			wantErr:  new(*AssertionError),
			wantCode: ExitAssertionFailed,
			want:     []string{"a=assert-failed", "b=done"},
			check: func(t *testing.T, h *harness, res *Result, err error) {
				if res.Status != RunAssertFailed {
					t.Errorf("status = %s", res.Status)
				}
				if !strings.Contains(err.Error(), "assertion failed: domain file says corp.local") {
					t.Errorf("error = %v", err)
				}
			},
		},
		{
			name: "write that does not take effect fails",
			runbook: `
steps:
  - id: a
    uses: file.write
    with: {path: f, content: x, check: never}
`,
			wantErr:  new(*StepError),
			wantCode: ExitStepFailed,
			want:     []string{"a=failed"},
			check: func(t *testing.T, h *harness, res *Result, err error) {
				if !errors.Is(err, errNotApplied) || !strings.Contains(err.Error(), "apply did not take effect: content still old") {
					t.Errorf("error = %v", err)
				}
			},
		},
		{
			name: "write already in place is not applied",
			runbook: `
steps:
  - id: a
    uses: file.write
    with: {path: domain, content: vsphere.local}
`,
			want: []string{"a=done"},
			check: func(t *testing.T, h *harness, res *Result, err error) {
				if n := h.w.count("apply:domain"); n != 0 {
					t.Errorf("applied %d times", n)
				}
				if res.Steps[0].Message != "already in place" {
					t.Errorf("message = %q", res.Steps[0].Message)
				}
			},
		},
		{
			name: "interactive fails closed without a terminal",
			runbook: `
steps:
  - id: ok
    uses: test.confirm
    with: {prompt: "Snapshots taken?"}
  - id: b
    uses: file.write
    with: {path: x, content: y}
`,
			wantErr:  new(*StepError),
			wantCode: ExitStepFailed,
			want:     []string{"ok=failed"},
			check: func(t *testing.T, h *harness, res *Result, err error) {
				if !strings.Contains(err.Error(), `no terminal to ask "Snapshots taken?"; pass --yes or answer with a param`) {
					t.Errorf("error = %v", err)
				}
				if _, ok := h.w.read("x"); ok {
					t.Error("the write after the question ran")
				}
			},
		},
		{
			name: "interactive with --yes",
			yes:  true,
			runbook: `
steps:
  - id: ok
    uses: test.confirm
    with: {prompt: "Snapshots taken?"}
`,
			want: []string{"ok=done"},
		},
		{
			name:     "interactive asks the prompter",
			prompter: NewTerminalPrompter(strings.NewReader("no\n"), io.Discard),
			runbook: `
steps:
  - id: ok
    uses: test.confirm
    with: {prompt: "Snapshots taken?"}
`,
			wantErr:  new(*StepError),
			wantCode: ExitStepFailed,
			want:     []string{"ok=failed"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			rb := load(t, h.w, tc.runbook)
			r := h.runner()
			r.Yes, r.Prompter = tc.yes, tc.prompter
			res, err := r.Run(t.Context(), rb, nil)
			if res == nil {
				t.Fatalf("no result: %v", err)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("run: %v\n%s", err, h.progress.String())
			case tc.wantErr != nil && !errors.As(err, tc.wantErr):
				t.Fatalf("error = %v (%T), want %T", err, err, tc.wantErr)
			}
			if got := ExitCode(err); got != tc.wantCode {
				t.Errorf("exit code = %d, want %d", got, tc.wantCode)
			}
			if got := statuses(res); !equal(got, tc.want) {
				t.Errorf("steps = %q, want %q", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, h, res, err)
			}
			// Every run ends its journal with run-end and the result's status.
			recs := h.journal(res.RunID)
			if last := recs[len(recs)-1]; last.Type != RecRunEnd || last.Status != res.Status {
				t.Errorf("last record = %+v, want run-end %s", last, res.Status)
			}
		})
	}
}

func TestRunCancelled(t *testing.T) {
	h := newHarness(t)
	rb := load(t, h.w, `
steps:
  - id: a
    uses: test.sleep
    with: {for: 1h}
  - id: b
    uses: test.noop
`)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	res, err := h.runner().Run(ctx, rb, nil)
	if ExitCode(err) != ExitInterrupted {
		t.Fatalf("exit code %d for %v, want %d", ExitCode(err), err, ExitInterrupted)
	}
	if res.Status != RunInterrupted {
		t.Errorf("status = %s", res.Status)
	}
}

func TestEvents(t *testing.T) {
	h := newHarness(t)
	rb := load(t, h.w, `
steps:
  - id: a
    uses: test.noop
  - id: b
    uses: file.write
    with: {path: f, content: x}
`)
	res, err := h.runner().Run(t.Context(), rb, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h.eventsOf() {
		if e.Run != res.RunID || e.Time.IsZero() {
			t.Errorf("event %+v lacks run or time", e)
		}
		s := string(e.Type)
		if e.Step != "" {
			s += fmt.Sprintf(" %s %d/%d %s", e.Step, e.Index, e.Total, e.Effect)
		}
		if e.Status != "" {
			s += " " + e.Status
		}
		got = append(got, s)
	}
	want := []string{
		"run-start",
		"step-start a 1/2 read", "step-end a 1/2 read done",
		"step-start b 2/2 write", "plan b 2/2 write", "step-end b 2/2 write done",
		"run-end succeeded",
	}
	if !equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	for _, e := range h.eventsOf() {
		if e.Type == EventPlan && (len(e.Changes) != 1 || e.Changes[0].After != "x") {
			t.Errorf("plan event changes = %+v", e.Changes)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	h := newHarness(t)
	rb := load(t, h.w, "steps:\n  - id: a\n    uses: test.noop\n")
	tests := []struct {
		name string
		r    Runner
		want string
	}{
		{"no state dir", Runner{}, "no state dir"},
		{"save plan without dry-run", Runner{StateDir: h.state, SavePlan: "p.json"}, "--save-plan needs --dry-run"},
		{"plan and dry-run", Runner{StateDir: h.state, PlanFile: "p.json", DryRun: true}, "cannot be dry-run"},
		{"missing plan file", Runner{StateDir: h.state, PlanFile: filepath.Join(h.state, "nope.json")}, "read plan"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.r.Run(t.Context(), rb, nil)
			if ExitCode(err) != ExitInvalid || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Errorf("err = %v (code %d), want %q with code %d", err, ExitCode(err), tc.want, ExitInvalid)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// benchRunbook returns a runbook of n steps of the given form; %d is the
// step number.
func benchRunbook(b *testing.B, w *rtWorld, n int, step string) *Runbook {
	var src strings.Builder
	src.WriteString("steps:\n")
	for i := range n {
		fmt.Fprintf(&src, step, i, i)
	}
	return load(b, w, src.String())
}

// BenchmarkAssertSteps runs 1,000 read steps that do no I/O, each checked
// by an assert, and reports the cost per step: expression evaluation,
// outputs encoding and the buffered journal.
func BenchmarkAssertSteps(b *testing.B) {
	const n = 1000
	w := newWorld(b)
	rb := benchRunbook(b, w, n, "  - id: s%d\n    uses: test.noop\n    assert:\n      - expr: steps.s%d.ok\n")
	r := &Runner{StateDir: b.TempDir()}
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Run(b.Context(), rb, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/step")
}

// BenchmarkWriteSteps runs 1,000 write steps on a real disk: each one is
// planned, journaled (intent and done fsync'd), applied and checked.
func BenchmarkWriteSteps(b *testing.B) {
	const n = 1000
	w := newWorld(b)
	rb := benchRunbook(b, w, n, "  - id: s%d\n    uses: test.count\n    assert:\n      - expr: steps.s%d.n > 0\n")
	r := &Runner{StateDir: b.TempDir()}
	b.ResetTimer()
	for b.Loop() {
		w.mu.Lock()
		clear(w.applied)
		w.mu.Unlock()
		if _, err := r.Run(b.Context(), rb, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/step")
}

func TestProgressColor(t *testing.T) {
	for _, color := range []bool{false, true} {
		h := newHarness(t)
		rb := load(t, h.w, "steps:\n  - id: put\n    uses: file.write\n    with: {path: f, content: x}\n")
		r := h.runner()
		r.Color, r.DryRun = color, true
		if _, err := r.Run(t.Context(), rb, nil); err != nil {
			t.Fatal(err)
		}
		out := h.progress.String()
		if got := strings.Contains(out, "\x1b["); got != color {
			t.Errorf("color %v: escape codes present = %v:\n%q", color, got, out)
		}
		if color && !strings.Contains(out, ansiGreen+"+"+ansiReset+" create file f") {
			t.Errorf("colored plan line missing:\n%q", out)
		}
	}
}
