package ldap

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"

	"runbook/engine"
)

// exercise drives a write step the way the engine does, and checks the
// contract at each stage against the directory itself (f.dump):
//
//   - Check says not applied; Plan proposes changes and changes nothing;
//     Backup changes nothing and writes one owner-only file;
//   - Apply changes the directory, and Check then says applied, with the
//     outputs Apply returned;
//   - Apply again (a resumed run) changes nothing more, and Plan is in place;
//   - Restore of the backup brings back the exact dump of before, twice.
//
// It returns the first plan.
func exercise[P, O any](t *testing.T, f *fixture, step engine.Write[P, O], p *P) engine.Plan {
	t.Helper()
	ctx, env := t.Context(), f.env
	before := f.dump()

	v, err := step.Check(ctx, env, p)
	if err != nil || v.State != engine.NotApplied {
		t.Fatalf("Check before Apply: %v %q, %v; want not applied", v.State, v.Detail, err)
	}
	pl, err := step.Plan(ctx, env, p)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if pl.InPlace || len(pl.Changes) == 0 || pl.Summary == "" {
		t.Fatalf("Plan before Apply: %+v", pl)
	}
	if f.dump() != before {
		t.Fatal("Plan changed the directory")
	}
	files, err := step.Backup(ctx, env, p)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if len(files) != 1 || filepath.Dir(files[0]) != env.BackupDir {
		t.Fatalf("Backup wrote %v, want one file in %s", files, env.BackupDir)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	if f.dump() != before {
		t.Fatal("Backup changed the directory")
	}

	out, err := step.Apply(ctx, env, p)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	after := f.dump()
	if after == before {
		t.Fatal("Apply changed nothing")
	}
	v, err = step.Check(ctx, env, p)
	if err != nil || v.State != engine.Applied {
		t.Fatalf("Check after Apply: %v %q, %v; want applied", v.State, v.Detail, err)
	}
	if !reflect.DeepEqual(v.Outputs, out) {
		t.Errorf("Check outputs %+v, Apply outputs %+v", v.Outputs, out)
	}

	if _, err := step.Apply(ctx, env, p); err != nil {
		t.Fatalf("Apply again: %v", err)
	}
	if f.dump() != after {
		t.Fatal("Apply again changed the directory")
	}
	if pl2, err := step.Plan(ctx, env, p); err != nil || !pl2.InPlace || len(pl2.Changes) != 0 {
		t.Fatalf("Plan after Apply: %+v, %v; want in place", pl2, err)
	}

	for i := range 2 {
		if err := Restore(ctx, f.conn(t), files[0]); err != nil {
			t.Fatalf("Restore #%d: %v", i+1, err)
		}
		if got := f.dump(); got != before {
			t.Fatalf("Restore #%d did not bring back the directory:\n%s", i+1, diffLines(before, got))
		}
	}
	return pl
}

// diffLines shows the lines only in a or only in b.
func diffLines(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], "…")
	}
	return strings.Join(out, "\n")
}

// noSecret fails when a plan shows key bytes, in base64 or raw.
func noSecret(t *testing.T, pl engine.Plan, key []byte) {
	t.Helper()
	enc := base64.StdEncoding.EncodeToString(key)
	for _, c := range pl.Changes {
		for _, s := range []string{c.Before, c.After} {
			if strings.Contains(s, enc[:24]) || strings.Contains(s, string(key[:24])) {
				t.Errorf("plan change %s shows the private key", c.Object)
			}
		}
	}
}

// entryBytes reads dn over conn with every attribute, byte for byte.
func entryBytes(t *testing.T, c *goldap.Conn, dn string) map[string][][]byte {
	t.Helper()
	res, err := c.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"*"}, nil))
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][][]byte{}
	for _, a := range res.Entries[0].Attributes {
		m[strings.ToLower(a.Name)] = a.ByteValues
	}
	return m
}

// sameBytes reports whether two value lists are equal byte for byte, in order.
func sameBytes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
