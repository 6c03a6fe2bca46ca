// Package ldap provides the step types that read and change vmdir, the
// LDAP directory of a vCenter SSO domain, the way the KB procedures do with
// ldapsearch, ldapmodify and ldapdelete: ldap.search and ldap.export (read),
// and ldap.add, ldap.modify and ldap.delete (write).
//
// Values are bytes: certificates (userCertificate) and the STS signing key
// (vmwSTSPrivateKey) are DER octet strings and survive export, backup and
// restore byte for byte. Secrets never reach outputs or plans; the only
// place a private key is written is an LDIF file in the run folder, readable
// by its owner only (an ldap.export, or a write step's backup).
//
// Every write step backs up what it changes as LDIF in its backup folder;
// Restore applies such a backup to put the directory back.
package ldap

import (
	"runbook/engine"
)

// Register adds the LDAP step types to r: ldap.search and ldap.export
// (read), ldap.add, ldap.modify and ldap.delete (write).
func Register(r *engine.Registry) {
	r.Register(searchStep)
	r.Register(exportStep)
	r.Register(addStep)
	r.Register(modifyStep)
	r.Register(deleteStep)
}

// redact hides the run's secrets in s.
func redact(env *engine.Env, s string) string {
	if env.Redact == nil {
		return s
	}
	return env.Redact(s)
}
