package sshd

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// session is one SSH session channel.
type session struct {
	srv *Server
	nc  net.Conn
	ch  ssh.Channel

	mu      sync.Mutex
	env     map[string]string
	pty     *ptyRequest
	tty     *Terminal
	started bool
}

// ptyRequest is the payload of a "pty-req" request (RFC 4254 §6.2).
type ptyRequest struct {
	Term          string
	Columns, Rows uint32
	Width, Height uint32
	Modes         string
}

// windowChange is the payload of a "window-change" request (RFC 4254 §6.7).
type windowChange struct {
	Columns, Rows uint32
	Width, Height uint32
}

type envRequest struct{ Name, Value string }

type execRequest struct{ Command string }

type subsystemRequest struct{ Name string }

type exitStatus struct{ Status uint32 }

// serve handles the session's requests until the channel closes.
func (ss *session) serve(ctx context.Context, reqs <-chan *ssh.Request) {
	var run sync.WaitGroup
	defer run.Wait()
	defer ss.ch.Close()
	for req := range reqs {
		ok := false
		var program func() int
		switch req.Type {
		case "pty-req":
			var p ptyRequest
			if ssh.Unmarshal(req.Payload, &p) == nil && !ss.isStarted() {
				ss.mu.Lock()
				ss.pty = &p
				ss.mu.Unlock()
				ok = true
			}
		case "env":
			var e envRequest
			if ssh.Unmarshal(req.Payload, &e) == nil && !ss.isStarted() {
				ss.mu.Lock()
				ss.env[e.Name] = e.Value
				ss.mu.Unlock()
				ok = true
			}
		case "window-change":
			var w windowChange
			if ssh.Unmarshal(req.Payload, &w) == nil {
				ss.mu.Lock()
				if ss.pty != nil {
					ss.pty.Columns, ss.pty.Rows = w.Columns, w.Rows
				}
				if ss.tty != nil {
					ss.tty.setSize(int(w.Columns), int(w.Rows))
				}
				ss.mu.Unlock()
				ok = true
			}
		case "exec":
			var e execRequest
			if ssh.Unmarshal(req.Payload, &e) == nil && ss.start() && ss.srv.before(ss.nc, OpExec) == nil {
				program = func() int { return ss.exec(ctx, e.Command) }
			}
		case "shell":
			if ss.start() && ss.srv.before(ss.nc, OpShell) == nil {
				program = func() int { return ss.shell(ctx) }
			}
		case "subsystem":
			var sub subsystemRequest
			if ssh.Unmarshal(req.Payload, &sub) == nil && sub.Name == "sftp" && ss.start() && ss.srv.before(ss.nc, OpSFTP) == nil {
				program = ss.sftp
			}
		}
		if program != nil {
			ok = true
		}
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
		// The program starts only after the reply, so that its exit status
		// and close cannot overtake the reply.
		if program != nil {
			run.Go(func() { ss.finish(program()) })
		}
	}
}

func (ss *session) isStarted() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.started
}

// start marks the session as running a program; only one per session.
func (ss *session) start() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.started {
		return false
	}
	ss.started = true
	if ss.pty != nil {
		ss.tty = newTerminal(ss.ch, int(ss.pty.Columns), int(ss.pty.Rows))
	}
	return true
}

// finish sends the exit status and closes the channel, as OpenSSH does.
func (ss *session) finish(status int) {
	_ = ss.ch.CloseWrite()
	_, _ = ss.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{Status: uint32(status)}))
	_ = ss.ch.Close()
}

// newShell returns a shell for this session with the login environment.
func (ss *session) newShell(interactive bool) *shell {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	env := map[string]string{
		"HOME":     ss.srv.home,
		"USER":     ss.srv.cfg.User,
		"LOGNAME":  ss.srv.cfg.User,
		"SHELL":    "/bin/bash",
		"PATH":     defaultPath,
		"HOSTNAME": ss.srv.cfg.Hostname,
		"PWD":      ss.srv.startDir,
	}
	if ss.pty != nil && ss.pty.Term != "" {
		env["TERM"] = ss.pty.Term
	}
	for k, v := range ss.env {
		env[k] = v
	}
	return &shell{
		srv:         ss.srv,
		nc:          ss.nc,
		env:         env,
		dir:         ss.srv.startDir,
		tty:         ss.tty,
		interactive: interactive,
	}
}

// defaultPath is the appliance root's PATH, appliance tool directories first.
const defaultPath = "/usr/lib/vmware-vmafd/bin:/usr/lib/vmware-vmca/bin:/usr/lib/vmware-vmdir/bin:" +
	"/opt/vmware/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// stdio returns the session's standard streams.
func (ss *session) stdio() stdio {
	if ss.tty != nil {
		return stdio{in: &ttyReader{t: ss.tty}, out: ss.tty, err: ss.tty}
	}
	return stdio{in: ss.ch, out: ss.ch, err: ss.ch.Stderr()}
}

// exec runs one command line as `bash -c` would.
func (ss *session) exec(ctx context.Context, line string) int {
	ss.srv.record(line)
	sh := ss.newShell(false)
	return sh.runScript(ctx, line, ss.stdio())
}

// shell runs the interactive prompt until exit or end of input.
func (ss *session) shell(ctx context.Context) int {
	sh := ss.newShell(true)
	std := ss.stdio()
	if ss.tty == nil {
		// Without a PTY a login shell reads commands from stdin without
		// prompting, as bash does when its input is not a terminal.
		sh.interactive = false
		return sh.runReader(ctx, ss.ch, std)
	}
	sh.login = true
	for !sh.exited && ctx.Err() == nil {
		line, intr, err := ss.tty.readLine(sh.prompt(), true)
		// A quote or compound command left open continues on the next
		// line, after the PS2 prompt.
		for err == nil && !intr && incomplete(line) {
			var more string
			more, intr, err = ss.tty.readLine("> ", true)
			line += "\n" + more
		}
		if intr {
			// Ctrl-C abandons the line, as in bash.
			continue
		}
		if err != nil {
			_, _ = ss.tty.Write([]byte("logout\n"))
			break
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		ss.srv.record(line)
		if err := ss.srv.before(ss.nc, OpExec); err != nil {
			fmt.Fprintf(ss.tty, "-bash: %v\n", err)
			continue
		}
		sh.runLine(ctx, line, std)
	}
	return sh.status
}

// sftp serves the sftp subsystem on the channel, confined to the node's tree.
func (ss *session) sftp() int {
	fs := &rootFS{root: ss.srv.root}
	h := sftp.Handlers{FileGet: fs, FilePut: fs, FileCmd: fs, FileList: fs}
	rs := sftp.NewRequestServer(ss.ch, h, sftp.WithStartDirectory(ss.srv.startDir))
	err := rs.Serve()
	rs.Close()
	if err != nil && err != io.EOF {
		return 1
	}
	return 0
}
