// Package shell provides the step types that act on an appliance node
// through its root shell and its SFTP server: ssh.exec (run a command),
// sftp.put and sftp.get (copy a file to and from the node) and
// appliance.facts (what a node says about itself, read as fixsts.sh reads
// it).
//
// It also exports the helpers the other appliance families (steps/vecs,
// steps/services, steps/replication) run their commands with: Run and
// Must, which redact what a command printed and describe its failure
// without its arguments, and Quote.
package shell

import (
	"context"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"runbook/steps/shellquote"

	"runbook/engine"
	"runbook/target"
)

// Register adds ssh.exec (write, or read with `effect: read`), sftp.put
// (write), sftp.get (read) and appliance.facts (read) to r.
func Register(r *engine.Registry) {
	r.Register(execStep)
	r.Register(putStep)
	r.Register(getStep)
	r.Register(factsStep)
}

// OutputLimit bounds each of stdout and stderr in a Result.
const OutputLimit = 1 << 20

// Result is what a command run on a node printed, secrets redacted, and
// its exit status.
type Result struct {
	// Stdout is what the command printed, redacted and cut to OutputLimit.
	Stdout string
	// Stderr is what it printed to standard error, likewise.
	Stderr string
	// ExitCode is its exit status.
	ExitCode int
}

// Run runs cmd on node n through the node's shell, feeding it stdin (none
// when empty), and returns what it printed with env's secrets redacted. A
// non-zero exit status is not an error; failing to reach the node is. name
// is the command as messages show it: never its arguments, which could
// hold secrets.
func Run(ctx context.Context, env *engine.Env, n *target.Node, name, cmd, stdin string) (Result, error) {
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	out, errOut, code, err := n.Run(ctx, cmd, in)
	if err != nil {
		return Result{}, fmt.Errorf("%s: run %s: %s", n.PNID(), name, Redact(env, err.Error()))
	}
	return Result{
		Stdout:   limit(env, Redact(env, out), n.PNID(), name, "stdout"),
		Stderr:   limit(env, Redact(env, errOut), n.PNID(), name, "stderr"),
		ExitCode: code,
	}, nil
}

// Must is Run for a command that must succeed: a non-zero exit status is an
// error naming the node, the command and the exit status, with the last
// lines of what it printed.
func Must(ctx context.Context, env *engine.Env, n *target.Node, name, cmd, stdin string) (Result, error) {
	res, err := Run(ctx, env, n, name, cmd, stdin)
	if err != nil {
		return res, err
	}
	if res.ExitCode != 0 {
		return res, &ExitError{Node: n.PNID(), Command: name, Result: res}
	}
	return res, nil
}

// ExitError is a command that exited with a non-zero status.
type ExitError struct {
	// Node is the PNID of the node the command ran on.
	Node string
	// Command names the command, without its arguments.
	Command string
	// Result is what it printed (redacted) and its exit status.
	Result Result
}

// Error says "<node>: <command> exited with code N: <last lines>", the
// lines taken from stderr, or from stdout when stderr is empty.
func (e *ExitError) Error() string {
	tail := Tail(e.Result.Stderr)
	if tail == "" {
		tail = Tail(e.Result.Stdout)
	}
	return fmt.Sprintf("%s: %s exited with code %d%s", e.Node, e.Command, e.Result.ExitCode, tail)
}

// Tail returns ": " and the last few non-empty lines of s joined by " | ",
// each cut to 300 bytes, or "" when s has none.
func Tail(s string) string {
	const maxLines, maxLine = 5, 300
	var lines []string
	for l := range strings.Lines(s) {
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

// Redact hides env's secrets in s.
func Redact(env *engine.Env, s string) string {
	if env == nil || env.Redact == nil {
		return s
	}
	return env.Redact(s)
}

// RefuseSecret returns an error when s holds one of env's secrets: what
// runs on the appliance as a command line is visible there to ps and kept
// in its shell history and audit logs. field names the param for the
// message.
func RefuseSecret(env *engine.Env, field, s string) error {
	if env == nil {
		return nil
	}
	for _, sec := range env.Secrets {
		if sec != "" && strings.Contains(s, sec) {
			return fmt.Errorf("%s: a secret may not be part of a command line (the appliance shows command lines in ps and keeps them in its shell history); pass it through stdin instead", field)
		}
	}
	return nil
}

// IsSecret reports whether s is one of env's secrets, that is whether it
// came from a secret param and is redacted wherever it would show.
func IsSecret(env *engine.Env, s string) bool {
	if env == nil || s == "" {
		return false
	}
	for _, sec := range env.Secrets {
		if sec == s {
			return true
		}
	}
	return false
}

// Quote quotes s for the appliance's POSIX shell when it needs quoting.
func Quote(s string) string { return shellquote.Quote(s) }

// limit cuts s to OutputLimit and tells the operator when it did.
func limit(env *engine.Env, s, node, name, stream string) string {
	if len(s) <= OutputLimit {
		return s
	}
	if env != nil {
		env.Logf("%s: %s: %s cut to %d bytes", node, name, stream, OutputLimit)
	}
	return truncate(s, OutputLimit)
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
