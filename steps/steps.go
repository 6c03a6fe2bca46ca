// Package steps assembles the registry of every step type the engine offers.
package steps

import (
	"runbook/engine"
	"runbook/steps/certmgr"
	"runbook/steps/ldap"
	"runbook/steps/local"
	"runbook/steps/lookup"
	"runbook/steps/replication"
	"runbook/steps/services"
	"runbook/steps/shell"
	"runbook/steps/sts"
	"runbook/steps/tlspeer"
	"runbook/steps/vecs"
	"runbook/steps/vmca"
)

// Registry returns a new registry holding every built-in step type.
func Registry() *engine.Registry {
	r := engine.NewRegistry()
	for _, register := range []func(*engine.Registry){
		local.Register,
		ldap.Register,
		lookup.Register,
		tlspeer.Register,
		sts.Register,
		shell.Register,
		vmca.Register,
		vecs.Register,
		services.Register,
		replication.Register,
		certmgr.Register,
	} {
		register(r)
	}
	return r
}
