package sshd

import (
	"io"

	"golang.org/x/term"
)

// Terminal is the server side of a session's PTY: it echoes what the client
// types, handles line editing, and translates \n to \r\n on output, like a
// terminal in canonical mode. One goroutine at a time may read from it.
type Terminal struct {
	t *term.Terminal
}

func newTerminal(rw io.ReadWriter, columns, rows int) *Terminal {
	t := &Terminal{t: term.NewTerminal(rw, "")}
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
// line ending. It returns io.EOF when the client sends Ctrl-D on an empty
// line, Ctrl-C, or closes its input.
func (t *Terminal) ReadLine(prompt string) (string, error) {
	t.t.SetPrompt(prompt)
	line, err := t.t.ReadLine()
	t.t.SetPrompt("")
	return line, err
}

// ReadPassword writes prompt and reads one line of input without echoing it.
// The password is not recorded anywhere by the server.
func (t *Terminal) ReadPassword(prompt string) (string, error) {
	return t.t.ReadPassword(prompt)
}

// Write writes p to the terminal, translating \n to \r\n.
func (t *Terminal) Write(p []byte) (int, error) {
	return t.t.Write(p)
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
