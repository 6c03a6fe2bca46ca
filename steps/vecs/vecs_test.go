package vecs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/lab/model"
	"runbook/steps/certinfo"
	"runbook/target"
)

// labNow is the lab's clock in these tests, so that days left are the same
// on every run.
var labNow = time.Date(2025, 6, 1, 12, 30, 0, 0, time.UTC)

// testLab starts a lab in scenario on the fixed clock and returns it with
// an Env whose target is the lab and whose clock is the lab's.
func testLab(t *testing.T, scenario string) (*lab.Lab, *engine.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, scenario, lab.WithNow(func() time.Time { return labNow }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	tg, err := l.Target(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	return l, &engine.Env{
		RunID: "test-run", RunDir: t.TempDir(), StepID: "step", Target: tg, Out: &bytes.Buffer{},
		Now: func() time.Time { return labNow },
	}
}

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	Register(r)
	if got := r.IDs(); !slices.Equal(got, []string{"vecs.entries", "vecs.export"}) {
		t.Fatalf("registered %v", got)
	}
	for _, id := range r.IDs() {
		st, _ := r.Lookup(id)
		if st.Effect() != engine.EffectRead {
			t.Errorf("%s is %s", id, st.Effect())
		}
		pt := st.ParamsType()
		for i := range pt.NumField() {
			f := pt.Field(i)
			if f.Tag.Get("yaml") == "" || !strings.HasSuffix(f.Tag.Get("doc"), ".") {
				t.Errorf("%s params %s: yaml %q doc %q", id, f.Name, f.Tag.Get("yaml"), f.Tag.Get("doc"))
			}
		}
		for _, typ := range []reflect.Type{st.OutputsType(), reflect.TypeFor[Entry](), reflect.TypeFor[NodeEntries]()} {
			for i := range typ.NumField() {
				f := typ.Field(i)
				if j := f.Tag.Get("json"); j == "" || j != f.Tag.Get("expr") {
					t.Errorf("%s outputs %s: json %q expr %q", id, f.Name, j, f.Tag.Get("expr"))
				}
			}
		}
	}
}

// modelCerts returns every certificate entry of node i's VECS in the lab
// model, by store/alias, as SHA-1 thumbprints.
func modelCerts(t *testing.T, l *lab.Lab, i int) map[string]string {
	t.Helper()
	v := l.Model().Nodes[i].VECS
	out := map[string]string{}
	for _, s := range v.StoreNames() {
		es, err := v.Entries(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if len(e.Certs) > 0 {
				out[s+"/"+e.Alias] = certinfo.Thumbprint(e.Certs[0], crypto.SHA1)
			}
		}
	}
	return out
}

func TestEntriesHealthy(t *testing.T) {
	l, env := testLab(t, "healthy")
	before := l.Snapshot()
	out, err := runEntries(t.Context(), env, &entriesParams{Node: "vcsa2.lab.test", ExpiringDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, l.Snapshot()) {
		t.Error("vecs.entries changed the lab")
	}
	if out.Node != "vcsa2.lab.test" || !slices.Equal(out.Stores, l.Model().Nodes[1].VECS.StoreNames()) {
		t.Errorf("node %s stores %v", out.Node, out.Stores)
	}
	got := map[string]string{}
	for _, e := range out.Entries {
		got[e.Store+"/"+e.Alias] = e.SHA1
		if e.Expired || e.Expiring || e.DaysLeft < 30 || e.Subject == "" || e.Issuer == "" {
			t.Errorf("entry %+v", e)
		}
		if e.Store == model.StoreTrustedRoots && (!e.IsCA || e.Type != TypeTrustedCert) {
			t.Errorf("root %+v", e)
		}
	}
	if want := modelCerts(t, l, 1); !mapsEqual(got, want) {
		t.Errorf("entries %v\nwant %v", got, want)
	}
	if len(out.Expired) != 0 || len(out.Expiring) != 0 {
		t.Errorf("expired %v expiring %v", out.Expired, out.Expiring)
	}
	ssl, _ := l.Model().Nodes[1].MachineCert()
	head := "STORE MACHINE_SSL_CERT\nAlias : __MACHINE_CERT\nNot After : " + ssl.NotAfter.UTC().Format("Jan _2 15:04:05 2006 GMT") + "\nSTORE TRUSTED_ROOTS\n"
	if !strings.HasPrefix(out.Report, head) {
		t.Errorf("report:\n%s\nwant it to start with\n%s", out.Report, head)
	}
	// A CRL is listed in the report (alias only), not in entries.
	crls, _ := l.Model().Nodes[1].VECS.Entries(model.StoreTrustedRootCRLs)
	if !strings.Contains(out.Report, "STORE TRUSTED_ROOT_CRLS\nAlias : "+crls[0].Alias+"\nSTORE machine\n") {
		t.Errorf("report has no CRL alias line:\n%s", out.Report)
	}

	// Expiring is relative to expiring_days.
	out, err = runEntries(t.Context(), env, &entriesParams{Stores: []string{model.StoreMachineSSL, model.StoreSMS}, ExpiringDays: 400})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Entries) != 2 || len(out.Expiring) != 1 || out.Expiring[0].Store != model.StoreMachineSSL || out.Expiring[0].DaysLeft != 365 {
		t.Errorf("expiring_days 400: %+v", out.Expiring)
	}

	if _, err := runEntries(t.Context(), env, &entriesParams{Stores: []string{"NOSUCH"}}); err == nil ||
		!strings.Contains(err.Error(), "vcsa1.lab.test: vecs-cli entry list --store NOSUCH exited with code") {
		t.Errorf("unknown store: %v", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestEntriesExpired(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		days     int
		want     []string
	}{
		{"machine-ssl-expired", -3, []string{"MACHINE_SSL_CERT/__MACHINE_CERT"}},
		{"solution-users-expired", -5, []string{"machine/machine", "vpxd-extension/vpxd-extension", "vpxd/vpxd", "vsphere-webclient/vsphere-webclient"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, env := testLab(t, tc.scenario)
			for _, node := range []string{"vcsa1.lab.test", "vcsa2.lab.test"} {
				out, err := runEntries(t.Context(), env, &entriesParams{Node: node, ExpiringDays: 30})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, e := range out.Expired {
					got = append(got, e.Store+"/"+e.Alias)
					if e.DaysLeft != tc.days || !e.Expired || e.Expiring {
						t.Errorf("%s: %+v", node, e)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s: expired %v, want %v", node, got, tc.want)
				}
				for _, e := range out.Expired {
					line := "Alias : " + e.Alias + "\nNot After : " + e.NotAfter.Format("Jan _2 15:04:05 2006 GMT") + "\n"
					if !strings.Contains(out.Report, line) {
						t.Errorf("%s: report lacks %q", node, line)
					}
				}
			}

			// With node: all, expired holds every node's, each naming its node.
			out, err := runEntries(t.Context(), env, &entriesParams{Node: "all", ExpiringDays: 30})
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, e := range out.Expired {
				got = append(got, e.Node+" "+e.Store+"/"+e.Alias)
			}
			for _, node := range []string{"vcsa1.lab.test", "vcsa2.lab.test"} {
				for _, w := range tc.want {
					want = append(want, node+" "+w)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("node all: expired %v, want %v", got, want)
			}
		})
	}
}

// TestEntriesText serves recorded entry list outputs (testdata) through the
// lab's shell: an entry without a readable PEM is read from --text.
func TestEntriesText(t *testing.T) {
	l, env := testLab(t, "healthy")
	node := l.Model().Nodes[0]
	noPEM := "Number of entries in store :\t2\nAlias :\tcde610bc107560ce6195d21ad7c7b44922525f0d\nEntry type :\tTrusted Cert\n" +
		"Certificate :\t\n\nAlias :\t7d008220d219c41b6ee106badf735f4fc7056265\nEntry type :\tTrusted Cert\nCertificate :\t\n\n"
	text, err := os.ReadFile(filepath.Join("testdata", "trusted-roots-text.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"/tmp/list.txt": []byte(noPEM), "/tmp/text.txt": text} {
		if err := node.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := vecsCLI
	t.Cleanup(func() { vecsCLI = old })
	vecsCLI = func(args string) string {
		if strings.HasSuffix(args, "--text") {
			return "cat /tmp/text.txt"
		}
		return "cat /tmp/list.txt"
	}
	out, err := runEntries(t.Context(), env, &entriesParams{Stores: []string{"TRUSTED_ROOTS"}, ExpiringDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{
		Node: node.PNID, Store: "TRUSTED_ROOTS", Alias: "cde610bc107560ce6195d21ad7c7b44922525f0d", Type: TypeTrustedCert,
		Subject: "C = US, O = vcsa1.example.com, OU = VMware Engineering, CN = CA", Issuer: "C = US, O = vcsa1.example.com, OU = VMware Engineering, CN = CA",
		NotAfter: time.Date(2029, 4, 6, 11, 57, 19, 0, time.UTC), DaysLeft: 1404, IsCA: true,
	}, {
		Node: node.PNID, Store: "TRUSTED_ROOTS", Alias: "7d008220d219c41b6ee106badf735f4fc7056265", Type: TypeTrustedCert,
		Subject: "C = US, OU = mID-ce510c87-35e6-444e-82f0-60a7527608a3, CN = vpxd-ce510c87-35e6-444e-82f0-60a7527608a3", Issuer: "C = US, O = vcsa1.example.com, OU = VMware Engineering, CN = CA",
		NotAfter: time.Date(2021, 4, 6, 11, 57, 19, 0, time.UTC), DaysLeft: -1518, Expired: true,
	}}
	if !slices.Equal(out.Entries, want) {
		g, _ := json.MarshalIndent(out.Entries, "", " ")
		t.Errorf("entries:\n%s", g)
	}
	wantReport := "STORE TRUSTED_ROOTS\nAlias : cde610bc107560ce6195d21ad7c7b44922525f0d\nNot After : Apr  6 11:57:19 2029 GMT\n" +
		"Alias : 7d008220d219c41b6ee106badf735f4fc7056265\nNot After : Apr  6 11:57:19 2021 GMT\n"
	if out.Report != wantReport {
		t.Errorf("report:\n%s", out.Report)
	}
	if len(out.Expired) != 1 || out.Expired[0].Alias != "7d008220d219c41b6ee106badf735f4fc7056265" {
		t.Errorf("expired %+v", out.Expired)
	}
}

func TestExport(t *testing.T) {
	l, env := testLab(t, "healthy")
	ctx := t.Context()
	before := l.Snapshot()
	out, err := runExport(ctx, env, &exportParams{Node: "vcsa2.lab.test", Store: model.StoreMachineSSL, Alias: model.AliasMachineCert, WithKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, l.Snapshot()) {
		t.Error("vecs.export changed the lab (files left on the appliance?)")
	}
	ssl, tlsCert := l.Model().Nodes[1].MachineCert()
	base := filepath.Join(env.RunDir, "exports", "MACHINE_SSL_CERT____MACHINE_CERT")
	want := exportOutputs{CertFile: base + ".crt", KeyFile: base + ".key",
		SHA1: certinfo.Thumbprint(ssl.Raw, crypto.SHA1), NotAfter: ssl.NotAfter.UTC()}
	if out != want {
		t.Errorf("outputs %+v\nwant %+v", out, want)
	}
	certs, err := os.ReadFile(out.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := certinfo.Decode(string(certs)); err != nil || len(got) != 2 || !got[0].Equal(ssl) {
		t.Errorf("certificate file: %d certs, %v", len(got), err)
	}
	keyPEM, err := os.ReadFile(out.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(out.KeyFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode())
	}
	block, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(interface{ Equal(crypto.PrivateKey) bool }).Equal(tlsCert.PrivateKey) {
		t.Error("the exported key is not the Machine SSL key")
	}
	if b, _ := json.Marshal(out); bytes.Contains(b, block.Bytes[:8]) || strings.Contains(string(b), "PRIVATE") {
		t.Error("outputs hold the key")
	}

	// A trusted certificate has no key; without with_key none is asked.
	roots, _ := l.Model().Nodes[0].VECS.Entries(model.StoreTrustedRoots)
	out, err = runExport(ctx, env, &exportParams{Store: model.StoreTrustedRoots, Alias: roots[0].Alias, WithKey: true})
	if err != nil || out.KeyFile != "" || out.SHA1 != certinfo.Thumbprint(roots[0].Certs[0], crypto.SHA1) {
		t.Errorf("trusted root: %+v, %v", out, err)
	}
	out, err = runExport(ctx, env, &exportParams{Store: model.StoreVpxd, Alias: model.StoreVpxd})
	if err != nil || out.KeyFile != "" {
		t.Errorf("without key: %+v, %v", out, err)
	}

	crls, _ := l.Model().Nodes[0].VECS.Entries(model.StoreTrustedRootCRLs)
	for _, tc := range []struct {
		p    exportParams
		want string
	}{
		{exportParams{Store: model.StoreMachineSSL, Alias: "nosuch"}, "store MACHINE_SSL_CERT has no entry nosuch (it has: __MACHINE_CERT)"},
		{exportParams{Store: model.StoreTrustedRootCRLs, Alias: crls[0].Alias}, "is a Certification Revocation List entry, not a certificate"},
		{exportParams{Store: "NOSUCH", Alias: "x"}, "vecs-cli entry list --store NOSUCH exited with code"},
		{exportParams{Store: "", Alias: "x"}, "both are required"},
	} {
		if _, err := runExport(ctx, env, &tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
		}
	}
}

// TestEntriesAll reads every node with node: all: one entry per node in
// nodes, entries of every node naming their node, and the first node's
// fields at top level. A node that cannot be reached is recorded, not a
// failure; any other failure still fails the step.
func TestEntriesAll(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		online   []bool
	}{
		{"healthy", []bool{true, true}},
		{"partner-down", []bool{true, false}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			l, env := testLab(t, tc.scenario)
			before := l.Snapshot()
			out, err := runEntries(t.Context(), env, &entriesParams{Node: "all", ExpiringDays: 30})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, l.Snapshot()) {
				t.Error("vecs.entries changed the lab")
			}
			d := l.Model()
			if len(out.Nodes) != len(d.Nodes) {
				t.Fatalf("%d nodes, want %d", len(out.Nodes), len(d.Nodes))
			}
			all := map[string]string{}
			for i, ne := range out.Nodes {
				if ne.PNID != d.Nodes[i].PNID || ne.Reachable != tc.online[i] {
					t.Errorf("node %d: pnid %s reachable %v, want %s %v", i, ne.PNID, ne.Reachable, d.Nodes[i].PNID, tc.online[i])
				}
				if !ne.Reachable {
					if !strings.Contains(ne.Error, "connection refused") || len(ne.Entries) != 0 || len(ne.Stores) != 0 || ne.Report != "" {
						t.Errorf("unreachable node %d: %+v", i, ne)
					}
					continue
				}
				if ne.Error != "" || !slices.Equal(ne.Stores, d.Nodes[i].VECS.StoreNames()) || !strings.HasPrefix(ne.Report, "STORE MACHINE_SSL_CERT\nAlias : __MACHINE_CERT\n") {
					t.Errorf("node %d: error %q stores %v report %.40q", i, ne.Error, ne.Stores, ne.Report)
				}
				got := map[string]string{}
				for _, e := range ne.Entries {
					if e.Node != ne.PNID {
						t.Errorf("node %d: entry %s/%s names node %s", i, e.Store, e.Alias, e.Node)
					}
					got[e.Store+"/"+e.Alias] = e.SHA1
					all[e.Node+" "+e.Store+"/"+e.Alias] = e.SHA1
				}
				if want := modelCerts(t, l, i); !mapsEqual(got, want) {
					t.Errorf("node %d entries %v\nwant %v", i, got, want)
				}
			}
			// entries is every node's, in node order; the rest is the first node's.
			flat := map[string]string{}
			for _, e := range out.Entries {
				flat[e.Node+" "+e.Store+"/"+e.Alias] = e.SHA1
			}
			if !mapsEqual(flat, all) || len(out.Entries) != len(all) {
				t.Errorf("entries are not every node's: %d entries, %d in nodes", len(out.Entries), len(all))
			}
			f := out.Nodes[0]
			if out.Node != f.PNID || !slices.Equal(out.Stores, f.Stores) || out.Report != f.Report {
				t.Error("node, stores and report are not the first node's")
			}
			if len(out.Expired) != 0 || len(out.Expiring) != 0 {
				t.Errorf("expired %v expiring %v", out.Expired, out.Expiring)
			}
		})
	}

	// Naming the node that is down fails: only node: all records it.
	_, env := testLab(t, "partner-down")
	if _, err := runEntries(t.Context(), env, &entriesParams{Node: "vcsa2.lab.test", ExpiringDays: 30}); err == nil ||
		!strings.Contains(err.Error(), "connect ssh vcsa2.lab.test") {
		t.Errorf("node 2 by name: %v, want its connection error", err)
	}
	// Any other failure still fails node: all.
	if _, err := runEntries(t.Context(), env, &entriesParams{Node: "all", Stores: []string{"NOSUCH"}, ExpiringDays: 30}); err == nil ||
		!strings.Contains(err.Error(), "vcsa1.lab.test: vecs-cli entry list --store NOSUCH exited with code") {
		t.Errorf("unknown store on node: all: %v", err)
	}
}

// TestEntriesNoneReachable: node: all fails when no node answers.
func TestEntriesNoneReachable(t *testing.T) {
	l, env := testLab(t, "partner-down")
	path, err := l.Profile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prof, err := target.LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	prof.Nodes = prof.Nodes[1:]
	tg, err := target.Open(t.Context(), prof, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	env.Target = tg
	if _, err := runEntries(t.Context(), env, &entriesParams{Node: "all", ExpiringDays: 30}); err == nil ||
		!strings.Contains(err.Error(), "no node of the target could be reached: connect ssh vcsa2.lab.test") {
		t.Errorf("error %v", err)
	}
}
