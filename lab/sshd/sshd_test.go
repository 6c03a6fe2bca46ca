package sshd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestExec runs command lines through exec requests, as `ssh host 'cmd'`
// does, and checks stdout, stderr and the exit status. The cases run in
// order on one node, so later ones may rely on files earlier ones wrote.
func TestExec(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	tests := []struct {
		name, cmd, stdin string
		want             result
	}{
		{"exit status and output", "echo hi; false", "", result{stdout: "hi\n", status: 1}},
		{"unknown command", "nosuchcmd --flag", "", result{stderr: "bash: line 1: nosuchcmd: command not found\n", status: 127}},
		{"unknown command on line 2", "true\nnosuchcmd", "", result{stderr: "bash: line 2: nosuchcmd: command not found\n", status: 127}},
		{"missing absolute path", "/usr/lib/vmware-foo/bin/foo-cli", "", result{stderr: "bash: line 1: /usr/lib/vmware-foo/bin/foo-cli: No such file or directory\n", status: 127}},
		{"file that is not a command", "/etc/hostname", "", result{stderr: "bash: line 1: /etc/hostname: Permission denied\n", status: 126}},
		{"command by base name", "vecs-cli store list", "", result{stdout: "MACHINE_SSL_CERT\nTRUSTED_ROOTS\nmachine\nvpxd\n"}},
		{"command by absolute path", "/usr/lib/vmware-vmafd/bin/vecs-cli store list | head -n 1", "", result{stdout: "MACHINE_SSL_CERT\n"}},
		{"command failure", "vecs-cli store frobnicate", "", result{stderr: "Invalid command\n", status: 22}},
		{"builtin by absolute path", "/usr/bin/echo x; /bin/true", "", result{stdout: "x\n"}},
		{"pipeline", "vecs-cli store list | grep -v TRUSTED | wc -l", "", result{stdout: "3\n"}},
		{"pipeline status is the last command's", "false | true", "", result{}},
		{"and or", "false && echo no || echo yes", "", result{stdout: "yes\n"}},
		{"and chain stops", "true && false && echo no", "", result{status: 1}},
		{"negation", "! false && echo negated", "", result{stdout: "negated\n"}},
		{"redirect out and append", "echo one > /tmp/f; echo two >> /tmp/f; cat < /tmp/f", "", result{stdout: "one\ntwo\n"}},
		{"redirect truncates", "echo three > /tmp/f; cat /tmp/f", "", result{stdout: "three\n"}},
		{"redirect stderr to file", "nosuchcmd 2> /tmp/err; cat /tmp/err", "", result{stdout: "bash: line 1: nosuchcmd: command not found\n"}},
		{"stderr into pipe", "nosuchcmd 2>&1 | grep -c 'not found'", "", result{stdout: "1\n"}},
		{"stdout to stderr", "echo oops >&2", "", result{stderr: "oops\n"}},
		{"order of redirections", "nosuchcmd 2>&1 >/dev/null | wc -l", "", result{stdout: "1\n"}},
		{"both to file", "vecs-cli bad &> /tmp/both; cat /tmp/both", "", result{stdout: "Invalid command\n"}},
		{"dev null", "echo hidden >/dev/null; nosuchcmd 2>/dev/null; echo $?", "", result{stdout: "127\n"}},
		{"redirect into missing dir", "echo x > /nope/f", "", result{stderr: "bash: line 1: /nope/f: No such file or directory\n", status: 1}},
		{"variables", `X=1; echo $X ${X} "$X" '$X' ${UNSET:-dflt} ${#X}`, "", result{stdout: "1 1 1 $X dflt 1\n"}},
		{"prefix assignment", "FOO=bar getenv FOO; echo [$FOO]", "", result{stdout: "FOO=bar\n[]\n"}},
		{"export", "export A=b; getenv A HOSTNAME USER HOME", "", result{stdout: "A=b\nHOSTNAME=vcsa1.example.com\nUSER=root\nHOME=/root\n"}},
		{"quoting", `argv 'a  b' "c  $HOSTNAME" e\ \ f "" '' g"h"'i'`, "", result{stdout: "[argv]\n[a  b]\n[c  vcsa1.example.com]\n[e  f]\n[]\n[]\n[ghi]\n"}},
		{"field splitting", `V="x  y"; argv $V "$V"`, "", result{stdout: "[argv]\n[x]\n[y]\n[x  y]\n"}},
		{"command substitution", `echo "$(echo "a  b")" $(echo c   d) ` + "`echo e`", "", result{stdout: "a  b c d e\n"}},
		{"kb vecs one-liner", `for i in $(/usr/lib/vmware-vmafd/bin/vecs-cli store list); do echo STORE $i; /usr/lib/vmware-vmafd/bin/vecs-cli entry list --store $i --text | egrep "Alias|Not After"; done`, "",
			result{stdout: "STORE MACHINE_SSL_CERT\nAlias :\tMACHINE_SSL_CERT-alias\n            Not After : Apr  6 11:57:19 2029 GMT\n" +
				"STORE TRUSTED_ROOTS\nAlias :\tTRUSTED_ROOTS-alias\n            Not After : Apr  6 11:57:19 2029 GMT\n" +
				"STORE machine\nAlias :\tmachine-alias\n            Not After : Apr  6 11:57:19 2029 GMT\n" +
				"STORE vpxd\nAlias :\tvpxd-alias\n            Not After : Apr  6 11:57:19 2029 GMT\n"}},
		{"if else", "if [ -f /etc/hostname ]; then echo file; else echo none; fi; if test -d /nope; then echo dir; elif [ 2 -gt 1 ]; then echo gt; fi", "", result{stdout: "file\ngt\n"}},
		{"while loop", "echo a > /tmp/w; while [ -f /tmp/w ]; do echo loop; rm /tmp/w; done", "", result{stdout: "loop\n"}},
		{"group and subshell", "{ echo a; echo b; } | wc -l; (cd /etc; pwd); pwd", "", result{stdout: "2\n/etc\n/root\n"}},
		{"cd and relative paths", "mkdir -p /tmp/d/e && cd /tmp/d && echo x > e/f && cat /tmp/d/e/f && pwd && cd - >/dev/null && pwd", "", result{stdout: "x\n/tmp/d\n/root\n"}},
		{"cd to missing dir", "cd /nope", "", result{stderr: "bash: line 1: cd: /nope: No such file or directory\n", status: 1}},
		{"exit stops the script", "echo a; exit 4; echo b", "", result{stdout: "a\n", status: 4}},
		{"exit in a pipeline ends only that element", "exit 3 | echo after; echo $?", "", result{stdout: "after\n0\n"}},
		{"stdin to a command", "upper", "hello\nworld\n", result{stdout: "HELLO\nWORLD\n"}},
		{"stdin through a pipeline", "cat | grep -i WORLD | upper", "hello\nworld\n", result{stdout: "WORLD\n"}},
		{"grep options", "grep -i -A 1 error /var/log/vmware/sso/sts.log", "", result{stdout: "line 2 ERROR InvalidTimeRange\nline 3 INFO retry\nline 4 error again\nline 5 INFO done\n"}},
		{"grep context separator", "grep -A1 -e 'line 1' -e 'line 4' /var/log/vmware/sso/sts.log", "", result{stdout: "line 1 INFO start\nline 2 ERROR InvalidTimeRange\n--\nline 4 error again\nline 5 INFO done\n"}},
		{"grep basic regexp", `grep 'ERROR\|done' /var/log/vmware/sso/sts.log | wc -l`, "", result{stdout: "2\n"}},
		{"grep no match", "grep -v line /var/log/vmware/sso/sts.log", "", result{status: 1}},
		{"grep -c -q", "grep -c INFO /var/log/vmware/sso/sts.log; grep -q ERROR /var/log/vmware/sso/sts.log && echo found", "", result{stdout: "3\nfound\n"}},
		{"egrep several files", `egrep -h "^[AB]$" /etc/ssl/certs/a.pem /etc/ssl/certs/b.pem; grep A /etc/ssl/certs/a.pem /etc/ssl/certs/b.pem`, "", result{stdout: "A\nB\n/etc/ssl/certs/a.pem:A\n"}},
		{"head and tail", "head -2 /var/log/vmware/sso/sts.log | tail -n 1; tail -n +5 /var/log/vmware/sso/sts.log", "", result{stdout: "line 2 ERROR InvalidTimeRange\nline 5 INFO done\n"}},
		{"head of several files", "head -n 1 /etc/hostname /etc/ssl/certs/a.pem /nope", "", result{stdout: "==> /etc/hostname <==\n" + testHost + "\n\n==> /etc/ssl/certs/a.pem <==\nA\n", stderr: "head: cannot open '/nope' for reading: No such file or directory\n", status: 1}},
		{"mv missing", "mv /nope /tmp/x", "", result{stderr: "mv: cannot stat '/nope': No such file or directory\n", status: 1}},
		{"usage hint", "rm", "", result{stderr: "rm: missing operand\nTry 'rm --help' for more information.\n", status: 1}},
		{"wc", "wc -l < /var/log/vmware/sso/sts.log; wc -l /etc/hostname", "", result{stdout: "5\n1 /etc/hostname\n"}},
		{"base64 round trip", "echo hello | base64; echo hello | base64 | base64 -d", "", result{stdout: "aGVsbG8K\nhello\n"}},
		{"test and [", "[ -e /etc ] && [ ! -f /etc ] && test -s /etc/hostname && [ abc = abc ] && [ -z '' ] && echo ok", "", result{stdout: "ok\n"}},
		{"[ without ]", "[ -f /etc/hostname", "", result{stderr: "bash: line 1: [: missing `]'\n", status: 2}},
		{"test integer error", "test abc -eq 1", "", result{stderr: "bash: line 1: test: abc: integer expression expected\n", status: 2}},
		{"glob", "ls /etc/ssl/certs/*.pem; echo /etc/ssl/certs/*.der; echo '/etc/ssl/certs/*.pem'", "", result{stdout: "/etc/ssl/certs/a.pem\n/etc/ssl/certs/b.pem\n/etc/ssl/certs/*.der\n/etc/ssl/certs/*.pem\n"}},
		{"ls dir", "ls /etc/ssl/certs", "", result{stdout: "a.pem\nb.pem\nc.crt\n"}},
		{"ls missing", "ls /nope", "", result{stderr: "ls: cannot access '/nope': No such file or directory\n", status: 2}},
		{"cat missing", "cat /etc/hostname /nope", "", result{stdout: testHost + "\n", stderr: "cat: /nope: No such file or directory\n", status: 1}},
		{"cat directory", "cat /etc", "", result{stderr: "cat: /etc: Is a directory\n", status: 1}},
		{"mkdir", "mkdir /tmp/m && mkdir /tmp/m", "", result{stderr: "mkdir: cannot create directory ‘/tmp/m’: File exists\n", status: 1}},
		{"mkdir -p", "mkdir -p /tmp/m/n/o && test -d /tmp/m/n/o", "", result{}},
		{"rm", "rm /nope", "", result{stderr: "rm: cannot remove '/nope': No such file or directory\n", status: 1}},
		{"rm -f", "rm -f /nope", "", result{}},
		{"rm dir needs -r", "rm /tmp/m", "", result{stderr: "rm: cannot remove '/tmp/m': Is a directory\n", status: 1}},
		{"rm -rf", "rm -rf /tmp/m && ls /tmp/m", "", result{stderr: "ls: cannot access '/tmp/m': No such file or directory\n", status: 2}},
		{"chmod checks existence only", "chmod 600 /etc/hostname && chmod u+x /nope", "", result{stderr: "chmod: cannot access '/nope': No such file or directory\n", status: 1}},
		{"chmod bad mode", "chmod zz /etc/hostname", "", result{stderr: "chmod: invalid mode: ‘zz’\nTry 'chmod --help' for more information.\n", status: 1}},
		{"cp mv", "cp /etc/hostname /tmp/h && mv /tmp/h /tmp/h2 && cat /tmp/h2 && test ! -e /tmp/h", "", result{stdout: testHost + "\n"}},
		{"tee", "echo t | tee /tmp/t; cat /tmp/t", "", result{stdout: "t\nt\n"}},
		{"sleep", "sleep 0.001 && echo slept", "", result{stdout: "slept\n"}},
		{"hostname pwd", "hostname; hostname -s; pwd", "", result{stdout: testHost + "\nvcsa1\n/root\n"}},
		{"dot-dot stays in the tree", "cat /../../../etc/hostname; cd /../..; pwd", "", result{stdout: testHost + "\n/\n"}},
		{"Path is confined", "cd /etc; hostpath ../../../../etc/hostname /var/../../x", "", result{stdout: "../../../../etc/hostname -> etc/hostname rel=etc/hostname\n/var/../../x -> x rel=x\n"}},
		{"comment and line continuation", "echo a \\\n  b # not printed", "", result{stdout: "a b\n"}},
		{"syntax error token", "; ls", "", result{stderr: "bash: -c: line 1: syntax error near unexpected token `;'\nbash: -c: line 1: `; ls'\n", status: 2}},
		{"syntax error eof", "echo a |", "", result{stderr: "bash: -c: line 2: syntax error: unexpected end of file\n", status: 2}},
		{"lines before a syntax error run", "echo a\nls |", "", result{stdout: "a\n", stderr: "bash: -c: line 3: syntax error: unexpected end of file\n", status: 2}},
		{"a line with a syntax error does not run", "echo a\necho b; ; echo c", "", result{stdout: "a\n", stderr: "bash: -c: line 2: syntax error near unexpected token `;'\nbash: -c: line 2: `echo b; ; echo c'\n", status: 2}},
		{"unterminated quote", "echo 'abc", "", result{stderr: "bash: -c: line 1: unexpected EOF while looking for matching `''\n", status: 2}},
		{"no tty without pty", "ttycheck", "", result{stdout: "no tty\n", status: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, c, tt.cmd, tt.stdin)
			if got != tt.want {
				t.Errorf("%s\ngot  %+v\nwant %+v", tt.cmd, got, tt.want)
			}
		})
	}
}

// TestExecSymlinkEscape checks that commands cannot read through a link
// that points outside the node's tree.
func TestExecSymlinkEscape(t *testing.T) {
	root := newTree(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "etc", "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../../../"+secret, filepath.Join(root, "etc", "escape2")); err != nil {
		t.Fatal(err)
	}
	c := dial(t, startServer(t, Config{Root: root}))
	got := run(t, c, "cat /etc/escape; cat /etc/escape2; grep secret /etc/escape; echo x > /etc/escape", "")
	want := result{
		stderr: "cat: /etc/escape: Permission denied\ncat: /etc/escape2: Permission denied\n" +
			"grep: /etc/escape: Permission denied\nbash: line 1: /etc/escape: Permission denied\n",
		status: 1,
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if b, _ := os.ReadFile(secret); string(b) != "host secret\n" {
		t.Errorf("secret changed to %q", b)
	}
}

func TestAuth(t *testing.T) {
	srv := startServer(t, Config{})
	tests := []struct {
		name, user, password string
		ok                   bool
	}{
		{"right password", testUser, testPassword, true},
		{"wrong password", testUser, "wrong", false},
		{"empty password", testUser, "", false},
		{"wrong user", "admin", testPassword, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clientConfig(srv, tt.password)
			cfg.User = tt.user
			c, err := ssh.Dial("tcp", srv.Addr(), cfg)
			if tt.ok != (err == nil) {
				t.Fatalf("dial: %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "unable to authenticate") {
					t.Errorf("error %q does not say authentication failed", err)
				}
				return
			}
			c.Close()
		})
	}
}

func TestHostKey(t *testing.T) {
	srv := startServer(t, Config{})
	other := startServer(t, Config{})
	if srv.HostKeyFingerprint() == other.HostKeyFingerprint() {
		t.Fatal("two servers generated the same host key")
	}
	if !strings.HasPrefix(srv.HostKeyFingerprint(), "SHA256:") {
		t.Errorf("fingerprint %q", srv.HostKeyFingerprint())
	}
	// A client pinning another server's key must refuse to connect.
	if _, err := ssh.Dial("tcp", srv.Addr(), clientConfig(other, testPassword)); err == nil {
		t.Fatal("dial succeeded with the wrong pinned host key")
	}
	// A given host key is used as is.
	fixed := startServer(t, Config{HostKey: signerOf(t, srv)})
	if fixed.HostKeyFingerprint() != srv.HostKeyFingerprint() {
		t.Errorf("Config.HostKey ignored")
	}
}

func signerOf(t *testing.T, s *Server) ssh.Signer {
	t.Helper()
	return s.signer
}

func TestAudit(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	run(t, c, "vecs-cli store list | wc -l", "")
	run(t, c, "dir-cli service list --login administrator@vsphere.local --password 'Secr3t pw!' --server-name localhost", "")
	run(t, c, "dir-cli service list --password=hunter2", "")
	want := []string{
		"vecs-cli store list | wc -l",
		"dir-cli service list --login administrator@vsphere.local --password ******** --server-name localhost",
		"dir-cli service list --password=********",
	}
	got := srv.Audit()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit\ngot  %q\nwant %q", got, want)
	}
}

func TestMaskPasswords(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ls", "ls"},
		{"x --password p", "x --password ********"},
		{"x --password  'a b' --next", "x --password ******** --next"},
		{`x --password "a\" b";echo`, "x --password ********;echo"},
		{"x --password=p|y", "x --password=********|y"},
		{"x --passwordfile f", "x --passwordfile f"},
		{"x --password", "x --password"},
	}
	for _, tt := range tests {
		if got := maskPasswords(tt.in); got != tt.want {
			t.Errorf("maskPasswords(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEnvRequest(t *testing.T) {
	c := dial(t, startServer(t, Config{}))
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Setenv("LANG", "en_US.UTF-8"); err != nil {
		t.Fatal(err)
	}
	out, err := s.Output("getenv LANG")
	if err != nil || string(out) != "LANG=en_US.UTF-8\n" {
		t.Errorf("got %q, %v", out, err)
	}
}

func TestConcurrentSessions(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			r, err := tryRun(c, "vecs-cli store list | grep -c TRUSTED; echo x > /tmp/c"+string(rune('0'+i)), "")
			if err != nil || r != (result{stdout: "1\n"}) {
				t.Errorf("session %d: %+v %v", i, r, err)
			}
		})
	}
	wg.Wait()
	if n := len(srv.Audit()); n != 8 {
		t.Errorf("audit has %d lines, want 8", n)
	}
}

func TestCloseCancelsCommands(t *testing.T) {
	srv, err := Start(context.Background(), Config{User: testUser, Password: testPassword, Root: newTree(t)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", srv.Addr(), clientConfig(srv, testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("sleep 3600"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err == nil {
		t.Fatal("command survived Close")
	}
	if _, err := ssh.Dial("tcp", srv.Addr(), clientConfig(srv, testPassword)); err == nil {
		t.Fatal("dial succeeded after Close")
	}
}

func TestStartContextStopsServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, Config{User: testUser, Password: testPassword, Root: newTree(t)})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ssh.Dial("tcp", srv.Addr(), clientConfig(srv, testPassword)); err == nil {
		t.Fatal("dial succeeded after the context was cancelled")
	}
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no user", Config{Root: t.TempDir()}},
		{"no root", Config{User: "root"}},
		{"missing root", Config{User: "root", Root: filepath.Join(t.TempDir(), "nope")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := Start(context.Background(), tt.cfg)
			if err == nil {
				srv.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.HasPrefix(err.Error(), "start sshd: ") {
				t.Errorf("error %q", err)
			}
		})
	}
}

// TestFaults checks each injection point, failing the first call for the
// op: ErrDrop resets the connection and other errors refuse the operation.
// A second connection must then work.
func TestFaults(t *testing.T) {
	tests := []struct {
		name string
		op   string
		err  error
		// check runs the client side against a server that fails op.
		check func(t *testing.T, srv *Server)
	}{
		{"drop at auth", OpAuth, ErrDrop, func(t *testing.T, srv *Server) {
			_, err := ssh.Dial("tcp", srv.Addr(), clientConfig(srv, testPassword))
			if err == nil || strings.Contains(err.Error(), "unable to authenticate") {
				t.Fatalf("dial: %v, want a dropped connection", err)
			}
		}},
		{"refuse auth", OpAuth, errors.New("locked"), func(t *testing.T, srv *Server) {
			_, err := ssh.Dial("tcp", srv.Addr(), clientConfig(srv, testPassword))
			if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
				t.Fatalf("dial: %v, want authentication refused", err)
			}
		}},
		{"drop at session", OpSession, ErrDrop, func(t *testing.T, srv *Server) {
			c := dial(t, srv)
			if _, err := c.NewSession(); err == nil {
				t.Fatal("session opened on a dropped connection")
			}
		}},
		{"refuse session", OpSession, errors.New("too many sessions"), func(t *testing.T, srv *Server) {
			c := dial(t, srv)
			_, err := c.NewSession()
			if err == nil || !strings.Contains(err.Error(), "too many sessions") {
				t.Fatalf("new session: %v", err)
			}
		}},
		{"drop at exec", OpExec, ErrDrop, func(t *testing.T, srv *Server) {
			c := dial(t, srv)
			r, err := tryRun(c, "echo hi", "")
			if err == nil || r.stdout != "" {
				t.Fatalf("run: %+v, %v; want a dropped connection", r, err)
			}
			var exit *ssh.ExitError
			if errors.As(err, &exit) {
				t.Fatalf("got exit status %d", exit.ExitStatus())
			}
		}},
		{"refuse exec", OpExec, errors.New("no"), func(t *testing.T, srv *Server) {
			c := dial(t, srv)
			if _, err := tryRun(c, "echo hi", ""); err == nil {
				t.Fatal("exec accepted")
			}
			// The connection survives a refused request.
			if r, err := tryRun(c, "echo hi", ""); err != nil || r.stdout != "hi\n" {
				t.Fatalf("second exec: %+v %v", r, err)
			}
		}},
		{"drop at a command", OpCommandPrefix + "vecs-cli", ErrDrop, func(t *testing.T, srv *Server) {
			c := dial(t, srv)
			r, err := tryRun(c, "echo before; vecs-cli store list; echo after", "")
			if err == nil || strings.Contains(r.stdout, "after") || strings.Contains(r.stdout, "MACHINE") {
				t.Fatalf("run: %+v, %v; want a dropped connection", r, err)
			}
		}},
		{"fail a command", OpCommandPrefix + "vecs-cli", errors.New("vmafdd is not running"), func(t *testing.T, srv *Server) {
			c := dial(t, srv)
			got := run(t, c, "vecs-cli store list; echo $?", "")
			want := result{stdout: "1\n", stderr: "bash: line 1: vecs-cli: vmafdd is not running\n"}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			srv := startServer(t, Config{Faults: FaultFunc(func(op string) error {
				mu.Lock()
				first := !contains(seen, op)
				seen = append(seen, op)
				mu.Unlock()
				if op == tt.op && first {
					return tt.err
				}
				return nil
			})})
			tt.check(t, srv)
			mu.Lock()
			called := contains(seen, tt.op)
			mu.Unlock()
			if !called {
				t.Errorf("Before(%q) never called", tt.op)
			}
			if r, err := tryRun(dial(t, srv), "true", ""); err != nil || r.status != 0 {
				t.Errorf("next connection: %+v %v", r, err)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestFaultSlow holds an exec in Before and checks the client waits for it.
func TestFaultSlow(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := startServer(t, Config{Faults: FaultFunc(func(op string) error {
		if op == OpExec {
			close(entered)
			<-release
		}
		return nil
	})})
	c := dial(t, srv)
	done := make(chan result, 1)
	go func() {
		r, err := tryRun(c, "echo slow", "")
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	<-entered
	select {
	case r := <-done:
		t.Fatalf("exec finished while Before was blocking: %+v", r)
	default:
	}
	close(release)
	if r := <-done; r != (result{stdout: "slow\n"}) {
		t.Errorf("got %+v", r)
	}
}
