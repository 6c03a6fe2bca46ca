package sshd

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"runbook/internal/testbin"

	"golang.org/x/crypto/ssh/knownhosts"
)

// openSSH runs Debian's OpenSSH clients against a server. The password
// reaches ssh through the environment (sshpass -e, or an SSH_ASKPASS
// script), never through argv.
type openSSH struct {
	t       *testing.T
	srv     *Server
	port    string
	dir     string
	opts    []string // -o options common to ssh and sftp
	env     []string
	wrapper []string // "sshpass -e" or nothing
}

// passwordMethods are the ways a password can be fed to OpenSSH; sshpass
// is skipped when it is not installed.
var passwordMethods = []string{"sshpass", "askpass"}

func newOpenSSH(t *testing.T, srv *Server, method string) *openSSH {
	t.Helper()
	testbin.Need(t, "ssh", "openssh-client")
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(srv.Addr())
	kh := filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(srv.Addr())}, srv.HostKey())
	if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &openSSH{t: t, srv: srv, port: port, dir: dir}
	o.opts = []string{
		"-F", "/dev/null",
		"-o", "UserKnownHostsFile=" + kh,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "PreferredAuthentications=password",
		"-o", "PubkeyAuthentication=no",
		"-o", "NumberOfPasswordPrompts=1",
		"-o", "BatchMode=no", // before sftp's own -b, which would set it
		"-o", "ConnectTimeout=10",
		"-o", "LogLevel=ERROR",
	}
	o.env = append(os.Environ(), "HOME="+dir)
	switch method {
	case "sshpass":
		testbin.Need(t, "sshpass", "sshpass")
		o.wrapper = []string{"sshpass", "-e"}
		o.env = append(o.env, "SSHPASS="+testPassword)
	case "askpass":
		script := filepath.Join(dir, "askpass")
		if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$SSHD_TEST_PASSWORD\"\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		o.env = append(o.env, "SSH_ASKPASS="+script, "SSH_ASKPASS_REQUIRE=force", "SSHD_TEST_PASSWORD="+testPassword)
	}
	return o
}

// command builds an exec.Cmd for ssh or sftp with the common options.
func (o *openSSH) command(prog string, args ...string) *exec.Cmd {
	argv := append([]string{}, o.wrapper...)
	argv = append(argv, prog)
	argv = append(argv, o.opts...)
	if prog == "sftp" {
		argv = append(argv, "-P", o.port)
	} else {
		argv = append(argv, "-p", o.port)
	}
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = o.env
	cmd.Dir = o.dir
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("run: %v", err)
	return -1
}

func TestOpenSSHExec(t *testing.T) {
	srv := startServer(t, Config{})
	tests := []struct {
		name, cmd, stdin string
		want             result
	}{
		{"status and output", "echo hi; false", "", result{stdout: "hi\n", status: 1}},
		{"unknown command", "nosuchcmd", "", result{stderr: "bash: line 1: nosuchcmd: command not found\n", status: 127}},
		{"stdin", "upper", "from openssh\n", result{stdout: "FROM OPENSSH\n"}},
		{"kb pipeline", `vecs-cli store list | egrep "^(machine|vpxd)$"`, "", result{stdout: "machine\nvpxd\n"}},
	}
	for _, method := range passwordMethods {
		t.Run(method, func(t *testing.T) {
			o := newOpenSSH(t, srv, method)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					cmd := o.command("ssh", "root@127.0.0.1", tt.cmd)
					var out, errb bytes.Buffer
					cmd.Stdin = strings.NewReader(tt.stdin)
					cmd.Stdout, cmd.Stderr = &out, &errb
					got := result{status: exitCode(t, cmd.Run())}
					got.stdout, got.stderr = out.String(), errb.String()
					if got != tt.want {
						t.Errorf("got  %+v\nwant %+v", got, tt.want)
					}
				})
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		o := newOpenSSH(t, srv, "askpass")
		o.env = append(o.env, "SSHD_TEST_PASSWORD=wrong")
		cmd := o.command("ssh", "root@127.0.0.1", "true")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if code := exitCode(t, cmd.Run()); code != 255 || !strings.Contains(errb.String(), "Permission denied") {
			t.Errorf("exit %d, stderr %q; want 255 and Permission denied", code, errb.String())
		}
	})
}

// TestOpenSSHPTY runs `ssh -tt host certificate-manager` and answers its
// prompts through ssh's stdin.
func TestOpenSSHPTY(t *testing.T) {
	srv := startServer(t, Config{})
	o := newOpenSSH(t, srv, "askpass")
	cmd := o.command("ssh", "-tt", "root@127.0.0.1", "certificate-manager")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := newExpecter(t, in, out)
	e.expect(`Option\[1 to 8\]: `)
	e.send("8\r")
	e.expect(`Enter username .*: `)
	e.send("\r")
	e.expect(`Enter password: `)
	e.send(menuPassword + "\r")
	e.expect(`Status : 100% Completed`)
	e.rest()
	if code := exitCode(t, cmd.Wait()); code != 0 {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	if tr := e.transcript.String(); strings.Contains(tr, menuPassword) || !strings.Contains(tr, "Option[1 to 8]: 8\r\n") {
		t.Errorf("transcript:\n%q", tr)
	}
}

func TestOpenSSHSFTPBatch(t *testing.T) {
	testbin.Need(t, "sftp", "openssh-client")
	root := newTree(t)
	srv := startServer(t, Config{Root: root})
	o := newOpenSSH(t, srv, "askpass")
	data := make([]byte, 1<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(o.dir, "local.bin"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	batch := strings.Join([]string{
		"mkdir /tmp/sftpdir",
		"put local.bin /tmp/sftpdir/up.bin",
		"get /tmp/sftpdir/up.bin back.bin",
		"rename /tmp/sftpdir/up.bin /tmp/sftpdir/moved.bin",
		"ls -1 /tmp/sftpdir",
		"put local.bin ../../escaped.bin",
		"-get /nope missing.bin",
		"chmod 600 /tmp/sftpdir/moved.bin",
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(o.dir, "batch"), []byte(batch), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := o.command("sftp", "-b", "batch", "root@127.0.0.1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if code := exitCode(t, cmd.Run()); code != 0 {
		t.Fatalf("sftp exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	back, err := os.ReadFile(filepath.Join(o.dir, "back.bin"))
	if err != nil || !bytes.Equal(back, data) {
		t.Errorf("download: %d bytes, %v", len(back), err)
	}
	moved, err := os.ReadFile(filepath.Join(root, "tmp/sftpdir/moved.bin"))
	if err != nil || !bytes.Equal(moved, data) {
		t.Errorf("upload: %d bytes, %v", len(moved), err)
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp/sftpdir/moved.bin")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("chmod: %v %v", fi, err)
	}
	// ../../ from /root lands at the top of the tree, not above it.
	if _, err := os.Stat(filepath.Join(root, "escaped.bin")); err != nil {
		t.Errorf("relative upload through ..: %v", err)
	}
	if !strings.Contains(out.String(), "moved.bin") {
		t.Errorf("ls output:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "not found") {
		t.Errorf("stderr lacks the failed get:\n%s", errb.String())
	}

	// A failing command ends the batch with status 1.
	if err := os.WriteFile(filepath.Join(o.dir, "batch2"), []byte("get /nope x\nmkdir /tmp/never\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, o.command("sftp", "-b", "batch2", "root@127.0.0.1").Run()); code != 1 {
		t.Errorf("failing batch exit %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp/never")); err == nil {
		t.Error("batch went on after a failure")
	}
}
