package tlspeer

import (
	"bytes"
	"context"
	"errors"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/steps/certinfo"
	"runbook/target"
)

// testLab starts a lab in scenario and returns it with an Env whose target
// is the lab.
func testLab(t *testing.T, scenario string) (*lab.Lab, *engine.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, scenario)
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
	return l, &engine.Env{RunID: "test-run", StepID: "step", Target: tg, Out: &bytes.Buffer{}}
}

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	Register(r)
	st, ok := r.Lookup("tls.peer_certificate")
	if !ok || st.Effect() != engine.EffectRead || len(r.IDs()) != 1 {
		t.Fatalf("registered %v", r.IDs())
	}
	// Register refuses step types that break the tag conventions.
}

// TestPeer reads what each node serves and compares it with the Machine
// SSL certificate the lab's model holds for it.
func TestPeer(t *testing.T) {
	l, env := testLab(t, "stale-ssltrust")
	d := l.Model()
	infos := l.Nodes()
	machine := func(i int) certinfo.Info {
		c, _ := d.Nodes[i].MachineCert()
		return certinfo.Describe(c, time.Now())
	}
	tests := []struct {
		name  string
		p     peerParams
		nodes []int
		port  func(lab.NodeInfo) string
	}{
		{"default", peerParams{}, []int{0}, func(n lab.NodeInfo) string { return n.HTTPSAddr }},
		{"https", peerParams{Node: d.Nodes[1].PNID, Service: "https"}, []int{1}, func(n lab.NodeInfo) string { return n.HTTPSAddr }},
		{"ldaps", peerParams{Service: "ldaps"}, []int{0}, func(n lab.NodeInfo) string { return n.LDAPSAddr }},
		{"all", peerParams{Node: "all"}, []int{0, 1}, func(n lab.NodeInfo) string { return n.HTTPSAddr }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runPeer(context.Background(), env, &tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Peers) != len(tc.nodes) {
				t.Fatalf("%d peers, want %d", len(out.Peers), len(tc.nodes))
			}
			for k, i := range tc.nodes {
				p, want := out.Peers[k], machine(i)
				if p.Node != d.Nodes[i].PNID || port(tc.port(infos[i])) != p.Port {
					t.Errorf("peer %d: node %s port %d", k, p.Node, p.Port)
				}
				if p.SHA1 != want.SHA1 || p.SHA256 != want.SHA256 || p.Subject != want.Subject || p.PEM != want.PEM ||
					p.Base64 != want.Base64 || !p.NotAfter.Equal(want.NotAfter) || p.Expired || p.DaysLeft != want.DaysLeft {
					t.Errorf("peer %d = %+v, want the Machine SSL certificate %s", k, p, want.SHA1)
				}
				if len(p.Chain) == 0 || p.Chain[0].SHA1 != want.SHA1 {
					t.Errorf("peer %d chain does not start with the leaf", k)
				}
			}
			f := out.Peers[0]
			if out.Node != f.Node || out.Port != f.Port || out.SHA1 != f.SHA1 || out.PEM != f.PEM ||
				!reflect.DeepEqual(out.Chain, f.Chain) {
				t.Error("top-level fields are not the first peer's")
			}
			if !reflect.DeepEqual(out.Nodes, out.Peers) {
				t.Error("nodes and peers differ")
			}
			for k, p := range out.Nodes {
				if !p.Reachable || p.Error != "" {
					t.Errorf("node %d: reachable %v, error %q", k, p.Reachable, p.Error)
				}
			}
		})
	}

	// The registrations' old certificate is not what is served.
	old, err := d.Nodes[0].StoreCert("BACKUP_STORE", "bkp___MACHINE_CERT")
	if err != nil {
		t.Fatal(err)
	}
	out, err := runPeer(context.Background(), env, &peerParams{})
	if err != nil || out.SHA1 == certinfo.Describe(old, time.Now()).SHA1 {
		t.Errorf("node 1 serves the old certificate (%v)", err)
	}
}

// TestPeerAll reads every node with node: all. A node that cannot be
// reached is recorded (reachable false, its error) and the others read; a
// node whose certificate is not the pinned one fails the step.
func TestPeerAll(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		online   []bool
	}{
		{"healthy", []bool{true, true}},
		{"partner-down", []bool{true, false}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			l, env := testLab(t, tc.scenario)
			d := l.Model()
			out, err := runPeer(t.Context(), env, &peerParams{Node: "all"})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Nodes) != len(d.Nodes) || !reflect.DeepEqual(out.Nodes, out.Peers) {
				t.Fatalf("%d nodes (peers the same: %v), want %d", len(out.Nodes), reflect.DeepEqual(out.Nodes, out.Peers), len(d.Nodes))
			}
			for i, p := range out.Nodes {
				if p.Node != d.Nodes[i].PNID || p.Reachable != tc.online[i] {
					t.Errorf("node %d: %s reachable %v, want %s %v", i, p.Node, p.Reachable, d.Nodes[i].PNID, tc.online[i])
				}
				if !p.Reachable {
					if !strings.Contains(p.Error, "connect tls "+p.Node) || !strings.Contains(p.Error, "connection refused") || p.SHA1 != "" || len(p.Chain) != 0 {
						t.Errorf("unreachable node %d: %+v", i, p)
					}
					continue
				}
				c, _ := d.Nodes[i].MachineCert()
				if want := certinfo.Describe(c, time.Now()).SHA1; p.SHA1 != want || p.Error != "" || port(l.Nodes()[i].HTTPSAddr) != p.Port {
					t.Errorf("node %d serves %s on %d (error %q), want the Machine SSL certificate %s", i, p.SHA1, p.Port, p.Error, want)
				}
			}
			if out.Node != out.Nodes[0].Node || out.SHA1 != out.Nodes[0].SHA1 {
				t.Error("top-level fields are not the first node's")
			}
		})
	}

	// A pin mismatch on the second node fails node: all.
	l, env := testLab(t, "healthy")
	tg := env.Target.(*target.Target)
	c, _ := l.Model().Nodes[0].MachineCert()
	if err := tg.Nodes()[1].Repin(target.Thumbprint(c)); err != nil {
		t.Fatal(err)
	}
	_, err := runPeer(t.Context(), env, &peerParams{Node: "all"})
	var pe *target.PinError
	if !errors.As(err, &pe) || pe.Node != "vcsa2.lab.test" {
		t.Errorf("error %v, want vcsa2's pin error", err)
	}
}

// TestPeerExpired reads an expired certificate, which the pin alone lets
// through.
func TestPeerExpired(t *testing.T) {
	_, env := testLab(t, "machine-ssl-expired")
	out, err := runPeer(context.Background(), env, &peerParams{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	if !out.Expired || out.DaysLeft >= 0 {
		t.Errorf("expired %v, daysLeft %d; want an expired certificate", out.Expired, out.DaysLeft)
	}
}

func TestPeerErrors(t *testing.T) {
	l, env := testLab(t, "healthy")
	tests := []struct {
		name string
		env  *engine.Env
		p    peerParams
		want string
	}{
		{"no target", &engine.Env{}, peerParams{}, "needs a target"},
		{"unknown node", env, peerParams{Node: "nowhere.lab.test"}, "nowhere.lab.test"},
		{"bad service", env, peerParams{Service: "smtp"}, "neither https nor ldaps"},
		{"bad port", env, peerParams{Port: 70000}, "not a TCP port"},
		// The SSH port speaks no TLS.
		{"not tls", env, peerParams{Port: port(l.Nodes()[0].SSHAddr)}, "read certificate of"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := runPeer(ctx, tc.env, &tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// port returns the port of host:port.
func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// TestPeerNoneReachable: node: all fails when no node answers.
func TestPeerNoneReachable(t *testing.T) {
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
	if _, err := runPeer(t.Context(), env, &peerParams{Node: "all"}); err == nil ||
		!strings.Contains(err.Error(), "no node of the target could be reached: read certificate of vcsa2.lab.test") {
		t.Errorf("error %v", err)
	}
}
