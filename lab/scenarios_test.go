package lab

// A test per scenario that the broken thing is broken the way the KB
// describes, observed through the protocols: what the ports serve, what the
// appliance commands print over SSH, what the Lookup Service and the IDM
// endpoint answer. The model is only read to compare.

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	ltypes "github.com/vmware/govmomi/lookup/types"

	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/target"
)

// env is a started scenario and a target opened on it.
type env struct {
	t  *testing.T
	l  *Lab
	tg *target.Target
}

func newEnv(t *testing.T, scenario string) *env {
	t.Helper()
	l := startLab(t, scenario)
	tg, err := l.Target(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return &env{t: t, l: l, tg: tg}
}

// ssh runs a command line on node i over SSH.
func (e *env) ssh(i int, cmdline, stdin string) result {
	e.t.Helper()
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	stdout, stderr, code, err := e.tg.Nodes()[i].Run(e.t.Context(), cmdline, in)
	if err != nil {
		e.t.Fatalf("node %d: %s: %v", i, cmdline, err)
	}
	return result{stdout: stdout, stderr: stderr, code: code}
}

// startAll runs `service-control --start --all` on node i.
func (e *env) startAll(i int) result {
	e.t.Helper()
	return e.ssh(i, "service-control --start --all", "")
}

// vecsCert reads a VECS entry's certificate over SSH with vecs-cli.
func (e *env) vecsCert(i int, store, alias string) *x509.Certificate {
	e.t.Helper()
	r := e.ssh(i, fmt.Sprintf("/usr/lib/vmware-vmafd/bin/vecs-cli entry getcert --store %s --alias %s", store, alias), "")
	if r.code != 0 {
		e.t.Fatalf("vecs-cli entry getcert --store %s --alias %s: exit %d: %s", store, alias, r.code, r.stderr)
	}
	return parsePEM(e.t, r.stdout)
}

// file reads a file of node i over SSH.
func (e *env) file(i int, path string) string {
	e.t.Helper()
	r := e.ssh(i, "cat "+path, "")
	if r.code != 0 {
		e.t.Fatalf("cat %s: exit %d: %s", path, r.code, r.stderr)
	}
	return r.stdout
}

func parsePEM(t testing.TB, s string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		t.Fatalf("no PEM certificate in %q", s)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// served is the certificate node i's port 443 presents, as openssl s_client
// sees it.
func (e *env) served(i int) *x509.Certificate {
	e.t.Helper()
	return servedCert(e.t, e.l.Nodes()[i].HTTPSAddr)
}

// idmChains are the tenant's trusted chains the IDM endpoint of node i
// serves, as checksts.py reads them.
func (e *env) idmChains(i int) [][]*x509.Certificate {
	e.t.Helper()
	n := e.tg.Nodes()[i]
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodGet, n.URL("/idm/tenant/"+e.tg.Domain()+"/certificates?scope=TENANT"), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := n.HTTPClient().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("IDM certificates: %s", resp.Status)
	}
	var body []struct {
		Certificates []struct {
			Encoded string `json:"encoded"`
		} `json:"certificates"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		e.t.Fatal(err)
	}
	var chains [][]*x509.Certificate
	for _, ch := range body {
		var certs []*x509.Certificate
		for _, c := range ch.Certificates {
			certs = append(certs, parsePEM(e.t, c.Encoded))
		}
		chains = append(chains, certs)
	}
	return chains
}

// activeSTS is the signing certificate the IDM endpoint shows last: the
// chain of the highest TrustedCertChain-N, which STS signs with.
func (e *env) activeSTS() *x509.Certificate {
	e.t.Helper()
	chains := e.idmChains(0)
	if len(chains) == 0 || len(chains[len(chains)-1]) == 0 {
		e.t.Fatal("the IDM endpoint serves no chain")
	}
	leaf := chains[len(chains)-1][0]
	want, err := e.l.Model().ActiveSTS()
	if err != nil {
		e.t.Fatal(err)
	}
	if !leaf.Equal(want.Leaf()) {
		e.t.Errorf("IDM's last chain starts with %s, the model signs with %s", pki.SubjectDN(leaf), pki.SubjectDN(want.Leaf()))
	}
	return leaf
}

// trusts returns the distinct sslTrust values of the endpoints whose URL
// points at node i, from a Lookup Service List on node 1.
func (e *env) trusts(i int) []string {
	e.t.Helper()
	lc, err := e.tg.Nodes()[0].Lookup(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	infos, err := lc.List(e.t.Context(), &ltypes.LookupServiceRegistrationFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	pnid := e.l.Nodes()[i].PNID
	var out []string
	for _, info := range infos {
		for _, ep := range info.ServiceEndpoints {
			u, err := url.Parse(ep.Url)
			if err != nil || !strings.EqualFold(u.Hostname(), pnid) {
				continue
			}
			for _, tr := range ep.SslTrust {
				if !slices.Contains(out, tr) {
					out = append(out, tr)
				}
			}
		}
	}
	if len(out) == 0 {
		e.t.Fatalf("no endpoint of %s in List", pnid)
	}
	return out
}

// partnerStatus runs vdcrepadmin -f showpartnerstatus on node i, the SSO
// password given at its prompt.
func (e *env) partnerStatus(i int) result {
	e.t.Helper()
	d := e.l.Model()
	d.Lock()
	pw := d.AdminPassword
	d.Unlock()
	return e.ssh(i, "/usr/lib/vmware-vmdir/bin/vdcrepadmin -f showpartnerstatus -h localhost -u administrator", pw+"\n")
}

// expired checks with openssl whether each certificate has expired, and
// says which are not as wanted.
func (e *env) wantExpired(want bool, certs map[string]*x509.Certificate) {
	e.t.Helper()
	for name, c := range certs {
		if got := expiredPerOpenSSL(e.t, c.Raw); got != want {
			e.t.Errorf("%s (%s, valid %s to %s): openssl says expired=%v, want %v", name, pki.SubjectDN(c),
				c.NotBefore.Format(time.DateOnly), c.NotAfter.Format(time.DateOnly), got, want)
		}
	}
}

// wantStartFails checks that service-control --start --all on node i fails
// with a reason matching re.
func (e *env) wantStartFails(i int, re string) {
	e.t.Helper()
	r := e.startAll(i)
	if r.code == 0 {
		e.t.Errorf("node %d: service-control --start --all succeeded:\n%s", i, r.stdout)
		return
	}
	if !regexp.MustCompile(re).MatchString(r.stderr) {
		e.t.Errorf("node %d: service-control --start --all failed with\n%s\nwant a reason matching %s", i, r.stderr, re)
	}
}

// solutionUserCerts reads every solution user's certificate of node i.
func (e *env) solutionUserCerts(i int) map[string]*x509.Certificate {
	out := map[string]*x509.Certificate{}
	for _, s := range model.SolutionUsers {
		out[fmt.Sprintf("node %d %s", i, s)] = e.vecsCert(i, s, s)
	}
	return out
}

func TestScenarioHealthy(t *testing.T) {
	e := newEnv(t, "healthy")
	for i := range e.l.Nodes() {
		r := e.startAll(i)
		if r.code != 0 {
			t.Errorf("node %d: service-control --start --all: exit %d: %s", i, r.code, r.stderr)
		}
		r = e.ssh(i, "service-control --status --all", "")
		_, running, _ := strings.Cut(r.stdout, "Running:\n")
		for _, svc := range []string{"vmdird", "vmcad", "vmware-stsd", "vmware-rhttpproxy", "vmware-vpxd", "vmware-vpxd-svcs", "vsphere-ui"} {
			if !slices.Contains(strings.Fields(running), svc) {
				t.Errorf("node %d: %s is not running:\n%s", i, svc, r.stdout)
			}
		}
		served := e.served(i)
		certs := map[string]*x509.Certificate{"served 443": served}
		for name, c := range e.solutionUserCerts(i) {
			certs[name] = c
		}
		certs["root"] = parsePEM(t, e.file(i, model.PathRootCert))
		e.wantExpired(false, certs)
		if got := e.trusts(i); !slices.Equal(got, []string{pki.TrustString(served.Raw)}) {
			t.Errorf("node %d: registrations trust %d certificates, not just the one port 443 serves", i, len(got))
		}
		r = e.partnerStatus(i)
		if r.code != 0 || strings.Count(r.stdout, "Partner is 0 changes behind.") != 1 {
			t.Errorf("node %d: showpartnerstatus: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
		}
	}
	e.wantExpired(false, map[string]*x509.Certificate{"STS signing": e.activeSTS()})
}

func TestScenarioSTSExpired(t *testing.T) {
	e := newEnv(t, "sts-expired")
	sts := e.activeSTS()
	e.wantExpired(true, map[string]*x509.Certificate{"active STS signing (IDM)": sts})
	e.wantStartFails(0, `InvalidTimeRange: Signing certificate is not valid at .*cert validity: TimePeriod`)
	// The rest is healthy: port 443 serves a valid certificate.
	e.wantExpired(false, map[string]*x509.Certificate{"served 443": e.served(0)})
}

func TestScenarioStaleSSLTrust(t *testing.T) {
	e := newEnv(t, "stale-ssltrust")
	served := e.served(0)
	trusts := e.trusts(0)
	if slices.Contains(trusts, pki.TrustString(served.Raw)) {
		t.Errorf("node 1's registrations trust the certificate port 443 serves; want the old one")
	}
	backup := e.vecsCert(0, model.StoreBackup, model.BackupAlias(model.AliasMachineCert))
	if !slices.Equal(trusts, []string{pki.TrustString(backup.Raw)}) {
		t.Errorf("node 1's registrations trust %d certificates; want only BACKUP_STORE's bkp___MACHINE_CERT %s", len(trusts), pki.Thumbprint(backup.Raw))
	}
	if backup.Equal(served) {
		t.Error("bkp___MACHINE_CERT is the certificate port 443 serves")
	}
	if vecs := e.vecsCert(0, model.StoreMachineSSL, model.AliasMachineCert); !vecs.Equal(served) {
		t.Error("port 443 does not serve MACHINE_SSL_CERT/__MACHINE_CERT")
	}
	// Node 2 is not affected.
	if got, served2 := e.trusts(1), e.served(1); !slices.Equal(got, []string{pki.TrustString(served2.Raw)}) {
		t.Error("node 2's registrations do not trust what node 2 serves")
	}
}

func TestScenarioMachineSSLExpired(t *testing.T) {
	e := newEnv(t, "machine-ssl-expired")
	for i := range e.l.Nodes() {
		e.wantExpired(true, map[string]*x509.Certificate{
			fmt.Sprintf("node %d served 443", i):       e.served(i),
			fmt.Sprintf("node %d VECS machine SSL", i): e.vecsCert(i, model.StoreMachineSSL, model.AliasMachineCert),
		})
		e.wantExpired(false, e.solutionUserCerts(i))
		e.wantStartFails(i, `certificate MACHINE_SSL_CERT/__MACHINE_CERT \(.*\) expired on`)
	}
}

func TestScenarioSolutionUsersExpired(t *testing.T) {
	e := newEnv(t, "solution-users-expired")
	for i := range e.l.Nodes() {
		e.wantExpired(true, e.solutionUserCerts(i))
		e.wantExpired(false, map[string]*x509.Certificate{fmt.Sprintf("node %d served 443", i): e.served(i)})
		e.wantStartFails(i, `certificate (machine/machine|vsphere-webclient/vsphere-webclient|vpxd/vpxd|vpxd-extension/vpxd-extension) \(.*\) expired on`)
	}
}

func TestScenarioAllExpired(t *testing.T) {
	e := newEnv(t, "all-expired")
	e.wantExpired(true, map[string]*x509.Certificate{"active STS signing (IDM)": e.activeSTS()})
	for i := range e.l.Nodes() {
		certs := e.solutionUserCerts(i)
		certs[fmt.Sprintf("node %d served 443", i)] = e.served(i)
		e.wantExpired(true, certs)
		e.wantStartFails(i, `expired on|Signing certificate is not valid`)
	}
	e.wantExpired(false, map[string]*x509.Certificate{"root": parsePEM(t, e.file(0, model.PathRootCert))})
}

func TestScenarioRootExpired(t *testing.T) {
	e := newEnv(t, "root-expired")
	root := parsePEM(t, e.file(0, model.PathRootCert))
	e.wantExpired(true, map[string]*x509.Certificate{"VMCA root": root})
	served := e.served(0)
	if err := served.CheckSignatureFrom(root); err != nil {
		t.Errorf("port 443's certificate is not issued by the expired root: %v", err)
	}
	e.wantStartFails(0, `(VMCA root|CA) certificate \(CN=CA, DC=vsphere, DC=local.*\) expired on`)
}

func TestScenarioReplicationLag(t *testing.T) {
	e := newEnv(t, "replication-lag")
	r := e.partnerStatus(0)
	want := fmt.Sprintf("Partner is %d changes behind.", model.LagChanges)
	if r.code != 0 || !strings.Contains(r.stdout, "Partner: "+e.l.Nodes()[1].PNID) || !strings.Contains(r.stdout, want) {
		t.Errorf("node 1 showpartnerstatus: exit %d, want %q about node 2:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	if r := e.partnerStatus(1); r.code != 0 || !strings.Contains(r.stdout, "Partner is 0 changes behind.") {
		t.Errorf("node 2 showpartnerstatus: exit %d, want 0 behind:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestScenarioPartnerDown(t *testing.T) {
	e := newEnv(t, "partner-down")
	info := e.l.Nodes()[1]
	for _, addr := range []string{info.HTTPSAddr, info.LDAPAddr, info.LDAPSAddr, info.SSHAddr} {
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			c.Close()
			t.Errorf("node 2 accepts connections at %s", addr)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, _, _, err := e.tg.Nodes()[1].Run(ctx, "true", nil); err == nil {
		t.Error("SSH to node 2 succeeded")
	}
	r := e.partnerStatus(0)
	if r.code != 0 || !regexp.MustCompile(`(?m)^Partner: `+regexp.QuoteMeta(info.PNID)+`\nHost available: +No$`).MatchString(r.stdout) {
		t.Errorf("node 1 showpartnerstatus: exit %d, want node 2 unavailable:\n%s%s", r.code, r.stdout, r.stderr)
	}
}
