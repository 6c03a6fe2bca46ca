package target_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"runbook/internal/testbin"

	"golang.org/x/crypto/ssh"

	"runbook/target"
)

// openSSH is Debian's sshd running on loopback for a throwaway local user
// that logs in with a password.
type openSSH struct {
	port     int
	hostKey  string // SHA256 fingerprint
	user     string
	password string
	home     string
}

// startOpenSSH creates a local user with a random name and password (which
// needs root), and starts /usr/sbin/sshd for it with password
// authentication only. Both go away when the test ends.
func startOpenSSH(t *testing.T) *openSSH {
	t.Helper()
	sshd := testbin.Need(t, "/usr/sbin/sshd", "openssh-server")
	useradd := testbin.Need(t, "useradd", "passwd")
	chpasswd := testbin.Need(t, "chpasswd", "passwd")
	userdel := testbin.Need(t, "userdel", "passwd")
	if os.Geteuid() != 0 {
		testbin.Unavailable(t, "the OpenSSH test creates a local user and must run as root")
	}
	rnd := make([]byte, 12)
	if _, err := rand.Read(rnd); err != nil {
		t.Fatal(err)
	}
	s := &openSSH{user: "rbt" + hex.EncodeToString(rnd[:4]), password: "Pw-" + hex.EncodeToString(rnd[4:])}

	// The home directory must be reachable by the user, so not under the
	// test's private temporary directory.
	home, err := os.MkdirTemp("", "rbtest-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	s.home = home
	if out, err := exec.Command(useradd, "-M", "-d", home, "-s", "/bin/sh", s.user).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(userdel, s.user).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", s.user, err, out)
		}
	})
	u, err := user.Lookup(s.user)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(home, uid, gid); err != nil {
		t.Fatal(err)
	}
	// The password goes through stdin, never argv.
	cmd := exec.Command(chpasswd)
	cmd.Stdin = strings.NewReader(s.user + ":" + s.password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}

	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "host_ed25519"), pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	s.hostKey = ssh.FingerprintSHA256(signer.PublicKey())
	s.port = freePort(t)
	conf := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s/host_ed25519
PidFile %[2]s/sshd.pid
AllowUsers %s
PermitRootLogin no
PubkeyAuthentication no
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
Subsystem sftp internal-sftp
`, s.port, dir, s.user)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sshd, "-t", "-f", conf).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v\n%s", err, out)
	}
	var log strings.Builder
	daemon := exec.Command(sshd, "-D", "-e", "-f", conf)
	daemon.Stderr = &log
	daemon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	t.Cleanup(func() {
		_ = daemon.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("sshd exited: %v\n%s", err, log.String())
		default:
		}
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not start:\n%s", log.String())
		}
	}
	return s
}

func (s *openSSH) profile(t *testing.T, password, hostKey string) *target.Profile {
	return newProfile(t, profileSpec{sshUser: s.user, sshPassword: password, hostKey: hostKey, ports: target.Ports{SSH: s.port}})
}

func TestOpenSSH(t *testing.T) {
	s := startOpenSSH(t)
	ctx := t.Context()

	t.Run("run", func(t *testing.T) {
		_, n := open(t, s.profile(t, s.password, s.hostKey), target.Options{})
		tests := []struct {
			cmd, stdin, stdout, stderr string
			exit                       int
		}{
			{cmd: "echo hello", stdout: "hello\n"},
			{cmd: "echo oops >&2; exit 22", stderr: "oops\n", exit: 22},
			{cmd: "cat", stdin: "from stdin\n", stdout: "from stdin\n"},
			{cmd: "pwd", stdout: s.home + "\n"},
		}
		for _, tc := range tests {
			var stdin io.Reader
			if tc.stdin != "" {
				stdin = strings.NewReader(tc.stdin)
			}
			out, errOut, exit, err := n.Run(ctx, tc.cmd, stdin)
			if err != nil {
				t.Fatalf("Run(%q): %v", tc.cmd, err)
			}
			if out != tc.stdout || errOut != tc.stderr || exit != tc.exit {
				t.Errorf("Run(%q) = %q, %q, %d; want %q, %q, %d", tc.cmd, out, errOut, exit, tc.stdout, tc.stderr, tc.exit)
			}
		}
		_, errOut, exit, err := n.Run(ctx, "nosuchcmd-rbtest", nil)
		if err != nil || exit != 127 || !strings.Contains(errOut, "not found") {
			t.Errorf("unknown command: %q, %d, %v", errOut, exit, err)
		}
	})

	t.Run("sftp", func(t *testing.T) {
		_, n := open(t, s.profile(t, s.password, s.hostKey), target.Options{})
		c, err := n.SFTP(ctx)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(s.home, "upload.txt")
		f, err := c.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("uploaded\n")); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if out, _, _, err := n.Run(ctx, "cat "+name, nil); err != nil || out != "uploaded\n" {
			t.Fatalf("cat = %q, %v", out, err)
		}
	})

	t.Run("facts on a machine that is no appliance", func(t *testing.T) {
		tg, _ := open(t, s.profile(t, s.password, s.hostKey), target.Options{})
		_, err := tg.Facts(ctx)
		want := "read facts: node vcsa1.lab.test: cat /etc/vmware/deployment.node.type exited with status 1: cat: /etc/vmware/deployment.node.type: No such file or directory"
		if err == nil || err.Error() != want {
			t.Fatalf("Facts = %v", err)
		}
	})

	t.Run("host key", func(t *testing.T) {
		_, n := open(t, s.profile(t, s.password, ""), target.Options{})
		_, _, _, err := n.Run(ctx, "true", nil)
		var pe *target.PinError
		if !errors.As(err, &pe) || pe.Presented != s.hostKey || pe.Kind != target.PinSSH {
			t.Fatalf("unpinned: %v", err)
		}
		var log logRecorder
		_, n = open(t, s.profile(t, s.password, ""), target.Options{TrustOnFirstUse: true, Logf: log.logf})
		if _, _, _, err := n.Run(ctx, "true", nil); err != nil {
			t.Fatal(err)
		}
		if _, hk := n.Pins(); hk != s.hostKey {
			t.Errorf("TOFU pinned %q, want %q", hk, s.hostKey)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "Wrong-pw-rbtest"
		_, n := open(t, s.profile(t, wrong, s.hostKey), target.Options{})
		_, _, _, err := n.Run(ctx, "true", nil)
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") || strings.Contains(err.Error(), wrong) {
			t.Fatalf("Run = %v", err)
		}
	})
}
