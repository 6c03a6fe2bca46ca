package sshd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	testUser     = "root"
	testPassword = "Vmware1!-node-pw"
	testHost     = "vcsa1.example.com"
	menuPassword = "s3cret!SSO"
)

// testStores is what the fixture vecs-cli lists.
var testStores = []string{"MACHINE_SSL_CERT", "TRUSTED_ROOTS", "machine", "vpxd"}

// fixtureCommands are small appliance commands for testing the plumbing;
// the real ones live in another package.
func fixtureCommands() map[string]Command {
	vecs := func(_ context.Context, inv *Invocation) int {
		args := strings.Join(inv.Args[1:], " ")
		switch {
		case args == "store list":
			for _, s := range testStores {
				fmt.Fprintln(inv.Stdout, s)
			}
			return 0
		case strings.HasPrefix(args, "entry list --store ") && strings.HasSuffix(args, " --text"):
			store := strings.TrimSuffix(strings.TrimPrefix(args, "entry list --store "), " --text")
			if !slices.Contains(testStores, store) {
				fmt.Fprintln(inv.Stderr, "Error: Store does not exist")
				return 4
			}
			fmt.Fprintf(inv.Stdout, "Number of entries in store :\t1\nAlias :\t%s-alias\nEntry type :\tPrivate Key\n"+
				"Certificate:\n    Data:\n        Validity\n            Not Before: Apr  6 11:57:19 2019 GMT\n"+
				"            Not After : Apr  6 11:57:19 2029 GMT\n\n", store)
			return 0
		}
		fmt.Fprintln(inv.Stderr, "Invalid command")
		return 22
	}
	// menu is a certificate-manager-like prompt sequence.
	menu := func(_ context.Context, inv *Invocation) int {
		if inv.TTY == nil {
			fmt.Fprintln(inv.Stderr, "menu: needs a terminal")
			return 1
		}
		fmt.Fprintln(inv.Stdout, "*** Welcome to the test Certificate Manager ***")
		fmt.Fprintln(inv.Stdout, "8. Reset all Certificates")
		opt, err := inv.TTY.ReadLine("Option[1 to 8]: ")
		if err != nil {
			return 1
		}
		if opt != "8" {
			fmt.Fprintf(inv.Stdout, "unsupported option %q\n", opt)
			return 2
		}
		user, err := inv.TTY.ReadLine("Enter username [Administrator@vsphere.local]: ")
		if err != nil {
			return 1
		}
		if user == "" {
			user = "Administrator@vsphere.local"
		}
		for left := 2; ; left-- {
			pw, err := inv.TTY.ReadPassword("Enter password: ")
			if err != nil {
				return 1
			}
			if pw == menuPassword {
				break
			}
			if left == 0 {
				fmt.Fprintln(inv.Stdout, "Reached max number of attempts, terminating operation.")
				return 3
			}
			fmt.Fprintf(inv.Stdout, "Incorrect Password! Try Again! (%d attempt/s left)\n", left)
		}
		fmt.Fprintf(inv.Stdout, "Status : 100%% Completed [All tasks completed successfully for %s]\n", user)
		return 0
	}
	cmds := map[string]Command{
		"/usr/lib/vmware-vmafd/bin/vecs-cli":           vecs,
		"vecs-cli":                                     vecs,
		"/usr/lib/vmware-vmca/bin/certificate-manager": menu,
		"certificate-manager":                          menu,
		// upper copies stdin to stdout in upper case.
		"upper": func(_ context.Context, inv *Invocation) int {
			b, err := io.ReadAll(inv.Stdin)
			if err != nil {
				return 1
			}
			inv.Stdout.Write(bytes.ToUpper(b))
			return 0
		},
		// argv prints its arguments one per line in brackets.
		"argv": func(_ context.Context, inv *Invocation) int {
			for _, a := range inv.Args {
				fmt.Fprintf(inv.Stdout, "[%s]\n", a)
			}
			return 0
		},
		// getenv prints the named variables.
		"getenv": func(_ context.Context, inv *Invocation) int {
			for _, a := range inv.Args[1:] {
				fmt.Fprintf(inv.Stdout, "%s=%s\n", a, inv.Env[a])
			}
			return 0
		},
		// hostpath prints where Path maps each argument, relative to Root,
		// and whether the file can be read through Path.
		"hostpath": func(_ context.Context, inv *Invocation) int {
			root := inv.Path("/")
			for _, a := range inv.Args[1:] {
				p := inv.Path(a)
				r, err := filepath.Rel(root, p)
				if err != nil || strings.HasPrefix(r, "..") {
					fmt.Fprintf(inv.Stdout, "%s -> OUTSIDE %s\n", a, p)
					continue
				}
				fmt.Fprintf(inv.Stdout, "%s -> %s rel=%s\n", a, filepath.ToSlash(r), inv.Rel(a))
			}
			return 0
		},
		"ttycheck": func(_ context.Context, inv *Invocation) int {
			if inv.TTY == nil {
				fmt.Fprintln(inv.Stdout, "no tty")
				return 1
			}
			fmt.Fprintln(inv.Stdout, "tty")
			return 0
		},
		// dir-cli only exists to show that --password values are masked in
		// the audit log.
		"dir-cli": func(_ context.Context, inv *Invocation) int {
			fmt.Fprintln(inv.Stdout, "1. machine-ce510c87")
			return 0
		},
	}
	return cmds
}

// newTree creates a node file tree with a few appliance files.
func newTree(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/hostname":                    testHost + "\n",
		"etc/vmware/deployment.node.type": "embedded\n",
		"etc/ssl/certs/a.pem":             "A\n",
		"etc/ssl/certs/b.pem":             "B\n",
		"etc/ssl/certs/c.crt":             "C\n",
		"var/log/vmware/sso/sts.log":      "line 1 INFO start\nline 2 ERROR InvalidTimeRange\nline 3 INFO retry\nline 4 error again\nline 5 INFO done\n",
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"root", "tmp", "var/tmp/vmware"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// startServer starts a server on a fresh tree; cfg fields left empty get
// the test defaults.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.User == "" {
		cfg.User, cfg.Password = testUser, testPassword
	}
	if cfg.Root == "" {
		cfg.Root = newTree(t)
	}
	if cfg.Hostname == "" {
		cfg.Hostname = testHost
	}
	if cfg.Commands == nil {
		cfg.Commands = fixtureCommands()
	}
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return srv
}

// clientConfig pins the server's host key by its fingerprint.
func clientConfig(srv *Server, password string) *ssh.ClientConfig {
	want := srv.HostKeyFingerprint()
	return &ssh.ClientConfig{
		User: testUser,
		Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if got := ssh.FingerprintSHA256(key); got != want {
				return fmt.Errorf("host key %s, want %s", got, want)
			}
			return nil
		},
		Timeout: 10 * time.Second,
	}
}

func dial(t testing.TB, srv *Server) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", srv.Addr(), clientConfig(srv, testPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// result is what one exec produced.
type result struct {
	stdout, stderr string
	status         int
}

// run execs cmd with stdin and returns its output and exit status. Errors
// other than a non-zero exit fail the test.
func run(t testing.TB, c *ssh.Client, cmd, stdin string) result {
	t.Helper()
	r, err := tryRun(c, cmd, stdin)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return r
}

func tryRun(c *ssh.Client, cmd, stdin string) (result, error) {
	s, err := c.NewSession()
	if err != nil {
		return result{}, err
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	s.Stdin = strings.NewReader(stdin)
	err = s.Run(cmd)
	r := result{stdout: out.String(), stderr: errb.String()}
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		r.status = exit.ExitStatus()
		err = nil
	}
	return r, err
}

// expecter drives an interactive session: a goroutine collects output,
// Expect waits for a pattern and consumes the text up to its end, and the
// whole transcript is kept for later checks.
type expecter struct {
	t          testing.TB
	in         io.Writer
	chunks     chan []byte
	buf        []byte
	transcript bytes.Buffer
}

func newExpecter(t testing.TB, in io.Writer, out io.Reader) *expecter {
	e := &expecter{t: t, in: in, chunks: make(chan []byte, 64)}
	go func() {
		defer close(e.chunks)
		for {
			b := make([]byte, 4096)
			n, err := out.Read(b)
			if n > 0 {
				e.chunks <- b[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	return e
}

// expect waits up to 10 s for re and returns the text before the match end.
func (e *expecter) expect(re string) string {
	e.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(10 * time.Second)
	for {
		if loc := rx.FindIndex(e.buf); loc != nil {
			got := string(e.buf[:loc[1]])
			e.buf = e.buf[loc[1]:]
			return got
		}
		select {
		case b, ok := <-e.chunks:
			if !ok {
				e.t.Fatalf("expect %q: output ended; unread %q\ntranscript:\n%s", re, e.buf, e.transcript.String())
			}
			e.buf = append(e.buf, b...)
			e.transcript.Write(b)
		case <-deadline:
			e.t.Fatalf("expect %q: timed out; unread %q", re, e.buf)
		}
	}
}

// rest drains the output until it ends and returns what was not consumed.
func (e *expecter) rest() string {
	for b := range e.chunks {
		e.buf = append(e.buf, b...)
		e.transcript.Write(b)
	}
	return string(e.buf)
}

func (e *expecter) send(s string) {
	e.t.Helper()
	if _, err := io.WriteString(e.in, s); err != nil {
		e.t.Fatalf("send: %v", err)
	}
}
