package model

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"runbook/lab/pki"
	"runbook/lab/vmdir"
)

func TestSnapshot(t *testing.T) {
	d := build(t, "healthy")
	base := d.Snapshot()
	if !bytes.Equal(base, d.Snapshot()) {
		t.Fatal("two snapshots without a change differ")
	}
	for _, want := range []string{"== directory", "dn: cn=TenantCredential-1", "store BACKUP_STORE",
		"entry \"__MACHINE_CERT\" type \"Private Key\"", "running: lwsmd", "/var/lib/vmware/vmca/privatekey.pem"} {
		if !bytes.Contains(base, []byte(want)) {
			t.Errorf("snapshot lacks %q", want)
		}
	}
	if bytes.Contains(base, []byte(d.AdminPassword)) {
		t.Error("snapshot contains the admin password")
	}
	n := d.Nodes[1]
	mutations := []struct {
		name string
		do   func() error
		undo func() error
	}{
		{"vecs backup", func() error { return n.VECS.Backup(StoreVpxd, StoreVpxd) },
			func() error { return n.VECS.Delete(StoreBackup, "bkp_vpxd") }},
		{"file in /tmp", func() error { return n.WriteFile("/tmp/x", []byte("x"), 0o644) },
			func() error { return os.Remove(n.Path("/tmp/x")) }},
		{"file mode", func() error { return os.Chmod(n.Path(PathRootKey), 0o644) },
			func() error { return os.Chmod(n.Path(PathRootKey), 0o600) }},
		{"symlink", func() error { return os.Symlink("/etc/hostname", n.Path("/tmp/link")) },
			func() error { return os.Remove(n.Path("/tmp/link")) }},
		{"service", func() error { return n.Services.Stop("vsphere-ui") },
			func() error { return n.Services.Start("vsphere-ui") }},
		{"online", func() error { return d.SetOnline(n, false) }, nil},
		{"directory", func() error {
			return d.Dir.Modify(d.AdminDN(), []vmdir.Change{{Op: vmdir.ModReplace, Attr: vmdir.StrAttr("description", "x")}})
		}, nil},
	}
	for _, m := range mutations {
		before := d.Snapshot()
		if err := m.do(); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if bytes.Equal(before, d.Snapshot()) {
			t.Errorf("%s: snapshot unchanged", m.name)
		}
		if m.undo != nil {
			if err := m.undo(); err != nil {
				t.Fatalf("undo %s: %v", m.name, err)
			}
			if !bytes.Equal(before, d.Snapshot()) {
				t.Errorf("%s: snapshot differs after undo", m.name)
			}
		}
	}
}

func TestVECS(t *testing.T) {
	v := NewVECS(StoreMachineSSL, StoreTrustedRoots)
	cert := Entry{Alias: AliasMachineCert, Type: PrivateKey, Certs: [][]byte{{1}}, Key: []byte{2}}
	if err := v.Create(StoreMachineSSL, cert); err != nil {
		t.Fatal(err)
	}
	if err := v.Create(StoreMachineSSL, cert); !errors.Is(err, ErrEntryExists) {
		t.Errorf("duplicate alias: %v", err)
	}
	if err := v.Create("nope", cert); !errors.Is(err, ErrNoStore) {
		t.Errorf("missing store: %v", err)
	}
	bad := []Entry{
		{Alias: "a", Type: PrivateKey, Certs: [][]byte{{1}}},
		{Alias: "a", Type: TrustedCert},
		{Alias: "a", Type: CRL},
		{Alias: "a", Type: SecretKey},
		{Alias: "a", Type: "Bogus", Certs: [][]byte{{1}}},
		{Alias: "", Type: TrustedCert, Certs: [][]byte{{1}}},
	}
	for _, e := range bad {
		if err := v.Create(StoreTrustedRoots, e); err == nil {
			t.Errorf("Create accepted %+v", e)
		}
	}
	got, err := v.Get(StoreMachineSSL, AliasMachineCert)
	if err != nil {
		t.Fatal(err)
	}
	got.Certs[0][0] = 9 // a copy: must not change the store
	if again, _ := v.Get(StoreMachineSSL, AliasMachineCert); again.Certs[0][0] != 1 {
		t.Error("Get returned shared memory")
	}

	// Backup keeps one generation and creates BACKUP_STORE.
	if err := v.Backup(StoreMachineSSL, AliasMachineCert); err != nil {
		t.Fatal(err)
	}
	if err := v.Replace(StoreMachineSSL, Entry{Alias: AliasMachineCert, Type: PrivateKey, Certs: [][]byte{{3}}, Key: []byte{4}}); err != nil {
		t.Fatal(err)
	}
	if err := v.Backup(StoreMachineSSL, AliasMachineCert); err != nil {
		t.Fatal(err)
	}
	bk, err := v.Entries(StoreBackup)
	if err != nil {
		t.Fatal(err)
	}
	if len(bk) != 1 || bk[0].Alias != "bkp___MACHINE_CERT" || bk[0].Certs[0][0] != 3 {
		t.Errorf("BACKUP_STORE = %+v, want one bkp___MACHINE_CERT holding the second cert", bk)
	}
	if err := v.Backup(StoreMachineSSL, "missing"); !errors.Is(err, ErrNoEntry) {
		t.Errorf("backup of a missing entry: %v", err)
	}
	if want := []string{StoreMachineSSL, StoreTrustedRoots, StoreBackup}; !slices.Equal(v.StoreNames(), want) {
		t.Errorf("StoreNames = %v, want %v", v.StoreNames(), want)
	}
	if err := v.CreateStore(StoreBackup); !errors.Is(err, ErrStoreExists) {
		t.Errorf("CreateStore existing: %v", err)
	}
	if err := v.DeleteStore(StoreBackup); err != nil {
		t.Fatal(err)
	}
	if err := v.DeleteStore(StoreBackup); !errors.Is(err, ErrNoStore) {
		t.Errorf("DeleteStore missing: %v", err)
	}
	if err := v.Delete(StoreMachineSSL, "missing"); !errors.Is(err, ErrNoEntry) {
		t.Errorf("Delete missing: %v", err)
	}
}

func TestVECSOfScenario(t *testing.T) {
	d := build(t, "healthy")
	n := d.Nodes[0]
	want := []string{"MACHINE_SSL_CERT", "TRUSTED_ROOTS", "TRUSTED_ROOT_CRLS", "machine", "vsphere-webclient",
		"vpxd", "vpxd-extension", "data-encipherment", "SMS", "BACKUP_STORE"}
	if got := n.VECS.StoreNames(); !slices.Equal(got, want) {
		t.Errorf("StoreNames = %v", got)
	}
	roots, _ := n.VECS.Entries(StoreTrustedRoots)
	if len(roots) != 1 || roots[0].Alias != pki.SHA1Hex(d.VMCARoot().DER) || roots[0].Type != TrustedCert {
		t.Errorf("TRUSTED_ROOTS = %+v", roots)
	}
	crls, _ := n.VECS.Entries(StoreTrustedRootCRLs)
	if len(crls) != 1 || crls[0].Type != CRL || len(crls[0].Alias) != 40 {
		t.Errorf("TRUSTED_ROOT_CRLS = %+v", crls)
	}
	for _, su := range SolutionUsers {
		e, err := d.Dir.Get(d.ServicePrincipalDN(su, n))
		if err != nil {
			t.Fatal(err)
		}
		c, _ := n.StoreCert(su, su)
		if !bytes.Equal(e.Values("userCertificate")[0], c.Raw) {
			t.Errorf("service principal %s does not carry the %s store's certificate", e.DN, su)
		}
		if e.First("vmwSTSSubjectDN") != pki.SubjectDN(c) {
			t.Errorf("vmwSTSSubjectDN = %q", e.First("vmwSTSSubjectDN"))
		}
	}
	ca, err := d.Dir.Get(d.CADN(d.VMCARoot().X509))
	if err != nil || !bytes.Equal(ca.Values("cACertificate")[0], d.VMCARoot().DER) {
		t.Errorf("CA entry: %v", err)
	}
	if got := pki.SubjectDN(d.VMCARoot().X509); got != "CN=CA, DC=vsphere, DC=local, C=US, ST=California, O=vcsa1.lab.test, OU=VMware Engineering" {
		t.Errorf("root subject %q", got)
	}
	if b, _ := n.ReadFile(PathRootCert); !bytes.Equal(b, d.VMCARoot().PEM()) {
		t.Error("root.cer differs from the VMCA root")
	}
}

func TestFaults(t *testing.T) {
	var f Faults
	if err := f.Before(ProtoLDAP, "search"); err != nil {
		t.Fatal(err)
	}
	f.DropNext(ProtoLDAP)
	if err := f.Before(ProtoHTTPS, "GET"); err != nil {
		t.Errorf("a drop armed for ldap hit https: %v", err)
	}
	if err := f.Before(ProtoLDAP, "search"); !errors.Is(err, ErrDropped) {
		t.Errorf("Before = %v, want ErrDropped", err)
	}
	if err := f.Before(ProtoLDAP, "search"); err != nil {
		t.Errorf("the drop fired twice: %v", err)
	}
	f.FailNextWrite(ProtoSSH)
	if err := f.Before(ProtoSSH, "read"); err != nil {
		t.Errorf("a read consumed the write fault: %v", err)
	}
	if err := f.Before(ProtoSSH, "Rename"); !errors.Is(err, ErrInjectedWrite) {
		t.Errorf("Before = %v, want ErrInjectedWrite", err)
	}
	if err := f.Before(ProtoSSH, "write"); err != nil {
		t.Errorf("the write fault fired twice: %v", err)
	}
	f.Delay(ProtoHTTPS, 20*time.Millisecond)
	start := time.Now()
	if err := f.Before(ProtoHTTPS, "GET"); err != nil {
		t.Fatal(err)
	}
	if since := time.Since(start); since < 20*time.Millisecond {
		t.Errorf("Before returned after %v, before the delay", since)
	}
	f.Reset()
	var nilFaults *Faults
	if err := nilFaults.Before(ProtoLDAP, "add"); err != nil {
		t.Errorf("nil Faults: %v", err)
	}
}

func TestNodePath(t *testing.T) {
	n := &Node{Root: filepath.Join(t.TempDir(), "vcsa1")}
	if err := os.Mkdir(n.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/passwd", "../../etc/passwd", "/../../../etc/passwd", "etc/passwd", "/etc/../../etc/passwd"} {
		if got := n.Path(p); got != filepath.Join(n.Root, "etc/passwd") {
			t.Errorf("Path(%q) = %q", p, got)
		}
	}
	if got := n.Path("/"); got != n.Root {
		t.Errorf("Path(/) = %q", got)
	}
	if err := n.WriteFile("/a/b/c.txt", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.AppendFile("/a/b/c.txt", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if b, err := n.ReadFile("../a/b/c.txt"); err != nil || string(b) != "xy" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	outside := filepath.Join(filepath.Dir(n.Root), "secret")
	if err := os.WriteFile(outside, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, n.Path("/link")); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ReadFile("/link"); err == nil {
		t.Error("ReadFile followed a link out of the node tree")
	}
}

func TestSaveRegistration(t *testing.T) {
	d := build(t, "healthy")
	regs, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	var legacy, vc Registration
	for _, r := range regs {
		switch {
		case r.Legacy:
			legacy = r
		case r.Type == "vcenterserver" && r.NodeID == d.Nodes[0].MachineID:
			vc = r
		}
	}
	if legacy.ServiceID == "" || !strings.HasPrefix(legacy.ServiceID, d.Site+":") {
		t.Fatalf("no legacy registration named <site>:<uuid> (%q)", legacy.ServiceID)
	}
	// Saving what is stored writes nothing.
	usn := d.Dir.HighestUSN()
	for _, r := range regs {
		if err := d.SaveRegistration(r); err != nil {
			t.Fatal(err)
		}
	}
	if d.Dir.HighestUSN() != usn {
		t.Errorf("saving unchanged registrations wrote %d changes", d.Dir.HighestUSN()-usn)
	}
	// A new trust changes only that endpoint.
	newTrust := pki.TrustString(d.VMCARoot().DER)
	vc.Endpoints[0].SslTrust = []string{newTrust}
	legacy.Endpoints[0].SslTrust = []string{newTrust}
	for _, r := range []Registration{vc, legacy} {
		if err := d.SaveRegistration(r); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.Dir.HighestUSN() - usn; got != 2 {
		t.Errorf("updating two trusts wrote %d changes, want 2", got)
	}
	ep, err := d.Dir.Get("cn=Endpoint0," + legacy.DN)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ep.Values("vmwLKUPSslTrustAnchor")[0], d.VMCARoot().DER) {
		t.Error("legacy trust anchor is not the DER certificate")
	}
	got, err := d.Registration(vc.ServiceID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Endpoints[0].SslTrust[0] != newTrust || got.Attributes["com.vmware.cis.cm.HostId"] != d.Nodes[0].MachineID ||
		got.Endpoints[0].Attributes["cis.common.ep.localurl"] == "" {
		t.Errorf("re-read registration = %+v", got)
	}
	// Fewer endpoints and attributes delete the surplus entries.
	vc.Endpoints = nil
	vc.Attributes = nil
	if err := d.SaveRegistration(vc); err != nil {
		t.Fatal(err)
	}
	es, err := d.Dir.Search(vc.DN, vmdir.ScopeSub, "", []string{"1.1"})
	if err != nil || len(es) != 1 {
		t.Errorf("after removing endpoints: %d entries, %v", len(es), err)
	}
	if err := d.DeleteRegistration(vc.ServiceID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Registration(vc.ServiceID); !errors.Is(err, ErrNoRegistration) {
		t.Errorf("deleted registration: %v", err)
	}
	if err := d.DeleteRegistration(vc.ServiceID); !errors.Is(err, ErrNoRegistration) {
		t.Errorf("second delete: %v", err)
	}
	if err := d.SaveRegistration(Registration{ServiceID: "a,b", Product: "p", Type: "t", OwnerID: "o", Version: "1"}); err == nil {
		t.Error("accepted an id with a comma")
	}
}

func TestAgreements(t *testing.T) {
	d := build(t, "replication-lag")
	as, err := d.Agreements()
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 {
		t.Fatalf("%d agreements, want 2", len(as))
	}
	h := d.Dir.HighestUSN()
	for _, a := range as {
		want := h
		if a.Server == d.Nodes[1].PNID {
			want = h - LagChanges
		}
		if a.LastLocalUSN != want {
			t.Errorf("%s -> %s: LastLocalUSN %d, want %d", a.Server, a.Partner, a.LastLocalUSN, want)
		}
	}
	// A write elsewhere leaves the paused node further behind and the
	// healthy one up to date.
	if err := d.Dir.Modify(d.AdminDN(), []vmdir.Change{{Op: vmdir.ModReplace, Attr: vmdir.StrAttr("description", "x")}}); err != nil {
		t.Fatal(err)
	}
	as, _ = d.Agreements()
	for _, a := range as {
		behind := d.Dir.HighestUSN() - a.LastLocalUSN
		if a.Server == d.Nodes[1].PNID && behind != LagChanges+1 {
			t.Errorf("paused node is %d behind, want %d", behind, LagChanges+1)
		}
		if a.Server == d.Nodes[0].PNID && behind != 0 {
			t.Errorf("healthy node is %d behind", behind)
		}
	}
	// Pausing node 1 now leaves it 5 behind.
	if err := d.SetReplicationPaused(d.Nodes[0], true, 5); err != nil {
		t.Fatal(err)
	}
	as, _ = d.Agreements()
	for _, a := range as {
		if a.Server == d.Nodes[0].PNID && d.Dir.HighestUSN()-a.LastLocalUSN != 5 {
			t.Errorf("node 1 paused with lag 5 is %d behind", d.Dir.HighestUSN()-a.LastLocalUSN)
		}
	}
	if err := d.SetReplicationPaused(d.Nodes[0], false, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.SetReplicationPaused(d.Nodes[1], false, 0); err != nil {
		t.Fatal(err)
	}
	as, _ = d.Agreements()
	for _, a := range as {
		if a.LastLocalUSN != d.Dir.HighestUSN() {
			t.Errorf("after resuming, %s is behind", a.Server)
		}
	}
}

func TestTenantCredentials(t *testing.T) {
	d := build(t, "healthy")
	creds, err := d.TenantCredentials()
	if err != nil || len(creds) != 1 || creds[0].N != 1 {
		t.Fatalf("TenantCredentials = %+v, %v", creds, err)
	}
	if _, err := pki.ParseCert(creds[0].Leaf().Raw, creds[0].Key); err != nil {
		t.Errorf("credential key: %v", err)
	}
	chains, err := d.TrustedCertChains()
	if err != nil || len(chains) != 1 || chains[0].N != 1 || !chains[0].Certs[0].Equal(creds[0].Leaf()) {
		t.Errorf("TrustedCertChains = %+v, %v", chains, err)
	}
	for _, dn := range []string{d.TenantCredentialDN(1), d.TrustedChainDN(1)} {
		if err := d.Dir.Delete(dn); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.ActiveSTS(); !errors.Is(err, ErrNoSTS) {
		t.Errorf("ActiveSTS without credentials: %v", err)
	}
	svc := d.Nodes[0].Services
	if err := svc.Stop("vmware-vpxd-svcs"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start("vmware-vpxd-svcs"); err == nil || !strings.Contains(err.Error(), "no tenant credential") {
		t.Errorf("vpxd-svcs without an STS credential: %v", err)
	}
}

// TestConcurrentUse exercises the locks under -race: servers read VECS,
// the directory and services while a procedure writes them.
func TestConcurrentUse(t *testing.T) {
	d := build(t, "healthy")
	n := d.Nodes[0]
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			n.MachineCert()
			n.Services.Status()
			_, _ = d.Registrations()
			_, _ = d.Agreements()
			d.Snapshot()
		}
	}()
	for range 20 {
		if err := n.VECS.Backup(StoreMachineSSL, AliasMachineCert); err != nil {
			t.Error(err)
		}
		n.Services.StopAll()
		if err := n.Services.StartAll(); err != nil {
			t.Error(err)
		}
		ca, err := pki.LoadCA(d.VMCARoot().PEM(), d.VMCARoot().KeyPEM())
		if err != nil {
			t.Error(err)
		} else {
			d.SetVMCARoot(ca)
		}
	}
	<-done
}
