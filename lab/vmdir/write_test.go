package vmdir

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

func TestAddErrors(t *testing.T) {
	cert := []byte{0x30, 0x82, 0x00, 0x01, 0xff}
	tests := []struct {
		name  string
		entry *Entry
		code  int
	}{
		{"missing parent", NewEntry("cn=x,cn=nope,"+suffix, StrAttr("objectClass", "container")), CodeNoSuchObject},
		{"outside the naming context", NewEntry("cn=x,dc=other", StrAttr("objectClass", "container")), CodeNoSuchObject},
		{"duplicate differs only in case", NewEntry("CN=users, DC=vsphere,DC=LOCAL", StrAttr("objectClass", "container")), CodeEntryAlreadyExists},
		{"missing MUST", NewEntry("cn=TenantCredential-9,"+tenantDN, StrAttr("objectClass", "vmwSTSTenantCredential"),
			Attr{Name: "userCertificate", Values: [][]byte{cert}}), CodeObjectClassViolation},
		{"MUST of auxiliary class", NewEntry("cn=svc,cn=ServicePrincipals,"+suffix, StrAttr("objectClass", "user", "vmwServicePrincipal")), CodeObjectClassViolation},
		{"unknown attribute", NewEntry("cn=x,"+suffix, StrAttr("objectClass", "container"), StrAttr("favouriteColour", "blue")), CodeUndefinedAttributeType},
		{"unknown object class", NewEntry("cn=x,"+suffix, StrAttr("objectClass", "vmwNoSuchClass")), CodeObjectClassViolation},
		{"no structural class", NewEntry("cn=x,"+suffix, StrAttr("objectClass", "top")), CodeObjectClassViolation},
		{"no objectClass", NewEntry("cn=x,"+suffix, StrAttr("cn", "x")), CodeObjectClassViolation},
		{"attribute not allowed", NewEntry("cn=x,"+suffix, StrAttr("objectClass", "container"), StrAttr("userPrincipalName", "x@y")), CodeObjectClassViolation},
		{"integer syntax", NewEntry("cn=s2,cn=Servers,"+siteDN, StrAttr("objectClass", "vmwDirServer"), StrAttr("serverId", "two")), CodeInvalidAttributeSyntax},
		{"string syntax rejects invalid UTF-8", NewEntry("cn=x,"+suffix, StrAttr("objectClass", "container"), StrAttr("description", "\xff\xfe")), CodeInvalidAttributeSyntax},
		{"dn syntax", NewEntry("cn=g,cn=Builtin,"+suffix, StrAttr("objectClass", "group"), StrAttr("member", "not a dn")), CodeInvalidAttributeSyntax},
		{"single value", NewEntry("cn=TenantCredential-9,"+tenantDN, StrAttr("objectClass", "vmwSTSTenantCredential"),
			Attr{Name: "userCertificate", Values: [][]byte{cert}}, Attr{Name: "vmwSTSPrivateKey", Values: [][]byte{{1}, {2}}}), CodeConstraintViolation},
		{"duplicate value", NewEntry("cn=x,"+suffix, StrAttr("objectClass", "container", "CONTAINER")), CodeAttributeOrValueExists},
		{"operational attribute", NewEntry("cn=x,"+suffix, StrAttr("objectClass", "container"), StrAttr("uSNCreated", "1")), CodeUnwillingToPerform},
		{"bad DN", NewEntry("cn=x,,"+suffix, StrAttr("objectClass", "container")), CodeInvalidDNSyntax},
		{"empty DN", NewEntry("", StrAttr("objectClass", "container")), CodeUnwillingToPerform},
		{"undefined naming attribute", NewEntry("bogus=x,"+suffix, StrAttr("objectClass", "container")), CodeUndefinedAttributeType},
		{"nil entry", nil, CodeProtocolError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := loadFixture(t)
			before, usn := d.LDIF(), d.HighestUSN()
			wantCode(t, d.Add(tc.entry), tc.code)
			if !bytes.Equal(d.LDIF(), before) || d.HighestUSN() != usn {
				t.Error("a failed add changed the directory")
			}
		})
	}
}

func TestAddAddsRDNValue(t *testing.T) {
	d := New(suffix)
	if err := d.Add(NewEntry("cn=Users,"+suffix, StrAttr("objectClass", "top", "container"))); err != nil {
		t.Fatal(err)
	}
	e, err := d.Get("cn=users," + suffix)
	if err != nil {
		t.Fatal(err)
	}
	if e.DN != "cn=Users,"+suffix || e.First("cn") != "Users" {
		t.Errorf("got DN %q cn %q", e.DN, e.First("cn"))
	}
	// The RDN value given with other case is not duplicated.
	if err := d.Add(NewEntry("cn=Foo,"+suffix, StrAttr("objectClass", "container"), StrAttr("cn", "foo"))); err != nil {
		t.Fatal(err)
	}
	if e, _ := d.Get("cn=foo," + suffix); len(e.Values("cn")) != 1 {
		t.Errorf("cn = %q", e.Strings("cn"))
	}
}

func TestModify(t *testing.T) {
	newCert := []byte{0x30, 0x03, 0x00, 0xff, 0x0a}
	ca := func() []byte {
		e, err := loadFixture(t).Get(chain1DN)
		if err != nil {
			t.Fatal(err)
		}
		return e.Values("userCertificate")[1]
	}()
	tests := []struct {
		name    string
		dn      string
		changes []Change
		code    int
		check   func(t *testing.T, e *Entry)
	}{
		{"replace binary single value", cred1DN,
			[]Change{{ModReplace, Attr{Name: "vmwSTSPrivateKey", Values: [][]byte{newCert}}}}, 0,
			func(t *testing.T, e *Entry) {
				if v := e.Values("vmwSTSPrivateKey"); len(v) != 1 || !bytes.Equal(v[0], newCert) {
					t.Errorf("vmwSTSPrivateKey = %x", v)
				}
			}},
		{"add values keeps order", cred1DN,
			[]Change{{ModAdd, Attr{Name: "usercertificate", Values: [][]byte{newCert, {0}}}}}, 0,
			func(t *testing.T, e *Entry) {
				v := e.Values("userCertificate")
				if len(v) != 4 || !bytes.Equal(v[2], newCert) || !bytes.Equal(v[3], []byte{0}) {
					t.Errorf("userCertificate has %d values", len(v))
				}
			}},
		{"delete one value", chain1DN,
			[]Change{{ModDelete, Attr{Name: "userCertificate", Values: [][]byte{ca}}}}, 0,
			func(t *testing.T, e *Entry) {
				if v := e.Values("userCertificate"); len(v) != 1 || bytes.Equal(v[0], ca) {
					t.Errorf("userCertificate has %d values", len(v))
				}
			}},
		{"delete attribute then add", chain1DN,
			[]Change{{ModDelete, Attr{Name: "userCertificate", Values: nil}}, {ModAdd, Attr{Name: "userCertificate", Values: [][]byte{newCert}}}}, 0,
			func(t *testing.T, e *Entry) {
				if v := e.Values("userCertificate"); len(v) != 1 || !bytes.Equal(v[0], newCert) {
					t.Errorf("userCertificate = %x", v)
				}
			}},
		{"replace with no values deletes", "cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=Services," + suffix,
			[]Change{{ModReplace, StrAttr("vmwSTSClockTolerance")}}, 0,
			func(t *testing.T, e *Entry) {
				if e.Values("vmwSTSClockTolerance") != nil {
					t.Error("attribute still present")
				}
			}},
		{"replace absent with no values is fine", tenantDN, []Change{{ModReplace, StrAttr("vmwSTSLogonBanner")}}, 0, nil},
		{"replace string value", raDN, []Change{{ModReplace, StrAttr("lastLocalUsnProcessed", "2000")}}, 0,
			func(t *testing.T, e *Entry) {
				if e.First("lastLocalUsnProcessed") != "2000" {
					t.Errorf("lastLocalUsnProcessed = %q", e.First("lastLocalUsnProcessed"))
				}
			}},
		{"delete value by matching rule", adminDN, []Change{{ModDelete, StrAttr("objectClass", "PERSON")}}, 0,
			func(t *testing.T, e *Entry) {
				if got := e.Strings("objectClass"); !sameStrings(got, []string{"top", "organizationalPerson", "user"}) {
					t.Errorf("objectClass = %q", got)
				}
			}},
		{"missing entry", "cn=nope," + suffix, []Change{{ModReplace, StrAttr("description", "x")}}, CodeNoSuchObject, nil},
		{"delete missing value", chain1DN, []Change{{ModDelete, Attr{Name: "userCertificate", Values: [][]byte{newCert}}}}, CodeNoSuchAttribute, nil},
		{"delete missing attribute", chain1DN, []Change{{ModDelete, StrAttr("description")}}, CodeNoSuchAttribute, nil},
		{"add existing value", adminDN, []Change{{ModAdd, StrAttr("objectClass", "USER")}}, CodeAttributeOrValueExists, nil},
		{"add without values", adminDN, []Change{{ModAdd, StrAttr("description")}}, CodeProtocolError, nil},
		{"remove MUST", cred1DN, []Change{{ModDelete, StrAttr("vmwSTSPrivateKey")}}, CodeObjectClassViolation, nil},
		{"remove RDN value", cred1DN, []Change{{ModReplace, StrAttr("cn", "other")}}, CodeNotAllowedOnRDN, nil},
		{"unknown attribute", cred1DN, []Change{{ModAdd, StrAttr("nosuch", "x")}}, CodeUndefinedAttributeType, nil},
		{"bad integer", raDN, []Change{{ModReplace, StrAttr("lastLocalUsnProcessed", "12a")}}, CodeInvalidAttributeSyntax, nil},
		{"second value of single-valued", cred1DN, []Change{{ModAdd, Attr{Name: "vmwSTSPrivateKey", Values: [][]byte{newCert}}}}, CodeConstraintViolation, nil},
		{"operational attribute", cred1DN, []Change{{ModReplace, StrAttr("uSNChanged", "1")}}, CodeUnwillingToPerform, nil},
		{"attribute not allowed by classes", cred1DN, []Change{{ModAdd, StrAttr("userPrincipalName", "x@y")}}, CodeObjectClassViolation, nil},
		{"unknown operation", cred1DN, []Change{{ModOp(7), StrAttr("cn", "x")}}, CodeProtocolError, nil},
		{"all or nothing", cred1DN, []Change{
			{ModReplace, Attr{Name: "vmwSTSPrivateKey", Values: [][]byte{newCert}}},
			{ModAdd, StrAttr("nosuch", "x")}}, CodeUndefinedAttributeType, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := loadFixture(t)
			before, usn := d.LDIF(), d.HighestUSN()
			err := d.Modify(tc.dn, tc.changes)
			wantCode(t, err, tc.code)
			if tc.code != 0 {
				if !bytes.Equal(d.LDIF(), before) || d.HighestUSN() != usn {
					t.Error("a failed modify changed the directory")
				}
				return
			}
			if d.HighestUSN() != usn+1 {
				t.Errorf("HighestUSN = %d, want %d", d.HighestUSN(), usn+1)
			}
			e, err := d.Get(tc.dn)
			if err != nil {
				t.Fatal(err)
			}
			if e.First("uSNChanged") != strconv.FormatInt(usn+1, 10) {
				t.Errorf("uSNChanged = %q, want %d", e.First("uSNChanged"), usn+1)
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	d := loadFixture(t)
	wantCode(t, d.Delete(tenantDN), CodeNotAllowedOnNonLeaf)
	wantCode(t, d.Delete(suffix), CodeUnwillingToPerform)
	wantCode(t, d.Delete("cn=nope,"+suffix), CodeNoSuchObject)
	wantCode(t, d.Delete("cn=,,"), CodeInvalidDNSyntax)
	usn := d.HighestUSN()
	for _, dn := range []string{chain1DN, chain2DN, chainsDN} {
		if err := d.Delete(dn); err != nil {
			t.Fatalf("delete %s: %v", dn, err)
		}
	}
	if d.HighestUSN() != usn+3 {
		t.Errorf("HighestUSN = %d, want %d", d.HighestUSN(), usn+3)
	}
	wantCode(t, d.Delete(chain1DN), CodeNoSuchObject)
	_, err := d.Get(chain1DN)
	wantCode(t, err, CodeNoSuchObject)
	got, err := d.Search(tenantDN, ScopeOne, "", nil)
	if err != nil || len(got) != 2 {
		t.Errorf("children after delete: %q, %v", dns(got), err)
	}
}

func TestUSN(t *testing.T) {
	d := New(suffix)
	if d.HighestUSN() != 1 {
		t.Fatalf("new directory HighestUSN = %d, want 1", d.HighestUSN())
	}
	steps := []struct {
		name  string
		write func() error
	}{
		{"add", func() error { return d.Add(NewEntry("cn=a,"+suffix, StrAttr("objectClass", "container"))) }},
		{"add child", func() error { return d.Add(NewEntry("cn=b,cn=a,"+suffix, StrAttr("objectClass", "container"))) }},
		{"modify", func() error { return d.Modify("cn=a,"+suffix, []Change{{ModAdd, StrAttr("description", "x")}}) }},
		{"delete", func() error { return d.Delete("cn=b,cn=a," + suffix) }},
	}
	for i, s := range steps {
		if err := s.write(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got, want := d.HighestUSN(), int64(i+2); got != want {
			t.Errorf("after %s HighestUSN = %d, want %d", s.name, got, want)
		}
	}
	e, _ := d.Get("cn=a," + suffix)
	if e.First("uSNCreated") != "2" || e.First("uSNChanged") != "4" {
		t.Errorf("uSNCreated=%q uSNChanged=%q, want 2 and 4", e.First("uSNCreated"), e.First("uSNChanged"))
	}
	if err := d.Add(NewEntry("cn=a,"+suffix, StrAttr("objectClass", "container"))); err == nil {
		t.Fatal("duplicate add succeeded")
	}
	if d.HighestUSN() != 5 {
		t.Errorf("failed write moved HighestUSN to %d", d.HighestUSN())
	}
}

func TestBind(t *testing.T) {
	d := loadFixture(t)
	tests := []struct {
		name, dn, password string
		code               int
	}{
		{"dn", adminDN, adminPass, 0},
		{"dn in other case and spacing", "CN=administrator, cn=users,DC=vsphere,DC=local", adminPass, 0},
		{"upn", "administrator@vsphere.local", adminPass, 0},
		{"upn as stored", "Administrator@VSPHERE.LOCAL", adminPass, 0},
		{"machine account upn", "vcsa1.example.com@vsphere.local", "machine-secret", 0},
		{"machine account dn", "cn=vcsa1.example.com,ou=Domain Controllers," + suffix, "machine-secret", 0},
		{"upn of another domain", "administrator@example.com", adminPass, CodeInvalidCredentials},
		{"wrong password", adminDN, "vmware1!", CodeInvalidCredentials},
		{"password prefix", adminDN, "VMware1", CodeInvalidCredentials},
		{"missing entry", "cn=nobody,cn=Users," + suffix, adminPass, CodeInvalidCredentials},
		{"missing upn", "nobody@vsphere.local", adminPass, CodeInvalidCredentials},
		{"entry without password", "cn=Users," + suffix, "x", CodeInvalidCredentials},
		{"malformed dn", "cn=", adminPass, CodeInvalidCredentials},
		{"unauthenticated", adminDN, "", CodeUnwillingToPerform},
		{"anonymous", "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Bind(tc.dn, tc.password)
			wantCode(t, err, tc.code)
			if err != nil && tc.password != "" && bytes.Contains([]byte(err.Error()), []byte(tc.password)) {
				t.Errorf("error %q reveals the password", err)
			}
		})
	}
}

func TestWriteHook(t *testing.T) {
	d := loadFixture(t)
	errInjected := errors.New("injected")
	var calls []string
	d.SetWriteHook(func(op, dn string) error {
		calls = append(calls, op+" "+dn)
		if op == "modify" {
			return errInjected
		}
		return nil
	})
	before := d.LDIF()
	err := d.Modify(cred1DN, []Change{{ModReplace, StrAttr("cn", "TenantCredential-1")}})
	if !errors.Is(err, errInjected) {
		t.Fatalf("Modify error = %v, want the hook's error", err)
	}
	if !bytes.Equal(d.LDIF(), before) {
		t.Fatal("aborted write changed the directory")
	}
	if err := d.Add(NewEntry("cn=x,"+suffix, StrAttr("objectClass", "container"))); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete("cn=x," + suffix); err != nil {
		t.Fatal(err)
	}
	want := []string{"modify " + cred1DN, "add cn=x," + suffix, "delete cn=x," + suffix}
	if !sameStrings(calls, want) {
		t.Errorf("hook calls %q, want %q", calls, want)
	}
	d.SetWriteHook(nil)
	if err := d.Modify(cred1DN, []Change{{ModReplace, StrAttr("cn", "TenantCredential-1")}}); err != nil {
		t.Fatalf("after removing the hook: %v", err)
	}
	if _, err := d.Search(suffix, ScopeSub, "", nil); err != nil || len(calls) != 3 {
		t.Errorf("searches must not call the hook (%d calls, %v)", len(calls), err)
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	d := loadFixture(t)
	dn := "cn=TenantCredential-3," + tenantDN
	err := d.Add(NewEntry(dn,
		StrAttr("objectClass", "vmwSTSTenantCredential"),
		Attr{Name: "userCertificate", Values: [][]byte{all, {0}, {}, bytes.Repeat([]byte{0xff}, 4096)}},
		Attr{Name: "vmwSTSPrivateKey", Values: [][]byte{all[1:]}},
	))
	if err != nil {
		t.Fatal(err)
	}
	check := func(e *Entry) {
		t.Helper()
		certs := e.Values("userCertificate")
		if len(certs) != 4 || !bytes.Equal(certs[0], all) || !bytes.Equal(certs[1], []byte{0}) || len(certs[2]) != 0 || len(certs[3]) != 4096 {
			t.Errorf("userCertificate values changed: %d values", len(certs))
		}
		if !bytes.Equal(e.Values("vmwSTSPrivateKey")[0], all[1:]) {
			t.Error("vmwSTSPrivateKey changed")
		}
	}
	e, err := d.Get(dn)
	if err != nil {
		t.Fatal(err)
	}
	check(e)
	var buf bytes.Buffer
	if err := WriteLDIF(&buf, []*Entry{e}); err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseLDIF(&buf)
	if err != nil || len(parsed) != 1 {
		t.Fatalf("ParseLDIF: %d entries, %v", len(parsed), err)
	}
	check(parsed[0])
	got, err := d.Search(suffix, ScopeSub, "(userCertificate="+escapeFilter(all)+")", []string{"1.1"})
	if err != nil || len(got) != 1 || got[0].DN != dn {
		t.Errorf("binary equality search = %q, %v", dns(got), err)
	}
}

func TestConcurrentUse(t *testing.T) {
	d := loadFixture(t)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				dn := fmt.Sprintf("cn=w%d-%d,%s", w, i, suffix)
				if err := d.Add(NewEntry(dn, StrAttr("objectClass", "container"))); err != nil {
					t.Error(err)
					return
				}
				if err := d.Modify(dn, []Change{{ModAdd, StrAttr("description", "x")}}); err != nil {
					t.Error(err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := d.Search(suffix, ScopeSub, "(description=x)", nil); err != nil {
					t.Error(err)
				}
				_ = d.LDIF()
			}
		}()
	}
	wg.Wait()
	got, _ := d.Search(suffix, ScopeOne, "(&(objectClass=container)(description=x)(cn=w*))", []string{"1.1"})
	if len(got) != 200 {
		t.Errorf("got %d entries, want 200", len(got))
	}
	if want := int64(1 + fixtureLen - 1 + 400); d.HighestUSN() != want {
		t.Errorf("HighestUSN = %d, want %d", d.HighestUSN(), want)
	}
}
