package ldapd

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"runbook/lab/model"
)

// faultFunc adapts a function to Faults.
type faultFunc func(op string) error

func (f faultFunc) Before(op string) error { return f(op) }

// modelFaults adapts the lab model's fault injector to a server the way
// the lab should: a model drop wraps ErrDrop, any other fault (the model's
// ErrInjectedWrite) is returned as it is.
func modelFaults(f *model.Faults) Faults {
	return faultFunc(func(op string) error {
		err := f.Before(model.ProtoLDAP, op)
		if errors.Is(err, model.ErrDropped) {
			return fmt.Errorf("%w: %w", ErrDrop, err)
		}
		return err
	})
}

// TestModelWriteFault arms the model's FailNextWrite: the next LDAP write
// (an add) gets result 80 carrying the injected fault and changes nothing,
// reads are not writes, and the same add on the same connection succeeds.
func TestModelWriteFault(t *testing.T) {
	p := newPKI(t)
	var mf model.Faults
	d := newDirectory(t, p)
	s := start(t, d, p, modelFaults(&mf))
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c := dial(t, s, p, tr)
			bindAdmin(t, c)
			dn := "cn=written-" + tr + "," + suffix
			add := ldap.NewAddRequest(dn, nil)
			add.Attribute("objectClass", []string{"container"})
			before := d.LDIF()
			mf.FailNextWrite(model.ProtoLDAP)
			if _, err := c.Search(ldap.NewSearchRequest(cred1DN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)); err != nil {
				t.Fatalf("a read is not a write: %v", err)
			}
			err := c.Add(add)
			wantCode(t, err, ldap.LDAPResultOther)
			if !strings.Contains(err.Error(), model.ErrInjectedWrite.Error()) {
				t.Errorf("diagnostic message does not carry the fault: %v", err)
			}
			if !bytes.Equal(d.LDIF(), before) {
				t.Fatal("the failed add changed the directory")
			}
			if err := c.Add(add); err != nil {
				t.Fatalf("the same add on the same connection: %v", err)
			}
			if _, err := d.Get(dn); err != nil {
				t.Errorf("the add after the failed one did not land: %v", err)
			}
		})
	}
}

// TestModelDropFault arms the model's DropNext: the next request, of any
// kind, loses its connection without an answer; a new connection works.
func TestModelDropFault(t *testing.T) {
	p := newPKI(t)
	var mf model.Faults
	d := newDirectory(t, p)
	s := start(t, d, p, modelFaults(&mf))
	c := dial(t, s, p, "ldap")
	bindAdmin(t, c)
	mf.DropNext(model.ProtoLDAP)
	r := ldap.NewAddRequest("cn=dropped,"+suffix, nil)
	r.Attribute("objectClass", []string{"container"})
	if err := c.Add(r); code(err) != -1 {
		t.Fatalf("add after DropNext = %v, want the connection dropped", err)
	}
	if _, err := d.Get("cn=dropped," + suffix); err == nil {
		t.Error("the dropped add reached the directory")
	}
	if _, err := c.Search(ldap.NewSearchRequest(cred1DN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)); code(err) != -1 {
		t.Errorf("search on the dropped connection = %v, want a network error", err)
	}
	c2 := dial(t, s, p, "ldap")
	bindAdmin(t, c2)
	if err := c2.Add(r); err != nil {
		t.Errorf("add on a new connection: %v", err)
	}
}
