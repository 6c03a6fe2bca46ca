// Package replication provides replication.status, the step type that
// checks vmdir replication across an SSO domain before an upgrade or a
// repair (vcenter-procedures.md §5): `vdcrepadmin -f showpartnerstatus` on
// every node, in both directions, each node's vmdir state, and the
// replication agreements vmdir holds.
package replication

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/go-ldap/ldap/v3"

	"runbook/engine"
	"runbook/steps/conn"
	"runbook/steps/shell"
	"runbook/target"
)

// Paths of the vmdir tools on an appliance.
const (
	Vdcrepadmin  = "/usr/lib/vmware-vmdir/bin/vdcrepadmin"
	Vdcadmintool = "/usr/lib/vmware-vmdir/bin/vdcadmintool"
)

// errInvalidCredential is vmdir's error number for a refused password.
const errInvalidCredential = "9234"

// Register adds replication.status (read) to r.
func Register(r *engine.Registry) {
	r.Register(statusStep)
}

// statusParams are the params of replication.status.
type statusParams struct {
	Node        string `yaml:"node" default:"all" doc:"The PNID of the node to check, or all (the default) for every node of the target: replication must be 0 changes behind in both directions, which only running on every node shows. Nodes without vmdir (a vCenter with an external PSC) are listed and skipped."`
	SSOPassword string `yaml:"sso_password" doc:"The SSO administrator's password, which vdcrepadmin asks for; it is passed on its standard input, never on its command line. Empty (the usual case) means the target profile's SSO password. When given, it must come from a secret param, ${{ params.sso_password }}, so that it is redacted everywhere; any other value is refused."`
}

// NodeStatus is one node's replication as its own vmdir sees it.
type NodeStatus struct {
	// PNID is the node's PNID.
	PNID string `json:"pnid" expr:"pnid"`
	// VmdirInstalled is false on a node known to run no vmdir (a vCenter
	// with an external PSC), which is skipped; true otherwise, including
	// for a node that could not be reached.
	VmdirInstalled bool `json:"vmdirInstalled" expr:"vmdirInstalled"`
	// State is vmdir's state (Normal, Read only, Standalone, …); empty when
	// it could not be read.
	State string `json:"state" expr:"state"`
	// Partners are the node's replication partners, as vdcrepadmin on the
	// node reports them.
	Partners []Partner `json:"partners" expr:"partners"`
	// Error says why the node could not be checked; empty when it was.
	Error string `json:"error" expr:"error"`
}

// Agreement is a replication agreement as vmdir stores it.
type Agreement struct {
	// Server is the PNID of the node holding the agreement.
	Server string `json:"server" expr:"server"`
	// Partner is the node it replicates with (its labeledURI's host).
	Partner string `json:"partner" expr:"partner"`
	// LastLocalUsnProcessed is how far Server has consumed Partner's
	// changes, as stored in the agreement.
	LastLocalUsnProcessed int64 `json:"lastLocalUsnProcessed" expr:"lastLocalUsnProcessed"`
	// DN is the agreement's entry.
	DN string `json:"dn" expr:"dn"`
}

// statusOutputs are the outputs of replication.status.
type statusOutputs struct {
	// Nodes has one entry per node checked, in target order.
	Nodes []NodeStatus `json:"nodes" expr:"nodes"`
	// Agreements are vmdir's replication agreements in the domain's
	// sites, read over LDAP, by server then partner.
	Agreements []Agreement `json:"agreements" expr:"agreements"`
	// Healthy is true when every node with vmdir was checked, its state is
	// Normal, and every partner is available with its status, 0 changes
	// behind, with agreements both ways.
	Healthy bool `json:"healthy" expr:"healthy"`
	// Problems says, one sentence each, what is not healthy and what it
	// usually means.
	Problems []string `json:"problems" expr:"problems"`
}

var statusStep = engine.Read[statusParams, statusOutputs]{
	Spec: engine.Spec{
		ID:      "replication.status",
		Summary: "Check vmdir replication in both directions and vmdir's state on every node (vdcrepadmin showpartnerstatus).",
		Doc: "On each node with vmdir: `vdcrepadmin -f showpartnerstatus -h localhost -u <SSO user>` with " +
			"the password on its standard input, and `echo 6 | vdcadmintool` for vmdir's state; then " +
			"the replication agreements (objectClass vmwReplicationAgreement, with " +
			"lastLocalUsnProcessed) under cn=Sites,cn=Configuration of the domain, over LDAP. " +
			"`healthy` needs every partner available, with its status, 0 changes behind, every " +
			"vmdir Normal, and every agreement matched by one the other way. `problems` says what " +
			"is wrong in the reference's terms: Host available No is a network problem (or the " +
			"partner is down); Status available No means the partner's vmdir is read-only or not " +
			"Normal; a large lag that stays means the local node's vmdir is read-only or was rolled " +
			"back (USN rollback, after restoring one node alone from a snapshot or backup: restore " +
			"every node of the domain together, powered off). A node that cannot be reached is a " +
			"problem, not a failure of the step; a refused password is a failure.\n\n" +
			"```yaml\n- id: repl\n  uses: replication.status\n" +
			"- id: replicating\n  uses: assert\n  with:\n    that: ${{ steps.repl.healthy }}\n" +
			"    message: ${{ join(steps.repl.problems, '; ') }}\n```",
	},
	Run: runStatus,
}

func runStatus(ctx context.Context, env *engine.Env, p *statusParams) (statusOutputs, error) {
	if p.SSOPassword == "" {
		_, pw, err := conn.SSO(env)
		if err != nil {
			return statusOutputs{}, err
		}
		p.SSOPassword = pw
	} else if !shell.IsSecret(env, p.SSOPassword) {
		return statusOutputs{}, errors.New("sso_password: give it from a secret param (${{ params.sso_password }}) so that it is redacted; a plain value would be journaled")
	}
	t, err := conn.Target(env)
	if err != nil {
		return statusOutputs{}, err
	}
	sel := p.Node
	if sel == "" {
		sel = conn.All
	}
	nodes, err := conn.Nodes(env, sel)
	if err != nil {
		return statusOutputs{}, err
	}
	user := ssoUser(t)
	states := make([]NodeStatus, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { states[i], errs[i] = checkNode(ctx, env, n, user, p.SSOPassword) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return statusOutputs{}, err
	}
	out := statusOutputs{Nodes: states, Agreements: []Agreement{}, Problems: []string{}}
	ras, ldapErr := readAgreements(ctx, t)
	if ldapErr != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("vmdir's replication agreements could not be read over LDAP: %s", shell.Redact(env, ldapErr.Error())))
	} else {
		out.Agreements = ras
	}
	out.Problems = append(out.Problems, Problems(states, ras, ldapErr == nil)...)
	out.Healthy = len(out.Problems) == 0
	return out, nil
}

// ssoUser is the user name vdcrepadmin's -u takes: the profile's SSO user
// without its domain, administrator when the profile has none.
func ssoUser(t *target.Target) string {
	u := t.Profile().SSO.User
	if name, dom, ok := strings.Cut(u, "@"); ok && strings.EqualFold(dom, t.Domain()) {
		u = name
	}
	if u == "" {
		u = "administrator"
	}
	return u
}

// checkNode runs vdcrepadmin and vdcadmintool on one node. Only a refused
// password is an error; anything else the node's status says.
func checkNode(ctx context.Context, env *engine.Env, n *target.Node, user, password string) (NodeStatus, error) {
	ns := NodeStatus{PNID: n.PNID(), Partners: []Partner{}}
	res, err := shell.Run(ctx, env, n, "test -x "+shell.VmdirBinary, "test -x "+shell.VmdirBinary, "")
	if err != nil {
		ns.Error = "cannot be reached over SSH: " + err.Error()
		ns.VmdirInstalled = true // unknown; counted as a node to check
		return ns, nil
	}
	if res.ExitCode != 0 {
		return ns, nil
	}
	ns.VmdirInstalled = true

	cmd := Vdcrepadmin + " -f showpartnerstatus -h localhost -u " + shell.Quote(user)
	res, err = shell.Run(ctx, env, n, "vdcrepadmin -f showpartnerstatus", cmd, password+"\n")
	if err != nil {
		ns.Error = "cannot be reached over SSH: " + err.Error()
		return ns, nil
	}
	if m := ErrorLine.FindStringSubmatch(res.Stdout + res.Stderr); m != nil && m[2] == errInvalidCredential {
		return ns, fmt.Errorf("%s: vdcrepadmin refused the SSO password of %s (%s [%s]); check the SSO password (the profile's sso password, or sso_password)", n.PNID(), user, m[1], m[2])
	}
	partners, perr := ParsePartnerStatus(res.Stdout)
	switch {
	case perr != nil:
		ns.Error = "vdcrepadmin -f showpartnerstatus: " + perr.Error()
	case res.ExitCode != 0:
		ns.Error = fmt.Sprintf("vdcrepadmin -f showpartnerstatus exited with code %d%s", res.ExitCode, shell.Tail(res.Stderr))
	default:
		ns.Partners = partners
	}

	res, err = shell.Run(ctx, env, n, "vdcadmintool", Vdcadmintool, "6\n0\n")
	if err != nil {
		if ns.Error == "" {
			ns.Error = "cannot be reached over SSH: " + err.Error()
		}
		return ns, nil
	}
	if state, err := ParseVmdirState(res.Stdout + "\n" + res.Stderr); err == nil {
		ns.State = state
	} else if ns.Error == "" {
		ns.Error = "vmdir state (vdcadmintool option 6): " + err.Error()
	}
	return ns, nil
}

// readAgreements reads vmdir's replication agreements over LDAP from the
// first node that answers (the directory is replicated, so any node has
// them all).
func readAgreements(ctx context.Context, t *target.Target) ([]Agreement, error) {
	base := "cn=Sites,cn=Configuration," + target.DomainDN(t.Domain())
	var errs []error
	for _, n := range t.Nodes() {
		l, err := n.LDAP(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.PNID(), err))
			continue
		}
		res, err := l.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=vmwReplicationAgreement)", []string{"labeledURI", "lastLocalUsnProcessed"}, nil))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: search %s: %w", n.PNID(), base, err))
			continue
		}
		ras := []Agreement{}
		for _, e := range res.Entries {
			ra := Agreement{DN: e.DN, Server: serverOf(e.DN), Partner: hostOf(e.GetAttributeValue("labeledURI"))}
			if v := e.GetAttributeValue("lastLocalUsnProcessed"); v != "" {
				if ra.LastLocalUsnProcessed, err = strconv.ParseInt(v, 10, 64); err != nil {
					return nil, fmt.Errorf("%s: %s: lastLocalUsnProcessed %q is not a number", n.PNID(), e.DN, v)
				}
			}
			ras = append(ras, ra)
		}
		sort.Slice(ras, func(i, j int) bool {
			if !strings.EqualFold(ras[i].Server, ras[j].Server) {
				return strings.ToLower(ras[i].Server) < strings.ToLower(ras[j].Server)
			}
			return strings.ToLower(ras[i].Partner) < strings.ToLower(ras[j].Partner)
		})
		return ras, nil
	}
	return nil, errors.Join(errs...)
}

// serverOf returns the server an agreement DN belongs to: the cn after
// "cn=Replication Agreements,".
func serverOf(dn string) string {
	dn2, err := ldap.ParseDN(dn)
	if err != nil {
		return ""
	}
	for i, rdn := range dn2.RDNs {
		if len(rdn.Attributes) == 1 && strings.EqualFold(rdn.Attributes[0].Type, "cn") &&
			strings.EqualFold(rdn.Attributes[0].Value, "Replication Agreements") && i+1 < len(dn2.RDNs) {
			next := dn2.RDNs[i+1].Attributes
			if len(next) == 1 && strings.EqualFold(next[0].Type, "cn") {
				return next[0].Value
			}
		}
	}
	return ""
}

// hostOf returns the host of an LDAP URI such as ldap://vcsa2.example.com:389.
func hostOf(uri string) string {
	u, err := url.Parse(strings.TrimSpace(uri))
	if err != nil || u.Host == "" {
		return strings.TrimSpace(uri)
	}
	return u.Hostname()
}

// Problems describes, one sentence each, what is wrong with the nodes'
// replication and vmdir state, and with the agreements when haveRAs says
// they could be read.
func Problems(nodes []NodeStatus, ras []Agreement, haveRAs bool) []string {
	var out []string
	checked := map[string]bool{}
	for _, ns := range nodes {
		if !ns.VmdirInstalled {
			continue
		}
		if ns.Error != "" {
			out = append(out, fmt.Sprintf("%s: %s; its replication could not be checked.", ns.PNID, ns.Error))
		}
		switch {
		case ns.State == "" && ns.Error == "":
			out = append(out, fmt.Sprintf("%s: vmdir's state could not be read.", ns.PNID))
		case ns.State != "" && !strings.EqualFold(ns.State, "Normal"):
			out = append(out, fmt.Sprintf("%s: vmdir is in state %s, not Normal: it does not replicate normally, and repairs refuse to run.", ns.PNID, ns.State))
		}
		if ns.Error == "" {
			checked[strings.ToLower(ns.PNID)] = true
		}
		for _, p := range ns.Partners {
			switch {
			case !p.HostAvailable:
				out = append(out, fmt.Sprintf("%s cannot reach its partner %s (Host available: No): a network problem between them, or %s is down.", ns.PNID, p.Partner, p.Partner))
			case !p.StatusAvailable:
				out = append(out, fmt.Sprintf("%s reaches %s but cannot read its replication status (Status available: No): %s's vmdir is read-only or not Normal.", ns.PNID, p.Partner, p.Partner))
			case p.ChangesBehind > 0:
				out = append(out, fmt.Sprintf("%s is %d changes behind %s (vdcrepadmin on %s): a lag that does not shrink means %s's vmdir is read-only or was rolled back (USN rollback after restoring one node alone from a snapshot or backup).",
					p.Partner, p.ChangesBehind, ns.PNID, ns.PNID, ns.PNID))
			case p.ChangesBehind < 0:
				out = append(out, fmt.Sprintf("%s has seen %d more changes of %s than %s made (vdcrepadmin on %s): %s's USNs went back, a USN rollback after restoring it alone from a snapshot or backup.",
					p.Partner, -p.ChangesBehind, ns.PNID, ns.PNID, ns.PNID, ns.PNID))
			}
		}
	}
	if !haveRAs {
		return out
	}
	has := map[[2]string]bool{}
	for _, ra := range ras {
		has[[2]string{strings.ToLower(ra.Server), strings.ToLower(ra.Partner)}] = true
	}
	for _, ra := range ras {
		s, p := strings.ToLower(ra.Server), strings.ToLower(ra.Partner)
		if !has[[2]string{p, s}] {
			out = append(out, fmt.Sprintf("vmdir has an agreement of %s with %s but none of %s with %s: replication between them runs one way only.", ra.Server, ra.Partner, ra.Partner, ra.Server))
		}
		if !checked[s] {
			continue
		}
		for _, ns := range nodes {
			if !strings.EqualFold(ns.PNID, ra.Server) {
				continue
			}
			listed := false
			for _, pp := range ns.Partners {
				listed = listed || strings.EqualFold(pp.Partner, ra.Partner)
			}
			if !listed {
				out = append(out, fmt.Sprintf("vmdir has an agreement of %s with %s that vdcrepadmin on %s does not report.", ra.Server, ra.Partner, ra.Server))
			}
		}
	}
	return out
}
