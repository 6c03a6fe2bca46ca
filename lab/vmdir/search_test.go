package vmdir

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// escapeFilter escapes a value for an RFC 4515 assertion, every byte
// outside printable ASCII and the special characters as \hh.
func escapeFilter(v []byte) string {
	var b strings.Builder
	for _, c := range v {
		if c < 0x20 || c > 0x7e || strings.IndexByte(`*()\`, c) >= 0 {
			fmt.Fprintf(&b, `\%02x`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func TestSearchFilters(t *testing.T) {
	d := loadFixture(t)
	sign1 := certOf(t, d, cred1DN)
	usn := d.HighestUSN()

	tests := []struct {
		name   string
		filter string
		want   []string // DNs in result order
	}{
		{"vmware tenant query", "(|(objectClass=vmwSTSTenantCredential)(&(objectclass=vmwSTSTenantTrustedCertificateChain)(cn=TrustedCertChain*)))",
			[]string{cred1DN, cred2DN, chain1DN, chain2DN}},
		{"equality ignores case of type and value", "(OBJECTCLASS=VMWSTSTENANTCREDENTIAL)", []string{cred1DN, cred2DN}},
		{"equality ignores insignificant spaces", "(cn=  tenantcredential-1 )", []string{cred1DN}},
		{"initial substring", "(cn=TrustedCertChain*)", []string{chain1DN, chain2DN}},
		{"final substring", "(&(objectClass=vmwSTSTenantCredential)(cn=*-2))", []string{cred2DN}},
		{"any substrings in order", "(cn=*cert*chain-*)", []string{chain1DN, chain2DN}},
		{"any substrings out of order", "(cn=*chain*cert*)", nil},
		{"not", "(&(objectClass=vmwSTSTenantCredential)(!(cn=TenantCredential-1)))", []string{cred2DN}},
		{"present binary", "(vmwSTSPrivateKey=*)", []string{cred1DN, cred2DN}},
		{"binary equality is exact bytes", "(userCertificate=" + escapeFilter(sign1) + ")",
			[]string{"cn=machine-ce510c87-35e6-444e-82f0-60a7527608a3,cn=ServicePrincipals," + suffix, cred1DN, chain1DN}},
		{"binary equality is case sensitive", "(userPassword=vmware1!)", nil},
		{"binary equality matches", "(userPassword=VMware1!)", []string{adminDN}},
		{"binary substring", "(userPassword=VMw*)", []string{adminDN}},
		{"integer greater or equal", "(lastLocalUsnProcessed>=1000)", []string{raDN}},
		{"integer compares numerically", "(lastLocalUsnProcessed>=200)", []string{raDN}},
		{"integer less or equal", "(lastLocalUsnProcessed<=999)", nil},
		{"integer equality with a bad assertion is undefined", "(serverId=abc)", nil},
		{"not of undefined stays undefined", "(&(objectClass=vmwDirServer)(!(serverId=abc)))", nil},
		{"operational uSNChanged", fmt.Sprintf("(uSNChanged>=%d)", usn), []string{chain2DN}},
		{"unknown attribute is undefined", "(noSuchAttr=x)", nil},
		{"not unknown attribute is undefined", "(&(cn=Users)(!(noSuchAttr=x)))", nil},
		{"or with undefined", "(|(noSuchAttr=x)(cn=Users))", []string{"cn=Users," + suffix}},
		{"dn syntax matches normalized", "(member=CN=Administrator, cn=users,DC=vsphere,DC=local)",
			[]string{"cn=Administrators,cn=Builtin," + suffix}},
		{"string ordering", "(&(objectClass=vmwSTSTenantCredential)(cn>=TenantCredential-2))", []string{cred2DN}},
		{"approx as equality", "(cn~=tenantcredential-2)", []string{cred2DN}},
		{"extensible without rule", "(cn:=TenantCredential-2)", []string{cred2DN}},
		{"extensible with unknown rule", "(cn:1.2.3.4:=TenantCredential-2)", nil},
		{"lookup endpoints by fqdn", "(&(vmwLKUPURI=*vcsa1.example.com*)(|(objectclass=vmwLKUPServiceEndpoint)(objectclass=vmwLKUPEndpointRegistration)))",
			[]string{
				"cn=Endpoint0,cn=04608398-1493-4482-881b-b35961bf5141,cn=ServiceRegistrations,cn=LookupService," + siteDN,
				"cn=Endpoint0,cn=default-site:7e6b2d9a-58fd-4a9e-9d3a-2b4c1e0f9a11,cn=ServiceRegistrations,cn=LookupService," + siteDN,
			}},
		{"escaped parenthesis in value", `(cn=a\28b\29)`, nil},
		{"attribute options are ignored", "(userCertificate;binary=*)", []string{
			"cn=machine-ce510c87-35e6-444e-82f0-60a7527608a3,cn=ServicePrincipals," + suffix,
			cred1DN, cred2DN, chain1DN, chain2DN}},
		{"bare item", "objectClass=vmwSTSTenant", []string{tenantDN}},
		{"empty or is false", "(|)", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Search(suffix, ScopeSub, tc.filter, []string{"1.1"})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dns(got), tc.want) {
				t.Errorf("Search(%q) =\n  %q\nwant\n  %q", tc.filter, dns(got), tc.want)
			}
		})
	}

	t.Run("empty and and presence select everything", func(t *testing.T) {
		for _, f := range []string{"(&)", "(objectClass=*)", ""} {
			got, err := d.Search(suffix, ScopeSub, f, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != fixtureLen {
				t.Errorf("Search(%q) returned %d entries, want %d", f, len(got), fixtureLen)
			}
		}
	})
}

func TestSearchBadFilter(t *testing.T) {
	d := New(suffix)
	for _, f := range []string{"(", "(cn=a", "(cn=a))", "((cn=a))", "(!(cn=a)(cn=b))", "(cn=a(b)", `(cn=\zz)`,
		"(=a)", "(cn>a)", "(cn~a)", "(cn>=a*)", "(:=a)", "(cn=a**b)", "(&(cn=a)x)", "(c n=a)"} {
		t.Run(f, func(t *testing.T) {
			_, err := d.Search(suffix, ScopeSub, f, nil)
			wantCode(t, err, CodeFilterError)
		})
	}
	deep := strings.Repeat("(!", 200) + "(cn=a)" + strings.Repeat(")", 200)
	_, err := d.Search(suffix, ScopeSub, deep, nil)
	wantCode(t, err, CodeFilterError)
}

func TestSearchScopes(t *testing.T) {
	d := loadFixture(t)
	tests := []struct {
		name  string
		base  string
		scope Scope
		want  []string
		code  int
	}{
		{"base", tenantDN, ScopeBase, []string{tenantDN}, 0},
		{"base ignores DN case and spacing", "CN=vsphere.local, CN=Tenants,cn=identitymanager,cn=services,dc=VSPHERE,dc=local", ScopeBase, []string{tenantDN}, 0},
		{"one level", tenantDN, ScopeOne, []string{cred1DN, cred2DN, chainsDN}, 0},
		{"subtree parent first", tenantDN, ScopeSub, []string{tenantDN, cred1DN, cred2DN, chainsDN, chain1DN, chain2DN}, 0},
		{"leaf one level", cred1DN, ScopeOne, nil, 0},
		{"missing base", "cn=nope," + suffix, ScopeBase, nil, CodeNoSuchObject},
		{"missing base subtree", "cn=nope," + suffix, ScopeSub, nil, CodeNoSuchObject},
		{"bad base", "cn", ScopeBase, nil, CodeInvalidDNSyntax},
		{"bad scope", suffix, Scope(3), nil, CodeProtocolError},
		{"root DSE", "", ScopeBase, []string{""}, 0},
		{"below root DSE", "", ScopeOne, []string{suffix}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Search(tc.base, tc.scope, "(objectClass=*)", []string{"1.1"})
			wantCode(t, err, tc.code)
			if !slices.Equal(dns(got), tc.want) {
				t.Errorf("got %q, want %q", dns(got), tc.want)
			}
		})
	}
	all, err := d.Search("", ScopeSub, "", nil)
	if err != nil || len(all) != fixtureLen {
		t.Fatalf("subtree from the root returned %d entries (%v), want %d", len(all), err, fixtureLen)
	}
	for i, e := range all[1:] {
		parent, _ := NormalizeDN(ParentDN(e.DN))
		found := false
		for _, p := range all[:i+1] {
			if n, _ := NormalizeDN(p.DN); n == parent {
				found = true
			}
		}
		if !found {
			t.Errorf("%s comes before its parent", e.DN)
		}
	}
}

func TestSearchAttributes(t *testing.T) {
	d := loadFixture(t)
	names := func(e *Entry) []string {
		var out []string
		for _, a := range e.Attrs {
			out = append(out, a.Name)
		}
		return out
	}
	tests := []struct {
		name  string
		base  string
		attrs []string
		want  []string
	}{
		{"all user attributes in insertion order", cred1DN, nil, []string{"objectClass", "cn", "userCertificate", "vmwSTSPrivateKey"}},
		{"star", cred1DN, []string{"*"}, []string{"objectClass", "cn", "userCertificate", "vmwSTSPrivateKey"}},
		{"operational only", cred1DN, []string{"+"}, []string{"uSNCreated", "uSNChanged"}},
		{"both", cred1DN, []string{"*", "+"}, []string{"objectClass", "cn", "userCertificate", "vmwSTSPrivateKey", "uSNCreated", "uSNChanged"}},
		{"by name in schema spelling", cred1DN, []string{"USERCERTIFICATE", "usnchanged"}, []string{"userCertificate", "uSNChanged"}},
		{"no attributes", cred1DN, []string{"1.1"}, nil},
		{"unknown names are ignored", cred1DN, []string{"nosuch", "cn"}, []string{"cn"}},
		{"root DSE user attributes", "", nil, []string{"objectClass", "namingContexts", "defaultNamingContext", "supportedLDAPVersion", "supportedControl"}},
		{"root DSE highestCommittedUSN", "", []string{"highestCommittedUSN"}, []string{"highestCommittedUSN"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Search(tc.base, ScopeBase, "", tc.attrs)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("got %d entries", len(got))
			}
			if !slices.Equal(names(got[0]), tc.want) {
				t.Errorf("attributes %q, want %q", names(got[0]), tc.want)
			}
		})
	}
	dse, _ := d.Search("", ScopeBase, "(objectClass=*)", []string{"+", "namingContexts"})
	if got, want := dse[0].First("highestCommittedUSN"), fmt.Sprint(d.HighestUSN()); got != want {
		t.Errorf("highestCommittedUSN = %q, want %q", got, want)
	}
	if got := dse[0].First("namingContexts"); got != suffix {
		t.Errorf("namingContexts = %q", got)
	}
	if got, _ := d.Search("", ScopeBase, fmt.Sprintf("(highestCommittedUSN=%d)", d.HighestUSN()), nil); len(got) != 1 {
		t.Errorf("root DSE does not match its own highestCommittedUSN")
	}
}

func TestSearchReturnsCopies(t *testing.T) {
	d := loadFixture(t)
	got, _ := d.Search(cred1DN, ScopeBase, "", nil)
	got[0].Values("vmwSTSPrivateKey")[0][0] ^= 0xff
	got[0].Attrs[0].Name = "mangled"
	again, _ := d.Search(cred1DN, ScopeBase, "(objectClass=vmwSTSTenantCredential)", nil)
	if len(again) != 1 || again[0].Attrs[0].Name != "objectClass" {
		t.Fatal("changing a result changed the directory")
	}
	if again[0].Values("vmwSTSPrivateKey")[0][0] == got[0].Values("vmwSTSPrivateKey")[0][0] {
		t.Fatal("changing a returned value changed the directory")
	}
}
