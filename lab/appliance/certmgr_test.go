package appliance

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"runbook/lab/model"
	"runbook/lab/pki"
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
	pool.AddCert(root(d).X509)
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
	oldRoot := root(d)
	oldSSL, _ := n.MachineCert()
	before, _ := d.Registrations()
	var out bytes.Buffer
	if err := ResetAllCertificates(t.Context(), d, n, machineCfg(n), "VMCA-"+n.PNID, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	newRoot := root(d)
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
