package model

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"runbook/lab/pki"
	"runbook/lab/vmdir"
)

// DNs of the vmdir tree (reference §6). All are built from the domain DN.

// AdminDN returns cn=administrator,cn=users,<domainDN>.
func (d *Domain) AdminDN() string { return "cn=administrator,cn=users," + d.DN }

// AdminUPN returns administrator@<domain>.
func (d *Domain) AdminUPN() string { return "administrator@" + d.Name }

// ServicePrincipalsDN returns cn=ServicePrincipals,<domainDN>.
func (d *Domain) ServicePrincipalsDN() string { return "cn=ServicePrincipals," + d.DN }

// ServicePrincipalDN returns the DN of the solution user soluser (a store
// name such as "vpxd") of node n: cn=<soluser>-<machineID>,cn=ServicePrincipals,….
func (d *Domain) ServicePrincipalDN(soluser string, n *Node) string {
	return "cn=" + soluser + "-" + n.MachineID + "," + d.ServicePrincipalsDN()
}

// CAsDN returns cn=Certificate-Authorities,cn=Configuration,<domainDN>.
func (d *Domain) CAsDN() string { return "cn=Certificate-Authorities,cn=Configuration," + d.DN }

// CADN returns the DN under which vmdir keeps the trusted CA cert: its
// subject key identifier in hex.
func (d *Domain) CADN(cert *x509.Certificate) string {
	return "cn=" + pki.SKIDHex(cert) + "," + d.CAsDN()
}

// TenantDN returns cn=<domain>,cn=Tenants,cn=IdentityManager,cn=Services,<domainDN>.
func (d *Domain) TenantDN() string {
	return "cn=" + d.Name + ",cn=Tenants,cn=IdentityManager,cn=Services," + d.DN
}

// TenantCredentialDN returns the DN of TenantCredential-<n>.
func (d *Domain) TenantCredentialDN(n int) string {
	return "cn=TenantCredential-" + strconv.Itoa(n) + "," + d.TenantDN()
}

// TrustedChainsDN returns cn=TrustedCertificateChains,<tenantDN>.
func (d *Domain) TrustedChainsDN() string { return "cn=TrustedCertificateChains," + d.TenantDN() }

// TrustedChainDN returns the DN of TrustedCertChain-<n>.
func (d *Domain) TrustedChainDN(n int) string {
	return "cn=TrustedCertChain-" + strconv.Itoa(n) + "," + d.TrustedChainsDN()
}

// SitesDN returns cn=Sites,cn=Configuration,<domainDN>.
func (d *Domain) SitesDN() string { return "cn=Sites,cn=Configuration," + d.DN }

// SiteDN returns cn=<site>,cn=Sites,cn=Configuration,<domainDN>.
func (d *Domain) SiteDN() string { return "cn=" + d.Site + "," + d.SitesDN() }

// ServerDN returns the vmdir server entry of node n:
// cn=<pnid>,cn=Servers,cn=<site>,cn=Sites,cn=Configuration,<domainDN>.
func (d *Domain) ServerDN(n *Node) string { return "cn=" + n.PNID + ",cn=Servers," + d.SiteDN() }

// AgreementDN returns the replication agreement held by node n towards
// partner: labeledURI=ldap://<partner>,cn=Replication Agreements,<serverDN>.
func (d *Domain) AgreementDN(n *Node, partner string) string {
	return "labeledURI=ldap://" + partner + ",cn=Replication Agreements," + d.ServerDN(n)
}

// RegistrationsDN returns
// cn=ServiceRegistrations,cn=LookupService,cn=<site>,cn=Sites,cn=Configuration,<domainDN>.
func (d *Domain) RegistrationsDN() string {
	return "cn=ServiceRegistrations,cn=LookupService," + d.SiteDN()
}

func container(dn string) *vmdir.Entry {
	cn, _, _ := strings.Cut(dn, ",")
	return vmdir.NewEntry(dn,
		vmdir.StrAttr("objectClass", "top", "container"),
		vmdir.StrAttr("cn", strings.TrimPrefix(cn, "cn=")))
}

func binAttr(name string, values ...[]byte) vmdir.Attr {
	return vmdir.Attr{Name: name, Values: values}
}

// buildSkeleton adds the containers every domain has.
func (d *Domain) buildSkeleton() error {
	entries := []*vmdir.Entry{
		container("cn=users," + d.DN),
		vmdir.NewEntry("ou=Domain Controllers,"+d.DN,
			vmdir.StrAttr("objectClass", "top", "organizationalUnit"), vmdir.StrAttr("ou", "Domain Controllers")),
		vmdir.NewEntry("ou=Computers,"+d.DN,
			vmdir.StrAttr("objectClass", "top", "organizationalUnit"), vmdir.StrAttr("ou", "Computers")),
		container(d.ServicePrincipalsDN()),
		container("cn=Configuration," + d.DN),
		container(d.CAsDN()),
		container(d.SitesDN()),
		container(d.SiteDN()),
		container("cn=Servers," + d.SiteDN()),
		container("cn=LookupService," + d.SiteDN()),
		container(d.RegistrationsDN()),
		container("cn=Services," + d.DN),
		container("cn=IdentityManager,cn=Services," + d.DN),
		container("cn=Tenants,cn=IdentityManager,cn=Services," + d.DN),
		vmdir.NewEntry(d.TenantDN(),
			vmdir.StrAttr("objectClass", "top", "vmwSTSTenant"),
			vmdir.StrAttr("cn", d.Name),
			vmdir.StrAttr("vmwSTSGuidIdentity", detUUID(d.Scenario, d.Name, "tenant")),
			vmdir.StrAttr("vmwSTSIssuerName", "https://"+d.Nodes[0].PNID+"/websso/SAML2/Metadata/"+d.Name),
			vmdir.StrAttr("vmwSTSClockTolerance", "600000"),
			vmdir.StrAttr("vmwSTSMaximumBearerTokenLifetime", "300000"),
			vmdir.StrAttr("vmwSTSMaximumHoKTokenLifetime", "2592000000")),
		container(d.TrustedChainsDN()),
		vmdir.NewEntry(d.AdminDN(),
			vmdir.StrAttr("objectClass", "top", "person", "organizationalPerson", "user"),
			vmdir.StrAttr("cn", "Administrator"),
			vmdir.StrAttr("sAMAccountName", "Administrator"),
			vmdir.StrAttr("userPrincipalName", d.AdminUPN()),
			vmdir.StrAttr("userPassword", d.AdminPassword)),
	}
	for _, e := range entries {
		if err := d.Dir.Add(e); err != nil {
			return fmt.Errorf("add %s: %w", e.DN, err)
		}
	}
	return nil
}

// PublishCA publishes a trusted CA certificate and its CRL (may be nil)
// under cn=Certificate-Authorities, as `dir-cli trustedcert publish` does.
func (d *Domain) PublishCA(cert *x509.Certificate, crl []byte) error {
	attrs := []vmdir.Attr{
		vmdir.StrAttr("objectClass", "top", "vmwCertificationAuthority"),
		vmdir.StrAttr("cn", pki.SKIDHex(cert)),
		binAttr("cACertificate", cert.Raw),
		vmdir.StrAttr("cACertificateDN", pki.SubjectDN(cert)),
	}
	if len(crl) > 0 {
		attrs = append(attrs, binAttr("certificateRevocationList", crl))
	}
	if err := d.Dir.Add(vmdir.NewEntry(d.CADN(cert), attrs...)); err != nil {
		return fmt.Errorf("publish ca: %w", err)
	}
	return nil
}

// addNodeAccounts adds the machine account and the solution users of n.
func (d *Domain) addNodeAccounts(n *Node) error {
	e := vmdir.NewEntry(n.accountDN,
		vmdir.StrAttr("objectClass", "top", "person", "organizationalPerson", "user", "computer"),
		vmdir.StrAttr("cn", n.PNID),
		vmdir.StrAttr("sAMAccountName", n.PNID),
		vmdir.StrAttr("dNSHostName", n.PNID),
		vmdir.StrAttr("userPrincipalName", n.PNID+"@"+d.Name),
		vmdir.StrAttr("userPassword", n.MachineAccountPassword))
	if err := d.Dir.Add(e); err != nil {
		return fmt.Errorf("add machine account: %w", err)
	}
	for _, su := range SolutionUsers {
		cert, err := n.StoreCert(su, su)
		if err != nil {
			return fmt.Errorf("add solution user %s: %w", su, err)
		}
		name := su + "-" + n.MachineID
		e := vmdir.NewEntry(d.ServicePrincipalDN(su, n),
			vmdir.StrAttr("objectClass", "top", "person", "organizationalPerson", "user", "vmwServicePrincipal"),
			vmdir.StrAttr("cn", name),
			vmdir.StrAttr("sAMAccountName", name),
			vmdir.StrAttr("userPrincipalName", name+"@"+d.Name),
			vmdir.StrAttr("vmwSTSSubjectDN", pki.SubjectDN(cert)),
			binAttr("userCertificate", cert.Raw))
		if err := d.Dir.Add(e); err != nil {
			return fmt.Errorf("add solution user %s: %w", name, err)
		}
	}
	return nil
}

// addServer adds n's vmdir server entry and its replication agreements
// towards every partner.
func (d *Domain) addServer(n *Node, serverID int, partners []*Node) error {
	add := []*vmdir.Entry{
		vmdir.NewEntry(d.ServerDN(n),
			vmdir.StrAttr("objectClass", "top", "vmwDirServer"),
			vmdir.StrAttr("cn", n.PNID),
			vmdir.StrAttr("serverId", strconv.Itoa(serverID)),
			vmdir.StrAttr("replInterval", "30"),
			vmdir.StrAttr("dNSHostName", n.PNID),
			binAttr("invocationId", []byte(detUUID(d.Scenario, n.PNID, "invocation")))),
		container("cn=Replication Agreements," + d.ServerDN(n)),
	}
	for _, p := range partners {
		add = append(add, vmdir.NewEntry(d.AgreementDN(n, p.PNID),
			vmdir.StrAttr("objectClass", "top", "vmwReplicationAgreement"),
			vmdir.StrAttr("labeledURI", "ldap://"+p.PNID),
			vmdir.StrAttr("lastLocalUsnProcessed", "0")))
	}
	for _, e := range add {
		if err := d.Dir.Add(e); err != nil {
			return fmt.Errorf("add server %s: %w", n.PNID, err)
		}
	}
	return nil
}

// addTenantCredential writes TenantCredential-<n> (key, leaf, chain) and
// TrustedCertChain-<n> (leaf, chain), as fixsts.sh does.
func (d *Domain) addTenantCredential(n int, leaf *pki.Cert, chain ...[]byte) error {
	certs := append([][]byte{leaf.DER}, chain...)
	cred := vmdir.NewEntry(d.TenantCredentialDN(n),
		vmdir.StrAttr("objectClass", "top", "vmwSTSTenantCredential"),
		vmdir.StrAttr("cn", "TenantCredential-"+strconv.Itoa(n)),
		binAttr("vmwSTSPrivateKey", leaf.KeyPKCS8),
		binAttr("userCertificate", certs...))
	tc := vmdir.NewEntry(d.TrustedChainDN(n),
		vmdir.StrAttr("objectClass", "top", "vmwSTSTenantTrustedCertificateChain"),
		vmdir.StrAttr("cn", "TrustedCertChain-"+strconv.Itoa(n)),
		binAttr("userCertificate", certs...))
	for _, e := range []*vmdir.Entry{cred, tc} {
		if err := d.Dir.Add(e); err != nil {
			return fmt.Errorf("add %s: %w", e.DN, err)
		}
	}
	return nil
}

// TenantCredential is one cn=TenantCredential-<N> entry: an STS signing
// key with its certificate chain.
type TenantCredential struct {
	// N is the index in the entry's name.
	N int
	// DN is the entry's DN.
	DN string
	// Certs are the userCertificate values (leaf first, then the chain).
	Certs []*x509.Certificate
	// Key is vmwSTSPrivateKey, PKCS#8 DER.
	Key []byte
}

// Leaf returns the signing certificate, or nil when the entry has none.
func (c TenantCredential) Leaf() *x509.Certificate {
	if len(c.Certs) == 0 {
		return nil
	}
	return c.Certs[0]
}

// TrustedCertChain is one cn=TrustedCertChain-<N> entry.
type TrustedCertChain struct {
	// N is the index in the entry's name.
	N int
	// DN is the entry's DN.
	DN string
	// Certs are the userCertificate values, leaf first.
	Certs []*x509.Certificate
}

// indexOf returns N of "<prefix>-<N>", or false.
func indexOf(cn, prefix string) (int, bool) {
	s, ok := strings.CutPrefix(strings.ToLower(cn), strings.ToLower(prefix)+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

func parseCerts(vals [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(vals))
	for _, v := range vals {
		c, err := x509.ParseCertificate(v)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// TenantCredentials returns every TenantCredential-<N> of the tenant,
// ordered by N. Entries whose name has no number are skipped.
func (d *Domain) TenantCredentials() ([]TenantCredential, error) {
	return tenantCredentials(d.Dir, d.TenantDN())
}

func tenantCredentials(dir *vmdir.Directory, tenantDN string) ([]TenantCredential, error) {
	es, err := dir.Search(tenantDN, vmdir.ScopeOne, "(objectClass=vmwSTSTenantCredential)", nil)
	if err != nil {
		return nil, fmt.Errorf("search tenant credentials: %w", err)
	}
	var out []TenantCredential
	for _, e := range es {
		n, ok := indexOf(e.First("cn"), "TenantCredential")
		if !ok {
			continue
		}
		certs, err := parseCerts(e.Values("userCertificate"))
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", e.DN, err)
		}
		var key []byte
		if v := e.Values("vmwSTSPrivateKey"); len(v) > 0 {
			key = v[0]
		}
		out = append(out, TenantCredential{N: n, DN: e.DN, Certs: certs, Key: key})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N < out[j].N })
	return out, nil
}

// TrustedCertChains returns every TrustedCertChain-<N>, ordered by N.
func (d *Domain) TrustedCertChains() ([]TrustedCertChain, error) {
	es, err := d.Dir.Search(d.TrustedChainsDN(), vmdir.ScopeOne, "(objectClass=vmwSTSTenantTrustedCertificateChain)", nil)
	if err != nil {
		return nil, fmt.Errorf("search trusted cert chains: %w", err)
	}
	var out []TrustedCertChain
	for _, e := range es {
		n, ok := indexOf(e.First("cn"), "TrustedCertChain")
		if !ok {
			continue
		}
		certs, err := parseCerts(e.Values("userCertificate"))
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", e.DN, err)
		}
		out = append(out, TrustedCertChain{N: n, DN: e.DN, Certs: certs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N < out[j].N })
	return out, nil
}

// ErrNoSTS means the tenant has no TenantCredential.
var ErrNoSTS = errors.New("no tenant credential")

// ActiveSTS returns the credential STS signs tokens with: the
// TenantCredential with the highest N.
func (d *Domain) ActiveSTS() (TenantCredential, error) {
	return activeSTS(d.Dir, d.TenantDN())
}

func activeSTS(dir *vmdir.Directory, tenantDN string) (TenantCredential, error) {
	creds, err := tenantCredentials(dir, tenantDN)
	if err != nil {
		return TenantCredential{}, err
	}
	if len(creds) == 0 {
		return TenantCredential{}, fmt.Errorf("active sts in %s: %w", tenantDN, ErrNoSTS)
	}
	return creds[len(creds)-1], nil
}

// Agreement is a replication agreement: Server pulls changes from Partner.
type Agreement struct {
	// DN is the agreement entry.
	DN string
	// Server is the PNID of the node that holds the agreement.
	Server string
	// Partner is the PNID the agreement points at (from labeledURI).
	Partner string
	// LastLocalUSN is how far Server has consumed Partner's changes. For a
	// node that is online and not paused it is the directory's current
	// highest USN (the lab's directory is shared, so such a node is always
	// up to date); otherwise it is the value stored in the entry's
	// lastLocalUsnProcessed, frozen when the node went offline or paused.
	LastLocalUSN int64
	// Stored is the entry's lastLocalUsnProcessed as written.
	Stored int64
}

// Agreements returns every replication agreement of the site, ordered by
// server then partner.
func (d *Domain) Agreements() ([]Agreement, error) {
	es, err := d.Dir.Search(d.SiteDN(), vmdir.ScopeSub, "(objectClass=vmwReplicationAgreement)", nil)
	if err != nil {
		return nil, fmt.Errorf("search replication agreements: %w", err)
	}
	highest := d.Dir.HighestUSN()
	var out []Agreement
	for _, e := range es {
		a := Agreement{DN: e.DN}
		a.Partner = strings.TrimPrefix(e.First("labeledURI"), "ldap://")
		a.Partner, _, _ = strings.Cut(a.Partner, ":")
		if _, after, ok := strings.Cut(strings.ToLower(e.DN), ",cn=replication agreements,cn="); ok {
			a.Server, _, _ = strings.Cut(after, ",")
		}
		a.Stored, _ = strconv.ParseInt(e.First("lastLocalUsnProcessed"), 10, 64)
		a.LastLocalUSN = a.Stored
		if n := d.Node(a.Server); n != nil {
			a.Server = n.PNID
			if n.Online() && !n.ReplicationPaused() {
				a.LastLocalUSN = highest
			}
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Server != out[j].Server {
			return out[i].Server < out[j].Server
		}
		return out[i].Partner < out[j].Partner
	})
	return out, nil
}

// freezeAgreements stores, in every agreement held by the given nodes, the
// highest USN minus lag(node), so that it stays put while the node is
// offline or paused. Writing the agreements raises the highest USN itself;
// the stored values account for those writes.
func (d *Domain) freezeAgreements(nodes []*Node, lag func(*Node) int64) error {
	type ra struct {
		dn  string
		lag int64
	}
	var ras []ra
	for _, n := range nodes {
		es, err := d.Dir.Search("cn=Replication Agreements,"+d.ServerDN(n), vmdir.ScopeOne,
			"(objectClass=vmwReplicationAgreement)", []string{"1.1"})
		if vmdir.Code(err) == vmdir.CodeNoSuchObject {
			continue
		}
		if err != nil {
			return fmt.Errorf("freeze replication agreements: %w", err)
		}
		for _, e := range es {
			ras = append(ras, ra{e.DN, lag(n)})
		}
	}
	target := d.Dir.HighestUSN() + int64(len(ras))
	for _, a := range ras {
		v := strconv.FormatInt(max(target-a.lag, 0), 10)
		err := d.Dir.Modify(a.dn, []vmdir.Change{{Op: vmdir.ModReplace, Attr: vmdir.StrAttr("lastLocalUsnProcessed", v)}})
		if err != nil {
			return fmt.Errorf("freeze replication agreement: %w", err)
		}
	}
	return nil
}

func noLag(*Node) int64 { return 0 }

// SetOnline takes node n on or off the network. Going offline freezes the
// replication agreements n holds at the current USN.
func (d *Domain) SetOnline(n *Node, online bool) error {
	if !online && n.Online() {
		if err := d.freezeAgreements([]*Node{n}, noLag); err != nil {
			return err
		}
	}
	n.online.Store(online)
	return nil
}

// SetReplicationPaused stops (or resumes) node n consuming its partners'
// changes, leaving its agreements lag changes behind the current USN;
// resuming ignores lag.
func (d *Domain) SetReplicationPaused(n *Node, paused bool, lag int64) error {
	if paused {
		if err := d.freezeAgreements([]*Node{n}, func(*Node) int64 { return lag }); err != nil {
			return err
		}
	}
	n.paused.Store(paused)
	return nil
}

// Registration is a Lookup Service registration as vmdir stores it.
type Registration struct {
	// ServiceID is the registration id: a UUID, "<nodeID>_<name>" or, for a
	// legacy 5.5 registration, "<site>:<uuid>".
	ServiceID string
	// DN is the service entry (read only; ignored by SaveRegistration).
	DN string
	// Legacy marks a 5.5-style registration (vmwLKUPService).
	Legacy bool
	// Product is vmwLKUPProduct (empty for legacy registrations).
	Product string
	// Type is vmwLKUPType, or vmwLKUPServiceType for a legacy registration.
	Type string
	// OwnerID is vmwLKUPOwnerId.
	OwnerID string
	// NodeID is vmwLKUPDeploymentNodeId.
	NodeID string
	// Version is vmwLKUPVersion.
	Version string
	// SiteID is vmwLKUPSiteId.
	SiteID string
	// Name is vmwLKUPFriendlyNameResourceKey.
	Name string
	// Description is vmwLKUPDescriptionResourceKey (vmwLKUPDescription for
	// a legacy registration).
	Description string
	// Endpoints are the service endpoints, in index order.
	Endpoints []Endpoint
	// Attributes are the service attributes (vmwLKUPProperty children).
	Attributes map[string]string
}

// Endpoint is one endpoint of a registration.
type Endpoint struct {
	// URL is vmwLKUPURI.
	URL string
	// Type is vmwLKUPEndpointType, such as com.vmware.cis.cs.identity.sso.
	Type string
	// Protocol is vmwLKUPEndpointProtocol (vmwLKUPProtocol when legacy).
	Protocol string
	// SslTrust are the trusted certificates as single-line base64 DER
	// (vmwLKUPEndpointSslTrust; the DER vmwLKUPSslTrustAnchor values of a
	// legacy endpoint, encoded).
	SslTrust []string
	// Attributes are endpoint attributes (vmwLKUPProperty children).
	Attributes map[string]string
}

// DCName returns the PNID of the directory node n uses (vmafd DCName): n
// itself when it runs a directory, else the first node that does.
func (d *Domain) DCName(n *Node) string {
	if n.HasDirectory() {
		return n.PNID
	}
	for _, x := range d.Nodes {
		if x.HasDirectory() {
			return x.PNID
		}
	}
	return ""
}

// Node returns the node whose PNID is pnid (case-insensitive), or nil.
func (d *Domain) Node(pnid string) *Node {
	for _, n := range d.Nodes {
		if strings.EqualFold(n.PNID, pnid) {
			return n
		}
	}
	return nil
}

// Registrations returns every Lookup Service registration of the site,
// ordered by service id.
func (d *Domain) Registrations() ([]Registration, error) {
	base := d.RegistrationsDN()
	es, err := d.Dir.Search(base, vmdir.ScopeSub, "", nil)
	if err != nil {
		return nil, fmt.Errorf("search registrations: %w", err)
	}
	regs := map[string]*Registration{}
	var order []string
	for _, e := range es {
		if isClass(e, "vmwLKUPServiceRegistration") || isClass(e, "vmwLKUPService") {
			r := readService(e)
			regs[lowerDN(e.DN)] = &r
			order = append(order, lowerDN(e.DN))
		}
	}
	type ep struct {
		idx int
		e   Endpoint
	}
	eps := map[string][]ep{}
	for _, e := range es {
		parent := parentDN(e.DN)
		switch {
		case isClass(e, "vmwLKUPEndpointRegistration") || isClass(e, "vmwLKUPServiceEndpoint"):
			if regs[lowerDN(parent)] == nil {
				continue
			}
			eps[lowerDN(parent)] = append(eps[lowerDN(parent)], ep{endpointIndex(e.First("cn")), readEndpoint(e, es)})
		case isClass(e, "vmwLKUPProperty"):
			if r := regs[lowerDN(parent)]; r != nil {
				r.Attributes[e.First("vmwLKUPPropertyName")] = e.First("vmwLKUPPropertyValue")
			}
		}
	}
	out := make([]Registration, 0, len(order))
	for _, k := range order {
		r := regs[k]
		list := eps[k]
		sort.SliceStable(list, func(i, j int) bool { return list[i].idx < list[j].idx })
		for _, x := range list {
			r.Endpoints = append(r.Endpoints, x.e)
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ServiceID < out[j].ServiceID })
	return out, nil
}

// Registration returns the registration with the given service id.
func (d *Domain) Registration(serviceID string) (Registration, error) {
	regs, err := d.Registrations()
	if err != nil {
		return Registration{}, err
	}
	for _, r := range regs {
		if strings.EqualFold(r.ServiceID, serviceID) {
			return r, nil
		}
	}
	return Registration{}, fmt.Errorf("registration %s: %w", serviceID, ErrNoRegistration)
}

// ErrNoRegistration means no registration has the requested id.
var ErrNoRegistration = errors.New("no such registration")

func isClass(e *vmdir.Entry, class string) bool {
	for _, c := range e.Strings("objectClass") {
		if strings.EqualFold(c, class) {
			return true
		}
	}
	return false
}

func lowerDN(dn string) string { return strings.ToLower(strings.ReplaceAll(dn, ", ", ",")) }

func parentDN(dn string) string {
	// RDN values the lab writes never contain escaped commas.
	_, p, _ := strings.Cut(dn, ",")
	return p
}

func endpointIndex(cn string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(strings.ToLower(cn), "endpoint"))
	if err != nil {
		return 1 << 30
	}
	return n
}

func readService(e *vmdir.Entry) Registration {
	r := Registration{
		ServiceID:  e.First("cn"),
		DN:         e.DN,
		Version:    e.First("vmwLKUPVersion"),
		OwnerID:    e.First("vmwLKUPOwnerId"),
		SiteID:     e.First("vmwLKUPSiteId"),
		Attributes: map[string]string{},
	}
	if isClass(e, "vmwLKUPService") {
		r.Legacy = true
		r.Type = e.First("vmwLKUPServiceType")
		r.Description = e.First("vmwLKUPDescription")
		return r
	}
	r.Product = e.First("vmwLKUPProduct")
	r.Type = e.First("vmwLKUPType")
	r.NodeID = e.First("vmwLKUPDeploymentNodeId")
	r.Name = e.First("vmwLKUPFriendlyNameResourceKey")
	r.Description = e.First("vmwLKUPDescriptionResourceKey")
	return r
}

func readEndpoint(e *vmdir.Entry, all []*vmdir.Entry) Endpoint {
	ep := Endpoint{URL: e.First("vmwLKUPURI"), Type: e.First("vmwLKUPEndpointType"), Attributes: map[string]string{}}
	if isClass(e, "vmwLKUPServiceEndpoint") {
		ep.Protocol = e.First("vmwLKUPProtocol")
		for _, der := range e.Values("vmwLKUPSslTrustAnchor") {
			ep.SslTrust = append(ep.SslTrust, pki.TrustString(der))
		}
	} else {
		ep.Protocol = e.First("vmwLKUPEndpointProtocol")
		ep.SslTrust = e.Strings("vmwLKUPEndpointSslTrust")
	}
	me := lowerDN(e.DN)
	for _, c := range all {
		if isClass(c, "vmwLKUPProperty") && lowerDN(parentDN(c.DN)) == me {
			ep.Attributes[c.First("vmwLKUPPropertyName")] = c.First("vmwLKUPPropertyValue")
		}
	}
	return ep
}

// registrationEntries returns the entries that represent r, parent first.
func (d *Domain) registrationEntries(r Registration) ([]*vmdir.Entry, error) {
	if r.ServiceID == "" || strings.ContainsAny(r.ServiceID, ",+=\"\\<>;#") {
		return nil, fmt.Errorf("registration id %q is empty or not a plain RDN value", r.ServiceID)
	}
	dn := "cn=" + r.ServiceID + "," + d.RegistrationsDN()
	var svc []vmdir.Attr
	opt := func(name, v string) {
		if v != "" {
			svc = append(svc, vmdir.StrAttr(name, v))
		}
	}
	if r.Legacy {
		svc = append(svc, vmdir.StrAttr("objectClass", "top", "vmwLKUPService"), vmdir.StrAttr("cn", r.ServiceID))
		if r.Type == "" {
			return nil, fmt.Errorf("legacy registration %s has no service type", r.ServiceID)
		}
		opt("vmwLKUPServiceType", r.Type)
		opt("vmwLKUPVersion", r.Version)
		opt("vmwLKUPOwnerId", r.OwnerID)
		opt("vmwLKUPSiteId", r.SiteID)
		opt("vmwLKUPDescription", r.Description)
	} else {
		if r.Version == "" || r.Product == "" || r.Type == "" || r.OwnerID == "" {
			return nil, fmt.Errorf("registration %s needs version, product, type and owner", r.ServiceID)
		}
		svc = append(svc, vmdir.StrAttr("objectClass", "top", "vmwLKUPServiceRegistration"), vmdir.StrAttr("cn", r.ServiceID))
		opt("vmwLKUPVersion", r.Version)
		opt("vmwLKUPProduct", r.Product)
		opt("vmwLKUPType", r.Type)
		opt("vmwLKUPOwnerId", r.OwnerID)
		opt("vmwLKUPDeploymentNodeId", r.NodeID)
		opt("vmwLKUPSiteId", r.SiteID)
		opt("vmwLKUPFriendlyNameResourceKey", r.Name)
		opt("vmwLKUPDescriptionResourceKey", r.Description)
	}
	out := []*vmdir.Entry{vmdir.NewEntry(dn, svc...)}
	out = append(out, propertyEntries(dn, r.Attributes)...)
	for i, ep := range r.Endpoints {
		edn := "cn=Endpoint" + strconv.Itoa(i) + "," + dn
		var attrs []vmdir.Attr
		if r.Legacy {
			attrs = []vmdir.Attr{
				vmdir.StrAttr("objectClass", "top", "vmwLKUPServiceEndpoint"),
				vmdir.StrAttr("cn", "Endpoint"+strconv.Itoa(i)),
				vmdir.StrAttr("vmwLKUPURI", ep.URL),
				vmdir.StrAttr("vmwLKUPProtocol", ep.Protocol),
			}
			if ep.Type != "" {
				attrs = append(attrs, vmdir.StrAttr("vmwLKUPEndpointType", ep.Type))
			}
			if len(ep.SslTrust) > 0 {
				a := vmdir.Attr{Name: "vmwLKUPSslTrustAnchor"}
				for _, s := range ep.SslTrust {
					der, err := pki.ParseTrust(s)
					if err != nil {
						return nil, fmt.Errorf("registration %s endpoint %d: %w", r.ServiceID, i, err)
					}
					a.Values = append(a.Values, der)
				}
				attrs = append(attrs, a)
			}
		} else {
			attrs = []vmdir.Attr{
				vmdir.StrAttr("objectClass", "top", "vmwLKUPEndpointRegistration"),
				vmdir.StrAttr("cn", "Endpoint"+strconv.Itoa(i)),
				vmdir.StrAttr("vmwLKUPEndpointType", ep.Type),
				vmdir.StrAttr("vmwLKUPEndpointProtocol", ep.Protocol),
				vmdir.StrAttr("vmwLKUPURI", ep.URL),
			}
			if len(ep.SslTrust) > 0 {
				attrs = append(attrs, vmdir.StrAttr("vmwLKUPEndpointSslTrust", ep.SslTrust...))
			}
		}
		out = append(out, vmdir.NewEntry(edn, attrs...))
		out = append(out, propertyEntries(edn, ep.Attributes)...)
	}
	return out, nil
}

func propertyEntries(parent string, attrs map[string]string) []*vmdir.Entry {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*vmdir.Entry
	for i, k := range keys {
		a := []vmdir.Attr{
			vmdir.StrAttr("objectClass", "top", "vmwLKUPProperty"),
			vmdir.StrAttr("cn", "Property"+strconv.Itoa(i)),
			vmdir.StrAttr("vmwLKUPPropertyName", k),
		}
		if v := attrs[k]; v != "" {
			a = append(a, vmdir.StrAttr("vmwLKUPPropertyValue", v))
		}
		out = append(out, vmdir.NewEntry("cn=Property"+strconv.Itoa(i)+","+parent, a...))
	}
	return out
}

// SaveRegistration creates or updates the registration r.ServiceID so that
// vmdir holds exactly r, writing only the entries that differ (a save of an
// unchanged registration writes nothing). It is not atomic: a failed write
// leaves the entries written before it.
func (d *Domain) SaveRegistration(r Registration) error {
	want, err := d.registrationEntries(r)
	if err != nil {
		return fmt.Errorf("save registration: %w", err)
	}
	have := map[string]*vmdir.Entry{}
	if es, err := d.Dir.Search(want[0].DN, vmdir.ScopeSub, "", nil); err == nil {
		for _, e := range es {
			have[lowerDN(e.DN)] = e
		}
	} else if vmdir.Code(err) != vmdir.CodeNoSuchObject {
		return fmt.Errorf("save registration %s: %w", r.ServiceID, err)
	}
	keep := map[string]bool{}
	// Entries whose object class changes are replaced: delete them first,
	// children before parents.
	var stale []string
	for _, w := range want {
		k := lowerDN(w.DN)
		keep[k] = true
		if h := have[k]; h != nil && !sameStrings(h.Strings("objectClass"), w.Strings("objectClass")) {
			stale = append(stale, k)
		}
	}
	for k := range have {
		if !keep[k] {
			stale = append(stale, k)
		}
	}
	sort.Slice(stale, func(i, j int) bool { return strings.Count(stale[i], ",") > strings.Count(stale[j], ",") })
	for _, k := range stale {
		if err := d.deleteTree(have[k].DN); err != nil {
			return fmt.Errorf("save registration %s: %w", r.ServiceID, err)
		}
		for h := range have {
			if h == k || strings.HasSuffix(h, ","+k) {
				delete(have, h)
			}
		}
	}
	for _, w := range want {
		h := have[lowerDN(w.DN)]
		if h == nil {
			if err := d.Dir.Add(w); err != nil {
				return fmt.Errorf("save registration %s: %w", r.ServiceID, err)
			}
			continue
		}
		if ch := diffAttrs(h, w); len(ch) > 0 {
			if err := d.Dir.Modify(h.DN, ch); err != nil {
				return fmt.Errorf("save registration %s: %w", r.ServiceID, err)
			}
		}
	}
	return nil
}

// DeleteRegistration removes the registration and its endpoints.
func (d *Domain) DeleteRegistration(serviceID string) error {
	if err := d.deleteTree("cn=" + serviceID + "," + d.RegistrationsDN()); err != nil {
		if vmdir.Code(err) == vmdir.CodeNoSuchObject {
			return fmt.Errorf("delete registration %s: %w", serviceID, ErrNoRegistration)
		}
		return fmt.Errorf("delete registration %s: %w", serviceID, err)
	}
	return nil
}

// deleteTree deletes dn and everything under it, leaves first.
func (d *Domain) deleteTree(dn string) error {
	es, err := d.Dir.Search(dn, vmdir.ScopeSub, "", []string{"1.1"})
	if err != nil {
		return err
	}
	for i := len(es) - 1; i >= 0; i-- {
		if err := d.Dir.Delete(es[i].DN); err != nil {
			return err
		}
	}
	return nil
}

func sameStrings(a, b []string) bool {
	norm := func(s []string) []string {
		out := make([]string, len(s))
		for i, v := range s {
			out[i] = strings.ToLower(v)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(norm(a), norm(b))
}

// diffAttrs returns the changes that turn have's user attributes into want's.
func diffAttrs(have, want *vmdir.Entry) []vmdir.Change {
	var ch []vmdir.Change
	seen := map[string]bool{}
	for _, a := range want.Attrs {
		seen[strings.ToLower(a.Name)] = true
		if !sameValues(have.Values(a.Name), a.Values) {
			ch = append(ch, vmdir.Change{Op: vmdir.ModReplace, Attr: a})
		}
	}
	for _, a := range have.Attrs {
		if !seen[strings.ToLower(a.Name)] && !strings.EqualFold(a.Name, "uSNCreated") && !strings.EqualFold(a.Name, "uSNChanged") {
			ch = append(ch, vmdir.Change{Op: vmdir.ModDelete, Attr: vmdir.Attr{Name: a.Name}})
		}
	}
	return ch
}

func sameValues(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
