// Package target opens the appliances a run acts on: an SSO domain of one or
// more vCenter nodes described by a [Profile], with pinned, lazily opened
// connections to each node over LDAP (vmdir), HTTPS (the vSphere API, the
// Lookup Service and the IDM REST API), SSH and SFTP.
//
// Every TLS connection is verified by the SHA-256 thumbprint of the
// certificate pinned in the profile, and every SSH connection by the pinned
// host key fingerprint. Chains, names and validity dates are deliberately
// not checked: the certificates of an appliance under repair are often
// expired or self-signed, and the pin is what says it is the right server.
package target

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"runbook/engine"
)

// Options change how a target is opened.
type Options struct {
	// Name is the target's name in journals and plans; the profile's path
	// when empty.
	Name string
	// TrustOnFirstUse accepts the certificate or host key a node presents
	// when the profile pins none, and pins it in memory for the rest of the
	// run. Each such pin is reported through Logf. A mismatch with a pin,
	// from the profile or learned, is still an error.
	TrustOnFirstUse bool
	// Logf, when not nil, receives notes for the operator, such as pins
	// trusted on first use.
	Logf func(format string, args ...any)
	// PinFile, when set, is where a TLS pin that changes during a run
	// (Node.Repin) is recorded, mode 0600, and where Open reads such pins
	// back: a resumed run must trust the certificate a step installed, not
	// the one the profile still names. Empty keeps changed pins in memory.
	PinFile string
}

// Target is an SSO domain opened from a profile. It implements engine.Target;
// step families reach its nodes' connections through Nodes and Node.
// A Target is safe for concurrent use.
type Target struct {
	name    string
	profile *Profile
	opts    Options
	pins    *pinFile // nil without Options.PinFile
	nodes   []*Node
	facts   *slot[engine.Facts]
	closed  atomic.Bool
}

var _ engine.Target = (*Target)(nil)

// Open prepares a target from a profile. It checks the profile but does not
// touch the network: each connection is opened when first asked for.
func Open(ctx context.Context, p *Profile, opts Options) (*Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("open target: %w", err)
	}
	t := &Target{
		name:    opts.Name,
		profile: p.clone(),
		opts:    opts,
		facts:   newSlot[engine.Facts](),
	}
	if t.name == "" {
		t.name = p.Path
	}
	for _, np := range t.profile.Nodes {
		t.nodes = append(t.nodes, newNode(t, np))
	}
	if opts.PinFile != "" {
		t.pins = &pinFile{path: opts.PinFile}
		if err := t.applyLearnedPins(); err != nil {
			return nil, fmt.Errorf("open target: %w", err)
		}
	}
	return t, nil
}

// Name returns the name given in Options, or the profile's path.
func (t *Target) Name() string { return t.name }

// Domain returns the SSO domain of the profile, such as vsphere.local.
func (t *Target) Domain() string { return t.profile.Domain }

// Nodes returns the target's nodes in profile order; the first is the node
// runbooks act on unless a step names another.
func (t *Target) Nodes() []*Node { return append([]*Node(nil), t.nodes...) }

// Node returns the node with the given PNID (case-insensitive), or the first
// node when pnid is empty.
func (t *Target) Node(pnid string) (*Node, error) {
	if pnid == "" {
		return t.nodes[0], nil
	}
	names := make([]string, len(t.nodes))
	for i, n := range t.nodes {
		if strings.EqualFold(n.pnid, pnid) {
			return n, nil
		}
		names[i] = n.pnid
	}
	return nil, fmt.Errorf("find node: no node %q in target %s (nodes: %s)", pnid, t.name, strings.Join(names, ", "))
}

// Profile returns a copy of the profile with the pins in use now: those
// trusted on first use and those changed by Repin. Writing it saves them.
func (t *Target) Profile() *Profile {
	p := t.profile.clone()
	for i, n := range t.nodes {
		p.Nodes[i].TLSThumbprint, p.Nodes[i].SSH.HostKey = n.Pins()
	}
	return p
}

// Close closes every connection the target opened. Connection methods fail
// with ErrClosed afterwards.
// Closing is best effort (a vSphere API logout is given a few seconds), and
// a second Close does nothing.
func (t *Target) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	var wg sync.WaitGroup
	for _, n := range t.nodes {
		wg.Go(n.close)
	}
	wg.Wait()
	t.facts.close(nil)
	return nil
}

// logf passes a note to Options.Logf.
func (t *Target) logf(format string, args ...any) {
	if t.opts.Logf != nil {
		t.opts.Logf(format, args...)
	}
}

// DomainDN returns the LDAP DN of an SSO domain: vsphere.local becomes
// dc=vsphere,dc=local.
func DomainDN(domain string) string {
	return "dc=" + strings.ReplaceAll(domain, ".", ",dc=")
}
