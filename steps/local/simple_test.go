package local

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"runbook/engine"
)

func TestAssert(t *testing.T) {
	tests := []struct {
		name    string
		p       assertParams
		wantErr string
	}{
		{"true passes", assertParams{That: true, Message: "never shown"}, ""},
		{"false fails with the message", assertParams{That: false, Message: "expected one TenantCredential"}, "step step: assertion failed: expected one TenantCredential"},
		{"false without a message", assertParams{That: false}, "step step: assertion failed: the condition is false"},
		{"message is redacted", assertParams{That: false, Message: "bad password hunter2"}, "step step: assertion failed: bad password ***"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, out := testEnv(t, "hunter2")
			_, err := runAssert(context.Background(), env, &tc.p)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			var ae *engine.AssertionError
			if err != nil && !errors.As(err, &ae) {
				t.Errorf("error %T is not an *engine.AssertionError; a check runbook would not exit %d", err, engine.ExitAssertionFailed)
			}
			if out.Len() != 0 {
				t.Errorf("assert printed %q", out)
			}
		})
	}
}

// BenchmarkAssert measures the step function; the engine's budget for an
// assert step is 50 µs in all.
func BenchmarkAssert(b *testing.B) {
	env := &engine.Env{Redact: strings.NewReplacer("s3cret", "***").Replace}
	ctx := context.Background()
	pass := &assertParams{That: true, Message: "m"}
	fail := &assertParams{That: false, Message: "m"}
	b.Run("pass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := runAssert(ctx, env, pass); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fail", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := runAssert(ctx, env, fail); err == nil {
				b.Fatal("no error")
			}
		}
	})
}

func TestNote(t *testing.T) {
	tests := []struct {
		message, want string
	}{
		{"snapshots taken at 10:00", "snapshots taken at 10:00"},
		{"password is hunter2!", "password is ***!"},
		{"two\nlines", "two\nlines"},
	}
	for _, tc := range tests {
		env, out := testEnv(t, "hunter2")
		got, err := runNote(context.Background(), env, &noteParams{Message: tc.message})
		if err != nil {
			t.Fatal(err)
		}
		if got.Message != tc.want {
			t.Errorf("output message %q, want %q", got.Message, tc.want)
		}
		if out.String() != tc.want+"\n" {
			t.Errorf("printed %q, want %q", out, tc.want+"\n")
		}
	}
	// An Env without Out or Redact (as in a quiet run) still works.
	if got, err := runNote(context.Background(), &engine.Env{}, &noteParams{Message: "m"}); err != nil || got.Message != "m" {
		t.Errorf("bare Env: %v, %v", got, err)
	}
}

func TestSleep(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		d       time.Duration
		dry     bool
		wantErr error
		logged  string
	}{
		{"short sleep", context.Background(), time.Millisecond, false, nil, ""},
		{"zero", context.Background(), 0, false, nil, ""},
		// Would block the test for an hour if it did not honour these.
		{"interrupted", canceled, time.Hour, false, context.Canceled, ""},
		{"dry-run does not wait", context.Background(), time.Hour, true, nil, "would wait 1h0m0s\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, out := testEnv(t)
			env.DryRun = tc.dry
			_, err := runSleep(tc.ctx, env, &sleepParams{Duration: tc.d})
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if out.String() != tc.logged {
				t.Errorf("printed %q, want %q", out, tc.logged)
			}
		})
	}
	env, _ := testEnv(t)
	if _, err := runSleep(context.Background(), env, &sleepParams{Duration: -time.Second}); err == nil {
		t.Error("negative duration: no error")
	}
}

func TestSleepDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	env, _ := testEnv(t)
	_, err := runSleep(ctx, env, &sleepParams{Duration: time.Hour})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want deadline exceeded", err)
	}
}

// fakePrompter answers Confirm with a fixed answer or error and records
// the questions it was asked.
type fakePrompter struct {
	answer bool
	err    error
	asked  []string
}

func (f *fakePrompter) Confirm(_ context.Context, q string) (bool, error) {
	f.asked = append(f.asked, q)
	return f.answer, f.err
}

func (f *fakePrompter) Secret(context.Context, string) (string, error) {
	return "", errors.New("not asked in these tests")
}

func TestConfirm(t *testing.T) {
	yes, no := true, false
	const prompt = "Offline snapshots of every node taken?"
	tests := []struct {
		name      string
		yes       bool
		answer    *bool
		prompter  *fakePrompter
		noPrompt  bool // Env.Prompter stays nil
		wantErr   string
		wantAsked bool
	}{
		{name: "--yes answers without asking", yes: true, prompter: &fakePrompter{err: errors.New("must not be asked")}},
		{name: "answer true", answer: &yes, prompter: &fakePrompter{err: errors.New("must not be asked")}},
		{name: "answer false declines even with --yes", yes: true, answer: &no, prompter: &fakePrompter{answer: true},
			wantErr: "operator declined: " + prompt + " (answer: false)"},
		{name: "operator says yes", prompter: &fakePrompter{answer: true}, wantAsked: true},
		{name: "operator says no", prompter: &fakePrompter{answer: false}, wantAsked: true,
			wantErr: "operator declined: " + prompt},
		{name: "no terminal fails closed", prompter: &fakePrompter{err: errors.New("stdin is not a terminal")}, wantAsked: true,
			wantErr: `ask "` + prompt + `": stdin is not a terminal; pass --yes to answer yes without a terminal`},
		{name: "no prompter fails closed", noPrompt: true, wantErr: "pass --yes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(t)
			env.Yes = tc.yes
			if !tc.noPrompt {
				env.Prompter = tc.prompter
			}
			got, err := askConfirm(context.Background(), env, &confirmParams{Prompt: prompt, Answer: tc.answer})
			if tc.wantErr == "" {
				if err != nil || !got.Confirmed {
					t.Fatalf("got %+v, %v; want confirmed", got, err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if got.Confirmed {
					t.Error("confirmed with an error")
				}
			}
			if tc.prompter != nil {
				if asked := len(tc.prompter.asked) > 0; asked != tc.wantAsked {
					t.Errorf("asked %v, want %v", tc.prompter.asked, tc.wantAsked)
				} else if asked && tc.prompter.asked[0] != prompt {
					t.Errorf("asked %q, want %q", tc.prompter.asked[0], prompt)
				}
			}
		})
	}
}

// TestConfirmEngineNoTerminal uses the engine's own fail-closed prompter.
func TestConfirmEngineNoTerminal(t *testing.T) {
	env, _ := testEnv(t, "hunter2")
	env.Prompter = engine.NoTerminal{}
	_, err := askConfirm(context.Background(), env, &confirmParams{Prompt: "go on with hunter2?"})
	if err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("error %v, want a hint to pass --yes", err)
	}
	if strings.Count(err.Error(), "--yes") != 1 {
		t.Errorf("hint repeated: %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("secret in error: %v", err)
	}
}
