package ldap

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"runbook/engine"
	"runbook/steps/conn"
)

// directory is a bound vmdir connection of one node, with the operations
// the steps need.
type directory struct {
	c    *goldap.Conn
	pnid string
}

// openDirectory returns the vmdir connection of the node named pnid (the
// target's first node when empty).
func openDirectory(ctx context.Context, env *engine.Env, pnid string) (*directory, error) {
	n, err := conn.Node(env, pnid)
	if err != nil {
		return nil, err
	}
	c, err := n.LDAP(ctx)
	if err != nil {
		return nil, err
	}
	return &directory{c: c, pnid: n.PNID()}, nil
}

// object names an entry in plans: "<pnid> ldap <dn>".
func (d *directory) object(dn string) string { return d.pnid + " ldap " + dn }

// pageSize is the page size of searches, below the size limits servers
// apply to a single page.
const pageSize = 500

// scopes maps the scope param to LDAP scopes.
var scopes = map[string]int{
	"base": goldap.ScopeBaseObject,
	"one":  goldap.ScopeSingleLevel,
	"sub":  goldap.ScopeWholeSubtree,
}

// search returns the entries at or under base that match filter, with the
// given attributes (every user attribute when attrs is empty), in server
// order.
func (d *directory) search(ctx context.Context, base string, scope int, filter string, attrs []string) ([]entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(attrs) == 0 {
		attrs = []string{"*"}
	}
	req := goldap.NewSearchRequest(base, scope, goldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
	res, err := d.c.SearchWithPaging(req, pageSize)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", base, err)
	}
	out := make([]entry, len(res.Entries))
	for i, e := range res.Entries {
		out[i] = fromLDAP(e)
	}
	return out, nil
}

// fromLDAP converts a go-ldap entry, keeping values byte for byte.
func fromLDAP(e *goldap.Entry) entry {
	out := entry{DN: e.DN, Attrs: make([]attr, 0, len(e.Attributes))}
	for _, a := range e.Attributes {
		out.add(a.Name, a.ByteValues...)
	}
	return out
}

// get returns the entry dn with every user attribute, or nil when it does
// not exist.
func (d *directory) get(ctx context.Context, dn string) (*entry, error) {
	es, err := d.search(ctx, dn, goldap.ScopeBaseObject, "(objectClass=*)", nil)
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(es) != 1 {
		return nil, fmt.Errorf("read %s: the server returned %d entries", dn, len(es))
	}
	return &es[0], nil
}

// subtree returns dn and every entry under it, parents first, or nil when
// dn does not exist.
func (d *directory) subtree(ctx context.Context, dn string) ([]entry, error) {
	es, err := d.search(ctx, dn, goldap.ScopeWholeSubtree, "(objectClass=*)", nil)
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sortParentsFirst(es)
	return es, nil
}

// children counts the entries directly under dn.
func (d *directory) children(ctx context.Context, dn string) (int, error) {
	es, err := d.search(ctx, dn, goldap.ScopeSingleLevel, "(objectClass=*)", []string{"1.1"})
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return 0, nil
	}
	return len(es), err
}

// add adds e.
func (d *directory) add(ctx context.Context, e *entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := goldap.NewAddRequest(e.DN, nil)
	for _, a := range e.Attrs {
		if isOperationalAttr(a.Name) {
			continue
		}
		req.Attribute(a.Name, strs(a.Values))
	}
	if err := d.c.Add(req); err != nil {
		return fmt.Errorf("add %s: %w", e.DN, err)
	}
	return nil
}

// del deletes the leaf entry dn. A missing entry is not an error.
func (d *directory) del(ctx context.Context, dn string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := d.c.Del(goldap.NewDelRequest(dn, nil))
	if err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return fmt.Errorf("delete %s: %w", dn, err)
	}
	return nil
}

// modify applies mods to dn in one request, atomically.
func (d *directory) modify(ctx context.Context, dn string, mods []mod) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := goldap.NewModifyRequest(dn, nil)
	for _, m := range mods {
		switch m.Op {
		case "add":
			req.Add(m.Name, strs(m.Values))
		case "delete":
			req.Delete(m.Name, strs(m.Values))
		case "replace":
			req.Replace(m.Name, strs(m.Values))
		default:
			return fmt.Errorf("modify %s: unknown operation %q", dn, m.Op)
		}
	}
	if err := d.c.Modify(req); err != nil {
		return fmt.Errorf("modify %s: %w", dn, err)
	}
	return nil
}

// strs converts values for go-ldap, whose strings carry any bytes.
func strs(vs [][]byte) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// depth is the number of RDNs of dn; a DN that does not parse counts its
// commas.
func depth(dn string) int {
	if p, err := goldap.ParseDN(dn); err == nil {
		return len(p.RDNs)
	}
	return strings.Count(dn, ",") + 1
}

// sortParentsFirst orders entries so that every parent comes before its
// children, keeping the order of entries at the same depth.
func sortParentsFirst(es []entry) {
	slices.SortStableFunc(es, func(a, b entry) int { return cmp.Compare(depth(a.DN), depth(b.DN)) })
}

// sameDN reports whether two DNs name the same entry (case-insensitive,
// as vmdir matches them).
func sameDN(a, b string) bool {
	pa, errA := goldap.ParseDN(a)
	pb, errB := goldap.ParseDN(b)
	if errA != nil || errB != nil {
		return strings.EqualFold(a, b)
	}
	return pa.EqualFold(pb)
}

// normDN returns a key under which equal DNs (see sameDN) are equal.
func normDN(dn string) string {
	p, err := goldap.ParseDN(dn)
	if err != nil {
		return strings.ToLower(dn)
	}
	var b strings.Builder
	for i, r := range p.RDNs {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, a := range r.Attributes {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(strings.ToLower(a.Type))
			b.WriteByte('=')
			b.WriteString(strings.ToLower(goldap.EscapeDN(a.Value)))
		}
	}
	return b.String()
}

// checkDN reports a DN that does not parse.
func checkDN(dn string) error {
	if strings.TrimSpace(dn) == "" {
		return errors.New("empty DN")
	}
	if _, err := goldap.ParseDN(dn); err != nil {
		return fmt.Errorf("DN %q: %w", abbreviate(dn), err)
	}
	return nil
}

// Restore puts the directory reached through conn back into the state an
// LDIF backup written by ldap.add, ldap.modify or ldap.delete describes
// (found in the run folder under backups/<step id>/):
//
//   - a "changetype: delete" record names an entry that did not exist: it is
//     deleted if it exists now (children first);
//   - a content or "changetype: add" record is an entry as it was: it is
//     added when missing, and otherwise its user attributes are made exactly
//     the recorded ones, values byte for byte and in order — attributes
//     that the record lacks are removed.
//
// Deletions run first, deepest entries first; then entries are restored
// parents first. Server-maintained attributes (uSNCreated, entryUUID, …)
// are never written. Restore is idempotent: running it again changes
// nothing. conn must be bound with the right to write those entries.
func Restore(ctx context.Context, conn *goldap.Conn, ldifPath string) error {
	recs, err := readLDIFFile(ldifPath)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	d := &directory{c: conn}
	var dels, puts []entry
	for _, r := range recs {
		switch r.ChangeType {
		case changeDelete:
			dels = append(dels, r.entry)
		case "", changeAdd:
			puts = append(puts, r.entry)
		default:
			return fmt.Errorf("restore %s: line %d: a backup holds no %s records", ldifPath, r.Line, r.ChangeType)
		}
	}
	slices.SortStableFunc(dels, func(a, b entry) int { return cmp.Compare(depth(b.DN), depth(a.DN)) })
	for _, e := range dels {
		if err := d.del(ctx, e.DN); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	sortParentsFirst(puts)
	for i := range puts {
		if err := d.put(ctx, &puts[i]); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	return nil
}

// put makes the entry want exist with exactly its user attributes.
func (d *directory) put(ctx context.Context, want *entry) error {
	have, err := d.get(ctx, want.DN)
	if err != nil {
		return err
	}
	if have == nil {
		return d.add(ctx, want)
	}
	mods := exactMods(want, have)
	if len(mods) == 0 {
		return nil
	}
	return d.modify(ctx, want.DN, mods)
}

// exactMods returns the modifications that turn have's user attributes
// into exactly want's.
func exactMods(want, have *entry) []mod {
	var mods []mod
	for _, a := range want.Attrs {
		if isOperationalAttr(a.Name) {
			continue
		}
		if !slices.EqualFunc(a.Values, have.get(a.Name), bytes.Equal) {
			mods = append(mods, mod{Op: "replace", attr: a})
		}
	}
	for _, a := range have.Attrs {
		if isOperationalAttr(a.Name) || want.get(a.Name) != nil {
			continue
		}
		mods = append(mods, mod{Op: "delete", attr: attr{Name: a.Name}})
	}
	return mods
}
