// Package sshd is the SSH server of the simulated vCenter appliance: password
// authentication, exec and interactive shell sessions run by a small bash-like
// shell, PTY support for menu-driven commands, and an SFTP subsystem confined to
// the node's file tree.
//
// The appliance commands themselves (vecs-cli, dir-cli, certificate-manager…)
// are not part of this package; they are plugged in through [Config.Commands]
// as [Command] functions and see an [Invocation].
//
// # Sessions
//
// An exec request runs its command line as `bash -c` would and sends the
// exit status. A shell request with a PTY gives the appliance prompt
// "root@<host> [ ~ ]# "; without a PTY the shell reads commands from stdin.
// With a PTY (exec or shell) commands get a [Terminal] for prompts and
// passwords; without one their stdin is the channel. The sftp subsystem
// serves the node's tree through [os.Root], so ".." and symbolic links
// cannot reach outside it.
//
// # Shell
//
// The shell understands single and double quotes and backslashes, ;, &&,
// ||, |, !, redirections ([n]>, [n]>>, [n]<, [n]>&m, &>, /dev/null), $VAR,
// ${VAR}, ${VAR:-word}, ${#VAR}, $?, $(...), `...`, ~, globbing in the
// node's tree, VAR=value prefixes, for/if/while/until, { } groups and ( )
// subshells. Names are resolved as the special built-ins cd, export, unset,
// exit and test/[, then Config.Commands, then the built-in utilities echo,
// pwd, hostname, cat, ls, mkdir, rm, cp, mv, touch, tee, chmod (checks
// only), grep/egrep/fgrep, head, tail, wc, base64, sleep, true, false and
// ":". Anything else fails as bash does ("bash: line 1: x: command not
// found", status 127). Here-documents, arithmetic, functions, case and
// background jobs are not supported.
//
// # Secrets
//
// [Server.Audit] records command lines as typed, masking only the value of
// --password options. Callers must not pass secrets in argv: commands that
// need a password prompt for it with [Terminal.ReadPassword] or read stdin.
package sshd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Config describes one appliance node's SSH server.
type Config struct {
	// User and Password are the only accepted credentials (password
	// authentication only, as root logs in on an appliance). A wrong user or
	// password is refused.
	User, Password string
	// HostKey is the server's host key; nil generates an ed25519 key.
	HostKey ssh.Signer
	// Root is the directory holding the node's file tree. SFTP is confined to
	// it and commands see appliance paths relative to it ("/etc/x" is
	// Root/etc/x).
	Root string
	// Hostname is the node's host name, shown in the shell prompt and as
	// $HOSTNAME.
	Hostname string
	// Commands are the appliance commands, keyed both by absolute path and by
	// base name, such as "/usr/lib/vmware-vmafd/bin/vecs-cli" and "vecs-cli".
	// They take precedence over the shell's built-in utilities (cat, grep…)
	// but not over its special built-ins (cd, export, exit, unset).
	Commands map[string]Command
	// Faults, when not nil, is consulted before each operation named by the
	// Op constants; see [Faults].
	Faults Faults
}

// Command is an appliance command. It returns the exit status.
// The context is cancelled when the client disconnects or the server closes.
type Command func(ctx context.Context, inv *Invocation) int

// Invocation is what a [Command] sees when it runs.
//
// Command lines are recorded in [Server.Audit] as typed (except that the value
// after --password is masked), so callers must not pass secrets in argv: a
// command that needs a password should prompt for it with
// [Terminal.ReadPassword] or read it from Stdin.
type Invocation struct {
	// Args is argv; Args[0] is the command name as typed.
	Args []string
	// Stdin, Stdout and Stderr are the command's standard streams. With a PTY,
	// Stdin reads lines from the terminal and Stdout and Stderr both write to
	// it (with \n translated to \r\n); without one, Stdin is the SSH channel.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Env holds the shell's variables plus any VAR=value prefixes; it is the
	// command's own copy.
	Env map[string]string
	// Dir is the working directory, as an appliance path.
	Dir string
	// Path maps an appliance path (absolute, or relative to Dir) to a path on
	// the host inside Config.Root. The mapping is lexical: ".." cannot climb
	// out of Root, but symbolic links are not resolved; use FS to be safe from
	// links that point outside the tree.
	Path func(p string) string
	// FS is the node's file tree opened with os.OpenRoot; Rel gives the names
	// to use with it. FS refuses symbolic links that escape the tree.
	FS *os.Root
	// TTY is the session's terminal, or nil when the session has no PTY.
	TTY *Terminal
}

// Rel maps an appliance path (absolute, or relative to Dir) to a name
// relative to FS, such as "etc/vmware/x" for "/etc/vmware/x" and "." for "/".
func (inv *Invocation) Rel(p string) string {
	return rel(absPath(inv.Dir, p))
}

// Faults injects failures for tests. Before is called before the operation
// op (one of the Op constants, or OpCommandPrefix plus a command's base name)
// and may block to simulate a slow server, return [ErrDrop] to close the TCP
// connection abruptly, or return another error to refuse the operation.
type Faults interface {
	Before(op string) error
}

// FaultFunc adapts a function to the [Faults] interface.
type FaultFunc func(op string) error

// Before calls f(op).
func (f FaultFunc) Before(op string) error { return f(op) }

// Operations passed to [Faults.Before].
const (
	// OpAuth is each password attempt; an error other than ErrDrop refuses it.
	OpAuth = "auth"
	// OpSession is each session channel the client opens.
	OpSession = "session"
	// OpExec is each command line run: an exec request, or a line typed at
	// the interactive prompt.
	OpExec = "exec"
	// OpShell is each interactive shell request.
	OpShell = "shell"
	// OpSFTP is each start of the sftp subsystem.
	OpSFTP = "sftp"
	// OpCommandPrefix, followed by the base name of argv[0] (such as
	// "command:vecs-cli"), is each simple command the shell runs. A non-drop
	// error makes the command fail with status 1 and the error on stderr.
	OpCommandPrefix = "command:"
)

// ErrDrop, returned by [Faults.Before], makes the server reset the TCP
// connection at once; the client sees EOF or "connection reset by peer".
var ErrDrop = errors.New("drop connection")

// Server is a running SSH server on 127.0.0.1.
type Server struct {
	cfg      Config
	signer   ssh.Signer
	root     *os.Root
	home     string // $HOME
	startDir string // home, or "/" when home is missing from the tree
	ln       net.Listener
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	audit    []string
	closeErr error
	once     sync.Once
}

// Start listens on 127.0.0.1 on a free port and serves cfg until ctx is
// cancelled or Close is called.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.User == "" {
		return nil, errors.New("start sshd: config has no user")
	}
	if cfg.Root == "" {
		return nil, errors.New("start sshd: config has no root directory")
	}
	signer := cfg.HostKey
	if signer == nil {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate host key: %w", err)
		}
		if signer, err = ssh.NewSignerFromKey(key); err != nil {
			return nil, fmt.Errorf("generate host key: %w", err)
		}
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("start sshd: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("start sshd: %w", err)
	}
	s := &Server{
		cfg:    cfg,
		signer: signer,
		root:   root,
		home:   homeDir(cfg.User),
		ln:     ln,
		conns:  make(map[net.Conn]struct{}),
	}
	s.startDir = "/"
	if fi, err := root.Stat(rel(s.home)); err == nil && fi.IsDir() {
		s.startDir = s.home
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	context.AfterFunc(s.ctx, s.shutdown)
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// homeDir is /root for root and /home/<user> otherwise.
func homeDir(user string) string {
	if user == "root" {
		return "/root"
	}
	return "/home/" + user
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HostKey returns the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.signer.PublicKey() }

// HostKeyFingerprint returns the SHA256 fingerprint of the host key as
// `ssh-keygen -lf` prints it, such as "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".
func (s *Server) HostKeyFingerprint() string {
	return ssh.FingerprintSHA256(s.signer.PublicKey())
}

// Audit returns the command lines run so far, in order: exec requests and
// lines typed at the interactive prompt, as typed except that a value after
// --password is masked. Input read by commands (answers to prompts,
// passwords) is never recorded.
func (s *Server) Audit() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.audit...)
}

func (s *Server) record(line string) {
	s.mu.Lock()
	s.audit = append(s.audit, maskPasswords(line))
	s.mu.Unlock()
}

// Close stops the listener, closes every connection (cancelling running
// commands) and waits for the server's goroutines to finish.
func (s *Server) Close() error {
	s.cancel()
	s.shutdown()
	s.wg.Wait()
	return s.closeErr
}

// shutdown runs once, when s.ctx is done or from Close, whichever is first;
// a concurrent call waits for the first to finish.
func (s *Server) shutdown() {
	s.once.Do(func() {
		err := s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		if rerr := s.root.Close(); err == nil {
			err = rerr
		}
		if err != nil {
			s.closeErr = fmt.Errorf("close sshd: %w", err)
		}
	})
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer s.forget(nc)
			s.handleConn(nc)
		}()
	}
}

func (s *Server) forget(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	nc.Close()
}

// before consults the fault injector; on ErrDrop it resets the connection.
func (s *Server) before(nc net.Conn, op string) error {
	if s.cfg.Faults == nil {
		return nil
	}
	err := s.cfg.Faults.Before(op)
	if errors.Is(err, ErrDrop) {
		drop(nc)
	}
	return err
}

// drop closes nc so that the peer sees a reset rather than an orderly close.
func drop(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	nc.Close()
}

const handshakeTimeout = 30 * time.Second

func (s *Server) handleConn(nc net.Conn) {
	conf := &ssh.ServerConfig{
		PasswordCallback: func(meta ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
			if err := s.before(nc, OpAuth); err != nil {
				return nil, err
			}
			userOK := subtle.ConstantTimeCompare([]byte(meta.User()), []byte(s.cfg.User))
			passOK := subtle.ConstantTimeCompare(password, []byte(s.cfg.Password))
			if userOK&passOK == 1 {
				return nil, nil
			}
			return nil, fmt.Errorf("password rejected for %s", meta.User())
		},
	}
	conf.AddHostKey(s.signer)

	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	conn, chans, reqs, err := ssh.NewServerConn(nc, conf)
	if err != nil {
		return
	}
	_ = nc.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() {
		_ = conn.Wait()
		cancel()
	}()
	go ssh.DiscardRequests(reqs)

	var sessions sync.WaitGroup
	defer sessions.Wait()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only session channels are supported")
			continue
		}
		if err := s.before(nc, OpSession); err != nil {
			_ = nch.Reject(ssh.Prohibited, err.Error())
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			continue
		}
		sess := &session{srv: s, nc: nc, ch: ch, env: make(map[string]string)}
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			sess.serve(ctx, chReqs)
		}()
	}
}

// rel maps a cleaned or uncleaned appliance path to a name relative to the
// node's root, confined lexically.
func rel(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// absPath resolves p against dir as an appliance path and cleans it.
func absPath(dir, p string) string {
	if !path.IsAbs(p) {
		p = path.Join(dir, p)
	}
	return path.Clean("/" + p)
}

// hostPath maps an appliance path to a host path inside root.
func (s *Server) hostPath(dir, p string) string {
	return filepath.Join(s.cfg.Root, filepath.FromSlash(rel(absPath(dir, p))))
}

// maskPasswords replaces the value of --password options in a command line.
func maskPasswords(line string) string {
	const opt = "--password"
	var b strings.Builder
	for {
		i := strings.Index(line, opt)
		if i < 0 {
			b.WriteString(line)
			return b.String()
		}
		j := i + len(opt)
		b.WriteString(line[:j])
		line = line[j:]
		if line == "" || (line[0] != ' ' && line[0] != '=' && line[0] != '\t') {
			continue
		}
		sep := line[0]
		line = line[1:]
		if sep != '=' {
			line = strings.TrimLeft(line, " \t")
		}
		b.WriteByte(sep)
		b.WriteString("********")
		line = line[valueEnd(line):]
	}
}

// valueEnd returns the length of the shell word at the start of s, skipping
// quoted parts.
func valueEnd(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' {
				i++
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '\\':
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '|' || c == '&' || c == '>' || c == '<':
			return i
		}
	}
	return len(s)
}
