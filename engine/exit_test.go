package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"ok", nil, 0},
		{"plain error", errors.New("boom"), 1},
		{"step failed", &StepError{Step: "a", Err: errors.New("boom")}, 1},
		{"invalid runbook", Diagnostics{{Pos: Pos{File: "x.yaml", Line: 1, Col: 1}, Message: "bad"}}, 2},
		{"usage", usageErrorf("no state dir"), 2},
		{"guard", &GuardRefusedError{Message: "no"}, 3},
		{"require", fmt.Errorf("run: %w", &GuardRefusedError{Step: "a", Message: "no"}), 3},
		{"stale plan", &StalePlanError{Plan: "p.json", What: "x"}, 4},
		{"lock held", &LockHeldError{Key: "k"}, 5},
		{"assertion", &AssertionError{Step: "a", Expr: "false"}, 6},
		{"resume unknown", &ResumeUnknownError{RunID: "r", Step: "a"}, 7},
		{"interrupted", context.Canceled, 130},
		{"interrupted inside a step", &StepError{Step: "a", Err: fmt.Errorf("read: %w", context.Canceled)}, 130},
		{"timeout is a failure", &StepError{Step: "a", Err: context.DeadlineExceeded}, 1},
	}
	seen := map[int]string{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExitCode(tc.err); got != tc.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
		seen[tc.want] = tc.name
	}
	for _, code := range []int{ExitOK, ExitStepFailed, ExitInvalid, ExitGuardRefused, ExitStalePlan, ExitLockHeld, ExitAssertionFailed, ExitResumeUnknown, ExitInterrupted} {
		if _, ok := seen[code]; !ok {
			t.Errorf("exit code %d is not tested", code)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&GuardRefusedError{Expr: "facts.x", Message: "run this on a PSC"}, "guard refused: run this on a PSC"},
		{&GuardRefusedError{Step: "rm", Expr: "len(x) > 0"}, "step rm refused: condition is false: len(x) > 0"},
		{&AssertionError{Step: "chk", Expr: "steps.chk.ok"}, "step chk: assertion failed: steps.chk.ok"},
		{&StepError{Step: "a", Attempts: 3, Err: errors.New("boom")}, "step a failed after 3 attempts: boom"},
		{&StalePlanError{Plan: "p.json", Step: "put", What: "the facts changed"}, "plan p.json is stale: step put: the facts changed; make a new plan with --dry-run --save-plan"},
		{&LockHeldError{Key: "sso:vsphere.local"}, "lock sso:vsphere.local is held by another process"},
		{&ResumeUnknownError{RunID: "r1", Step: "put"}, "resume run r1: step put was interrupted and it is unknown whether it took effect (check cannot tell); inspect the target, then resume again"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}
