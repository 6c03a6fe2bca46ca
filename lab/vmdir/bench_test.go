package vmdir

import (
	"fmt"
	"testing"
)

// benchDirectory is the fixture plus n extra Lookup Service registrations
// with two endpoints each, the bulk of a real vmdir tree.
func benchDirectory(b *testing.B, n int) *Directory {
	d := loadFixture(b)
	reg := "cn=ServiceRegistrations,cn=LookupService," + siteDN
	for i := 0; i < n; i++ {
		svc := fmt.Sprintf("cn=svc-%04d,%s", i, reg)
		must(b, d.Add(NewEntry(svc, StrAttr("objectClass", "vmwLKUPServiceRegistration"),
			StrAttr("vmwLKUPVersion", "2.0"), StrAttr("vmwLKUPProduct", "com.vmware.cis"),
			StrAttr("vmwLKUPType", "vcenterserver"), StrAttr("vmwLKUPOwnerId", "vpxd@vsphere.local"))))
		for j := 0; j < 2; j++ {
			must(b, d.Add(NewEntry(fmt.Sprintf("cn=Endpoint%d,%s", j, svc), StrAttr("objectClass", "vmwLKUPEndpointRegistration"),
				StrAttr("vmwLKUPEndpointType", "com.vmware.vim"), StrAttr("vmwLKUPEndpointProtocol", "vmomi"),
				StrAttr("vmwLKUPURI", fmt.Sprintf("https://vcsa%d.example.com/sdk", i%7)),
				StrAttr("vmwLKUPEndpointSslTrust", "MIIDWDCCAkCgAwIBAgIJAO"))))
		}
	}
	return d
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkSearch(b *testing.B) {
	d := benchDirectory(b, 300)
	cases := []struct {
		name, base string
		scope      Scope
		filter     string
		want       int
	}{
		{"tenant-query", tenantDN, ScopeSub, "(|(objectClass=vmwSTSTenantCredential)(&(objectclass=vmwSTSTenantTrustedCertificateChain)(cn=TrustedCertChain*)))", 4},
		{"endpoints-by-fqdn", suffix, ScopeSub, "(&(vmwLKUPURI=*vcsa3.example.com*)(|(objectclass=vmwLKUPServiceEndpoint)(objectclass=vmwLKUPEndpointRegistration)))", 86},
		{"base", cred1DN, ScopeBase, "(objectClass=*)", 1},
		{"one-level", tenantDN, ScopeOne, "(objectClass=*)", 3},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				got, err := d.Search(c.base, c.scope, c.filter, nil)
				if err != nil || len(got) != c.want {
					b.Fatalf("got %d entries, %v; want %d", len(got), err, c.want)
				}
			}
		})
	}
}

func BenchmarkModify(b *testing.B) {
	d := loadFixture(b)
	key := []byte("0123456789abcdef")
	for b.Loop() {
		must(b, d.Modify(cred1DN, []Change{{ModReplace, Attr{Name: "vmwSTSPrivateKey", Values: [][]byte{key}}}}))
	}
}
