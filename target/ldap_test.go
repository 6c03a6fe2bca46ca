package target_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"runbook/internal/testbin"

	"github.com/go-ldap/ldap/v3"

	"runbook/lab/ldapd"
	"runbook/lab/vmdir"
	"runbook/target"
)

const ssoPassword = "VMware1!-sso"

// usersLDIF is the part of a vsphere.local directory a bind and a search need.
const usersLDIF = `dn: cn=Users,dc=vsphere,dc=local
objectClass: top
objectClass: container
cn: Users

dn: cn=Administrator,cn=Users,dc=vsphere,dc=local
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: Administrator
userPrincipalName: Administrator@VSPHERE.LOCAL
sAMAccountName: Administrator
userPassword: ` + ssoPassword + `
`

// labLDAP is a running lab LDAP server; failing makes it drop the
// connection at the next search.
type labLDAP struct {
	srv      *ldapd.Server
	failNext atomic.Bool
	binds    atomic.Int32
}

func startLabLDAP(t *testing.T, cert *testCert) *labLDAP {
	t.Helper()
	dir := vmdir.New("dc=vsphere,dc=local")
	entries, err := vmdir.ParseLDIF(strings.NewReader(usersLDIF))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := dir.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	l := &labLDAP{}
	cfg := ldapd.Config{Dir: dir, Faults: faultFunc(func(op string) error {
		switch {
		case op == "bind":
			l.binds.Add(1)
		case op == "search" && l.failNext.CompareAndSwap(true, false):
			return fmt.Errorf("injected crash: %w", ldapd.ErrDrop)
		}
		return nil
	})}
	if cert != nil {
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert.tls}}
	}
	srv, err := ldapd.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	l.srv = srv
	return l
}

type faultFunc func(op string) error

func (f faultFunc) Before(op string) error { return f(op) }

// searchAdministrator searches cn=Users for the administrator over conn.
func searchAdministrator(conn *ldap.Conn) error {
	res, err := conn.Search(ldap.NewSearchRequest("cn=Users,dc=vsphere,dc=local", ldap.ScopeSingleLevel,
		ldap.NeverDerefAliases, 0, 0, false, "(cn=Administrator)", []string{"cn"}, nil))
	if err != nil {
		return err
	}
	if len(res.Entries) != 1 || !strings.EqualFold(res.Entries[0].DN, "cn=Administrator,cn=Users,dc=vsphere,dc=local") {
		return fmt.Errorf("search found %d entries", len(res.Entries))
	}
	return nil
}

func TestLDAPLab(t *testing.T) {
	cert := expiredCert(t, "vcsa1.lab.test")
	l := startLabLDAP(t, cert)
	ldapPort, ldapsPort := splitPort(t, l.srv.LDAPAddr()), splitPort(t, l.srv.LDAPSAddr())
	pin := target.Thumbprint(cert.leaf)
	other := target.Thumbprint(expiredCert(t, "x").leaf)

	tests := []struct {
		name    string
		spec    profileSpec
		wantErr string // the error's beginning; "" = bind and search work
		wantPin bool   // the error is a *PinError
	}{
		{name: "ldaps pinned", spec: profileSpec{ports: target.Ports{LDAPS: ldapsPort}, tlsThumbprint: pin}},
		{name: "plain ldap on loopback", spec: profileSpec{ports: target.Ports{LDAP: ldapPort, LDAPS: -1}}},
		{
			name: "ldaps pin missing", spec: profileSpec{ports: target.Ports{LDAPS: ldapsPort}},
			wantErr: fmt.Sprintf("connect ldap vcsa1.lab.test (127.0.0.1:%d): node vcsa1.lab.test: no tls_thumbprint pinned; the server presents SHA-256 %s — add it to the profile if it is right", ldapsPort, pin),
			wantPin: true,
		},
		{
			name: "ldaps pin mismatch", spec: profileSpec{ports: target.Ports{LDAPS: ldapsPort}, tlsThumbprint: other},
			wantPin: true,
		},
		{
			name: "wrong password", spec: profileSpec{ports: target.Ports{LDAPS: ldapsPort}, tlsThumbprint: pin, ssoPassword: "wrong-pw-123"},
			wantErr: fmt.Sprintf(`connect ldap vcsa1.lab.test (127.0.0.1:%d): bind as cn=administrator,cn=users,dc=vsphere,dc=local: LDAP Result Code 49 "Invalid Credentials": `, ldapsPort),
		},
		{
			name: "plain ldap to a remote address", spec: profileSpec{address: "192.0.2.10", ports: target.Ports{LDAPS: -1}},
			wantErr: "connect ldap vcsa1.lab.test (192.0.2.10:389): the profile says the node serves no LDAPS (ports.ldaps: -1), and plain LDAP, which would send the SSO password in clear text, is only used to a loopback address",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.spec.ssoPassword == "" {
				tc.spec.ssoPassword = ssoPassword
			}
			_, n := open(t, newProfile(t, tc.spec), target.Options{})
			conn, err := n.LDAP(t.Context())
			if tc.wantErr == "" && !tc.wantPin {
				if err != nil {
					t.Fatal(err)
				}
				if err := searchAdministrator(conn); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("LDAP succeeded")
			}
			var pe *target.PinError
			if tc.wantPin != errors.As(err, &pe) {
				t.Errorf("error %v: PinError %v, want %v", err, !tc.wantPin, tc.wantPin)
			}
			if !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("error:\n got: %s\nwant: %s", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), tc.spec.ssoPassword) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}

	t.Run("cached and reopened", func(t *testing.T) {
		p := newProfile(t, profileSpec{ssoPassword: ssoPassword, ports: target.Ports{LDAPS: ldapsPort}, tlsThumbprint: pin})
		_, n := open(t, p, target.Options{})
		before := l.binds.Load()
		c1, err := n.LDAP(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if c2, err := n.LDAP(t.Context()); err != nil || c2 != c1 {
			t.Fatalf("second LDAP: same conn %v, %v", c2 == c1, err)
		}
		// vmdir restarts: the connection dies, and the next call binds again.
		l.failNext.Store(true)
		if err := searchAdministrator(c1); err == nil {
			t.Fatal("search on a dropped connection succeeded")
		}
		var c3 *ldap.Conn
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if c3, err = n.LDAP(t.Context()); err != nil || c3 != c1 {
				break
			}
		}
		if err != nil || c3 == c1 {
			t.Fatalf("after the drop: new conn %v, %v", c3 != c1, err)
		}
		if err := searchAdministrator(c3); err != nil {
			t.Fatal(err)
		}
		if got := l.binds.Load() - before; got != 2 {
			t.Errorf("%d binds, want 2", got)
		}
	})
}

// vmdirMinSchema is the part of the vmdir schema slapd needs for the test
// tree; core.schema is deliberately not loaded (see test-infrastructure.md).
const vmdirMinSchema = `attributetype ( 0.9.2342.19200300.100.1.25 NAME ( 'dc' 'domainComponent' ) EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.1466.344 NAME 'dcObject' SUP top AUXILIARY MUST dc )
objectclass ( 1.2.840.113556.1.5.66 NAME 'domain' SUP top ABSTRACT MUST dc )
objectclass ( 1.2.840.113556.1.5.67 NAME 'domainDNS' SUP domain STRUCTURAL )
objectclass ( 1.2.840.113556.1.3.23 NAME 'container' SUP top STRUCTURAL MUST cn )
`

// startSlapd starts Debian's slapd on loopback with plain LDAP and LDAPS
// (serving cert), whose root DN is the vsphere.local administrator, and
// returns the two ports.
func startSlapd(t *testing.T, cert *testCert, password string) (ldapPort, ldapsPort int) {
	t.Helper()
	slapd := testbin.Need(t, "/usr/sbin/slapd", "slapd")
	slapadd := testbin.Need(t, "/usr/sbin/slapadd", "slapd")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("vmdir-min.schema", vmdirMinSchema)
	conf := write("slapd.conf", fmt.Sprintf(`include %[1]s/vmdir-min.schema
pidfile %[1]s/slapd.pid
TLSCertificateFile %[2]s/cert.pem
TLSCertificateKeyFile %[2]s/key.pem
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 67108864
suffix "dc=vsphere,dc=local"
rootdn "cn=Administrator,cn=Users,dc=vsphere,dc=local"
rootpw %[3]s
directory %[1]s/db
access to dn.base="" by * read
access to * by users read by * none
`, dir, cert.dir, password))
	seed := write("seed.ldif", "dn: dc=vsphere,dc=local\nobjectClass: domainDNS\nobjectClass: dcObject\ndc: vsphere\n\n"+
		"dn: cn=Users,dc=vsphere,dc=local\nobjectClass: container\ncn: Users\n\n")
	if out, err := exec.Command(slapadd, "-q", "-f", conf, "-l", seed).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	ldapPort, ldapsPort = freePort(t), freePort(t)
	var log strings.Builder
	cmd := exec.Command(slapd, "-d", "0", "-f", conf, "-h",
		fmt.Sprintf("ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", ldapPort, ldapsPort))
	cmd.Stderr = &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("slapd exited: %v\n%s", err, log.String())
		default:
		}
		if c, err := ldap.DialURL(fmt.Sprintf("ldap://127.0.0.1:%d", ldapPort)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd did not start:\n%s", log.String())
		}
	}
	return ldapPort, ldapsPort
}

// TestLDAPSlapd binds to a real OpenLDAP server as the DN the profile's UPN
// maps to, over plain LDAP and over LDAPS with an expired certificate.
func TestLDAPSlapd(t *testing.T) {
	cert := expiredCert(t, "vcsa1.lab.test")
	ldapPort, ldapsPort := startSlapd(t, cert, ssoPassword)
	search := func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest("dc=vsphere,dc=local", ldap.ScopeWholeSubtree,
			ldap.NeverDerefAliases, 0, 0, false, "(objectClass=container)", []string{"cn"}, nil))
		if err != nil {
			return err
		}
		if len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("cn") != "Users" {
			return fmt.Errorf("search found %d entries", len(res.Entries))
		}
		return nil
	}
	tests := []struct {
		name    string
		spec    profileSpec
		wantErr string
	}{
		{name: "plain", spec: profileSpec{ports: target.Ports{LDAP: ldapPort, LDAPS: -1}}},
		{name: "ldaps expired certificate", spec: profileSpec{ports: target.Ports{LDAPS: ldapsPort}, tlsThumbprint: target.Thumbprint(cert.leaf)}},
		{name: "upper-case UPN", spec: profileSpec{ssoUser: "Administrator@VSPHERE.LOCAL", ports: target.Ports{LDAP: ldapPort, LDAPS: -1}}},
		{
			name: "wrong password", spec: profileSpec{ssoPassword: "wrong-pw-123", ports: target.Ports{LDAP: ldapPort, LDAPS: -1}},
			wantErr: fmt.Sprintf(`connect ldap vcsa1.lab.test (127.0.0.1:%d): bind as cn=administrator,cn=users,dc=vsphere,dc=local: LDAP Result Code 49 "Invalid Credentials": `, ldapPort),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.spec.ssoPassword == "" {
				tc.spec.ssoPassword = ssoPassword
			}
			_, n := open(t, newProfile(t, tc.spec), target.Options{})
			conn, err := n.LDAP(t.Context())
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error:\n got: %v\nwant: %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := search(conn); err != nil {
				t.Fatal(err)
			}
		})
	}
}
