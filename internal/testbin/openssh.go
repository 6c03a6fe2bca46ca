package testbin

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
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

	"golang.org/x/crypto/ssh"
)

// OpenSSH is Debian's sshd running on 127.0.0.1 for a throwaway local user
// that logs in with a password, as an appliance's root does.
type OpenSSH struct {
	// Port is the port sshd listens on.
	Port int
	// HostKey is the SHA256 fingerprint of its host key, as profiles pin it.
	HostKey string
	// User and Password log in; Home is the user's home directory.
	User, Password, Home string
}

// StartOpenSSH creates a local user with a random name and password (which
// needs root) and starts /usr/sbin/sshd for it, with password
// authentication only and the internal SFTP server, and waits until it
// accepts connections. The user, its home and the daemon go away when the
// test ends. Without sshd or root, the test is skipped (failed in CI).
func StartOpenSSH(t testing.TB) *OpenSSH {
	t.Helper()
	sshd := Need(t, "/usr/sbin/sshd", "openssh-server")
	useradd := Need(t, "useradd", "passwd")
	chpasswd := Need(t, "chpasswd", "passwd")
	userdel := Need(t, "userdel", "passwd")
	if os.Geteuid() != 0 {
		Unavailable(t, "the OpenSSH test creates a local user and must run as root")
	}
	rnd := make([]byte, 12)
	if _, err := rand.Read(rnd); err != nil {
		t.Fatal(err)
	}
	s := &OpenSSH{User: "rbt" + hex.EncodeToString(rnd[:4]), Password: "Pw-" + hex.EncodeToString(rnd[4:])}

	// The home directory must be reachable by the user, so not under the
	// test's private temporary directory.
	home, err := os.MkdirTemp("", "rbtest-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	s.Home = home
	if out, err := exec.Command(useradd, "-M", "-d", home, "-s", "/bin/sh", s.User).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(userdel, s.User).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", s.User, err, out)
		}
	})
	u, err := user.Lookup(s.User)
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
	cmd.Stdin = strings.NewReader(s.User + ":" + s.Password + "\n")
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
	s.HostKey = ssh.FingerprintSHA256(signer.PublicKey())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `ListenAddress 127.0.0.1
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
`, s.Port, dir, s.User), 0o600); err != nil {
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
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not start:\n%s", log.String())
		}
	}
	return s
}
