package engine

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// APIVersion is the only runbook format version this engine reads.
const APIVersion = "runbook/v1"

// Pos is a position in a runbook file.
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Runbook is a loaded and checked runbook. Load builds it; Run executes it.
type Runbook struct {
	// Path is where the runbook was read from ("embedded:NAME.yaml" for built-ins).
	Path string
	// Digest is the SHA-256 of the file's bytes, hex; resume refuses a changed runbook.
	Digest string
	// Source is the file's bytes.
	Source []byte

	Name        string
	Title       string
	Description string
	// KB lists the knowledge-base articles the runbook transcribes.
	KB []string
	// Params are the declared parameters, in file order.
	Params []*ParamDecl
	// Lock, when set, is the lock key (may interpolate facts and params).
	Lock *Template
	// Guards refuse the whole run, before any step and in dry-run too.
	Guards []*Condition
	// Steps in file order.
	Steps []*Step
}

// ParamType is the type of a runbook parameter.
type ParamType string

// The parameter types.
const (
	ParamString   ParamType = "string"
	ParamInt      ParamType = "int"
	ParamBool     ParamType = "bool"
	ParamDuration ParamType = "duration"
	ParamList     ParamType = "list"
	ParamEnum     ParamType = "enum"
	ParamSecret   ParamType = "secret"
)

// ParamDecl declares one runbook parameter.
type ParamDecl struct {
	Name        string
	Type        ParamType
	Description string
	// Required params have no default and must be given.
	Required bool
	// Default is the typed default value, or nil.
	Default any
	// Values are the allowed values of an enum.
	Values []string
	Pos    Pos
}

// Condition is a compiled boolean expression with the author's message,
// used by guards, `when`, `require` and `assert`.
type Condition struct {
	Expr    string
	Message string
	Pos     Pos
	program any // compiled expression; owned by the expression code
}

// Template is a compiled string that may hold ${{ }} interpolations.
type Template struct {
	Raw     string
	Pos     Pos
	program any // owned by the expression code
}

// Step is one checked step of a runbook.
type Step struct {
	ID   string
	Name string
	// KB names the KB step this step transcribes, e.g. "76719 step 8".
	KB   string
	Uses string
	Type StepType
	// Effect is the effect of this use of the step type.
	Effect Effect
	When   *Condition
	// Require refuses to run the step (guard refused) when false.
	Require []*Condition
	// Assert fails the step when false after it ran.
	Assert []*Condition
	// With is the raw `with:` mapping; Resolve interpolates and decodes it.
	With      *yaml.Node
	Retry     Retry
	Timeout   time.Duration
	OnFailure OnFailure
	Pos       Pos

	with any // load-time compiled interpolations; owned by the expression code
}

// Retry says how often a failing step is tried.
type Retry struct {
	// Attempts is the total number of tries; 0 and 1 mean one try.
	Attempts int
	Delay    time.Duration
}

// OnFailure says what a failed step does to the run.
type OnFailure string

// The OnFailure values.
const (
	Abort    OnFailure = "abort"
	Continue OnFailure = "continue"
)

// Scope holds the values expressions see at run time.
type Scope struct {
	// Params maps param name to its typed value (secrets as their value).
	Params map[string]any
	// Facts are the target's facts.
	Facts Facts
	// Steps maps step id to the step's outputs (a value of its outputs struct).
	// Steps not run yet or skipped are absent and read as zero values.
	Steps map[string]any

	env *boundEnv // expression environment cached between evaluations; owned by the expression code
}
