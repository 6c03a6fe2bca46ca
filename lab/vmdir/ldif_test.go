package vmdir

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestLDIFGolden(t *testing.T) {
	d := loadFixture(t)
	golden(t, "fixture.golden.ldif", d.LDIF())
}

func TestLDIFIsCanonical(t *testing.T) {
	want := loadFixture(t).LDIF()

	// Same entries added in another order (parents still first), with
	// attributes shuffled, give the same dump.
	entries := fixtureEntries(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, e := range entries {
		rng.Shuffle(len(e.Attrs), func(i, j int) { e.Attrs[i], e.Attrs[j] = e.Attrs[j], e.Attrs[i] })
	}
	d := New(suffix)
	for len(entries) > 0 {
		var next []*Entry
		for i := len(entries) - 1; i >= 0; i-- {
			if err := d.Add(entries[i]); Code(err) == CodeNoSuchObject {
				next = append(next, entries[i])
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if len(next) == len(entries) {
			t.Fatal("no progress adding entries")
		}
		entries = next
	}
	if got := d.LDIF(); !bytes.Equal(got, want) {
		t.Errorf("dump depends on insertion order:\n%s", got)
	}

	// A change and its reverse leave the dump unchanged (USNs are excluded).
	if err := d.Modify(raDN, []Change{{ModReplace, StrAttr("lastLocalUsnProcessed", "1")}}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(d.LDIF(), want) {
		t.Fatal("dump did not change after a modify")
	}
	if err := d.Modify(raDN, []Change{{ModReplace, StrAttr("lastLocalUsnProcessed", "1632")}}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.LDIF(), want) {
		t.Error("dump differs after a modify and its reverse")
	}
}

func TestLDIFRestores(t *testing.T) {
	d := loadFixture(t)
	dump := d.LDIF()
	entries, err := ParseLDIF(bytes.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	r := New(suffix)
	for _, e := range entries[1:] { // the suffix entry exists already
		if err := r.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(r.LDIF(), dump) {
		t.Error("restoring a dump does not reproduce it")
	}
}

func TestWriteLDIF(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name string
		e    *Entry
		want string
	}{
		{"plain", NewEntry("cn=a,dc=x", StrAttr("cn", "a"), StrAttr("description", "two words")),
			"dn: cn=a,dc=x\ncn: a\ndescription: two words\n\n"},
		{"binary", NewEntry("cn=a", Attr{Name: "userCertificate", Values: [][]byte{{0x30, 0x82, 0x01}}}),
			"dn: cn=a\nuserCertificate:: MIIB\n\n"},
		{"userPassword is always base64", NewEntry("cn=a", StrAttr("userPassword", "secret")),
			"dn: cn=a\nuserPassword:: c2VjcmV0\n\n"},
		{"unsafe starts", NewEntry("cn=a", StrAttr("description", " lead", ":colon", "<angle", "trail ")),
			"dn: cn=a\ndescription:: IGxlYWQ=\ndescription:: OmNvbG9u\ndescription:: PGFuZ2xl\ndescription:: dHJhaWwg\n\n"},
		{"non-ASCII", NewEntry("cn=caf\xc3\xa9", StrAttr("cn", "caf\xc3\xa9")),
			"dn:: Y249Y2Fmw6k=\ncn:: Y2Fmw6k=\n\n"},
		{"empty value", NewEntry("cn=a", StrAttr("description", "")), "dn: cn=a\ndescription:\n\n"},
		{"folded at 78 columns", NewEntry("cn=a", StrAttr("description", long+long)),
			"dn: cn=a\ndescription: " + long[:65] + "\n " + long[65:] + long[:42] + "\n " + long[42:] + "\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteLDIF(&b, []*Entry{tc.e}); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
			for _, line := range strings.Split(b.String(), "\n") {
				if len(line) > 78 {
					t.Errorf("line longer than 78: %q", line)
				}
			}
		})
	}
}

func TestParseLDIF(t *testing.T) {
	in := "# comment\r\nversion: 1\r\n\r\n" +
		"dn: cn=TenantCredential-1,cn=vsphere.local\n" +
		"changetype: add\n" +
		"objectClass: vmwSTSTenantCredential\n" +
		"# a comment inside a record\n" +
		"cn: Tenant\n Credential-1\n" +
		"userCertificate:: AAEC\n" +
		"userCertificate;binary:: /w==\n" +
		"description:    leading spaces dropped\n" +
		"\n\n\n" +
		"dn:: Y249Y2Fmw6k=\n" +
		"cn: x\n"
	got, err := ParseLDIF(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2", len(got))
	}
	e := got[0]
	if e.DN != "cn=TenantCredential-1,cn=vsphere.local" || e.First("cn") != "TenantCredential-1" {
		t.Errorf("dn %q cn %q", e.DN, e.First("cn"))
	}
	if c := e.Values("userCertificate"); len(c) != 2 || !bytes.Equal(c[0], []byte{0, 1, 2}) || !bytes.Equal(c[1], []byte{0xff}) {
		t.Errorf("userCertificate = %x", c)
	}
	if e.First("description") != "leading spaces dropped" {
		t.Errorf("description = %q", e.First("description"))
	}
	if got[1].DN != "cn=caf\xc3\xa9" {
		t.Errorf("second dn = %q", got[1].DN)
	}

	for name, bad := range map[string]string{
		"changetype modify": "dn: cn=a\nchangetype: modify\nreplace: cn\n",
		"url value":         "dn: cn=a\nuserCertificate:< file:///tmp/c.der\n",
		"no dn":             "cn: a\n",
		"bad base64":        "dn: cn=a\ncn:: !!!\n",
		"no colon":          "dn: cn=a\njunk\n",
		"version 2":         "version: 2\ndn: cn=a\n",
		"control":           "dn: cn=a\ncontrol: 1.2.3\n",
		"bad name":          "dn: cn=a\nc n: x\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseLDIF(strings.NewReader(bad)); err == nil {
				t.Errorf("ParseLDIF accepted %q", bad)
			}
		})
	}
}
