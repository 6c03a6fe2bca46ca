package ldap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"runbook/engine"
)

// modifyChange is one change of ldap.modify's changes param.
type modifyChange struct {
	Op     string   `yaml:"op" required:"true" enum:"add,delete,replace" doc:"add puts the values into the attribute (those already there are kept once); delete takes the values out, or the whole attribute when values is empty; replace makes the values the attribute's only ones, in order, or removes the attribute when values is empty."`
	Attr   string   `yaml:"attr" required:"true" doc:"The attribute to change, such as vmwLKUPEndpointSslTrust."`
	Values []string `yaml:"values" doc:"The values. A value starting with base64: is binary, given as standard base64."`
}

// modifyParams are the params of ldap.modify.
type modifyParams struct {
	Node    string         `yaml:"node" doc:"The PNID of the node whose vmdir to change; the target's first node when empty."`
	DN      string         `yaml:"dn" required:"true" doc:"The DN of the entry to change; it must exist."`
	Changes []modifyChange `yaml:"changes" required:"true" doc:"The changes, applied in order and sent as one atomic modify request."`
}

// modifyOutputs are the outputs of ldap.modify.
type modifyOutputs struct {
	// DN is the entry's DN.
	DN string `json:"dn" expr:"dn"`
	// Entry is the entry as the change leaves it.
	Entry Entry `json:"entry" expr:"entry"`
}

var modifyStep = engine.Write[modifyParams, modifyOutputs]{
	Spec: engine.Spec{
		ID:      "ldap.modify",
		Summary: "Change attributes of a vmdir entry, as ldapmodify with changetype: modify does.",
		Doc: "Changes say what the attributes should hold, so that the step can tell whether it is " +
			"in place and is safe to apply again: `add` makes sure values are there, `delete` " +
			"that they (or the attribute) are not, `replace` that the attribute holds exactly " +
			"the values given, in order. The plan reads the entry and shows each attribute that " +
			"would change, before and after; apply sends one atomic modify request. The backup " +
			"(`restore.ldif`) is the entry as it was, which Restore puts back byte for byte.\n\n" +
			"```yaml\n- id: trust\n  uses: ldap.modify\n  with:\n    dn: \"${{ steps.endpoint.dns[0] }}\"\n" +
			"    changes:\n      - {op: replace, attr: vmwLKUPEndpointSslTrust, values: [\"${{ steps.new.base64 }}\"]}\n```",
	},
	Plan:   planModify,
	Backup: backupModify,
	Apply:  applyModify,
	Check:  checkModify,
}

// modifyState is an entry and what the changes would make of it.
type modifyState struct {
	d         *directory
	have      *entry
	want      *entry
	attrNames []string // the attributes the changes touch, in order
}

// changed returns the touched attributes whose values want changes.
func (st *modifyState) changed() []string {
	var out []string
	for _, name := range st.attrNames {
		if !slices.EqualFunc(st.have.get(name), st.want.get(name), bytes.Equal) {
			out = append(out, name)
		}
	}
	return out
}

// readModify reads the entry and computes the state the changes lead to.
func readModify(ctx context.Context, env *engine.Env, p *modifyParams) (*modifyState, error) {
	if err := checkDN(p.DN); err != nil {
		return nil, fmt.Errorf("dn: %w", err)
	}
	if len(p.Changes) == 0 {
		return nil, errors.New("changes: nothing to change")
	}
	type change struct {
		op, name string
		values   [][]byte
	}
	changes := make([]change, len(p.Changes))
	for i, c := range p.Changes {
		if !validAttrName(c.Attr) {
			return nil, fmt.Errorf("changes[%d]: %q is not an attribute name", i, c.Attr)
		}
		vs, err := paramValues(c.Values)
		if err != nil {
			return nil, fmt.Errorf("changes[%d]: %w", i, err)
		}
		if c.Op == "add" && len(vs) == 0 {
			return nil, fmt.Errorf("changes[%d]: add %s without values", i, c.Attr)
		}
		changes[i] = change{op: c.Op, name: c.Attr, values: vs}
	}
	d, err := openDirectory(ctx, env, p.Node)
	if err != nil {
		return nil, err
	}
	have, err := d.get(ctx, p.DN)
	if err != nil {
		return nil, err
	}
	if have == nil {
		return nil, fmt.Errorf("%s does not exist", p.DN)
	}
	st := &modifyState{d: d, have: have, want: cloneEntry(have)}
	for _, c := range changes {
		if !slices.ContainsFunc(st.attrNames, func(n string) bool { return strings.EqualFold(n, c.name) }) {
			st.attrNames = append(st.attrNames, c.name)
		}
		cur := st.want.get(c.name)
		var next [][]byte
		switch c.op {
		case "add":
			next = slices.Clone(cur)
			for _, v := range c.values {
				if !containsValue(c.name, next, v) {
					next = append(next, v)
				}
			}
		case "delete":
			if len(c.values) > 0 {
				next = filterValues(cur, func(v []byte) bool { return !containsValue(c.name, c.values, v) })
			}
		case "replace":
			next = c.values
		default:
			return nil, fmt.Errorf("changes: unknown op %q", c.op)
		}
		st.want.set(c.name, next)
	}
	return st, nil
}

// containsValue reports whether vs holds v, as the attribute matches
// values: objectClass case-insensitively, others byte for byte.
func containsValue(name string, vs [][]byte, v []byte) bool {
	eq := bytes.Equal
	if strings.EqualFold(name, "objectClass") {
		eq = bytes.EqualFold
	}
	return slices.ContainsFunc(vs, func(x []byte) bool { return eq(x, v) })
}

// cloneEntry returns a deep copy of e.
func cloneEntry(e *entry) *entry {
	c := &entry{DN: e.DN, Attrs: make([]attr, len(e.Attrs))}
	for i, a := range e.Attrs {
		c.Attrs[i] = attr{Name: a.Name, Values: make([][]byte, len(a.Values))}
		for j, v := range a.Values {
			c.Attrs[i].Values[j] = bytes.Clone(v)
		}
	}
	return c
}

// set makes values the attribute's values; none removes it.
func (e *entry) set(name string, values [][]byte) {
	for i := range e.Attrs {
		if strings.EqualFold(e.Attrs[i].Name, name) {
			if len(values) == 0 {
				e.Attrs = slices.Delete(e.Attrs, i, i+1)
			} else {
				e.Attrs[i].Values = values
			}
			return
		}
	}
	if len(values) > 0 {
		e.Attrs = append(e.Attrs, attr{Name: name, Values: values})
	}
}

func planModify(ctx context.Context, env *engine.Env, p *modifyParams) (engine.Plan, error) {
	st, err := readModify(ctx, env, p)
	if err != nil {
		return engine.Plan{}, err
	}
	pl := engine.Plan{Facts: stateFacts([]entry{*st.have}, []*entry{st.have})}
	for _, name := range st.changed() {
		before, after := st.have.get(name), st.want.get(name)
		action := "update"
		switch {
		case len(before) == 0:
			action = "create"
		case len(after) == 0:
			action = "delete"
		}
		pl.Changes = append(pl.Changes, engine.Change{
			Action: action,
			Object: st.d.object(st.have.DN) + ": " + name,
			Before: redact(env, describeAttr(name, before)),
			After:  redact(env, describeAttr(name, after)),
		})
	}
	if len(pl.Changes) == 0 {
		pl.InPlace = true
		pl.Summary = fmt.Sprintf("%s on %s already holds the values", st.have.DN, st.d.pnid)
		return pl, nil
	}
	pl.Summary = fmt.Sprintf("change %s of %s on %s", strings.Join(st.changed(), ", "), st.have.DN, st.d.pnid)
	return pl, nil
}

func backupModify(ctx context.Context, env *engine.Env, p *modifyParams) ([]string, error) {
	st, err := readModify(ctx, env, p)
	if err != nil {
		return nil, err
	}
	header := fmt.Sprintf("Backup by ldap.modify on %s: the entry as it was.\nRestore (runbook/steps/ldap) puts it back.", st.d.pnid)
	return writeBackup(env, header, []record{{entry: *st.have}})
}

func applyModify(ctx context.Context, env *engine.Env, p *modifyParams) (modifyOutputs, error) {
	st, err := readModify(ctx, env, p)
	if err != nil {
		return modifyOutputs{}, err
	}
	var mods []mod
	for _, name := range st.changed() {
		if vs := st.want.get(name); len(vs) > 0 {
			mods = append(mods, mod{Op: "replace", attr: attr{Name: name, Values: vs}})
		} else {
			mods = append(mods, mod{Op: "delete", attr: attr{Name: name}})
		}
	}
	if len(mods) == 0 {
		return modifyOutputs{DN: st.have.DN, Entry: outputEntry(st.have, nil)}, nil
	}
	if err := st.d.modify(ctx, st.have.DN, mods); err != nil {
		return modifyOutputs{}, err
	}
	env.Logf("changed %d attributes of %s on %s", len(mods), st.have.DN, st.d.pnid)
	after, err := st.d.get(ctx, st.have.DN)
	if err != nil {
		return modifyOutputs{}, err
	}
	if after == nil {
		return modifyOutputs{}, fmt.Errorf("%s is gone after the change", st.have.DN)
	}
	return modifyOutputs{DN: after.DN, Entry: outputEntry(after, nil)}, nil
}

func checkModify(ctx context.Context, env *engine.Env, p *modifyParams) (engine.Verdict[modifyOutputs], error) {
	st, err := readModify(ctx, env, p)
	if err != nil {
		return engine.Verdict[modifyOutputs]{}, err
	}
	if ch := st.changed(); len(ch) > 0 {
		return engine.Verdict[modifyOutputs]{
			State:  engine.NotApplied,
			Detail: fmt.Sprintf("%s of %s differ", strings.Join(ch, ", "), st.have.DN),
		}, nil
	}
	return engine.Verdict[modifyOutputs]{
		State:   engine.Applied,
		Detail:  fmt.Sprintf("%s holds the values", st.have.DN),
		Outputs: modifyOutputs{DN: st.have.DN, Entry: outputEntry(st.have, nil)},
	}, nil
}
