package ldapd

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func BenchmarkSearch(b *testing.B) {
	p := newPKI(b)
	s := start(b, newDirectory(b, p), p, nil)
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			c := dial(b, s, p, tr)
			bindAdmin(b, c)
			req := ldap.NewSearchRequest(tenantDN, ldap.ScopeWholeSubtree, 0, 0, 0, false, vmwareTenantFilter, nil, nil)
			for b.Loop() {
				res, err := c.Search(req)
				if err != nil || len(res.Entries) != 2 {
					b.Fatalf("%d entries, %v", len(res.Entries), err)
				}
			}
		})
	}
}

func BenchmarkBindSearchDial(b *testing.B) {
	p := newPKI(b)
	s := start(b, newDirectory(b, p), p, nil)
	for b.Loop() {
		c, err := ldap.DialURL("ldap://" + s.LDAPAddr())
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Bind(adminDN, adminPass); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Search(ldap.NewSearchRequest(cred1DN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
