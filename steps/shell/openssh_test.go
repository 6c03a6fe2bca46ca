package shell

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

	"runbook/internal/testbin"

	"golang.org/x/crypto/ssh"

	"runbook/engine"
	"runbook/steps/conn"
	"runbook/target"
)

// sshdServer is Debian's OpenSSH sshd on loopback, for a throwaway local
// user that logs in with a password.
type sshdServer struct {
	port    int
	hostKey string
	user    string
	home    string
}

// startSSHD creates a user with a random name and password (which needs
// root) and starts /usr/sbin/sshd for it on a free loopback port with
// password authentication only. It returns the server and a target
// reaching it as node vcsa1.lab.test; both go away when the test ends.
func startSSHD(t *testing.T) (*sshdServer, *target.Target) {
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
	s := &sshdServer{user: "rbs" + hex.EncodeToString(rnd[:4])}
	password := "Pw-" + hex.EncodeToString(rnd[4:])

	home, err := os.MkdirTemp("", "rbshell-home-")
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
	cmd := exec.Command(chpasswd)
	cmd.Stdin = strings.NewReader(s.user + ":" + password + "\n")
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
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
`, s.port, dir, s.user), 0o600); err != nil {
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

	pwFile := filepath.Join(dir, "ssh.password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prof := &target.Profile{
		Domain: "vsphere.local",
		SSO:    target.Credentials{User: "administrator@vsphere.local", PasswordFile: pwFile},
		Nodes: []target.NodeProfile{{
			PNID:    "vcsa1.lab.test",
			Address: "127.0.0.1",
			Ports:   target.Ports{SSH: s.port},
			SSH:     target.SSHProfile{Credentials: target.Credentials{User: s.user, PasswordFile: pwFile}, HostKey: s.hostKey},
		}},
	}
	tg, err := target.Open(t.Context(), prof, target.Options{Name: "openssh"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	// Wait until sshd accepts a login.
	n, _ := tg.Node("")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("sshd exited: %v\n%s", err, log.String())
		default:
		}
		if _, _, _, err := n.Run(t.Context(), "true", nil); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("sshd does not accept logins: %v\n%s", err, log.String())
		}
	}
	return s, tg
}

// TestOpenSSH runs ssh.exec, sftp.put and sftp.get against Debian's sshd.
func TestOpenSSH(t *testing.T) {
	s, tg := startSSHD(t)
	ctx := t.Context()
	env := newEnv(t, tg)

	t.Run("ssh.exec", func(t *testing.T) {
		marker := filepath.Join(s.home, "marker")
		p := &execParams{Command: "printf '%s' \"$(cat)\" > " + marker, Stdin: "from stdin " + testSecret, Check: "test -s " + marker}
		pl, err := planExec(ctx, env, p)
		if err != nil || pl.InPlace {
			t.Fatalf("plan %+v, %v", pl, err)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("Plan ran the command")
		}
		if v, err := checkExec(ctx, env, p); err != nil || v.State != engine.NotApplied {
			t.Fatalf("Check before = %v, %v", v.State, err)
		}
		if _, err := applyExec(ctx, env, p); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(marker); err != nil || string(got) != "from stdin "+testSecret {
			t.Fatalf("marker %q, %v", got, err)
		}
		if v, err := checkExec(ctx, env, p); err != nil || v.State != engine.Applied {
			t.Fatalf("Check after = %v, %v", v.State, err)
		}
		out, err := applyExec(ctx, env, &execParams{Command: "cat " + marker + "; echo oops >&2; exit 22", Effect: "read", OkExit: []int{22}})
		if err != nil || out.Stdout != "from stdin ***" || out.Stderr != "oops\n" || out.ExitCode != 22 {
			t.Errorf("read: %+v, %v", out, err)
		}
		_, err = applyExec(ctx, env, &execParams{Command: "nosuchcmd-rbtest", Effect: "read"})
		if err == nil || !strings.Contains(err.Error(), "exited with code 127") || !strings.Contains(err.Error(), "not found") {
			t.Errorf("unknown command: %v", err)
		}
	})

	t.Run("sftp.put and sftp.get", func(t *testing.T) {
		p := &putParams{Path: filepath.Join(s.home, "certool.cfg"), Content: "Country = US\nName = STS\n", Mode: "0600"}
		for _, content := range []string{p.Content, "Country = DS\n"} {
			p.Content = content
			env := *env
			env.BackupDir = t.TempDir()
			if v, err := checkPut(ctx, &env, p); err != nil || v.State != engine.NotApplied {
				t.Fatalf("Check before = %v, %v", v.State, err)
			}
			if _, err := backupPut(ctx, &env, p); err != nil {
				t.Fatal(err)
			}
			if _, err := applyPut(ctx, &env, p); err != nil {
				t.Fatal(err)
			}
			if v, err := checkPut(ctx, &env, p); err != nil || v.State != engine.Applied {
				t.Fatalf("Check after = %v %q, %v", v.State, v.Detail, err)
			}
			got, err := runGet(ctx, &env, &getParams{Path: p.Path, To: "copy.cfg"})
			if err != nil || got.Content != content || got.SHA256 != sum(content) {
				t.Fatalf("get = %+v, %v", got, err)
			}
		}
		fi, err := os.Stat(p.Path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, %v", fi, err)
		}
		entries, _ := os.ReadDir(s.home)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".runbook-") {
				t.Errorf("temporary file left: %s", e.Name())
			}
		}
	})

	t.Run("restore", func(t *testing.T) {
		p := &putParams{Path: filepath.Join(s.home, "new.txt"), Content: "new\n"}
		env := *env
		env.BackupDir = t.TempDir()
		if _, err := backupPut(ctx, &env, p); err != nil {
			t.Fatal(err)
		}
		if _, err := applyPut(ctx, &env, p); err != nil {
			t.Fatal(err)
		}
		n, _ := conn.Node(&env, "")
		if err := Restore(ctx, n, env.BackupDir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p.Path); !os.IsNotExist(err) {
			t.Errorf("Restore left the new file: %v", err)
		}
	})
}
