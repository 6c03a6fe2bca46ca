package ldapd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"runbook/lab/vmdir"
)

func TestBind(t *testing.T) {
	p := newPKI(t)
	s := start(t, newDirectory(t, p), p, nil)
	tests := []struct {
		name, user, password string
		code                 int
	}{
		{"dn", adminDN, adminPass, 0},
		{"upn", adminUPN, adminPass, 0},
		{"upn upper case", "Administrator@VSPHERE.LOCAL", adminPass, 0},
		{"wrong password", adminDN, "vmware1!", ldap.LDAPResultInvalidCredentials},
		{"wrong domain", "administrator@example.com", adminPass, ldap.LDAPResultInvalidCredentials},
		{"unknown user", "cn=nobody,cn=Users," + suffix, adminPass, ldap.LDAPResultInvalidCredentials},
	}
	for _, tr := range transports {
		for _, tc := range tests {
			t.Run(tr+"/"+tc.name, func(t *testing.T) {
				c := dial(t, s, p, tr)
				wantCode(t, c.Bind(tc.user, tc.password), tc.code)
			})
		}
	}
}

func TestAccessBeforeBind(t *testing.T) {
	p := newPKI(t)
	d := newDirectory(t, p)
	s := start(t, d, p, nil)
	c := dial(t, s, p, "ldap")

	// The root DSE is readable anonymously.
	res, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)",
		[]string{"namingContexts", "highestCommittedUSN"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Entries[0].GetAttributeValue("namingContexts"); got != suffix {
		t.Errorf("namingContexts = %q", got)
	}
	if got := res.Entries[0].GetAttributeValue("highestCommittedUSN"); got != strconv.FormatInt(d.HighestUSN(), 10) {
		t.Errorf("highestCommittedUSN = %q, want %d", got, d.HighestUSN())
	}

	ops := map[string]func(c *ldap.Conn) error{
		"search": func(c *ldap.Conn) error {
			_, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=*)", nil, nil))
			return err
		},
		"search root one level": func(c *ldap.Conn) error {
			_, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeSingleLevel, 0, 0, 0, false, "(objectClass=*)", nil, nil))
			return err
		},
		"add": func(c *ldap.Conn) error {
			r := ldap.NewAddRequest("cn=x,"+suffix, nil)
			r.Attribute("objectClass", []string{"container"})
			return c.Add(r)
		},
		"modify": func(c *ldap.Conn) error {
			r := ldap.NewModifyRequest(tenantDN, nil)
			r.Replace("vmwSTSLogonBanner", []string{"hello"})
			return c.Modify(r)
		},
		"delete": func(c *ldap.Conn) error { return c.Del(ldap.NewDelRequest(chain1DN, nil)) },
	}
	before := d.LDIF()
	for name, op := range ops {
		t.Run(name+" anonymous", func(t *testing.T) {
			wantCode(t, op(c), ldap.LDAPResultInsufficientAccessRights)
		})
		t.Run(name+" after failed bind", func(t *testing.T) {
			c := dial(t, s, p, "ldap")
			bindAdmin(t, c)
			wantCode(t, c.Bind(adminDN, "wrong"), ldap.LDAPResultInvalidCredentials)
			wantCode(t, op(c), ldap.LDAPResultInsufficientAccessRights)
		})
	}
	if !bytes.Equal(d.LDIF(), before) {
		t.Error("refused operations changed the directory")
	}
}

func TestWrites(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			p := newPKI(t)
			d := newDirectory(t, p)
			s := start(t, d, p, nil)
			c := dial(t, s, p, tr)
			if err := c.Bind(adminUPN, adminPass); err != nil {
				t.Fatal(err)
			}
			// Values that look like BER (0x04 0x01 …) exercise the gldap
			// modify work-around; the 256-byte value holds every byte.
			tricky := []byte{0x04, 0x01, 'C'}
			every := make([]byte, 256)
			for i := range every {
				every[i] = byte(i)
			}
			cred2 := "cn=TenantCredential-2," + tenantDN

			add := ldap.NewAddRequest(cred2, nil)
			add.Attribute("objectClass", []string{"vmwSTSTenantCredential", "top"})
			add.Attribute("cn", []string{"TenantCredential-2"})
			add.Attribute("userCertificate", []string{string(p.signDER), string(p.caDER)})
			add.Attribute("vmwSTSPrivateKey", []string{string(p.signKey)})
			if err := c.Add(add); err != nil {
				t.Fatal(err)
			}
			checkValues(t, d, cred2, "userCertificate", p.signDER, p.caDER)
			checkValues(t, d, cred2, "vmwSTSPrivateKey", p.signKey)
			checkRead(t, c, cred2, "userCertificate", p.signDER, p.caDER)

			mod := ldap.NewModifyRequest(cred2, nil)
			mod.Replace("vmwSTSPrivateKey", []string{string(every)})
			mod.Add("userCertificate", []string{string(tricky), string(p.leafDER)})
			mod.Delete("userCertificate", []string{string(p.caDER)})
			if err := c.Modify(mod); err != nil {
				t.Fatal(err)
			}
			checkValues(t, d, cred2, "vmwSTSPrivateKey", every)
			checkValues(t, d, cred2, "userCertificate", p.signDER, tricky, p.leafDER)
			checkRead(t, c, cred2, "vmwSTSPrivateKey", every)

			mod = ldap.NewModifyRequest(cred2, nil)
			mod.Replace("userCertificate", []string{string(tricky)})
			if err := c.Modify(mod); err != nil {
				t.Fatal(err)
			}
			checkValues(t, d, cred2, "userCertificate", tricky)

			mod = ldap.NewModifyRequest(tenantDN, nil)
			mod.Add("vmwSTSLogonBanner", []string{"x"})
			mod.Delete("vmwSTSLogonBanner", nil) // no values: the whole attribute
			if err := c.Modify(mod); err != nil {
				t.Fatal(err)
			}
			if e, _ := d.Get(tenantDN); e.Values("vmwSTSLogonBanner") != nil {
				t.Error("vmwSTSLogonBanner not deleted")
			}

			if err := c.Del(ldap.NewDelRequest(cred2, nil)); err != nil {
				t.Fatal(err)
			}
			_, err := d.Get(cred2)
			if vmdir.Code(err) != vmdir.CodeNoSuchObject {
				t.Errorf("after delete Get = %v", err)
			}
		})
	}
}

// checkValues asserts the directory holds exactly want for attr of dn.
func checkValues(t *testing.T, d *vmdir.Directory, dn, attr string, want ...[]byte) {
	t.Helper()
	e, err := d.Get(dn)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Values(attr); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("%s of %s: got %d values %x, want %d values %x", attr, dn, len(got), got, len(want), want)
	}
}

// checkRead asserts an LDAP read of attr of dn returns exactly want.
func checkRead(t *testing.T, c *ldap.Conn, dn, attr string, want ...[]byte) {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{attr}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Entries[0].GetRawAttributeValues(attr); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("read %s of %s: got %d values, want %d", attr, dn, len(got), len(want))
	}
}

func TestWriteErrors(t *testing.T) {
	p := newPKI(t)
	d := newDirectory(t, p)
	s := start(t, d, p, nil)
	c := dial(t, s, p, "ldap")
	bindAdmin(t, c)
	addReq := func(dn string, attrs ...[2]string) *ldap.AddRequest {
		r := ldap.NewAddRequest(dn, nil)
		for _, a := range attrs {
			r.Attribute(a[0], []string{a[1]})
		}
		return r
	}
	modReq := func(dn string, f func(r *ldap.ModifyRequest)) *ldap.ModifyRequest {
		r := ldap.NewModifyRequest(dn, nil)
		f(r)
		return r
	}
	tests := []struct {
		name string
		op   func() error
		code int
	}{
		{"add missing MUST", func() error {
			return c.Add(addReq("cn=TenantCredential-9,"+tenantDN, [2]string{"objectClass", "vmwSTSTenantCredential"}))
		}, ldap.LDAPResultObjectClassViolation},
		{"add existing", func() error {
			return c.Add(addReq("CN=users,"+suffix, [2]string{"objectClass", "container"}))
		}, ldap.LDAPResultEntryAlreadyExists},
		{"add without parent", func() error {
			return c.Add(addReq("cn=x,cn=nope,"+suffix, [2]string{"objectClass", "container"}))
		}, ldap.LDAPResultNoSuchObject},
		{"add unknown attribute", func() error {
			return c.Add(addReq("cn=x,"+suffix, [2]string{"objectClass", "container"}, [2]string{"colour", "blue"}))
		}, ldap.LDAPResultUndefinedAttributeType},
		{"add bad DN", func() error {
			return c.Add(addReq("cn=x,,"+suffix, [2]string{"objectClass", "container"}))
		}, ldap.LDAPResultInvalidDNSyntax},
		{"modify bad integer", func() error {
			return c.Modify(modReq(tenantDN, func(r *ldap.ModifyRequest) { r.Replace("vmwSTSClockTolerance", []string{"soon"}) }))
		}, ldap.LDAPResultInvalidAttributeSyntax},
		{"modify second private key", func() error {
			return c.Modify(modReq(cred1DN, func(r *ldap.ModifyRequest) { r.Add("vmwSTSPrivateKey", []string{"k2"}) }))
		}, ldap.LDAPResultConstraintViolation},
		{"modify missing entry", func() error {
			return c.Modify(modReq("cn=nope,"+suffix, func(r *ldap.ModifyRequest) { r.Replace("description", []string{"x"}) }))
		}, ldap.LDAPResultNoSuchObject},
		{"modify delete missing value", func() error {
			return c.Modify(modReq(chain1DN, func(r *ldap.ModifyRequest) { r.Delete("userCertificate", []string{"nope"}) }))
		}, ldap.LDAPResultNoSuchAttribute},
		{"modify increment", func() error {
			return c.Modify(modReq(tenantDN, func(r *ldap.ModifyRequest) { r.Increment("vmwSTSClockTolerance", "1") }))
		}, ldap.LDAPResultUnwillingToPerform},
		{"delete non-leaf", func() error { return c.Del(ldap.NewDelRequest(tenantDN, nil)) }, ldap.LDAPResultNotAllowedOnNonLeaf},
		{"delete missing", func() error { return c.Del(ldap.NewDelRequest("cn=nope,"+suffix, nil)) }, ldap.LDAPResultNoSuchObject},
		{"modify DN", func() error {
			return c.ModifyDN(ldap.NewModifyDNRequest(chain1DN, "cn=TrustedCertChain-9", true, ""))
		}, ldap.LDAPResultUnwillingToPerform},
		{"compare", func() error {
			_, err := c.Compare(chain1DN, "cn", "TrustedCertChain-1")
			return err
		}, ldap.LDAPResultUnwillingToPerform},
		{"unknown extended operation", func() error {
			_, err := c.Extended(ldap.NewExtendedRequest("1.3.6.1.4.1.4203.1.11.3", nil))
			return err
		}, ldap.LDAPResultProtocolError},
	}
	before := d.LDIF()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.op(), tc.code)
		})
	}
	if !bytes.Equal(d.LDIF(), before) {
		t.Error("failed writes changed the directory")
	}
	// The connection survives every refusal.
	if _, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)); err != nil {
		t.Errorf("connection unusable after errors: %v", err)
	}
}

func TestSearch(t *testing.T) {
	p := newPKI(t)
	d := newDirectory(t, p)
	for i := 2; i <= 5; i++ {
		if err := d.Add(vmdir.NewEntry(fmt.Sprintf("cn=TrustedCertChain-%d,%s", i, chainsDN),
			vmdir.StrAttr("objectClass", "vmwSTSTenantTrustedCertificateChain"),
			vmdir.Attr{Name: "userCertificate", Values: [][]byte{p.leafDER}})); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, d, p, nil)
	c := dial(t, s, p, "ldaps")
	bindAdmin(t, c)
	search := func(base string, scope int, filter string, sizeLimit int, attrs ...string) (*ldap.SearchResult, error) {
		return c.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, sizeLimit, 0, false, filter, attrs, nil))
	}
	dnsOf := func(r *ldap.SearchResult) []string {
		var out []string
		for _, e := range r.Entries {
			out = append(out, e.DN)
		}
		return out
	}
	chains := func(ns ...int) []string {
		var out []string
		for _, n := range ns {
			out = append(out, fmt.Sprintf("cn=TrustedCertChain-%d,%s", n, chainsDN))
		}
		return out
	}
	tests := []struct {
		name      string
		base      string
		scope     int
		filter    string
		sizeLimit int
		want      []string
		code      int
	}{
		{"vmware tenant query", tenantDN, ldap.ScopeWholeSubtree,
			"(|(objectClass=vmwSTSTenantCredential)(&(objectclass=vmwSTSTenantTrustedCertificateChain)(cn=TrustedCertChain*)))", 0,
			append([]string{cred1DN}, chains(1, 2, 3, 4, 5)...), 0},
		{"binary equality", suffix, ldap.ScopeWholeSubtree, "(userCertificate=" + ldap.EscapeFilter(string(p.signDER)) + ")", 0,
			[]string{cred1DN, chain1DN}, 0},
		{"one level", chainsDN, ldap.ScopeSingleLevel, "(objectClass=*)", 0, chains(1, 2, 3, 4, 5), 0},
		{"base", cred1DN, ldap.ScopeBaseObject, "(objectClass=*)", 0, []string{cred1DN}, 0},
		{"missing base", "cn=nope," + suffix, ldap.ScopeBaseObject, "(objectClass=*)", 0, nil, ldap.LDAPResultNoSuchObject},
		{"size limit", chainsDN, ldap.ScopeSingleLevel, "(objectClass=*)", 2, chains(1, 2), ldap.LDAPResultSizeLimitExceeded},
		{"size limit not reached", chainsDN, ldap.ScopeSingleLevel, "(objectClass=*)", 5, chains(1, 2, 3, 4, 5), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := search(tc.base, tc.scope, tc.filter, tc.sizeLimit, "cn")
			wantCode(t, err, tc.code)
			if res != nil && !slices.Equal(dnsOf(res), tc.want) {
				t.Errorf("got %q, want %q", dnsOf(res), tc.want)
			}
		})
	}

	t.Run("attributes", func(t *testing.T) {
		res, err := search(cred1DN, ldap.ScopeBaseObject, "(objectClass=*)", 0, "*", "+")
		if err != nil {
			t.Fatal(err)
		}
		e := res.Entries[0]
		var names []string
		for _, a := range e.Attributes {
			names = append(names, a.Name)
		}
		if want := []string{"objectClass", "userCertificate", "vmwSTSPrivateKey", "cn", "uSNCreated", "uSNChanged"}; !slices.Equal(names, want) {
			t.Errorf("attributes %q, want %q", names, want)
		}
		if got := e.GetRawAttributeValues("userCertificate"); len(got) != 2 || !bytes.Equal(got[0], p.signDER) || !bytes.Equal(got[1], p.caDER) {
			t.Error("userCertificate values differ")
		}
	})

	t.Run("types only", func(t *testing.T) {
		res, err := c.Search(ldap.NewSearchRequest(cred1DN, ldap.ScopeBaseObject, 0, 0, 0, true, "(objectClass=*)", nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res.Entries[0].Attributes {
			if len(a.Values) != 0 {
				t.Errorf("%s has values in a types-only search", a.Name)
			}
		}
	})

	t.Run("paged", func(t *testing.T) {
		req := ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil)
		res, err := c.SearchWithPaging(req, 3)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := d.Search(suffix, vmdir.ScopeSub, "", []string{"1.1"})
		var want []string
		for _, e := range all {
			want = append(want, e.DN)
		}
		if !slices.Equal(dnsOf(res), want) {
			t.Errorf("paged search got %d entries, want %d", len(res.Entries), len(want))
		}
	})

	t.Run("paged one page at a time", func(t *testing.T) {
		paging := ldap.NewControlPaging(2)
		req := ldap.NewSearchRequest(chainsDN, ldap.ScopeSingleLevel, 0, 0, 0, false, "(objectClass=*)", []string{"1.1"}, []ldap.Control{paging})
		var pages [][]string
		for {
			res, err := c.Search(req)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, dnsOf(res))
			ctl, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
			if !ok {
				t.Fatal("no paging control in the reply")
			}
			if len(ctl.Cookie) == 0 {
				break
			}
			paging.SetCookie(ctl.Cookie)
		}
		want := [][]string{chains(1, 2), chains(3, 4), chains(5)}
		if !slices.EqualFunc(pages, want, slices.Equal) {
			t.Errorf("pages %q, want %q", pages, want)
		}
		paging.SetCookie([]byte("bogus"))
		_, err := c.Search(req)
		wantCode(t, err, ldap.LDAPResultUnwillingToPerform)
	})
}

func TestStartTLS(t *testing.T) {
	p := newPKI(t)
	s := start(t, newDirectory(t, p), p, nil)
	c := dial(t, s, p, "ldap")
	if err := c.StartTLS(p.clientTLS()); err != nil {
		t.Fatal(err)
	}
	bindAdmin(t, c)
	if _, err := c.Search(ldap.NewSearchRequest(cred1DN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(p.clientTLS()); err == nil {
		t.Error("a second StartTLS succeeded")
	}

	// Without TLS configured, StartTLS is refused. (go-ldap stops reading a
	// connection whose StartTLS failed, so a second one checks the server.)
	plain, err := Start(context.Background(), Config{Dir: newDirectory(t, p)})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if plain.LDAPSAddr() != "" {
		t.Errorf("LDAPSAddr = %q without TLS", plain.LDAPSAddr())
	}
	c2, err := ldap.DialURL("ldap://" + plain.LDAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	wantCode(t, c2.StartTLS(p.clientTLS()), ldap.LDAPResultProtocolError)
	c3, err := ldap.DialURL("ldap://" + plain.LDAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	bindAdmin(t, c3)
}

// faults drops connections on the named operation (an error wrapping
// ErrDrop), fails the next request named by fail with an error that is not
// a drop, and delays every request.
type faults struct {
	drop  atomic.Value // string
	fail  atomic.Value // string, cleared once used
	delay atomic.Int64 // nanoseconds before every request
	seen  atomic.Int64
}

func (f *faults) Before(op string) error {
	f.seen.Add(1)
	time.Sleep(time.Duration(f.delay.Load()))
	if d, _ := f.drop.Load().(string); d == op {
		return fmt.Errorf("injected %s: %w", op, ErrDrop)
	}
	if f.fail.CompareAndSwap(op, "") {
		return errors.New("injected " + op + " failure")
	}
	return nil
}

func TestFaults(t *testing.T) {
	p := newPKI(t)
	f := &faults{}
	f.drop.Store("")
	f.fail.Store("")
	d := newDirectory(t, p)
	s := start(t, d, p, f)
	c := dial(t, s, p, "ldap")
	bindAdmin(t, c)

	f.drop.Store("add")
	r := ldap.NewAddRequest("cn=x,"+suffix, nil)
	r.Attribute("objectClass", []string{"container"})
	if err := c.Add(r); code(err) != -1 {
		t.Fatalf("add with a dropped connection: %v, want a network error", err)
	}
	if _, err := d.Get("cn=x," + suffix); vmdir.Code(err) != vmdir.CodeNoSuchObject {
		t.Error("the dropped add reached the directory")
	}

	f.drop.Store("connect")
	if c, err := ldap.DialURL("ldap://" + s.LDAPAddr()); err == nil {
		err = c.Bind(adminDN, adminPass)
		c.Close()
		if code(err) != -1 {
			t.Errorf("bind on a refused connection: %v", err)
		}
	}

	f.drop.Store("")
	f.delay.Store(int64(20 * time.Millisecond))
	c = dial(t, s, p, "ldap")
	c.SetTimeout(5 * time.Millisecond)
	if err := c.Bind(adminDN, adminPass); err == nil {
		t.Error("bind beat a 20ms server delay with a 5ms client timeout")
	}
	f.delay.Store(0)
	c = dial(t, s, p, "ldaps")
	bindAdmin(t, c)
	if f.seen.Load() == 0 {
		t.Error("faults were never consulted")
	}
}

func TestClose(t *testing.T) {
	p := newPKI(t)
	d := newDirectory(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Config{Dir: d, TLS: p.server})
	if err != nil {
		t.Fatal(err)
	}
	// Open connections, one bound and idle, must not keep the server up.
	c := dial(t, s, p, "ldap")
	bindAdmin(t, c)
	_ = dial(t, s, p, "ldaps")
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.LDAPAddr(), time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still accepting after its context ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)); err == nil {
		t.Error("an open connection still works after the server stopped")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := Start(context.Background(), Config{}); err == nil {
		t.Error("Start without a directory succeeded")
	}
}

// TestFiltersOverTheWire checks that filters decoded by gldap and
// re-encoded as strings select what the directory selects in-process.
func TestFiltersOverTheWire(t *testing.T) {
	p := newPKI(t)
	d := newDirectory(t, p)
	s := start(t, d, p, nil)
	c := dial(t, s, p, "ldap")
	bindAdmin(t, c)
	filters := []string{
		vmwareTenantFilter,
		"(cn=*Cred*-1)", "(cn=trusted*)", "(!(objectClass=container))", "(cn~=users)", "(cn>=T)", "(cn<=T)",
		"(cn:=Users)", "(cn:caseExactMatch:=Users)", "(uSNCreated>=3)", "(vmwSTSPrivateKey=*)",
		"(userCertificate=" + ldap.EscapeFilter(string(p.caDER)) + ")", `(cn=a\2ab)`, "(&)", "(|)",
		"(&(objectClass=user)(userPrincipalName=ADMINISTRATOR@vsphere.local))",
	}
	for _, f := range filters {
		t.Run(f, func(t *testing.T) {
			want, err := d.Search(suffix, vmdir.ScopeSub, f, []string{"1.1"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, f, []string{"1.1"}, nil))
			if err != nil {
				t.Fatal(err)
			}
			var got, wantDNs []string
			for _, e := range res.Entries {
				got = append(got, e.DN)
			}
			for _, e := range want {
				wantDNs = append(wantDNs, e.DN)
			}
			if !slices.Equal(got, wantDNs) {
				t.Errorf("over LDAP %q, in process %q", got, wantDNs)
			}
		})
	}
}

func TestConcurrentClients(t *testing.T) {
	p := newPKI(t)
	d := newDirectory(t, p)
	s := start(t, d, p, nil)
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		go func() {
			errs <- func() error {
				c, err := ldap.DialURL("ldap://" + s.LDAPAddr())
				if err != nil {
					return err
				}
				defer c.Close()
				if err := c.Bind(adminUPN, adminPass); err != nil {
					return err
				}
				for i := 0; i < 20; i++ {
					dn := fmt.Sprintf("cn=w%d-%d,%s", w, i, chainsDN)
					r := ldap.NewAddRequest(dn, nil)
					r.Attribute("objectClass", []string{"vmwSTSTenantTrustedCertificateChain"})
					r.Attribute("userCertificate", []string{string(p.signDER)})
					if err := c.Add(r); err != nil {
						return err
					}
					if _, err := c.Search(ldap.NewSearchRequest(chainsDN, ldap.ScopeSingleLevel, 0, 0, 0, false, "(objectClass=*)", nil, nil)); err != nil {
						return err
					}
					if err := c.Del(ldap.NewDelRequest(dn, nil)); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	for w := 0; w < 8; w++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got, _ := d.Search(chainsDN, vmdir.ScopeOne, "", nil); len(got) != 1 {
		t.Errorf("%d chains left, want 1", len(got))
	}
}

// TestFaultResult fails one request of each kind with an error that is not
// a drop: the client gets result 80 with the error as diagnostic message,
// nothing is performed, and the same request succeeds next on the same
// connection.
func TestFaultResult(t *testing.T) {
	p := newPKI(t)
	f := &faults{}
	f.drop.Store("")
	f.fail.Store("")
	d := newDirectory(t, p)
	s := start(t, d, p, f)
	for _, tr := range transports {
		c := dial(t, s, p, tr)
		bindAdmin(t, c)
		dn := "cn=fault-" + tr + "," + suffix
		tests := []struct {
			op string
			do func() error
			// want is the result of the request when no fault is armed.
			want int
		}{
			{"bind", func() error { return c.Bind(adminDN, adminPass) }, 0},
			{"search", func() error {
				_, err := c.Search(ldap.NewSearchRequest(cred1DN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil))
				return err
			}, 0},
			{"add", func() error {
				r := ldap.NewAddRequest(dn, nil)
				r.Attribute("objectClass", []string{"container"})
				return c.Add(r)
			}, 0},
			{"modify", func() error {
				r := ldap.NewModifyRequest(dn, nil)
				r.Replace("description", []string{"changed"})
				return c.Modify(r)
			}, 0},
			{"compare", func() error { _, err := c.Compare(dn, "description", "changed"); return err }, ldap.LDAPResultUnwillingToPerform},
			{"modifydn", func() error {
				return c.ModifyDN(ldap.NewModifyDNRequest(dn, "cn=renamed", true, ""))
			}, ldap.LDAPResultUnwillingToPerform},
			{"extended", func() error {
				_, err := c.Extended(ldap.NewExtendedRequest("1.3.6.1.4.1.4203.1.11.3", nil))
				return err
			}, ldap.LDAPResultProtocolError},
			{"delete", func() error { return c.Del(ldap.NewDelRequest(dn, nil)) }, 0},
		}
		for _, tt := range tests {
			t.Run(tr+"/"+tt.op, func(t *testing.T) {
				before, usn := d.LDIF(), d.HighestUSN()
				f.fail.Store(tt.op)
				err := tt.do()
				wantCode(t, err, ldap.LDAPResultOther)
				if !strings.Contains(err.Error(), "injected "+tt.op+" failure") {
					t.Errorf("diagnostic message: %v", err)
				}
				if !bytes.Equal(d.LDIF(), before) || d.HighestUSN() != usn {
					t.Errorf("the failed %s changed the directory", tt.op)
				}
				wantCode(t, tt.do(), tt.want)
			})
		}
	}
	if f.fail.Load() != "" {
		t.Errorf("fault %q was never consulted", f.fail.Load())
	}
}

// TestFaultStartTLS fails a StartTLS request: the client gets 80 and the
// connection, still in clear, takes the next StartTLS. go-ldap cannot
// show it (after a failed StartTLS it never resumes reading), so the test
// speaks the two requests itself, then hands the TLS connection to go-ldap.
func TestFaultStartTLS(t *testing.T) {
	p := newPKI(t)
	f := &faults{}
	f.drop.Store("")
	f.fail.Store("starttls")
	s := start(t, newDirectory(t, p), p, f)
	conn, err := net.Dial("tcp", s.LDAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	startTLS := func(id int64) (int64, string) {
		t.Helper()
		msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
		msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "messageID"))
		req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagExtendedRequest, nil, "extendedReq")
		req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, startTLSOID, "requestName"))
		msg.AppendChild(req)
		if _, err := conn.Write(msg.Bytes()); err != nil {
			t.Fatal(err)
		}
		raw, err := readMessage(r)
		if err != nil {
			t.Fatalf("read the StartTLS response: %v", err)
		}
		resp, err := ber.DecodePacketErr(raw)
		if err != nil || len(resp.Children) < 2 || len(resp.Children[1].Children) < 3 {
			t.Fatalf("StartTLS response %x: %v", raw, err)
		}
		op := resp.Children[1]
		if got := resp.Children[0].Value.(int64); got != id || op.Tag != tagExtendedResp {
			t.Fatalf("response to message %d, tag %d; want %d, %d", got, op.Tag, id, tagExtendedResp)
		}
		return op.Children[0].Value.(int64), op.Children[2].Value.(string)
	}
	if code, diag := startTLS(1); code != ldap.LDAPResultOther || diag != "injected starttls failure" {
		t.Fatalf("failed StartTLS: result %d %q, want 80 with the fault", code, diag)
	}
	if code, diag := startTLS(2); code != ldap.LDAPResultSuccess {
		t.Fatalf("StartTLS after the failed one: result %d %q", code, diag)
	}
	tc := tls.Client(conn, p.clientTLS())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c := ldap.NewConn(tc, true)
	c.Start()
	defer c.Close()
	bindAdmin(t, c)
}
