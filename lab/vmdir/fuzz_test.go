package vmdir

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		"(|(objectClass=vmwSTSTenantCredential)(&(objectclass=vmwSTSTenantTrustedCertificateChain)(cn=TrustedCertChain*)))",
		"(cn=*cert*chain-*)", "(!(serverId=abc))", "(lastLocalUsnProcessed>=100)", "(uSNChanged<=5)",
		`(userCertificate=\30\82)`, "(cn:dn:1.2.3:=x)", "(:dn:2.5.13.5:=x)", "(&)", "(|)", "(member=cn=a,dc=x)",
		"(cn~=x)", "objectClass=*", "", "((", `(cn=\`,
	} {
		f.Add(s)
	}
	d := loadFixture(f)
	all, _ := d.Search(suffix, ScopeSub, "", []string{"1.1"})
	f.Fuzz(func(t *testing.T, filter string) {
		got, err := d.Search(suffix, ScopeSub, filter, []string{"1.1"})
		if err != nil {
			if Code(err) != CodeFilterError {
				t.Fatalf("Search(%q): unexpected error %v", filter, err)
			}
			return
		}
		// A filter and its negation select disjoint sets.
		not, err := d.Search(suffix, ScopeSub, "(!"+wrap(filter)+")", []string{"1.1"})
		if err != nil {
			if Code(err) == CodeFilterError && strings.Count(filter, "(") > maxFilterDepth-2 {
				return // the added (! pushed it over the nesting limit
			}
			t.Fatalf("negation of valid filter %q failed: %v", filter, err)
		}
		for _, dn := range dns(not) {
			if slices.Contains(dns(got), dn) {
				t.Fatalf("%s matches both %q and its negation", dn, filter)
			}
		}
		if len(got)+len(not) > len(all) {
			t.Fatalf("%q: %d + %d results exceed %d entries", filter, len(got), len(not), len(all))
		}
	})
}

// wrap returns filter in the parenthesized form compileFilter accepts.
func wrap(filter string) string {
	s := strings.TrimSpace(filter)
	switch {
	case s == "":
		return "(objectClass=*)"
	case s[0] != '(':
		return "(" + s + ")"
	}
	return s
}

func FuzzParseLDIF(f *testing.F) {
	seeds := []string{
		"dn: cn=a,dc=x\ncn: a\n\n",
		"version: 1\ndn:: Y249Y2Fmw6k=\nuserCertificate:: AAEC\n \n",
		"dn: cn=a\ndescription: x\n y\n# c\n\ndn: cn=b\ncn: b\n",
		"dn: cn=a\nchangetype: add\ncn:\n",
	}
	// Small seeds only: the fuzzer minimizes every new input, and that is
	// slow for a seed as large as the whole fixture.
	seeds = append(seeds, "dn: cn=TenantCredential-1,cn=x\nobjectClass: vmwSTSTenantCredential\n"+
		"userCertificate:: MIIBETCBxKADAgECAgID6TAFBgMrZXAwKTEPMA0GA1UEChMGVk13YXJlMRYwFAYDV\n"+
		" QQDEw1zc29zZXJ2ZXJTaWdu\nvmwSTSPrivateKey:: MC4CAQAwBQYDK2VwBCIEIAIAAAAA\n")
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := ParseLDIF(strings.NewReader(in))
		if err != nil {
			return
		}
		// What parses must survive a write and a second parse unchanged.
		var buf bytes.Buffer
		if err := WriteLDIF(&buf, entries); err != nil {
			t.Fatal(err)
		}
		again, err := ParseLDIF(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("re-parse of\n%s\nfailed: %v", buf.Bytes(), err)
		}
		if len(again) != len(entries) {
			t.Fatalf("%d entries became %d", len(entries), len(again))
		}
		for i := range entries {
			if !entriesEqual(entries[i], again[i]) {
				t.Fatalf("entry %d changed:\n%#v\n%#v", i, entries[i], again[i])
			}
		}
	})
}

func entriesEqual(a, b *Entry) bool {
	if a.DN != b.DN || len(a.Attrs) != len(b.Attrs) {
		return false
	}
	for i := range a.Attrs {
		if a.Attrs[i].Name != b.Attrs[i].Name || !slices.EqualFunc(a.Attrs[i].Values, b.Attrs[i].Values, bytes.Equal) {
			return false
		}
	}
	return true
}
