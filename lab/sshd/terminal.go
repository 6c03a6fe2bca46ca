package sshd

import (
	"io"
	"sync/atomic"

	"golang.org/x/term"
)

// Terminal is the server side of a session's PTY: it echoes what the client
// types, handles line editing, and translates \n to \r\n on output, like a
// terminal in canonical mode. One goroutine at a time may read from it.
type Terminal struct {
	t    *term.Terminal
	keys *controlKeys
}

func newTerminal(rw io.ReadWriter, columns, rows int) *Terminal {
	keys := &controlKeys{r: rw}
	conn := struct {
		io.Reader
		io.Writer
	}{keys, rw}
	t := &Terminal{t: term.NewTerminal(conn, ""), keys: keys}
	t.setSize(columns, rows)
	return t
}

func (t *Terminal) setSize(columns, rows int) {
	if columns <= 0 {
		columns = 80
	}
	if rows <= 0 {
		rows = 24
	}
	_ = t.t.SetSize(columns, rows)
}

// ReadLine writes prompt and reads one line of input, echoed, without the
// line ending. It returns io.EOF when the client sends Ctrl-D or Ctrl-C, or
// closes its input; a later call reads on.
func (t *Terminal) ReadLine(prompt string) (string, error) {
	line, intr, err := t.readLine(prompt, true)
	if intr {
		return "", io.EOF
	}
	return line, err
}

// ReadPassword writes prompt and reads one line of input without echoing it.
// It returns io.EOF like ReadLine. The server never records the password.
func (t *Terminal) ReadPassword(prompt string) (string, error) {
	line, intr, err := t.readLine(prompt, false)
	if intr {
		return "", io.EOF
	}
	return line, err
}

// readLine reads a line; intr reports that Ctrl-C abandoned it.
func (t *Terminal) readLine(prompt string, echo bool) (line string, intr bool, err error) {
	t.keys.intr.Store(false)
	if echo {
		t.t.SetPrompt(prompt)
		line, err = t.t.ReadLine()
		t.t.SetPrompt("")
	} else {
		line, err = t.t.ReadPassword(prompt)
	}
	return line, t.keys.intr.Swap(false), err
}

// Write writes p to the terminal, translating \n to \r\n.
func (t *Terminal) Write(p []byte) (int, error) {
	return t.t.Write(p)
}

// controlKeys handles Ctrl-C and Ctrl-D before x/term sees them. x/term
// answers both with io.EOF but leaves the key in its input buffer, so every
// later ReadLine would end at once too. Here Ctrl-D becomes a read error of
// io.EOF, which ends only the current ReadLine, and Ctrl-C becomes "^C" and
// Enter (echoed as bash echoes it) with intr set, so the line is dropped.
type controlKeys struct {
	r       io.Reader
	pending []byte
	buf     [256]byte
	intr    atomic.Bool
}

func (c *controlKeys) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		n, err := c.r.Read(c.buf[:])
		if n == 0 {
			return 0, err
		}
		c.pending = c.buf[:n]
	}
	switch c.pending[0] {
	case 3:
		c.intr.Store(true)
		c.pending = append([]byte("^C\r"), c.pending[1:]...)
	case 4:
		c.pending = c.pending[1:]
		return 0, io.EOF
	}
	i := 1
	for i < len(c.pending) && c.pending[i] != 3 && c.pending[i] != 4 {
		i++
	}
	n := copy(p, c.pending[:i])
	c.pending = c.pending[n:]
	return n, nil
}

// ttyReader gives a command its standard input from the terminal, a line at
// a time, as a canonical-mode TTY does.
type ttyReader struct {
	t   *Terminal
	buf []byte
}

func (r *ttyReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		line, err := r.t.ReadLine("")
		if err != nil && line == "" {
			return 0, err
		}
		r.buf = append(r.buf[:0], line...)
		r.buf = append(r.buf, '\n')
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
