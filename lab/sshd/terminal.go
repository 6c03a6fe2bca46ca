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
	conn := struct {
		io.Reader
		io.Writer
	}{&eofKeys{r: rw}, rw}
	t := &Terminal{t: term.NewTerminal(conn, "")}
	t.setSize(columns, rows)
	return t
}

// eofKeys turns Ctrl-D and Ctrl-C into a read error of io.EOF that ends the
// current ReadLine only. x/term handles these keys itself by returning
// io.EOF while leaving the key in its input buffer, so that every later
// ReadLine would end at once too.
type eofKeys struct {
	r       io.Reader
	pending []byte
	buf     [256]byte
}

func (e *eofKeys) Read(p []byte) (int, error) {
	if len(e.pending) == 0 {
		n, err := e.r.Read(e.buf[:])
		if n == 0 {
			return 0, err
		}
		e.pending = e.buf[:n]
	}
	i := 0
	for i < len(e.pending) && e.pending[i] != 3 && e.pending[i] != 4 {
		i++
	}
	if i == 0 {
		e.pending = e.pending[1:]
		return 0, io.EOF
	}
	n := copy(p, e.pending[:i])
	e.pending = e.pending[n:]
	return n, nil
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
