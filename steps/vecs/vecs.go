// Package vecs provides the step types that read VMware Endpoint
// Certificate Store (VECS) entries on an appliance node through vecs-cli
// over SSH: vecs.entries, the certificate expiry report of the VECS
// one-liner (vcenter-procedures.md §7), and vecs.export, which saves one
// entry's certificate and key into the run folder (KB 2121701 Task 3).
package vecs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"runbook/engine"
	"runbook/steps/certinfo"
	"runbook/steps/conn"
	"runbook/steps/shell"
	"runbook/target"
)

// VecsCLI is where vecs-cli lives on an appliance.
const VecsCLI = "/usr/lib/vmware-vmafd/bin/vecs-cli"

// vecsCLI returns the command line running vecs-cli with args. Tests
// replace it to serve recorded outputs.
var vecsCLI = func(args string) string { return VecsCLI + " " + args }

// Entry types vecs-cli prints.
const (
	TypePrivateKey  = "Private Key"
	TypeTrustedCert = "Trusted Cert"
	TypeSecretKey   = "Secret Key"
	TypeCRL         = "Certification Revocation List"
)

// Register adds vecs.entries and vecs.export (both read) to r.
func Register(r *engine.Registry) {
	r.Register(entriesStep)
	r.Register(exportStep)
}

// entriesParams are the params of vecs.entries.
type entriesParams struct {
	Node         string   `yaml:"node" doc:"The PNID of the node whose VECS to read, or all for every node of the target (one entry each in nodes; a node that cannot be reached over the network is recorded there, not a failure); the first node when empty."`
	Stores       []string `yaml:"stores" doc:"The stores to read, such as [MACHINE_SSL_CERT, TRUSTED_ROOTS]; every store vecs-cli store list names when empty. A store that does not exist fails the step."`
	ExpiringDays int      `yaml:"expiring_days" default:"30" doc:"A certificate that is still valid but has fewer days left than this is expiring (VDT's failure threshold is 30, its warning 60)."`
}

// Entry is one certificate entry of a VECS store.
type Entry struct {
	// Node is the PNID of the node whose VECS holds the entry.
	Node string `json:"node" expr:"node"`
	// Store is the store's name.
	Store string `json:"store" expr:"store"`
	// Alias is the entry's alias, such as __MACHINE_CERT.
	Alias string `json:"alias" expr:"alias"`
	// Type is Private Key (a certificate with its key) or Trusted Cert.
	Type string `json:"type" expr:"type"`
	// Subject and Issuer are the certificate's names, as openssl prints
	// them with -nameopt RFC2253 (from the PEM), or as the entry's text
	// shows them when vecs-cli gave no PEM.
	Subject string `json:"subject" expr:"subject"`
	Issuer  string `json:"issuer" expr:"issuer"`
	// NotAfter is the end of the certificate's validity.
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
	// DaysLeft is whole days from the run's time to NotAfter, rounded down;
	// negative once expired.
	DaysLeft int `json:"daysLeft" expr:"daysLeft"`
	// Expired is true once the run's time is past NotAfter.
	Expired bool `json:"expired" expr:"expired"`
	// Expiring is true when the certificate is still valid but has fewer
	// than expiring_days days left.
	Expiring bool `json:"expiring" expr:"expiring"`
	// SHA1 is the SHA-1 thumbprint, AB:CD:…; empty when only the text was
	// available.
	SHA1 string `json:"sha1" expr:"sha1"`
	// IsCA is true for a CA certificate (basicConstraints CA:TRUE).
	IsCA bool `json:"isCA" expr:"isCA"`
}

// NodeEntries is what vecs.entries read on one node.
type NodeEntries struct {
	// PNID is the node's PNID.
	PNID string `json:"pnid" expr:"pnid"`
	// Reachable is false for a node that could not be reached over the
	// network (node: all only); nothing else is set then but Error.
	Reachable bool `json:"reachable" expr:"reachable"`
	// Error says why the node could not be reached; empty when it was.
	Error string `json:"error" expr:"error"`
	// Stores are the stores read, in vecs-cli's order.
	Stores []string `json:"stores" expr:"stores"`
	// Entries are the certificate entries, store by store in entry list
	// order. CRLs and secrets are not certificates and are left out.
	Entries []Entry `json:"entries" expr:"entries"`
	// Expired are the entries whose certificate has expired.
	Expired []Entry `json:"expired" expr:"expired"`
	// Expiring are the entries that are still valid but expiring.
	Expiring []Entry `json:"expiring" expr:"expiring"`
	// Report is what the VECS one-liner prints on the node (whitespace
	// collapsed, as the KB articles and blogs show it): "STORE <name>",
	// then per entry "Alias : <alias>" and, for a certificate,
	// "Not After : <date> GMT".
	Report string `json:"report" expr:"report"`
}

// entriesOutputs are the outputs of vecs.entries: node, stores and report
// are the first node's; entries, expired and expiring those of every node
// read, each naming its node; nodes has one entry per node.
type entriesOutputs struct {
	// Node is the PNID of the first node read.
	Node string `json:"node" expr:"node"`
	// Stores are the first node's stores, in vecs-cli's order.
	Stores []string `json:"stores" expr:"stores"`
	// Entries are the certificate entries of every node read, node by node
	// in target order.
	Entries []Entry `json:"entries" expr:"entries"`
	// Expired are the entries whose certificate has expired, on any node.
	Expired []Entry `json:"expired" expr:"expired"`
	// Expiring are the entries that are still valid but expiring, on any
	// node.
	Expiring []Entry `json:"expiring" expr:"expiring"`
	// Report is the first node's VECS one-liner report (see NodeEntries);
	// each node's is in nodes.
	Report string `json:"report" expr:"report"`
	// Nodes has one entry per node, in target order (one entry unless
	// node is all).
	Nodes []NodeEntries `json:"nodes" expr:"nodes"`
}

var entriesStep = engine.Read[entriesParams, entriesOutputs]{
	Spec: engine.Spec{
		ID:      "vecs.entries",
		Summary: "List the certificates in the VECS stores of a node, or of every node, with their expiry (the VECS one-liner).",
		Doc: "Runs `vecs-cli store list` (unless `stores` is given), then `vecs-cli entry list --store S` " +
			"for each store, and describes each certificate entry from its PEM: names, validity end, " +
			"days left, SHA-1 thumbprint and CA flag. Only an entry whose PEM is missing or unreadable " +
			"is read from `entry list --text` instead (names and date as OpenSSL prints them, no " +
			"thumbprint). `report` is the expiry report of the VECS one-liner:\n\n" +
			"```sh\nfor i in $(vecs-cli store list); do echo STORE $i; " +
			"vecs-cli entry list --store $i --text | egrep \"Alias|Not After\"; done\n```\n\n" +
			"`expired` and `expiring` are the entries a runbook acts on: certificate-manager option 3 " +
			"for MACHINE_SSL_CERT, option 6 for the solution-user stores (machine, vpxd, " +
			"vpxd-extension, vsphere-webclient, …), option 8 for TRUSTED_ROOTS. Expired entries in " +
			"BACKUP_STORE raise alarms too (KB 82560).\n\n" +
			"With `node: all` every node is read side by side, one entry each in `nodes`; `entries`, " +
			"`expired` and `expiring` are then those of every node, each naming its `node`, while " +
			"`node`, `stores` and `report` stay the first node's. A node that cannot be reached over " +
			"the network is recorded in `nodes` (`reachable: false`, `error`) instead of failing the " +
			"step, so that a check can report it; any other failure (a pin that does not match, " +
			"vecs-cli failing) fails the step, and so does a run in which no node could be reached.\n\n" +
			"```yaml\n- id: vecs\n  uses: vecs.entries\n  with: {expiring_days: 60}\n" +
			"- id: none_expired\n  uses: assert\n  with:\n    that: ${{ len(steps.vecs.expired) == 0 }}\n" +
			"    message: ${{ steps.vecs.report }}\n```",
	},
	Run: runEntries,
}

// storeList is one store's entries as read.
type storeList struct {
	entries []ListedEntry
	certs   map[string]Entry // by alias
}

func runEntries(ctx context.Context, env *engine.Env, p *entriesParams) (entriesOutputs, error) {
	if p.ExpiringDays < 0 {
		return entriesOutputs{}, fmt.Errorf("expiring_days: %d is negative", p.ExpiringDays)
	}
	if slices.Contains(p.Stores, "") {
		return entriesOutputs{}, errors.New("stores: an empty store name")
	}
	nodes, err := conn.Nodes(env, p.Node)
	if err != nil {
		return entriesOutputs{}, err
	}
	results, err := conn.EachNode(ctx, nodes, strings.EqualFold(p.Node, conn.All), "read VECS",
		func(ctx context.Context, n *target.Node) (NodeEntries, error) { return readNode(ctx, env, n, p) },
		func(n *target.Node, err error) NodeEntries {
			return NodeEntries{PNID: n.PNID(), Error: shell.Redact(env, err.Error()),
				Stores: []string{}, Entries: []Entry{}, Expired: []Entry{}, Expiring: []Entry{}}
		})
	if err != nil {
		return entriesOutputs{}, err
	}
	first := results[0]
	out := entriesOutputs{Node: first.PNID, Stores: first.Stores, Report: first.Report, Nodes: results,
		Entries: []Entry{}, Expired: []Entry{}, Expiring: []Entry{}}
	for _, r := range results {
		out.Entries = append(out.Entries, r.Entries...)
		out.Expired = append(out.Expired, r.Expired...)
		out.Expiring = append(out.Expiring, r.Expiring...)
	}
	return out, nil
}

// readNode reads the stores p names (or every store) on one node. It
// connects first, so that a node that cannot be reached fails with the
// connection's error (see unreachable).
func readNode(ctx context.Context, env *engine.Env, n *target.Node, p *entriesParams) (NodeEntries, error) {
	if _, err := n.SSH(ctx); err != nil {
		return NodeEntries{}, err
	}
	stores := slices.Clone(p.Stores)
	if len(stores) == 0 {
		res, err := shell.Must(ctx, env, n, "vecs-cli store list", vecsCLI("store list"), "")
		if err != nil {
			return NodeEntries{}, err
		}
		stores = ParseStoreList(res.Stdout)
	}
	now := env.Time()
	lists := make([]storeList, len(stores))
	errs := make([]error, len(stores))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			lists[i], errs[i] = readStore(ctx, env, n, s, now, p.ExpiringDays)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return NodeEntries{}, err
	}
	out := NodeEntries{PNID: n.PNID(), Reachable: true, Stores: stores, Entries: []Entry{}, Expired: []Entry{}, Expiring: []Entry{}}
	var report strings.Builder
	for i, s := range stores {
		fmt.Fprintf(&report, "STORE %s\n", s)
		for _, le := range lists[i].entries {
			fmt.Fprintf(&report, "Alias : %s\n", le.Alias)
			e, ok := lists[i].certs[le.Alias]
			if !ok {
				continue
			}
			fmt.Fprintf(&report, "Not After : %s\n", e.NotAfter.UTC().Format("Jan _2 15:04:05 2006 GMT"))
			out.Entries = append(out.Entries, e)
			switch {
			case e.Expired:
				out.Expired = append(out.Expired, e)
			case e.Expiring:
				out.Expiring = append(out.Expiring, e)
			}
		}
	}
	out.Report = report.String()
	return out, nil
}

// isCertType reports whether entries of type t hold a certificate.
func isCertType(t string) bool { return t == TypePrivateKey || t == TypeTrustedCert }

// readStore lists one store and describes its certificate entries: from
// their PEM, or from --text for those whose PEM is missing.
func readStore(ctx context.Context, env *engine.Env, n *target.Node, store string, now time.Time, expiringDays int) (storeList, error) {
	args := "entry list --store " + shell.Quote(store)
	res, err := shell.Must(ctx, env, n, "vecs-cli entry list --store "+store, vecsCLI(args), "")
	if err != nil {
		return storeList{}, err
	}
	entries, err := ParseEntryList(res.Stdout)
	if err != nil {
		return storeList{}, fmt.Errorf("%s: vecs-cli entry list --store %s: %w", n.PNID(), store, err)
	}
	sl := storeList{entries: entries, certs: map[string]Entry{}}
	var needText []string
	for _, le := range entries {
		if !isCertType(le.Type) {
			continue
		}
		certs, err := certinfo.Decode(le.Cert)
		if err != nil || len(certs) == 0 || !strings.Contains(le.Cert, "CERTIFICATE") {
			needText = append(needText, le.Alias)
			continue
		}
		info := certinfo.Describe(certs[0], now)
		sl.certs[le.Alias] = Entry{
			Node: n.PNID(), Store: store, Alias: le.Alias, Type: le.Type, Subject: info.Subject, Issuer: info.Issuer,
			NotAfter: info.NotAfter, DaysLeft: info.DaysLeft, Expired: info.Expired,
			Expiring: !info.Expired && info.DaysLeft < expiringDays, SHA1: info.SHA1, IsCA: info.IsCA,
		}
	}
	if len(needText) == 0 {
		return sl, nil
	}
	res, err = shell.Must(ctx, env, n, "vecs-cli entry list --text --store "+store, vecsCLI(args+" --text"), "")
	if err != nil {
		return storeList{}, err
	}
	texts, err := ParseEntryList(res.Stdout)
	if err != nil {
		return storeList{}, fmt.Errorf("%s: vecs-cli entry list --store %s --text: %w", n.PNID(), store, err)
	}
	for _, alias := range needText {
		i := slices.IndexFunc(texts, func(le ListedEntry) bool { return le.Alias == alias })
		if i < 0 {
			return storeList{}, fmt.Errorf("%s: store %s: entry %s has no readable certificate and is missing from --text", n.PNID(), store, alias)
		}
		ct, err := ParseCertText(texts[i].Text)
		if err != nil {
			return storeList{}, fmt.Errorf("%s: store %s: entry %s: %w", n.PNID(), store, alias, err)
		}
		days := daysLeft(ct.NotAfter, now)
		expired := now.After(ct.NotAfter)
		sl.certs[alias] = Entry{
			Node: n.PNID(), Store: store, Alias: alias, Type: texts[i].Type, Subject: ct.Subject, Issuer: ct.Issuer,
			NotAfter: ct.NotAfter, DaysLeft: days, Expired: expired,
			Expiring: !expired && days < expiringDays, IsCA: ct.IsCA,
		}
	}
	return sl, nil
}

// daysLeft is whole days from now to notAfter, rounded down, as certinfo
// counts them.
func daysLeft(notAfter, now time.Time) int {
	d := notAfter.Unix() - now.Unix()
	days := d / 86400
	if d%86400 < 0 {
		days--
	}
	return int(days)
}
