// Package sts provides sts.certificates, the step type that reads the STS
// signing certificates of an SSO domain (KB 79248 checksts.py): the trusted
// chains the IDM REST API serves, and the TenantCredential-N and
// TrustedCertChain-N entries vmdir holds (KB 76719).
package sts

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"runbook/engine"
	"runbook/steps/certinfo"
	"runbook/steps/conn"
	"runbook/target"
)

// Register adds sts.certificates (read) to r.
func Register(r *engine.Registry) {
	r.Register(certificatesStep)
}

// certificatesParams are the params of sts.certificates.
type certificatesParams struct {
	Node string `yaml:"node" doc:"The PNID of the node to read: one that runs STS and vmdir (an embedded vCenter or a PSC). When empty, the first node's domain controller (facts.dcName, the node checksts.py asks) if the target has it, else the first node."`
}

// certificatesOutputs are the outputs of sts.certificates.
type certificatesOutputs struct {
	// Node is the PNID of the node read.
	Node string `json:"node" expr:"node"`
	// Chains are the IDM endpoint's chains (source "idm"), then vmdir's
	// TrustedCertChain-N entries (source "TrustedCertChain-N"), by N.
	Chains []Chain `json:"chains" expr:"chains"`
	// Credentials are vmdir's TenantCredential-N entries, by N.
	Credentials []Credential `json:"credentials" expr:"credentials"`
	// Active is the credential STS signs with: the one with the highest N;
	// its n is 0 when there is none.
	Active Active `json:"active" expr:"active"`
	// TenantCredentialCount is len(Credentials).
	TenantCredentialCount int `json:"tenantCredentialCount" expr:"tenantCredentialCount"`
	// TrustedCertChainCount is how many TrustedCertChain-N entries vmdir has.
	TrustedCertChainCount int `json:"trustedCertChainCount" expr:"trustedCertChainCount"`

	// ExpiredLeaves, ExpiredRoots, ValidLeaves and ValidRoots count the
	// certificates of the report's chains as checksts.py does: each
	// thumbprint once, LEAF when it has an authority key identifier.
	ExpiredLeaves int `json:"expiredLeaves" expr:"expiredLeaves"`
	ExpiredRoots  int `json:"expiredRoots" expr:"expiredRoots"`
	ValidLeaves   int `json:"validLeaves" expr:"validLeaves"`
	ValidRoots    int `json:"validRoots" expr:"validRoots"`
	// Report is checksts.py's output for those chains, character for
	// character.
	Report string `json:"report" expr:"report"`
	// ReportSource is "idm" when the report and counts come from the IDM
	// endpoint, as checksts.py's do, or "vmdir" when the endpoint did not
	// answer and vmdir's TrustedCertChain-N entries (what it serves) were
	// used instead.
	ReportSource string `json:"reportSource" expr:"reportSource"`
	// IDMError says why the IDM endpoint could not be read; empty when it was.
	IDMError string `json:"idmError" expr:"idmError"`
}

// Chain is one trusted certificate chain.
type Chain struct {
	// Source is "idm" or the vmdir entry's name, "TrustedCertChain-N".
	Source string `json:"source" expr:"source"`
	// Certs are the chain's certificates, leaf first.
	Certs []Cert `json:"certs" expr:"certs"`
}

// Cert describes one certificate of a chain, with checksts.py's rules.
type Cert struct {
	SHA1     string    `json:"sha1" expr:"sha1"`
	Subject  string    `json:"subject" expr:"subject"`
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
	// DaysLeft is whole days from today to the notAfter date, both UTC
	// dates, time of day ignored (checksts.py's daysUntil).
	DaysLeft int `json:"daysLeft" expr:"daysLeft"`
	// Expired is true once the notAfter date is today or earlier
	// (checksts.py's rule).
	Expired bool `json:"expired" expr:"expired"`
	// Leaf is true when the certificate has an authority key identifier.
	Leaf bool `json:"leaf" expr:"leaf"`
}

// Credential is one TenantCredential-N entry. Its private key is never read.
type Credential struct {
	// N is the number ending its name.
	N int `json:"n" expr:"n"`
	// DN is the entry's DN.
	DN string `json:"dn" expr:"dn"`
	// SHA1, Subject, NotAfter, DaysLeft and Expired describe the signing
	// certificate (the first userCertificate value), with checksts.py's
	// date rule.
	SHA1     string    `json:"sha1" expr:"sha1"`
	Subject  string    `json:"subject" expr:"subject"`
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
	DaysLeft int       `json:"daysLeft" expr:"daysLeft"`
	Expired  bool      `json:"expired" expr:"expired"`
	// ChainLength is how many certificates the entry holds, leaf included.
	ChainLength int `json:"chainLength" expr:"chainLength"`
}

// Active is the signing credential in use.
type Active struct {
	N        int       `json:"n" expr:"n"`
	DN       string    `json:"dn" expr:"dn"`
	SHA1     string    `json:"sha1" expr:"sha1"`
	Subject  string    `json:"subject" expr:"subject"`
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
	DaysLeft int       `json:"daysLeft" expr:"daysLeft"`
	Expired  bool      `json:"expired" expr:"expired"`
}

var certificatesStep = engine.Read[certificatesParams, certificatesOutputs]{
	Spec: engine.Spec{
		ID:      "sts.certificates",
		Summary: "Read the STS signing certificates from the IDM endpoint and vmdir, and report them as checksts.py does.",
		Doc: "Reads the tenant's trusted chains from " +
			"`https://<node>/idm/tenant/<domain>/certificates?scope=TENANT`, the endpoint checksts.py " +
			"(KB 79248) asks, and the entries fixsts.sh (KB 76719) works on from vmdir: " +
			"`cn=TenantCredential-N` and `cn=TrustedCertChain-N` under " +
			"`cn=<domain>,cn=Tenants,cn=IdentityManager,cn=Services,<domainDN>`. The credentials' " +
			"private keys are never read. `active` is the credential with the highest N, the one STS " +
			"signs with. `report` is checksts.py's text, and the counts its numbers: each thumbprint " +
			"counted once, a certificate with an authority key identifier is a LEAF, and expiry is " +
			"judged on dates alone (UTC), a certificate ending today being expired. When the IDM " +
			"endpoint does not answer (STS down), the report is made from vmdir's chains and " +
			"`idmError` says why.\n\n" +
			"```yaml\n- id: sts\n  uses: sts.certificates\n- uses: note\n  with: {message: \"${{ steps.sts.report }}\"}\n" +
			"- uses: assert\n  with:\n    that: \"${{ steps.sts.expiredLeaves == 0 }}\"\n" +
			"    message: the STS signing certificate has expired (KB 76719)\n```",
	},
	Run: runCertificates,
}

// now is the clock days and expiry are computed with; tests replace it.
var now = time.Now

func runCertificates(ctx context.Context, env *engine.Env, p *certificatesParams) (certificatesOutputs, error) {
	t, err := conn.Target(env)
	if err != nil {
		return certificatesOutputs{}, err
	}
	pnid := p.Node
	if pnid == "" && env.Facts.DCName != "" {
		if _, err := t.Node(env.Facts.DCName); err == nil {
			pnid = env.Facts.DCName
		}
	}
	n, err := conn.Node(env, pnid)
	if err != nil {
		return certificatesOutputs{}, err
	}
	domain := t.Domain()
	at := now()
	out := certificatesOutputs{Node: n.PNID(), Chains: []Chain{}, Credentials: []Credential{}}

	idmChains, idmErr := readIDM(ctx, n, domain)
	vmdirChains, creds, err := readVmdir(ctx, n, domain)
	if err != nil {
		return certificatesOutputs{}, err
	}
	for _, c := range idmChains {
		out.Chains = append(out.Chains, describeChain("idm", c, at))
	}
	for _, c := range vmdirChains {
		out.Chains = append(out.Chains, describeChain(c.name, c.certs, at))
	}
	out.TrustedCertChainCount = len(vmdirChains)

	for _, c := range creds {
		cr := Credential{N: c.n, DN: c.dn, ChainLength: len(c.certs)}
		if len(c.certs) > 0 {
			l := describe(c.certs[0], at)
			cr.SHA1, cr.Subject, cr.NotAfter, cr.DaysLeft, cr.Expired = l.SHA1, l.Subject, l.NotAfter, l.DaysLeft, l.Expired
		}
		out.Credentials = append(out.Credentials, cr)
	}
	out.TenantCredentialCount = len(out.Credentials)
	if k := len(out.Credentials); k > 0 {
		c := out.Credentials[k-1]
		out.Active = Active{N: c.N, DN: c.DN, SHA1: c.SHA1, Subject: c.Subject, NotAfter: c.NotAfter, DaysLeft: c.DaysLeft, Expired: c.Expired}
	}

	reportChains := idmChains
	out.ReportSource = "idm"
	if idmErr != nil {
		out.IDMError = idmErr.Error()
		out.ReportSource = "vmdir"
		reportChains = nil
		for _, c := range vmdirChains {
			reportChains = append(reportChains, c.certs)
		}
		env.Logf("IDM endpoint of %s did not answer (%v); reporting vmdir's TrustedCertChain entries", n.PNID(), idmErr)
	}
	r := check(reportChains, at)
	out.ValidLeaves, out.ValidRoots = len(r.valid[leaf]), len(r.valid[root])
	out.ExpiredLeaves, out.ExpiredRoots = len(r.expired[leaf]), len(r.expired[root])
	out.Report = r.text()
	return out, nil
}

// idmLimit bounds the IDM answer read.
const idmLimit = 16 << 20

// readIDM gets the tenant's trusted chains from the node's IDM endpoint.
func readIDM(ctx context.Context, n *target.Node, domain string) ([][]*x509.Certificate, error) {
	u := n.URL("/idm/tenant/" + url.PathEscape(domain) + "/certificates?scope=TENANT")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("read IDM certificates: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := n.HTTPClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("read IDM certificates: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, idmLimit+1))
	if err != nil {
		return nil, fmt.Errorf("read IDM certificates: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read IDM certificates: %s: %s", res.Status, firstLine(body))
	}
	if len(body) > idmLimit {
		return nil, fmt.Errorf("read IDM certificates: answer larger than %d MiB", idmLimit>>20)
	}
	chains, err := parseIDM(body)
	if err != nil {
		return nil, fmt.Errorf("read IDM certificates: %w", err)
	}
	return chains, nil
}

// firstLine returns the first line of b, at most 200 bytes, for errors.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.TrimSpace(s)
}

// entryCerts are the certificates of one vmdir entry.
type entryCerts struct {
	name  string // cn
	dn    string
	n     int
	certs []*x509.Certificate
}

// readVmdir reads the TrustedCertChain-N and TenantCredential-N entries,
// each list ordered by N. Entries whose name has no number are left out,
// as STS leaves them out.
func readVmdir(ctx context.Context, n *target.Node, domain string) (chains, creds []entryCerts, err error) {
	l, err := n.LDAP(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read vmdir of %s: %w", n.PNID(), err)
	}
	tenant := "cn=" + ldap.EscapeDN(domain) + ",cn=Tenants,cn=IdentityManager,cn=Services," + target.DomainDN(domain)
	creds, err = searchCerts(l, tenant, "(objectClass=vmwSTSTenantCredential)", "TenantCredential-")
	if err != nil {
		return nil, nil, err
	}
	chains, err = searchCerts(l, "cn=TrustedCertificateChains,"+tenant, "(objectClass=vmwSTSTenantTrustedCertificateChain)", "TrustedCertChain-")
	if err != nil {
		return nil, nil, err
	}
	return chains, creds, nil
}

// searchCerts reads the userCertificate values of the entries right below
// base that filter selects and whose cn is prefix followed by a number.
// Only cn and userCertificate are asked for: never a private key. A
// missing base holds no entries.
func searchCerts(l *ldap.Conn, base, filter, prefix string) ([]entryCerts, error) {
	res, err := l.Search(ldap.NewSearchRequest(base, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		filter, []string{"cn", "userCertificate"}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", base, err)
	}
	var out []entryCerts
	for _, e := range res.Entries {
		cn := e.GetAttributeValue("cn")
		num, ok := strings.CutPrefix(cn, prefix)
		if !ok {
			continue
		}
		k, err := strconv.Atoi(num)
		if err != nil || k < 0 {
			continue
		}
		ec := entryCerts{name: cn, dn: e.DN, n: k}
		for _, a := range e.Attributes {
			name, _, _ := strings.Cut(a.Name, ";") // userCertificate;binary
			if !strings.EqualFold(name, "userCertificate") {
				continue
			}
			for i, der := range a.ByteValues {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, fmt.Errorf("read %s: userCertificate %d: %w", e.DN, i+1, err)
				}
				ec.certs = append(ec.certs, c)
			}
		}
		out = append(out, ec)
	}
	slices.SortStableFunc(out, func(a, b entryCerts) int { return a.n - b.n })
	return out, nil
}

// describe describes c with checksts.py's date rule and leaf rule.
func describe(c *x509.Certificate, at time.Time) Cert {
	info := certinfo.Describe(c, at)
	days, expired := dateRule(c.NotAfter, at)
	return Cert{SHA1: info.SHA1, Subject: info.Subject, NotAfter: c.NotAfter, DaysLeft: days, Expired: expired, Leaf: info.IsLeaf}
}

func describeChain(source string, certs []*x509.Certificate, at time.Time) Chain {
	ch := Chain{Source: source, Certs: make([]Cert, len(certs))}
	for i, c := range certs {
		ch.Certs[i] = describe(c, at)
	}
	return ch
}

// dateRule is checksts.py's expiry rule: the notAfter date and today's date
// (UTC, time of day dropped) are compared; the certificate has expired when
// its date is today or earlier, and days is the difference in days.
func dateRule(notAfter, at time.Time) (days int, expired bool) {
	day := func(t time.Time) int64 {
		t = t.UTC()
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400
	}
	d := day(notAfter) - day(at)
	return int(d), d <= 0
}
