package vmdir

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	suffix     = "dc=vsphere,dc=local"
	tenantDN   = "cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=Services," + suffix
	cred1DN    = "cn=TenantCredential-1," + tenantDN
	cred2DN    = "cn=TenantCredential-2," + tenantDN
	chainsDN   = "cn=TrustedCertificateChains," + tenantDN
	chain1DN   = "cn=TrustedCertChain-1," + chainsDN
	chain2DN   = "cn=TrustedCertChain-2," + chainsDN
	adminDN    = "cn=Administrator,cn=Users," + suffix
	siteDN     = "cn=default-site,cn=Sites,cn=Configuration," + suffix
	raDN       = "labeledURI=ldap://vcsa2.example.com,cn=Replication Agreements,cn=vcsa1.example.com,cn=Servers," + siteDN
	adminPass  = "VMware1!"
	fixtureLen = 34 // 33 LDIF records plus the suffix entry
)

// loadFixture returns a directory holding testdata/fixture.ldif.
func loadFixture(t testing.TB) *Directory {
	t.Helper()
	d := New(suffix)
	for _, e := range fixtureEntries(t) {
		if err := d.Add(e); err != nil {
			t.Fatalf("add fixture %s: %v", e.DN, err)
		}
	}
	return d
}

func fixtureEntries(t testing.TB) []*Entry {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "fixture.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := ParseLDIF(f)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func dns(entries []*Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.DN
	}
	return out
}

// certOf returns the first userCertificate of dn in the fixture.
func certOf(t testing.TB, d *Directory, dn string) []byte {
	t.Helper()
	e, err := d.Get(dn)
	if err != nil {
		t.Fatal(err)
	}
	v := e.Values("userCertificate")
	if len(v) == 0 {
		t.Fatalf("%s has no userCertificate", dn)
	}
	return v[0]
}

func wantCode(t *testing.T, err error, code int) {
	t.Helper()
	if got := Code(err); got != code {
		t.Fatalf("result code = %d (%v), want %d", got, err, code)
	}
}

func sameStrings(a, b []string) bool { return slices.Equal(a, b) }
