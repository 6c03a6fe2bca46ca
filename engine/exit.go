package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The process exit codes of the runbook CLI. ExitCode maps an error from
// Runner.Run or Runner.Resume to one of them; each outcome has its own code so
// that scripts and CI can tell them apart:
//
//	code  meaning
//	   0  the run succeeded (a dry-run: the plan was computed)
//	   1  a step failed
//	   2  invalid runbook or usage (load errors, bad flags, changed runbook on resume)
//	   3  a guard or a step's require refused the run
//	   4  the saved plan is stale: the runbook, the target or a fact changed
//	   5  the lock is held by another run
//	   6  an assertion failed: a check runbook found a problem
//	   7  resume cannot tell whether an interrupted step took effect
//	 130  interrupted (SIGINT or a cancelled context)
const (
	ExitOK              = 0
	ExitStepFailed      = 1
	ExitInvalid         = 2
	ExitGuardRefused    = 3
	ExitStalePlan       = 4
	ExitLockHeld        = 5
	ExitAssertionFailed = 6
	ExitResumeUnknown   = 7
	ExitInterrupted     = 130
)

// ExitCode returns the exit code for err, following the table above. A
// cancelled context means interrupted; Load's Diagnostics mean an invalid
// runbook; otherwise the first error in err's chain with an `ExitCode() int`
// method decides; any other error is a failed step.
func ExitCode(err error) int {
	var (
		diags Diagnostics
		coder interface{ ExitCode() int }
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &diags):
		return ExitInvalid
	case errors.As(err, &coder):
		return coder.ExitCode()
	}
	return ExitStepFailed
}

// StepError is a step that failed: its params could not be resolved, or it
// returned an error on every attempt, or its write did not take effect.
type StepError struct {
	// Step is the step's id.
	Step string
	// Attempts is how often the step was tried.
	Attempts int
	Err      error
}

func (e *StepError) Error() string {
	if e.Attempts > 1 {
		return fmt.Sprintf("step %s failed after %d attempts: %v", e.Step, e.Attempts, e.Err)
	}
	return fmt.Sprintf("step %s: %v", e.Step, e.Err)
}

// Unwrap returns the step's error.
func (e *StepError) Unwrap() error { return e.Err }

// ExitCode is ExitStepFailed.
func (e *StepError) ExitCode() int { return ExitStepFailed }

// errNotApplied is the cause of a StepError when Check does not confirm Apply.
var errNotApplied = errors.New("apply did not take effect")

// redactedError shows its cause's message with secrets masked, and
// unwraps to the cause itself.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactError returns err with secrets masked in its message.
func redactError(err error, red *Redactor) error {
	if err == nil {
		return nil
	}
	if msg := red.String(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

// UsageError is an invalid request: a runbook that cannot be run as given,
// a run that cannot be resumed, an unreadable plan file.
type UsageError struct {
	Err error
}

func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *UsageError) Unwrap() error { return e.Err }

// ExitCode is ExitInvalid.
func (e *UsageError) ExitCode() int { return ExitInvalid }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// GuardRefusedError is a runbook guard or a step's require that was false.
type GuardRefusedError struct {
	// Step is the refusing step's id; it is empty for a runbook guard.
	Step string
	// Expr is the condition that was false.
	Expr string
	// Message is the author's message.
	Message string
	Pos     Pos
}

func (e *GuardRefusedError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "condition is false: " + e.Expr
	}
	if e.Step == "" {
		return "guard refused: " + msg
	}
	return fmt.Sprintf("step %s refused: %s", e.Step, msg)
}

// ExitCode is ExitGuardRefused.
func (e *GuardRefusedError) ExitCode() int { return ExitGuardRefused }

// AssertionError is a step's assert that was false after the step ran.
type AssertionError struct {
	// Step is the step's id.
	Step string
	// Expr is the condition that was false.
	Expr string
	// Message is the author's message.
	Message string
	Pos     Pos
}

func (e *AssertionError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Expr
	}
	return fmt.Sprintf("step %s: assertion failed: %s", e.Step, msg)
}

// ExitCode is ExitAssertionFailed.
func (e *AssertionError) ExitCode() int { return ExitAssertionFailed }

// StalePlanError is a saved plan that no longer matches the runbook, the
// target or the facts its steps relied on.
type StalePlanError struct {
	// Plan is the plan file.
	Plan string
	// Step is the step whose plan changed; it is empty when the runbook,
	// target or params changed.
	Step string
	// What says what changed.
	What string
}

func (e *StalePlanError) Error() string {
	if e.Step == "" {
		return fmt.Sprintf("plan %s is stale: %s; make a new plan with --dry-run --save-plan", e.Plan, e.What)
	}
	return fmt.Sprintf("plan %s is stale: step %s: %s; make a new plan with --dry-run --save-plan", e.Plan, e.Step, e.What)
}

// ExitCode is ExitStalePlan.
func (e *StalePlanError) ExitCode() int { return ExitStalePlan }

// LockHeldError is a lock another live run holds.
type LockHeldError struct {
	// Key is the rendered lock key.
	Key string
	// Holder says who holds it, as far as the lock file tells.
	Holder LockInfo
}

func (e *LockHeldError) Error() string {
	h := e.Holder
	if h.RunID == "" {
		return fmt.Sprintf("lock %s is held by another process", e.Key)
	}
	return fmt.Sprintf("lock %s is held by run %s (pid %d on %s, user %s) since %s",
		e.Key, h.RunID, h.PID, h.Host, h.User, h.Since.Local().Format(time.RFC3339))
}

// ExitCode is ExitLockHeld.
func (e *LockHeldError) ExitCode() int { return ExitLockHeld }

// ResumeUnknownError is an interrupted write step whose Check cannot tell
// whether its change took effect. A person must look, then resume again.
type ResumeUnknownError struct {
	// RunID is the run being resumed.
	RunID string
	// Step is the step's id.
	Step string
	// Detail is what Check said.
	Detail string
}

func (e *ResumeUnknownError) Error() string {
	d := e.Detail
	if d == "" {
		d = "check cannot tell"
	}
	return fmt.Sprintf("resume run %s: step %s was interrupted and it is unknown whether it took effect (%s); inspect the target, then resume again", e.RunID, e.Step, d)
}

// ExitCode is ExitResumeUnknown.
func (e *ResumeUnknownError) ExitCode() int { return ExitResumeUnknown }
