package certmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// timing bounds how long the console waits for certificate-manager.
type timing struct {
	// settle is how long a prompt must stay the end of the output before
	// it is answered: a prompt is only answered once complete.
	settle time.Duration
	// unknown is how long the program may sit after printing a partial
	// line that is no known prompt before that line counts as a question
	// the step does not know.
	unknown time.Duration
	// stall is how long the program may print nothing before the
	// operation was confirmed; once it runs (services restart for
	// minutes) only ctx bounds it.
	stall time.Duration
	// exit is how long a program stopped with Ctrl-D has to end.
	exit time.Duration
}

// defaultTiming suits a real appliance: certificate-manager checks the
// password with dir-cli before its next prompt, which takes seconds. A
// prompt is matched on its whole known text, so settle only has to outlast
// the gap between two chunks of one line.
var defaultTiming = timing{settle: 40 * time.Millisecond, unknown: 20 * time.Second, stall: 3 * time.Minute, exit: 5 * time.Second}

// ctrlD ends certificate-manager at any prompt ("Note : Use Ctrl-D to
// exit.").
const ctrlD = "\x04"

// maxPending bounds the text kept since the last answer; prompts are
// matched at its end.
const maxPending = 64 << 10

// console converses with a program on a terminal: it reads the program's
// output in chunks, answers each prompt through a dialog, and keeps the
// whole output.
type console struct {
	chunks <-chan []byte // closed when the program has ended
	send   func(string) error
	tm     timing
	// onLine is called with each complete line of output (normalized),
	// for progress reports; it may be nil.
	onLine func(string)

	raw     bytes.Buffer // everything printed
	pending string       // raw output since the last answer
	lined   int          // length of normalize(pending) already passed to onLine
}

// converse answers prompts until the program ends (it returns nil) or
// something goes wrong: ctx ends, the dialog refuses, an unknown prompt
// waits, or the program stalls. On a dialog error it sends Ctrl-D and
// gives the program tm.exit to end.
func (c *console) converse(ctx context.Context, d *dialog) error {
	timer := time.NewTimer(c.tm.stall)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case b, ok := <-c.chunks:
			if !ok {
				c.lines(true)
				return nil
			}
			c.add(b)
			c.arm(timer, d)
		case <-timer.C:
			screen := normalize(c.pending, false)
			last := lastLine(screen)
			switch {
			case matches(screen):
				text, err := d.reply(screen)
				if err != nil {
					c.abort(ctx)
					return err
				}
				if err := c.send(text + "\r"); err != nil {
					return fmt.Errorf("answer certificate-manager: %w", err)
				}
				c.pending, c.lined = "", 0
			case c.waitsAtUnknown(last, d):
				c.abort(ctx)
				return &promptError{kind: "unknown", screen: screen,
					detail: fmt.Sprintf("it waits after %q for more than %s", strings.TrimSpace(last), c.tm.unknown)}
			case !d.confirmed:
				c.abort(ctx)
				return fmt.Errorf("certificate-manager printed nothing for %s before the operation started; it was stopped with Ctrl-D. Its screen ended with:\n%s", c.tm.stall, screenTail(c.raw.String(), 8))
			}
			c.arm(timer, d)
		}
	}
}

// add records a chunk of output.
func (c *console) add(b []byte) {
	c.raw.Write(b)
	c.pending += string(b)
	if len(c.pending) > maxPending {
		cut := len(c.pending) - maxPending
		c.pending = c.pending[cut:]
		c.lined = 0 // lines may be reported again after a cut; harmless
	}
	c.lines(false)
}

// lines passes the complete lines not yet reported to onLine.
func (c *console) lines(final bool) {
	if c.onLine == nil {
		return
	}
	text := normalize(c.pending, final)
	if c.lined > len(text) {
		c.lined = 0
	}
	rest := text[c.lined:]
	end := strings.LastIndexByte(rest, '\n')
	if final {
		end = len(rest)
	}
	if end < 0 {
		return
	}
	for _, l := range strings.Split(rest[:end], "\n") {
		if l = strings.TrimSpace(l); l != "" {
			c.onLine(l)
		}
	}
	c.lined += end
}

// arm sets the timer for the state of the screen: a prompt is answered
// after settle, an unknown partial line is given unknown, and before the
// operation is confirmed silence is given stall. While the operation runs
// with nothing pending, no timer runs.
func (c *console) arm(timer *time.Timer, d *dialog) {
	screen := normalize(c.pending, false)
	switch {
	case matches(screen):
		timer.Reset(c.tm.settle)
	case c.waitsAtUnknown(lastLine(screen), d):
		timer.Reset(c.tm.unknown)
	case !d.confirmed:
		timer.Reset(c.tm.stall)
	default:
		timer.Stop()
	}
}

// waitsAtUnknown reports whether a partial last line may be a question
// the step does not know. Before the operation is confirmed any partial
// line may be; once it runs, only one that reads like a question (ends
// in ':' or '?'): certificate-manager leaves its progress line
// unfinished for minutes while services restart, and stopping it then
// would interrupt the operation.
func (c *console) waitsAtUnknown(last string, d *dialog) bool {
	t := strings.TrimSpace(last)
	if t == "" || isProgress(t) {
		return false
	}
	return !d.confirmed || strings.HasSuffix(t, ":") || strings.HasSuffix(t, "?")
}

func matches(screen string) bool {
	_, _, ok := match(screen)
	return ok
}

// abort types Ctrl-D and waits up to tm.exit for the program to end,
// keeping what it prints meanwhile.
func (c *console) abort(ctx context.Context) {
	if err := c.send(ctrlD); err != nil {
		return
	}
	deadline := time.NewTimer(c.tm.exit)
	defer deadline.Stop()
	for {
		select {
		case b, ok := <-c.chunks:
			if !ok {
				return
			}
			c.raw.Write(b)
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// lastLine returns the text after the last line break.
func lastLine(screen string) string {
	return screen[strings.LastIndexByte(screen, '\n')+1:]
}

// isProgress reports whether a partial line is a progress line, which
// certificate-manager leaves unfinished while it works.
func isProgress(line string) bool {
	_, ok := ParseStatus(line)
	return ok
}

// chunkWriter hands what a session writes to a channel, copied; after
// stop, writes are discarded so that the session never blocks on a
// reader that left.
type chunkWriter struct {
	ch   chan []byte
	stop chan struct{}
	once sync.Once
}

func newChunkWriter() *chunkWriter {
	return &chunkWriter{ch: make(chan []byte, 64), stop: make(chan struct{})}
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b := bytes.Clone(p)
	select {
	case w.ch <- b:
	case <-w.stop:
	}
	return len(p), nil
}

func (w *chunkWriter) discard() { w.once.Do(func() { close(w.stop) }) }

// terminalModes ask the remote terminal not to echo: the password is
// typed without echo in any case (certificate-manager reads it with
// getpass), and with echo off no other answer can carry it either.
var terminalModes = ssh.TerminalModes{
	ssh.ECHO:          0,
	ssh.TTY_OP_ISPEED: 38400,
	ssh.TTY_OP_OSPEED: 38400,
}

// session is one run of a program on an SSH PTY.
type session struct {
	sess *ssh.Session
	out  *chunkWriter
	done chan struct{} // closed when Wait has returned
	err  error         // Wait's error, set before done is closed
	in   interface{ Write([]byte) (int, error) }
}

// startSession starts cmd on a PTY of client c.
func startSession(c *ssh.Client, cmd string) (*session, error) {
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	if err := sess.RequestPty("xterm", 50, 250, terminalModes); err != nil {
		sess.Close()
		return nil, fmt.Errorf("request a terminal: %w", err)
	}
	in, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("open stdin: %w", err)
	}
	s := &session{sess: sess, out: newChunkWriter(), done: make(chan struct{}), in: in}
	sess.Stdout, sess.Stderr = s.out, s.out
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start: %w", err)
	}
	go func() {
		s.err = sess.Wait()
		// Wait returns once the output is copied: nothing writes after.
		close(s.out.ch)
		close(s.done)
	}()
	return s, nil
}

func (s *session) send(text string) error {
	_, err := s.in.Write([]byte(text))
	return err
}

// close ends the session and waits, up to wait, for it to be over. It
// returns the program's exit status: -1 when it has none.
func (s *session) close(wait time.Duration) int {
	s.out.discard()
	s.sess.Close()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		return -1
	}
	return exitStatus(s.err)
}

// exitStatus returns the exit status Wait reported, -1 when none.
func exitStatus(err error) int {
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitStatus()
	}
	return -1
}
