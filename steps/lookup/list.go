package lookup

import (
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"net/url"
	"strings"
	"time"

	ltypes "github.com/vmware/govmomi/lookup/types"

	"runbook/engine"
	"runbook/steps/certinfo"
)

// listParams are the params of lookup.list. Every filter is optional; the
// step applies them itself, so they behave the same on every Lookup Service
// version.
type listParams struct {
	Node         string `yaml:"node" doc:"The PNID of the node whose Lookup Service is asked; the first node of the target when empty. Registrations are shared by the site, so any node of the site sees them all (with an external PSC, name a PSC of the site, as KB 2121701 says)."`
	Product      string `yaml:"product" doc:"Only services of this product, such as com.vmware.cis (whole value, any case)."`
	Type         string `yaml:"type" doc:"Only services of this type, such as cs.identity or vcenterserver (whole value, any case)."`
	EndpointType string `yaml:"endpoint_type" doc:"Only endpoints of this type, such as com.vmware.cis.cs.identity.sso, as lstool.py list --ep-type selects them (whole value, any case); services left without an endpoint are left out."`
	Protocol     string `yaml:"protocol" doc:"Only endpoints of this protocol, such as vmomi, wsTrust or https (whole value, any case); services left without an endpoint are left out."`
	NodeID       string `yaml:"node_id" doc:"Only services registered for this deployment node id, the machine id of the node that runs them (any case)."`
	SiteID       string `yaml:"site_id" doc:"Only services of this SSO site (any case)."`
	URLContains  string `yaml:"url_contains" doc:"Only endpoints whose URL contains this text, ignoring case, such as a node's PNID; services left without an endpoint are left out."`
}

// listOutputs are the outputs of lookup.list.
type listOutputs struct {
	// Services are the registrations that pass the filters, in the order
	// the Lookup Service lists them, each with the endpoints that pass.
	Services []Service `json:"services" expr:"services"`
	// Count is len(Services).
	Count int `json:"count" expr:"count"`
	// Trusts are the distinct certificates the listed endpoints trust,
	// grouped by SHA-1 thumbprint, in order of first appearance.
	Trusts []Trust `json:"trusts" expr:"trusts"`
	// SiteID is the site of the Lookup Service asked.
	SiteID string `json:"siteId" expr:"siteId"`
}

// Service is one Lookup Service registration.
type Service struct {
	// ID is the service id; a legacy 5.5 registration's is "<site id>:<uuid>".
	ID string `json:"id" expr:"id"`
	// Product is the service type's product, such as com.vmware.cis; empty
	// for a legacy registration.
	Product string `json:"product" expr:"product"`
	// Type is the service type, such as cs.identity, or the URN of a legacy
	// registration, such as urn:sso:sts.
	Type string `json:"type" expr:"type"`
	// NodeID is the deployment node id (a machine id).
	NodeID string `json:"nodeId" expr:"nodeId"`
	// OwnerID is the solution user or administrator that owns it.
	OwnerID string `json:"ownerId" expr:"ownerId"`
	// SiteID is the SSO site it belongs to.
	SiteID string `json:"siteId" expr:"siteId"`
	// Version is the service version.
	Version string `json:"version" expr:"version"`
	// Legacy is true for a 5.5-style registration.
	Legacy bool `json:"legacy" expr:"legacy"`
	// Endpoints are its endpoints, in registration order.
	Endpoints []Endpoint `json:"endpoints" expr:"endpoints"`
}

// Endpoint is one endpoint of a registration.
type Endpoint struct {
	// Index is the endpoint's position in its registration, from 1.
	Index int `json:"index" expr:"index"`
	// URL is the endpoint URL.
	URL string `json:"url" expr:"url"`
	// Type is the endpoint type, such as com.vmware.cis.cs.identity.sso.
	Type string `json:"type" expr:"type"`
	// Protocol is the endpoint protocol, such as vmomi.
	Protocol string `json:"protocol" expr:"protocol"`
	// SSLTrust is the first trusted certificate as the registration holds
	// it (single-line base64 DER); the one ls_update_certs.py compares.
	SSLTrust string `json:"sslTrust" expr:"sslTrust"`
	// TrustCount is how many trusted certificates the endpoint has.
	TrustCount int `json:"trustCount" expr:"trustCount"`
	// Cert describes SSLTrust. Its pem and base64 are left empty: SSLTrust
	// is the base64, and the matching entry of trusts has the PEM.
	Cert certinfo.Info `json:"cert" expr:"cert"`
	// CertError says why SSLTrust could not be read as a certificate; empty
	// when it could (or when the endpoint trusts nothing).
	CertError string `json:"certError" expr:"certError"`
}

// Trust is one distinct certificate trusted by listed endpoints, as
// lsdoctor and the SSL trust scripts report them.
type Trust struct {
	// SHA1 is the certificate's SHA-1 thumbprint, AB:CD:… (what
	// lookup.update_ssltrust takes as old_thumbprint).
	SHA1 string `json:"sha1" expr:"sha1"`
	// SHA256 is the SHA-256 thumbprint.
	SHA256 string `json:"sha256" expr:"sha256"`
	// Subject is the subject DN.
	Subject string `json:"subject" expr:"subject"`
	// Issuer is the issuer DN.
	Issuer string `json:"issuer" expr:"issuer"`
	// NotAfter is the end of validity.
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
	// DaysLeft is whole days until NotAfter (negative once expired).
	DaysLeft int `json:"daysLeft" expr:"daysLeft"`
	// Expired is true once NotAfter has passed.
	Expired bool `json:"expired" expr:"expired"`
	// PEM is the certificate rebuilt as KB 2121701 Task 1 does (64-column
	// base64 between the armor lines): the old certificate to recover.
	PEM string `json:"pem" expr:"pem"`
	// Base64 is the sslTrust form.
	Base64 string `json:"base64" expr:"base64"`
	// Services are the ids of the services with an endpoint trusting it.
	Services []string `json:"services" expr:"services"`
	// URLs are the distinct URLs of the endpoints trusting it.
	URLs []string `json:"urls" expr:"urls"`
	// Hosts are the distinct host names (lower case) of those URLs.
	Hosts []string `json:"hosts" expr:"hosts"`
	// Endpoints is how many endpoints trust it.
	Endpoints int `json:"endpoints" expr:"endpoints"`
	// Error says why the value is not a certificate; the entry then
	// groups identical values and only Base64 and the lists are set.
	Error string `json:"error" expr:"error"`
}

var listStep = engine.Read[listParams, listOutputs]{
	Spec: engine.Spec{
		ID:      "lookup.list",
		Summary: "List Lookup Service registrations and the certificates their endpoints trust.",
		Doc: "Reads every registration of the site through the Lookup Service API, as the " +
			"ServiceRegistration List method of the MOB does (KB 2121701 Task 1) and `lstool.py list` " +
			"prints it (Task 0), then keeps those passing the filters. Each endpoint's first `sslTrust` " +
			"is described in `cert`; `trusts` groups every distinct trusted certificate by SHA-1 with " +
			"the services, URLs and hosts using it, which is how a stale registration shows: a node's " +
			"endpoints trusting a certificate other than the one it serves. The old certificate is " +
			"recovered from there (`pem`), not from the file system.\n\n" +
			"```yaml\n- id: served\n  uses: tls.peer_certificate\n- id: ls\n  uses: lookup.list\n" +
			"  with: {url_contains: \"${{ facts.pnid }}\"}\n- id: stale\n  uses: assert\n" +
			"  with:\n    that: \"${{ all(steps.ls.trusts, .sha1 == steps.served.sha1) }}\"\n```",
	},
	Run: runList,
}

// now is the clock daysLeft and expired are computed with; tests replace it.
var now = time.Now

func runList(ctx context.Context, env *engine.Env, p *listParams) (listOutputs, error) {
	_, lc, err := client(ctx, env, p.Node)
	if err != nil {
		return listOutputs{}, err
	}
	infos, err := listAll(ctx, lc, nil)
	if err != nil {
		return listOutputs{}, err
	}
	site := siteID(ctx, lc)
	out := listOutputs{Services: []Service{}, Trusts: []Trust{}, SiteID: site}
	g := newGrouper(now())
	for i := range infos {
		s, ok := p.service(&infos[i], site, g)
		if !ok {
			continue
		}
		out.Services = append(out.Services, s)
	}
	out.Count = len(out.Services)
	out.Trusts = g.trusts()
	return out, nil
}

// service converts info and applies the filters; ok is false when the
// service is filtered out. It feeds g with the kept endpoints' trusts.
func (p *listParams) service(info *ltypes.LookupServiceRegistrationInfo, site string, g *grouper) (Service, bool) {
	if !fold(p.Product, info.ServiceType.Product) || !fold(p.Type, info.ServiceType.Type) ||
		!fold(p.NodeID, info.NodeId) || !fold(p.SiteID, info.SiteId) {
		return Service{}, false
	}
	s := Service{
		ID:        info.ServiceId,
		Product:   info.ServiceType.Product,
		Type:      info.ServiceType.Type,
		NodeID:    info.NodeId,
		OwnerID:   info.OwnerId,
		SiteID:    info.SiteId,
		Version:   info.ServiceVersion,
		Legacy:    isLegacy(info.ServiceId, info.SiteId, site),
		Endpoints: []Endpoint{},
	}
	urlFilter := strings.ToLower(p.URLContains)
	for i, ep := range info.ServiceEndpoints {
		if !fold(p.EndpointType, ep.EndpointType.Type) || !fold(p.Protocol, ep.EndpointType.Protocol) ||
			!strings.Contains(strings.ToLower(ep.Url), urlFilter) {
			continue
		}
		e := Endpoint{
			Index:      i + 1,
			URL:        ep.Url,
			Type:       ep.EndpointType.Type,
			Protocol:   ep.EndpointType.Protocol,
			TrustCount: len(ep.SslTrust),
		}
		for j, trust := range ep.SslTrust {
			d := g.add(trust, s.ID, ep.Url)
			if j == 0 {
				e.SSLTrust = trust
				e.Cert, e.CertError = d.brief, d.err
			}
		}
		s.Endpoints = append(s.Endpoints, e)
	}
	endpointFilter := p.EndpointType != "" || p.Protocol != "" || p.URLContains != ""
	if endpointFilter && len(s.Endpoints) == 0 {
		return Service{}, false
	}
	return s, true
}

// fold reports whether want is empty or equals got, ignoring case.
func fold(want, got string) bool { return want == "" || strings.EqualFold(want, got) }

// described is one distinct sslTrust value, read once.
type described struct {
	der   []byte
	info  certinfo.Info // full description, for trusts
	brief certinfo.Info // without PEM and base64, for endpoints
	err   string
	group *Trust
}

// grouper describes sslTrust values once each and groups them by
// certificate. Thousands of endpoints usually share a handful of values.
type grouper struct {
	at      time.Time
	byValue map[string]*described
	bySHA1  map[[sha1.Size]byte]*Trust
	order   []*Trust
	seen    map[*Trust]*listed
}

// listed are the services, URLs and hosts a group already lists.
type listed struct {
	services, urls, hosts map[string]bool
}

// once reports whether v is new to set, adding it.
func once(set map[string]bool, v string) bool {
	if set[v] {
		return false
	}
	set[v] = true
	return true
}

func newGrouper(at time.Time) *grouper {
	return &grouper{
		at:      at,
		byValue: map[string]*described{},
		bySHA1:  map[[sha1.Size]byte]*Trust{},
		seen:    map[*Trust]*listed{},
	}
}

// describe reads an sslTrust value, from the cache when it was seen.
func (g *grouper) describe(value string) *described {
	if d, ok := g.byValue[value]; ok {
		return d
	}
	d := &described{}
	g.byValue[value] = d
	der, err := trustDER(value)
	if err != nil {
		d.err = err.Error()
		d.group = g.newGroup(Trust{Base64: value, Error: d.err})
		return d
	}
	d.der = der
	sum := sha1.Sum(der)
	if t, ok := g.bySHA1[sum]; ok { // another spelling of a certificate already seen
		c := *t
		d.info = certinfo.Info{SHA1: c.SHA1, SHA256: c.SHA256, Subject: c.Subject, Issuer: c.Issuer,
			NotAfter: c.NotAfter, DaysLeft: c.DaysLeft, Expired: c.Expired}
		d.brief, d.err, d.group = d.info, c.Error, t
		return d
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		d.err = "sslTrust is not a certificate: " + err.Error()
		d.group = g.newGroup(Trust{SHA1: certinfo.Thumbprint(der, crypto.SHA1), Base64: certinfo.Base64(der), Error: d.err})
		g.bySHA1[sum] = d.group
		return d
	}
	d.info = certinfo.Describe(cert, g.at)
	d.brief = d.info
	d.brief.PEM, d.brief.Base64 = "", ""
	d.group = g.newGroup(Trust{
		SHA1: d.info.SHA1, SHA256: d.info.SHA256, Subject: d.info.Subject, Issuer: d.info.Issuer,
		NotAfter: d.info.NotAfter, DaysLeft: d.info.DaysLeft, Expired: d.info.Expired,
		PEM: d.info.PEM, Base64: d.info.Base64,
	})
	g.bySHA1[sum] = d.group
	return d
}

func (g *grouper) newGroup(t Trust) *Trust {
	t.Services, t.URLs, t.Hosts = []string{}, []string{}, []string{}
	p := &t
	g.order = append(g.order, p)
	g.seen[p] = &listed{services: map[string]bool{}, urls: map[string]bool{}, hosts: map[string]bool{}}
	return p
}

// add records that endpoint url of service id trusts value, and returns
// the value's description.
func (g *grouper) add(value, id, rawURL string) *described {
	d := g.describe(value)
	t := d.group
	t.Endpoints++
	seen := g.seen[t]
	if once(seen.services, id) {
		t.Services = append(t.Services, id)
	}
	if once(seen.urls, rawURL) {
		t.URLs = append(t.URLs, rawURL)
		if u, err := url.Parse(rawURL); err == nil && u.Hostname() != "" && once(seen.hosts, strings.ToLower(u.Hostname())) {
			t.Hosts = append(t.Hosts, strings.ToLower(u.Hostname()))
		}
	}
	return d
}

// trusts returns the groups in order of first appearance.
func (g *grouper) trusts() []Trust {
	out := make([]Trust, len(g.order))
	for i, t := range g.order {
		out[i] = *t
	}
	return out
}
