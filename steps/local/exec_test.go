package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"runbook/internal/testbin"

	"runbook/steps/shellquote"

	"runbook/engine"
)

// sh runs a shell script through exec's argv.
func sh(script string, args ...string) []string {
	return append([]string{"/bin/sh", "-c", script, "sh"}, args...)
}

func TestExecRun(t *testing.T) {
	t.Setenv("RUNBOOK_TEST_INHERITED", "from-parent")
	dir := t.TempDir()
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    execParams
		want execOutputs
	}{
		{"stdout and stderr", execParams{Argv: sh("echo out; echo err >&2")},
			execOutputs{Stdout: "out\n", Stderr: "err\n"}},
		{"arguments are not split", execParams{Argv: sh(`printf '<%s>' "$@"`, "a b", "it's", "")},
			execOutputs{Stdout: "<a b><it's><>"}},
		{"stdin", execParams{Argv: []string{"cat"}, Stdin: "line 1\nline 2\n"},
			execOutputs{Stdout: "line 1\nline 2\n"}},
		{"no stdin reads end of file", execParams{Argv: []string{"cat"}},
			execOutputs{}},
		{"env added and inherited", execParams{Argv: sh(`printf '%s %s' "$FOO" "$RUNBOOK_TEST_INHERITED"`), Env: map[string]string{"FOO": "bar"}},
			execOutputs{Stdout: "bar from-parent"}},
		{"env overrides the inherited value", execParams{Argv: sh(`printf %s "$RUNBOOK_TEST_INHERITED"`), Env: map[string]string{"RUNBOOK_TEST_INHERITED": "mine"}},
			execOutputs{Stdout: "mine"}},
		{"dir", execParams{Argv: []string{"pwd", "-P"}, Dir: dir},
			execOutputs{Stdout: realDir + "\n"}},
		{"effect read", execParams{Argv: sh("echo read"), Effect: "read"},
			execOutputs{Stdout: "read\n"}},
		{"secret in output redacted", execParams{Argv: sh(`echo "pw=$PW"; echo "bad $PW" >&2`), Env: map[string]string{"PW": "hunter2"}},
			execOutputs{Stdout: "pw=***\n", Stderr: "bad ***\n"}},
		{"secret in stdin is allowed", execParams{Argv: []string{"wc", "-c"}, Stdin: "hunter2"},
			execOutputs{Stdout: "7\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(t, "hunter2")
			got, err := applyExec(context.Background(), env, &tc.p)
			if err != nil {
				t.Fatalf("applyExec: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestExecFailures(t *testing.T) {
	missingDir := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name     string
		p        execParams
		wantErr  []string
		wantCode int
		notInErr string
	}{
		{"non-zero exit with stderr tail",
			execParams{Argv: sh("for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3")},
			[]string{"exited with code 3: line3 | line4 | line5 | line6 | line7"}, 3, "line2"},
		{"non-zero exit without stderr", execParams{Argv: []string{"false"}},
			[]string{"false exited with code 1"}, 1, ":"},
		{"stderr redacted in the error",
			execParams{Argv: sh(`echo "login failed for $PW" >&2; exit 2`), Env: map[string]string{"PW": "hunter2"}},
			[]string{"exited with code 2: login failed for ***"}, 2, "hunter2"},
		{"killed by a signal", execParams{Argv: sh("kill -9 $$")},
			[]string{"signal: killed"}, 0, ""},
		{"program not found", execParams{Argv: []string{"runbook-no-such-program"}},
			[]string{"run runbook-no-such-program:", "not found"}, 0, ""},
		{"missing dir", execParams{Argv: []string{"true"}, Dir: missingDir},
			[]string{"run true:", "no such file or directory"}, 0, ""},
		{"empty argv", execParams{}, []string{"argv: no program given"}, 0, ""},
		{"bad effect", execParams{Argv: []string{"true"}, Effect: "maybe"}, []string{`effect: "maybe" is neither read nor write`}, 0, ""},
		{"check on a read command", execParams{Argv: []string{"true"}, Effect: "read", Check: []string{"true"}},
			[]string{"only a write command takes a check"}, 0, ""},
		{"bad env name", execParams{Argv: []string{"true"}, Env: map[string]string{"A=B": "x"}}, []string{`env: "A=B" is not a variable name`}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(t, "hunter2")
			got, err := applyExec(context.Background(), env, &tc.p)
			if err == nil {
				t.Fatalf("no error; outputs %+v", got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.notInErr != "" && strings.Contains(err.Error(), tc.notInErr) {
				t.Errorf("error %q contains %q", err, tc.notInErr)
			}
			if got.ExitCode != tc.wantCode {
				t.Errorf("exit code %d, want %d", got.ExitCode, tc.wantCode)
			}
		})
	}
}

// TestExecRefusesSecretInArgv checks that a secret anywhere in argv or
// check stops the step before anything runs.
func TestExecRefusesSecretInArgv(t *testing.T) {
	tests := []struct {
		name  string
		argv  []string
		check []string
		where string
	}{
		{"whole argument", []string{"touch", "MARKER", "hunter2"}, nil, "argv[2]"},
		{"inside an argument", []string{"touch", "MARKER", "--password=hunter2"}, nil, "argv[2]"},
		{"in the check", []string{"touch", "MARKER"}, []string{"test", "-n", "hunter2"}, "check[2]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(t, "", "hunter2") // an empty secret must not match everything
			marker := filepath.Join(t.TempDir(), "ran")
			argv := append([]string{}, tc.argv...)
			argv[1] = marker
			p := &execParams{Argv: argv, Check: tc.check}
			_, applyErr := applyExec(context.Background(), env, p)
			_, planErr := planExec(context.Background(), env, p)
			_, checkErr := checkExec(context.Background(), env, p)
			for _, err := range []error{applyErr, planErr, checkErr} {
				want := tc.where + ": a secret may not be passed in argv (child argv is visible in ps); pass it in env: or stdin: instead"
				if err == nil || err.Error() != want {
					t.Errorf("error %v, want %q", err, want)
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the command ran")
			}
		})
	}
}

func TestExecContext(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"timeout", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, context.DeadlineExceeded},
		{"interrupt", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(t)
			pidFile := filepath.Join(t.TempDir(), "pid")
			ctx, cancel := tc.ctx()
			defer cancel()
			// The shell starts a grandchild that holds stdout open; killing
			// only the shell would leave it running.
			p := &execParams{Argv: sh(`sleep 300 & echo $! > "$1"; wait`, pidFile)}
			_, err := applyExec(ctx, env, p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			waitGone(t, pid)
		})
	}
}

// waitGone waits for process pid to have exited (a zombie counts as
// exited: init may be slow to reap it).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	stat := filepath.Join("/proc", strconv.Itoa(pid), "stat")
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		testbin.Unavailable(t, "no /proc to inspect processes")
	}
	for range 200 {
		b, err := os.ReadFile(stat)
		if err != nil {
			return // gone
		}
		// The state follows the parenthesised command name.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i:]), ") Z") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("process %d still runs after the step was stopped", pid)
}

func TestExecOutputLimit(t *testing.T) {
	env, out := testEnv(t)
	p := &execParams{Argv: sh("head -c 3000000 /dev/zero | tr '\\0' a; echo tail >&2")}
	got, err := applyExec(context.Background(), env, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Stdout) != outputLimit || strings.Trim(got.Stdout, "a") != "" {
		t.Errorf("stdout has %d bytes, want %d of 'a'", len(got.Stdout), outputLimit)
	}
	if got.Stderr != "tail\n" {
		t.Errorf("stderr %q", got.Stderr)
	}
	if !strings.Contains(out.String(), "stdout cut to 1048576 bytes") {
		t.Errorf("no note about the cut: %q", out)
	}
}

// TestExecWrite walks an idempotent command through the write contract:
// plan, apply, check, and plan again.
func TestExecWrite(t *testing.T) {
	ctx := context.Background()
	env, _ := testEnv(t)
	file := filepath.Join(t.TempDir(), "done")
	p := &execParams{
		Argv:  sh(`echo applied > "$1"`, file),
		Check: []string{"test", "-f", file},
	}

	pl, err := planExec(ctx, env, p)
	if err != nil {
		t.Fatal(err)
	}
	if pl.InPlace {
		t.Error("plan: in place before apply")
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("plan ran the command")
	}
	v, err := checkExec(ctx, env, p)
	if err != nil || v.State != engine.NotApplied {
		t.Fatalf("check before apply: %v %q, %v; want not applied", v.State, v.Detail, err)
	}
	if files, err := backupExec(ctx, env, p); err != nil || len(files) != 0 {
		t.Errorf("backup: %v, %v; want nothing", files, err)
	}
	if _, err := applyExec(ctx, env, p); err != nil {
		t.Fatal(err)
	}
	v, err = checkExec(ctx, env, p)
	if err != nil || v.State != engine.Applied {
		t.Fatalf("check after apply: %v %q, %v; want applied", v.State, v.Detail, err)
	}
	if want := "check test -f " + file + " exited 0"; v.Detail != want {
		t.Errorf("detail %q, want %q", v.Detail, want)
	}
	pl, err = planExec(ctx, env, p)
	if err != nil || !pl.InPlace {
		t.Errorf("plan after apply: in place %v, %v; want in place", pl.InPlace, err)
	}
	if f, ok := pl.Facts.(execFacts); !ok || !f.InPlace {
		t.Errorf("plan facts %#v do not record in place", pl.Facts)
	}
}

func TestExecPlan(t *testing.T) {
	tests := []struct {
		name    string
		p       execParams
		want    engine.Plan
		wantErr string
	}{
		{"no check",
			execParams{Argv: []string{"service-control", "--start", "vmware-stsd"}},
			engine.Plan{Summary: "run service-control --start vmware-stsd",
				Changes: []engine.Change{{Action: "run", Object: "service-control --start vmware-stsd"}}}, ""},
		{"quoting and dir",
			execParams{Argv: []string{"echo", "a b", "it's", "", "x=1,y"}, Dir: "/tmp/my dir"},
			engine.Plan{Summary: `run echo 'a b' 'it'\''s' '' x=1,y`,
				Changes: []engine.Change{{Action: "run", Object: `echo 'a b' 'it'\''s' '' x=1,y (in '/tmp/my dir')`}}}, ""},
		{"check exits 0",
			execParams{Argv: []string{"touch", "x"}, Check: []string{"true"}},
			engine.Plan{Summary: "run touch x", InPlace: true,
				Changes: []engine.Change{{Action: "run", Object: "touch x"}}}, ""},
		{"check exits 1",
			execParams{Argv: []string{"touch", "x"}, Check: sh("exit 1")},
			engine.Plan{Summary: "run touch x",
				Changes: []engine.Change{{Action: "run", Object: "touch x"}}}, ""},
		{"check cannot start",
			execParams{Argv: []string{"touch", "x"}, Check: []string{"runbook-no-such-check"}},
			engine.Plan{}, "check: run runbook-no-such-check:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(t)
			got, err := planExec(context.Background(), env, &tc.p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.Facts = nil
			if got.Summary != tc.want.Summary || got.InPlace != tc.want.InPlace ||
				len(got.Changes) != 1 || got.Changes[0] != tc.want.Changes[0] {
				t.Errorf("plan %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestExecCheck(t *testing.T) {
	tests := []struct {
		name   string
		check  []string
		state  engine.CheckState
		detail string
	}{
		{"exit 0", []string{"true"}, engine.Applied, "check true exited 0"},
		{"exit 1", []string{"false"}, engine.NotApplied, "check false exited 1"},
		{"exit 4", sh("exit 4"), engine.NotApplied, "check /bin/sh -c 'exit 4' sh exited 4"},
		{"no check", nil, engine.Unknown, "no check command; cannot tell whether it ran"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(t)
			v, err := checkExec(context.Background(), env, &execParams{Argv: []string{"true"}, Check: tc.check})
			if err != nil {
				t.Fatal(err)
			}
			if v.State != tc.state || v.Detail != tc.detail {
				t.Errorf("verdict %v %q, want %v %q", v.State, v.Detail, tc.state, tc.detail)
			}
		})
	}
	// The check sees the command's env and dir.
	env, _ := testEnv(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("v1"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &execParams{Argv: []string{"true"}, Dir: dir, Env: map[string]string{"WANT": "v1"},
		Check: sh(`test "$(cat f)" = "$WANT"`)}
	if v, err := checkExec(context.Background(), env, p); err != nil || v.State != engine.Applied {
		t.Errorf("check with env and dir: %v %q, %v", v.State, v.Detail, err)
	}
}

func TestExecReadOnly(t *testing.T) {
	for effect, want := range map[string]bool{"read": true, "write": false, "": false} {
		if got := execStep.ReadOnly(&execParams{Effect: effect}); got != want {
			t.Errorf("ReadOnly(effect %q) = %v, want %v", effect, got, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"/usr/lib/vmware-vmafd/bin/vecs-cli", "/usr/lib/vmware-vmafd/bin/vecs-cli"},
		{"--store=MACHINE_SSL_CERT", "--store=MACHINE_SSL_CERT"},
		{"", "''"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
		{"a;b", "'a;b'"},
		{"é", "'é'"},
	}
	for _, tc := range tests {
		if got := shellquote.Quote(tc.in); got != tc.want {
			t.Errorf("shellquote.Quote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
