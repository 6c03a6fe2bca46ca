package runbooks_test

// The harness every runbook's end-to-end test uses: start a lab scenario,
// run a runbook against it through the real CLI binary with a target
// profile (so a run can be killed while the lab lives on), compare lab
// states, and kill a run at every step in turn and resume it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"runbook/engine"
	"runbook/lab"
	"runbook/runbooks"
	"runbook/steps"
)

// cli is the runbook binary TestMain builds for these tests.
var cli string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "runbook-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cli = filepath.Join(dir, "runbook")
	build := exec.Command("go", "build", "-o", cli, "runbook/cmd/runbook")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the runbook binary: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// labRun is a lab scenario with a target profile and a state dir.
type labRun struct {
	t       *testing.T
	Lab     *lab.Lab
	Profile string
	State   string
}

// startLab starts scenario and writes its target profile.
func startLab(t *testing.T, scenario string) *labRun {
	t.Helper()
	l, err := lab.Start(context.Background(), scenario)
	if err != nil {
		t.Fatalf("start lab %s: %v", scenario, err)
	}
	t.Cleanup(func() { l.Close() })
	dir := t.TempDir()
	profile, err := l.Profile(dir)
	if err != nil {
		t.Fatalf("write profile: %v", err)
	}
	return &labRun{t: t, Lab: l, Profile: profile, State: filepath.Join(dir, "state")}
}

// result is what a CLI run printed and how it ended.
type result struct {
	Stdout, Stderr string
	Code           int
	Killed         bool
}

// runbook runs the CLI with args against the lab's profile and state dir;
// env adds variables (e.g. RUNBOOK_FAILPOINT). --target is added to run.
func (r *labRun) runbook(env []string, args ...string) result {
	r.t.Helper()
	if len(args) > 0 && args[0] == "run" {
		args = append(args, "--target", r.Profile)
	}
	cmd := exec.Command(cli, args...)
	cmd.Env = append(os.Environ(), append([]string{"RUNBOOK_STATE_DIR=" + r.State, "NO_COLOR=1"}, env...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			res.Killed = true
		}
	default:
		r.t.Fatalf("run %v: %v", args, err)
	}
	return res
}

// mustRun runs the CLI and fails the test unless it exits with want.
func (r *labRun) mustRun(want int, env []string, args ...string) result {
	r.t.Helper()
	res := r.runbook(env, args...)
	if res.Code != want {
		r.t.Fatalf("runbook %s exited %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.Code, want, res.Stdout, res.Stderr)
	}
	return res
}

// dryRunChangesNothing dry-runs the runbook and fails unless the lab is
// exactly as it was. It returns the result (the plan is on stderr).
func (r *labRun) dryRunChangesNothing(name string, want int, args ...string) result {
	r.t.Helper()
	before := r.Lab.Snapshot()
	res := r.mustRun(want, nil, append([]string{"run", name, "--dry-run", "--yes"}, args...)...)
	if after := r.Lab.Snapshot(); !bytes.Equal(before, after) {
		r.t.Fatalf("dry-run of %s changed the lab:\n%s", name, diffLines(string(before), string(after)))
	}
	return res
}

// shape is the lab's state with what differs between two equal runs
// masked: key and certificate bytes, thumbprints, serials, and the run's
// temporary and log files. Two runs that made the same changes have the
// same shape; a change made twice (two credentials, two backups) does not.
func (r *labRun) shape() string { return shapeOf(r.Lab.Snapshot()) }

var (
	reHex    = regexp.MustCompile(`\b[0-9a-fA-F]{32,}\b`)
	reColon  = regexp.MustCompile(`\b([0-9A-F]{2}:){15,}[0-9A-F]{2}\b`)
	reB64    = regexp.MustCompile(`(::|SslTrust:) \S+`)
	reFile   = regexp.MustCompile(`^f (\d{4}) \d+ [0-9a-f]{64} `)
	reSkip   = regexp.MustCompile(`^f \d{4} .* /(tmp|var/log|var/tmp)/`)
	reStamp  = regexp.MustCompile(`\b\d{14}(\.\d+)?Z\b`)
	reSkipDN = regexp.MustCompile(`^d \d{4} /(tmp|var/tmp)/`)
)

func shapeOf(snapshot []byte) string {
	// Unfold LDIF continuation lines first.
	text := strings.ReplaceAll(string(snapshot), "\n ", "")
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if reSkip.MatchString(line) || reSkipDN.MatchString(line) {
			continue
		}
		line = reFile.ReplaceAllString(line, "f $1 <size> <sha256> ")
		line = reB64.ReplaceAllString(line, "$1 <bytes>")
		line = reColon.ReplaceAllString(line, "<thumbprint>")
		line = reHex.ReplaceAllString(line, "<hex>")
		line = reStamp.ReplaceAllString(line, "<time>")
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// diffLines returns the lines only in a (-) and only in b (+).
func diffLines(a, b string) string {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	var lines []string
	for l, n := range count {
		for ; n > 0; n-- {
			lines = append(lines, "- "+l)
		}
		for ; n < 0; n++ {
			lines = append(lines, "+ "+l)
		}
	}
	sort.Strings(lines)
	if len(lines) > 60 {
		lines = append(lines[:60], fmt.Sprintf("… %d more", len(lines)-60))
	}
	return strings.Join(lines, "\n")
}

// load loads a built-in runbook with every step type.
func load(t *testing.T, name string) *engine.Runbook {
	t.Helper()
	src, err := runbooks.NewCatalog(nil, "").Find(name)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := engine.Load(steps.Registry(), src.Path, src.Data)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return rb
}

// killPoints lists every crash window of the runbook's steps: after the
// intent record, after Apply and after the done record of each write step,
// and after the done record of every other step.
func killPoints(rb *engine.Runbook) []string {
	var points []string
	for _, st := range rb.Steps {
		if st.Effect == engine.EffectWrite {
			points = append(points, "intent:"+st.ID, "applied:"+st.ID)
		}
		points = append(points, "done:"+st.ID)
	}
	return points
}

// killAndResumeEverywhere runs the runbook uninterrupted on a fresh lab of
// scenario to get the reference shape, then, for every kill point in turn,
// on a fresh lab: runs it with the process killed (SIGKILL) at that point,
// resumes it, and requires the same final shape as the uninterrupted run
// and every backup the journal names to be present. verify, when not nil,
// checks the lab after each run (the repair, judged by the lab's state).
// A kill point the run never reaches (a step skipped by `when`) is noted
// and passed over.
func killAndResumeEverywhere(t *testing.T, scenario, name string, args []string, verify func(t *testing.T, r *labRun)) {
	t.Helper()
	rb := load(t, name)
	ref := startLab(t, scenario)
	ref.mustRun(0, nil, append([]string{"run", name, "--yes"}, args...)...)
	if verify != nil {
		verify(t, ref)
	}
	want := ref.shape()
	for _, point := range killPoints(rb) {
		t.Run(point, func(t *testing.T) {
			t.Parallel() // each point has its own lab, state dir and processes
			r := startLab(t, scenario)
			res := r.runbook([]string{"RUNBOOK_FAILPOINT=" + point}, append([]string{"run", name, "--yes"}, args...)...)
			if !res.Killed {
				if res.Code != 0 {
					t.Fatalf("run with failpoint %s exited %d:\n%s", point, res.Code, res.Stderr)
				}
				t.Logf("failpoint %s not reached (step skipped); the run completed", point)
				return
			}
			runs, err := engine.Runs(r.State)
			if err != nil || len(runs) != 1 {
				t.Fatalf("runs after the kill: %v, %v", runs, err)
			}
			r.mustRun(0, nil, "resume", runs[0].ID, "--yes")
			if verify != nil {
				verify(t, r)
			}
			if got := r.shape(); got != want {
				t.Fatalf("killed at %s and resumed, the lab differs from an uninterrupted run:\n%s", point, diffLines(want, got))
			}
			requireBackups(t, filepath.Join(r.State, "runs", runs[0].ID))
		})
	}
}

// requireBackups fails unless every backup file the run's journal names
// exists in the run folder.
func requireBackups(t *testing.T, runDir string) {
	t.Helper()
	recs, err := engine.ReadJournal(filepath.Join(runDir, engine.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		for _, b := range rec.Backups {
			if _, err := os.Stat(filepath.Join(runDir, b)); err != nil {
				t.Errorf("step %s: backup %s is missing: %v", rec.Step, b, err)
			}
		}
	}
}
