package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/lab/model"
)

// testLab starts a lab in scenario and returns it with an Env whose target
// is the lab and whose secret is the lab's SSO password, which it also
// returns.
func testLab(t *testing.T, scenario string, opts ...lab.Option) (*lab.Lab, *engine.Env, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, scenario, opts...)
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
	pw := l.Model().AdminPassword
	return l, &engine.Env{
		RunID: "test-run", RunDir: t.TempDir(), StepID: "repl", Target: tg, Out: &bytes.Buffer{},
		Redact:  func(s string) string { return strings.ReplaceAll(s, pw, "***") },
		Secrets: []string{pw},
	}, pw
}

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	Register(r)
	st, ok := r.Lookup("replication.status")
	if !ok || st.Effect() != engine.EffectRead || len(r.IDs()) != 1 {
		t.Fatalf("registered %v", r.IDs())
	}
	// Register refuses step types that break the tag conventions.
}

func TestHealthy(t *testing.T) {
	l, env, pw := testLab(t, "healthy")
	before := l.Snapshot()
	out, err := runStatus(t.Context(), env, &statusParams{SSOPassword: pw})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, l.Snapshot()) {
		t.Error("replication.status changed the lab")
	}
	if !out.Healthy || len(out.Problems) != 0 {
		t.Fatalf("problems %q", out.Problems)
	}
	usn := l.Model().Dir.HighestUSN()
	for i, ns := range out.Nodes {
		other := l.Model().Nodes[1-i].PNID
		want := NodeStatus{PNID: l.Model().Nodes[i].PNID, VmdirInstalled: true, State: "Normal", Partners: []Partner{{
			Partner: other, HostAvailable: true, StatusAvailable: true, MyLastChange: usn, PartnerSeen: usn,
		}}}
		if !reflect.DeepEqual(ns, want) {
			t.Errorf("node %d:\n got %+v\nwant %+v", i, ns, want)
		}
	}
	if len(out.Agreements) != 2 || out.Agreements[0].Server != "vcsa1.lab.test" || out.Agreements[0].Partner != "vcsa2.lab.test" ||
		out.Agreements[1].Server != "vcsa2.lab.test" || !strings.HasPrefix(out.Agreements[0].DN, "labeledURI=ldap://vcsa2.lab.test,cn=Replication Agreements,cn=vcsa1.lab.test,cn=Servers,") {
		t.Errorf("agreements %+v", out.Agreements)
	}
	b, _ := json.Marshal(out)
	if strings.Contains(string(b), pw) {
		t.Error("outputs hold the password")
	}
	// The password went through stdin, never a command line.
	for _, n := range l.Nodes() {
		for _, c := range l.SSHAudit(n.PNID) {
			if strings.Contains(c, pw) {
				t.Errorf("%s ran %q", n.PNID, c)
			}
			if strings.Contains(c, "vdcrepadmin") && c != Vdcrepadmin+" -f showpartnerstatus -h localhost -u administrator" {
				t.Errorf("%s ran %q", n.PNID, c)
			}
		}
	}
}

func TestReplicationLag(t *testing.T) {
	_, env, pw := testLab(t, "replication-lag")
	out, err := runStatus(t.Context(), env, &statusParams{Node: "all", SSOPassword: pw})
	if err != nil {
		t.Fatal(err)
	}
	if out.Healthy {
		t.Fatal("healthy while a node lags")
	}
	p := out.Nodes[0].Partners[0]
	if p.Partner != "vcsa2.lab.test" || p.ChangesBehind != model.LagChanges || p.MyLastChange-p.PartnerSeen != model.LagChanges {
		t.Errorf("vcsa1's partner %+v", p)
	}
	if q := out.Nodes[1].Partners[0]; q.ChangesBehind != 0 {
		t.Errorf("vcsa2's partner %+v", q)
	}
	want := []string{"vcsa2.lab.test is 42 changes behind vcsa1.lab.test (vdcrepadmin on vcsa1.lab.test): a lag that does not shrink means vcsa1.lab.test's vmdir is read-only or was rolled back (USN rollback after restoring one node alone from a snapshot or backup)."}
	if !slices.Equal(out.Problems, want) {
		t.Errorf("problems %q", out.Problems)
	}
}

func TestPartnerDown(t *testing.T) {
	_, env, pw := testLab(t, "partner-down")
	out, err := runStatus(t.Context(), env, &statusParams{SSOPassword: pw})
	if err != nil {
		t.Fatal(err)
	}
	if out.Healthy || len(out.Nodes) != 2 {
		t.Fatalf("outputs %+v", out)
	}
	if ps := out.Nodes[0].Partners; len(ps) != 1 || ps[0] != (Partner{Partner: "vcsa2.lab.test"}) {
		t.Errorf("vcsa1's partners %+v", ps)
	}
	if out.Nodes[0].State != "Normal" || out.Nodes[1].Error == "" || !strings.Contains(out.Nodes[1].Error, "cannot be reached over SSH") {
		t.Errorf("nodes %+v", out.Nodes)
	}
	if len(out.Problems) != 2 ||
		out.Problems[0] != "vcsa1.lab.test cannot reach its partner vcsa2.lab.test (Host available: No): a network problem between them, or vcsa2.lab.test is down." ||
		!strings.HasPrefix(out.Problems[1], "vcsa2.lab.test: cannot be reached over SSH: ") {
		t.Errorf("problems %q", out.Problems)
	}
	if len(out.Agreements) != 2 {
		t.Errorf("agreements from the node that answers: %+v", out.Agreements)
	}
}

func TestManagementNode(t *testing.T) {
	_, env, pw := testLab(t, "healthy", lab.WithNodes(3), lab.WithTypes(model.Embedded, model.Embedded, model.Management))
	out, err := runStatus(t.Context(), env, &statusParams{SSOPassword: pw})
	if err != nil {
		t.Fatal(err)
	}
	if !out.Healthy || len(out.Nodes) != 3 || out.Nodes[2].VmdirInstalled || out.Nodes[2].State != "" {
		t.Errorf("outputs %+v", out)
	}
}

func TestPassword(t *testing.T) {
	l, env, pw := testLab(t, "healthy")
	_, err := runStatus(t.Context(), env, &statusParams{Node: "vcsa1.lab.test", SSOPassword: "wrong-" + pw})
	if err == nil || !strings.Contains(err.Error(), "sso_password: give it from a secret param") {
		t.Errorf("plain value: %v", err)
	}
	env.Secrets = append(env.Secrets, "wrong-"+pw)
	_, err = runStatus(t.Context(), env, &statusParams{Node: "vcsa1.lab.test", SSOPassword: "wrong-" + pw})
	if err == nil || err.Error() != "vcsa1.lab.test: vdcrepadmin refused the SSO password of administrator (User invalid credential [9234]); check the SSO password (the profile's sso password, or sso_password)" {
		t.Errorf("wrong password: %v", err)
	}
	// Without sso_password, the target profile's SSO password is used.
	if out, err := runStatus(t.Context(), env, &statusParams{Node: "vcsa1.lab.test"}); err != nil || len(out.Nodes) != 1 {
		t.Errorf("with the profile's password: %+v, %v", out, err)
	}
	// vmdird stopped: vdcrepadmin fails, which is a problem, not an error.
	if err := l.Model().Nodes[1].Services.Stop("vmdird"); err != nil {
		t.Fatal(err)
	}
	out, err := runStatus(t.Context(), env, &statusParams{SSOPassword: pw})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"vcsa1.lab.test cannot reach its partner vcsa2.lab.test (Host available: No): a network problem between them, or vcsa2.lab.test is down.",
		"vcsa2.lab.test: vdcrepadmin -f showpartnerstatus: vdcrepadmin failed: Server down (9127); its replication could not be checked.",
	}
	if out.Healthy || !slices.Equal(out.Problems, want) {
		t.Errorf("problems %q", out.Problems)
	}
}

func TestProblems(t *testing.T) {
	nodes := []NodeStatus{
		{PNID: "a", VmdirInstalled: true, State: "Read only", Partners: []Partner{
			{Partner: "b", HostAvailable: true, StatusAvailable: false},
			{Partner: "c", HostAvailable: true, StatusAvailable: true, MyLastChange: 10, PartnerSeen: 15, ChangesBehind: -5},
		}},
		{PNID: "b", VmdirInstalled: true},
	}
	ras := []Agreement{{Server: "a", Partner: "b"}, {Server: "b", Partner: "a"}, {Server: "a", Partner: "c"}, {Server: "a", Partner: "d"}}
	want := []string{
		"a: vmdir is in state Read only, not Normal: it does not replicate normally, and repairs refuse to run.",
		"a reaches b but cannot read its replication status (Status available: No): b's vmdir is read-only or not Normal.",
		"c has seen 5 more changes of a than a made (vdcrepadmin on a): a's USNs went back, a USN rollback after restoring it alone from a snapshot or backup.",
		"b: vmdir's state could not be read.",
		"vmdir has an agreement of a with c but none of c with a: replication between them runs one way only.",
		"vmdir has an agreement of a with d but none of d with a: replication between them runs one way only.",
		"vmdir has an agreement of a with d that vdcrepadmin on a does not report.",
		"vmdir has an agreement of b with a that vdcrepadmin on b does not report.",
	}
	got := Problems(nodes, ras, true)
	slices.Sort(got[4:])
	if !slices.Equal(got, want) {
		t.Errorf("Problems:\n%s", strings.Join(got, "\n"))
	}
	if got := Problems(nodes, nil, false); len(got) != 4 {
		t.Errorf("without agreements: %q", got)
	}
}

func TestServerOf(t *testing.T) {
	for dn, want := range map[string]string{
		"labeledURI=ldap://b.x,cn=Replication Agreements,cn=a.x,cn=Servers,cn=default-site,cn=Sites,cn=Configuration,dc=vsphere,dc=local": "a.x",
		"cn=a.x,cn=Servers,cn=default-site,cn=Sites,cn=Configuration,dc=vsphere,dc=local":                                                 "",
		"not a dn": "",
	} {
		if got := serverOf(dn); got != want {
			t.Errorf("serverOf(%q) = %q", dn, got)
		}
	}
	for uri, want := range map[string]string{"ldap://b.x": "b.x", "ldap://b.x:389": "b.x", "b.x": "b.x"} {
		if got := hostOf(uri); got != want {
			t.Errorf("hostOf(%q) = %q", uri, got)
		}
	}
}
