package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactor(t *testing.T) {
	tricky := `p"a<s>s\w&rd`
	enc, _ := json.Marshal(map[string]string{"v": "x " + tricky + " y"})
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"plain", []string{"hunter2"}, "pw=hunter2;", "pw=***;"},
		{"every occurrence", []string{"ab"}, "ab-ab-ab", "***-***-***"},
		{"longest first", []string{"abc", "abcdef"}, "abcdef abc", "*** ***"},
		{"empty ignored", []string{""}, "nothing", "nothing"},
		{"JSON escaped", []string{tricky}, string(enc), `{"v":"x *** y"}`},
		{"raw tricky", []string{tricky}, "say " + tricky, "say ***"},
		{"quoted by %q", []string{"a\x01b\"c"}, fmt.Sprintf("refused %q", "a\x01b\"c"), `refused "***"`},
		{"no secrets", nil, "hunter2", "hunter2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRedactor(tc.secrets)
			if got := r.String(tc.in); got != tc.want {
				t.Errorf("String = %q, want %q", got, tc.want)
			}
			if got := string(r.Bytes([]byte(tc.in))); got != tc.want {
				t.Errorf("Bytes = %q, want %q", got, tc.want)
			}
		})
	}
	var nilR *Redactor
	if nilR.String("x") != "x" {
		t.Error("a nil Redactor changed text")
	}
	var b bytes.Buffer
	NewRedactor([]string{"s3"}).Writer(&b).Write([]byte("a s3 b\n"))
	if b.String() != "a *** b\n" {
		t.Errorf("Writer wrote %q", b.String())
	}
}

// TestSecretNeverStored gives a secret through the environment, as the
// CLI does, uses it in every place a run writes, and looks for it in every
// file under the state dir, the plan file, the events and the progress.
func TestSecretNeverStored(t *testing.T) {
	const secret = `Sup3r"Secret<&>\pw`
	h := newHarness(t)
	h.w.write(t, "cfg", "old")
	rb := load(t, h.w, `
params:
  password: {type: secret, description: SSO administrator password}
  user: {type: string, default: administrator}
steps:
  - id: login
    uses: test.echo
    with: {text: "${{ params.user }}:${{ params.password }}"}
  - id: put
    uses: file.write
    with: {path: cfg, content: "pw=${{ params.password }}"}
  - id: again
    uses: test.echo
    on_failure: continue
    when: steps.put.bytes > 0
    with: {text: "${{ steps.login.text }}", fail: true}
  - id: check
    uses: test.noop
    assert:
      - expr: steps.login.text == params.user + ":" + params.password
        message: login echoed the password
`)
	params, err := rb.BindParams(ParamInput{Env: []string{"RUNBOOK_PARAM_PASSWORD=" + secret}})
	if err != nil {
		t.Fatal(err)
	}
	forms := []string{secret, jsonInner(secret, true), jsonInner(secret, false), "Sup3r"}
	look := func(where string, data []byte) {
		t.Helper()
		for _, f := range forms {
			if bytes.Contains(data, []byte(f)) {
				t.Errorf("%s holds the secret (as %q)", where, f)
			}
		}
	}
	planFile := filepath.Join(t.TempDir(), "plan.json")
	dry := h.runner()
	dry.DryRun, dry.SavePlan = true, planFile
	if _, err := dry.Run(t.Context(), rb, params); err != nil {
		t.Fatalf("dry-run: %v", err)
	}
	r := h.runner()
	r.PlanFile = planFile
	res, err := r.Run(t.Context(), rb, params)
	if ExitCode(err) != ExitStepFailed {
		t.Fatalf("run: %v", err)
	}
	look("the error", []byte(err.Error()))
	look("the step's error", []byte(res.Step("again").Err.Error()))
	// The steps saw the real value; the target got it.
	if got, _ := h.w.read("cfg"); got != "pw="+secret {
		t.Fatalf("cfg = %q: the step did not get the secret", got)
	}
	if res.Step("check").Status != StepDone {
		t.Errorf("check = %+v", res.Step("check"))
	}
	var files int
	filepath.WalkDir(h.state, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files++
		look(path, data)
		return nil
	})
	planData, _ := os.ReadFile(planFile)
	look("plan file", planData)
	look("events", h.events.Bytes())
	look("progress", h.progress.Bytes())
	if files < 5 {
		t.Errorf("only %d files under the state dir", files)
	}
	// The secret was there to hide: the places that would hold it hold the mask.
	journal, _ := os.ReadFile(filepath.Join(res.RunDir, JournalFile))
	for where, data := range map[string][]byte{"journal": journal, "plan file": planData, "progress": h.progress.Bytes(), "events": h.events.Bytes()} {
		if !bytes.Contains(data, []byte(Mask)) {
			t.Errorf("%s has no %s", where, Mask)
		}
	}
	if !strings.Contains(h.progress.String(), "echo: administrator:***") {
		t.Errorf("progress:\n%s", h.progress.String())
	}
	if bytes.Contains(journal, []byte(`"password"`)) {
		t.Error("the journal names the secret param in run-start")
	}
}
