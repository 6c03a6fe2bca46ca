package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as a helper process: with
// RT_HELPER=run it runs a runbook until a write step hangs, to be killed;
// with RT_HELPER=lock it holds a lock until killed.
func TestMain(m *testing.M) {
	switch os.Getenv("RT_HELPER") {
	case "":
		os.Exit(m.Run())
	case "run":
		helperRun()
	case "lock":
		helperLock()
	}
	fmt.Fprintln(os.Stderr, "unknown RT_HELPER")
	os.Exit(2)
}

// helperRun runs the runbook in RT_RUNBOOK on the world in RT_WORLD,
// hanging in file.write of RT_HANG_PATH (before or after writing, as
// RT_HANG says) until it is killed.
func helperRun() {
	w := &rtWorld{dir: os.Getenv("RT_WORLD"), counts: map[string]int{}, applied: map[string]bool{},
		hangs: map[string]string{os.Getenv("RT_HANG_PATH"): os.Getenv("RT_HANG")}, sideband: os.Stdout}
	rb, err := loadSrc(w, os.Getenv("RT_RUNBOOK"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	r := &Runner{StateDir: os.Getenv("RT_STATE"), Target: &rtTarget{name: "lab:test", w: w}}
	_, err = r.Run(context.Background(), rb, nil)
	fmt.Fprintln(os.Stderr, "helper run ended:", err)
	os.Exit(ExitCode(err))
}

// helperLock takes the lock RT_KEY in RT_STATE, says "locked" and waits.
func helperLock() {
	w := me()
	info := LockInfo{Key: os.Getenv("RT_KEY"), PID: w.PID, Host: w.Host, User: w.User, RunID: "helper-run", Since: time.Now().UTC()}
	if _, _, err := acquireLock(os.Getenv("RT_STATE"), info); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin) // until the parent kills us
	select {}
}

// helper starts the test binary as a helper process and waits for its
// first line of output. The returned kill function SIGKILLs it and waits.
func helper(t *testing.T, env ...string) (pid int, kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill = func() {
		if killed {
			return
		}
		killed = true
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		stdin.Close()
	}
	t.Cleanup(kill)
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if s == "" {
			t.Fatal("helper process ended without saying anything")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper process said nothing for 30s")
	}
	return cmd.Process.Pid, kill
}

const resumeRunbook = `
steps:
  - id: first
    uses: file.write
    with: {path: a, content: A}
  - id: second
    uses: file.write
    with: {path: b, content: B, check: "%s"}
  - id: third
    uses: file.read
    with: {path: b}
    assert:
      - expr: steps.third.content == "B" && steps.first.bytes == 1 && steps.second.bytes == 1
        message: b holds B and the earlier outputs are back
`

// killedRun runs resumeRunbook in a helper process, kills it while step
// second is applying, and returns the run's id.
func killedRun(t *testing.T, h *harness, src, hang string) string {
	t.Helper()
	_, kill := helper(t, "RT_HELPER=run", "RT_WORLD="+h.w.dir, "RT_STATE="+h.state,
		"RT_RUNBOOK="+src, "RT_HANG_PATH=b", "RT_HANG="+hang)
	runs, err := Runs(h.state)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	if runs[0].Status != RunRunning {
		t.Errorf("status of the hanging run = %s, want running", runs[0].Status)
	}
	// A live run cannot be resumed.
	rb := load(t, h.w, src)
	if _, err := h.runner().Resume(t.Context(), runs[0].ID, rb, nil); err == nil || !strings.Contains(err.Error(), "still in progress") {
		t.Errorf("resume of a live run: %v", err)
	}
	kill()
	return runs[0].ID
}

func TestResumeAfterKill(t *testing.T) {
	tests := []struct {
		name      string
		hang      string // where Apply of b was killed
		check     string // file.write's check param for b
		torn      bool   // add a torn line to the journal
		wantErr   bool
		wantB     string
		wantApply int // applies of b in the resuming process
	}{
		{name: "applied before the kill", hang: "after", wantB: "B"},
		{name: "not applied before the kill", hang: "before", wantB: "B", wantApply: 1},
		{name: "torn last line", hang: "after", torn: true, wantB: "B"},
		{name: "check cannot tell", hang: "after", check: "unknown", wantErr: true, wantB: "B"},
		{name: "check sees the interrupted backup", hang: "after", check: "backupdir", wantB: "B"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			src := fmt.Sprintf(resumeRunbook, tc.check)
			id := killedRun(t, h, src, tc.hang)
			journalPath := filepath.Join(h.state, "runs", id, JournalFile)
			killed := types(h.journal(id))
			wantKilled := []string{"run-start", "step-start first", "plan first", "intent first", "done first",
				"step-start second", "plan second", "intent second"}
			if !equal(killed, wantKilled) {
				t.Fatalf("journal of the killed run:\n got %q\nwant %q", killed, wantKilled)
			}
			if tc.torn {
				f, err := os.OpenFile(journalPath, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString(`{"time":"2026-11-22T09:30:00Z","type":"do`)
				f.Close()
			}
			if runs, _ := Runs(h.state); runs[0].Status != RunInterrupted {
				t.Errorf("status of the killed run = %s, want interrupted", runs[0].Status)
			}

			rb := load(t, h.w, src)
			res, err := h.runner().Resume(t.Context(), id, rb, nil)
			if got, _ := h.w.read("b"); got != tc.wantB {
				t.Errorf("b = %q, want %q", got, tc.wantB)
			}
			if n := h.w.count("apply:a"); n != 0 {
				t.Errorf("first was applied again (%d)", n)
			}
			if n := h.w.count("apply:b"); n != tc.wantApply {
				t.Errorf("second applied %d times on resume, want %d", n, tc.wantApply)
			}
			if tc.wantErr {
				var unknown *ResumeUnknownError
				if !errors.As(err, &unknown) || unknown.Step != "second" || ExitCode(err) != ExitResumeUnknown {
					t.Fatalf("err = %v, want resume unknown for step second", err)
				}
				if !strings.Contains(err.Error(), "the file server does not answer") {
					t.Errorf("error lacks Check's detail: %v", err)
				}
				if res.Status != RunStopped || h.w.count("read:b") != 0 {
					t.Errorf("status %s, read:b %d: the run went on after an unknown step", res.Status, h.w.count("read:b"))
				}
				// Still unknown when asked again.
				if _, err := h.runner().Resume(t.Context(), id, rb, nil); ExitCode(err) != ExitResumeUnknown {
					t.Errorf("second resume: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("resume: %v\n%s", err, h.progress.String())
			}
			want := []string{"first=done", "second=done", "third=done"}
			if got := statuses(res); !equal(got, want) {
				t.Errorf("steps = %q, want %q", got, want)
			}
			recs, err := ReadJournal(journalPath)
			if err != nil {
				t.Fatalf("journal after resume: %v", err)
			}
			got := types(recs)[len(wantKilled):]
			wantTail := []string{"resume", "step-start second"}
			if tc.wantApply == 0 {
				wantTail = append(wantTail, "done second")
			} else {
				wantTail = append(wantTail, "plan second", "intent second", "done second")
			}
			wantTail = append(wantTail, "step-start third", "done third", "run-end")
			if !equal(got, wantTail) {
				t.Errorf("journal after resume:\n got %q\nwant %q", got, wantTail)
			}
			if tc.wantApply == 1 {
				if _, err := os.Stat(filepath.Join(h.state, "runs", id, "backups", "second.2")); err != nil {
					t.Errorf("the second apply did not get its own backup folder: %v", err)
				}
			}
			if runs, _ := Runs(h.state); runs[0].Status != RunSucceeded || runs[0].Ended.IsZero() {
				t.Errorf("runs after resume = %+v", runs[0])
			}
			// A finished run cannot be resumed again.
			if _, err := h.runner().Resume(t.Context(), id, rb, nil); ExitCode(err) != ExitInvalid || !strings.Contains(err.Error(), "already succeeded") {
				t.Errorf("resume of a finished run: %v", err)
			}
		})
	}
}

func TestResumeAfterFailure(t *testing.T) {
	h := newHarness(t)
	src := `
steps:
  - id: put
    uses: file.write
    with: {path: a, content: A}
  - id: probe
    uses: test.flaky
    with: {key: k, fail: 1}
  - id: after
    uses: test.count
`
	rb := load(t, h.w, src)
	res, err := h.runner().Run(t.Context(), rb, nil)
	if ExitCode(err) != ExitStepFailed {
		t.Fatalf("first run: %v", err)
	}
	res2, err := h.runner().Resume(t.Context(), res.RunID, rb, nil)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	want := []string{"put=done", "probe=done", "after=done"}
	if got := statuses(res2); !equal(got, want) {
		t.Errorf("steps = %q, want %q", got, want)
	}
	if h.w.count("apply:a") != 1 || h.w.count("flaky:k") != 2 {
		t.Errorf("applies of a = %d (want 1), probes = %d (want 2)", h.w.count("apply:a"), h.w.count("flaky:k"))
	}
	if res2.Step("put").Message != "done before the interruption" {
		t.Errorf("put = %+v", res2.Step("put"))
	}
}

func TestResumeRefuses(t *testing.T) {
	src := `
params:
  name: {type: string, required: true}
steps:
  - id: probe
    uses: test.flaky
    with: {key: k, fail: 1}
`
	tests := []struct {
		name   string
		mutate func(h *harness, r *Runner) (*Runbook, map[string]any, string)
		want   string
	}{
		{
			name: "changed runbook",
			mutate: func(h *harness, r *Runner) (*Runbook, map[string]any, string) {
				return load(h.t, h.w, src+"# edited\n"), map[string]any{"name": "x"}, ""
			},
			want: "runbook test.yaml changed since run",
		},
		{
			name: "other params",
			mutate: func(h *harness, r *Runner) (*Runbook, map[string]any, string) {
				return nil, map[string]any{"name": "y"}, ""
			},
			want: "param name differs",
		},
		{
			name: "other target",
			mutate: func(h *harness, r *Runner) (*Runbook, map[string]any, string) {
				r.Target = &rtTarget{name: "lab:other", w: h.w}
				return nil, nil, ""
			},
			want: `is on target "lab:test", not "lab:other"`,
		},
		{
			name: "unknown run",
			mutate: func(h *harness, r *Runner) (*Runbook, map[string]any, string) {
				return nil, nil, "20260101T000000Z-000000"
			},
			want: "no run 20260101T000000Z-000000",
		},
		{
			name: "run id with a path",
			mutate: func(h *harness, r *Runner) (*Runbook, map[string]any, string) {
				return nil, nil, "../runs"
			},
			want: "invalid run id",
		},
		{
			name: "dry-run",
			mutate: func(h *harness, r *Runner) (*Runbook, map[string]any, string) {
				r.DryRun = true
				return nil, nil, ""
			},
			want: "takes no dry-run",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			rb := load(t, h.w, src)
			params := map[string]any{"name": "x"}
			res, err := h.runner().Run(t.Context(), rb, params)
			if ExitCode(err) != ExitStepFailed {
				t.Fatalf("run: %v", err)
			}
			r := h.runner()
			id := res.RunID
			nrb, nparams, nid := tc.mutate(h, r)
			if nrb != nil {
				rb = nrb
			}
			if nparams != nil {
				params = nparams
			}
			if nid != "" {
				id = nid
			}
			_, err = r.Resume(t.Context(), id, rb, params)
			if ExitCode(err) != ExitInvalid || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Errorf("err = %v (code %d), want %q", err, ExitCode(err), tc.want)
			}
			if h.w.count("flaky:k") != 1 {
				t.Errorf("a refused resume ran the step")
			}
		})
	}
}

func TestPriorSteps(t *testing.T) {
	recs := []Record{
		{Type: RecRunStart},
		{Type: RecDone, Step: "r", Outputs: json.RawMessage(`{"x":1}`)},
		{Type: RecSkipped, Step: "s"},
		{Type: RecIntent, Step: "w1"},
		{Type: RecDone, Step: "w1"},
		{Type: RecIntent, Step: "w2"},
		{Type: RecFailed, Step: "w2"},
		{Type: RecIntent, Step: "w3"},
		{Type: RecDone, Step: "w3"},
		{Type: RecAssertFailed, Step: "w3"},
		{Type: RecDone, Step: "r2"},
		{Type: RecAssertFailed, Step: "r2"},
		{Type: RecIntent, Step: "w4"},
	}
	p := priorSteps(recs)
	tests := []struct {
		id       string
		finished bool
		intent   bool
	}{
		{"r", true, false},
		{"s", true, false},
		{"w1", true, false},
		{"w2", false, true},
		{"w3", false, true},
		{"r2", false, false},
		{"w4", false, true},
	}
	for _, tc := range tests {
		if got := p[tc.id]; got.finished() != tc.finished || got.intent != tc.intent {
			t.Errorf("%s: finished %v intent %v, want %v %v", tc.id, got.finished(), got.intent, tc.finished, tc.intent)
		}
	}
	if string(p["r"].outputs) != `{"x":1}` {
		t.Errorf("outputs of r = %s", p["r"].outputs)
	}
}

func TestRuns(t *testing.T) {
	h := newHarness(t)
	if runs, err := Runs(h.state); err != nil || len(runs) != 0 {
		t.Fatalf("empty state dir: %v, %v", runs, err)
	}
	ok := load(t, h.w, "steps:\n  - id: a\n    uses: test.noop\n")
	bad := load(t, h.w, "steps:\n  - id: a\n    uses: test.echo\n    with: {fail: true}\n")
	clock := time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)
	var ids []string
	for i, c := range []struct {
		rb  *Runbook
		dry bool
	}{{ok, true}, {ok, false}, {bad, false}} {
		r := h.runner()
		r.DryRun = c.dry
		at := clock.Add(time.Duration(i) * time.Minute)
		r.Clock = func() time.Time { return at }
		res, _ := r.Run(t.Context(), c.rb, nil)
		ids = append(ids, res.RunID)
	}
	runs, err := Runs(h.state)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, fmt.Sprintf("%s %s %s %v %s", r.Runbook, r.Target, r.Status, r.DryRun, r.Started.Format("15:04")))
		if r.Path != "test.yaml" || r.Ended.IsZero() {
			t.Errorf("run %+v", r)
		}
	}
	want := []string{"test lab:test planned true 09:30", "test lab:test succeeded false 09:31", "test lab:test failed false 09:32"}
	if !equal(got, want) {
		t.Errorf("runs:\n got %q\nwant %q", got, want)
	}
	if runs[0].ID != ids[0] || runs[2].ID != ids[2] {
		t.Errorf("ids %v, want %v", runs, ids)
	}
}
