package sshd

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// ptySession opens a session with a PTY and returns it with an expecter on
// its output. cmd is exec'd, or the login shell is started when it is "".
func ptySession(t *testing.T, c *ssh.Client, cmd string) (*ssh.Session, *expecter) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.RequestPty("xterm", 40, 132, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		t.Fatal(err)
	}
	in, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if cmd == "" {
		err = s.Shell()
	} else {
		err = s.Start(cmd)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s, newExpecter(t, in, out)
}

func waitStatus(t *testing.T, err error) int {
	t.Helper()
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitStatus()
	}
	t.Fatalf("wait: %v", err)
	return -1
}

// TestPTYExec drives a certificate-manager-like menu over `ssh -t host cmd`.
func TestPTYExec(t *testing.T) {
	tests := []struct {
		name      string
		passwords []string
		want      string
		status    int
	}{
		{"right password", []string{menuPassword}, `Status : 100% Completed \[All tasks completed successfully for Administrator@vsphere.local\]`, 0},
		{"one retry", []string{"wrong-1", menuPassword}, `Incorrect Password! Try Again! \(2 attempt/s left\)`, 0},
		{"three wrong", []string{"wrong-1", "wrong-2", "wrong-3"}, "Reached max number of attempts, terminating operation.", 3},
	}
	srv := startServer(t, Config{})
	c := dial(t, srv)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, e := ptySession(t, c, "/usr/lib/vmware-vmca/bin/certificate-manager")
			e.expect(`Option\[1 to 8\]: $`)
			e.send("8\r")
			e.expect(`Enter username \[Administrator@vsphere.local\]: `)
			e.send("\r")
			for _, pw := range tt.passwords {
				e.expect(`Enter password: $`)
				e.send(pw + "\r")
			}
			e.rest()
			if got := waitStatus(t, s.Wait()); got != tt.status {
				t.Errorf("exit status %d, want %d", got, tt.status)
			}
			tr := e.transcript.String()
			if !regexp.MustCompile(tt.want).MatchString(tr) {
				t.Errorf("transcript lacks %q:\n%s", tt.want, tr)
			}
			for _, pw := range tt.passwords {
				if strings.Contains(tr, pw) {
					t.Errorf("password %q echoed:\n%s", pw, tr)
				}
			}
			// The option typed is echoed, and lines end in CRLF.
			if !strings.Contains(tr, "Option[1 to 8]: 8\r\n") {
				t.Errorf("option not echoed:\n%q", tr)
			}
			if regexp.MustCompile(`[^\r]\n`).MatchString(tr) {
				t.Errorf("bare LF in PTY output:\n%q", tr)
			}
		})
	}
	if a := strings.Join(srv.Audit(), "\n"); strings.Contains(a, menuPassword) {
		t.Errorf("audit holds the password: %q", a)
	}
}

// TestPTYShell drives the interactive login shell.
func TestPTYShell(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	s, e := ptySession(t, c, "")
	prompt := regexp.QuoteMeta("root@vcsa1 [ ~ ]# ")
	e.expect(prompt + "$")
	e.send("cd /etc/ssl\r")
	e.expect(regexp.QuoteMeta("root@vcsa1 [ /etc/ssl ]# ") + "$")
	e.send("nosuchcmd\r")
	e.expect(`-bash: nosuchcmd: command not found\r\n`)
	if err := s.WindowChange(50, 100); err != nil {
		t.Fatal(err)
	}
	e.send("ls certs | wc -l; ttycheck; cd\r")
	if got := e.expect(prompt); !strings.Contains(got, "3\r\ntty\r\n") {
		t.Errorf("output %q", got)
	}
	// A command run from the shell gets the terminal.
	e.send("certificate-manager\r")
	e.expect(`Option\[1 to 8\]: `)
	e.send("8\r")
	e.expect(`Enter username .*: `)
	e.send("administrator@vsphere.local\r")
	e.expect(`Enter password: `)
	e.send(menuPassword + "\r")
	e.expect(`Completed .*administrator@vsphere.local`)
	e.expect(prompt)
	// A construct spanning lines gets the continuation prompt.
	e.send("for i in a b\r")
	e.expect(`> $`)
	e.send("do echo item $i; done\r")
	e.expect(`item a\r\nitem b\r\n` + prompt)
	// Input typed to a command reading stdin is echoed, and Ctrl-D ends it.
	e.send("upper\r")
	e.send("typed\r\x04")
	e.expect(`TYPED\r\n` + prompt)
	e.send("exit 5\r")
	e.expect(`logout`)
	e.rest()
	if got := waitStatus(t, s.Wait()); got != 5 {
		t.Errorf("exit status %d, want 5", got)
	}
	if strings.Contains(e.transcript.String(), menuPassword) {
		t.Errorf("password echoed")
	}
	want := []string{"cd /etc/ssl", "nosuchcmd", "ls certs | wc -l; ttycheck; cd", "certificate-manager", "for i in a b\ndo echo item $i; done", "upper", "exit 5"}
	if got := srv.Audit(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit\ngot  %q\nwant %q", got, want)
	}
}

func TestPTYShellCtrlD(t *testing.T) {
	c := dial(t, startServer(t, Config{}))
	s, e := ptySession(t, c, "")
	e.expect(`\]# $`)
	e.send("false\r")
	e.expect(`\]# $`)
	e.send("\x04")
	e.expect("logout")
	e.rest()
	if got := waitStatus(t, s.Wait()); got != 1 {
		t.Errorf("exit status %d, want 1 (the last command's)", got)
	}
}

// TestShellWithoutPTY feeds commands to the login shell on stdin, as
// `ssh host < script` does.
func TestShellWithoutPTY(t *testing.T) {
	c := dial(t, startServer(t, Config{}))
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Stdin = strings.NewReader("echo one\nfor i in a b; do\n echo $i\ndone\nupper\nthis line is upper's input\n")
	var out, errb strings.Builder
	s.Stdout, s.Stderr = &out, &errb
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	if want := "one\na\nb\nTHIS LINE IS UPPER'S INPUT\n"; out.String() != want || errb.String() != "" {
		t.Errorf("stdout %q stderr %q, want %q", out.String(), errb.String(), want)
	}
}

// TestPTYShellInterrupt checks Ctrl-C: at the prompt it drops the line
// typed so far; in a command reading the terminal it ends that read.
func TestPTYShellInterrupt(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	s, e := ptySession(t, c, "")
	prompt := regexp.QuoteMeta("root@vcsa1 [ ~ ]# ")
	e.expect(prompt + "$")
	e.send("echo never\x03")
	e.expect(`echo never\^C\r\n` + prompt + "$")
	e.send("certificate-manager\r")
	e.expect(`Option\[1 to 8\]: $`)
	e.send("\x03")
	e.expect(`\^C\r\n` + prompt + "$")
	e.send("echo status $?; exit 7 | true\r")
	e.expect(`status 1\r\n` + prompt + "$")
	e.send("exit\r")
	if rest := e.rest(); rest != "exit\r\nlogout\r\n" {
		t.Errorf("after exit: %q", rest)
	}
	if got := waitStatus(t, s.Wait()); got != 0 {
		t.Errorf("exit status %d, want 0", got)
	}
	if strings.Contains(e.transcript.String(), "never\r\n") || strings.Count(e.transcript.String(), "logout") != 1 {
		t.Errorf("transcript:\n%q", e.transcript.String())
	}
	want := []string{"certificate-manager", "echo status $?; exit 7 | true", "exit"}
	if got := srv.Audit(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit %q, want %q", got, want)
	}
}
