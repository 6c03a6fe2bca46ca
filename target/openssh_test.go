package target_test

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"runbook/internal/testbin"

	"runbook/target"
)

// openSSH is Debian's sshd for a throwaway local user that logs in with a
// password (testbin.StartOpenSSH).
type openSSH struct{ *testbin.OpenSSH }

func startOpenSSH(t *testing.T) *openSSH { return &openSSH{testbin.StartOpenSSH(t)} }

func (s *openSSH) profile(t *testing.T, password, hostKey string) *target.Profile {
	return newProfile(t, profileSpec{sshUser: s.User, sshPassword: password, hostKey: hostKey, ports: target.Ports{SSH: s.Port}})
}

func TestOpenSSH(t *testing.T) {
	s := startOpenSSH(t)
	ctx := t.Context()

	t.Run("run", func(t *testing.T) {
		_, n := open(t, s.profile(t, s.Password, s.HostKey), target.Options{})
		tests := []struct {
			cmd, stdin, stdout, stderr string
			exit                       int
		}{
			{cmd: "echo hello", stdout: "hello\n"},
			{cmd: "echo oops >&2; exit 22", stderr: "oops\n", exit: 22},
			{cmd: "cat", stdin: "from stdin\n", stdout: "from stdin\n"},
			{cmd: "pwd", stdout: s.Home + "\n"},
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
		_, n := open(t, s.profile(t, s.Password, s.HostKey), target.Options{})
		c, err := n.SFTP(ctx)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(s.Home, "upload.txt")
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
		tg, _ := open(t, s.profile(t, s.Password, s.HostKey), target.Options{})
		_, err := tg.Facts(ctx)
		want := "read facts: node vcsa1.lab.test: cat /etc/vmware/deployment.node.type exited with status 1: cat: /etc/vmware/deployment.node.type: No such file or directory"
		if err == nil || err.Error() != want {
			t.Fatalf("Facts = %v", err)
		}
	})

	t.Run("host key", func(t *testing.T) {
		_, n := open(t, s.profile(t, s.Password, ""), target.Options{})
		_, _, _, err := n.Run(ctx, "true", nil)
		var pe *target.PinError
		if !errors.As(err, &pe) || pe.Presented != s.HostKey || pe.Kind != target.PinSSH {
			t.Fatalf("unpinned: %v", err)
		}
		var log logRecorder
		_, n = open(t, s.profile(t, s.Password, ""), target.Options{TrustOnFirstUse: true, Logf: log.logf})
		if _, _, _, err := n.Run(ctx, "true", nil); err != nil {
			t.Fatal(err)
		}
		if _, hk := n.Pins(); hk != s.HostKey {
			t.Errorf("TOFU pinned %q, want %q", hk, s.HostKey)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "Wrong-pw-rbtest"
		_, n := open(t, s.profile(t, wrong, s.HostKey), target.Options{})
		_, _, _, err := n.Run(ctx, "true", nil)
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") || strings.Contains(err.Error(), wrong) {
			t.Fatalf("Run = %v", err)
		}
	})
}
