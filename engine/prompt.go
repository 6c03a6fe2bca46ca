package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// NoTerminal is the Prompter of a run without a person at a terminal. It
// fails closed: every question is an error telling how to answer instead.
type NoTerminal struct{}

// Confirm fails: there is no one to ask.
func (NoTerminal) Confirm(_ context.Context, question string) (bool, error) {
	return false, fmt.Errorf("no terminal to ask %q; pass --yes or answer with a param", question)
}

// Secret fails: there is no one to ask.
func (NoTerminal) Secret(_ context.Context, question string) (string, error) {
	return "", fmt.Errorf("no terminal to ask %q; pass the value with a param (from the environment or a file)", question)
}

// yesPrompter answers yes to every confirmation (--yes) and passes secret
// questions on.
type yesPrompter struct{ Prompter }

// Confirm answers yes.
func (yesPrompter) Confirm(context.Context, string) (bool, error) { return true, nil }

// TerminalPrompter asks the person at a terminal. Answers are read line by
// line from In; questions are written to Out. Secrets are read without echo
// when In is a terminal.
type TerminalPrompter struct {
	In  io.Reader
	Out io.Writer

	mu   sync.Mutex
	r    *bufio.Reader
	fd   int
	isTT bool
	// abandoned is set when a cancelled question left a read behind; the
	// reader is then no longer ours to use.
	abandoned bool
}

// NewTerminalPrompter returns a prompter that reads answers from in and
// writes questions to out. When in is an *os.File on a terminal, secrets
// are read without echo.
func NewTerminalPrompter(in io.Reader, out io.Writer) *TerminalPrompter {
	p := &TerminalPrompter{In: in, Out: out, r: bufio.NewReader(in), fd: -1}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.fd, p.isTT = int(f.Fd()), true
	}
	return p
}

// OpenTerminal returns a prompter on the controlling terminal (/dev/tty),
// which works when stdin and stdout are redirected, or NoTerminal when the
// process has none. Close the returned prompter when done.
func OpenTerminal() (Prompter, func() error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return NoTerminal{}, func() error { return nil }
	}
	return NewTerminalPrompter(tty, tty), tty.Close
}

// Confirm asks a yes/no question; only y or yes (any case) is yes, and an
// empty answer is no.
func (p *TerminalPrompter) Confirm(ctx context.Context, question string) (bool, error) {
	ans, err := p.ask(ctx, question+" [y/N] ", false)
	if err != nil {
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(ans)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// Secret asks for a value without echoing it on a terminal.
func (p *TerminalPrompter) Secret(ctx context.Context, question string) (string, error) {
	ans, err := p.ask(ctx, question+": ", true)
	if err != nil {
		return "", err
	}
	return ans, nil
}

// ask writes the question and reads one answer. A cancelled context returns
// at once and leaves the prompter unusable, since a read is still pending.
func (p *TerminalPrompter) ask(ctx context.Context, prompt string, secret bool) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.abandoned {
		return "", errors.New("ask: an earlier question was cancelled while reading the terminal")
	}
	if p.r == nil {
		p.r = bufio.NewReader(p.In)
	}
	if _, err := io.WriteString(p.Out, prompt); err != nil {
		return "", fmt.Errorf("ask: %w", err)
	}
	type answer struct {
		s   string
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		if secret && p.isTT {
			b, err := term.ReadPassword(p.fd)
			io.WriteString(p.Out, "\n") // the newline was not echoed
			ch <- answer{string(b), err}
			return
		}
		s, err := p.r.ReadString('\n')
		if errors.Is(err, io.EOF) && s != "" {
			err = nil
		}
		ch <- answer{strings.TrimRight(s, "\r\n"), err}
	}()
	select {
	case <-ctx.Done():
		p.abandoned = true
		return "", ctx.Err()
	case a := <-ch:
		if errors.Is(a.err, io.EOF) {
			return "", errors.New("ask: no answer (end of input)")
		}
		if a.err != nil {
			return "", fmt.Errorf("ask: %w", a.err)
		}
		return a.s, nil
	}
}

// Interface guards.
var (
	_ Prompter = NoTerminal{}
	_ Prompter = yesPrompter{}
	_ Prompter = (*TerminalPrompter)(nil)
)
