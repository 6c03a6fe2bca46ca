package vmdir

import "testing"

func TestNormalizeDN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"dc=vsphere,dc=local", "dc=vsphere,dc=local"},
		{"CN=Administrator, CN=Users , DC=vsphere,DC=LOCAL", "cn=administrator,cn=users,dc=vsphere,dc=local"},
		{"cn=Replication Agreements,cn=x", "cn=replication agreements,cn=x"},
		{"cn=a   b,cn=x", "cn=a b,cn=x"},
		{`cn=Smith\, John,dc=x`, `cn=smith\, john,dc=x`},
		{`cn=Smith\2C John,dc=x`, `cn=smith\, john,dc=x`},
		{`cn="Smith, John",dc=x`, `cn=smith\, john,dc=x`},
		{`cn=a\+b,dc=x`, `cn=a\+b,dc=x`},
		{"cn=b+sn=a,dc=x", "cn=b+sn=a,dc=x"},
		{"sn=a+cn=b,dc=x", "cn=b+sn=a,dc=x"},
		{"labeledURI=ldap://vcsa2.example.com,cn=x", "labeleduri=ldap://vcsa2.example.com,cn=x"},
		{"cn=default-site:7e6b,cn=x", "cn=default-site:7e6b,cn=x"},
		{`cn=\#1,dc=x`, `cn=\#1,dc=x`},
		{`cn=a\ ,dc=x`, `cn=a,dc=x`},
		{"cn=a;dc=x", "cn=a,dc=x"},
		{"cn=#04024869,dc=x", `cn=\#04024869,dc=x`},
		{"2.5.4.3=a,dc=x", "2.5.4.3=a,dc=x"},
		{"cn=,dc=x", "cn=,dc=x"},
		{"cn=caf\xc3\xa9", "cn=caf\xc3\xa9"},
		{"cn=CAF\xc3\x89", "cn=caf\xc3\xa9"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeDN(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("NormalizeDN(%q) = %q, want %q", tc.in, got, tc.want)
			}
			again, err := NormalizeDN(got)
			if err != nil || again != got {
				t.Errorf("normal form is not stable: %q → %q (%v)", got, again, err)
			}
		})
	}
	for _, bad := range []string{"cn", "=a", "cn=a,", "cn=a,,dc=x", `cn=a\`, `cn=a\zz`, `cn="a`, `cn="a"b`, "c n=a", "1cn=a", "cn=#zz", "cn=a\"b", "cn=a+"} {
		t.Run("bad "+bad, func(t *testing.T) {
			_, err := NormalizeDN(bad)
			wantCode(t, err, CodeInvalidDNSyntax)
		})
	}
}

func TestParentDN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"cn=TenantCredential-1,cn=vsphere.local,dc=local", "cn=vsphere.local,dc=local"},
		{"cn=a, dc=x", "dc=x"},
		{`cn=Smith\, John,dc=x`, "dc=x"},
		{`cn="Smith, John",dc=x`, "dc=x"},
		{"dc=local", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := ParentDN(tc.in); got != tc.want {
			t.Errorf("ParentDN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
