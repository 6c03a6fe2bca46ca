package model

import (
	"bytes"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"runbook/internal/testbin"

	"runbook/lab/pki"
	"runbook/lab/vmdir"
)

var update = flag.Bool("update", false, "rewrite golden files")

// clock is the fixed lab time of the tests, close to the real time so that
// openssl (which judges at the real time) agrees.
var clock = time.Now().UTC().Truncate(time.Second)

func build(t *testing.T, scenario string) *Domain {
	t.Helper()
	d, err := Build(scenario, Options{Dir: t.TempDir(), Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// hostOf returns the host of an https URL.
func hostOf(url string) string {
	h := strings.TrimPrefix(url, "https://")
	h, _, _ = strings.Cut(h, "/")
	h, _, _ = strings.Cut(h, ":")
	return h
}

// trustsOf returns every sslTrust of the registrations whose endpoints are
// on host.
func trustsOf(t *testing.T, d *Domain, host string) []string {
	t.Helper()
	regs, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range regs {
		for _, ep := range r.Endpoints {
			if hostOf(ep.URL) == host {
				out = append(out, ep.SslTrust...)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no registration on %s", host)
	}
	return out
}

func machineDER(t *testing.T, n *Node) []byte {
	t.Helper()
	e, err := n.VECS.Get(StoreMachineSSL, AliasMachineCert)
	if err != nil {
		t.Fatal(err)
	}
	return e.Cert()
}

func stopped(t *testing.T, n *Node, names ...string) {
	t.Helper()
	for _, name := range names {
		running, err := n.Services.Running(name)
		if err != nil {
			t.Fatal(err)
		}
		if running {
			t.Errorf("%s: %s runs, want it stopped", n.PNID, name)
		}
	}
}

func TestScenarios(t *testing.T) {
	tests := []struct {
		scenario string
		// startErr is a substring of StartAll's error on node 1; "" means success.
		startErr string
		check    func(t *testing.T, d *Domain)
	}{
		{"healthy", "", func(t *testing.T, d *Domain) {
			for _, n := range d.Nodes {
				for _, tr := range trustsOf(t, d, n.PNID) {
					if tr != pki.TrustString(machineDER(t, n)) {
						t.Errorf("%s: a registration trusts another certificate than the Machine SSL", n.PNID)
					}
				}
				if errs := n.Services.Errors(); len(errs) > 0 {
					t.Errorf("%s: start errors %v", n.PNID, errs)
				}
			}
			sts, err := d.ActiveSTS()
			if err != nil || !pki.ValidAt(sts.Leaf(), clock) {
				t.Errorf("ActiveSTS = %v, %v; want a valid leaf", sts.Leaf(), err)
			}
		}},
		{"sts-expired", "Signing certificate is not valid at", func(t *testing.T, d *Domain) {
			sts, err := d.ActiveSTS()
			if err != nil {
				t.Fatal(err)
			}
			if !sts.Leaf().NotAfter.Before(clock) {
				t.Errorf("active STS leaf NotAfter %v is not before %v", sts.Leaf().NotAfter, clock)
			}
			for _, n := range d.Nodes {
				stopped(t, n, "vmware-stsd", "vmware-vpxd-svcs", "vmware-vpxd", "vsphere-ui")
				log, err := n.ReadFile(LogVpxdSvcs)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(log, []byte("InvalidTimeRange")) || !bytes.Contains(log, []byte("cert validity: TimePeriod [startTime=")) {
					t.Errorf("%s: %s = %q, want the InvalidTimeRange line", n.PNID, LogVpxdSvcs, log)
				}
			}
		}},
		{"stale-ssltrust", "", func(t *testing.T, d *Domain) {
			n1 := d.Nodes[0]
			cur := pki.TrustString(machineDER(t, n1))
			bkp, err := n1.VECS.Get(StoreBackup, "bkp___MACHINE_CERT")
			if err != nil {
				t.Fatal(err)
			}
			old := pki.TrustString(bkp.Cert())
			if old == cur {
				t.Fatal("BACKUP_STORE holds the current Machine SSL certificate")
			}
			for _, tr := range trustsOf(t, d, n1.PNID) {
				if tr == cur {
					t.Error("a registration of node 1 already trusts the new certificate")
				}
				if tr != old {
					t.Error("a registration of node 1 trusts neither the old nor the new certificate")
				}
			}
			n2 := d.Nodes[1]
			for _, tr := range trustsOf(t, d, n2.PNID) {
				if tr != pki.TrustString(machineDER(t, n2)) {
					t.Error("node 2's registrations are stale too")
				}
			}
		}},
		{"machine-ssl-expired", "MACHINE_SSL_CERT/__MACHINE_CERT", func(t *testing.T, d *Domain) {
			for _, n := range d.Nodes {
				c, _ := n.MachineCert()
				if c == nil || !c.NotAfter.Before(clock) {
					t.Errorf("%s: Machine SSL not expired", n.PNID)
				}
				stopped(t, n, "vmware-rhttpproxy", "vmware-envoy")
			}
		}},
		{"solution-users-expired", "expired on", func(t *testing.T, d *Domain) {
			for _, n := range d.Nodes {
				for _, su := range SolutionUsers {
					c, err := n.StoreCert(su, su)
					if err != nil || !c.NotAfter.Before(clock) {
						t.Errorf("%s: %s not expired (%v)", n.PNID, su, err)
					}
				}
				stopped(t, n, "vmware-vpxd", "vsphere-ui", "vmware-cis-license")
			}
		}},
		{"all-expired", "Signing certificate is not valid at", func(t *testing.T, d *Domain) {
			for _, n := range d.Nodes {
				stopped(t, n, "vmware-stsd", "vmware-rhttpproxy", "vmware-vpxd", "vsphere-ui")
			}
		}},
		{"root-expired", "expired on", func(t *testing.T, d *Domain) {
			if !d.VMCARoot().X509.NotAfter.Before(clock) {
				t.Error("VMCA root not expired")
			}
			for _, n := range d.Nodes {
				stopped(t, n, "vmcad", "vmware-rhttpproxy", "vmware-stsd")
				c, _ := n.MachineCert()
				if !pki.ValidAt(c, clock) {
					t.Errorf("%s: Machine SSL itself expired; only the root should be", n.PNID)
				}
			}
		}},
		{"replication-lag", "", func(t *testing.T, d *Domain) {
			n2 := d.Nodes[1]
			ra, err := d.Dir.Get(d.AgreementDN(n2, d.Nodes[0].PNID))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprint(d.Dir.HighestUSN() - LagChanges)
			if got := ra.First("lastLocalUsnProcessed"); got != want {
				t.Errorf("node 2's lastLocalUsnProcessed = %s, want %s", got, want)
			}
			if !n2.ReplicationPaused() {
				t.Error("node 2 not paused")
			}
		}},
		{"partner-down", "", func(t *testing.T, d *Domain) {
			if d.Nodes[1].Online() || !d.Nodes[0].Online() {
				t.Errorf("online = %v, %v; want true, false", d.Nodes[0].Online(), d.Nodes[1].Online())
			}
		}},
	}
	if len(tests) != len(Scenarios()) {
		t.Fatalf("%d scenario tests for %d scenarios", len(tests), len(Scenarios()))
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			d := build(t, tt.scenario)
			tt.check(t, d)
			err := d.Nodes[0].Services.StartAll()
			if tt.startErr == "" {
				if err != nil {
					t.Fatalf("StartAll: %v", err)
				}
				_, stoppedList := d.Nodes[0].Services.Status()
				for _, s := range stoppedList {
					if auto, _ := d.Nodes[0].Services.Automatic(s); auto {
						t.Errorf("automatic service %s stopped after StartAll", s)
					}
				}
				return
			}
			var se *StartError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.startErr) {
				t.Fatalf("StartAll = %v, want a StartError containing %q", err, tt.startErr)
			}
			if !strings.HasPrefix(err.Error(), "start "+se.Service+": ") {
				t.Errorf("StartAll error %q does not name the service", err)
			}
		})
	}
}

func TestCertificatesVerify(t *testing.T) {
	d := build(t, "healthy")
	roots := x509.NewCertPool()
	roots.AddCert(d.VMCARoot().X509)
	for _, n := range d.Nodes {
		for _, store := range append([]string{StoreMachineSSL, StoreDataEncipherment}, SolutionUsers...) {
			entries, err := n.VECS.Entries(store)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				c, err := pki.ParseCert(e.Cert(), e.Key)
				if err != nil {
					t.Fatalf("%s %s/%s: %v", n.PNID, store, e.Alias, err)
				}
				if _, err := c.X509.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: clock,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					t.Errorf("%s %s/%s: %v", n.PNID, store, e.Alias, err)
				}
			}
		}
		c, _ := n.MachineCert()
		if err := c.VerifyHostname(n.PNID); err != nil {
			t.Error(err)
		}
	}
	sts, _ := d.ActiveSTS()
	if _, err := sts.Leaf().Verify(x509.VerifyOptions{Roots: roots, CurrentTime: clock,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("STS leaf: %v", err)
	}
	if !bytes.Equal(sts.Certs[1].Raw, d.VMCARoot().DER) {
		t.Error("TenantCredential chain does not end with the VMCA root")
	}
}

func TestOpenSSLVerify(t *testing.T) {
	openssl := testbin.Need(t, "openssl", "openssl")
	for _, tt := range []struct {
		scenario, store, alias, want string
	}{
		{"healthy", StoreMachineSSL, AliasMachineCert, ": OK"},
		{"healthy", StoreVpxd, StoreVpxd, ": OK"},
		{"machine-ssl-expired", StoreMachineSSL, AliasMachineCert, "certificate has expired"},
		{"solution-users-expired", StoreVpxdExtension, StoreVpxdExtension, "certificate has expired"},
		{"root-expired", StoreMachineSSL, AliasMachineCert, "certificate has expired"},
	} {
		t.Run(tt.scenario+"/"+tt.store, func(t *testing.T) {
			// Real time: openssl judges validity at the real time.
			d, err := Build(tt.scenario, Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			n := d.Nodes[0]
			e, err := n.VECS.Get(tt.store, tt.alias)
			if err != nil {
				t.Fatal(err)
			}
			leaf := filepath.Join(t.TempDir(), "leaf.pem")
			if err := os.WriteFile(leaf, pki.EncodeCert(e.Cert()), 0o600); err != nil {
				t.Fatal(err)
			}
			out, _ := exec.Command(openssl, "verify", "-CAfile", n.Path(PathRootCert), leaf).CombinedOutput()
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("openssl verify: %s, want %q", out, tt.want)
			}
		})
	}
}

// TestRepairTakesEffect checks that services judge certificates at Start
// time: repairing the model makes the next StartAll succeed.
func TestRepairTakesEffect(t *testing.T) {
	t.Run("sts", func(t *testing.T) {
		d := build(t, "sts-expired")
		key, err := d.Keys.Next()
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := d.VMCARoot().Issue(pki.Request{CommonName: "STS", NotBefore: clock.Add(-time.Hour),
			NotAfter: clock.AddDate(10, 0, 0), Usage: pki.UsageSigning, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		// What fixsts does: a new credential with a higher N becomes active.
		err = d.Dir.Add(vmdir.NewEntry(d.TenantCredentialDN(2),
			vmdir.StrAttr("objectClass", "top", "vmwSTSTenantCredential"),
			vmdir.Attr{Name: "vmwSTSPrivateKey", Values: [][]byte{leaf.KeyPKCS8}},
			vmdir.Attr{Name: "userCertificate", Values: [][]byte{leaf.DER, d.VMCARoot().DER}}))
		if err != nil {
			t.Fatal(err)
		}
		if sts, _ := d.ActiveSTS(); sts.N != 2 {
			t.Errorf("ActiveSTS N = %d, want 2", sts.N)
		}
		for _, n := range d.Nodes {
			if err := n.Services.StartAll(); err != nil {
				t.Errorf("%s: StartAll after the repair: %v", n.PNID, err)
			}
			if errs := n.Services.Errors(); len(errs) != 0 {
				t.Errorf("%s: Errors = %v", n.PNID, errs)
			}
		}
	})
	t.Run("machine ssl", func(t *testing.T) {
		d := build(t, "machine-ssl-expired")
		n := d.Nodes[0]
		if err := n.Services.Start("vmware-rhttpproxy"); err == nil {
			t.Fatal("rhttpproxy started with an expired Machine SSL")
		}
		key, err := d.Keys.Next()
		if err != nil {
			t.Fatal(err)
		}
		req := MachineSSLRequest(n)
		req.Key, req.NotBefore, req.NotAfter = key, clock, clock.AddDate(2, 0, 0)
		c, err := d.VMCARoot().Issue(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.VECS.Replace(StoreMachineSSL, Entry{Alias: AliasMachineCert, Type: PrivateKey,
			Certs: [][]byte{c.DER}, Key: c.KeyPKCS8}); err != nil {
			t.Fatal(err)
		}
		if err := n.Services.Start("vmware-rhttpproxy"); err != nil {
			t.Errorf("Start after the repair: %v", err)
		}
		if got, tc := n.MachineCert(); !got.Equal(c.X509) || tc.PrivateKey == nil {
			t.Error("MachineCert does not return the new certificate")
		}
	})
	t.Run("clock", func(t *testing.T) {
		d := build(t, "healthy")
		d.Now = func() time.Time { return clock.AddDate(3, 0, 0) }
		n := d.Nodes[0]
		n.Services.StopAll()
		if err := n.Services.StartAll(); err == nil {
			t.Error("StartAll succeeded three years later, with every certificate expired")
		}
	})
}

func TestBuildOptions(t *testing.T) {
	if _, err := Build("no-such", Options{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "healthy") {
		t.Errorf("unknown scenario: %v", err)
	}
	if _, err := Build("replication-lag", Options{Dir: t.TempDir(), Nodes: 1}); err == nil {
		t.Error("replication-lag built with one node")
	}
	if _, err := Build("healthy", Options{Dir: t.TempDir(), Types: []NodeType{Management, Management}}); err == nil {
		t.Error("built a domain without a directory node")
	}
	d, err := Build("healthy", Options{Dir: t.TempDir(), Types: []NodeType{Infrastructure, Management}})
	if err != nil {
		t.Fatal(err)
	}
	psc, vc := d.Nodes[0], d.Nodes[1]
	if !strings.Contains(vc.AccountDN(), "ou=Computers") || !strings.Contains(psc.AccountDN(), "ou=Domain Controllers") {
		t.Errorf("account DNs %s, %s", psc.AccountDN(), vc.AccountDN())
	}
	if _, err := d.Dir.Get(vc.AccountDN()); err != nil {
		t.Error(err)
	}
	names := vc.Services.Names()
	if slices.Contains(names, "vmdird") || slices.Contains(names, "vmware-stsd") || !slices.Contains(names, "vmware-vpxd") {
		t.Errorf("management node services: %v", names)
	}
	if slices.Contains(psc.Services.Names(), "vmware-vpxd") {
		t.Error("infrastructure node runs vpxd")
	}
	if got := d.DCName(vc); got != psc.PNID {
		t.Errorf("DCName(vc) = %s, want %s", got, psc.PNID)
	}
	if b, err := vc.ReadFile("/etc/vmware/deployment.node.type"); err != nil || string(b) != "management\n" {
		t.Errorf("deployment.node.type = %q, %v", b, err)
	}
	if _, err := vc.ReadFile(PathRootCert); err == nil {
		t.Error("management node has a VMCA root")
	}
	for _, n := range d.Nodes {
		if err := n.Services.StartAll(); err != nil {
			t.Errorf("%s: %v", n.PNID, err)
		}
	}
	// Nothing is left behind when Build made the directory itself.
	d, err = Build("healthy", Options{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(d.Nodes[0].Root)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("Close left %s: %v", root, err)
	}
}

// TestDeterministic checks that ids are stable across builds.
func TestDeterministic(t *testing.T) {
	a, b := build(t, "healthy"), build(t, "healthy")
	for i := range a.Nodes {
		if a.Nodes[i].MachineID != b.Nodes[i].MachineID {
			t.Error("machine ids differ between builds")
		}
	}
	ra, _ := a.Registrations()
	rb, _ := b.Registrations()
	if len(ra) != len(rb) {
		t.Fatalf("%d vs %d registrations", len(ra), len(rb))
	}
	for i := range ra {
		if ra[i].ServiceID != rb[i].ServiceID {
			t.Errorf("service id %s vs %s", ra[i].ServiceID, rb[i].ServiceID)
		}
	}
	if a.AdminPassword == b.AdminPassword {
		t.Error("two builds share the admin password")
	}
	if err := a.Dir.Bind(a.AdminDN(), a.AdminPassword); err != nil {
		t.Errorf("admin bind: %v", err)
	}
	if err := a.Dir.Bind(a.AdminUPN(), a.AdminPassword); err != nil {
		t.Errorf("admin UPN bind: %v", err)
	}
	n := a.Nodes[0]
	if err := a.Dir.Bind(n.AccountDN(), n.MachineAccountPassword); err != nil {
		t.Errorf("machine account bind: %v", err)
	}
}

// TestLayout compares the directory DNs, the registrations and a node's
// file names with a golden file (certificates and keys vary, so values are
// left out).
func TestLayout(t *testing.T) {
	d := build(t, "healthy")
	var b strings.Builder
	es, err := d.Dir.Search(d.DN, vmdir.ScopeSub, "", []string{"1.1"})
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("# directory\n")
	for _, e := range es {
		// The CA's RDN is its key id, which varies with the key.
		b.WriteString(strings.Replace(e.DN, pki.SKIDHex(d.VMCARoot().X509), "<skid>", 1) + "\n")
	}
	b.WriteString("\n# registrations\n")
	regs, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		fmt.Fprintf(&b, "%s legacy=%t product=%s type=%s owner=%s node=%s version=%s attrs=%v\n",
			r.ServiceID, r.Legacy, r.Product, r.Type, r.OwnerID, r.NodeID, r.Version, r.Attributes)
		for _, ep := range r.Endpoints {
			fmt.Fprintf(&b, "  %s %s %s trusts=%d attrs=%v\n", ep.Type, ep.Protocol, ep.URL, len(ep.SslTrust), ep.Attributes)
		}
	}
	b.WriteString("\n# vecs of node 1\n")
	for _, s := range d.Nodes[0].VECS.StoreNames() {
		entries, _ := d.Nodes[0].VECS.Entries(s)
		fmt.Fprintf(&b, "%s:", s)
		for _, e := range entries {
			alias := e.Alias
			if s == StoreTrustedRoots || s == StoreTrustedRootCRLs {
				alias = "<sha1>"
			}
			fmt.Fprintf(&b, " %s (%s)", alias, e.Type)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n# services of node 1\n")
	running, stoppedList := d.Nodes[0].Services.Status()
	fmt.Fprintf(&b, "running: %s\nstopped: %s\n", strings.Join(running, " "), strings.Join(stoppedList, " "))
	b.WriteString("\n# files of node 1\n")
	for _, line := range strings.Split(string(d.Snapshot()), "\n") {
		if strings.HasPrefix(line, "== node "+d.Nodes[1].PNID) {
			break
		}
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "d" || f[0] == "f") {
			fmt.Fprintf(&b, "%s %s %s\n", f[0], f[1], f[len(f)-1])
		}
	}
	golden(t, "healthy.layout", b.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs; run with -update and review the diff\ngot:\n%s", path, got)
	}
}
