// Package local provides the step types that act on the machine running the
// runbook rather than on the target: assert, note, sleep, confirm, exec and
// cert.parse.
package local

import (
	"runbook/engine"
)

// Register adds the local step types to r: assert, note, sleep and
// cert.parse (read), confirm (interactive) and exec (write, or read with
// `effect: read`).
func Register(r *engine.Registry) {
	r.Register(assertStep)
	r.Register(noteStep)
	r.Register(sleepStep)
	r.Register(confirmStep)
	r.Register(execStep)
	r.Register(certParseStep)
}

// redact hides the run's secrets in s.
func redact(env *engine.Env, s string) string {
	if env.Redact == nil {
		return s
	}
	return env.Redact(s)
}
