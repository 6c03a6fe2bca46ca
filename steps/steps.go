// Package steps assembles the registry of every step type the engine offers.
package steps

import (
	"runbook/engine"
	"runbook/steps/local"
)

// Registry returns a new registry holding every built-in step type.
func Registry() *engine.Registry {
	r := engine.NewRegistry()
	local.Register(r)
	return r
}
