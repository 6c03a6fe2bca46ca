package ldap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"runbook/internal/runfile"

	goldap "github.com/go-ldap/ldap/v3"

	"runbook/engine"
)

// addEntryParams is one entry of ldap.add's entries param.
type addEntryParams struct {
	DN    string              `yaml:"dn" required:"true" doc:"The new entry's DN."`
	Attrs map[string][]string `yaml:"attrs" required:"true" doc:"The entry's attributes: name → list of values. A value starting with base64: is binary, given as standard base64 (a certificate's DER, such as cert.parse's base64 output)."`
}

// addParams are the params of ldap.add.
type addParams struct {
	Node     string           `yaml:"node" doc:"The PNID of the node whose vmdir to change; the target's first node when empty."`
	Entries  []addEntryParams `yaml:"entries" doc:"The entries to add, each with its dn and attrs."`
	LDIF     string           `yaml:"ldif" doc:"Entries to add as LDIF text (RFC 2849): content records or changetype: add records. name:< file: values are read relative to the run folder."`
	LDIFFile string           `yaml:"ldif_file" doc:"An LDIF file of entries to add, such as one a previous step wrote into the run folder (a relative path is relative to it). name:< file: values are read relative to the file's folder, as ldapmodify -f does; this is how a private key is added without passing through params."`
}

// addOutputs are the outputs of ldap.add.
type addOutputs struct {
	// DNs are the DNs of the entries, parents first.
	DNs []string `json:"dns" expr:"dns"`
	// Count is len(DNs).
	Count int `json:"count" expr:"count"`
}

var addStep = engine.Write[addParams, addOutputs]{
	Spec: engine.Spec{
		ID:      "ldap.add",
		Summary: "Add entries to vmdir, as ldapmodify -f with changetype: add does.",
		Doc: "The entries come from `entries`, `ldif` and `ldif_file` together (at least one entry), " +
			"and are added parents first. An entry that already exists with the given values (the " +
			"attributes given; the server's own, such as the RDN, are not compared) counts as " +
			"added, so a resumed run completes a half-done add; one that exists with other values " +
			"fails the step — ldap.add never overwrites. Binary values are compared byte for byte " +
			"and in order (a certificate chain is leaf first), other values as sets.\n\n" +
			"The plan shows each new entry with binary values by size and SHA-256 (certificates by " +
			"subject and expiry) and private keys as `<private key, N bytes>`. The backup " +
			"(`restore.ldif`) records the entries that did not exist, as delete records: Restore " +
			"removes them.\n\n" +
			"```yaml\n- id: add_creds\n  uses: ldap.add\n  with:\n    ldif_file: sts/sso-sts.ldif\n```",
	},
	Plan:   planAdd,
	Backup: backupAdd,
	Apply:  applyAdd,
	Check:  checkAdd,
}

// addEntries collects and checks the entries to add, parents first.
func addEntries(env *engine.Env, p *addParams) ([]entry, error) {
	var out []entry
	for i, pe := range p.Entries {
		e, err := paramEntry(pe)
		if err != nil {
			return nil, fmt.Errorf("entries[%d]: %w", i, err)
		}
		out = append(out, e)
	}
	if p.LDIF != "" {
		opts := ldifOptions{}
		if env.RunDir != "" {
			opts.ReadURL = fileURLReader(env.RunDir)
		}
		recs, err := parseLDIF(strings.NewReader(p.LDIF), opts)
		if err != nil {
			return nil, fmt.Errorf("ldif: %w", err)
		}
		es, err := addRecords(recs)
		if err != nil {
			return nil, fmt.Errorf("ldif: %w", err)
		}
		out = append(out, es...)
	}
	if p.LDIFFile != "" {
		path := p.LDIFFile
		if !filepath.IsAbs(path) {
			if env.RunDir == "" {
				return nil, fmt.Errorf("ldif_file: %q is relative, and this run has no run folder", path)
			}
			path = filepath.Join(env.RunDir, path)
		}
		recs, err := readLDIFFile(path)
		if err != nil {
			return nil, fmt.Errorf("ldif_file: %w", err)
		}
		es, err := addRecords(recs)
		if err != nil {
			return nil, fmt.Errorf("ldif_file %s: %w", path, err)
		}
		out = append(out, es...)
	}
	if len(out) == 0 {
		return nil, errors.New("no entries to add: give entries, ldif or ldif_file")
	}
	seen := map[string]bool{}
	for _, e := range out {
		if err := checkDN(e.DN); err != nil {
			return nil, err
		}
		k := normDN(e.DN)
		if seen[k] {
			return nil, fmt.Errorf("entry %s is given twice", e.DN)
		}
		seen[k] = true
	}
	sortParentsFirst(out)
	return out, nil
}

// paramEntry converts an entry of the entries param: objectClass first,
// then the attributes by name.
func paramEntry(pe addEntryParams) (entry, error) {
	if err := checkDN(pe.DN); err != nil {
		return entry{}, fmt.Errorf("dn: %w", err)
	}
	if len(pe.Attrs) == 0 {
		return entry{}, fmt.Errorf("%s: no attributes", pe.DN)
	}
	names := make([]string, 0, len(pe.Attrs))
	for name := range pe.Attrs {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		ao, bo := strings.EqualFold(a, "objectClass"), strings.EqualFold(b, "objectClass")
		switch {
		case ao && !bo:
			return -1
		case bo && !ao:
			return 1
		}
		return strings.Compare(strings.ToLower(a), strings.ToLower(b))
	})
	e := entry{DN: pe.DN}
	for _, name := range names {
		if !validAttrName(name) {
			return entry{}, fmt.Errorf("%s: %q is not an attribute name", pe.DN, name)
		}
		if len(pe.Attrs[name]) == 0 {
			return entry{}, fmt.Errorf("%s: %s has no values", pe.DN, name)
		}
		vs, err := paramValues(pe.Attrs[name])
		if err != nil {
			return entry{}, fmt.Errorf("%s: %s: %w", pe.DN, name, err)
		}
		e.add(name, vs...)
	}
	return e, nil
}

// addRecords takes the entries of content and add records.
func addRecords(recs []record) ([]entry, error) {
	out := make([]entry, 0, len(recs))
	for _, r := range recs {
		if r.ChangeType != "" && r.ChangeType != changeAdd {
			return nil, fmt.Errorf("line %d: %s is a %s record; ldap.add only adds entries", r.Line, r.DN, r.ChangeType)
		}
		out = append(out, r.entry)
	}
	return out, nil
}

// addState is what the directory holds of the entries to add.
type addState struct {
	d       *directory
	entries []entry
	// have[i] is the existing entry named like entries[i], or nil.
	have []*entry
}

// readAdd reads the current state of the entries to add.
func readAdd(ctx context.Context, env *engine.Env, p *addParams) (*addState, error) {
	es, err := addEntries(env, p)
	if err != nil {
		return nil, err
	}
	d, err := openDirectory(ctx, env, p.Node)
	if err != nil {
		return nil, err
	}
	st := &addState{d: d, entries: es, have: make([]*entry, len(es))}
	for i := range es {
		if st.have[i], err = d.get(ctx, es[i].DN); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// conflict returns an error for the first entry that exists with other
// values, or nil.
func (st *addState) conflict() error {
	for i, h := range st.have {
		if h == nil {
			continue
		}
		if a := difference(&st.entries[i], h); a != "" {
			return existsError(st.entries[i].DN, a)
		}
	}
	return nil
}

func existsError(dn, attr string) error {
	return fmt.Errorf("%s already exists with other %s values; ldap.add never overwrites: delete the entry first, or change it with ldap.modify", dn, attr)
}

func (st *addState) outputs() addOutputs {
	out := addOutputs{DNs: make([]string, len(st.entries)), Count: len(st.entries)}
	for i, e := range st.entries {
		out.DNs[i] = e.DN
	}
	return out
}

func planAdd(ctx context.Context, env *engine.Env, p *addParams) (engine.Plan, error) {
	st, err := readAdd(ctx, env, p)
	if err != nil {
		return engine.Plan{}, err
	}
	if err := st.conflict(); err != nil {
		return engine.Plan{}, err
	}
	pl := engine.Plan{Facts: stateFacts(st.entries, st.have)}
	for i := range st.entries {
		if st.have[i] != nil {
			continue
		}
		pl.Changes = append(pl.Changes, engine.Change{
			Action: "create",
			Object: st.d.object(st.entries[i].DN),
			After:  redact(env, describeEntry(&st.entries[i])),
		})
	}
	n, there := len(st.entries), len(st.entries)-len(pl.Changes)
	switch {
	case there == n:
		pl.InPlace = true
		pl.Summary = fmt.Sprintf("%s already in vmdir on %s", countEntries(n), st.d.pnid)
	case there > 0:
		pl.Summary = fmt.Sprintf("add %s to vmdir on %s (%d already there)", countEntries(len(pl.Changes)), st.d.pnid, there)
	default:
		pl.Summary = fmt.Sprintf("add %s to vmdir on %s", countEntries(n), st.d.pnid)
	}
	return pl, nil
}

// countEntries says "1 entry" or "n entries".
func countEntries(n int) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}

// backupFile is the name of a write step's backup in its backup folder.
const backupFile = "restore.ldif"

func backupAdd(ctx context.Context, env *engine.Env, p *addParams) ([]string, error) {
	st, err := readAdd(ctx, env, p)
	if err != nil {
		return nil, err
	}
	var recs []record
	for i := range st.entries {
		if st.have[i] == nil {
			recs = append(recs, record{entry: entry{DN: st.entries[i].DN}, ChangeType: changeDelete})
		}
	}
	header := fmt.Sprintf("Backup by ldap.add on %s: these entries did not exist before it.\nRestore (runbook/steps/ldap) deletes them again.", st.d.pnid)
	return writeBackup(env, header, recs)
}

// writeBackup writes records as the step's backup file.
func writeBackup(env *engine.Env, header string, recs []record) ([]string, error) {
	if env.BackupDir == "" {
		return nil, errors.New("no backup folder")
	}
	var buf bytes.Buffer
	if err := writeLDIF(&buf, header, recs); err != nil {
		return nil, err
	}
	path := filepath.Join(env.BackupDir, backupFile)
	if err := runfile.Write(path, buf.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("back up: %w", err)
	}
	return []string{path}, nil
}

func applyAdd(ctx context.Context, env *engine.Env, p *addParams) (addOutputs, error) {
	st, err := readAdd(ctx, env, p)
	if err != nil {
		return addOutputs{}, err
	}
	if err := st.conflict(); err != nil {
		return addOutputs{}, err
	}
	added := 0
	for i := range st.entries {
		e := &st.entries[i]
		if st.have[i] != nil {
			continue
		}
		err := st.d.add(ctx, e)
		if goldap.IsErrorWithCode(err, goldap.LDAPResultEntryAlreadyExists) {
			// Someone added it since it was read: fine if it is the same.
			h, gerr := st.d.get(ctx, e.DN)
			if gerr != nil {
				return addOutputs{}, gerr
			}
			if h != nil {
				if a := difference(e, h); a != "" {
					return addOutputs{}, existsError(e.DN, a)
				}
				continue
			}
		}
		if err != nil {
			return addOutputs{}, err
		}
		added++
	}
	env.Logf("added %s to vmdir on %s", countEntries(added), st.d.pnid)
	return st.outputs(), nil
}

func checkAdd(ctx context.Context, env *engine.Env, p *addParams) (engine.Verdict[addOutputs], error) {
	st, err := readAdd(ctx, env, p)
	if err != nil {
		return engine.Verdict[addOutputs]{}, err
	}
	missing := 0
	for i, h := range st.have {
		if h == nil {
			missing++
			continue
		}
		if a := difference(&st.entries[i], h); a != "" {
			return engine.Verdict[addOutputs]{
				State:  engine.NotApplied,
				Detail: fmt.Sprintf("%s exists with other %s values", st.entries[i].DN, a),
			}, nil
		}
	}
	if missing > 0 {
		return engine.Verdict[addOutputs]{
			State:  engine.NotApplied,
			Detail: fmt.Sprintf("%d of %s missing", missing, countEntries(len(st.entries))),
		}, nil
	}
	return engine.Verdict[addOutputs]{
		State:   engine.Applied,
		Detail:  fmt.Sprintf("all %s present", countEntries(len(st.entries))),
		Outputs: st.outputs(),
	}, nil
}
