package shell

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runbook/internal/testbin"

	"runbook/engine"
	"runbook/steps/conn"
	"runbook/target"
)

// sshdServer is Debian's OpenSSH sshd on loopback, for a throwaway local
// user that logs in with a password (testbin.StartOpenSSH).
type sshdServer = testbin.OpenSSH

// startSSHD starts Debian's sshd for a throwaway user and returns it with a
// target reaching it as node vcsa1.lab.test; both go away when the test
// ends.
func startSSHD(t *testing.T) (*sshdServer, *target.Target) {
	t.Helper()
	s := testbin.StartOpenSSH(t)
	dir := t.TempDir()
	password := s.Password
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
			Ports:   target.Ports{SSH: s.Port},
			SSH:     target.SSHProfile{Credentials: target.Credentials{User: s.User, PasswordFile: pwFile}, HostKey: s.HostKey},
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
		if _, _, _, err := n.Run(t.Context(), "true", nil); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("sshd does not accept logins: %v", err)
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
		marker := filepath.Join(s.Home, "marker")
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
		p := &putParams{Path: filepath.Join(s.Home, "certool.cfg"), Content: "Country = US\nName = STS\n", Mode: "0600"}
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
		entries, _ := os.ReadDir(s.Home)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".runbook-") {
				t.Errorf("temporary file left: %s", e.Name())
			}
		}
	})

	t.Run("restore", func(t *testing.T) {
		p := &putParams{Path: filepath.Join(s.Home, "new.txt"), Content: "new\n"}
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
