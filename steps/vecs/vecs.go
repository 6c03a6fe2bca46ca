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
	Node         string   `yaml:"node" doc:"The PNID of the node whose VECS to read; the target's first node when empty."`
	Stores       []string `yaml:"stores" doc:"The stores to read, such as [MACHINE_SSL_CERT, TRUSTED_ROOTS]; every store vecs-cli store list names when empty. A store that does not exist fails the step."`
	ExpiringDays int      `yaml:"expiring_days" default:"30" doc:"A certificate that is still valid but has fewer days left than this is expiring (VDT's failure threshold is 30, its warning 60)."`
}

// Entry is one certificate entry of a VECS store.
type Entry struct {
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

// entriesOutputs are the outputs of vecs.entries.
type entriesOutputs struct {
	// Node is the PNID of the node read.
	Node string `json:"node" expr:"node"`
	// Stores are the stores read, in vecs-cli's order.
	Stores []string `json:"stores" expr:"stores"`
	// Entries are the certificate entries, store by store in entry list
	// order. CRLs and secrets are not certificates and are left out.
	Entries []Entry `json:"entries" expr:"entries"`
	// Expired are the entries whose certificate has expired.
	Expired []Entry `json:"expired" expr:"expired"`
	// Expiring are the entries that are still valid but expiring.
	Expiring []Entry `json:"expiring" expr:"expiring"`
	// Report is what the VECS one-liner prints (whitespace collapsed, as
	// the KB articles and blogs show it): "STORE <name>", then per entry
	// "Alias : <alias>" and, for a certificate, "Not After : <date> GMT".
	Report string `json:"report" expr:"report"`
}

var entriesStep = engine.Read[entriesParams, entriesOutputs]{
	Spec: engine.Spec{
		ID:      "vecs.entries",
		Summary: "List the certificates in a node's VECS stores with their expiry (the VECS one-liner).",
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
	n, err := conn.Node(env, p.Node)
	if err != nil {
		return entriesOutputs{}, err
	}
	stores := slices.Clone(p.Stores)
	if len(stores) == 0 {
		res, err := shell.Must(ctx, env, n, "vecs-cli store list", vecsCLI("store list"), "")
		if err != nil {
			return entriesOutputs{}, err
		}
		stores = ParseStoreList(res.Stdout)
	}
	for _, s := range stores {
		if s == "" {
			return entriesOutputs{}, errors.New("stores: an empty store name")
		}
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
		return entriesOutputs{}, err
	}
	out := entriesOutputs{Node: n.PNID(), Stores: stores, Entries: []Entry{}, Expired: []Entry{}, Expiring: []Entry{}}
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
			Store: store, Alias: le.Alias, Type: le.Type, Subject: info.Subject, Issuer: info.Issuer,
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
			Store: store, Alias: alias, Type: texts[i].Type, Subject: ct.Subject, Issuer: ct.Issuer,
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
