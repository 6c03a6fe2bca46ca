package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// PlanFileVersion is the version of the saved plan format.
const PlanFileVersion = 1

// SavedPlan is what `--dry-run --save-plan F` writes and `run --plan F`
// checks: the runbook, the target, the params and, for each step, what the
// dry-run decided and a digest of the facts its plan relied on.
type SavedPlan struct {
	Version int        `json:"version"`
	Runbook RunbookRef `json:"runbook"`
	Target  string     `json:"target"`
	// ParamsDigest covers the non-secret params; secrets never enter a plan.
	ParamsDigest string    `json:"paramsDigest"`
	Created      time.Time `json:"created"`
	// Run is the id of the dry-run that made the plan.
	Run   string        `json:"run"`
	Steps []PlannedStep `json:"steps"`
}

// PlannedStep is one step of a saved plan.
type PlannedStep struct {
	ID     string     `json:"id"`
	Effect Effect     `json:"effect"`
	Status StepStatus `json:"status"`
	// Plan is a write step's plan.
	Plan *Plan `json:"plan,omitempty"`
	// FactsDigest is the SHA-256 of the canonical JSON of the plan's facts
	// (or its changes when it names no facts) and the step's resolved params,
	// secrets masked.
	FactsDigest string `json:"factsDigest,omitempty"`
	// Note says what a reader of the plan should know, such as that a
	// planned step's outputs are zero values in the rest of the dry-run.
	Note string `json:"note,omitempty"`
}

// ReadPlanFile reads a plan file written by a dry-run with SavePlan.
func ReadPlanFile(path string) (*SavedPlan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("read plan: %w", err)}
	}
	var p SavedPlan
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, usageErrorf("read plan %s: %w", path, err)
	}
	if p.Version != PlanFileVersion {
		return nil, usageErrorf("read plan %s: version %d, this engine reads version %d", path, p.Version, PlanFileVersion)
	}
	return &p, nil
}

// writePlan writes p to path as indented JSON with secrets masked, atomically.
func writePlan(path string, p *SavedPlan, red *Redactor) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	if err := writeFileAtomic(path, append(red.Bytes(b), '\n'), 0o600); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file next to path, syncs it and
// renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// canonicalJSON encodes v as JSON with every object's keys sorted and
// numbers as written, so that equal values have equal bytes.
func canonicalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	return json.Marshal(generic) // maps marshal with sorted keys
}

// factsDigest is the digest a saved plan keeps for a planned write step.
func factsDigest(pl *Plan, params any, redact *Redactor) (string, error) {
	var facts any = pl.Changes
	if pl.Facts != nil {
		facts = pl.Facts
	}
	b, err := canonicalJSON(struct {
		Facts  any `json:"facts"`
		Params any `json:"params"`
	}{facts, params})
	if err != nil {
		return "", fmt.Errorf("digest plan facts: %w", err)
	}
	// Masking keeps a hash of a secret out of the plan file.
	sum := sha256.Sum256(redact.Bytes(b))
	return hex.EncodeToString(sum[:]), nil
}

// publicParams returns params without the runbook's secret params.
func publicParams(rb *Runbook, params map[string]any) map[string]any {
	secret := map[string]bool{}
	for _, d := range rb.Params {
		if d.Type == ParamSecret {
			secret[d.Name] = true
		}
	}
	out := make(map[string]any, len(params))
	for k, v := range params {
		if !secret[k] {
			out[k] = v
		}
	}
	return out
}

// paramsDigest digests the non-secret params.
func paramsDigest(rb *Runbook, params map[string]any, redact *Redactor) (string, error) {
	b, err := canonicalJSON(publicParams(rb, params))
	if err != nil {
		return "", fmt.Errorf("digest params: %w", err)
	}
	sum := sha256.Sum256(redact.Bytes(b))
	return hex.EncodeToString(sum[:]), nil
}

// comparePlans returns a StalePlanError when fresh, a plan just computed,
// differs from saved in anything `run --plan` relies on.
func comparePlans(file string, saved, fresh *SavedPlan) error {
	stale := func(step, format string, args ...any) error {
		return &StalePlanError{Plan: file, Step: step, What: fmt.Sprintf(format, args...)}
	}
	if saved.Runbook.Digest != fresh.Runbook.Digest {
		return stale("", "runbook %s changed since the plan was made", fresh.Runbook.Path)
	}
	if saved.Target != fresh.Target {
		return stale("", "the plan is for target %q, not %q", saved.Target, fresh.Target)
	}
	if saved.ParamsDigest != fresh.ParamsDigest {
		return stale("", "the params differ from the plan's")
	}
	old := map[string]PlannedStep{}
	for _, s := range saved.Steps {
		old[s.ID] = s
	}
	for _, s := range fresh.Steps {
		o, ok := old[s.ID]
		switch {
		case !ok:
			return stale(s.ID, "the step is not in the plan")
		case o.Status != s.Status:
			return stale(s.ID, "was %s, now %s", o.Status, s.Status)
		case o.FactsDigest != s.FactsDigest:
			return stale(s.ID, "the facts its plan relied on changed%s", describeChange(o.Plan, s.Plan))
		}
		delete(old, s.ID)
	}
	if len(old) > 0 {
		ids := make([]string, 0, len(old))
		for id := range old {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		return stale(ids[0], "the step was planned but did not run now")
	}
	return nil
}

// describeChange says how two plans of a step differ, for people.
func describeChange(before, after *Plan) string {
	if before == nil || after == nil {
		return ""
	}
	for i := range min(len(before.Changes), len(after.Changes)) {
		b, a := before.Changes[i], after.Changes[i]
		switch {
		case b.Object != a.Object || b.Action != a.Action:
			return fmt.Sprintf(" (planned %s %s, now %s %s)", b.Action, b.Object, a.Action, a.Object)
		case b.Before != a.Before:
			return fmt.Sprintf(" (%s was %s when planned, now %s)", a.Object, clip(b.Before), clip(a.Before))
		case b.After != a.After:
			return fmt.Sprintf(" (%s would become %s, planned %s)", a.Object, clip(a.After), clip(b.After))
		}
	}
	if len(before.Changes) != len(after.Changes) {
		return fmt.Sprintf(" (planned %d changes, now %d)", len(before.Changes), len(after.Changes))
	}
	return ""
}

// clip quotes s, shortened for a one-line message.
func clip(s string) string {
	const max = 60
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return strconv.Quote(s)
}
