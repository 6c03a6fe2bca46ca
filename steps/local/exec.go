package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"runbook/steps/shellquote"

	"runbook/engine"
)

// execParams are the params of exec.
type execParams struct {
	Argv   []string          `yaml:"argv" required:"true" doc:"The program and its arguments, run directly without a shell. No secret may appear here: any user of the machine can read a process's arguments (ps); pass secrets through env or stdin."`
	Env    map[string]string `yaml:"env" doc:"Variables set for the program, on top of the environment the runbook runs in."`
	Dir    string            `yaml:"dir" doc:"The working directory; the runbook's own when empty."`
	Stdin  string            `yaml:"stdin" doc:"Text written to the program's standard input; when empty the program reads end of file."`
	Effect string            `yaml:"effect" enum:"read,write" default:"write" doc:"write (the default) for a command that changes something: dry-runs plan it without running it, and check verifies it. read for a command that changes nothing: it runs in dry-runs too, and takes no check."`
	Check  []string          `yaml:"check" doc:"For effect write, a read-only command (program and arguments) whose exit status 0 means the change is already in place. It runs while planning, in dry-runs too, so it must not change anything; it runs again after the command to verify it, and on resume to tell whether an interrupted command took effect. It gets the same env and dir as the command, and no stdin."`
}

// execOutputs are the outputs of exec.
type execOutputs struct {
	// Stdout is what the program printed, secrets redacted, at most 1 MiB.
	Stdout string `json:"stdout" expr:"stdout"`
	// Stderr is what the program printed to standard error, likewise.
	Stderr string `json:"stderr" expr:"stderr"`
	// ExitCode is the program's exit status.
	ExitCode int `json:"exit_code" expr:"exit_code"`
}

// execFacts are what an exec plan relies on, besides its params.
type execFacts struct {
	InPlace bool `json:"inPlace"`
}

var execStep = engine.Write[execParams, execOutputs]{
	Spec: engine.Spec{
		ID:      "exec",
		Summary: "Run a program on the machine running the runbook.",
		Doc: "The program runs without a shell, with `argv` as its arguments, and fails the step " +
			"when it exits non-zero (the error gives the exit code and the last lines of stderr). " +
			"Its stdout and stderr (at most 1 MiB each, secrets redacted) are the step's outputs.\n\n" +
			"By default exec is a write step: a dry-run shows the command without running it, and " +
			"`check` — a read-only command that exits 0 when the change is in place — makes it " +
			"idempotent: the plan says \"already in place\" when check passes, the command is " +
			"verified with check after it ran, and a resumed run asks check whether an interrupted " +
			"command took effect. Without `check` a resumed run cannot tell and stops. exec backs " +
			"nothing up, since it cannot know what the command changes: add explicit backup steps " +
			"before it.\n\n" +
			"With `effect: read` the command must change nothing: it then runs in dry-runs too, so " +
			"that later steps see its output.\n\n" +
			"Secrets go through `env:` or `stdin:`, never `argv` (a step whose argv holds a secret " +
			"is refused). The step's `timeout:` bounds the command; on timeout or interruption the " +
			"program and every process it started are killed.\n\n" +
			"```yaml\n- id: restart\n  uses: exec\n  with:\n    argv: [service-control, --start, vmware-stsd]\n" +
			"    check: [service-control, --status, vmware-stsd]\n```",
	},
	Plan:     planExec,
	Backup:   backupExec,
	Apply:    applyExec,
	Check:    checkExec,
	ReadOnly: func(p *execParams) bool { return p.Effect == "read" },
}

// outputLimit bounds each of stdout and stderr.
const outputLimit = 1 << 20

// redactSlack is captured beyond outputLimit so that a secret straddling
// the limit is still whole, and redacted, before the output is cut.
const redactSlack = 64 << 10

func planExec(ctx context.Context, env *engine.Env, p *execParams) (engine.Plan, error) {
	if err := validateExec(env, p); err != nil {
		return engine.Plan{}, err
	}
	cmd := shellquote.Join(p.Argv)
	obj := cmd
	if p.Dir != "" {
		obj += " (in " + shellquote.Quote(p.Dir) + ")"
	}
	pl := engine.Plan{
		Summary: "run " + cmd,
		Changes: []engine.Change{{Action: "run", Object: redact(env, obj)}},
	}
	if len(p.Check) > 0 {
		out, err := runCommand(ctx, env, p, p.Check, "")
		if err != nil {
			return engine.Plan{}, fmt.Errorf("check: %w", err)
		}
		pl.InPlace = out.ExitCode == 0
	}
	pl.Summary = redact(env, pl.Summary)
	pl.Facts = execFacts{InPlace: pl.InPlace}
	return pl, nil
}

// backupExec saves nothing: exec cannot know what a command changes, so
// runbooks back up with explicit steps before it.
func backupExec(context.Context, *engine.Env, *execParams) ([]string, error) {
	return nil, nil
}

func applyExec(ctx context.Context, env *engine.Env, p *execParams) (execOutputs, error) {
	if err := validateExec(env, p); err != nil {
		return execOutputs{}, err
	}
	out, err := runCommand(ctx, env, p, p.Argv, p.Stdin)
	if err != nil {
		return out, err
	}
	if out.ExitCode != 0 {
		return out, exitError(env, p.Argv, out)
	}
	return out, nil
}

func checkExec(ctx context.Context, env *engine.Env, p *execParams) (engine.Verdict[execOutputs], error) {
	if err := validateExec(env, p); err != nil {
		return engine.Verdict[execOutputs]{}, err
	}
	if len(p.Check) == 0 {
		return engine.Verdict[execOutputs]{
			State:  engine.Unknown,
			Detail: "no check command; cannot tell whether it ran",
		}, nil
	}
	out, err := runCommand(ctx, env, p, p.Check, "")
	if err != nil {
		return engine.Verdict[execOutputs]{}, fmt.Errorf("check: %w", err)
	}
	detail := redact(env, fmt.Sprintf("check %s exited %d", shellquote.Join(p.Check), out.ExitCode))
	if out.ExitCode != 0 {
		return engine.Verdict[execOutputs]{State: engine.NotApplied, Detail: detail}, nil
	}
	return engine.Verdict[execOutputs]{State: engine.Applied, Detail: detail}, nil
}

// validateExec checks what the params decoder cannot: non-empty programs,
// the effect, env names, and that no secret is in an argv.
func validateExec(env *engine.Env, p *execParams) error {
	if len(p.Argv) == 0 || p.Argv[0] == "" {
		return errors.New("argv: no program given")
	}
	switch p.Effect {
	case "", "write":
	case "read":
		if len(p.Check) > 0 {
			return errors.New("check: only a write command takes a check; remove it or drop effect: read")
		}
	default:
		return fmt.Errorf("effect: %q is neither read nor write", p.Effect)
	}
	if len(p.Check) > 0 && p.Check[0] == "" {
		return errors.New("check: no program given")
	}
	for k := range p.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env: %q is not a variable name", k)
		}
	}
	for _, list := range []struct {
		name string
		argv []string
	}{{"argv", p.Argv}, {"check", p.Check}} {
		for i, arg := range list.argv {
			for _, s := range env.Secrets {
				if s != "" && strings.Contains(arg, s) {
					return fmt.Errorf("%s[%d]: a secret may not be passed in argv (child argv is visible in ps); pass it in env: or stdin: instead", list.name, i)
				}
			}
		}
	}
	return nil
}

// runCommand runs argv with p's env and dir and the given stdin. A non-zero
// exit is reported in the outputs; err is for a program that could not
// start, was killed, or was stopped by ctx.
func runCommand(ctx context.Context, env *engine.Env, p *execParams, argv []string, stdin string) (execOutputs, error) {
	name := redact(env, shellquote.Join(argv))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = p.Dir
	cmd.Env = os.Environ()
	for _, k := range sortedKeys(p.Env) {
		cmd.Env = append(cmd.Env, k+"="+p.Env[k])
	}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr capture
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	isolate(cmd)
	cmd.WaitDelay = 2 * time.Second

	err := cmd.Run()
	out := execOutputs{
		Stdout: stdout.text(env, name, "stdout"),
		Stderr: stderr.text(env, name, "stderr"),
	}
	if ctx.Err() != nil {
		return out, fmt.Errorf("run %s: %w", name, context.Cause(ctx))
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.Exited():
		out.ExitCode = exitErr.ExitCode()
	case exitErr != nil:
		return out, fmt.Errorf("run %s: %s%s", name, exitErr.ProcessState, stderrTail(out.Stderr))
	default:
		return out, fmt.Errorf("run %s: %s", name, redact(env, err.Error()))
	}
	return out, nil
}

// exitError describes a command that exited non-zero.
func exitError(env *engine.Env, argv []string, out execOutputs) error {
	return fmt.Errorf("%s exited with code %d%s", redact(env, shellquote.Join(argv)), out.ExitCode, stderrTail(out.Stderr))
}

// stderrTail returns ": " and the last few non-empty lines of stderr joined
// by " | ", or "" when stderr is empty.
func stderrTail(stderr string) string {
	const maxLines, maxLine = 5, 300
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, truncate(l, maxLine))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return ": " + strings.Join(lines, " | ")
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// capture keeps the first outputLimit+redactSlack bytes written to it and
// counts the rest. Writes never fail, so the program never sees a broken
// pipe.
type capture struct {
	buf     bytes.Buffer
	dropped int64
}

func (c *capture) Write(p []byte) (int, error) {
	room := min(outputLimit+redactSlack-c.buf.Len(), len(p))
	c.buf.Write(p[:room])
	c.dropped += int64(len(p) - room)
	return len(p), nil
}

// text returns the captured output redacted and cut to outputLimit, and
// tells the operator when it was cut.
func (c *capture) text(env *engine.Env, name, stream string) string {
	s := redact(env, c.buf.String())
	if len(s) <= outputLimit && c.dropped == 0 {
		return s
	}
	env.Logf("%s: %s cut to %d bytes", name, stream, outputLimit)
	return truncate(s, outputLimit)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
