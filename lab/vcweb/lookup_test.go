package vcweb

import (
	"context"
	"encoding/base64"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/vmware/govmomi/lookup"
	lmethods "github.com/vmware/govmomi/lookup/methods"
	ltypes "github.com/vmware/govmomi/lookup/types"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/soap"
)

var (
	epSTS   = ltypes.LookupServiceRegistrationEndpointType{Protocol: "wsTrust", Type: "com.vmware.cis.cs.identity.sso"}
	epAdmin = ltypes.LookupServiceRegistrationEndpointType{Protocol: "vmomi", Type: "com.vmware.cis.cs.identity.admin"}
	epVpxd  = ltypes.LookupServiceRegistrationEndpointType{Protocol: "vmomi", Type: "com.vmware.vim"}
	epHTTPS = ltypes.LookupServiceRegistrationEndpointType{Protocol: "https", Type: "com.vmware.vim.vcenter.instanceName"}
)

// seed returns the registrations of a small embedded node and a 5.5
// legacy one, all trusting der.
func seed(der []byte) []ltypes.LookupServiceRegistrationInfo {
	legacy := registration(testSite+":7f2e1c4a-0000-4000-8000-000000000001", "com.vmware.cis", "sso:sts", "", der, epSTS)
	return []ltypes.LookupServiceRegistrationInfo{
		registration("sts-1", "com.vmware.cis", "cs.identity", "node-1", der, epSTS, epAdmin),
		registration("vc-1", "com.vmware.cis", "vcenterserver", "node-1", der, epVpxd, epHTTPS),
		registration("vc-2", "com.vmware.cis", "vcenterserver", "node-2", der, epVpxd),
		legacy,
	}
}

func ids(infos []ltypes.LookupServiceRegistrationInfo) []string {
	var out []string
	for _, info := range infos {
		out = append(out, info.ServiceId)
	}
	return out
}

func TestListFilter(t *testing.T) {
	n := startNode(t, newMemStore(testSite, seed([]byte("der"))...), Config{})
	lc := n.lookupClient(t, false) // List is anonymous on a real node
	legacyID := testSite + ":7f2e1c4a-0000-4000-8000-000000000001"

	tests := []struct {
		name      string
		filter    ltypes.LookupServiceRegistrationFilter
		want      []string
		endpoints []int // endpoints per returned registration
	}{
		{"empty filter lists all", ltypes.LookupServiceRegistrationFilter{},
			[]string{"sts-1", "vc-1", "vc-2", legacyID}, []int{2, 2, 1, 1}},
		{"service type", ltypes.LookupServiceRegistrationFilter{
			ServiceType: &ltypes.LookupServiceRegistrationServiceType{Product: "com.vmware.cis", Type: "vcenterserver"}},
			[]string{"vc-1", "vc-2"}, []int{2, 1}},
		{"service type product only", ltypes.LookupServiceRegistrationFilter{
			ServiceType: &ltypes.LookupServiceRegistrationServiceType{Product: "com.vmware.cis"}},
			[]string{"sts-1", "vc-1", "vc-2", legacyID}, []int{2, 2, 1, 1}},
		{"endpoint type narrows endpoints", ltypes.LookupServiceRegistrationFilter{
			EndpointType: &ltypes.LookupServiceRegistrationEndpointType{Type: epSTS.Type}},
			[]string{"sts-1", legacyID}, []int{1, 1}},
		{"endpoint protocol", ltypes.LookupServiceRegistrationFilter{
			EndpointType: &ltypes.LookupServiceRegistrationEndpointType{Protocol: "vmomi"}},
			[]string{"sts-1", "vc-1", "vc-2"}, []int{1, 1, 1}},
		{"node", ltypes.LookupServiceRegistrationFilter{NodeId: "node-1"},
			[]string{"sts-1", "vc-1"}, []int{2, 2}},
		{"node and endpoint type", ltypes.LookupServiceRegistrationFilter{NodeId: "node-2",
			EndpointType: &ltypes.LookupServiceRegistrationEndpointType{Type: epHTTPS.Type}},
			nil, nil},
		{"site", ltypes.LookupServiceRegistrationFilter{SiteId: testSite},
			[]string{"sts-1", "vc-1", "vc-2", legacyID}, []int{2, 2, 1, 1}},
		{"other site", ltypes.LookupServiceRegistrationFilter{SiteId: "elsewhere"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lc.List(context.Background(), &tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) {
				t.Fatalf("List = %q, want %q", ids(got), tt.want)
			}
			for i, info := range got {
				if len(info.ServiceEndpoints) != tt.endpoints[i] {
					t.Errorf("%s: %d endpoints, want %d", info.ServiceId, len(info.ServiceEndpoints), tt.endpoints[i])
				}
			}
		})
	}

	// The filter must not have trimmed what the store holds.
	if info, _ := n.store.Get("sts-1"); len(info.ServiceEndpoints) != 2 {
		t.Errorf("store lost endpoints after a filtered List: %d", len(info.ServiceEndpoints))
	}
}

// faultName returns the type name of the fault carried by a SOAP error.
func faultName(err error) string {
	if !soap.IsSoapFault(err) {
		return ""
	}
	t := reflect.TypeOf(soap.ToSoapFault(err).VimFault())
	if t == nil {
		return ""
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// faultEntry returns the Name of an EntryNotFound or EntryExists fault.
func faultEntry(err error) string {
	if !soap.IsSoapFault(err) {
		return ""
	}
	switch f := soap.ToSoapFault(err).VimFault().(type) {
	case ltypes.LookupFaultEntryNotFoundFault:
		return f.Name
	case *ltypes.LookupFaultEntryNotFoundFault:
		return f.Name
	case ltypes.LookupFaultEntryExistsFault:
		return f.Name
	case *ltypes.LookupFaultEntryExistsFault:
		return f.Name
	}
	return ""
}

func createSpec(info ltypes.LookupServiceRegistrationInfo) ltypes.LookupServiceRegistrationCreateSpec {
	return ltypes.LookupServiceRegistrationCreateSpec{LookupServiceRegistrationCommonServiceInfo: info.LookupServiceRegistrationCommonServiceInfo}
}

func setSpec(info ltypes.LookupServiceRegistrationInfo) ltypes.LookupServiceRegistrationSetSpec {
	return ltypes.LookupServiceRegistrationSetSpec{LookupServiceRegistrationMutableServiceInfo: info.LookupServiceRegistrationMutableServiceInfo}
}

func TestLookupFaults(t *testing.T) {
	der := []byte("der")
	infos := seed(der)
	fresh := registration("new-1", "com.vmware.cis", "cs.license", "node-1", der, epVpxd)
	noOwner := fresh
	noOwner.OwnerId = ""
	badTrust := infos[0]
	badTrust.ServiceEndpoints = slices.Clone(badTrust.ServiceEndpoints)
	badTrust.ServiceEndpoints[0].SslTrust = []string{"-----BEGIN CERTIFICATE-----"}

	tests := []struct {
		name      string
		login     bool
		call      func(ctx context.Context, lc *lookup.Client) error
		wantFault string
		wantEntry string
	}{
		{"nil filter", false, func(ctx context.Context, lc *lookup.Client) error {
			_, err := lc.List(ctx, nil)
			return err
		}, "SystemError", ""},
		{"get unknown", false, func(ctx context.Context, lc *lookup.Client) error {
			_, err := lmethods.Get(ctx, lc, &ltypes.Get{This: *lc.ServiceContent.ServiceRegistration, ServiceId: "nope"})
			return err
		}, "LookupFaultEntryNotFoundFault", "nope"},
		{"set unknown", true, func(ctx context.Context, lc *lookup.Client) error {
			_, err := lmethods.Set(ctx, lc, &ltypes.Set{This: *lc.ServiceContent.ServiceRegistration, ServiceId: "nope", ServiceSpec: setSpec(infos[0])})
			return err
		}, "LookupFaultEntryNotFoundFault", "nope"},
		{"delete unknown", true, func(ctx context.Context, lc *lookup.Client) error {
			_, err := lmethods.Delete(ctx, lc, &ltypes.Delete{This: *lc.ServiceContent.ServiceRegistration, ServiceId: "nope"})
			return err
		}, "LookupFaultEntryNotFoundFault", "nope"},
		{"duplicate create", true, func(ctx context.Context, lc *lookup.Client) error {
			_, err := lmethods.Create(ctx, lc, &ltypes.Create{This: *lc.ServiceContent.ServiceRegistration, ServiceId: "vc-1", CreateSpec: createSpec(infos[1])})
			return err
		}, "LookupFaultEntryExistsFault", "vc-1"},
		{"set without session", false, func(ctx context.Context, lc *lookup.Client) error {
			_, err := lmethods.Set(ctx, lc, &ltypes.Set{This: *lc.ServiceContent.ServiceRegistration, ServiceId: "vc-1", ServiceSpec: setSpec(infos[1])})
			return err
		}, "NotAuthenticated", ""},
		{"create without session", false, func(ctx context.Context, lc *lookup.Client) error {
			_, err := lmethods.Create(ctx, lc, &ltypes.Create{This: *lc.ServiceContent.ServiceRegistration, ServiceId: "new-1", CreateSpec: createSpec(fresh)})
			return err
		}, "NotAuthenticated", ""},
		{"delete without session", false, func(ctx context.Context, lc *lookup.Client) error {
			_, err := lmethods.Delete(ctx, lc, &ltypes.Delete{This: *lc.ServiceContent.ServiceRegistration, ServiceId: "vc-1"})
			return err
		}, "NotAuthenticated", ""},
		{"create without owner", true, func(ctx context.Context, lc *lookup.Client) error {
			_, err := lmethods.Create(ctx, lc, &ltypes.Create{This: *lc.ServiceContent.ServiceRegistration, ServiceId: "new-1", CreateSpec: createSpec(noOwner)})
			return err
		}, "InvalidArgument", ""},
		{"set with PEM armor as sslTrust", true, func(ctx context.Context, lc *lookup.Client) error {
			_, err := lmethods.Set(ctx, lc, &ltypes.Set{This: *lc.ServiceContent.ServiceRegistration, ServiceId: "sts-1", ServiceSpec: setSpec(badTrust)})
			return err
		}, "InvalidArgument", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, newMemStore(testSite, infos...), Config{})
			before, _ := n.store.List(&ltypes.LookupServiceRegistrationFilter{})
			err := tt.call(context.Background(), n.lookupClient(t, tt.login))
			if got := faultName(err); got != tt.wantFault {
				t.Fatalf("fault %q (err %v), want %q", got, err, tt.wantFault)
			}
			if got := faultEntry(err); got != tt.wantEntry {
				t.Errorf("fault entry name %q, want %q", got, tt.wantEntry)
			}
			after, _ := n.store.List(&ltypes.LookupServiceRegistrationFilter{})
			if !reflect.DeepEqual(before, after) {
				t.Errorf("a refused call changed the store:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestLookupMutations(t *testing.T) {
	ctx := context.Background()
	oldDER, newDER := []byte("old machine cert"), []byte("new machine cert")
	n := startNode(t, newMemStore(testSite, seed(oldDER)...), Config{})
	lc := n.lookupClient(t, true)
	this := *lc.ServiceContent.ServiceRegistration

	t.Run("set then list", func(t *testing.T) {
		got, err := lmethods.Get(ctx, lc, &ltypes.Get{This: this, ServiceId: "vc-1"})
		if err != nil {
			t.Fatal(err)
		}
		spec := setSpec(got.Returnval)
		spec.ServiceEndpoints = slices.Clone(spec.ServiceEndpoints)
		for i := range spec.ServiceEndpoints {
			spec.ServiceEndpoints[i].SslTrust = []string{base64.StdEncoding.EncodeToString(newDER)}
		}
		if _, err := lmethods.Set(ctx, lc, &ltypes.Set{This: this, ServiceId: "vc-1", ServiceSpec: spec}); err != nil {
			t.Fatal(err)
		}
		list, err := lc.List(ctx, &ltypes.LookupServiceRegistrationFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range list {
			want := oldDER
			if info.ServiceId == "vc-1" {
				want = newDER
			}
			for _, ep := range info.ServiceEndpoints {
				if trust, _ := base64.StdEncoding.DecodeString(ep.SslTrust[0]); string(trust) != string(want) {
					t.Errorf("%s %s trusts %q, want %q", info.ServiceId, ep.Url, trust, want)
				}
			}
		}
	})

	t.Run("create then get", func(t *testing.T) {
		fresh := registration("new-1", "com.vmware.cis", "cs.license", "node-1", newDER, epVpxd)
		if _, err := lmethods.Create(ctx, lc, &ltypes.Create{This: this, ServiceId: "new-1", CreateSpec: createSpec(fresh)}); err != nil {
			t.Fatal(err)
		}
		got, err := lmethods.Get(ctx, lc, &ltypes.Get{This: this, ServiceId: "new-1"})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Returnval, fresh) {
			t.Errorf("Get after Create:\n got %+v\nwant %+v", got.Returnval, fresh)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if _, err := lmethods.Delete(ctx, lc, &ltypes.Delete{This: this, ServiceId: "vc-2"}); err != nil {
			t.Fatal(err)
		}
		if _, err := n.store.Get("vc-2"); err == nil {
			t.Error("vc-2 still in the store after Delete")
		}
		list, err := lc.List(ctx, &ltypes.LookupServiceRegistrationFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(ids(list), "vc-2") {
			t.Errorf("List after Delete still has vc-2: %q", ids(list))
		}
	})
}

func TestAnonymousReads(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, newMemStore(testSite, seed([]byte("der"))...), Config{})
	lc := n.lookupClient(t, false)

	site, err := lc.SiteID(ctx)
	if err != nil || site != testSite {
		t.Errorf("SiteID = %q, %v; want %q", site, err, testSite)
	}
	got, err := lmethods.Get(ctx, lc, &ltypes.Get{This: *lc.ServiceContent.ServiceRegistration, ServiceId: "sts-1"})
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := n.store.Get("sts-1"); !reflect.DeepEqual(got.Returnval, want) {
		t.Errorf("Get:\n got %+v\nwant %+v", got.Returnval, want)
	}
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, newMemStore(testSite), Config{})

	tests := []struct {
		name      string
		password  string
		wantFault string
	}{
		{"right password", testPassword, ""},
		{"wrong password", "not-the-password", "InvalidLogin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vc, err := n.client(t, tt.password)
			if got := faultName(err); got != tt.wantFault {
				t.Fatalf("login fault %q (err %v), want %q", got, err, tt.wantFault)
			}
			// An /sdk call that needs a session tells whether one exists.
			_, err = object.NewOptionManager(vc, *vc.ServiceContent.Setting).Query(ctx, "config.vpxd.sso.sts.uri")
			wantQuery := ""
			if tt.wantFault != "" {
				wantQuery = "NotAuthenticated"
			}
			if got := faultName(err); got != wantQuery {
				t.Errorf("OptionManager.Query fault %q (err %v), want %q", got, err, wantQuery)
			}
		})
	}
}

// TestTwoNodes runs two nodes side by side, as a two-node lab does: each
// answers from its own store and presents its own certificate. (vcsim
// shares its settings between models: without a private copy the lookup
// client of one node, which follows config.vpxd.sso.sts.uri, would be sent
// to the other node and fail its certificate check.)
func TestTwoNodes(t *testing.T) {
	stores := []*memStore{
		newMemStore("site-a", registration("a-1", "com.vmware.cis", "vcenterserver", "node-a", []byte("a"), epVpxd)),
		newMemStore("site-b", registration("b-1", "com.vmware.cis", "vcenterserver", "node-b", []byte("b"), epVpxd)),
	}
	nodes := make([]*node, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { nodes[i] = startNode(t, s, Config{}) })
	}
	wg.Wait()
	for i, n := range nodes {
		wg.Go(func() {
			lc := n.lookupClient(t, true)
			site, err := lc.SiteID(context.Background())
			if err != nil || site != stores[i].site {
				t.Errorf("node %d: site %q, %v", i, site, err)
			}
			list, err := lc.List(context.Background(), &ltypes.LookupServiceRegistrationFilter{})
			if err != nil || !slices.Equal(ids(list), stores[i].ids) {
				t.Errorf("node %d: List %q, %v; want %q", i, ids(list), err, stores[i].ids)
			}
		})
	}
	wg.Wait()
	if nodes[0].srv.Addr() == nodes[1].srv.Addr() {
		t.Error("both nodes listen on the same address")
	}
}
