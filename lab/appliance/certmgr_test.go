package appliance

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/lab/vmdir"
)

// machineCfg is the certool.cfg an operator gives option 3 for node n.
func machineCfg(n *model.Node) CertoolConfig {
	return DefaultCertoolConfig(n.PNID, n.DisplayIP)
}

// trustThumb returns the lower-case SHA-1 of an sslTrust value.
func trustThumb(t *testing.T, s string) string {
	t.Helper()
	der, err := pki.ParseTrust(s)
	if err != nil {
		t.Fatal(err)
	}
	return pki.SHA1Hex(der)
}

// checkMachineSSLReplaced asserts what option 3 leaves behind on node n:
// a new Machine SSL certificate chaining to the VMCA root, the old one in
// BACKUP_STORE, exactly the registrations that trusted the old certificate
// (first trust of their first ten endpoints) re-pointed to the new one,
// every other registration (SRM included) untouched, services running.
func checkMachineSSLReplaced(t *testing.T, d *model.Domain, n *model.Node, old []byte, before []model.Registration) {
	t.Helper()
	cert, err := n.StoreCert(model.StoreMachineSSL, model.AliasMachineCert)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(cert.Raw, old) {
		t.Fatal("MACHINE_SSL_CERT still holds the old certificate")
	}
	pool := x509.NewCertPool()
	pool.AddCert(d.VMCARoot().X509)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: labNow, DNSName: n.PNID}); err != nil {
		t.Errorf("new machine certificate does not verify for %s: %v", n.PNID, err)
	}
	bkp, err := n.VECS.Get(model.StoreBackup, model.BackupAlias(model.AliasMachineCert))
	if err != nil || !bytes.Equal(bkp.Cert(), old) {
		t.Errorf("BACKUP_STORE does not hold the old certificate (err %v)", err)
	}
	after, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]model.Registration{}
	for _, r := range after {
		byID[r.ServiceID] = r
	}
	oldThumb, newThumb := pki.SHA1Hex(old), pki.SHA1Hex(cert.Raw)
	updated, srm := 0, false
	for _, b := range before {
		a, ok := byID[b.ServiceID]
		if !ok {
			t.Errorf("registration %s disappeared", b.ServiceID)
			continue
		}
		if b.Product == model.SRMProduct {
			srm = true
			if !reflect.DeepEqual(a, b) {
				t.Errorf("the SRM registration changed:\nbefore %+v\nafter  %+v", b, a)
			}
		}
		want := b
		want.Endpoints = append([]model.Endpoint(nil), b.Endpoints...)
		changed := false
		for i, ep := range b.Endpoints {
			if i < maxUpdateEndpoints && len(ep.SslTrust) > 0 && trustThumb(t, ep.SslTrust[0]) == oldThumb {
				want.Endpoints[i].SslTrust = append([]string{pki.TrustString(cert.Raw)}, ep.SslTrust[1:]...)
				if got := a.Endpoints[i].SslTrust; len(got) == 0 || trustThumb(t, got[0]) != newThumb {
					t.Errorf("%s endpoint %d: trust not re-pointed to the new certificate", b.ServiceID, i)
				}
				changed = true
			}
		}
		if changed {
			updated++
		}
		if !reflect.DeepEqual(a, want) {
			t.Errorf("registration %s:\nwant %+v\ngot  %+v", b.ServiceID, want, a)
		}
	}
	if updated == 0 {
		t.Error("no registration trusted the old certificate: the test proves nothing")
	}
	if !srm {
		t.Error("no SRM registration in the lab")
	}
	for _, name := range n.Services.Names() {
		auto, _ := n.Services.Automatic(name)
		if running, _ := n.Services.Running(name); auto && !running {
			t.Errorf("service %s is not running after the operation", name)
		}
	}
}

func TestReplaceMachineSSL(t *testing.T) {
	d := newLab(t, "healthy")
	n := d.Nodes[0]
	old, _ := n.MachineCert()
	before, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	other := d.Snapshot()
	var out bytes.Buffer
	if err := ReplaceMachineSSL(t.Context(), d, n, machineCfg(n), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	checkMachineSSLReplaced(t, d, n, old.Raw, before)
	text := out.String()
	for _, want := range []string{
		"Status : 0% Completed [Replacing Machine SSL Cert...]\nGet site name\ndefault-site\nLookup all services\nGet service ",
		"Update service ", "; spec: /tmp/svcspec_", "Don't update service ",
		"Status : 70% Completed [stopping services...]\nStatus : 85% Completed [starting services...]\nStatus : 100% Completed [All tasks completed successfully]\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("console lacks %q:\n%s", want, text)
		}
	}
	// Spec files are removed once the update succeeded.
	if left, _ := filepath.Glob(n.Path("/tmp/svcspec_*")); len(left) > 0 {
		t.Errorf("spec files left behind: %v", left)
	}
	// Node 2 kept its certificates.
	if !strings.Contains(string(other), "node vcsa2") {
		t.Fatal("snapshot has no second node")
	}
	if log, err := n.ReadFile(PathCertificateManagerLog); err != nil || !strings.Contains(string(log), "All tasks completed successfully") {
		t.Errorf("certificate-manager.log: %v %q", err, log)
	}
}

// stripSnapshot drops what a rolled-back operation may change: the
// BACKUP_STORE entries and the log files.
func stripSnapshot(s []byte) string {
	var out []string
	inBackup := false
	for _, l := range strings.Split(string(s), "\n") {
		if strings.HasPrefix(l, "store ") || strings.HasPrefix(l, "-- ") {
			inBackup = l == "store "+model.StoreBackup
		}
		if inBackup || strings.Contains(l, " /var/log/") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func TestReplaceMachineSSLRollsBack(t *testing.T) {
	d := newLab(t, "all-expired")
	n := d.Nodes[0]
	old, _ := n.MachineCert()
	before := d.Snapshot()
	var out bytes.Buffer
	err := ReplaceMachineSSL(t.Context(), d, n, machineCfg(n), &out)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want ErrRolledBack\n%s", err, out.String())
	}
	if !strings.Contains(err.Error(), "Signing certificate is not valid") {
		t.Errorf("error does not say why services failed: %v", err)
	}
	if got, want := stripSnapshot(d.Snapshot()), stripSnapshot(before); got != want {
		t.Errorf("state after rollback differs from before:\n%s", lineDiff(want, got))
	}
	bkp, err := n.VECS.Get(model.StoreBackup, model.BackupAlias(model.AliasMachineCert))
	if err != nil || !bytes.Equal(bkp.Cert(), old.Raw) {
		t.Errorf("BACKUP_STORE does not hold the certificate from before: %v", err)
	}
	text := out.String()
	for _, want := range []string{
		"Status : 85% Completed [starting services...]\nError while starting services, please see log for more details\n",
		"Status : 0% Completed [Operation failed, performing automatic rollback]\nPerforming rollback of Machine SSL Cert...\n",
		"Rollback Status : 100% Completed [Rollback completed successfully]\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("console lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "All tasks completed successfully") {
		t.Errorf("console claims success:\n%s", text)
	}
}

// TestReplaceMachineSSLFaultRollsBack fails the operation's first write and
// checks that nothing changed.
func TestReplaceMachineSSLFaultRollsBack(t *testing.T) {
	d := newLab(t, "healthy")
	n := d.Nodes[0]
	before := d.Snapshot()
	d.Faults.FailNextWrite(model.ProtoSSH)
	var out bytes.Buffer
	err := ReplaceMachineSSL(t.Context(), d, n, machineCfg(n), &out)
	if !errors.Is(err, ErrRolledBack) || !errors.Is(err, model.ErrInjectedWrite) {
		t.Fatalf("err = %v, want the injected fault, rolled back", err)
	}
	if got, want := stripSnapshot(d.Snapshot()), stripSnapshot(before); got != want {
		t.Errorf("state differs:\n%s", lineDiff(want, got))
	}
}

// TestReplaceMachineSSLCancelled: an operation interrupted while it
// restarts services rolls back too.
func TestReplaceMachineSSLCancelled(t *testing.T) {
	d := newLab(t, "healthy")
	n := d.Nodes[0]
	before := d.Snapshot()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := ReplaceMachineSSL(ctx, d, n, machineCfg(n), &bytes.Buffer{})
	if !errors.Is(err, ErrRolledBack) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if got, want := stripSnapshot(d.Snapshot()), stripSnapshot(before); got != want {
		t.Errorf("state differs:\n%s", lineDiff(want, got))
	}
}

func TestReplaceSolutionUsers(t *testing.T) {
	d := newLab(t, "solution-users-expired")
	n := d.Nodes[0]
	olds := map[string][]byte{}
	for _, s := range model.SolutionUsers {
		c, err := n.StoreCert(s, s)
		if err != nil {
			t.Fatal(err)
		}
		if pki.ValidAt(c, labNow) {
			t.Fatalf("%s is valid before the operation: the scenario proves nothing", s)
		}
		olds[s] = c.Raw
	}
	if err := n.Services.StartAll(); err == nil {
		t.Fatal("services start with expired solution users: the scenario proves nothing")
	}
	var out bytes.Buffer
	if err := ReplaceSolutionUsers(t.Context(), d, n, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, s := range model.SolutionUsers {
		c, err := n.StoreCert(s, s)
		if err != nil {
			t.Fatal(err)
		}
		if !pki.ValidAt(c, labNow) || bytes.Equal(c.Raw, olds[s]) {
			t.Errorf("%s: not replaced with a valid certificate", s)
		}
		e, err := d.Dir.Get(d.ServicePrincipalDN(s, n))
		if err != nil {
			t.Fatal(err)
		}
		if v := e.Values("userCertificate"); len(v) != 1 || !bytes.Equal(v[0], c.Raw) {
			t.Errorf("%s: service principal certificate is not the store's", s)
		}
		if got := e.First("vmwSTSSubjectDN"); got != pki.SubjectDN(c) {
			t.Errorf("%s: vmwSTSSubjectDN %q, want %q", s, got, pki.SubjectDN(c))
		}
		bkp, err := n.VECS.Get(model.StoreBackup, model.BackupAlias(s))
		if err != nil || !bytes.Equal(bkp.Cert(), olds[s]) {
			t.Errorf("%s: BACKUP_STORE does not hold the old certificate", s)
		}
		if !strings.Contains(out.String(), "[Replace "+s+" Cert...]") {
			t.Errorf("console lacks the %s step:\n%s", s, out.String())
		}
	}
	running, stopped := n.Services.Status()
	for _, s := range stopped {
		if auto, _ := n.Services.Automatic(s); auto {
			t.Errorf("%s stopped after option 6 (running: %v)", s, running)
		}
	}
	// The other node's principals are untouched.
	other := d.Nodes[1]
	e, _ := d.Dir.Get(d.ServicePrincipalDN(model.StoreVpxd, other))
	c, _ := other.StoreCert(model.StoreVpxd, model.StoreVpxd)
	if v := e.Values("userCertificate"); len(v) != 1 || !bytes.Equal(v[0], c.Raw) {
		t.Error("node 2's vpxd principal changed")
	}
}

func TestResetAllCertificates(t *testing.T) {
	d := newLab(t, "healthy")
	n, other := d.Nodes[0], d.Nodes[1]
	oldRoot := d.VMCARoot()
	oldSSL, _ := n.MachineCert()
	before, _ := d.Registrations()
	var out bytes.Buffer
	if err := ResetAllCertificates(t.Context(), d, n, machineCfg(n), "VMCA-"+n.PNID, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	newRoot := d.VMCARoot()
	if bytes.Equal(newRoot.DER, oldRoot.DER) {
		t.Fatal("root not replaced")
	}
	if newRoot.X509.Subject.CommonName != "VMCA-"+n.PNID {
		t.Errorf("root CN %q", newRoot.X509.Subject.CommonName)
	}
	for _, x := range d.Nodes {
		if x.HasDirectory() {
			cur, _ := x.ReadFile(model.PathRootCert)
			prev, _ := x.ReadFile(model.PathRootCert + ".0")
			if !bytes.Equal(cur, newRoot.PEM()) || !bytes.Equal(prev, oldRoot.PEM()) {
				t.Errorf("%s: root.cer / root.cer.0 are not the new / old root", x.PNID)
			}
		}
		for _, r := range []*pki.CA{oldRoot, newRoot} {
			if _, err := x.VECS.Get(model.StoreTrustedRoots, pki.SHA1Hex(r.DER)); err != nil {
				t.Errorf("%s: TRUSTED_ROOTS lacks %s", x.PNID, pki.SubjectDN(r.X509))
			}
		}
	}
	if _, err := d.Dir.Get(d.CADN(newRoot.X509)); err != nil {
		t.Errorf("new root not published: %v", err)
	}
	checkMachineSSLReplaced(t, d, n, oldSSL.Raw, before)
	for _, s := range model.SolutionUsers {
		c, _ := n.StoreCert(s, s)
		if c.CheckSignatureFrom(newRoot.X509) != nil {
			t.Errorf("%s is not signed by the new root", s)
		}
	}
	if !strings.Contains(out.String(), "[Replacing Root Cert...]") || !strings.Contains(out.String(), "[Publishing Root cert...]") {
		t.Errorf("console lacks the root steps:\n%s", out.String())
	}
	// Node 2 still chains to the old root, which stays trusted.
	other.Services.StopAll()
	if err := other.Services.StartAll(); err != nil {
		t.Errorf("node 2 services do not start after the reset of node 1: %v", err)
	}
}

// TestResetAllRollsBack: option 8 on all-expired cannot start services
// (STS expired) and rolls back the root too.
func TestResetAllRollsBack(t *testing.T) {
	d := newLab(t, "all-expired")
	n := d.Nodes[0]
	before := d.Snapshot()
	var out bytes.Buffer
	err := ResetAllCertificates(t.Context(), d, n, machineCfg(n), n.PNID, &out)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	if got, want := stripSnapshot(d.Snapshot()), stripSnapshot(before); got != want {
		t.Errorf("state after rollback differs from before:\n%s", lineDiff(want, got))
	}
	for _, g := range []string{"Machine SSL Cert", "Solution User Certs", "Root Cert"} {
		if !strings.Contains(out.String(), "Performing rollback of "+g+"...") {
			t.Errorf("console lacks the %s rollback:\n%s", g, out.String())
		}
	}
}

// TestUpdateLookupServiceRules checks the §1.6 matching rules on crafted
// registrations: only the first trust value of each of the first ten
// endpoints is compared, by SHA-1; legacy registrations are updated too.
func TestUpdateLookupServiceRules(t *testing.T) {
	d := newLab(t, "stale-ssltrust")
	n := d.Nodes[0]
	bkp, err := n.VECS.Get(model.StoreBackup, model.BackupAlias(model.AliasMachineCert))
	if err != nil {
		t.Fatal(err)
	}
	old := pki.TrustString(bkp.Cert())
	cur, _ := n.MachineCert()
	c2, _ := d.Nodes[1].MachineCert()
	other := pki.TrustString(c2.Raw)
	var eps []model.Endpoint
	for i := 0; i < 12; i++ {
		eps = append(eps, model.Endpoint{URL: "https://x.lab.test/ep" + string(rune('a'+i)), Type: "t", Protocol: "vmomi", SslTrust: []string{old}})
	}
	eps = append(eps[:1], append([]model.Endpoint{{URL: "https://x.lab.test/second", Type: "t", Protocol: "vmomi", SslTrust: []string{other, old}}}, eps[1:]...)...)
	crafted := model.Registration{ServiceID: "crafted-service", Product: "com.example", Type: "x", OwnerID: "o@vsphere.local", Version: "1.0", SiteID: d.Site, Endpoints: eps}
	if err := d.SaveRegistration(crafted); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	count, err := UpdateLookupService(t.Context(), d, n, pki.Thumbprint(bkp.Cert()), pki.EncodeCert(cur.Raw), &out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Registration("crafted-service")
	if err != nil {
		t.Fatal(err)
	}
	now := pki.TrustString(cur.Raw)
	for i, ep := range got.Endpoints {
		want := old
		switch {
		case i == 1:
			want = other // old is only the second value
		case i < maxUpdateEndpoints:
			want = now
		}
		if ep.SslTrust[0] != want {
			t.Errorf("endpoint %d (%s): first trust is %.12s…, want %.12s…", i, ep.URL, ep.SslTrust[0], want)
		}
	}
	legacy := false
	regs, _ := d.Registrations()
	for _, r := range regs {
		if r.Legacy {
			legacy = true
			if r.Endpoints[0].SslTrust[0] != now {
				t.Errorf("legacy registration %s not updated", r.ServiceID)
			}
			if !strings.Contains(out.String(), "Update service "+r.ServiceID+"; spec: /tmp/svcspec_") {
				t.Errorf("console does not show the legacy update:\n%s", out.String())
			}
		}
	}
	if !legacy {
		t.Error("no legacy registration in the lab")
	}
	if want := "Updated " + strconv.Itoa(count) + " service(s)\n"; !strings.HasSuffix(out.String(), want) {
		t.Errorf("console does not end with %q:\n%s", want, out.String())
	}
	// A thumbprint pasted with colons, spaces and upper case matches too,
	// and a second run finds nothing left to update.
	again, err := UpdateLookupService(t.Context(), d, n, " "+pki.Thumbprint(bkp.Cert())+" ", pki.EncodeCert(cur.Raw), &bytes.Buffer{})
	if err != nil || again != 0 {
		t.Errorf("second run updated %d services (err %v)", again, err)
	}
}

// customSTS replaces the active STS signing credential (and its trusted
// chain) with one issued by an enterprise CA of its own, valid at labNow,
// as "Import and Replace Certificate" of the STS signing card does. The
// STS then no longer depends on the VMCA root, which is what lets option 8
// on root-expired restart every service: certificate-manager never touches
// the STS credential.
func customSTS(t *testing.T, d *model.Domain) {
	t.Helper()
	key, err := d.Keys.Next()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewRootCA(pki.Request{CommonName: "Enterprise Issuing CA", Organization: "Example Corp",
		NotBefore: labNow.AddDate(-1, 0, 0), NotAfter: labNow.AddDate(9, 0, 0), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if key, err = d.Keys.Next(); err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(pki.Request{CommonName: "ssoserverSign", Usage: pki.UsageSigning,
		NotBefore: labNow.AddDate(0, -1, 0), NotAfter: labNow.AddDate(2, 0, 0), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := d.ActiveSTS()
	if err != nil {
		t.Fatal(err)
	}
	certs := vmdir.Attr{Name: "userCertificate", Values: [][]byte{leaf.DER, ca.DER}}
	if err := d.Dir.Modify(cred.DN, []vmdir.Change{
		{Op: vmdir.ModReplace, Attr: certs},
		{Op: vmdir.ModReplace, Attr: vmdir.Attr{Name: "vmwSTSPrivateKey", Values: [][]byte{leaf.KeyPKCS8}}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.Dir.Modify(d.TrustedChainDN(cred.N), []vmdir.Change{{Op: vmdir.ModReplace, Attr: certs}}); err != nil {
		t.Fatal(err)
	}
}

// checkRootReset asserts what option 8 leaves behind where the VMCA root
// had expired: a new root, valid now, as root.cer (the expired one kept as
// root.cer.0), in every node's TRUSTED_ROOTS and under
// cn=Certificate-Authorities; node n's Machine SSL and solution-user
// certificates verify against it alone; vmcad and every automatic service
// of n run.
func checkRootReset(t *testing.T, d *model.Domain, n *model.Node, expired *pki.CA, cn string) {
	t.Helper()
	ca := d.VMCARoot()
	if bytes.Equal(ca.DER, expired.DER) {
		t.Fatal("root not replaced")
	}
	if !pki.ValidAt(ca.X509, labNow) || !ca.X509.IsCA || ca.X509.Subject.CommonName != cn {
		t.Errorf("new root %s (valid %v–%v, CA %v), want CN=%s valid now", pki.SubjectDN(ca.X509), ca.X509.NotBefore, ca.X509.NotAfter, ca.X509.IsCA, cn)
	}
	cur, err := n.ReadFile(model.PathRootCert)
	if err != nil || !bytes.Equal(cur, ca.PEM()) {
		t.Errorf("root.cer is not the new root (%v)", err)
	}
	prev, err := n.ReadFile(model.PathRootCert + ".0")
	if err != nil || !bytes.Equal(prev, expired.PEM()) {
		t.Errorf("root.cer.0 is not the expired root (%v)", err)
	}
	if _, err := d.Dir.Get(d.CADN(ca.X509)); err != nil {
		t.Errorf("new root not under cn=Certificate-Authorities: %v", err)
	}
	for _, x := range d.Nodes {
		if _, err := x.VECS.Get(model.StoreTrustedRoots, pki.SHA1Hex(ca.DER)); err != nil {
			t.Errorf("%s: TRUSTED_ROOTS lacks the new root: %v", x.PNID, err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.X509)
	entries := []struct{ store, alias string }{{model.StoreMachineSSL, model.AliasMachineCert}}
	for _, s := range solutionUserStores(d, n) {
		entries = append(entries, struct{ store, alias string }{s, s})
	}
	if len(entries) < 1+len(model.SolutionUsers) {
		t.Fatalf("only %d certificates to check: %v", len(entries), entries)
	}
	for _, e := range entries {
		c, err := n.StoreCert(e.store, e.alias)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: labNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s/%s does not chain to the new root: %v", e.store, e.alias, err)
		}
	}
	if !running(n, "vmcad") {
		t.Error("vmcad is not running")
	}
	for _, name := range n.Services.Names() {
		if auto, _ := n.Services.Automatic(name); auto && !running(n, name) {
			t.Errorf("service %s is not running after the operation", name)
		}
	}
}

// TestResetAllRootExpired runs option 8 where the VMCA root has expired
// and vmcad, which does not start on an expired root, is stopped: the new
// root is made without vmcad, then vmcad starts and signs the rest.
func TestResetAllRootExpired(t *testing.T) {
	d := newLab(t, "root-expired")
	customSTS(t, d)
	n := d.Nodes[0]
	expired := d.VMCARoot()
	if pki.ValidAt(expired.X509, labNow) || running(n, "vmcad") {
		t.Fatal("the root is valid or vmcad runs: the scenario proves nothing")
	}
	if err := n.Services.StartAll(); err == nil {
		t.Fatal("services start on the expired root: the scenario proves nothing")
	}
	var out bytes.Buffer
	if err := ResetAllCertificates(t.Context(), d, n, machineCfg(n), "CA-"+n.PNID, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	checkRootReset(t, d, n, expired, "CA-"+n.PNID)
	text := out.String()
	for _, want := range []string{"Status : 0% Completed [Replacing Root Cert...]\n", "[Publishing Root cert...]\n",
		"Status : 100% Completed [All tasks completed successfully]\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("console lacks %q:\n%s", want, text)
		}
	}
	log, _ := n.ReadFile(PathCertificateManagerLog)
	if !strings.Contains(string(log), "Started vmcad with the new root certificate") {
		t.Errorf("certificate-manager.log does not say vmcad was started:\n%s", log)
	}
}

// TestResetAllRootExpiredSTSChain runs option 8 on root-expired as built,
// where the STS signing credential's chain ends in the expired root.
// certificate-manager does not replace that credential, so STS does not
// start with the new certificates and the operation rolls back, root
// included: the lab is as before, and the error says why.
func TestResetAllRootExpiredSTSChain(t *testing.T) {
	d := newLab(t, "root-expired")
	n := d.Nodes[0]
	before := d.Snapshot()
	var out bytes.Buffer
	err := ResetAllCertificates(t.Context(), d, n, machineCfg(n), n.PNID, &out)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want ErrRolledBack\n%s", err, out.String())
	}
	var se *model.StartError
	if !errors.As(err, &se) || se.Service != "vmware-stsd" || !strings.Contains(se.Reason, "STS signing certificate chain is not valid") {
		t.Errorf("err = %v, want vmware-stsd's start failure on the STS chain", err)
	}
	if got, want := stripSnapshot(d.Snapshot()), stripSnapshot(before); got != want {
		t.Errorf("state after rollback differs from before:\n%s", lineDiff(want, got))
	}
	for _, want := range []string{"[Replacing Root Cert...]", "Error while starting services, please see log for more details\n",
		"Performing rollback of Root Cert...\n", "Rollback Status : 100% Completed [Rollback completed successfully]\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRootExpiredRefusesSigning: options 3 and 6 need VMCA to sign with
// the root as it is; where it has expired they fail before anything
// changes, pointing to option 8, and so does certool --gencert (vmcad does
// not run on an expired root).
func TestRootExpiredRefusesSigning(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(d *model.Domain, n *model.Node, out io.Writer) error
	}{
		{"option 3", func(d *model.Domain, n *model.Node, out io.Writer) error {
			return ReplaceMachineSSL(t.Context(), d, n, machineCfg(n), out)
		}},
		{"option 6", func(d *model.Domain, n *model.Node, out io.Writer) error {
			return ReplaceSolutionUsers(t.Context(), d, n, out)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newLab(t, "root-expired")
			customSTS(t, d) // STS is not what stops it
			n := d.Nodes[0]
			before := d.Snapshot()
			var out bytes.Buffer
			err := tc.run(d, n, &out)
			if !errors.Is(err, ErrRootExpired) || errors.Is(err, ErrRolledBack) {
				t.Fatalf("err = %v, want ErrRootExpired before any change", err)
			}
			for _, want := range []string{"expired on 2026-03-09 09:26:53 GMT", "option 8 (Reset all Certificates) on " + n.PNID} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if out.Len() != 0 {
				t.Errorf("console shows progress of an operation that did not start:\n%s", out.String())
			}
			if got, want := stripSnapshot(d.Snapshot()), stripSnapshot(before); got != want {
				t.Errorf("the lab changed:\n%s", lineDiff(want, got))
			}
			if log, _ := n.ReadFile(PathCertificateManagerLog); !strings.Contains(string(log), "ERROR certificate-manager "+err.Error()) {
				t.Errorf("certificate-manager.log lacks the error:\n%s", log)
			}
		})
	}
	t.Run("certool --gencert", func(t *testing.T) {
		d := newLab(t, "root-expired")
		n := d.Nodes[0]
		if err := n.WriteFile("/certificates/certool.cfg", []byte(certoolCfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := runLine(t, d, n, "certool --genkey --privkey=/certificates/sts.key --pubkey=/certificates/sts.pub"); r.status != 0 {
			t.Fatal(r)
		}
		r := runLine(t, d, n, "certool --gencert --cert=/certificates/sts.cer --privkey=/certificates/sts.key --config=/certificates/certool.cfg")
		if r.status == 0 || !strings.Contains(r.stdout, "Status : Failed\nError Code : 1225\n") {
			t.Errorf("gencert on the expired root: %+v", r)
		}
		if _, err := n.ReadFile("/certificates/sts.cer"); err == nil {
			t.Error("gencert wrote a certificate")
		}
		// vmcad says why it does not run.
		if r := runLine(t, d, n, "service-control --start vmcad"); r.status == 0 || !strings.Contains(r.stdout+r.stderr, "vmcad") {
			t.Errorf("vmcad started on the expired root: %+v", r)
		}
		if log, _ := n.ReadFile(model.LogVmcad); !strings.Contains(string(log), "VMCA root certificate (CN=CA, DC=vsphere, DC=local") || !strings.Contains(string(log), "expired on") {
			t.Errorf("vmcad.log does not say the root expired:\n%s", log)
		}
	})
}
