package ldap

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"runbook/internal/testbin"
)

// TestSTSCycleSlapd runs fixsts (KB 76719) against Debian's OpenLDAP: find
// the tenant credentials, export them, delete them and their chains, add a
// new credential from fixsts's own LDIF with file values — and proves
// every backup restores the old state exactly.
func TestSTSCycleSlapd(t *testing.T) {
	old := newSTSCred(t, "CN=old STS")
	f := startSlapd(t, append(credRecords(1, old), credRecords(3, newSTSCred(t, "CN=older STS"))...))
	ctx := t.Context()
	original := f.dump()

	find := &searchParams{Base: tenantDN, Scope: "sub",
		Filter: "(|(objectClass=vmwSTSTenantCredential)(&(objectclass=vmwSTSTenantTrustedCertificateChain)(cn=TrustedCertChain*)))"}
	found, err := runSearch(ctx, f.env, find)
	if err != nil {
		t.Fatal(err)
	}
	if found.Count != 4 {
		t.Fatalf("found %v, want 2 credentials and 2 chains", found.DNs)
	}
	for _, e := range found.Entries {
		if !sameDN(e.DN, credDN(1)) {
			continue
		}
		if want := fmt.Sprintf("<private key, %d bytes>", len(old.key)); !slices.Equal(e.Attrs["vmwSTSPrivateKey"], []string{want}) {
			t.Errorf("key output %q, want %q", e.Attrs["vmwSTSPrivateKey"], want)
		}
		if !slices.Equal(e.Attrs["userCertificate"], []string{
			base64.StdEncoding.EncodeToString(old.chain[0]), base64.StdEncoding.EncodeToString(old.chain[1]),
		}) {
			t.Error("userCertificate output is not the chain, leaf first")
		}
	}

	saved, err := runExport(ctx, f.env, &exportParams{searchParams: *find, File: "sts-backup.ldif"})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := readLDIFFile(saved.File)
	if err != nil {
		t.Fatal(err)
	}
	var got *record
	for i := range recs {
		if sameDN(recs[i].DN, credDN(1)) {
			got = &recs[i]
		}
	}
	if got == nil || !sameBytes(got.get("vmwSTSPrivateKey"), [][]byte{old.key}) || !sameBytes(got.get("userCertificate"), old.chain) {
		t.Fatal("the export does not hold credential 1 byte for byte")
	}

	// Delete them all: the exercise restores them in the end.
	del := &deleteParams{DNs: found.DNs}
	f.env = newEnvIn(t, f)
	pl := exercise(t, f, deleteStep, del)
	if len(pl.Changes) != 4 {
		t.Errorf("plan deletes %d entries, want 4", len(pl.Changes))
	}
	noSecret(t, pl, old.key)

	// The new credential, as fixsts writes it: DER files and sso-sts.ldif.
	cred := newSTSCred(t, "CN=STS")
	dir := filepath.Join(f.env.RunDir, "fixsts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"sts.der": cred.chain[0], "vmca01.der": cred.chain[1], "sts.key.der": cred.key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := fmt.Sprintf("dn: %[1]s\nchangetype: add\nobjectClass: vmwSTSTenantCredential\nobjectClass: top\ncn: TenantCredential-4\n"+
		"userCertificate:< file:sts.der\nuserCertificate:< file:vmca01.der\nvmwSTSPrivateKey:< file:sts.key.der\n\n"+
		"dn: %[2]s\nchangetype: add\nobjectClass: vmwSTSTenantTrustedCertificateChain\nobjectClass: top\ncn: TrustedCertChain-4\n"+
		"userCertificate:< file:sts.der\nuserCertificate:< file:vmca01.der\n", credDN(4), chainDN(4))
	if err := os.WriteFile(filepath.Join(dir, "sso-sts.ldif"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	add := &addParams{LDIFFile: "fixsts/sso-sts.ldif"}
	f.env = newEnvIn(t, f)
	pl = exercise(t, f, addStep, add)
	noSecret(t, pl, cred.key)

	// Now for real, one after the other, each with its own backup.
	delEnv, addEnv := newEnvIn(t, f), newEnvIn(t, f)
	delBackup, err := backupDelete(ctx, delEnv, del)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := applyDelete(ctx, delEnv, del); err != nil {
		t.Fatal(err)
	}
	addBackup, err := backupAdd(ctx, addEnv, add)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := applyAdd(ctx, addEnv, add); err != nil {
		t.Fatal(err)
	}
	now, err := runSearch(ctx, f.env, find)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(now.DNs, []string{credDN(4), chainDN(4)}, sameDN) && !slices.EqualFunc(now.DNs, []string{chainDN(4), credDN(4)}, sameDN) {
		t.Errorf("after fixsts: %v, want only credential and chain 4", now.DNs)
	}
	c := f.conn(t)
	if got := entryBytes(t, c, credDN(4)); !sameBytes(got["vmwstsprivatekey"], [][]byte{cred.key}) || !sameBytes(got["usercertificate"], cred.chain) {
		t.Error("credential 4 is not the new key and chain, byte for byte")
	}
	// Undo in reverse order.
	if err := Restore(ctx, c, addBackup[0]); err != nil {
		t.Fatal(err)
	}
	if err := Restore(ctx, c, delBackup[0]); err != nil {
		t.Fatal(err)
	}
	if got := f.dump(); got != original {
		t.Fatalf("not restored:\n%s", diffLines(original, got))
	}
}

func TestModifySlapd(t *testing.T) {
	cred := newSTSCred(t, "CN=STS")
	f := startSlapd(t, credRecords(1, cred))
	other := newSTSCred(t, "CN=new STS")
	p := &modifyParams{DN: credDN(1), Changes: []modifyChange{
		{Op: "replace", Attr: "userCertificate", Values: b64(other.chain[0], cred.chain[1])},
		{Op: "replace", Attr: "vmwSTSPrivateKey", Values: b64(other.key)},
		{Op: "add", Attr: "description", Values: []string{"rotated"}},
	}}
	pl := exercise(t, f, modifyStep, p)
	if len(pl.Changes) != 3 {
		t.Errorf("plan changes %+v", pl.Changes)
	}
	noSecret(t, pl, cred.key)
	noSecret(t, pl, other.key)
	if _, err := applyModify(t.Context(), f.env, p); err != nil {
		t.Fatal(err)
	}
	got := entryBytes(t, f.conn(t), credDN(1))
	if !sameBytes(got["usercertificate"], [][]byte{other.chain[0], cred.chain[1]}) || !sameBytes(got["vmwstsprivatekey"], [][]byte{other.key}) {
		t.Error("the entry does not hold the new values byte for byte")
	}
	// Removing a MUST attribute is refused by the server's schema.
	bad := &modifyParams{DN: credDN(1), Changes: []modifyChange{{Op: "delete", Attr: "vmwSTSPrivateKey"}}}
	if _, err := applyModify(t.Context(), f.env, bad); err == nil || !strings.Contains(err.Error(), "Object Class Violation") {
		t.Errorf("deleting a MUST attribute: %v", err)
	}
}

// TestLDIFInteropSlapd reads what OpenLDAP's ldapsearch writes (folded
// lines, base64 binary values) and checks it byte for byte against what
// go-ldap reads; the seed the fixture loaded with slapadd was written by
// writeLDIF.
func TestLDIFInteropSlapd(t *testing.T) {
	ldapsearch := testbin.Need(t, "/usr/bin/ldapsearch", "ldap-utils")
	cred := newSTSCred(t, "CN=STS")
	f := startSlapd(t, credRecords(1, cred))
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(slapdAdminPW), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ldapsearch, "-LLL", "-x", "-H", f.url, "-D", "cn=Administrator,cn=Users,"+domainDN, "-y", pw,
		"-b", domainDN, "(objectClass=*)", "*")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ldapsearch: %v\n%s", err, stderr.String())
	}
	recs, err := parseLDIF(bytes.NewReader(out), ldifOptions{})
	if err != nil {
		t.Fatalf("parse ldapsearch output: %v\n%s", err, out)
	}
	if len(recs) != 9 {
		t.Errorf("%d records, want 9", len(recs))
	}
	c := f.conn(t)
	for _, r := range recs {
		have := entryBytes(t, c, r.DN)
		if len(have) != len(r.Attrs) {
			t.Errorf("%s: %d attributes, go-ldap reads %d", r.DN, len(r.Attrs), len(have))
		}
		for _, a := range r.Attrs {
			if !sameBytes(a.Values, have[strings.ToLower(a.Name)]) {
				t.Errorf("%s %s: ldapsearch's values differ from go-ldap's", r.DN, a.Name)
			}
		}
	}
	d := &directory{c: c}
	e, err := d.get(t.Context(), credDN(1))
	if err != nil || e == nil || !sameBytes(e.get("vmwSTSPrivateKey"), [][]byte{cred.key}) {
		t.Errorf("credential read back: %v", err)
	}
}
