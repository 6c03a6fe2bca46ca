// Package model is the single source of truth of the simulated vCenter SSO
// domain: its nodes, VMCA root, VECS stores, the vmdir tree (tenant
// credentials, trusted chains, service principals, CAs, Lookup Service
// registrations, sites, servers and replication agreements), services, file
// trees and clock. The lab's LDAP, HTTPS, SOAP and SSH servers are views
// over it; scenarios (see Build) set it up healthy or broken.
package model

import (
	"crypto/rand"
	"crypto/sha1"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"runbook/lab/pki"
	"runbook/lab/vmdir"
)

// Domain is an SSO domain. Its mutex guards the fields that procedures
// replace (Root, Nodes, AdminPassword); the directory, each node's VECS and
// services have their own locks, so reading them needs no Domain lock.
type Domain struct {
	// Name is the SSO domain name, such as vsphere.local.
	Name string
	// DN is the domain's DN, such as dc=vsphere,dc=local.
	DN string
	// Site is the SSO site of every node, such as default-site.
	Site string
	// Scenario is the scenario the domain was built from.
	Scenario string
	// Dir is the vmdir directory the nodes share.
	Dir *vmdir.Directory
	// root is the VMCA root CA; VMCARoot and SetVMCARoot read and replace
	// it under the lock, since certificate-manager replaces it while the
	// lab serves.
	root *pki.CA
	// Nodes are the appliances, first node first.
	Nodes []*Node
	// Now is the lab clock: every validity check, the services' included,
	// calls it. Replace it only before the lab's servers start; to move time
	// while they run, pass Options.Now a function over a clock you control.
	Now func() time.Time
	// AdminPassword is the password of administrator@<Name>.
	AdminPassword string
	// Faults injects failures into the lab's servers.
	Faults *Faults
	// Keys hands out RSA keys for new certificates: distinct within the
	// domain, drawn from the process-wide pki.Pool (fast after the first lab).
	Keys *pki.KeySeq

	mu      sync.Mutex
	tempDir string
}

// Lock locks the domain.
func (d *Domain) Lock() { d.mu.Lock() }

// VMCARoot returns the VMCA root CA in use.
func (d *Domain) VMCARoot() *pki.CA {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.root
}

// SetVMCARoot makes ca the VMCA root CA (certool --rootca does).
func (d *Domain) SetVMCARoot(ca *pki.CA) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.root = ca
}

// Unlock unlocks the domain.
func (d *Domain) Unlock() { d.mu.Unlock() }

// Do runs fn with the domain locked and returns its error.
func (d *Domain) Do(fn func() error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fn()
}

// Close removes the node trees when Build created their directory itself
// (Options.Dir empty).
func (d *Domain) Close() error {
	if d.tempDir == "" {
		return nil
	}
	if err := os.RemoveAll(d.tempDir); err != nil {
		return fmt.Errorf("remove lab files: %w", err)
	}
	d.tempDir = ""
	return nil
}

// detUUID derives a stable version-5-style UUID from parts, so machine ids
// and registration ids are the same in every build of a scenario.
func detUUID(parts ...string) string {
	sum := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// password returns prefix followed by n random letters and digits.
func password(prefix string, n int) (string, error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b), nil
}

// domainDN turns vsphere.local into dc=vsphere,dc=local.
func domainDN(name string) string {
	return "dc=" + strings.Join(strings.Split(name, "."), ",dc=")
}
