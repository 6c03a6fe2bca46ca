package lab

// Tests that drive the lab with real clients: Debian's ldapsearch,
// ldapmodify, openssl s_client, ssh and sftp, and govmomi's Lookup Service
// client. What they see is compared with the model.

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	lmethods "github.com/vmware/govmomi/lookup/methods"
	ltypes "github.com/vmware/govmomi/lookup/types"

	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/lab/vmdir"
)

// ldapURIs are a node's plain and TLS LDAP addresses.
func ldapURIs(l *Lab, i int) map[string]string {
	info := l.Nodes()[i]
	return map[string]string{"ldap": "ldap://" + info.LDAPAddr, "ldaps": "ldaps://" + info.LDAPSAddr}
}

func lower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	slices.Sort(out)
	return out
}

func TestLDAPSearch(t *testing.T) {
	l := startLab(t, "healthy")
	d := l.Model()
	creds, err := d.TenantCredentials()
	if err != nil {
		t.Fatal(err)
	}
	var wantCreds []string
	for _, c := range creds {
		wantCreds = append(wantCreds, c.DN)
	}
	regs, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	var wantRegs []string
	for _, r := range regs {
		wantRegs = append(wantRegs, r.ServiceID)
	}
	if len(wantCreds) == 0 || len(wantRegs) == 0 {
		t.Fatalf("model has %d credentials and %d registrations", len(wantCreds), len(wantRegs))
	}
	for name, uri := range ldapURIs(l, 1) {
		t.Run(name, func(t *testing.T) {
			c := newLDAPClient(t, l, uri)
			got := c.search(t, d.TenantDN(), "(objectClass=vmwSTSTenantCredential)", "cn")
			if !slices.Equal(lower(got), lower(wantCreds)) {
				t.Errorf("TenantCredentials over %s:\n got %q\nwant %q", name, got, wantCreds)
			}
			dns := c.search(t, d.RegistrationsDN(), "(|(objectClass=vmwLKUPServiceRegistration)(objectClass=vmwLKUPService))", "cn")
			var ids []string
			for _, dn := range dns {
				rdn, _, _ := strings.Cut(dn, ",")
				ids = append(ids, strings.TrimPrefix(rdn, "cn="))
			}
			if !slices.Equal(lower(ids), lower(wantRegs)) {
				t.Errorf("registrations over %s:\n got %q\nwant %q", name, ids, wantRegs)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		c := newLDAPClient(t, l, ldapURIs(l, 0)["ldap"])
		if err := os.WriteFile(c.pwFile, []byte("wrong"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := run(t, c.command("ldapsearch", "-LLL", "-b", d.TenantDN(), "(objectClass=*)"))
		if r.code != 49 || !strings.Contains(r.stderr, "Invalid credentials (49)") {
			t.Errorf("ldapsearch with a wrong password: exit %d, %s", r.code, r.stderr)
		}
	})
}

func TestLDAPModify(t *testing.T) {
	l := startLab(t, "healthy")
	d := l.Model()
	regs, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	reg := regs[slices.IndexFunc(regs, func(r model.Registration) bool { return !r.Legacy && len(r.Endpoints) > 0 })]
	for name, uri := range ldapURIs(l, 0) {
		t.Run(name, func(t *testing.T) {
			c := newLDAPClient(t, l, uri)
			eps := c.search(t, reg.DN, "(objectClass=vmwLKUPEndpointRegistration)", "vmwLKUPURI")
			if len(eps) == 0 {
				t.Fatalf("no endpoint entries under %s", reg.DN)
			}
			newURL := "https://" + name + ".example.test:443/changed"
			r := c.modify(t, "dn: "+eps[0]+"\nchangetype: modify\nreplace: vmwLKUPURI\nvmwLKUPURI: "+newURL+"\n-\n")
			if r.code != 0 {
				t.Fatalf("ldapmodify: exit %d: %s%s", r.code, r.stdout, r.stderr)
			}
			got, err := d.Registration(reg.ServiceID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(got.Endpoints, func(e model.Endpoint) bool { return e.URL == newURL }) {
				t.Errorf("after ldapmodify the model's registration %s has endpoints %+v, none at %s", reg.ServiceID, got.Endpoints, newURL)
			}
			entries, err := d.Dir.Search(eps[0], vmdir.ScopeBase, "(objectClass=*)", []string{"vmwLKUPURI"})
			if err != nil || len(entries) != 1 {
				t.Fatalf("directory search: %v, %d entries", err, len(entries))
			}
			if v := entries[0].Strings("vmwLKUPURI"); !slices.Equal(v, []string{newURL}) {
				t.Errorf("directory holds vmwLKUPURI %q, want %q", v, newURL)
			}
		})
	}
	t.Run("schema violation", func(t *testing.T) {
		c := newLDAPClient(t, l, ldapURIs(l, 0)["ldap"])
		before := l.Snapshot()
		r := c.modify(t, "dn: "+reg.DN+"\nchangetype: modify\nadd: noSuchAttribute\nnoSuchAttribute: x\n-\n")
		if r.code == 0 {
			t.Errorf("ldapmodify with an unknown attribute succeeded")
		}
		if !bytes.Equal(before, l.Snapshot()) {
			t.Error("a refused modify changed the model")
		}
	})
}

// TestOpenSSLServedCert checks that HTTPS and LDAPS serve each node's
// Machine SSL certificate, as openssl s_client sees it.
func TestOpenSSLServedCert(t *testing.T) {
	l := startLab(t, "healthy")
	for i, info := range l.Nodes() {
		want := machineCert(t, l, i)
		for name, addr := range map[string]string{"https": info.HTTPSAddr, "ldaps": info.LDAPSAddr} {
			got := servedCert(t, addr)
			if !bytes.Equal(got.Raw, want.Raw) {
				t.Errorf("node %d %s serves %s (%s), want the machine cert %s", i, name,
					pki.SubjectDN(got), pki.Thumbprint256(got.Raw), pki.Thumbprint256(want.Raw))
			}
		}
	}
	if machineCert(t, l, 0).Equal(machineCert(t, l, 1)) {
		t.Error("both nodes have the same machine cert")
	}
}

func TestOpenSSH(t *testing.T) {
	l := startLab(t, "healthy")
	for i, n := range l.Model().Nodes {
		o := newOpenSSH(t, l, i)
		r := o.ssh(t, "/usr/lib/vmware-vmafd/bin/vmafd-cli get-pnid --server-name localhost", "")
		if r.code != 0 || r.stdout != n.PNID+"\n" {
			t.Errorf("node %d vmafd-cli get-pnid: exit %d, stdout %q, stderr %q; want %s", i, r.code, r.stdout, r.stderr, n.PNID)
		}
		r = o.ssh(t, "cat /etc/vmware/deployment.node.type", "")
		if r.code != 0 || r.stdout != string(n.Type)+"\n" {
			t.Errorf("node %d deployment.node.type: exit %d, %q %q", i, r.code, r.stdout, r.stderr)
		}
	}
	t.Run("sftp put", func(t *testing.T) {
		o := newOpenSSH(t, l, 1)
		content := []byte("uploaded over sftp\n")
		if err := os.WriteFile(filepath.Join(o.dir, "hello.txt"), content, 0o600); err != nil {
			t.Fatal(err)
		}
		r := o.sftp(t, "put hello.txt /tmp/hello.txt\n")
		if r.code != 0 {
			t.Fatalf("sftp: exit %d: %s%s", r.code, r.stdout, r.stderr)
		}
		got, err := l.Model().Nodes[1].ReadFile("/tmp/hello.txt")
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("node tree /tmp/hello.txt = %q, %v; want %q", got, err, content)
		}
		if _, err := l.Model().Nodes[0].ReadFile("/tmp/hello.txt"); err == nil {
			t.Error("the file also landed in node 1's tree")
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		o := newOpenSSH(t, l, 0)
		o.env = append(o.env, "SSHPASS=wrong")
		if r := o.ssh(t, "true", ""); r.code == 0 {
			t.Error("ssh with a wrong password succeeded")
		}
	})
}

// TestLookupSetList updates a registration's sslTrust with govmomi's Lookup
// Service client (Set), and sees the change in List and in the vmdir
// endpoint entries.
func TestLookupSetList(t *testing.T) {
	l := startLab(t, "healthy")
	d := l.Model()
	tg, err := l.Target(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	lc, err := tg.Nodes()[0].Lookup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	infos, err := lc.List(t.Context(), &ltypes.LookupServiceRegistrationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	regs, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(regs) {
		t.Errorf("List returned %d registrations, the model has %d", len(infos), len(regs))
	}
	i := slices.IndexFunc(infos, func(r ltypes.LookupServiceRegistrationInfo) bool {
		return strings.HasPrefix(r.ServiceId, d.Nodes[0].MachineID) && len(r.ServiceEndpoints) > 0
	})
	if i < 0 {
		t.Fatalf("no registration of node 1 with endpoints in %d", len(infos))
	}
	info := infos[i]
	newTrust := pki.TrustString(machineCert(t, l, 1).Raw) // any certificate but the current one
	spec := ltypes.LookupServiceRegistrationSetSpec{LookupServiceRegistrationMutableServiceInfo: info.LookupServiceRegistrationMutableServiceInfo}
	spec.ServiceEndpoints = slices.Clone(spec.ServiceEndpoints)
	for j := range spec.ServiceEndpoints {
		spec.ServiceEndpoints[j].SslTrust = []string{newTrust}
	}
	if _, err := lmethods.Set(t.Context(), lc, &ltypes.Set{This: *lc.ServiceContent.ServiceRegistration, ServiceId: info.ServiceId, ServiceSpec: spec}); err != nil {
		t.Fatal(err)
	}

	after, err := lc.List(t.Context(), &ltypes.LookupServiceRegistrationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	j := slices.IndexFunc(after, func(r ltypes.LookupServiceRegistrationInfo) bool { return r.ServiceId == info.ServiceId })
	if j < 0 {
		t.Fatalf("%s is gone from List", info.ServiceId)
	}
	for _, ep := range after[j].ServiceEndpoints {
		if !slices.Equal(ep.SslTrust, []string{newTrust}) {
			t.Errorf("List after Set: endpoint %s trusts %d certs, not the new one", ep.Url, len(ep.SslTrust))
		}
	}
	entries, err := d.Dir.Search(d.RegistrationsDN(), vmdir.ScopeSub,
		"(&(objectClass=vmwLKUPEndpointRegistration)(vmwLKUPEndpointSslTrust=*))", []string{"vmwLKUPEndpointSslTrust"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.Contains(strings.ToLower(e.DN), strings.ToLower("cn="+info.ServiceId+",")) {
			continue
		}
		n++
		if v := e.Strings("vmwLKUPEndpointSslTrust"); !slices.Equal(v, []string{newTrust}) {
			t.Errorf("vmdir %s holds %d trusts, not the new one", e.DN, len(v))
		}
	}
	if n != len(info.ServiceEndpoints) {
		t.Errorf("%d endpoint entries of %s in vmdir, List showed %d endpoints", n, info.ServiceId, len(info.ServiceEndpoints))
	}
}
