package model

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"runbook/lab/pki"
	"runbook/lab/vmdir"
)

// Options configure Build.
type Options struct {
	// Dir holds the node trees, one subdirectory per PNID (tests pass
	// t.TempDir()). When empty Build creates a temporary directory that
	// Domain.Close removes.
	Dir string
	// Now is the lab clock; nil means time.Now.
	Now func() time.Time
	// Nodes is the number of nodes; 0 means 2.
	Nodes int
	// Types optionally gives each node's type; nil means all embedded. At
	// least one node must run a directory (embedded or infrastructure).
	Types []NodeType
}

// Scenario names and describes a starting state of the lab.
type Scenario struct {
	// Name is what Build takes.
	Name string
	// Description says what is broken, in one sentence.
	Description string
}

// LagChanges is how many changes node 2 is behind in replication-lag.
const LagChanges = 42

type spec struct {
	Scenario
	minNodes    int
	rootExpired bool
	stsExpired  bool
	sslExpired  bool
	solExpired  bool
	staleTrust  bool
	lag         int64
	partnerDown bool
}

var specs = []spec{
	{Scenario: Scenario{"healthy", "Two embedded nodes replicating, every certificate valid, every service running."}},
	{Scenario: Scenario{"sts-expired", "The active STS signing certificate (highest TenantCredential) expired 12 days ago; STS-dependent services are stopped and fail to start (KB 76719)."},
		stsExpired: true},
	{Scenario: Scenario{"stale-ssltrust", "Node 1's Machine SSL certificate was replaced with a new VMCA certificate but its Lookup Service registrations still trust the old one, which BACKUP_STORE holds as bkp___MACHINE_CERT (KB 2121701)."},
		staleTrust: true},
	{Scenario: Scenario{"machine-ssl-expired", "Every node's Machine SSL certificate expired 3 days ago; the reverse proxy does not start."},
		sslExpired: true},
	{Scenario: Scenario{"solution-users-expired", "Every node's solution-user certificates (machine, vsphere-webclient, vpxd, vpxd-extension) expired 5 days ago."},
		solExpired: true},
	{Scenario: Scenario{"all-expired", "The STS signing, Machine SSL and solution-user certificates have all expired."},
		stsExpired: true, sslExpired: true, solExpired: true},
	{Scenario: Scenario{"root-expired", "The VMCA root certificate expired 5 days ago; every certificate chains to an expired root."},
		rootExpired: true},
	{Scenario: Scenario{"replication-lag", fmt.Sprintf("Node 2 stopped consuming node 1's changes and is %d changes behind.", LagChanges)},
		minNodes: 2, lag: LagChanges},
	{Scenario: Scenario{"partner-down", "Node 2 is unreachable (network partition); its replication agreement is frozen."},
		minNodes: 2, partnerDown: true},
}

// Scenarios lists the scenarios Build accepts.
func Scenarios() []Scenario {
	out := make([]Scenario, len(specs))
	for i, s := range specs {
		out[i] = s.Scenario
	}
	return out
}

// validity windows relative to the build time.
type window struct{ from, to time.Time }

func years(t time.Time, y, days int) time.Time { return t.AddDate(y, 0, days) }

// nodeCerts are the certificates of one node.
type nodeCerts struct {
	machineSSL *pki.Cert
	oldSSL     *pki.Cert // stale-ssltrust: what the registrations still trust
	solution   map[string]*pki.Cert
	dataEnc    *pki.Cert
	sms        *pki.Cert
}

// Build creates a domain in the named scenario. Machine ids, service ids
// and the directory layout are the same in every build of a scenario;
// keys, serial numbers and passwords differ. It takes a few milliseconds
// once pki.Pool holds enough keys (the first build in a process generates
// them in parallel).
func Build(scenario string, opts Options) (*Domain, error) {
	i := slices.IndexFunc(specs, func(s spec) bool { return s.Name == scenario })
	if i < 0 {
		names := make([]string, len(specs))
		for j, s := range specs {
			names[j] = s.Name
		}
		return nil, fmt.Errorf("build lab: unknown scenario %q (known: %s)", scenario, strings.Join(names, ", "))
	}
	sp := specs[i]
	if opts.Nodes == 0 {
		opts.Nodes = 2
	}
	if opts.Nodes < max(sp.minNodes, 1) {
		return nil, fmt.Errorf("build lab: scenario %s needs at least %d nodes", scenario, max(sp.minNodes, 1))
	}
	types := opts.Types
	if types == nil {
		types = slices.Repeat([]NodeType{Embedded}, opts.Nodes)
	}
	if len(types) != opts.Nodes {
		return nil, fmt.Errorf("build lab: %d node types for %d nodes", len(types), opts.Nodes)
	}
	if !slices.ContainsFunc(types, func(t NodeType) bool { return t == Embedded || t == Infrastructure }) {
		return nil, fmt.Errorf("build lab: no node runs a directory (need an embedded or infrastructure node)")
	}
	for _, t := range types {
		if t != Embedded && t != Infrastructure && t != Management {
			return nil, fmt.Errorf("build lab: unknown node type %q", t)
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	d := &Domain{
		Name:     "vsphere.local",
		Site:     "default-site",
		Scenario: scenario,
		Now:      now,
		Faults:   &Faults{},
		Keys:     pki.Pool.Seq(),
	}
	d.DN = domainDN(d.Name)
	d.Dir = vmdir.New(d.DN)
	if err := d.build(sp, opts, types); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("build lab %s: %w", scenario, err)
	}
	return d, nil
}

func (d *Domain) build(sp spec, opts Options, types []NodeType) error {
	var err error
	base := opts.Dir
	if base == "" {
		if base, err = os.MkdirTemp("", "runbook-lab-"); err != nil {
			return fmt.Errorf("create lab dir: %w", err)
		}
		d.tempDir = base
	}
	if d.AdminPassword, err = password("VMware1!", 8); err != nil {
		return err
	}
	// Generate every key up front, in parallel.
	keys := 3 + 7*len(types)
	if sp.staleTrust {
		keys++
	}
	if err := d.Keys.Prefetch(keys); err != nil {
		return err
	}
	t0 := d.Now()

	for i, t := range types {
		n := &Node{
			PNID:      fmt.Sprintf("vcsa%d.lab.test", i+1),
			Type:      t,
			IP:        "127.0.0.1",
			DisplayIP: fmt.Sprintf("10.0.0.%d", 11+i),
			Site:      d.Site,
		}
		n.MachineID = detUUID(d.Scenario, n.PNID, "machine-id")
		n.Root = filepath.Join(base, n.PNID)
		if n.HasDirectory() {
			n.accountDN = "cn=" + n.PNID + ",ou=Domain Controllers," + d.DN
		} else {
			n.accountDN = "cn=" + n.PNID + ",ou=Computers," + d.DN
		}
		if n.RootPassword, err = password("VMware1!", 8); err != nil {
			return err
		}
		if n.MachineAccountPassword, err = password("", 20); err != nil {
			return err
		}
		n.online.Store(true)
		d.Nodes = append(d.Nodes, n)
	}
	first := d.Nodes[slices.IndexFunc(d.Nodes, (*Node).HasDirectory)]

	rootWin := window{years(t0, -2, 0), years(t0, 8, 0)}
	if sp.rootExpired {
		rootWin = window{years(t0, -10, -5), years(t0, 0, -5)}
	}
	if d.root, err = d.newRoot(first.PNID, rootWin); err != nil {
		return err
	}
	crl, err := d.root.CRL(t0)
	if err != nil {
		return err
	}

	// Sign each node's certificates in parallel; the keys are ready.
	certs := make([]*nodeCerts, len(d.Nodes))
	errs := make([]error, len(d.Nodes))
	var wg sync.WaitGroup
	for i, n := range d.Nodes {
		wg.Go(func() { certs[i], errs[i] = d.issueNodeCerts(n, sp, t0, i == 0) })
	}
	wg.Wait()
	for i, n := range d.Nodes {
		if errs[i] != nil {
			return fmt.Errorf("issue certificates of %s: %w", n.PNID, errs[i])
		}
		if err := d.fillVECS(n, certs[i], crl); err != nil {
			return fmt.Errorf("fill vecs of %s: %w", n.PNID, err)
		}
		if err := d.writeNodeFiles(n); err != nil {
			return err
		}
	}

	if err := d.buildSkeleton(); err != nil {
		return err
	}
	if err := d.PublishCA(d.root.X509, crl); err != nil {
		return err
	}
	serverID := 0
	for _, n := range d.Nodes {
		if err := d.addNodeAccounts(n); err != nil {
			return err
		}
		if !n.HasDirectory() {
			continue
		}
		serverID++
		var partners []*Node
		for _, p := range d.Nodes {
			if p != n && p.HasDirectory() {
				partners = append(partners, p)
			}
		}
		if err := d.addServer(n, serverID, partners); err != nil {
			return err
		}
	}

	stsWin := window{years(t0, -1, 0), years(t0, 1, 0)}
	if sp.stsExpired {
		stsWin = window{years(t0, -2, -12), years(t0, 0, -12)}
	}
	sts, err := d.issue(stsWin, pki.UsageSigning, pki.Request{CommonName: "ssoserverSign"})
	if err != nil {
		return fmt.Errorf("issue sts signing certificate: %w", err)
	}
	if err := d.addTenantCredential(1, sts, d.root.DER); err != nil {
		return err
	}

	if err := d.addRegistrations(certs, t0); err != nil {
		return err
	}

	for _, n := range d.Nodes {
		n.Services = newServices(n, d.Dir, d.TenantDN(), func() time.Time { return d.Now() })
		n.Services.boot()
	}
	// Store every agreement's position once, node 2 lagging if asked.
	lag := func(n *Node) int64 {
		if len(d.Nodes) > 1 && n == d.Nodes[1] {
			return sp.lag
		}
		return 0
	}
	if err := d.freezeAgreements(d.Nodes, lag); err != nil {
		return err
	}
	if len(d.Nodes) > 1 {
		d.Nodes[1].paused.Store(sp.lag > 0)
		d.Nodes[1].online.Store(!sp.partnerDown)
	}
	return nil
}

// newRoot creates the VMCA root with a key from d.Keys.
func (d *Domain) newRoot(pnid string, w window) (*pki.CA, error) {
	key, err := d.Keys.Next()
	if err != nil {
		return nil, err
	}
	req := VMCARootRequest(pnid, d.Name)
	req.NotBefore, req.NotAfter, req.Key = w.from, w.to, key
	return pki.NewRootCA(req)
}

// VMCARootRequest returns the subject of a VMCA root generated on node
// pnid of SSO domain domainName: CN=CA, DC=vsphere, DC=local, C=US,
// ST=California, O=<pnid>, OU=VMware Engineering.
func VMCARootRequest(pnid, domainName string) pki.Request {
	return pki.Request{
		CommonName:       "CA",
		DomainComponents: strings.Split(domainName, "."),
		Country:          "US",
		State:            "California",
		Organization:     pnid,
		OrgUnit:          "VMware Engineering",
	}
}

// issue signs req with the VMCA root, a key from d.Keys and the window.
func (d *Domain) issue(w window, usage pki.Usage, req pki.Request) (*pki.Cert, error) {
	key, err := d.Keys.Next()
	if err != nil {
		return nil, err
	}
	req.Key, req.NotBefore, req.NotAfter, req.Usage = key, w.from, w.to, usage
	return d.root.Issue(req)
}

// MachineSSLRequest returns the certificate request VMCA uses for a node's
// Machine SSL certificate (the certool.cfg defaults with Hostname = PNID).
func MachineSSLRequest(n *Node) pki.Request {
	return pki.Request{
		CommonName:   n.PNID,
		Country:      "US",
		State:        "California",
		Locality:     "Palo Alto",
		Organization: "VMware",
		OrgUnit:      "VMware Engineering",
		Email:        "email@acme.com",
		DNSNames:     []string{n.PNID},
		IPs:          []net.IP{net.ParseIP(n.DisplayIP)},
		Usage:        pki.UsageServer | pki.UsageClient,
	}
}

// SolutionUserRequest returns the certificate request VMCA uses for the
// solution user soluser (a store name) of node n, in domain domainName.
func SolutionUserRequest(n *Node, soluser, domainName string) pki.Request {
	return pki.Request{
		CommonName:       soluser + "-" + n.MachineID,
		DomainComponents: strings.Split(domainName, "."),
		OrgUnit:          "mID-" + n.MachineID,
		DNSNames:         []string{n.PNID},
		Usage:            pki.UsageServer | pki.UsageClient,
	}
}

func (d *Domain) issueNodeCerts(n *Node, sp spec, t0 time.Time, firstNode bool) (*nodeCerts, error) {
	var err error
	c := &nodeCerts{solution: map[string]*pki.Cert{}}
	valid := window{years(t0, -1, 0), years(t0, 1, 0)}
	sslWin, solWin := valid, valid
	if sp.sslExpired {
		sslWin = window{years(t0, -2, -3), years(t0, 0, -3)}
	}
	if sp.solExpired {
		solWin = window{years(t0, -2, -5), years(t0, 0, -5)}
	}
	ssl := MachineSSLRequest(n)
	if sp.staleTrust && firstNode {
		if c.oldSSL, err = d.issue(valid, ssl.Usage, ssl); err != nil {
			return nil, err
		}
		sslWin = window{years(t0, 0, -2), years(t0, 2, -2)}
	}
	if c.machineSSL, err = d.issue(sslWin, ssl.Usage, ssl); err != nil {
		return nil, err
	}
	for _, su := range SolutionUsers {
		req := SolutionUserRequest(n, su, d.Name)
		if c.solution[su], err = d.issue(solWin, req.Usage, req); err != nil {
			return nil, err
		}
	}
	long := window{years(t0, -1, 0), years(t0, 9, 0)}
	if c.dataEnc, err = d.issue(long, pki.UsageSigning|pki.UsageClient,
		pki.Request{CommonName: "data-encipherment", DomainComponents: strings.Split(d.Name, "."), OrgUnit: "mID-" + n.MachineID}); err != nil {
		return nil, err
	}
	key, err := d.Keys.Next()
	if err != nil {
		return nil, err
	}
	if c.sms, err = pki.SelfSigned(pki.Request{CommonName: n.PNID, Country: "US", State: "California",
		Locality: "Palo Alto", Organization: "VMware", OrgUnit: "SMS", DNSNames: []string{n.PNID},
		NotBefore: long.from, NotAfter: long.to, Usage: pki.UsageServer, Key: key}); err != nil {
		return nil, err
	}
	return c, nil
}

func (d *Domain) fillVECS(n *Node, c *nodeCerts, crl []byte) error {
	n.VECS = NewVECS(StoreMachineSSL, StoreTrustedRoots, StoreTrustedRootCRLs,
		StoreMachine, StoreWebClient, StoreVpxd, StoreVpxdExtension,
		StoreDataEncipherment, StoreSMS, StoreBackup)
	pk := func(alias string, cert *pki.Cert, chain ...[]byte) Entry {
		return Entry{Alias: alias, Type: PrivateKey, Certs: append([][]byte{cert.DER}, chain...), Key: cert.KeyPKCS8}
	}
	add := []struct {
		store string
		e     Entry
	}{
		{StoreMachineSSL, pk(AliasMachineCert, c.machineSSL, d.root.DER)},
		{StoreTrustedRoots, Entry{Alias: pki.SHA1Hex(d.root.DER), Type: TrustedCert, Certs: [][]byte{d.root.DER}}},
		{StoreTrustedRootCRLs, Entry{Alias: pki.SHA1Hex(crl), Type: CRL, CRL: crl}},
	}
	for _, su := range SolutionUsers {
		add = append(add, struct {
			store string
			e     Entry
		}{su, pk(su, c.solution[su])})
	}
	add = append(add, []struct {
		store string
		e     Entry
	}{
		{StoreDataEncipherment, pk(StoreDataEncipherment, c.dataEnc)},
		{StoreSMS, pk(AliasSMS, c.sms)},
	}...)
	if c.oldSSL != nil {
		add = append(add, struct {
			store string
			e     Entry
		}{StoreBackup, pk(BackupAlias(AliasMachineCert), c.oldSSL, d.root.DER)})
	}
	for _, a := range add {
		if err := n.VECS.Create(a.store, a.e); err != nil {
			return err
		}
	}
	return nil
}

// certoolTemplate is /usr/lib/vmware-vmca/share/config/certool.cfg.
const certoolTemplate = `#
# Template file for a CSR request
#

# Country is needed and has to be 2 characters
Country = US
Name = CA
Organization = VMware
OrgUnit = VMware Engineering
State = California
Locality = Palo Alto
IPAddress = 127.0.0.1
Email = email@acme.com
Hostname = localhost
`

// NodeDirs are the directories every node tree has.
var NodeDirs = []string{
	"/tmp", "/certificates", "/var/tmp/vmware", "/etc/vmware",
	"/var/log/vmware/vpxd-svcs", "/var/log/vmware/vmcad", "/var/log/vmware/sso",
	"/var/log/vmware/vmdird", "/var/log/vmware/rhttpproxy", "/var/log/vmware/envoy",
	"/var/log/vmware/vpxd", "/var/log/vmware/vsphere-ui/logs", "/var/log/vmware/vmon",
	"/usr/lib/vmware-vmca/share/config",
}

func (d *Domain) writeNodeFiles(n *Node) error {
	if err := os.MkdirAll(n.Root, 0o755); err != nil {
		return fmt.Errorf("create node root: %w", err)
	}
	for _, dir := range NodeDirs {
		if err := os.MkdirAll(n.Path(dir), 0o755); err != nil {
			return fmt.Errorf("create %s on %s: %w", dir, n.PNID, err)
		}
	}
	files := []struct {
		path string
		data []byte
		perm os.FileMode
	}{
		{"/etc/vmware/deployment.node.type", []byte(string(n.Type) + "\n"), 0o644},
		{"/etc/hostname", []byte(n.PNID + "\n"), 0o644},
		{"/usr/lib/vmware-vmca/share/config/certool.cfg", []byte(certoolTemplate), 0o644},
	}
	if n.HasDirectory() {
		files = append(files, []struct {
			path string
			data []byte
			perm os.FileMode
		}{
			{PathRootCert, d.root.PEM(), 0o644},
			{PathRootKey, d.root.KeyPEM(), 0o600},
			{"/usr/lib/vmware-vmdir/sbin/vmdird", []byte("#!/bin/sh\n# vmdird (simulated by the lab)\n"), 0o755},
		}...)
	}
	for _, f := range files {
		if err := n.WriteFile(f.path, f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}
