package runbooks_test

// End-to-end tests of the certificate-manager runbooks (KB 2097936, KB
// 2112283): certmgr-machine-ssl (option 3), certmgr-solution-users (option
// 6), certmgr-reset-all (option 8), and expired-certs-recovery (the
// production-down path of the KB 79248 blog: STS first, then the right
// certificate-manager option on every node). Each repair is judged by the
// lab's state: the certificates VECS holds, what port 443 serves, vmdir's
// STS credential and service principals, the Lookup Service registrations
// and the services of every node.

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"runbook/lab/model"
	"runbook/lab/pki"
)

const (
	certmgrMachineSSL    = "certmgr-machine-ssl"
	certmgrSolutionUsers = "certmgr-solution-users"
	certmgrResetAll      = "certmgr-reset-all"
	certmgrRecovery      = "expired-certs-recovery"
)

// certmgrSolutionStores are the solution-user stores of a lab node.
var certmgrSolutionStores = model.SolutionUsers

// certmgrCert returns the certificate of a node's VECS entry.
func certmgrCert(t *testing.T, n *model.Node, store, alias string) *x509.Certificate {
	t.Helper()
	c, err := n.StoreCert(store, alias)
	if err != nil {
		t.Fatalf("%s: read %s/%s: %v", n.PNID, store, alias, err)
	}
	return c
}

// certmgrCerts returns the certificates of a node's Machine SSL and
// solution-user entries, by store.
func certmgrCerts(t *testing.T, n *model.Node) map[string]*x509.Certificate {
	t.Helper()
	out := map[string]*x509.Certificate{model.StoreMachineSSL: certmgrCert(t, n, model.StoreMachineSSL, model.AliasMachineCert)}
	for _, s := range certmgrSolutionStores {
		out[s] = certmgrCert(t, n, s, s)
	}
	return out
}

// certmgrTrustedRoots returns the certificates of a node's TRUSTED_ROOTS.
func certmgrTrustedRoots(t *testing.T, n *model.Node) []*x509.Certificate {
	t.Helper()
	es, err := n.VECS.Entries(model.StoreTrustedRoots)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for _, e := range es {
		c, err := x509.ParseCertificate(e.Cert())
		if err != nil {
			t.Fatalf("%s: TRUSTED_ROOTS/%s: %v", n.PNID, e.Alias, err)
		}
		out = append(out, c)
	}
	return out
}

// certmgrRequireValid fails unless c is valid now with more than 30 days
// left and chains, through valid CA certificates, to a root the node's
// TRUSTED_ROOTS holds, as the node's services check it.
func certmgrRequireValid(t *testing.T, r *labRun, n *model.Node, what string, c *x509.Certificate) {
	t.Helper()
	now := r.Lab.Model().Now()
	if now.Before(c.NotBefore) || now.After(c.NotAfter) {
		t.Errorf("%s: %s is not valid now (%s to %s)", n.PNID, what, c.NotBefore, c.NotAfter)
	}
	if left := c.NotAfter.Sub(now).Hours() / 24; left < 30 {
		t.Errorf("%s: %s expires in %.0f days", n.PNID, what, left)
	}
	roots := x509.NewCertPool()
	for _, root := range certmgrTrustedRoots(t, n) {
		roots.AddCert(root)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("%s: %s does not chain to a valid root of TRUSTED_ROOTS: %v", n.PNID, what, err)
	}
}

// certmgrRequireServices fails unless every automatic service of n runs.
func certmgrRequireServices(t *testing.T, n *model.Node) {
	t.Helper()
	for _, name := range n.Services.Names() {
		auto, err := n.Services.Automatic(name)
		if err != nil {
			t.Fatal(err)
		}
		if running, _ := n.Services.Running(name); auto && !running {
			t.Errorf("%s: service %s is not running", n.PNID, name)
		}
	}
}

// certmgrRequireMachineSSL judges a Machine SSL replacement on node pnid by
// its effect: VECS holds a certificate other than old, valid, naming the
// PNID and chaining to TRUSTED_ROOTS; port 443 serves it; every Lookup
// Service endpoint on the node's host trusts it (first sslTrust); every
// automatic service of the node runs.
func certmgrRequireMachineSSL(t *testing.T, r *labRun, pnid string, old *x509.Certificate) *x509.Certificate {
	t.Helper()
	n := r.Lab.Model().Node(pnid)
	c := certmgrCert(t, n, model.StoreMachineSSL, model.AliasMachineCert)
	if old != nil && c.Equal(old) {
		t.Fatalf("%s: the Machine SSL certificate was not replaced", pnid)
	}
	certmgrRequireValid(t, r, n, "the Machine SSL certificate", c)
	if !slices.Contains(c.DNSNames, pnid) || c.Subject.CommonName != pnid {
		t.Errorf("%s: the Machine SSL certificate names %q (SANs %v), not the PNID", pnid, c.Subject.CommonName, c.DNSNames)
	}
	if served := lookupSSLTrustServed(t, r, pnid); !served.Equal(c) {
		t.Errorf("%s: port 443 serves %s, not the certificate in VECS %s", pnid, lookupSSLTrustSHA1(served.Raw), lookupSSLTrustSHA1(c.Raw))
	}
	ids, trusts := lookupSSLTrustOf(t, lookupSSLTrustRegs(t, r), pnid)
	if len(ids) == 0 {
		t.Errorf("%s: no registration on the node's host", pnid)
	}
	for _, der := range trusts {
		if !bytes.Equal(der, c.Raw) {
			t.Errorf("%s: a registration still trusts %s, not the new certificate", pnid, lookupSSLTrustSHA1(der))
		}
	}
	certmgrRequireServices(t, n)
	return c
}

// certmgrRefreshProfile rewrites the lab's target profile with the TLS
// thumbprints the nodes serve now, as an operator updates the profile after
// a Machine SSL replacement (the CLI does not save the pins a run moved).
func certmgrRefreshProfile(t *testing.T, r *labRun) {
	t.Helper()
	if err := r.Lab.WriteProfile(r.Profile); err != nil {
		t.Fatal(err)
	}
}

// certmgrRunDir returns the folder of the lab's only run.
func certmgrRunDir(t *testing.T, r *labRun) string {
	t.Helper()
	runs, err := filepath.Glob(filepath.Join(r.State, "runs", "*"))
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v %v", runs, err)
	}
	return runs[0]
}

// certmgrRequireBackup fails unless the run folder holds, under the
// backup of step, the certificate old of store/alias and its private key,
// readable by the owner only.
func certmgrRequireBackup(t *testing.T, runDir, step, store, alias string, old *x509.Certificate) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(runDir, "backups", "*"+step+"*", store, alias+".crt"))
	if err != nil || len(files) != 1 {
		all, _ := filepath.Glob(filepath.Join(runDir, "backups", "*", "*", "*"))
		t.Fatalf("backup of %s/%s by step %s: %v %v (backups: %v)", store, alias, step, files, err, all)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || !bytes.Equal(block.Bytes, old.Raw) {
		t.Errorf("%s does not hold the certificate replaced", files[0])
	}
	key := strings.TrimSuffix(files[0], ".crt") + ".key"
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm()&0o077 != 0 || fi.Size() == 0 {
		t.Errorf("backup key %s: %v %v", key, fi, err)
	}
	requireBackups(t, runDir)
}

// certmgrUnchanged runs the CLI and fails unless it exits with code, says
// want, and leaves the lab exactly as it was.
func certmgrUnchanged(t *testing.T, r *labRun, code int, want []string, args ...string) result {
	t.Helper()
	before := r.Lab.Snapshot()
	res := r.mustRun(code, nil, args...)
	if after := r.Lab.Snapshot(); !bytes.Equal(before, after) {
		t.Fatalf("runbook %s changed the lab:\n%s", strings.Join(args, " "), diffLines(string(before), string(after)))
	}
	for _, w := range want {
		if !strings.Contains(res.Stderr, w) {
			t.Errorf("output lacks %q:\n%s", w, res.Stderr)
		}
	}
	return res
}

// certmgrPlanHas fails unless the plan names every want.
func certmgrPlanHas(t *testing.T, plan string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(plan, w) {
			t.Errorf("the plan lacks %q:\n%s", w, plan)
		}
	}
}

func TestCertmgrMachineSSLDryRun(t *testing.T) {
	r := startLab(t, "machine-ssl-expired")
	n := r.Lab.Model().Nodes[0]
	old := certmgrCert(t, n, model.StoreMachineSSL, model.AliasMachineCert)
	res := r.dryRunChangesNothing(certmgrMachineSSL, 0)
	certmgrPlanHas(t, res.Stderr,
		"replace vcsa1.lab.test VECS MACHINE_SSL_CERT/__MACHINE_CERT",
		lookupSSLTrustSHA1(old.Raw),
		"new VMCA certificate CN=vcsa1.lab.test for vcsa1.lab.test",
		"Lookup Service registrations trusting vcsa1.lab.test's Machine SSL certificate",
		"run vcsa1.lab.test services",
		"MACHINE_SSL_CERT/__MACHINE_CERT: EXPIRED",
		"Dry-run: nothing was changed")
}

func TestCertmgrMachineSSLRepairs(t *testing.T) {
	r := startLab(t, "machine-ssl-expired")
	d := r.Lab.Model()
	n1, n2 := d.Nodes[0], d.Nodes[1]
	old := certmgrCert(t, n1, model.StoreMachineSSL, model.AliasMachineCert)
	other := certmgrCert(t, n2, model.StoreMachineSSL, model.AliasMachineCert)
	res := r.mustRun(0, nil, "run", certmgrMachineSSL, "--yes", "--param", "aliases=vcsa1,vcenter.lab.test")
	c := certmgrRequireMachineSSL(t, r, n1.PNID, old)
	for _, name := range []string{"vcsa1", "vcenter.lab.test"} {
		if !slices.Contains(c.DNSNames, name) {
			t.Errorf("the new certificate lacks the alias %s: %v", name, c.DNSNames)
		}
	}
	if !certmgrCert(t, n2, model.StoreMachineSSL, model.AliasMachineCert).Equal(other) {
		t.Error("the other node's Machine SSL certificate changed")
	}
	certmgrRequireBackup(t, certmgrRunDir(t, r), "machine_ssl", model.StoreMachineSSL, model.AliasMachineCert, old)
	if !strings.Contains(res.Stderr, "Replaced vcsa1.lab.test's Machine SSL certificate") {
		t.Errorf("no result note:\n%s", res.Stderr)
	}

	// The second node, named. The CLI keeps the re-pinned TLS thumbprint
	// of node 1 in memory only: the operator updates the profile first.
	certmgrRefreshProfile(t, r)
	r.mustRun(0, nil, "run", certmgrMachineSSL, "--yes", "--param", "node=vcsa2.lab.test")
	certmgrRequireMachineSSL(t, r, n2.PNID, other)
	certmgrRequireMachineSSL(t, r, n1.PNID, old)
	certmgrRefreshProfile(t, r)
	r.mustRun(0, nil, "run", lookupSSLTrustCheck)
}

// TestCertmgrMachineSSLRefuses: the refusals exit 3 (guard or require),
// say what to do instead and leave the lab as it was, in a dry-run too.
func TestCertmgrMachineSSLRefuses(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		args     []string
		want     string
	}{
		{"sts-expired", nil, "certificate-manager would roll back: regenerate the STS certificate first (runbook sts-regenerate, KB 76719)"},
		{"all-expired", nil, "certificate-manager would roll back: regenerate the STS certificate first (runbook sts-regenerate, KB 76719)"},
		{"all-expired", []string{"--dry-run"}, "regenerate the STS certificate first"},
		{"solution-users-expired", nil, "Run certmgr-solution-users (option 6) first"},
		{"root-expired", nil, "Run expired-certs-recovery"},
		{"healthy", []string{"--param", "node=vcsa9.lab.test"}, "node is not a node of this target"},
	} {
		t.Run(tc.scenario+strings.Join(tc.args, ""), func(t *testing.T) {
			r := startLab(t, tc.scenario)
			certmgrUnchanged(t, r, 3, []string{tc.want}, append([]string{"run", certmgrMachineSSL, "--yes"}, tc.args...)...)
		})
	}
}

func TestCertmgrMachineSSLKillAndResume(t *testing.T) {
	killAndResumeEverywhere(t, "machine-ssl-expired", certmgrMachineSSL, nil, func(t *testing.T, r *labRun) {
		certmgrRequireMachineSSL(t, r, "vcsa1.lab.test", nil)
	})
}

// certmgrRequireSolutionUsers judges an option 6 replacement on node pnid
// by its effect: every solution-user certificate in VECS differs from old,
// is valid and chains to TRUSTED_ROOTS; vmdir's service principal of each
// holds the same certificate; every automatic service of the node runs.
func certmgrRequireSolutionUsers(t *testing.T, r *labRun, pnid string, old map[string]*x509.Certificate) {
	t.Helper()
	d := r.Lab.Model()
	n := d.Node(pnid)
	for _, s := range certmgrSolutionStores {
		c := certmgrCert(t, n, s, s)
		if o := old[s]; o != nil && c.Equal(o) {
			t.Errorf("%s: the %s certificate was not replaced", pnid, s)
		}
		certmgrRequireValid(t, r, n, "the "+s+" certificate", c)
		e, err := d.Dir.Get(d.ServicePrincipalDN(s, n))
		if err != nil {
			t.Fatal(err)
		}
		if certs := e.Values("userCertificate"); len(certs) != 1 || !bytes.Equal(certs[0], c.Raw) {
			t.Errorf("%s: vmdir's solution user %s does not hold the certificate in VECS", pnid, s)
		}
	}
	certmgrRequireServices(t, n)
}

func TestCertmgrSolutionUsersDryRun(t *testing.T) {
	r := startLab(t, "solution-users-expired")
	n := r.Lab.Model().Nodes[0]
	res := r.dryRunChangesNothing(certmgrSolutionUsers, 0)
	var want []string
	for _, s := range certmgrSolutionStores {
		want = append(want, "replace vcsa1.lab.test VECS "+s+"/"+s, lookupSSLTrustSHA1(certmgrCert(t, n, s, s).Raw))
	}
	certmgrPlanHas(t, res.Stderr, append(want, "also set on the solution user's service principal in vmdir",
		"run vcsa1.lab.test services", "vpxd/vpxd: EXPIRED", "Dry-run: nothing was changed")...)
	if strings.Contains(res.Stderr, "VECS MACHINE_SSL_CERT") {
		t.Errorf("option 6 plans to replace the Machine SSL certificate:\n%s", res.Stderr)
	}
}

func TestCertmgrSolutionUsersRepairs(t *testing.T) {
	r := startLab(t, "solution-users-expired")
	d := r.Lab.Model()
	n1, n2 := d.Nodes[0], d.Nodes[1]
	old, other := certmgrCerts(t, n1), certmgrCerts(t, n2)
	r.mustRun(0, nil, "run", certmgrSolutionUsers, "--yes")
	certmgrRequireSolutionUsers(t, r, n1.PNID, old)
	if !certmgrCert(t, n1, model.StoreMachineSSL, model.AliasMachineCert).Equal(old[model.StoreMachineSSL]) {
		t.Error("option 6 replaced the Machine SSL certificate")
	}
	for s, c := range certmgrCerts(t, n2) {
		if !c.Equal(other[s]) {
			t.Errorf("the other node's %s certificate changed", s)
		}
	}
	runDir := certmgrRunDir(t, r)
	for _, s := range certmgrSolutionStores {
		certmgrRequireBackup(t, runDir, "solution_users", s, s, old[s])
	}

	r.mustRun(0, nil, "run", certmgrSolutionUsers, "--yes", "--param", "node=vcsa2.lab.test")
	certmgrRequireSolutionUsers(t, r, n2.PNID, other)
	r.mustRun(0, nil, "run", "vecs-expiry")
}

func TestCertmgrSolutionUsersRefuses(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		want     string
	}{
		{"sts-expired", "certificate-manager would roll back: regenerate the STS certificate first (runbook sts-regenerate, KB 76719)"},
		{"all-expired", "regenerate the STS certificate first"},
		{"machine-ssl-expired", "run certmgr-reset-all (option 8"},
		{"root-expired", "Run expired-certs-recovery"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			r := startLab(t, tc.scenario)
			certmgrUnchanged(t, r, 3, []string{tc.want}, "run", certmgrSolutionUsers, "--yes")
		})
	}
}

// certmgrRequireReset judges an option 8 reset of node pnid by its effect:
// the domain's VMCA root is new (not oldRoot) and valid, root.cer holds it,
// every node's TRUSTED_ROOTS holds it, the node's Machine SSL and
// solution-user certificates are issued by it (and checked as options 3
// and 6 are), and every automatic service of the node runs. It returns
// the new root.
func certmgrRequireReset(t *testing.T, r *labRun, pnid string, oldRoot *x509.Certificate, old map[string]*x509.Certificate) *x509.Certificate {
	t.Helper()
	d := r.Lab.Model()
	n := d.Node(pnid)
	root := d.VMCARoot().X509
	if oldRoot != nil && root.Equal(oldRoot) {
		t.Fatalf("the VMCA root was not regenerated")
	}
	now := d.Now()
	if now.After(root.NotAfter) || now.Before(root.NotBefore) || !root.IsCA {
		t.Errorf("the new VMCA root is not a valid CA now: %s – %s", root.NotBefore, root.NotAfter)
	}
	data, err := n.ReadFile(model.PathRootCert)
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(data); block == nil || !bytes.Equal(block.Bytes, root.Raw) {
		t.Errorf("%s: %s is not the new root", pnid, model.PathRootCert)
	}
	for _, m := range d.Nodes {
		if !slices.ContainsFunc(certmgrTrustedRoots(t, m), root.Equal) {
			t.Errorf("%s: TRUSTED_ROOTS lacks the new root", m.PNID)
		}
	}
	certmgrRequireMachineSSL(t, r, pnid, old[model.StoreMachineSSL])
	certmgrRequireSolutionUsers(t, r, pnid, old)
	for store, c := range certmgrCerts(t, n) {
		if err := c.CheckSignatureFrom(root); err != nil {
			t.Errorf("%s: the %s certificate is not issued by the new root: %v", pnid, store, err)
		}
	}
	return root
}

func TestCertmgrResetAllDryRun(t *testing.T) {
	r := startLab(t, "healthy")
	d := r.Lab.Model()
	res := r.dryRunChangesNothing(certmgrResetAll, 0)
	want := []string{
		"replace vcsa1.lab.test VMCA root /var/lib/vmware/vmca/root.cer", lookupSSLTrustSHA1(d.VMCARoot().X509.Raw),
		"new VMCA root certificate CN=vcsa1.lab.test",
		"replace vcsa1.lab.test VECS MACHINE_SSL_CERT/__MACHINE_CERT",
		"Lookup Service registrations trusting vcsa1.lab.test's Machine SSL certificate",
		"run vcsa1.lab.test services",
		"Other nodes (vcsa2.lab.test) keep certificates signed by the current root",
		"re-trust or re-register the external solutions",
		"Dry-run: nothing was changed",
	}
	for _, s := range certmgrSolutionStores {
		want = append(want, "replace vcsa1.lab.test VECS "+s+"/"+s)
	}
	certmgrPlanHas(t, res.Stderr, want...)
}

// TestCertmgrResetAllHealthy resets the first node of a healthy domain (a
// proactive reset): a new root, every certificate of the node issued by
// it, the other node untouched and still working on the previous root.
func TestCertmgrResetAllHealthy(t *testing.T) {
	r := startLab(t, "healthy")
	d := r.Lab.Model()
	n1, n2 := d.Nodes[0], d.Nodes[1]
	oldRoot := d.VMCARoot().X509
	old, other := certmgrCerts(t, n1), certmgrCerts(t, n2)
	res := r.mustRun(0, nil, "run", certmgrResetAll, "--yes")
	certmgrRequireReset(t, r, n1.PNID, oldRoot, old)
	for s, c := range certmgrCerts(t, n2) {
		if !c.Equal(other[s]) {
			t.Errorf("the other node's %s certificate changed", s)
		}
	}
	if !slices.ContainsFunc(certmgrTrustedRoots(t, n2), oldRoot.Equal) {
		t.Error("the previous root is no longer trusted on the other node")
	}
	certmgrRequireServices(t, n2)
	runDir := certmgrRunDir(t, r)
	certmgrRequireBackup(t, runDir, "reset", model.StoreMachineSSL, model.AliasMachineCert, old[model.StoreMachineSSL])
	certmgrRequireBackup(t, runDir, "reset", "vpxd", "vpxd", old["vpxd"])
	rootBackup, err := filepath.Glob(filepath.Join(runDir, "backups", "*reset*", "vmca", "root.cer"))
	if err != nil || len(rootBackup) != 1 {
		t.Fatalf("no backup of root.cer: %v %v", rootBackup, err)
	}
	if data, _ := os.ReadFile(rootBackup[0]); !bytes.Contains(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: oldRoot.Raw})) {
		t.Errorf("%s does not hold the previous root", rootBackup[0])
	}
	certmgrPlanHas(t, res.Stderr, "Other nodes (vcsa2.lab.test (embedded)): their certificates are still signed by the previous root "+lookupSSLTrustSHA1(oldRoot.Raw))
}

// TestCertmgrResetAllBothExpired: after the STS fix on all-expired (its
// restart refused), Machine SSL and solution users have both expired on
// every node, so options 3 and 6 are refused and option 8 is the fix; it
// is run on each node in turn and the whole domain works again.
func TestCertmgrResetAllBothExpired(t *testing.T) {
	r := startLab(t, "all-expired")
	d := r.Lab.Model()
	r.mustRun(3, nil, "run", "sts-regenerate", "--yes")
	certmgrUnchanged(t, r, 3, []string{"Machine SSL and solution users have both expired: run certmgr-reset-all"}, "run", certmgrMachineSSL, "--yes")
	certmgrUnchanged(t, r, 3, []string{"Machine SSL and solution users have both expired: run certmgr-reset-all"}, "run", certmgrSolutionUsers, "--yes")
	n1, n2 := d.Nodes[0], d.Nodes[1]
	old1, old2 := certmgrCerts(t, n1), certmgrCerts(t, n2)
	root0 := d.VMCARoot().X509
	r.mustRun(0, nil, "run", certmgrResetAll, "--yes")
	root1 := certmgrRequireReset(t, r, n1.PNID, root0, old1)
	certmgrRefreshProfile(t, r)
	r.mustRun(0, nil, "run", certmgrResetAll, "--yes", "--param", "node="+n2.PNID)
	certmgrRequireReset(t, r, n2.PNID, root1, old2)
	// Node 1 works on the root its reset made, still trusted.
	certmgrRequireMachineSSL(t, r, n1.PNID, nil)
	certmgrRequireSolutionUsers(t, r, n1.PNID, nil)
	certmgrRefreshProfile(t, r)
	r.mustRun(0, nil, "run", "sts-check")
	r.mustRun(0, nil, "run", lookupSSLTrustCheck)
}

// TestCertmgrResetAllRefuses: the STS first; and on root-expired, where
// the STS signing certificate chains to the expired root, option 8 would
// roll back (it does not replace the STS certificate): refused with the
// way out.
func TestCertmgrResetAllRefuses(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		args     []string
		want     string
	}{
		{"sts-expired", nil, "certificate-manager would roll back: regenerate the STS certificate first (runbook sts-regenerate, KB 76719)"},
		{"all-expired", nil, "regenerate the STS certificate first"},
		{"root-expired", nil, "the STS signing certificate chains to an expired CA certificate"},
		{"root-expired", []string{"--dry-run"}, "Run expired-certs-recovery"},
	} {
		t.Run(tc.scenario+strings.Join(tc.args, ""), func(t *testing.T) {
			r := startLab(t, tc.scenario)
			certmgrUnchanged(t, r, 3, []string{tc.want}, append([]string{"run", certmgrResetAll, "--yes"}, tc.args...)...)
		})
	}
}

// certmgrAddExpiredRoot puts an expired CA certificate that nothing
// chains to into every node's TRUSTED_ROOTS, as option 8 leaves the
// previous root there, and returns it.
func certmgrAddExpiredRoot(t *testing.T, r *labRun) *x509.Certificate {
	t.Helper()
	d := r.Lab.Model()
	now := d.Now()
	ca, err := pki.NewRoot("Old Root CA", now.AddDate(-10, 0, 0), now.AddDate(0, 0, -40))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range d.Nodes {
		e := model.Entry{Alias: strings.ToLower(pki.SHA1Hex(ca.DER)), Type: model.TrustedCert, Certs: [][]byte{ca.DER}}
		if err := n.VECS.Create(model.StoreTrustedRoots, e); err != nil {
			t.Fatal(err)
		}
	}
	return ca.X509
}

// TestCertmgrMachineSSLLeftoverRoot: an expired root nothing chains to any
// more (the previous root, which option 8 keeps in TRUSTED_ROOTS) does not
// stop option 3, as it would stop every later run if it did; it is shown.
func TestCertmgrMachineSSLLeftoverRoot(t *testing.T) {
	r := startLab(t, "machine-ssl-expired")
	certmgrAddExpiredRoot(t, r)
	n := r.Lab.Model().Nodes[0]
	old := certmgrCert(t, n, model.StoreMachineSSL, model.AliasMachineCert)
	res := r.mustRun(0, nil, "run", certmgrMachineSSL, "--yes")
	certmgrRequireMachineSSL(t, r, n.PNID, old)
	if !strings.Contains(res.Stderr, "TRUSTED_ROOTS/") || !strings.Contains(res.Stderr, ": EXPIRED on") {
		t.Errorf("the report does not show the expired root:\n%s", res.Stderr)
	}
}

// certmgrRequireSTS judges the STS signing credential by its effect: one
// TenantCredential, active, whose leaf and chain are valid now and whose
// chain ends in a root every node trusts, its key the leaf's, and one
// TrustedCertChain holding the same chain. It returns the leaf.
func certmgrRequireSTS(t *testing.T, r *labRun) *x509.Certificate {
	t.Helper()
	d := r.Lab.Model()
	now := d.Now()
	creds, err := d.TenantCredentials()
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 {
		t.Fatalf("%d TenantCredential entries, want 1", len(creds))
	}
	cred := creds[0]
	if active, err := d.ActiveSTS(); err != nil || active.DN != cred.DN {
		t.Errorf("active credential %v (%v), want %s", active.DN, err, cred.DN)
	}
	for i, c := range cred.Certs {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			t.Errorf("%s certificate %d (%s) is not valid now", cred.DN, i, c.Subject)
		}
	}
	if cred.Leaf() == nil || len(cred.Certs) < 2 {
		t.Fatalf("%s holds no chain", cred.DN)
	}
	if _, err := pki.ParseCert(cred.Leaf().Raw, cred.Key); err != nil {
		t.Errorf("%s: the key is not the leaf's: %v", cred.DN, err)
	}
	root := cred.Certs[len(cred.Certs)-1]
	for _, n := range d.Nodes {
		if !slices.ContainsFunc(certmgrTrustedRoots(t, n), root.Equal) {
			t.Errorf("%s: TRUSTED_ROOTS lacks the STS chain's root %s", n.PNID, root.Subject)
		}
	}
	chains, err := d.TrustedCertChains()
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) != 1 || !slices.EqualFunc(chains[0].Certs, cred.Certs, (*x509.Certificate).Equal) {
		t.Errorf("%d TrustedCertChain entries, want one holding the credential's chain", len(chains))
	}
	return cred.Leaf()
}

// certmgrRequireRecovered judges expired-certs-recovery by the lab's
// state: the STS signing credential valid, every node's Machine SSL and
// solution-user certificates valid, chaining to TRUSTED_ROOTS, served on
// 443, trusted by its registrations and held by vmdir's solution users,
// every automatic service running on every node, and the Lookup Service
// sslTrust of every node in sync with what it serves.
func certmgrRequireRecovered(t *testing.T, r *labRun) {
	t.Helper()
	certmgrRequireSTS(t, r)
	for _, n := range r.Lab.Model().Nodes {
		certmgrRequireMachineSSL(t, r, n.PNID, nil)
		certmgrRequireSolutionUsers(t, r, n.PNID, nil)
	}
	lookupSSLTrustInSync(t, r)
}

func TestExpiredCertsRecoveryDryRun(t *testing.T) {
	r := startLab(t, "all-expired")
	d := r.Lab.Model()
	res := r.dryRunChangesNothing(certmgrRecovery, 0)
	certmgrPlanHas(t, res.Stderr,
		"STS signing certificate (TenantCredential-1, "+stsThumbprint(stsActiveLeaf(t, d))+"): EXPIRED",
		"vcsa1.lab.test: MACHINE_SSL_CERT/__MACHINE_CERT EXPIRED",
		"- the VMCA root is valid: keep it",
		"- regenerate the STS signing certificate (KB 76719, as sts-regenerate does): new TenantCredential-2",
		"vcsa1.lab.test: certificate-manager option 8, Reset all Certificates (Machine SSL and solution users have both expired",
		"vcsa2.lab.test: certificate-manager option 8, Reset all Certificates",
		"create vcsa1.lab.test ldap "+d.TenantCredentialDN(2),
		"delete vcsa1.lab.test ldap "+d.TenantCredentialDN(1),
		"delete vcsa1.lab.test ldap "+d.TrustedChainDN(1),
		"create vcsa1.lab.test certool sts certificate",
		"replace vcsa1.lab.test VMCA root /var/lib/vmware/vmca/root.cer",
		"replace vcsa2.lab.test VECS vpxd/vpxd",
		"restart vcsa1.lab.test services",
		"restart vcsa2.lab.test services",
		"Dry-run: nothing was changed")
}

// TestExpiredCertsRecovery runs the recovery on every scenario it applies
// to and judges it by the lab's state; the options each node needed are
// in its plan.
func TestExpiredCertsRecovery(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		want     []string
	}{
		{"all-expired", []string{"vcsa1.lab.test: certificate-manager option 8", "vcsa2.lab.test: certificate-manager option 8", "- regenerate the STS signing certificate"}},
		{"sts-expired", []string{"vcsa1.lab.test: nothing to replace", "vcsa2.lab.test: nothing to replace", "- regenerate the STS signing certificate"}},
		{"machine-ssl-expired", []string{"vcsa1.lab.test: certificate-manager option 3", "vcsa2.lab.test: certificate-manager option 3", "- the STS signing certificate is valid: keep it"}},
		{"solution-users-expired", []string{"vcsa1.lab.test: certificate-manager option 6", "vcsa2.lab.test: certificate-manager option 6"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			r := startLab(t, tc.scenario)
			res := r.mustRun(0, nil, "run", certmgrRecovery, "--yes")
			certmgrRequireRecovered(t, r)
			certmgrPlanHas(t, res.Stderr, append(tc.want, "Recovery finished.")...)
			requireBackups(t, certmgrRunDir(t, r))
		})
	}
}

// TestExpiredCertsRecoveryRootExpired: with the VMCA root expired, the STS
// signing certificate chains to it and vmcad is down, so neither fixsts
// nor certificate-manager alone can work. The recovery replaces the root
// first (certool --selfca, fixsts.sh's root branch), then the STS, then
// resets every node with option 8.
func TestExpiredCertsRecoveryRootExpired(t *testing.T) {
	r := startLab(t, "root-expired")
	d := r.Lab.Model()
	oldRoot := d.VMCARoot().X509
	oldKey, err := d.Nodes[0].ReadFile(model.PathRootKey)
	if err != nil {
		t.Fatal(err)
	}
	res := r.mustRun(0, nil, "run", certmgrRecovery, "--yes")
	certmgrPlanHas(t, res.Stderr, "- replace the expired VMCA root on vcsa1.lab.test",
		"vcsa1.lab.test: certificate-manager option 8, Reset all Certificates (its certificates are issued by an expired root",
		"vcsa2.lab.test: certificate-manager option 8", "Recovery finished.")
	certmgrRequireRecovered(t, r)
	if root := d.VMCARoot().X509; root.Equal(oldRoot) || d.Now().After(root.NotAfter) {
		t.Errorf("the VMCA root is not a new, valid one")
	}
	for _, n := range d.Nodes {
		for store, c := range certmgrCerts(t, n) {
			if c.CheckSignatureFrom(oldRoot) == nil {
				t.Errorf("%s: %s is still issued by the expired root", n.PNID, store)
			}
		}
	}
	// The expired root and its key were copied before they were replaced.
	runDir := certmgrRunDir(t, r)
	cert, err := os.ReadFile(filepath.Join(runDir, "vmca-before", "root.cer"))
	if err != nil || !bytes.Contains(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: oldRoot.Raw})) {
		t.Errorf("vmca-before/root.cer is not the expired root (%v)", err)
	}
	key := filepath.Join(runDir, "vmca-before", "privatekey.pem")
	if data, err := os.ReadFile(key); err != nil || !bytes.Equal(data, oldKey) {
		t.Errorf("vmca-before/privatekey.pem is not the expired root's key (%v)", err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("the root key copy is readable by others: %v", err)
	}
	if strings.Contains(res.Stdout+res.Stderr, "PRIVATE KEY") {
		t.Error("the output shows a private key")
	}
	certmgrRefreshProfile(t, r)
	r.mustRun(0, nil, "run", "sts-check")
	// Run again: the expired root left in TRUSTED_ROOTS (nothing is
	// issued by it) is reported, and nothing is done.
	certmgrUnchanged(t, r, 0, []string{"Nothing has expired", "TRUSTED_ROOTS/" + strings.ToLower(pki.SHA1Hex(oldRoot.Raw))}, "run", certmgrRecovery, "--yes")
}

func TestExpiredCertsRecoveryHealthy(t *testing.T) {
	r := startLab(t, "healthy")
	r.dryRunChangesNothing(certmgrRecovery, 0)
	res := certmgrUnchanged(t, r, 0, []string{"Nothing has expired", "Nothing had expired; nothing was changed.",
		"every required service runs on every node", "every node's endpoints trust the certificate its port 443 serves"},
		"run", certmgrRecovery, "--yes")
	if strings.Contains(res.Stderr, "Have OFFLINE snapshots") {
		t.Errorf("asked for snapshots with nothing to do:\n%s", res.Stderr)
	}
}

// TestExpiredCertsRecoveryFindings: a domain whose certificates are valid
// but whose services are stopped or sslTrust stale is not "recovered":
// the re-check reports it and exits 6, changing nothing.
func TestExpiredCertsRecoveryFindings(t *testing.T) {
	r := startLab(t, "stale-ssltrust")
	certmgrUnchanged(t, r, 6, []string{"Nothing has expired", "MISMATCH: ", "run lookup-ssltrust-update"}, "run", certmgrRecovery, "--yes")
}

func TestExpiredCertsRecoveryKillAndResume(t *testing.T) {
	killAndResumeEverywhere(t, "all-expired", certmgrRecovery, nil, certmgrRequireRecovered)
}

// TestCertmgrSolutionUsersKillAndResume: option 6 moves no TLS pin, so a
// run killed anywhere resumes to the same end.
func TestCertmgrSolutionUsersKillAndResume(t *testing.T) {
	killAndResumeEverywhere(t, "solution-users-expired", certmgrSolutionUsers, nil, func(t *testing.T, r *labRun) {
		certmgrRequireSolutionUsers(t, r, "vcsa1.lab.test", nil)
	})
}

// TestExpiredCertsRecoveryRootExpiredDryRun: the dry-run plans the root
// replacement, the STS and option 8 on both nodes, changes nothing, and
// copies no private key.
func TestExpiredCertsRecoveryRootExpiredDryRun(t *testing.T) {
	r := startLab(t, "root-expired")
	res := r.dryRunChangesNothing(certmgrRecovery, 0)
	certmgrPlanHas(t, res.Stderr,
		"- replace the expired VMCA root on vcsa1.lab.test",
		"create vcsa1.lab.test file /tmp/vmware-runbook-vmca-root.cfg",
		"run vcsa1.lab.test ssh /usr/lib/vmware-vmca/bin/certool --selfca --config /tmp/vmware-runbook-vmca-root.cfg",
		"run vcsa1.lab.test ssh /usr/bin/service-control --start vmcad",
		"create vcsa1.lab.test certool sts certificate",
		"vcsa2.lab.test: certificate-manager option 8",
		"Dry-run: nothing was changed")
	keys, err := filepath.Glob(filepath.Join(certmgrRunDir(t, r), "vmca-before", "*"))
	if err != nil || len(keys) != 0 {
		t.Errorf("the dry-run copied %v (%v)", keys, err)
	}
}
