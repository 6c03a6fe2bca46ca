package vcweb

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	ltypes "github.com/vmware/govmomi/lookup/types"

	"runbook/lab/vmdir"
)

// DirOps is the part of a vmdir directory that [NewDirStore] uses;
// *vmdir.Directory implements it.
type DirOps interface {
	Search(base string, scope vmdir.Scope, filter string, attrs []string) ([]*vmdir.Entry, error)
	Add(e *vmdir.Entry) error
	Modify(dn string, changes []vmdir.Change) error
	Delete(dn string) error
}

// Object classes of Lookup Service registrations in vmdir.
const (
	ocService        = "vmwLKUPServiceRegistration"  // 6.x service
	ocEndpoint       = "vmwLKUPEndpointRegistration" // 6.x endpoint, child of a service
	ocProperty       = "vmwLKUPProperty"             // service or endpoint attribute
	ocLegacy         = "vmwLKUPService"              // 5.5 service, id "<site>:<uuid>"
	ocLegacyEndpoint = "vmwLKUPServiceEndpoint"      // 5.5 endpoint
)

// Names given to new child entries: Endpoint1, Endpoint2 … and Property1 …
const (
	endpointPrefix = "Endpoint"
	propertyPrefix = "Property"
)

// serviceField maps one vmwLKUPServiceRegistration attribute to a field of
// the mutable service info.
type serviceField struct {
	attr  string
	field func(*ltypes.LookupServiceRegistrationMutableServiceInfo) *string
}

type mutable = ltypes.LookupServiceRegistrationMutableServiceInfo

var serviceFields = []serviceField{
	{"vmwLKUPVersion", func(m *mutable) *string { return &m.ServiceVersion }},
	{"vmwLKUPFriendlyNameDefault", func(m *mutable) *string { return &m.ServiceNameDefault }},
	{"vmwLKUPFriendlyNameResourceKey", func(m *mutable) *string { return &m.ServiceNameResourceKey }},
	{"vmwLKUPDescriptionDefault", func(m *mutable) *string { return &m.ServiceDescriptionDefault }},
	{"vmwLKUPDescriptionResourceKey", func(m *mutable) *string { return &m.ServiceDescriptionResourceKey }},
	{"vmwLKUPVendorNameDefault", func(m *mutable) *string { return &m.VendorNameDefault }},
	{"vmwLKUPVendorNameResourceKey", func(m *mutable) *string { return &m.VendorNameResourceKey }},
	{"vmwLKUPVendorProductInfoDefault", func(m *mutable) *string { return &m.VendorProductInfoDefault }},
	{"vmwLKUPVendorProductInfoResourceKey", func(m *mutable) *string { return &m.VendorProductInfoResourceKey }},
}

// legacyFields are the mutable attributes of a 5.5 vmwLKUPService.
var legacyFields = []serviceField{
	{"vmwLKUPVersion", func(m *mutable) *string { return &m.ServiceVersion }},
	{"vmwLKUPDescription", func(m *mutable) *string { return &m.ServiceDescriptionDefault }},
}

// dirStore is a Store over the registrations of one site in vmdir.
type dirStore struct {
	dir   DirOps
	site  string
	base  string // cn=ServiceRegistrations,… as written
	lower string // base case folded
	norm  string // base normalized, or "" when base is malformed
	err   error  // why base is malformed

	mu sync.Mutex // serializes writes, which take several directory operations
}

// NewDirStore returns a Store over the Lookup Service registrations kept in
// dir under cn=ServiceRegistrations,cn=LookupService,cn=<site>,cn=Sites,
// cn=Configuration,<domainDN>, the layout of a real vmdir:
//
//   - a 6.x service is cn=<serviceId> (vmwLKUPServiceRegistration) with
//     endpoint children cn=Endpoint<N> (vmwLKUPEndpointRegistration, trust in
//     vmwLKUPEndpointSslTrust as base64 DER strings); service and endpoint
//     attributes are vmwLKUPProperty children (cn=Property<N>);
//   - a 5.5 service is cn=<site>:<uuid> (vmwLKUPService) with
//     vmwLKUPServiceEndpoint children whose binary vmwLKUPSslTrustAnchor is
//     DER, shown and set as base64 in SslTrust. Its service type is shown as
//     Type vmwLKUPServiceType ("urn:sso:sts" …) with an empty Product.
//
// Endpoints and properties keep the order of the numbers in their names.
// Set rewrites only what changed (modifying, adding and deleting child
// entries) so that the directory stays consistent and its USNs move only
// for real changes. The directory is the only state: nothing is cached.
func NewDirStore(dir DirOps, site, domainDN string) Store {
	base := fmt.Sprintf("cn=ServiceRegistrations,cn=LookupService,cn=%s,cn=Sites,cn=Configuration,%s",
		escapeRDNValue(site), domainDN)
	norm, err := vmdir.NormalizeDN(base)
	return &dirStore{dir: dir, site: site, base: base, lower: strings.ToLower(base), norm: norm, err: err}
}

// SiteID implements Store.
func (s *dirStore) SiteID() string { return s.site }

// dirNode is a directory entry with its children, as read by one search.
type dirNode struct {
	entry    *vmdir.Entry
	children []*dirNode
}

// tree groups the entries of one subtree search under base into the
// services directly below base, each with its descendants attached.
//
// Children are matched to parents by their DN text, case folded, which is
// how entries written with one spelling of the suffix relate. When that
// leaves an entry without its parent (DNs spelled with different spacing or
// escapes), the grouping is redone on normalized DNs.
func (s *dirStore) tree(entries []*vmdir.Entry) ([]*dirNode, error) {
	if services, ok := group(entries, s.lower, func(dn string) (string, error) { return strings.ToLower(dn), nil }); ok {
		return services, nil
	}
	services, _ := group(entries, s.norm, vmdir.NormalizeDN)
	for _, e := range entries {
		if _, err := vmdir.NormalizeDN(e.DN); err != nil {
			return nil, fmt.Errorf("read registration %q: %w", e.DN, err)
		}
	}
	return services, nil
}

// group attaches entries (parents before children) to their parents by the
// DN keys key computes; base is the key of the registrations container. It
// reports false when an entry's parent is neither base nor among entries.
func group(entries []*vmdir.Entry, base string, key func(string) (string, error)) ([]*dirNode, bool) {
	byDN := make(map[string]*dirNode, len(entries))
	var services []*dirNode
	complete := true
	for _, e := range entries {
		k, err := key(e.DN)
		if err != nil {
			complete = false
			continue
		}
		if k == base { // a subtree search includes its base
			continue
		}
		n := &dirNode{entry: e}
		byDN[k] = n
		switch parent := vmdir.ParentDN(k); {
		case parent == base:
			services = append(services, n)
		case byDN[parent] != nil:
			byDN[parent].children = append(byDN[parent].children, n)
		default:
			complete = false
		}
	}
	return services, complete
}

// load reads one service subtree; a missing service is a *NotFoundError.
func (s *dirStore) load(id string) (*dirNode, error) {
	if s.err != nil {
		return nil, s.err
	}
	entries, err := s.dir.Search(s.serviceDN(id), vmdir.ScopeSub, "", nil)
	if vmdir.Code(err) == vmdir.CodeNoSuchObject {
		return nil, &NotFoundError{ID: id}
	}
	if err != nil {
		return nil, fmt.Errorf("read registration %s: %w", id, err)
	}
	services, err := s.tree(entries)
	if err != nil {
		return nil, err
	}
	if len(services) != 1 || !isService(services[0].entry) {
		return nil, &NotFoundError{ID: id}
	}
	return services[0], nil
}

func (s *dirStore) serviceDN(id string) string {
	return "cn=" + escapeRDNValue(id) + "," + s.base
}

// List implements Store with one subtree search over all registrations.
func (s *dirStore) List(filter *ltypes.LookupServiceRegistrationFilter) ([]ltypes.LookupServiceRegistrationInfo, error) {
	if s.err != nil {
		return nil, s.err
	}
	entries, err := s.dir.Search(s.base, vmdir.ScopeSub, "", nil)
	if err != nil {
		return nil, fmt.Errorf("list registrations: %w", err)
	}
	services, err := s.tree(entries)
	if err != nil {
		return nil, err
	}
	var out []ltypes.LookupServiceRegistrationInfo
	for _, svc := range services {
		if !isService(svc.entry) {
			continue
		}
		if info, ok := Match(filter, s.info(svc)); ok {
			out = append(out, info)
		}
	}
	return out, nil
}

// Get implements Store.
func (s *dirStore) Get(id string) (ltypes.LookupServiceRegistrationInfo, error) {
	svc, err := s.load(id)
	if err != nil {
		return ltypes.LookupServiceRegistrationInfo{}, err
	}
	return s.info(svc), nil
}

// info converts a service subtree into the Lookup Service's view of it.
func (s *dirStore) info(svc *dirNode) ltypes.LookupServiceRegistrationInfo {
	e := svc.entry
	var info ltypes.LookupServiceRegistrationInfo
	info.ServiceId = e.First("cn")
	info.SiteId = cmp.Or(e.First("vmwLKUPSiteId"), s.site)
	info.OwnerId = e.First("vmwLKUPOwnerId")
	legacy := hasClass(e, ocLegacy)
	fields := serviceFields
	if legacy {
		fields = legacyFields
		info.ServiceType.Type = e.First("vmwLKUPServiceType")
	} else {
		info.ServiceType = ltypes.LookupServiceRegistrationServiceType{
			Product: e.First("vmwLKUPProduct"),
			Type:    e.First("vmwLKUPType"),
		}
		info.NodeId = e.First("vmwLKUPDeploymentNodeId")
	}
	for _, f := range fields {
		*f.field(&info.LookupServiceRegistrationMutableServiceInfo) = e.First(f.attr)
	}
	info.ServiceAttributes = properties(svc)
	for _, ep := range children(svc, ocEndpoint, ocLegacyEndpoint) {
		info.ServiceEndpoints = append(info.ServiceEndpoints, endpoint(ep))
	}
	return info
}

func endpoint(n *dirNode) ltypes.LookupServiceRegistrationEndpoint {
	e := n.entry
	ep := ltypes.LookupServiceRegistrationEndpoint{
		Url:                e.First("vmwLKUPURI"),
		EndpointType:       ltypes.LookupServiceRegistrationEndpointType{Type: e.First("vmwLKUPEndpointType")},
		EndpointAttributes: properties(n),
	}
	if hasClass(e, ocLegacyEndpoint) {
		ep.EndpointType.Protocol = e.First("vmwLKUPProtocol")
		for _, v := range e.Values("vmwLKUPSslTrustAnchor") {
			ep.SslTrust = append(ep.SslTrust, legacyTrust(v))
		}
	} else {
		ep.EndpointType.Protocol = e.First("vmwLKUPEndpointProtocol")
		ep.SslTrust = e.Strings("vmwLKUPEndpointSslTrust")
	}
	return ep
}

// legacyTrust presents a vmwLKUPSslTrustAnchor value as an sslTrust string:
// DER (what vmdir holds) is base64-encoded; a value some tool stored as
// base64 text already is passed through.
func legacyTrust(v []byte) string {
	if len(v) > 0 && v[0] == 0x30 { // an ASN.1 SEQUENCE: DER
		return base64.StdEncoding.EncodeToString(v)
	}
	return strings.TrimSpace(string(v))
}

func properties(n *dirNode) []ltypes.LookupServiceRegistrationAttribute {
	var out []ltypes.LookupServiceRegistrationAttribute
	for _, p := range children(n, ocProperty) {
		out = append(out, ltypes.LookupServiceRegistrationAttribute{
			Key:   p.entry.First("vmwLKUPPropertyName"),
			Value: p.entry.First("vmwLKUPPropertyValue"),
		})
	}
	return out
}

// children returns the children of n of one of the classes, in the order of
// the numbers ending their names (Endpoint2 before Endpoint10).
func children(n *dirNode, classes ...string) []*dirNode {
	var out []*dirNode
	for _, c := range n.children {
		if slices.ContainsFunc(classes, func(oc string) bool { return hasClass(c.entry, oc) }) {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b *dirNode) int {
		pa, na := splitNumber(a.entry.First("cn"))
		pb, nb := splitNumber(b.entry.First("cn"))
		return cmp.Or(strings.Compare(strings.ToLower(pa), strings.ToLower(pb)), cmp.Compare(na, nb))
	})
	return out
}

// splitNumber splits "Endpoint12" into "Endpoint" and 12 (-1 if no number).
func splitNumber(name string) (string, int) {
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(name[i:])
	if err != nil {
		return name, -1
	}
	return name[:i], n
}

func hasClass(e *vmdir.Entry, oc string) bool {
	return slices.ContainsFunc(e.Strings("objectClass"), func(v string) bool { return strings.EqualFold(v, oc) })
}

func isService(e *vmdir.Entry) bool { return hasClass(e, ocService) || hasClass(e, ocLegacy) }

// Set implements Store: it rewrites the service's mutable attributes, its
// property children and its endpoint children where they differ from spec.
func (s *dirStore) Set(id string, spec ltypes.LookupServiceRegistrationSetSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, err := s.load(id)
	if err != nil {
		return err
	}
	m := &spec.LookupServiceRegistrationMutableServiceInfo
	legacy := hasClass(svc.entry, ocLegacy)
	fields := serviceFields
	if legacy {
		fields = legacyFields
	}
	want := make([]vmdir.Attr, 0, len(fields))
	for _, f := range fields {
		want = append(want, strAttr(f.attr, *f.field(m)))
	}
	if err := s.modify(svc.entry, want); err != nil {
		return fmt.Errorf("set registration %s: %w", id, err)
	}
	if err := s.syncProperties(svc, m.ServiceAttributes); err != nil {
		return fmt.Errorf("set registration %s: %w", id, err)
	}
	if err := s.syncEndpoints(svc, m.ServiceEndpoints, legacy); err != nil {
		return fmt.Errorf("set registration %s: %w", id, err)
	}
	return nil
}

// modify replaces the attributes of e that differ from want; an attribute
// without values in want is removed.
func (s *dirStore) modify(e *vmdir.Entry, want []vmdir.Attr) error {
	var changes []vmdir.Change
	for _, a := range want {
		if !slices.EqualFunc(e.Values(a.Name), a.Values, func(x, y []byte) bool { return string(x) == string(y) }) {
			changes = append(changes, vmdir.Change{Op: vmdir.ModReplace, Attr: a})
		}
	}
	if len(changes) == 0 {
		return nil
	}
	return s.dir.Modify(e.DN, changes)
}

// syncEndpoints makes the endpoint children of svc match eps: existing
// entries are modified in order, surplus ones deleted, missing ones added.
func (s *dirStore) syncEndpoints(svc *dirNode, eps []ltypes.LookupServiceRegistrationEndpoint, legacy bool) error {
	have := children(svc, ocEndpoint, ocLegacyEndpoint)
	next := nextNumber(svc, endpointPrefix)
	for i, ep := range eps {
		attrs, err := endpointAttrs(ep, legacy)
		if err != nil {
			return err
		}
		if i < len(have) {
			if err := s.modify(have[i].entry, attrs); err != nil {
				return err
			}
			if err := s.syncProperties(have[i], ep.EndpointAttributes); err != nil {
				return err
			}
			continue
		}
		if err := s.addEndpoint(svc.entry.DN, endpointPrefix+strconv.Itoa(next), ep, attrs, legacy); err != nil {
			return err
		}
		next++
	}
	for _, n := range have[min(len(eps), len(have)):] {
		if err := s.deleteTree(n); err != nil {
			return err
		}
	}
	return nil
}

// endpointAttrs returns the attributes of an endpoint entry (without cn and
// objectClass).
func endpointAttrs(ep ltypes.LookupServiceRegistrationEndpoint, legacy bool) ([]vmdir.Attr, error) {
	if !legacy {
		return []vmdir.Attr{
			strAttr("vmwLKUPEndpointType", ep.EndpointType.Type),
			strAttr("vmwLKUPEndpointProtocol", ep.EndpointType.Protocol),
			strAttr("vmwLKUPURI", ep.Url),
			vmdir.StrAttr("vmwLKUPEndpointSslTrust", ep.SslTrust...),
		}, nil
	}
	anchors := vmdir.Attr{Name: "vmwLKUPSslTrustAnchor"}
	for _, t := range ep.SslTrust {
		der, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return nil, fmt.Errorf("sslTrust of %s is not base64: %w", ep.Url, err)
		}
		anchors.Values = append(anchors.Values, der)
	}
	return []vmdir.Attr{
		strAttr("vmwLKUPEndpointType", ep.EndpointType.Type),
		strAttr("vmwLKUPProtocol", ep.EndpointType.Protocol),
		strAttr("vmwLKUPURI", ep.Url),
		anchors,
	}, nil
}

func (s *dirStore) addEndpoint(parent, name string, ep ltypes.LookupServiceRegistrationEndpoint, attrs []vmdir.Attr, legacy bool) error {
	oc := ocEndpoint
	if legacy {
		oc = ocLegacyEndpoint
	}
	dn := "cn=" + name + "," + parent
	e := vmdir.NewEntry(dn, append([]vmdir.Attr{vmdir.StrAttr("objectClass", "top", oc), vmdir.StrAttr("cn", name)}, attrs...)...)
	if err := s.dir.Add(e); err != nil {
		return err
	}
	for i, a := range ep.EndpointAttributes {
		if err := s.addProperty(dn, propertyPrefix+strconv.Itoa(i+1), a); err != nil {
			return err
		}
	}
	return nil
}

// syncProperties makes the property children of n match attrs.
func (s *dirStore) syncProperties(n *dirNode, attrs []ltypes.LookupServiceRegistrationAttribute) error {
	have := children(n, ocProperty)
	next := nextNumber(n, propertyPrefix)
	for i, a := range attrs {
		if i < len(have) {
			want := []vmdir.Attr{strAttr("vmwLKUPPropertyName", a.Key), strAttr("vmwLKUPPropertyValue", a.Value)}
			if err := s.modify(have[i].entry, want); err != nil {
				return err
			}
			continue
		}
		if err := s.addProperty(n.entry.DN, propertyPrefix+strconv.Itoa(next), a); err != nil {
			return err
		}
		next++
	}
	for _, p := range have[min(len(attrs), len(have)):] {
		if err := s.deleteTree(p); err != nil {
			return err
		}
	}
	return nil
}

func (s *dirStore) addProperty(parent, name string, a ltypes.LookupServiceRegistrationAttribute) error {
	e := vmdir.NewEntry("cn="+name+","+parent,
		vmdir.StrAttr("objectClass", "top", ocProperty),
		vmdir.StrAttr("cn", name),
		strAttr("vmwLKUPPropertyName", a.Key),
		strAttr("vmwLKUPPropertyValue", a.Value))
	return s.dir.Add(e)
}

// nextNumber returns the number following the highest one among the
// children of n named prefix<N>.
func nextNumber(n *dirNode, prefix string) int {
	next := 1
	for _, c := range n.children {
		if p, num := splitNumber(c.entry.First("cn")); strings.EqualFold(p, prefix) && num >= next {
			next = num + 1
		}
	}
	return next
}

// strAttr is a single-valued string attribute, or one without values (which
// a replace turns into a removal) when v is empty.
func strAttr(name, v string) vmdir.Attr {
	if v == "" {
		return vmdir.Attr{Name: name}
	}
	return vmdir.StrAttr(name, v)
}

// Create implements Store. A failure after the service entry was added
// removes what was written.
func (s *dirStore) Create(id string, spec ltypes.LookupServiceRegistrationCreateSpec) error {
	if s.err != nil {
		return s.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &spec.LookupServiceRegistrationCommonServiceInfo
	dn := s.serviceDN(id)
	attrs := []vmdir.Attr{
		vmdir.StrAttr("objectClass", "top", ocService),
		vmdir.StrAttr("cn", id),
		strAttr("vmwLKUPProduct", c.ServiceType.Product),
		strAttr("vmwLKUPType", c.ServiceType.Type),
		strAttr("vmwLKUPOwnerId", c.OwnerId),
		strAttr("vmwLKUPDeploymentNodeId", c.NodeId),
	}
	for _, f := range serviceFields {
		attrs = append(attrs, strAttr(f.attr, *f.field(&c.LookupServiceRegistrationMutableServiceInfo)))
	}
	err := s.dir.Add(vmdir.NewEntry(dn, attrs...))
	if vmdir.Code(err) == vmdir.CodeEntryAlreadyExists {
		return &ExistsError{ID: id}
	}
	if err != nil {
		return fmt.Errorf("create registration %s: %w", id, err)
	}
	err = s.createChildren(dn, &c.LookupServiceRegistrationMutableServiceInfo)
	if err != nil {
		if svc, lerr := s.load(id); lerr == nil {
			err = errors.Join(err, s.deleteTree(svc))
		}
		return fmt.Errorf("create registration %s: %w", id, err)
	}
	return nil
}

func (s *dirStore) createChildren(dn string, m *mutable) error {
	for i, a := range m.ServiceAttributes {
		if err := s.addProperty(dn, propertyPrefix+strconv.Itoa(i+1), a); err != nil {
			return err
		}
	}
	for i, ep := range m.ServiceEndpoints {
		attrs, err := endpointAttrs(ep, false)
		if err != nil {
			return err
		}
		if err := s.addEndpoint(dn, endpointPrefix+strconv.Itoa(i+1), ep, attrs, false); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Store: it removes the service and all its descendants.
func (s *dirStore) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, err := s.load(id)
	if err != nil {
		return err
	}
	if err := s.deleteTree(svc); err != nil {
		return fmt.Errorf("delete registration %s: %w", id, err)
	}
	return nil
}

// deleteTree deletes n after its descendants.
func (s *dirStore) deleteTree(n *dirNode) error {
	for _, c := range n.children {
		if err := s.deleteTree(c); err != nil {
			return err
		}
	}
	return s.dir.Delete(n.entry.DN)
}

// escapeRDNValue escapes an attribute value for use in a DN (RFC 4514).
func escapeRDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(",+\"\\<>;=", c) >= 0,
			i == 0 && (c == '#' || c == ' '),
			i == len(v)-1 && c == ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
