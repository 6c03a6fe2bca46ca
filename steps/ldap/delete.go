package ldap

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"runbook/engine"
)

// deleteParams are the params of ldap.delete.
type deleteParams struct {
	Node    string   `yaml:"node" doc:"The PNID of the node whose vmdir to change; the target's first node when empty."`
	DNs     []string `yaml:"dns" required:"true" doc:"The DNs of the entries to delete, such as an earlier search's dns. DNs that do not exist are skipped, so an empty list or one already deleted is in place."`
	Subtree bool     `yaml:"subtree" doc:"Delete everything under each entry too, deepest first. Without it an entry with entries under it fails the step."`
}

// deleteOutputs are the outputs of ldap.delete.
type deleteOutputs struct {
	// DNs are the DNs given, which no longer exist.
	DNs []string `json:"dns" expr:"dns"`
}

var deleteStep = engine.Write[deleteParams, deleteOutputs]{
	Spec: engine.Spec{
		ID:      "ldap.delete",
		Summary: "Delete vmdir entries, and with subtree what is under them, as ldapdelete does.",
		Doc: "The plan lists every entry that would go, deepest first, with its attributes " +
			"(binary values by size and SHA-256, private keys as `<private key, N bytes>`); it is " +
			"in place when none of the DNs exists. The backup (`restore.ldif`) holds every " +
			"deleted entry as it was, parents first, binary values byte for byte — " +
			"vmwSTSPrivateKey and the userCertificate chain included — and Restore adds them " +
			"back exactly. Entries already gone are skipped, so a resumed run completes a " +
			"half-done delete.\n\n" +
			"```yaml\n- id: remove_old\n  uses: ldap.delete\n  with: {dns: \"${{ steps.creds.dns }}\"}\n```",
	},
	Plan:   planDelete,
	Backup: backupDelete,
	Apply:  applyDelete,
	Check:  checkDelete,
}

// doomed returns the entries the step would delete, parents first: each
// existing DN and, with subtree, what is under it.
func doomed(ctx context.Context, d *directory, p *deleteParams) ([]entry, error) {
	var out []entry
	seen := map[string]bool{}
	keep := func(e entry) {
		if k := normDN(e.DN); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	for _, dn := range p.DNs {
		if p.Subtree {
			es, err := d.subtree(ctx, dn)
			if err != nil {
				return nil, err
			}
			for _, e := range es {
				keep(e)
			}
			continue
		}
		e, err := d.get(ctx, dn)
		if err != nil {
			return nil, err
		}
		if e == nil {
			continue
		}
		n, err := d.children(ctx, dn)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, fmt.Errorf("%s has %s under it; set subtree: true to delete them too", dn, countEntries(n))
		}
		keep(*e)
	}
	sortParentsFirst(out)
	return out, nil
}

// readDelete checks the params and opens the node's directory.
func readDelete(ctx context.Context, env *engine.Env, p *deleteParams) (*directory, []entry, error) {
	for i, dn := range p.DNs {
		if err := checkDN(dn); err != nil {
			return nil, nil, fmt.Errorf("dns[%d]: %w", i, err)
		}
	}
	d, err := openDirectory(ctx, env, p.Node)
	if err != nil {
		return nil, nil, err
	}
	es, err := doomed(ctx, d, p)
	if err != nil {
		return nil, nil, err
	}
	return d, es, nil
}

// deepestFirst returns es in deletion order.
func deepestFirst(es []entry) []entry {
	out := slices.Clone(es)
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b entry) int { return cmp.Compare(depth(b.DN), depth(a.DN)) })
	return out
}

func planDelete(ctx context.Context, env *engine.Env, p *deleteParams) (engine.Plan, error) {
	d, es, err := readDelete(ctx, env, p)
	if err != nil {
		return engine.Plan{}, err
	}
	pl := engine.Plan{Facts: deleteFacts(p.DNs, es)}
	for _, e := range deepestFirst(es) {
		pl.Changes = append(pl.Changes, engine.Change{
			Action: "delete",
			Object: d.object(e.DN),
			Before: redact(env, describeEntry(&e)),
		})
	}
	if len(es) == 0 {
		pl.InPlace = true
		pl.Summary = fmt.Sprintf("none of the %d DNs exists in vmdir on %s", len(p.DNs), d.pnid)
		return pl, nil
	}
	pl.Summary = fmt.Sprintf("delete %s from vmdir on %s", countEntries(len(es)), d.pnid)
	return pl, nil
}

// deleteFacts are what a delete plan relied on: the digest of each entry
// it would delete, and which of the given DNs exist.
func deleteFacts(dns []string, es []entry) map[string]string {
	m := make(map[string]string, len(dns)+len(es))
	for _, dn := range dns {
		m[normDN(dn)] = "absent"
	}
	for i := range es {
		m[normDN(es[i].DN)] = entryDigest(&es[i])
	}
	return m
}

func backupDelete(ctx context.Context, env *engine.Env, p *deleteParams) ([]string, error) {
	d, es, err := readDelete(ctx, env, p)
	if err != nil {
		return nil, err
	}
	recs := make([]record, len(es))
	for i := range es {
		recs[i] = record{entry: es[i]}
	}
	header := fmt.Sprintf("Backup by ldap.delete on %s: %s as they were, parents first.\nRestore (runbook/steps/ldap) adds them back; values after \"::\" are base64, byte for byte.",
		d.pnid, countEntries(len(es)))
	return writeBackup(env, header, recs)
}

func applyDelete(ctx context.Context, env *engine.Env, p *deleteParams) (deleteOutputs, error) {
	d, es, err := readDelete(ctx, env, p)
	if err != nil {
		return deleteOutputs{}, err
	}
	for _, e := range deepestFirst(es) {
		if err := d.del(ctx, e.DN); err != nil {
			return deleteOutputs{}, err
		}
	}
	env.Logf("deleted %s from vmdir on %s", countEntries(len(es)), d.pnid)
	return deleteOutputs{DNs: slices.Clone(p.DNs)}, nil
}

func checkDelete(ctx context.Context, env *engine.Env, p *deleteParams) (engine.Verdict[deleteOutputs], error) {
	for i, dn := range p.DNs {
		if err := checkDN(dn); err != nil {
			return engine.Verdict[deleteOutputs]{}, fmt.Errorf("dns[%d]: %w", i, err)
		}
	}
	d, err := openDirectory(ctx, env, p.Node)
	if err != nil {
		return engine.Verdict[deleteOutputs]{}, err
	}
	exist := 0
	for _, dn := range p.DNs {
		e, err := d.get(ctx, dn)
		if err != nil {
			return engine.Verdict[deleteOutputs]{}, err
		}
		if e != nil {
			exist++
		}
	}
	if exist > 0 {
		return engine.Verdict[deleteOutputs]{
			State:  engine.NotApplied,
			Detail: fmt.Sprintf("%d of the %d DNs still exist", exist, len(p.DNs)),
		}, nil
	}
	return engine.Verdict[deleteOutputs]{
		State:   engine.Applied,
		Detail:  fmt.Sprintf("none of the %d DNs exists", len(p.DNs)),
		Outputs: deleteOutputs{DNs: slices.Clone(p.DNs)},
	}, nil
}
