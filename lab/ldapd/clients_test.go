package ldapd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"runbook/internal/testbin"

	"runbook/lab/vmdir"
)

// The tests in this file drive the OpenLDAP command-line clients from
// Debian's ldap-utils against the server, as operators and VMware's
// scripts do against vmdir. They are skipped when the clients are missing
// (CI installs them).

// tools holds what a client run needs: the server, a password file (the
// password never goes on a command line) and the CA file for LDAPS.
type tools struct {
	t      *testing.T
	s      *Server
	p      *pki
	dir    string
	pwFile string
}

func newTools(t *testing.T, s *Server, p *pki) *tools {
	t.Helper()
	for _, name := range []string{"ldapsearch", "ldapmodify", "ldapadd", "ldapdelete", "ldapmodrdn"} {
		testbin.Need(t, name, "ldap-utils")
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(adminPass), 0o600); err != nil { // no newline: -y uses the whole file
		t.Fatal(err)
	}
	return &tools{t: t, s: s, p: p, dir: dir, pwFile: pw}
}

// uri returns the server URI for a transport; "starttls" is plain LDAP
// upgraded with -ZZ.
func (x *tools) uri(transport string) string {
	if transport == "ldaps" {
		return "ldaps://" + x.s.LDAPSAddr()
	}
	return "ldap://" + x.s.LDAPAddr()
}

// run executes an ldap-utils client and returns stdout, stderr and the exit
// code (the LDAP result code on failure, as the tools report it).
func (x *tools) run(name string, args ...string) (string, string, int) {
	x.t.Helper()
	cmd := exec.Command(name, args...)
	// LDAPNOINIT would also ignore the LDAPTLS_* variables, so the user's
	// ~/.ldaprc is kept out with HOME instead; the environment overrides
	// /etc/ldap/ldap.conf.
	cmd.Env = append(os.Environ(),
		"HOME="+x.dir,
		"LDAPTLS_CACERT="+x.p.caFile,
		"LDAPTLS_REQCERT=demand",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	case err != nil:
		x.t.Fatalf("%s: %v", name, err)
	}
	return stdout.String(), stderr.String(), 0
}

// admin returns the arguments that bind as the administrator over a
// transport.
func (x *tools) admin(transport, bindName string) []string {
	args := []string{"-x", "-H", x.uri(transport), "-D", bindName, "-y", x.pwFile}
	if transport == "starttls" {
		args = append(args, "-ZZ")
	}
	return args
}

// file writes data to a file in the tool directory and returns its path.
func (x *tools) file(name string, data []byte) string {
	x.t.Helper()
	path := filepath.Join(x.dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		x.t.Fatal(err)
	}
	return path
}

// countDN counts the records of ldapsearch output.
func countDN(out string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "dn:") {
			n++
		}
	}
	return n
}

const vmwareTenantFilter = "(|(objectClass=vmwSTSTenantCredential)(&(objectclass=vmwSTSTenantTrustedCertificateChain)(cn=TrustedCertChain*)))"

func TestLdapsearch(t *testing.T) {
	p := newPKI(t)
	d := newDirectory(t, p)
	s := start(t, d, p, nil)
	x := newTools(t, s, p)

	want, err := d.Search(tenantDN, vmdir.ScopeSub, vmwareTenantFilter, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wantOut bytes.Buffer
	if err := vmdir.WriteLDIF(&wantOut, want); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{"ldap", "ldaps", "starttls"} {
		for _, bindName := range []string{adminDN, adminUPN} {
			t.Run(tr+"/"+bindName, func(t *testing.T) {
				args := append(x.admin(tr, bindName), "-LLL", "-b", tenantDN, vmwareTenantFilter)
				out, errOut, rc := x.run("ldapsearch", args...)
				if rc != 0 {
					t.Fatalf("ldapsearch exit %d: %s", rc, errOut)
				}
				got, err := vmdir.ParseLDIF(strings.NewReader(out))
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 2 || got[0].DN != cred1DN || got[1].DN != chain1DN {
					t.Fatalf("ldapsearch returned %d entries:\n%s", len(got), out)
				}
				if c := got[0].Values("userCertificate"); len(c) != 2 || !bytes.Equal(c[0], p.signDER) || !bytes.Equal(c[1], p.caDER) {
					t.Error("userCertificate bytes differ")
				}
				if k := got[0].Values("vmwSTSPrivateKey"); len(k) != 1 || !bytes.Equal(k[0], p.signKey) {
					t.Error("vmwSTSPrivateKey bytes differ")
				}
				// WriteLDIF promises ldapsearch -LLL's exact format.
				if out != wantOut.String() {
					t.Errorf("ldapsearch output differs from WriteLDIF:\n--- ldapsearch ---\n%s\n--- WriteLDIF ---\n%s", out, wantOut.String())
				}
			})
		}
	}

	t.Run("format of every entry", func(t *testing.T) {
		odd := []*vmdir.Entry{
			vmdir.NewEntry("cn=caf\u00e9,cn=Users,"+suffix, vmdir.StrAttr("objectClass", "container"),
				vmdir.StrAttr("description", " leading space", "trailing space ", ":colon", "<angle", "caf\u00e9", strings.Repeat("long ", 40))),
			vmdir.NewEntry("cn=TrustedCertChain-9,"+chainsDN, vmdir.StrAttr("objectClass", "vmwSTSTenantTrustedCertificateChain"),
				vmdir.Attr{Name: "userCertificate", Values: [][]byte{{}, {0}, []byte("printable")}}),
		}
		for _, e := range odd {
			if err := d.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		all, err := d.Search(suffix, vmdir.ScopeSub, "", []string{"*", "+"})
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := vmdir.WriteLDIF(&want, all); err != nil {
			t.Fatal(err)
		}
		out, errOut, rc := x.run("ldapsearch", append(x.admin("ldap", adminDN), "-LLL", "-b", suffix, "(objectClass=*)", "*", "+")...)
		if rc != 0 {
			t.Fatalf("exit %d: %s", rc, errOut)
		}
		if out != want.String() {
			t.Errorf("ldapsearch output differs from WriteLDIF:\n--- ldapsearch ---\n%s\n--- WriteLDIF ---\n%s", out, want.String())
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		_, errOut, rc := x.run("ldapsearch", "-x", "-H", x.uri("ldap"), "-D", adminDN, "-y", x.file("bad", []byte("nope")),
			"-b", suffix, "(objectClass=*)")
		if rc != 49 || !strings.Contains(errOut, "Invalid credentials (49)") {
			t.Errorf("exit %d, stderr %q; want 49", rc, errOut)
		}
	})
	t.Run("anonymous root DSE", func(t *testing.T) {
		out, errOut, rc := x.run("ldapsearch", "-x", "-LLL", "-H", x.uri("ldap"), "-b", "", "-s", "base", "highestCommittedUSN")
		if want := fmt.Sprintf("dn:\nhighestCommittedUSN: %d\n\n", d.HighestUSN()); rc != 0 || out != want {
			t.Errorf("exit %d, stdout %q, stderr %q; want %q", rc, out, errOut, want)
		}
	})
	t.Run("anonymous subtree", func(t *testing.T) {
		_, errOut, rc := x.run("ldapsearch", "-x", "-LLL", "-H", x.uri("ldap"), "-b", suffix, "(objectClass=*)")
		if rc != 50 {
			t.Errorf("exit %d (%s), want 50 insufficientAccessRights", rc, errOut)
		}
	})
	t.Run("paged", func(t *testing.T) {
		out, errOut, rc := x.run("ldapsearch", append(x.admin("ldap", adminDN), "-LLL", "-E", "pr=2/noprompt", "-b", suffix, "(objectClass=*)", "1.1")...)
		all, _ := d.Search(suffix, vmdir.ScopeSub, "", []string{"1.1"})
		if rc != 0 || countDN(out) != len(all) {
			t.Errorf("exit %d (%s), %d entries, want %d:\n%s", rc, errOut, countDN(out), len(all), out)
		}
	})
	t.Run("size limit", func(t *testing.T) {
		out, _, rc := x.run("ldapsearch", append(x.admin("ldap", adminDN), "-LLL", "-z", "2", "-b", suffix, "(objectClass=*)", "1.1")...)
		if rc != 4 || countDN(out) != 2 {
			t.Errorf("exit %d with %d entries, want 4 (sizeLimitExceeded) with 2", rc, countDN(out))
		}
	})
}

func TestLdapmodify(t *testing.T) {
	p := newPKI(t)
	d := newDirectory(t, p)
	s := start(t, d, p, nil)
	x := newTools(t, s, p)
	leaf := x.file("sts.der", p.leafDER)
	ca := x.file("vmca01.der", p.caDER)
	key := x.file("sts.key.der", p.signKey)

	t.Run("replace certificate and key from files", func(t *testing.T) {
		usn := d.HighestUSN()
		ldif := x.file("replace.ldif", fmt.Appendf(nil, `dn: %s
changetype: modify
replace: userCertificate
userCertificate:< file://%s
userCertificate:< file://%s
-
replace: vmwSTSPrivateKey
vmwSTSPrivateKey:< file://%s
-
`, cred1DN, leaf, ca, key))
		_, errOut, rc := x.run("ldapmodify", append(x.admin("ldaps", adminDN), "-f", ldif)...)
		if rc != 0 {
			t.Fatalf("ldapmodify exit %d: %s", rc, errOut)
		}
		checkValues(t, d, cred1DN, "userCertificate", p.leafDER, p.caDER)
		checkValues(t, d, cred1DN, "vmwSTSPrivateKey", p.signKey)
		if d.HighestUSN() != usn+1 {
			t.Errorf("HighestUSN %d, want %d", d.HighestUSN(), usn+1)
		}
	})

	t.Run("fixsts adds", func(t *testing.T) {
		ldif := x.file("sso-sts.ldif", fmt.Appendf(nil, `dn: cn=TenantCredential-2,%[1]s
changetype: add
objectClass: vmwSTSTenantCredential
objectClass: top
cn: TenantCredential-2
userCertificate:< file://%[2]s
userCertificate:< file://%[3]s
vmwSTSPrivateKey:< file://%[4]s

dn: cn=TrustedCertChain-2,cn=TrustedCertificateChains,%[1]s
changetype: add
objectClass: vmwSTSTenantTrustedCertificateChain
objectClass: top
cn: TrustedCertChain-2
userCertificate:< file://%[2]s
userCertificate:< file://%[3]s
`, tenantDN, leaf, ca, key))
		out, errOut, rc := x.run("ldapmodify", append(x.admin("ldap", adminUPN), "-f", ldif)...)
		if rc != 0 {
			t.Fatalf("ldapmodify exit %d: %s", rc, errOut)
		}
		if !strings.Contains(out, `adding new entry "cn=TenantCredential-2,`+tenantDN+`"`) {
			t.Errorf("stdout %q", out)
		}
		checkValues(t, d, "cn=TenantCredential-2,"+tenantDN, "userCertificate", p.leafDER, p.caDER)
		checkValues(t, d, "cn=TenantCredential-2,"+tenantDN, "vmwSTSPrivateKey", p.signKey)
		checkValues(t, d, "cn=TrustedCertChain-2,"+chainsDN, "userCertificate", p.leafDER, p.caDER)
	})

	t.Run("ldapadd", func(t *testing.T) {
		ldif := x.file("add.ldif", fmt.Appendf(nil, "dn: cn=TrustedCertChain-3,%s\nobjectClass: vmwSTSTenantTrustedCertificateChain\nuserCertificate:< file://%s\n", chainsDN, ca))
		if _, errOut, rc := x.run("ldapadd", append(x.admin("starttls", adminDN), "-f", ldif)...); rc != 0 {
			t.Fatalf("ldapadd exit %d: %s", rc, errOut)
		}
		checkValues(t, d, "cn=TrustedCertChain-3,"+chainsDN, "userCertificate", p.caDER)
	})

	errs := []struct {
		name, ldif string
		rc         int
	}{
		{"duplicate", "dn: " + chain1DN + "\nchangetype: add\nobjectClass: vmwSTSTenantTrustedCertificateChain\nuserCertificate: x\n", 68},
		{"missing MUST", "dn: cn=TenantCredential-9," + tenantDN + "\nchangetype: add\nobjectClass: vmwSTSTenantCredential\nuserCertificate: x\n", 65},
		{"no parent", "dn: cn=x,cn=nope," + suffix + "\nchangetype: add\nobjectClass: container\n", 32},
		{"unknown attribute", "dn: " + tenantDN + "\nchangetype: modify\nadd: colour\ncolour: blue\n-\n", 17},
		{"bad integer", "dn: " + tenantDN + "\nchangetype: modify\nreplace: vmwSTSClockTolerance\nvmwSTSClockTolerance: later\n-\n", 21},
		{"second key", "dn: " + cred1DN + "\nchangetype: modify\nadd: vmwSTSPrivateKey\nvmwSTSPrivateKey: k2\n-\n", 19},
		{"modrdn", "dn: " + chain1DN + "\nchangetype: modrdn\nnewrdn: cn=TrustedCertChain-9\ndeleteoldrdn: 1\n", 53},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			before := d.LDIF()
			_, errOut, rc := x.run("ldapmodify", append(x.admin("ldap", adminDN), "-f", x.file("bad.ldif", []byte(tc.ldif)))...)
			if rc != tc.rc {
				t.Errorf("exit %d (%s), want %d", rc, strings.TrimSpace(errOut), tc.rc)
			}
			if !bytes.Equal(d.LDIF(), before) {
				t.Error("a refused change altered the directory")
			}
		})
	}
}

func TestLdapdelete(t *testing.T) {
	p := newPKI(t)
	d := newDirectory(t, p)
	s := start(t, d, p, nil)
	x := newTools(t, s, p)
	tests := []struct {
		name, dn string
		rc       int
	}{
		{"non-leaf", tenantDN, 66},
		{"leaf", chain1DN, 0},
		{"again", chain1DN, 32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, rc := x.run("ldapdelete", append(x.admin("ldaps", adminDN), tc.dn)...)
			if rc != tc.rc {
				t.Fatalf("exit %d (%s), want %d", rc, strings.TrimSpace(errOut), tc.rc)
			}
		})
	}
	_, err := d.Get(chain1DN)
	if vmdir.Code(err) != vmdir.CodeNoSuchObject {
		t.Errorf("Get after ldapdelete: %v", err)
	}
	if _, err := d.Get(tenantDN); err != nil {
		t.Errorf("non-leaf entry gone: %v", err)
	}

	_, _, rc := x.run("ldapmodrdn", append(x.admin("ldap", adminDN), cred1DN, "cn=TenantCredential-7")...)
	if rc != 53 {
		t.Errorf("ldapmodrdn exit %d, want 53 unwillingToPerform", rc)
	}
	got, _ := d.Search(tenantDN, vmdir.ScopeOne, "(objectClass=vmwSTSTenantCredential)", []string{"cn"})
	if names := slices.Collect(func(yield func(string) bool) {
		for _, e := range got {
			if !yield(e.First("cn")) {
				return
			}
		}
	}); !slices.Equal(names, []string{"TenantCredential-1"}) {
		t.Errorf("credentials after modrdn: %q", names)
	}
}
