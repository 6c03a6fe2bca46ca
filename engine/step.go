package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Effect says what a step type does to the target.
type Effect string

const (
	// EffectRead never changes the target; read steps run for real in a dry-run.
	EffectRead Effect = "read"
	// EffectWrite changes the target; write steps implement Plan, Apply and Check.
	EffectWrite Effect = "write"
	// EffectInteractive asks a person; it fails closed without a terminal unless --yes.
	EffectInteractive Effect = "interactive"
)

// Spec names and documents a step type.
type Spec struct {
	// ID is the dotted id runbooks use in `uses:`, such as "ldap.search".
	ID string
	// Summary is one sentence for listings, the schema and generated docs.
	Summary string
	// Doc is optional longer Markdown for generated docs.
	Doc string
}

// Env is what a step sees while it runs. The engine builds one per step.
type Env struct {
	// RunID is the id of the run, as `runbook runs` lists it.
	RunID string
	// RunDir is the run's folder under the state dir.
	RunDir string
	// BackupDir is where a write step's Backup saves what Apply will change.
	// It exists and is specific to this step.
	BackupDir string
	// StepID is the id of the running step.
	StepID string
	// Target gives access to the target; steps that need connections
	// type-assert it to the interface their family defines. It is nil when the
	// run has no target.
	Target Target
	// Facts are the target's facts, as expressions see them.
	Facts Facts
	// DryRun is true while planning: read steps run, write steps only Plan.
	DryRun bool
	// Yes is true when the operator gave --yes.
	Yes bool
	// Prompter asks the person at the terminal; it fails closed when there is none.
	Prompter Prompter
	// Out receives human-readable text a step wants the operator to see
	// (notes, reports). It is already redacted.
	Out io.Writer
	// Redact hides every secret in s. Steps call it on anything they write
	// to files in the run folder.
	Redact func(s string) string
	// Secrets are the secret values of this run, for steps that must refuse
	// to pass them on unsafely (for example in a child's argv).
	Secrets []string
	// Now returns the run's current time; steps use it for expiry so that a
	// rehearsal with a fixed clock sees the same days left as the plan did.
	Now func() time.Time
}

// Time returns the run's current time, or time.Now when the engine set no clock.
func (e *Env) Time() time.Time {
	if e == nil || e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// Logf writes one line of progress text for the operator.
func (e *Env) Logf(format string, args ...any) {
	if e.Out == nil {
		return
	}
	s := fmt.Sprintf(format, args...)
	if e.Redact != nil {
		s = e.Redact(s)
	}
	fmt.Fprintln(e.Out, s)
}

// Prompter asks a person. Implementations fail closed (return an error) when
// there is no terminal.
type Prompter interface {
	// Confirm asks a yes/no question; false means no.
	Confirm(ctx context.Context, question string) (bool, error)
	// Secret asks for a value that is not echoed.
	Secret(ctx context.Context, question string) (string, error)
}

// Target is the system a run acts on. Step families define richer interfaces
// (connections per node) and type-assert Env.Target to them. A target that
// also has a `Secrets() []string` method (the passwords of its profile) has
// those masked wherever the run writes, like secret params.
type Target interface {
	// Name identifies the target in journals and plans, e.g. "lab:sts-expired".
	Name() string
	// Facts reads what guards and expressions see as facts.
	Facts(ctx context.Context) (Facts, error)
	// Close releases connections.
	Close() error
}

// Facts are what the engine knows about the target before any step runs.
// Expressions read them as facts.<name>.
type Facts struct {
	// Target is the target's name.
	Target string `json:"target" expr:"target"`
	// Domain is the SSO domain name, e.g. vsphere.local.
	Domain string `json:"domain" expr:"domain"`
	// DomainDN is the SSO domain as an LDAP DN, e.g. dc=vsphere,dc=local.
	DomainDN string `json:"domainDN" expr:"domainDN"`
	// Site is the SSO site of the first node.
	Site string `json:"site" expr:"site"`
	// PNID is the first node's primary network identifier.
	PNID string `json:"pnid" expr:"pnid"`
	// NodeType is embedded, infrastructure or management.
	NodeType string `json:"nodeType" expr:"nodeType"`
	// MachineID is the first node's machine id.
	MachineID string `json:"machineID" expr:"machineID"`
	// IP is the first node's IP address.
	IP string `json:"ip" expr:"ip"`
	// DCName is the PSC (domain controller) the first node uses.
	DCName string `json:"dcName" expr:"dcName"`
	// Nodes lists every node of the target.
	Nodes []NodeFacts `json:"nodes" expr:"nodes"`
}

// NodeFacts describe one node of the target.
type NodeFacts struct {
	PNID      string `json:"pnid" expr:"pnid"`
	NodeType  string `json:"nodeType" expr:"nodeType"`
	MachineID string `json:"machineID" expr:"machineID"`
	IP        string `json:"ip" expr:"ip"`
	Site      string `json:"site" expr:"site"`
	// Reachable is false for a node that could not be reached when the
	// facts were read (only PNID, IP and Error are set then).
	Reachable bool `json:"reachable" expr:"reachable"`
	// Error says why an unreachable node could not be reached.
	Error string `json:"error,omitempty" expr:"error"`
}

// Plan is what a write step would change, computed from reads of the target.
type Plan struct {
	// Summary says in one line what the step would do.
	Summary string `json:"summary"`
	// Changes lists each change, before and after.
	Changes []Change `json:"changes,omitempty"`
	// InPlace is true when the change is already in place and Apply would do nothing.
	InPlace bool `json:"inPlace,omitempty"`
	// Facts is what the plan relied on. Its digest goes into a saved plan;
	// `run --plan` recomputes the plan and refuses it when the digest differs.
	// When nil, the digest covers Changes.
	Facts any `json:"-"`
}

// Change is one before → after difference on the target.
type Change struct {
	// Action is create, update, delete, replace or run.
	Action string `json:"action"`
	// Object names what changes, e.g. "vcsa1.lab.test ldap cn=TenantCredential-1,…".
	Object string `json:"object"`
	// Before is the current state ("" for create).
	Before string `json:"before,omitempty"`
	// After is the state Apply would leave ("" for delete).
	After string `json:"after,omitempty"`
}

// CheckState is Check's answer to "has the change already happened?".
type CheckState int

const (
	// NotApplied means the change is not in place.
	NotApplied CheckState = iota
	// Applied means the change is in place.
	Applied
	// Unknown means the step cannot tell; resume stops and says so.
	Unknown
)

func (s CheckState) String() string {
	switch s {
	case Applied:
		return "applied"
	case NotApplied:
		return "not applied"
	default:
		return "unknown"
	}
}

// Verdict is what Check found, with the outputs the step would have produced
// when the change is in place.
type Verdict[O any] struct {
	State   CheckState
	Detail  string
	Outputs O
}

// Read is a step type that never changes the target.
type Read[P, O any] struct {
	Spec
	// Run reads and returns outputs.
	Run func(ctx context.Context, env *Env, p *P) (O, error)
}

// Write is a step type that changes the target.
type Write[P, O any] struct {
	Spec
	// Plan computes from reads what Apply would change. It must not change anything.
	Plan func(ctx context.Context, env *Env, p *P) (Plan, error)
	// Backup saves, into env.BackupDir, everything Apply will change, and
	// returns the files it wrote. It runs after the intent record is durable
	// and before Apply.
	Backup func(ctx context.Context, env *Env, p *P) ([]string, error)
	// Apply makes the change.
	Apply func(ctx context.Context, env *Env, p *P) (O, error)
	// Check reports whether the change is in place. It is asked on resume about
	// an interrupted step and after Apply to verify it.
	Check func(ctx context.Context, env *Env, p *P) (Verdict[O], error)
	// ReadOnly, when set, says for the given (load-time) params that this use
	// of the step only reads, as `exec` with `effect: read` does. Interpolated
	// fields are zero when it is called.
	ReadOnly func(p *P) bool
}

// Interactive is a step type that asks a person.
type Interactive[P, O any] struct {
	Spec
	// Ask puts the question through env.Prompter, or answers from params.
	Ask func(ctx context.Context, env *Env, p *P) (O, error)
}

// StepType is a registered step type. Only Read, Write and Interactive
// implement it.
type StepType interface {
	// Describe returns the step type's spec and effect.
	Describe() Spec
	// Effect is the step type's effect.
	Effect() Effect
	// ParamsType is the params struct type (not a pointer).
	ParamsType() reflect.Type
	// OutputsType is the outputs struct type (not a pointer).
	OutputsType() reflect.Type

	// effectFor resolves the effect for load-time params (a *P).
	effectFor(p any) Effect
	// run calls Read.Run, Write.Apply or Interactive.Ask.
	run(ctx context.Context, env *Env, p any) (any, error)
	// plan calls Write.Plan.
	plan(ctx context.Context, env *Env, p any) (Plan, error)
	// backup calls Write.Backup.
	backup(ctx context.Context, env *Env, p any) ([]string, error)
	// check calls Write.Check and returns the state, detail and outputs.
	check(ctx context.Context, env *Env, p any) (CheckState, string, any, error)
}

func typeOf[T any]() reflect.Type { return reflect.TypeOf((*T)(nil)).Elem() }

// Describe returns the spec.
func (s Read[P, O]) Describe() Spec { return s.Spec }

// Effect is read.
func (s Read[P, O]) Effect() Effect { return EffectRead }

// ParamsType returns the type of P.
func (s Read[P, O]) ParamsType() reflect.Type { return typeOf[P]() }

// OutputsType returns the type of O.
func (s Read[P, O]) OutputsType() reflect.Type { return typeOf[O]() }

func (s Read[P, O]) effectFor(any) Effect { return EffectRead }

func (s Read[P, O]) run(ctx context.Context, env *Env, p any) (any, error) {
	return s.Run(ctx, env, p.(*P))
}

func (s Read[P, O]) plan(context.Context, *Env, any) (Plan, error) {
	return Plan{}, fmt.Errorf("step type %s is not a write step", s.ID)
}

func (s Read[P, O]) backup(context.Context, *Env, any) ([]string, error) { return nil, nil }

func (s Read[P, O]) check(context.Context, *Env, any) (CheckState, string, any, error) {
	return Unknown, "", nil, fmt.Errorf("step type %s is not a write step", s.ID)
}

// Describe returns the spec.
func (s Write[P, O]) Describe() Spec { return s.Spec }

// Effect is write.
func (s Write[P, O]) Effect() Effect { return EffectWrite }

// ParamsType returns the type of P.
func (s Write[P, O]) ParamsType() reflect.Type { return typeOf[P]() }

// OutputsType returns the type of O.
func (s Write[P, O]) OutputsType() reflect.Type { return typeOf[O]() }

func (s Write[P, O]) effectFor(p any) Effect {
	if s.ReadOnly != nil && p != nil && s.ReadOnly(p.(*P)) {
		return EffectRead
	}
	return EffectWrite
}

func (s Write[P, O]) run(ctx context.Context, env *Env, p any) (any, error) {
	return s.Apply(ctx, env, p.(*P))
}

func (s Write[P, O]) plan(ctx context.Context, env *Env, p any) (Plan, error) {
	return s.Plan(ctx, env, p.(*P))
}

func (s Write[P, O]) backup(ctx context.Context, env *Env, p any) ([]string, error) {
	if s.Backup == nil {
		return nil, nil
	}
	return s.Backup(ctx, env, p.(*P))
}

func (s Write[P, O]) check(ctx context.Context, env *Env, p any) (CheckState, string, any, error) {
	v, err := s.Check(ctx, env, p.(*P))
	return v.State, v.Detail, v.Outputs, err
}

// Describe returns the spec.
func (s Interactive[P, O]) Describe() Spec { return s.Spec }

// Effect is interactive.
func (s Interactive[P, O]) Effect() Effect { return EffectInteractive }

// ParamsType returns the type of P.
func (s Interactive[P, O]) ParamsType() reflect.Type { return typeOf[P]() }

// OutputsType returns the type of O.
func (s Interactive[P, O]) OutputsType() reflect.Type { return typeOf[O]() }

func (s Interactive[P, O]) effectFor(any) Effect { return EffectInteractive }

func (s Interactive[P, O]) run(ctx context.Context, env *Env, p any) (any, error) {
	return s.Ask(ctx, env, p.(*P))
}

func (s Interactive[P, O]) plan(context.Context, *Env, any) (Plan, error) {
	return Plan{}, fmt.Errorf("step type %s is not a write step", s.ID)
}

func (s Interactive[P, O]) backup(context.Context, *Env, any) ([]string, error) { return nil, nil }

func (s Interactive[P, O]) check(context.Context, *Env, any) (CheckState, string, any, error) {
	return Unknown, "", nil, fmt.Errorf("step type %s is not a write step", s.ID)
}

// Registry holds step types by id.
type Registry struct {
	mu    sync.RWMutex
	types map[string]StepType
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]StepType{}} }

var idPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// Register adds a step type. It panics on a programmer error: a malformed or
// duplicate id, params or outputs that are not structs, or a write step
// without Plan, Apply or Check.
func (r *Registry) Register(t StepType) {
	s := t.Describe()
	if !idPattern.MatchString(s.ID) {
		panic(fmt.Sprintf("engine: step type id %q is not dotted lower-case", s.ID))
	}
	if t.ParamsType().Kind() != reflect.Struct || t.OutputsType().Kind() != reflect.Struct {
		panic(fmt.Sprintf("engine: step type %s: params and outputs must be structs", s.ID))
	}
	if s.Summary == "" {
		panic(fmt.Sprintf("engine: step type %s has no summary", s.ID))
	}
	if err := validateFuncs(t); err != nil {
		panic(fmt.Sprintf("engine: step type %s: %v", s.ID, err))
	}
	if err := checkTags(t.ParamsType(), t.OutputsType()); err != nil {
		panic(fmt.Sprintf("engine: step type %s: %v", s.ID, err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.types[s.ID]; dup {
		panic(fmt.Sprintf("engine: step type %s registered twice", s.ID))
	}
	r.types[s.ID] = t
}

// validateFuncs checks through reflection that the function fields a step
// type needs are set.
func validateFuncs(t StepType) error {
	v := reflect.ValueOf(t)
	need := map[Effect][]string{
		EffectRead:        {"Run"},
		EffectWrite:       {"Plan", "Apply", "Check"},
		EffectInteractive: {"Ask"},
	}[t.Effect()]
	for _, name := range need {
		if f := v.FieldByName(name); !f.IsValid() || f.IsNil() {
			return fmt.Errorf("%s is not set", name)
		}
	}
	return nil
}

// checkTags checks the tag conventions the loader, the schema and
// expressions rely on: every params field, in nested structs too, has a
// yaml key and a doc sentence; every outputs field, in nested structs too, has the same json
// and expr name.
func checkTags(params, outputs reflect.Type) error {
	var errs []error
	seenParams := map[reflect.Type]bool{}
	var fields func(reflect.Type)
	fields = func(st reflect.Type) {
		for st.Kind() == reflect.Slice || st.Kind() == reflect.Pointer || st.Kind() == reflect.Map {
			st = st.Elem()
		}
		if st.Kind() != reflect.Struct || st == reflect.TypeFor[time.Time]() || seenParams[st] {
			return
		}
		seenParams[st] = true
		for i := range st.NumField() {
			f := st.Field(i)
			if f.Anonymous && strings.Contains(f.Tag.Get("yaml"), "inline") {
				fields(f.Type) // an embedded struct's fields are the step's own
				continue
			}
			if f.Tag.Get("yaml") == "" {
				errs = append(errs, fmt.Errorf("params field %s has no yaml tag", f.Name))
			}
			if doc := f.Tag.Get("doc"); doc == "" || !strings.HasSuffix(doc, ".") {
				errs = append(errs, fmt.Errorf("params field %s: doc %q is not a sentence", f.Name, doc))
			}
			fields(f.Type) // a list of objects: its fields are params too
		}
	}
	fields(params)
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(st reflect.Type) {
		for st.Kind() == reflect.Slice || st.Kind() == reflect.Pointer || st.Kind() == reflect.Map {
			st = st.Elem()
		}
		if st.Kind() != reflect.Struct || st == reflect.TypeFor[time.Time]() || seen[st] {
			return
		}
		seen[st] = true
		for i := range st.NumField() {
			f := st.Field(i)
			if !f.IsExported() {
				continue
			}
			if j, e := f.Tag.Get("json"), f.Tag.Get("expr"); j == "" || strings.Split(j, ",")[0] != e {
				errs = append(errs, fmt.Errorf("outputs field %s.%s: json %q and expr %q differ", st.Name(), f.Name, j, e))
			}
			walk(f.Type)
		}
	}
	walk(outputs)
	return errors.Join(errs...)
}

// Lookup returns the step type registered under id.
func (r *Registry) Lookup(id string) (StepType, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.types[id]
	return t, ok
}

// IDs returns every registered id, sorted.
func (r *Registry) IDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, 0, len(r.types))
	for id := range r.types {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
