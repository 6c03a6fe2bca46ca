package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"runbook/engine"
)

// killRunbook has three write steps; each appends its name to the file
// "effects" once. The second one dawdles after its effect, so a kill can
// land between Apply and the done record; a sleep after each gives a kill
// time to land between steps.
const killRunbook = `apiVersion: runbook/v1
name: three-writes
title: Three writes that must each happen exactly once
steps:
  - id: first
    uses: exec
    with:
      argv: [sh, -c, "echo first >> effects"]
      check: [grep, -qx, first, effects]
  - id: pause1
    uses: sleep
    with: {duration: 300ms}
  - id: second
    uses: exec
    with:
      argv: [sh, -c, "echo second >> effects; sleep 0.4"]
      check: [grep, -qx, second, effects]
  - id: pause2
    uses: sleep
    with: {duration: 300ms}
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

// TestKillAndResume starts a real `runbook run` process, kills it with
// SIGKILL at each point in turn (after a step's intent record, after its
// done record), resumes it with `runbook resume`, and checks that every
// write step took effect exactly once.
func TestKillAndResume(t *testing.T) {
	bin := buildRunbook(t, t.TempDir())
	points := []struct {
		name   string
		step   string
		record engine.RecordType
	}{
		{"after first done", "first", engine.RecDone},
		{"inside second apply", "second", engine.RecIntent},
		{"after second done", "second", engine.RecDone},
		{"inside third apply", "third", engine.RecIntent},
	}
	for _, pt := range points {
		t.Run(pt.name, func(t *testing.T) {
			work := t.TempDir()
			state := filepath.Join(work, "state")
			if err := os.WriteFile(filepath.Join(work, "three.yaml"), []byte(killRunbook), 0o644); err != nil {
				t.Fatal(err)
			}
			env := append(os.Environ(), "RUNBOOK_STATE_DIR="+state, "NO_COLOR=1")

			run := exec.Command(bin, "run", "three.yaml")
			run.Dir, run.Env = work, env
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			runID := waitForRecord(t, state, pt.step, pt.record)
			if err := run.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = run.Wait()

			resume := exec.Command(bin, "resume", runID)
			resume.Dir, resume.Env = work, env
			out, err := resume.CombinedOutput()
			if err != nil {
				t.Fatalf("runbook resume %s: %v\n%s", runID, err, out)
			}
			data, err := os.ReadFile(filepath.Join(work, "effects"))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(data), "first\nsecond\nthird\n"; got != want {
				t.Fatalf("effects after kill %s and resume:\n%s\nwant each write exactly once:\n%s\nresume said:\n%s", pt.name, got, want, out)
			}
		})
	}
}

// waitForRecord polls the state dir until the single run's journal has a
// record of type typ for step, and returns the run's id.
func waitForRecord(t *testing.T, state, step string, typ engine.RecordType) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		matches, _ := filepath.Glob(filepath.Join(state, "runs", "*", engine.JournalFile))
		if len(matches) == 1 && journalHas(matches[0], step, typ) {
			return filepath.Base(filepath.Dir(matches[0]))
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("no %s record for step %s within 20s", typ, step)
	return ""
}

// journalHas reports whether the journal at path has a record of type typ
// for step. A torn last line is ignored.
func journalHas(path, step string, typ engine.RecordType) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, step) {
			continue
		}
		var r engine.Record
		if json.Unmarshal([]byte(line), &r) == nil && r.Step == step && r.Type == typ {
			return true
		}
	}
	return false
}
