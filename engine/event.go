package engine

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// EventType names a progress event.
type EventType string

// The event types.
const (
	// EventRunStart opens a run or a resume; Message says what runs where.
	EventRunStart EventType = "run-start"
	// EventStepStart is a step about to run (after its when and require).
	EventStepStart EventType = "step-start"
	// EventStepEnd is a step's outcome: Status is a StepStatus.
	EventStepEnd EventType = "step-end"
	// EventPlan is a write step's plan, with its Changes.
	EventPlan EventType = "plan"
	// EventGuard is a runbook guard: Status is "passed" or "refused".
	EventGuard EventType = "guard"
	// EventRunEnd closes the run: Status is a RunStatus, Message the error.
	EventRunEnd EventType = "run-end"
)

// Event is one line of `--output json`: newline-delimited JSON on
// Runner.Output, secrets masked.
type Event struct {
	Time time.Time `json:"time"`
	// Run is the run id.
	Run  string    `json:"run"`
	Type EventType `json:"type"`
	// Step, Index (1-based) and Total place a step event.
	Step   string `json:"step,omitempty"`
	Index  int    `json:"index,omitempty"`
	Total  int    `json:"total,omitempty"`
	Effect Effect `json:"effect,omitempty"`
	// Status is a StepStatus in step-end and guard events, a RunStatus in run-end.
	Status string `json:"status,omitempty"`
	// ElapsedMS is how long the step or run took, in milliseconds.
	ElapsedMS float64 `json:"elapsed_ms,omitempty"`
	// Message says more for people: the outcome, a plan's summary, an error.
	Message string `json:"message,omitempty"`
	// Changes are a plan's changes in plan events.
	Changes []Change `json:"changes,omitempty"`
}

// reporter writes events (NDJSON) and human progress lines, both redacted.
type reporter struct {
	mu       sync.Mutex
	run      string
	events   io.Writer // nil: no events
	progress io.Writer // nil: no progress
	color    bool
	redact   *Redactor
	clock    func() time.Time
	total    int
}

// event writes e as one JSON line.
func (p *reporter) event(e Event) {
	if p.events == nil {
		return
	}
	e.Time = p.clock().UTC()
	e.Run = p.run
	if e.Index > 0 {
		e.Total = p.total
	}
	e.Message = p.redact.String(e.Message)
	b, err := p.redact.marshal(e)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events.Write(append(b, '\n'))
}

// printf writes a line of human progress.
func (p *reporter) printf(format string, args ...any) {
	if p.progress == nil {
		return
	}
	s := p.redact.String(fmt.Sprintf(format, args...))
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	io.WriteString(p.progress, s)
}

// ANSI colors for progress output.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiDim    = "\x1b[2m"
)

func (p *reporter) paint(color, s string) string {
	if !p.color || s == "" {
		return s
	}
	return color + s + ansiReset
}

// stepLine prints `[n/m] <effect> <id>: <result> (<elapsed>)`.
func (p *reporter) stepLine(index int, st *Step, status StepStatus, result string, elapsed time.Duration) {
	if p.progress == nil {
		return
	}
	color := ansiDim
	switch status {
	case StepDone:
		color = ansiGreen
	case StepPlanned:
		color = ansiCyan
	case StepFailed, StepRefused, StepAssertFailed, StepUnknown:
		color = ansiRed
	}
	p.printf("[%d/%d] %s %s: %s (%s)", index, p.total, effectOf(st), p.paint(ansiBold, st.ID),
		p.paint(color, result), formatElapsed(elapsed))
}

// planLines prints a plan's changes as a diff:
//
//	~ update <object>
//	    - before
//	    + after
func (p *reporter) planLines(pl *Plan) {
	if p.progress == nil || pl == nil {
		return
	}
	var b strings.Builder
	for _, c := range pl.Changes {
		sym, color := actionSymbol(c.Action)
		fmt.Fprintf(&b, "  %s %s %s\n", p.paint(color, sym), c.Action, c.Object)
		for _, l := range splitLines(c.Before) {
			fmt.Fprintf(&b, "      %s\n", p.paint(ansiRed, "- "+l))
		}
		for _, l := range splitLines(c.After) {
			fmt.Fprintf(&b, "      %s\n", p.paint(ansiGreen, "+ "+l))
		}
	}
	if b.Len() > 0 {
		p.printf("%s", b.String())
	}
}

func actionSymbol(action string) (string, string) {
	switch action {
	case "create":
		return "+", ansiGreen
	case "delete":
		return "-", ansiRed
	case "replace":
		return "±", ansiYellow
	case "run":
		return ">", ansiYellow
	default:
		return "~", ansiYellow
	}
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// formatElapsed prints a duration for people: 850µs, 12ms, 1.2s, 3m4s.
func formatElapsed(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func elapsedMS(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)) / float64(time.Millisecond)
}
