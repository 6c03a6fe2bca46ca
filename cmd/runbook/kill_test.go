package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"runbook/engine"
)

// killRunbook has three write steps; each appends its name to the file
// "effects" once, and a read step between them.
const killRunbook = `apiVersion: runbook/v1
name: three-writes
title: Three writes that must each happen exactly once
steps:
  - id: first
    uses: exec
    with:
      argv: [sh, -c, "echo first >> effects"]
      check: [grep, -qx, first, effects]
  - id: look
    uses: exec
    with: {argv: [cat, effects], effect: read}
  - id: second
    uses: exec
    with:
      argv: [sh, -c, "echo second >> effects"]
      check: [grep, -qx, second, effects]
  - id: third
    uses: exec
    with:
      argv: [sh, -c, "echo third >> effects"]
      check: [grep, -qx, third, effects]
`

// buildRunbook compiles the CLI into dir and returns the binary's path.
func buildRunbook(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "runbook")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestKillAndResume starts a real `runbook run` process that kills itself
// with SIGKILL at one crash window of one step (RUNBOOK_FAILPOINT: after the
// intent record, after Apply but before the done record, after the done
// record), resumes it with `runbook resume`, and checks that every write
// step took effect exactly once, for every window of every step in turn.
func TestKillAndResume(t *testing.T) {
	bin := buildRunbook(t, t.TempDir())
	var points []string
	for _, step := range []string{"first", "second", "third"} {
		for _, p := range []engine.Failpoint{engine.FailAfterIntent, engine.FailAfterApply, engine.FailAfterDone} {
			points = append(points, string(p)+":"+step)
		}
	}
	points = append(points, "done:look")
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			work := t.TempDir()
			state := filepath.Join(work, "state")
			if err := os.WriteFile(filepath.Join(work, "three.yaml"), []byte(killRunbook), 0o644); err != nil {
				t.Fatal(err)
			}
			env := append(os.Environ(), "RUNBOOK_STATE_DIR="+state, "NO_COLOR=1")

			run := exec.Command(bin, "run", "three.yaml")
			run.Dir, run.Env = work, append(env, "RUNBOOK_FAILPOINT="+point)
			err := run.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("run with failpoint %s: want death by SIGKILL, got %v", point, err)
			}
			runs, err := engine.Runs(state)
			if err != nil || len(runs) != 1 {
				t.Fatalf("runs: %v %v", runs, err)
			}

			resume := exec.Command(bin, "resume", runs[0].ID)
			resume.Dir, resume.Env = work, env
			out, err := resume.CombinedOutput()
			if err != nil {
				t.Fatalf("runbook resume %s: %v\n%s", runs[0].ID, err, out)
			}
			data, err := os.ReadFile(filepath.Join(work, "effects"))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(data), "first\nsecond\nthird\n"; got != want {
				t.Fatalf("effects after a kill at %s and resume:\n%s\nwant each write exactly once:\n%s\nresume said:\n%s", point, got, want, out)
			}
		})
	}
}

// TestResumeKeepsParamTypes kills a run whose params are an empty list, a
// list with an item holding a comma, and a duration, and resumes it: the
// resumed run must bind the same values (resume refuses different params)
// and finish with them.
func TestResumeKeepsParamTypes(t *testing.T) {
	bin := buildRunbook(t, t.TempDir())
	work := t.TempDir()
	rb := `apiVersion: runbook/v1
name: typed
title: Params that do not survive a round trip through text
params:
  none: {type: list, default: [], description: An empty list.}
  names: {type: list, description: Items with commas.}
  wait: {type: duration, default: 1ms, description: A duration.}
steps:
  - id: write
    uses: exec
    with:
      argv: [sh, -c, "echo \"$N\" > seen"]
      env: {N: "${{ string(len(params.none)) + '|' + join(params.names, ';') + '|' + string(params.wait) }}"}
      check: [test, -f, seen]
`
	if err := os.WriteFile(filepath.Join(work, "typed.yaml"), []byte(rb), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "params.yaml"), []byte("names: [\"a,b\", c]\nwait: 90s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(work, "state")
	env := append(os.Environ(), "RUNBOOK_STATE_DIR="+state, "NO_COLOR=1")
	run := exec.Command(bin, "run", "typed.yaml", "--params-file", "params.yaml")
	run.Dir, run.Env = work, append(env, "RUNBOOK_FAILPOINT=intent:write")
	if err := run.Run(); err == nil {
		t.Fatal("the run was not killed")
	}
	runs, err := engine.Runs(state)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v %v", runs, err)
	}
	resume := exec.Command(bin, "resume", runs[0].ID)
	resume.Dir, resume.Env = work, env
	if out, err := resume.CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(work, "seen"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "0|a,b;c|1m30s\n"; string(got) != want {
		t.Errorf("the resumed run saw params %q, want %q", got, want)
	}
}
