package shell

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"runbook/engine"
	"runbook/steps/conn"
)

// execParams are the params of ssh.exec.
type execParams struct {
	Node    string `yaml:"node" doc:"The PNID of the node to run the command on; the target's first node when empty."`
	Command string `yaml:"command" required:"true" doc:"The command line, run by the node's login shell (bash on an appliance whose root shell was set with chsh -s /bin/bash), so pipes, redirections and && work. No secret may appear in it: the appliance shows command lines to anyone running ps and keeps them in its shell history; pass secrets through stdin."`
	Stdin   string `yaml:"stdin" doc:"Text written to the command's standard input, such as a password a tool prompts for; when empty the command reads end of file."`
	Effect  string `yaml:"effect" enum:"read,write" default:"write" doc:"write (the default) for a command that changes the node: a dry-run plans it without running it, and check makes it idempotent. read for a command that changes nothing: it runs in dry-runs too, so later steps see its output, and takes no check."`
	Check   string `yaml:"check" doc:"For effect write, a read-only command line whose exit status 0 means the change is already in place. It runs while planning (dry-runs too), after the command to verify it, and on resume to tell whether an interrupted command took effect. Without it the plan cannot tell whether the change is in place and a resumed run stops at this step, so give one for every write."`
	OkExit  []int  `yaml:"ok_exit" default:"[0]" doc:"The exit statuses that count as success; any other fails the step."`
}

// execOutputs are the outputs of ssh.exec.
type execOutputs struct {
	// Stdout is what the command printed, secrets redacted, at most 1 MiB.
	Stdout string `json:"stdout" expr:"stdout"`
	// Stderr is what it printed to standard error, likewise.
	Stderr string `json:"stderr" expr:"stderr"`
	// ExitCode is its exit status.
	ExitCode int `json:"exit_code" expr:"exit_code"`
}

// execFacts are what an ssh.exec plan relies on, besides its params.
type execFacts struct {
	InPlace bool   `json:"inPlace"`
	Checked bool   `json:"checked"`
	Node    string `json:"node"`
}

var execStep = engine.Write[execParams, execOutputs]{
	Spec: engine.Spec{
		ID:      "ssh.exec",
		Summary: "Run a command on an appliance node over SSH.",
		Doc: "The command line is run by the node's shell in its own SSH session, as `ssh root@node " +
			"'command'` would; its stdout and stderr (at most 1 MiB each, secrets redacted) and exit " +
			"status are the step's outputs, and an exit status not in `ok_exit` fails the step with " +
			"the last lines it printed.\n\n" +
			"By default ssh.exec is a write step: a dry-run shows the command without running it, and " +
			"`check` — a read-only command line that exits 0 when the change is in place — makes it " +
			"idempotent: the plan says \"already in place\" when check passes, the command is verified " +
			"with check after it ran, and a resumed run asks check whether an interrupted command took " +
			"effect. A write without check plans as \"cannot tell whether it is in place\", and its " +
			"Check answers unknown, so a resumed run stops there and asks a person. ssh.exec backs " +
			"nothing up, since it cannot know what a command changes: back up with sftp.get, " +
			"vecs.export or ldap.export before it.\n\n" +
			"With `effect: read` the command must change nothing: it then runs in dry-runs too.\n\n" +
			"Secrets go through `stdin:`, never the command line (a command or check holding a secret " +
			"is refused): a command line on the appliance is visible in ps and kept in its shell " +
			"history.\n\n" +
			"```yaml\n- id: stop_sts\n  uses: ssh.exec\n  with:\n    command: service-control --stop vmware-stsd\n" +
			"    check: service-control --status vmware-stsd | grep -q '^Stopped:'\n```",
	},
	Plan:     planExec,
	Backup:   backupExec,
	Apply:    applyExec,
	Check:    checkExec,
	ReadOnly: func(p *execParams) bool { return p.Effect == "read" },
}

func planExec(ctx context.Context, env *engine.Env, p *execParams) (engine.Plan, error) {
	if err := validateExec(env, p); err != nil {
		return engine.Plan{}, err
	}
	n, err := conn.Node(env, p.Node)
	if err != nil {
		return engine.Plan{}, err
	}
	pl := engine.Plan{
		Summary: Redact(env, fmt.Sprintf("run on %s: %s", n.PNID(), oneLine(p.Command))),
		Changes: []engine.Change{{Action: "run", Object: Redact(env, n.PNID()+" ssh "+p.Command)}},
	}
	if p.Check == "" {
		pl.Summary += " (no check: whether it is already in place is unknown, and a resumed run will stop here)"
		pl.Facts = execFacts{Node: n.PNID()}
		return pl, nil
	}
	res, err := Run(ctx, env, n, "check", p.Check, "")
	if err != nil {
		return engine.Plan{}, err
	}
	pl.InPlace = res.ExitCode == 0
	pl.Facts = execFacts{InPlace: pl.InPlace, Checked: true, Node: n.PNID()}
	return pl, nil
}

// backupExec saves nothing: ssh.exec cannot know what a command changes,
// so runbooks back up with explicit steps before it.
func backupExec(context.Context, *engine.Env, *execParams) ([]string, error) {
	return nil, nil
}

func applyExec(ctx context.Context, env *engine.Env, p *execParams) (execOutputs, error) {
	if err := validateExec(env, p); err != nil {
		return execOutputs{}, err
	}
	n, err := conn.Node(env, p.Node)
	if err != nil {
		return execOutputs{}, err
	}
	res, err := Run(ctx, env, n, "ssh.exec command", p.Command, p.Stdin)
	if err != nil {
		return execOutputs{}, err
	}
	out := execOutputs(res)
	if !slices.Contains(okExit(p), res.ExitCode) {
		return out, fmt.Errorf("%s: %s exited with code %d%s", n.PNID(), Redact(env, oneLine(p.Command)), res.ExitCode, tailOf(res))
	}
	return out, nil
}

func checkExec(ctx context.Context, env *engine.Env, p *execParams) (engine.Verdict[execOutputs], error) {
	if err := validateExec(env, p); err != nil {
		return engine.Verdict[execOutputs]{}, err
	}
	if p.Check == "" {
		return engine.Verdict[execOutputs]{
			State:  engine.Unknown,
			Detail: "ssh.exec has no check command, so whether the command ran cannot be told; add check: to the step",
		}, nil
	}
	n, err := conn.Node(env, p.Node)
	if err != nil {
		return engine.Verdict[execOutputs]{}, err
	}
	res, err := Run(ctx, env, n, "check", p.Check, "")
	if err != nil {
		return engine.Verdict[execOutputs]{}, err
	}
	detail := Redact(env, fmt.Sprintf("%s: check %s exited %d", n.PNID(), oneLine(p.Check), res.ExitCode))
	if res.ExitCode != 0 {
		return engine.Verdict[execOutputs]{State: engine.NotApplied, Detail: detail}, nil
	}
	return engine.Verdict[execOutputs]{State: engine.Applied, Detail: detail}, nil
}

// validateExec checks what the params decoder cannot: a command, the
// effect, the exit codes, and that no secret is on a command line.
func validateExec(env *engine.Env, p *execParams) error {
	if strings.TrimSpace(p.Command) == "" {
		return errors.New("command: no command given")
	}
	switch p.Effect {
	case "", "write":
	case "read":
		if p.Check != "" {
			return errors.New("check: only a write command takes a check; remove it or drop effect: read")
		}
	default:
		return fmt.Errorf("effect: %q is neither read nor write", p.Effect)
	}
	for _, c := range p.OkExit {
		if c < 0 || c > 255 {
			return fmt.Errorf("ok_exit: %d is not an exit status (0 to 255)", c)
		}
	}
	if err := RefuseSecret(env, "command", p.Command); err != nil {
		return err
	}
	return RefuseSecret(env, "check", p.Check)
}

// okExit returns the exit statuses counted as success.
func okExit(p *execParams) []int {
	if len(p.OkExit) == 0 {
		return []int{0}
	}
	return p.OkExit
}

// tailOf returns the last lines of stderr, or of stdout when stderr is empty.
func tailOf(r Result) string {
	if t := Tail(r.Stderr); t != "" {
		return t
	}
	return Tail(r.Stdout)
}

// oneLine shortens a command line for a one-line summary: its first line,
// with " …" when there are more.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if first, _, more := strings.Cut(s, "\n"); more {
		return strings.TrimSpace(first) + " …"
	}
	return s
}
