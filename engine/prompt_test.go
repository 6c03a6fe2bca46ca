package engine

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestTerminalPrompterConfirm(t *testing.T) {
	tests := []struct {
		in      string
		want    bool
		wantErr string
	}{
		{in: "y\n", want: true},
		{in: "YES\n", want: true},
		{in: " yes \r\n", want: true},
		{in: "n\n"},
		{in: "\n"},
		{in: "yep\n"},
		{in: "y", want: true}, // last line without a newline
		{in: "", wantErr: "no answer"},
	}
	for _, tc := range tests {
		t.Run(strings.TrimSpace(tc.in), func(t *testing.T) {
			var out bytes.Buffer
			p := NewTerminalPrompter(strings.NewReader(tc.in), &out)
			got, err := p.Confirm(t.Context(), "Snapshots taken?")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Confirm = %v, %v; want %v", got, err, tc.want)
			}
			if out.String() != "Snapshots taken? [y/N] " {
				t.Errorf("asked %q", out.String())
			}
		})
	}
}

func TestTerminalPrompterSecretAndSequence(t *testing.T) {
	var out bytes.Buffer
	p := NewTerminalPrompter(strings.NewReader("s3cret\ny\n"), &out)
	s, err := p.Secret(t.Context(), "SSO password")
	if err != nil || s != "s3cret" {
		t.Fatalf("Secret = %q, %v", s, err)
	}
	yes, err := p.Confirm(t.Context(), "Go on?")
	if err != nil || !yes {
		t.Fatalf("Confirm = %v, %v", yes, err)
	}
	if out.String() != "SSO password: Go on? [y/N] " {
		t.Errorf("asked %q", out.String())
	}
}

func TestTerminalPrompterCancel(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	p := NewTerminalPrompter(r, io.Discard)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := p.Confirm(ctx, "Wait?"); err != context.DeadlineExceeded {
		t.Fatalf("err = %v, want the context's", err)
	}
	if _, err := p.Confirm(t.Context(), "Again?"); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("after a cancelled question: %v", err)
	}
}

func TestNoTerminal(t *testing.T) {
	_, err := NoTerminal{}.Confirm(t.Context(), "Snapshots taken?")
	if err == nil || err.Error() != `no terminal to ask "Snapshots taken?"; pass --yes or answer with a param` {
		t.Errorf("Confirm: %v", err)
	}
	if _, err := (NoTerminal{}).Secret(t.Context(), "password"); err == nil {
		t.Error("Secret without a terminal did not fail")
	}
	// --yes answers confirmations, never secrets.
	y := yesPrompter{NoTerminal{}}
	if ok, err := y.Confirm(t.Context(), "x"); !ok || err != nil {
		t.Errorf("yes Confirm = %v, %v", ok, err)
	}
	if _, err := y.Secret(t.Context(), "password"); err == nil {
		t.Error("--yes answered a secret")
	}
}
