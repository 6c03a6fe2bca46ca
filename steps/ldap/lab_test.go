package ldap

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"

	"runbook/engine"
)

func TestSearchLab(t *testing.T) {
	f, dom := startLab(t)
	sts, err := dom.ActiveSTS()
	if err != nil {
		t.Fatal(err)
	}
	before := f.dump()
	out, err := runSearch(t.Context(), f.env, &searchParams{
		Base: dom.TenantDN(), Scope: "sub", Filter: "(objectClass=vmwSTSTenantCredential)",
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Count != 1 || len(out.Entries) != 1 || !slices.Equal(out.DNs, []string{sts.DN}) {
		t.Fatalf("found %d: %v, want %s", out.Count, out.DNs, sts.DN)
	}
	e := out.Entries[0]
	if got := e.Attrs["vmwSTSPrivateKey"]; !slices.Equal(got, []string{fmt.Sprintf("<private key, %d bytes>", len(sts.Key))}) {
		t.Errorf("vmwSTSPrivateKey output %q", got)
	}
	var certs []string
	for _, c := range sts.Certs {
		certs = append(certs, base64.StdEncoding.EncodeToString(c.Raw))
	}
	if !slices.Equal(e.Attrs["userCertificate"], certs) {
		t.Errorf("userCertificate output is not the chain's DER, leaf first")
	}
	if !slices.Equal(e.Binary, []string{"userCertificate"}) {
		t.Errorf("binary %v, want [userCertificate]", e.Binary)
	}
	if f.dump() != before {
		t.Error("search changed the directory")
	}

	tests := []struct {
		name    string
		p       searchParams
		count   int
		check   func(t *testing.T, out searchOutputs)
		wantErr string
	}{
		{
			name: "attributes keep the asked spelling", count: 1,
			p: searchParams{Base: sts.DN, Scope: "base", Filter: "(objectClass=*)", Attributes: []string{"CN", "usercertificate"}},
			check: func(t *testing.T, out searchOutputs) {
				a := out.Entries[0].Attrs
				if len(a) != 2 || !slices.Equal(a["CN"], []string{"TenantCredential-1"}) || len(a["usercertificate"]) != len(sts.Certs) {
					t.Errorf("attrs %v", a)
				}
			},
		},
		{
			name: "one level", count: 2,
			p: searchParams{Base: dom.TenantDN(), Scope: "one", Filter: "(|(cn=TenantCredential-*)(cn=TrustedCertificateChains))"},
		},
		{
			name: "vmware's own filter", count: 2,
			p: searchParams{Base: dom.TenantDN(), Scope: "sub",
				Filter: "(|(objectClass=vmwSTSTenantCredential)(&(objectclass=vmwSTSTenantTrustedCertificateChain)(cn=TrustedCertChain*)))"},
		},
		{
			name: "second node", count: 1,
			p: searchParams{Node: dom.Nodes[1].PNID, Base: sts.DN, Scope: "base", Filter: "(objectClass=*)"},
		},
		{
			name: "nothing found", count: 0,
			p: searchParams{Base: dom.TenantDN(), Scope: "sub", Filter: "(cn=nope)"},
			check: func(t *testing.T, out searchOutputs) {
				if out.Entries == nil || out.DNs == nil {
					t.Error("empty results are nil lists, which expressions see as null")
				}
			},
		},
		{
			name: "root DSE", count: 1,
			p: searchParams{Base: "", Scope: "base", Filter: "(objectClass=*)", Attributes: []string{"+"}},
			check: func(t *testing.T, out searchOutputs) {
				if usn := out.Entries[0].Attrs["highestCommittedUSN"]; len(usn) != 1 || usn[0] == "" {
					t.Errorf("root DSE attrs %v", out.Entries[0].Attrs)
				}
			},
		},
		{name: "missing base", p: searchParams{Base: "cn=nope," + dom.TenantDN(), Scope: "sub", Filter: "(objectClass=*)"}, wantErr: "search cn=nope,"},
		{name: "bad filter", p: searchParams{Base: sts.DN, Scope: "sub", Filter: "(cn=x"}, wantErr: `filter "(cn=x": `},
		{name: "bad base", p: searchParams{Base: "not a dn", Scope: "sub", Filter: "(cn=x)"}, wantErr: `base: DN "not a dn": `},
		{name: "unknown node", p: searchParams{Node: "nope.lab.test", Base: sts.DN, Scope: "sub", Filter: "(cn=x)"}, wantErr: `find node "nope.lab.test"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runSearch(t.Context(), f.env, &tc.p)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.Count != tc.count || len(out.Entries) != tc.count || len(out.DNs) != tc.count {
				t.Fatalf("count %d (%v), want %d", out.Count, out.DNs, tc.count)
			}
			if tc.check != nil {
				tc.check(t, out)
			}
		})
	}

	t.Run("no target", func(t *testing.T) {
		_, err := runSearch(t.Context(), newEnv(t, nil), &searchParams{Base: sts.DN, Scope: "sub", Filter: "(cn=x)"})
		if err == nil || !strings.Contains(err.Error(), "needs a target") {
			t.Errorf("error %v", err)
		}
	})
}

func TestExportLab(t *testing.T) {
	f, dom := startLab(t)
	sts, err := dom.ActiveSTS()
	if err != nil {
		t.Fatal(err)
	}
	before := f.dump()
	p := &exportParams{searchParams: searchParams{
		Base: dom.TenantDN(), Scope: "sub",
		Filter: "(|(objectClass=vmwSTSTenantCredential)(objectClass=vmwSTSTenantTrustedCertificateChain))",
	}}
	out, err := runExport(t.Context(), f.env, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(f.env.RunDir, "step.ldif"); out.File != want || out.Count != 2 {
		t.Fatalf("outputs %+v, want file %s and 2 entries", out, want)
	}
	fi, err := os.Stat(out.File)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file %v, %v; want mode 0600", fi, err)
	}
	recs, err := readLDIFFile(out.File)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || !sameDN(recs[0].DN, sts.DN) && !sameDN(recs[1].DN, sts.DN) {
		t.Fatalf("exported %d records", len(recs))
	}
	// Every exported value is the directory's, byte for byte, key included.
	for _, r := range recs {
		got := entryBytes(t, f.conn(t), r.DN)
		for _, a := range r.Attrs {
			if !sameBytes(a.Values, got[strings.ToLower(a.Name)]) {
				t.Errorf("%s %s: exported values differ from the directory's", r.DN, a.Name)
			}
		}
	}
	var cred *record
	for i := range recs {
		if sameDN(recs[i].DN, sts.DN) {
			cred = &recs[i]
		}
	}
	if cred == nil || !sameBytes(cred.get("vmwSTSPrivateKey"), [][]byte{sts.Key}) {
		t.Error("the export does not hold the private key byte for byte")
	}
	if f.dump() != before {
		t.Error("export changed the directory")
	}

	p.File = "sub/dir/creds.ldif"
	if out, err := runExport(t.Context(), f.env, p); err != nil || out.File != filepath.Join(f.env.RunDir, "sub", "dir", "creds.ldif") {
		t.Errorf("export to a subfolder: %+v, %v", out, err)
	}
	for _, bad := range []string{"../escape.ldif", "/tmp/abs.ldif"} {
		p.File = bad
		if _, err := runExport(t.Context(), f.env, p); err == nil || !strings.Contains(err.Error(), "is not a path inside the run folder") {
			t.Errorf("file %s: error %v", bad, err)
		}
	}
}

func TestAddLab(t *testing.T) {
	f, dom := startLab(t)
	cred := newSTSCred(t, "CN=STS")
	p := &addParams{Entries: []addEntryParams{
		// The chain comes first, its parent's child after: Apply sorts them.
		{DN: chainDN(2), Attrs: map[string][]string{
			"objectClass": {"vmwSTSTenantTrustedCertificateChain"}, "cn": {"TrustedCertChain-2"},
			"userCertificate": b64(cred.chain...),
		}},
		{DN: credDN(2), Attrs: map[string][]string{
			"objectClass": {"vmwSTSTenantCredential"}, "cn": {"TenantCredential-2"},
			"userCertificate": b64(cred.chain...), "vmwSTSPrivateKey": b64(cred.key),
		}},
	}}
	pl := exercise(t, f, addStep, p)
	if len(pl.Changes) != 2 || pl.Changes[0].Action != "create" || pl.Changes[0].Object != f.pnid+" ldap "+credDN(2) {
		t.Errorf("plan changes %+v", pl.Changes)
	}
	if !strings.Contains(pl.Changes[0].After, fmt.Sprintf("vmwSTSPrivateKey: <private key, %d bytes>", len(cred.key))) ||
		!strings.Contains(pl.Changes[0].After, `userCertificate: <certificate "CN=STS", expires `) {
		t.Errorf("plan shows the new entry as\n%s", pl.Changes[0].After)
	}
	noSecret(t, pl, cred.key)

	t.Run("what apply wrote", func(t *testing.T) {
		if _, err := applyAdd(t.Context(), f.env, p); err != nil {
			t.Fatal(err)
		}
		defer restoreDelete(t, f, credDN(2), chainDN(2))
		active, err := dom.ActiveSTS()
		if err != nil {
			t.Fatal(err)
		}
		if active.N != 2 || string(active.Key) != string(cred.key) || len(active.Certs) != 2 ||
			string(active.Certs[0].Raw) != string(cred.chain[0]) || string(active.Certs[1].Raw) != string(cred.chain[1]) {
			t.Errorf("active credential %d is not the one added", active.N)
		}
	})

	t.Run("resume after half", func(t *testing.T) {
		// The interrupted run had added the credential but not the chain.
		if err := f.conn(t).Add(addRequest(credRecords(2, cred)[0].entry)); err != nil {
			t.Fatal(err)
		}
		defer restoreDelete(t, f, credDN(2), chainDN(2))
		v, err := checkAdd(t.Context(), f.env, p)
		if err != nil || v.State != engine.NotApplied || v.Detail != "1 of 2 entries missing" {
			t.Fatalf("Check: %v %q, %v", v.State, v.Detail, err)
		}
		pl, err := planAdd(t.Context(), f.env, p)
		if err != nil || len(pl.Changes) != 1 || pl.Changes[0].Object != f.pnid+" ldap "+chainDN(2) || pl.InPlace {
			t.Fatalf("Plan: %+v, %v", pl, err)
		}
		if _, err := applyAdd(t.Context(), f.env, p); err != nil {
			t.Fatal(err)
		}
		if v, err := checkAdd(t.Context(), f.env, p); err != nil || v.State != engine.Applied {
			t.Fatalf("Check after resume: %v, %v", v.State, err)
		}
	})

	t.Run("existing entry with other values", func(t *testing.T) {
		other := newSTSCred(t, "CN=other")
		if err := f.conn(t).Add(addRequest(credRecords(2, other)[0].entry)); err != nil {
			t.Fatal(err)
		}
		defer restoreDelete(t, f, credDN(2))
		before := f.dump()
		want := credDN(2) + " already exists with other userCertificate values; ldap.add never overwrites"
		if _, err := planAdd(t.Context(), f.env, p); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Plan: %v", err)
		}
		if _, err := applyAdd(t.Context(), f.env, p); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Apply: %v", err)
		}
		if v, err := checkAdd(t.Context(), f.env, p); err != nil || v.State != engine.NotApplied {
			t.Errorf("Check: %v, %v", v.State, err)
		}
		if f.dump() != before {
			t.Error("a refused add changed the directory")
		}
	})

	t.Run("ldif file with file values", func(t *testing.T) {
		dir := filepath.Join(f.env.RunDir, "sts")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"sts.der": cred.chain[0], "vmca01.der": cred.chain[1], "sts.key.der": cred.key} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// fixsts's sso-sts.ldif, as KB 76719's script writes it.
		src := fmt.Sprintf(`dn: %[1]s
changetype: add
objectClass: vmwSTSTenantCredential
objectClass: top
cn: TenantCredential-2
userCertificate:< file:sts.der
userCertificate:< file:vmca01.der
vmwSTSPrivateKey:< file:sts.key.der

dn: %[2]s
changetype: add
objectClass: vmwSTSTenantTrustedCertificateChain
objectClass: top
cn: TrustedCertChain-2
userCertificate:< file:sts.der
userCertificate:< file:vmca01.der
`, credDN(2), chainDN(2))
		if err := os.WriteFile(filepath.Join(dir, "sso-sts.ldif"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		lp := &addParams{LDIFFile: "sts/sso-sts.ldif"}
		f.env = newEnvIn(t, f)
		pl := exercise(t, f, addStep, lp)
		noSecret(t, pl, cred.key)
		// The same entries given as entries are the same entries.
		if _, err := applyAdd(t.Context(), f.env, lp); err != nil {
			t.Fatal(err)
		}
		defer restoreDelete(t, f, credDN(2), chainDN(2))
		if v, err := checkAdd(t.Context(), f.env, p); err != nil || v.State != engine.Applied {
			t.Errorf("entries params after ldif_file: %v %q, %v", v.State, v.Detail, err)
		}
	})

	t.Run("params errors", func(t *testing.T) {
		for _, tc := range []struct {
			p       addParams
			wantErr string
		}{
			{addParams{}, "no entries to add: give entries, ldif or ldif_file"},
			{addParams{LDIF: "dn: cn=x,dc=vsphere,dc=local\nchangetype: delete\n"}, "ldif: line 1: cn=x,dc=vsphere,dc=local is a delete record; ldap.add only adds entries"},
			{addParams{LDIF: "dn: cn=x\ncn:: !\n"}, "ldif: ldif line 2: cn: bad base64"},
			{addParams{Entries: []addEntryParams{{DN: "cn=x,dc=vsphere,dc=local", Attrs: map[string][]string{"cn": {}}}}}, "entries[0]: cn=x,dc=vsphere,dc=local: cn has no values"},
			{addParams{Entries: []addEntryParams{{DN: "cn=x,dc=vsphere,dc=local", Attrs: map[string][]string{"userCertificate": {"base64:%%"}}}}}, `entries[0]: cn=x,dc=vsphere,dc=local: userCertificate: value "base64:%%": bad base64`},
			{addParams{Entries: []addEntryParams{{DN: "bad", Attrs: map[string][]string{"cn": {"x"}}}}}, `entries[0]: dn: DN "bad": `},
			{addParams{Entries: []addEntryParams{{DN: "cn=x,dc=vsphere,dc=local", Attrs: map[string][]string{"cn": {"x"}}}},
				LDIF: "dn: CN=X,DC=vsphere,DC=local\ncn: x\n"}, "entry CN=X,DC=vsphere,DC=local is given twice"},
			{addParams{LDIFFile: "missing.ldif"}, "ldif_file: open ldif: open " + filepath.Join(f.env.RunDir, "missing.ldif")},
		} {
			if _, err := planAdd(t.Context(), f.env, &tc.p); err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("%+v: error %v, want %q", tc.p, err, tc.wantErr)
			}
		}
	})
}

// newEnvIn returns a new Env of the fixture's target that keeps its run
// folder (where a test put files) with a fresh backup folder.
func newEnvIn(t *testing.T, f *fixture) *engine.Env {
	t.Helper()
	env := *f.env
	env.BackupDir = t.TempDir()
	return &env
}

// addRequest turns an entry into a go-ldap add request.
func addRequest(e entry) *goldap.AddRequest {
	req := goldap.NewAddRequest(e.DN, nil)
	for _, a := range e.Attrs {
		req.Attribute(a.Name, strs(a.Values))
	}
	return req
}

// restoreDelete deletes dns (those that exist), deepest first.
func restoreDelete(t *testing.T, f *fixture, dns ...string) {
	t.Helper()
	for i := len(dns) - 1; i >= 0; i-- {
		if err := f.conn(t).Del(goldap.NewDelRequest(dns[i], nil)); err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
			t.Fatal(err)
		}
	}
}

func TestModifyLab(t *testing.T) {
	f, dom := startLab(t)
	regs, err := dom.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	// The first 6.x endpoint with an sslTrust, as KB 2121701 updates it.
	var epDN string
	res, err := f.conn(t).Search(goldap.NewSearchRequest(dom.RegistrationsDN(), goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		0, 0, false, "(&(objectClass=vmwLKUPEndpointRegistration)(vmwLKUPEndpointSslTrust=*))", []string{"1.1"}, nil))
	if err != nil || len(res.Entries) == 0 {
		t.Fatalf("no endpoint with an sslTrust among %d registrations: %v", len(regs), err)
	}
	epDN = res.Entries[0].DN
	newTrust := base64.StdEncoding.EncodeToString(testCertDER(t, "CN=vcsa1.lab.test"))
	p := &modifyParams{DN: epDN, Changes: []modifyChange{{Op: "replace", Attr: "vmwLKUPEndpointSslTrust", Values: []string{newTrust}}}}
	pl := exercise(t, f, modifyStep, p)
	if len(pl.Changes) != 1 || pl.Changes[0].Action != "update" || pl.Changes[0].Object != f.pnid+" ldap "+epDN+": vmwLKUPEndpointSslTrust" ||
		pl.Changes[0].After != "vmwLKUPEndpointSslTrust: "+newTrust || !strings.HasPrefix(pl.Changes[0].Before, "vmwLKUPEndpointSslTrust: MII") {
		t.Errorf("plan changes %+v", pl.Changes)
	}

	t.Run("binary replace keeps the order", func(t *testing.T) {
		cred := newSTSCred(t, "CN=STS")
		sts, err := dom.ActiveSTS()
		if err != nil {
			t.Fatal(err)
		}
		f.env = newEnvIn(t, f)
		chain := [][]byte{cred.chain[1], cred.chain[0]} // deliberately root first
		mp := &modifyParams{DN: sts.DN, Changes: []modifyChange{{Op: "replace", Attr: "userCertificate", Values: b64(chain...)}}}
		pl := exercise(t, f, modifyStep, mp)
		if !strings.Contains(pl.Changes[0].After, `<certificate "CN=CA"`) {
			t.Errorf("after %s", pl.Changes[0].After)
		}
		if _, err := applyModify(t.Context(), f.env, mp); err != nil {
			t.Fatal(err)
		}
		if got := entryBytes(t, f.conn(t), sts.DN)["usercertificate"]; !sameBytes(got, chain) {
			t.Error("userCertificate is not the chain given, in order")
		}
		// The same values in the other order are a change.
		mp.Changes[0].Values = b64(cred.chain...)
		if v, err := checkModify(t.Context(), f.env, mp); err != nil || v.State != engine.NotApplied {
			t.Errorf("Check with the order changed: %v, %v", v.State, err)
		}
	})

	t.Run("ops", func(t *testing.T) {
		dn := "cn=Users," + dom.DN
		set := func(values ...string) {
			t.Helper()
			req := goldap.NewModifyRequest(dn, nil)
			if len(values) == 0 {
				req.Replace("description", nil)
			} else {
				req.Replace("description", values)
			}
			if err := f.conn(t).Modify(req); err != nil {
				t.Fatal(err)
			}
		}
		get := func() []string {
			var out []string
			for _, v := range entryBytes(t, f.conn(t), dn)["description"] {
				out = append(out, string(v))
			}
			return out
		}
		tests := []struct {
			name    string
			start   []string
			changes []modifyChange
			want    []string
			action  string
			inPlace bool
		}{
			{name: "add to nothing", changes: []modifyChange{{Op: "add", Attr: "description", Values: []string{"a", "b"}}}, want: []string{"a", "b"}, action: "create"},
			{name: "add keeps what is there", start: []string{"a"}, changes: []modifyChange{{Op: "add", Attr: "description", Values: []string{"a", "b"}}}, want: []string{"a", "b"}, action: "update"},
			{name: "add in place", start: []string{"a", "b"}, changes: []modifyChange{{Op: "add", Attr: "description", Values: []string{"b"}}}, want: []string{"a", "b"}, inPlace: true},
			{name: "delete a value", start: []string{"a", "b"}, changes: []modifyChange{{Op: "delete", Attr: "description", Values: []string{"a", "c"}}}, want: []string{"b"}, action: "update"},
			{name: "delete the attribute", start: []string{"a", "b"}, changes: []modifyChange{{Op: "delete", Attr: "description"}}, action: "delete"},
			{name: "delete in place", changes: []modifyChange{{Op: "delete", Attr: "description"}}, inPlace: true},
			{name: "replace", start: []string{"a", "b"}, changes: []modifyChange{{Op: "replace", Attr: "description", Values: []string{"c"}}}, want: []string{"c"}, action: "update"},
			{name: "replace with nothing", start: []string{"a"}, changes: []modifyChange{{Op: "replace", Attr: "description"}}, action: "delete"},
			{name: "in order", start: []string{"a"}, changes: []modifyChange{
				{Op: "delete", Attr: "description"}, {Op: "add", Attr: "Description", Values: []string{"x"}}}, want: []string{"x"}, action: "update"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				set(tc.start...)
				f.env = newEnvIn(t, f)
				mp := &modifyParams{DN: dn, Changes: tc.changes}
				if tc.inPlace {
					pl, err := planModify(t.Context(), f.env, mp)
					if err != nil || !pl.InPlace {
						t.Fatalf("plan %+v, %v; want in place", pl, err)
					}
					return
				}
				pl := exercise(t, f, modifyStep, mp)
				if len(pl.Changes) != 1 || pl.Changes[0].Action != tc.action {
					t.Errorf("plan changes %+v, want one %s", pl.Changes, tc.action)
				}
				if _, err := applyModify(t.Context(), f.env, mp); err != nil {
					t.Fatal(err)
				}
				if got := get(); !slices.Equal(got, tc.want) {
					t.Errorf("description %q, want %q", got, tc.want)
				}
			})
		}
		set()
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			p       modifyParams
			wantErr string
		}{
			{modifyParams{DN: "cn=nope," + dom.DN, Changes: []modifyChange{{Op: "delete", Attr: "description"}}}, "cn=nope," + dom.DN + " does not exist"},
			{modifyParams{DN: epDN}, "changes: nothing to change"},
			{modifyParams{DN: epDN, Changes: []modifyChange{{Op: "add", Attr: "description"}}}, "changes[0]: add description without values"},
			{modifyParams{DN: epDN, Changes: []modifyChange{{Op: "add", Attr: "de scription", Values: []string{"x"}}}}, `changes[0]: "de scription" is not an attribute name`},
		} {
			if _, err := planModify(t.Context(), f.env, &tc.p); err == nil || err.Error() != tc.wantErr {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
			if _, err := checkModify(t.Context(), f.env, &tc.p); err == nil {
				t.Errorf("Check of %+v succeeded", tc.p)
			}
		}
		// A schema violation fails Apply and changes nothing.
		before := f.dump()
		bad := &modifyParams{DN: epDN, Changes: []modifyChange{{Op: "delete", Attr: "vmwLKUPURI"}}}
		if _, err := applyModify(t.Context(), f.env, bad); err == nil {
			t.Error("removing a MUST attribute succeeded")
		}
		if f.dump() != before {
			t.Error("a failed modify changed the directory")
		}
	})
}

func TestDeleteLab(t *testing.T) {
	f, dom := startLab(t)
	sts, err := dom.ActiveSTS()
	if err != nil {
		t.Fatal(err)
	}
	chains, err := dom.TrustedCertChains()
	if err != nil {
		t.Fatal(err)
	}
	p := &deleteParams{DNs: []string{sts.DN, chains[0].DN}}
	pl := exercise(t, f, deleteStep, p)
	if len(pl.Changes) != 2 || pl.Changes[0].Action != "delete" || pl.Changes[0].Object != f.pnid+" ldap "+chains[0].DN {
		t.Errorf("plan changes %+v (the deepest entry goes first)", pl.Changes)
	}
	noSecret(t, pl, sts.Key)
	if !strings.Contains(pl.Changes[1].Before, fmt.Sprintf("vmwSTSPrivateKey: <private key, %d bytes>", len(sts.Key))) {
		t.Errorf("plan shows the deleted entry as\n%s", pl.Changes[1].Before)
	}

	t.Run("resume after half", func(t *testing.T) {
		f.env = newEnvIn(t, f)
		files, err := backupDelete(t.Context(), f.env, p)
		if err != nil {
			t.Fatal(err)
		}
		before := f.dump()
		restoreDelete(t, f, chains[0].DN)
		v, err := checkDelete(t.Context(), f.env, p)
		if err != nil || v.State != engine.NotApplied || v.Detail != "1 of the 2 DNs still exist" {
			t.Fatalf("Check: %v %q, %v", v.State, v.Detail, err)
		}
		if _, err := applyDelete(t.Context(), f.env, p); err != nil {
			t.Fatal(err)
		}
		if v, err := checkDelete(t.Context(), f.env, p); err != nil || v.State != engine.Applied {
			t.Fatalf("Check after resume: %v, %v", v.State, err)
		}
		if err := Restore(t.Context(), f.conn(t), files[0]); err != nil {
			t.Fatal(err)
		}
		if got := f.dump(); got != before {
			t.Fatalf("not restored:\n%s", diffLines(before, got))
		}
	})

	t.Run("subtree", func(t *testing.T) {
		regs, err := dom.Registrations()
		if err != nil {
			t.Fatal(err)
		}
		var reg string
		for _, r := range regs {
			if len(r.Endpoints) > 1 {
				reg = r.DN
				break
			}
		}
		if reg == "" {
			t.Fatal("no registration with several endpoints")
		}
		f.env = newEnvIn(t, f)
		leaf := &deleteParams{DNs: []string{reg}}
		if _, err := planDelete(t.Context(), f.env, leaf); err == nil || !strings.HasPrefix(err.Error(), reg+" has ") ||
			!strings.HasSuffix(err.Error(), "entries under it; set subtree: true to delete them too") {
			t.Errorf("Plan without subtree: %v", err)
		}
		tree := &deleteParams{DNs: []string{reg}, Subtree: true}
		pl := exercise(t, f, deleteStep, tree)
		if len(pl.Changes) < 3 || pl.Changes[len(pl.Changes)-1].Object != f.pnid+" ldap "+reg {
			t.Errorf("plan deletes %d entries, the registration last: %+v", len(pl.Changes), pl.Changes)
		}
		for i := 1; i < len(pl.Changes); i++ {
			a := strings.TrimPrefix(pl.Changes[i-1].Object, f.pnid+" ldap ")
			b := strings.TrimPrefix(pl.Changes[i].Object, f.pnid+" ldap ")
			if depth(a) < depth(b) {
				t.Errorf("%s is deleted before %s, which is deeper", a, b)
			}
		}
	})

	t.Run("nothing to delete", func(t *testing.T) {
		for _, dns := range [][]string{nil, {"cn=TenantCredential-9," + dom.TenantDN()}} {
			pl, err := planDelete(t.Context(), f.env, &deleteParams{DNs: dns})
			if err != nil || !pl.InPlace || len(pl.Changes) != 0 {
				t.Errorf("%v: plan %+v, %v; want in place", dns, pl, err)
			}
			v, err := checkDelete(t.Context(), f.env, &deleteParams{DNs: dns})
			if err != nil || v.State != engine.Applied {
				t.Errorf("%v: Check %v, %v", dns, v.State, err)
			}
		}
	})
}
