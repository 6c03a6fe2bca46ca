// Package vmdir is an in-memory model of VMware Directory Service (vmdir),
// the LDAP directory of a vCenter SSO domain: a DN tree with vmdir's
// schema for the entries certificate procedures touch (tenant credentials,
// trusted chains, service principals, CAs, Lookup Service registrations,
// servers and replication agreements), real RFC 4515 filter evaluation,
// LDAP result codes, and update sequence numbers (USNs).
//
// Package ldapd serves a Directory over LDAP and LDAPS.
package vmdir

import (
	"crypto/subtle"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Scope is the scope of a search, with LDAP's numeric values.
type Scope int

// Search scopes.
const (
	ScopeBase Scope = 0 // the base entry only
	ScopeOne  Scope = 1 // the base entry's children
	ScopeSub  Scope = 2 // the base entry and all its descendants
)

// ModOp is the operation of a modify change, with LDAP's numeric values.
type ModOp int

// Modify operations.
const (
	ModAdd     ModOp = 0 // add values (attributeOrValueExists on a duplicate)
	ModDelete  ModOp = 1 // delete the given values, or the attribute when none given
	ModReplace ModOp = 2 // replace all values (delete the attribute when none given)
)

// Change is one modification of a Modify call.
type Change struct {
	Op   ModOp
	Attr Attr
}

// Directory is an in-memory vmdir instance holding one naming context. It
// is safe for concurrent use.
type Directory struct {
	mu     sync.RWMutex
	suffix string
	top    *node
	nodes  map[string]*node // by normalized DN
	usn    int64
	hook   atomic.Pointer[func(op, dn string) error]
}

// node is a stored entry and its place in the tree.
type node struct {
	entry    *Entry // canonical attribute names; owned by the directory
	rdns     []rdn
	norm     string
	key      string
	parent   *node
	children map[string]*node
	created  int64
	changed  int64
	ops      []Attr // operational attributes, in output order
	idx      map[string]*indexedAttr
}

func (n *node) lookup(lower string) *indexedAttr { return n.idx[lower] }

// reindex rebuilds the matching index of n from its entry.
func (n *node) reindex() {
	n.idx = make(map[string]*indexedAttr, len(n.entry.Attrs)+2)
	for _, a := range n.entry.Attrs {
		t := lookupAttr(a.Name)
		if t == nil {
			t = &attrType{name: a.Name}
		}
		ia := &indexedAttr{t: t, vals: a.Values, norms: make([]string, len(a.Values))}
		for i, v := range a.Values {
			ia.norms[i] = normValue(t, v)
		}
		n.idx[strings.ToLower(a.Name)] = ia
	}
	n.ops = nil
	if n.created != 0 {
		n.setOperational(
			StrAttr("uSNCreated", strconv.FormatInt(n.created, 10)),
			StrAttr("uSNChanged", strconv.FormatInt(n.changed, 10)))
	}
}

// setOperational records server-maintained attributes of n (single-valued
// integers) for output and matching.
func (n *node) setOperational(attrs ...Attr) {
	for _, a := range attrs {
		t := lookupAttr(a.Name)
		n.ops = append(n.ops, a)
		n.idx[strings.ToLower(a.Name)] = &indexedAttr{t: t, vals: a.Values, norms: []string{string(a.Values[0])}}
	}
}

// New returns a directory whose naming context is suffix (for example
// "dc=vsphere,dc=local"), holding only the suffix entry (objectClass top,
// domainDNS, dcObject). It panics if suffix is not a DN starting with dc=.
func New(suffix string) *Directory {
	rs, err := parseDN(suffix)
	if err != nil || len(rs) == 0 || len(rs[0]) != 1 || !strings.EqualFold(rs[0][0].typ, "dc") {
		panic(fmt.Sprintf("vmdir.New: suffix %q must be a DN starting with dc=", suffix))
	}
	d := &Directory{suffix: strings.TrimSpace(suffix), nodes: map[string]*node{}}
	e := NewEntry(d.suffix,
		StrAttr("objectClass", "top", "domainDNS", "dcObject"),
		StrAttr("dc", rs[0][0].val),
	)
	d.usn++
	n := &node{entry: e, rdns: rs, norm: normRDNs(rs), key: sortKey(rs),
		children: map[string]*node{}, created: d.usn, changed: d.usn}
	n.reindex()
	d.top = n
	d.nodes[n.norm] = n
	return d
}

// Suffix returns the DN of the naming context, as given to New.
func (d *Directory) Suffix() string { return d.suffix }

// HighestUSN returns the highest committed update sequence number. Every
// successful write increments it; entries carry it as uSNCreated and
// uSNChanged.
func (d *Directory) HighestUSN() int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.usn
}

// SetWriteHook installs fn to be called before every write (op is "add",
// "modify" or "delete", dn as given by the caller) and before the write is
// validated; a non-nil error aborts the write and is returned, wrapped.
// Tests use it to inject faults ("fail the next write"). nil removes it.
func (d *Directory) SetWriteHook(fn func(op, dn string) error) {
	if fn == nil {
		d.hook.Store(nil)
		return
	}
	d.hook.Store(&fn)
}

func (d *Directory) runHook(op, dn string) error {
	if fn := d.hook.Load(); fn != nil {
		if err := (*fn)(op, dn); err != nil {
			return fmt.Errorf("%s %s: write hook: %w", op, dn, err)
		}
	}
	return nil
}

// Add adds e. Its parent must exist (32 noSuchObject), its DN must be new
// (68 entryAlreadyExists), and it must satisfy the schema (17 unknown
// attribute, 21 bad value, 65 object class rules, 19 SINGLE-VALUE). Values
// of the RDN missing from the attributes are added. e is not retained.
func (d *Directory) Add(e *Entry) error {
	if e == nil {
		return errorf(CodeProtocolError, "add: nil entry")
	}
	if err := d.runHook("add", e.DN); err != nil {
		return err
	}
	rs, err := parseDN(e.DN)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		return errorf(CodeUnwillingToPerform, "cannot add the root DSE")
	}
	pe, err := prepareEntry(e)
	if err != nil {
		return err
	}
	for _, av := range rs[0] {
		t := lookupAttr(av.typ)
		if t == nil {
			return errorf(CodeUndefinedAttributeType, "%s: naming attribute type undefined", av.typ)
		}
		if !hasValue(t, pe.Values(t.name), []byte(av.val)) {
			if i := pe.attrIndex(t.name); i >= 0 {
				pe.Attrs[i].Values = append(pe.Attrs[i].Values, []byte(av.val))
			} else {
				pe.Attrs = append(pe.Attrs, Attr{Name: t.name, Values: [][]byte{[]byte(av.val)}})
			}
		}
	}
	if err := checkEntry(pe, rs[0]); err != nil {
		return err
	}
	pe.DN = strings.TrimSpace(e.DN)

	n := &node{entry: pe, rdns: rs, norm: normRDNs(rs), key: sortKey(rs), children: map[string]*node{}}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nodes[n.norm] != nil {
		return errorf(CodeEntryAlreadyExists, "entry %q already exists", e.DN)
	}
	parent := d.nodes[normRDNs(rs[1:])]
	if len(rs) == 1 || parent == nil {
		return errorf(CodeNoSuchObject, "parent of %q does not exist", e.DN)
	}
	d.usn++
	n.created, n.changed = d.usn, d.usn
	n.parent = parent
	n.reindex()
	parent.children[n.norm] = n
	d.nodes[n.norm] = n
	return nil
}

// Modify applies changes to the entry dn atomically: all or none. Errors:
// 32 missing entry, 17 unknown attribute, 21 bad value, 16 deleting a
// missing attribute or value, 20 adding an existing value, 65/19 schema
// violations of the result, 67 removing an RDN value, 53 writing an
// operational attribute.
func (d *Directory) Modify(dn string, changes []Change) error {
	if err := d.runHook("modify", dn); err != nil {
		return err
	}
	rs, err := parseDN(dn)
	if err != nil {
		return err
	}
	norm := normRDNs(rs)
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.nodes[norm]
	if n == nil {
		return errorf(CodeNoSuchObject, "entry %q does not exist", dn)
	}
	cur := n.entry.Clone()
	for _, c := range changes {
		if err := applyChange(cur, c); err != nil {
			return err
		}
	}
	if err := checkEntry(cur, n.rdns[0]); err != nil {
		return err
	}
	d.usn++
	n.entry = cur
	n.changed = d.usn
	n.reindex()
	return nil
}

func applyChange(e *Entry, c Change) error {
	t := lookupAttr(c.Attr.Name)
	if t == nil {
		return errorf(CodeUndefinedAttributeType, "%s: attribute type undefined", c.Attr.Name)
	}
	if t.operational {
		return errorf(CodeUnwillingToPerform, "%s: no user modification allowed", t.name)
	}
	var vals [][]byte
	for _, v := range c.Attr.Values {
		if c.Op != ModDelete {
			if err := validateValue(t, v); err != nil {
				return err
			}
		}
		if hasValue(t, vals, v) {
			return errorf(CodeAttributeOrValueExists, "%s: value provided more than once", t.name)
		}
		vals = append(vals, slices.Clone(v))
	}
	i := e.attrIndex(t.name)
	switch c.Op {
	case ModAdd:
		if len(vals) == 0 {
			return errorf(CodeProtocolError, "modify/add: %s: no values given", t.name)
		}
		if i < 0 {
			e.Attrs = append(e.Attrs, Attr{Name: t.name})
			i = len(e.Attrs) - 1
		}
		for _, v := range vals {
			if hasValue(t, e.Attrs[i].Values, v) {
				return errorf(CodeAttributeOrValueExists, "modify/add: %s: value already exists", t.name)
			}
			e.Attrs[i].Values = append(e.Attrs[i].Values, v)
		}
	case ModDelete:
		if i < 0 {
			return errorf(CodeNoSuchAttribute, "modify/delete: %s: no such attribute", t.name)
		}
		if len(vals) == 0 {
			e.Attrs = slices.Delete(e.Attrs, i, i+1)
			return nil
		}
		for _, v := range vals {
			n := normValue(t, v)
			j := slices.IndexFunc(e.Attrs[i].Values, func(x []byte) bool { return normValue(t, x) == n })
			if j < 0 {
				return errorf(CodeNoSuchAttribute, "modify/delete: %s: no such value", t.name)
			}
			e.Attrs[i].Values = slices.Delete(e.Attrs[i].Values, j, j+1)
		}
		if len(e.Attrs[i].Values) == 0 {
			e.Attrs = slices.Delete(e.Attrs, i, i+1)
		}
	case ModReplace:
		switch {
		case len(vals) == 0 && i >= 0:
			e.Attrs = slices.Delete(e.Attrs, i, i+1)
		case len(vals) == 0:
		case i >= 0:
			e.Attrs[i].Values = vals
		default:
			e.Attrs = append(e.Attrs, Attr{Name: t.name, Values: vals})
		}
	default:
		return errorf(CodeProtocolError, "modify: unknown operation %d", c.Op)
	}
	return nil
}

// Delete removes the leaf entry dn: 32 when missing, 66 when it has
// children, 53 for the suffix entry.
func (d *Directory) Delete(dn string) error {
	if err := d.runHook("delete", dn); err != nil {
		return err
	}
	rs, err := parseDN(dn)
	if err != nil {
		return err
	}
	norm := normRDNs(rs)
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.nodes[norm]
	switch {
	case n == nil:
		return errorf(CodeNoSuchObject, "entry %q does not exist", dn)
	case n == d.top:
		return errorf(CodeUnwillingToPerform, "cannot delete the naming context %q", dn)
	case len(n.children) > 0:
		return errorf(CodeNotAllowedOnNonLeaf, "entry %q has %d children", dn, len(n.children))
	}
	d.usn++
	delete(n.parent.children, norm)
	delete(d.nodes, norm)
	return nil
}

// Get returns a copy of the entry dn with all its attributes, including the
// operational uSNCreated and uSNChanged (which Add and Modify refuse: drop
// them before writing the entry back). "" returns the root DSE. A missing
// entry is 32 noSuchObject.
func (d *Directory) Get(dn string) (*Entry, error) {
	rs, err := parseDN(dn)
	if err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if len(rs) == 0 {
		return project(d.rootDSE(), selectAll), nil
	}
	n := d.nodes[normRDNs(rs)]
	if n == nil {
		return nil, errorf(CodeNoSuchObject, "entry %q does not exist", dn)
	}
	return project(n, selectAll), nil
}

// Search returns copies of the entries at or under base (per scope) that
// match filter (RFC 4515; "" means every entry), sorted parent first in DN
// order. attrs selects attributes as LDAP does: empty or "*" all user
// attributes, "+" the operational ones (uSNCreated, uSNChanged, and
// highestCommittedUSN on the root DSE), names select those attributes, "1.1"
// none. Base "" with ScopeBase is the root DSE. A missing base is 32, a bad
// filter 87 (filterError).
func (d *Directory) Search(base string, scope Scope, filter string, attrs []string) ([]*Entry, error) {
	f, err := compileFilter(filter)
	if err != nil {
		return nil, err
	}
	if scope < ScopeBase || scope > ScopeSub {
		return nil, errorf(CodeProtocolError, "invalid scope %d", scope)
	}
	rs, err := parseDN(base)
	if err != nil {
		return nil, err
	}
	sel := newSelection(attrs)

	d.mu.RLock()
	defer d.mu.RUnlock()
	var cands []*node
	if len(rs) == 0 {
		switch scope {
		case ScopeBase:
			cands = []*node{d.rootDSE()}
		case ScopeOne:
			cands = []*node{d.top}
		default:
			cands = d.subtree(d.top, nil)
		}
	} else {
		n := d.nodes[normRDNs(rs)]
		if n == nil {
			return nil, errorf(CodeNoSuchObject, "base %q does not exist", base)
		}
		switch scope {
		case ScopeBase:
			cands = []*node{n}
		case ScopeOne:
			for _, c := range n.children {
				cands = append(cands, c)
			}
		default:
			cands = d.subtree(n, nil)
		}
	}
	var hits []*node
	for _, n := range cands {
		if f.eval(n) == triTrue {
			hits = append(hits, n)
		}
	}
	slices.SortFunc(hits, func(a, b *node) int { return strings.Compare(a.key, b.key) })
	out := make([]*Entry, len(hits))
	for i, n := range hits {
		out[i] = project(n, sel)
	}
	return out, nil
}

func (d *Directory) subtree(n *node, acc []*node) []*node {
	acc = append(acc, n)
	for _, c := range n.children {
		acc = d.subtree(c, acc)
	}
	return acc
}

// rootDSE builds the root DSE node; d.mu must be held.
func (d *Directory) rootDSE() *node {
	e := NewEntry("",
		StrAttr("objectClass", "top"),
		StrAttr("namingContexts", d.suffix),
		StrAttr("defaultNamingContext", d.suffix),
		StrAttr("supportedLDAPVersion", "3"),
		StrAttr("supportedControl", pagedResultsOID),
	)
	n := &node{entry: e}
	n.reindex()
	n.setOperational(StrAttr("highestCommittedUSN", strconv.FormatInt(d.usn, 10)))
	return n
}

// pagedResultsOID is the simple paged results control (RFC 2696).
const pagedResultsOID = "1.2.840.113556.1.4.319"

// selection is a parsed attribute selection of a search.
type selection struct {
	allUser, allOp bool
	names          map[string]bool
}

var selectAll = selection{allUser: true, allOp: true}

func newSelection(attrs []string) selection {
	if len(attrs) == 0 {
		return selection{allUser: true}
	}
	s := selection{names: map[string]bool{}}
	for _, a := range attrs {
		a = strings.TrimSpace(a)
		switch a {
		case "*":
			s.allUser = true
		case "+":
			s.allOp = true
		case "1.1", "":
		default:
			if i := strings.IndexByte(a, ';'); i >= 0 {
				a = a[:i]
			}
			s.names[strings.ToLower(a)] = true
		}
	}
	return s
}

// project copies the selected attributes of n.
func project(n *node, sel selection) *Entry {
	out := &Entry{DN: n.entry.DN}
	for _, a := range n.entry.Attrs {
		if sel.allUser || sel.names[strings.ToLower(a.Name)] {
			out.Attrs = append(out.Attrs, cloneAttr(a))
		}
	}
	for _, a := range n.ops {
		if sel.allOp || sel.names[strings.ToLower(a.Name)] {
			out.Attrs = append(out.Attrs, cloneAttr(a))
		}
	}
	return out
}

// Bind checks a simple bind: dn (or a UPN such as
// "administrator@vsphere.local", which vmdir maps to the entry whose
// userPrincipalName matches, else to cn=<user>,cn=users,<suffix>) and the
// entry's userPassword. An empty dn with an empty password is an anonymous
// bind and succeeds; a dn with an empty password is refused (53). Any other
// failure is 49 invalidCredentials, whatever the cause.
func (d *Directory) Bind(dn, password string) error {
	if dn == "" && password == "" {
		return nil
	}
	if password == "" {
		return errorf(CodeUnwillingToPerform, "unauthenticated bind (DN with no password) disallowed")
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := d.bindTarget(dn)
	if n != nil {
		for _, v := range n.entry.Values("userPassword") {
			if subtle.ConstantTimeCompare(v, []byte(password)) == 1 {
				return nil
			}
		}
	}
	return errorf(CodeInvalidCredentials, "invalid credentials")
}

// bindTarget resolves a bind name to an entry; d.mu must be held.
func (d *Directory) bindTarget(name string) *node {
	if at := strings.LastIndexByte(name, '@'); at > 0 && !strings.Contains(name, "=") {
		user, domain := name[:at], name[at+1:]
		if !strings.EqualFold(domain, d.domainName()) {
			return nil
		}
		want := normString(name)
		for _, n := range d.nodes {
			if ia := n.idx["userprincipalname"]; ia != nil && slices.Contains(ia.norms, want) {
				return n
			}
		}
		return d.nodes["cn="+escapeDNValue(normString(user))+",cn=users,"+d.top.norm]
	}
	rs, err := parseDN(name)
	if err != nil || len(rs) == 0 {
		return nil
	}
	return d.nodes[normRDNs(rs)]
}

// domainName is the DNS form of the suffix: dc=vsphere,dc=local → vsphere.local.
func (d *Directory) domainName() string {
	parts := make([]string, 0, len(d.top.rdns))
	for _, r := range d.top.rdns {
		parts = append(parts, r[0].val)
	}
	return strings.Join(parts, ".")
}
