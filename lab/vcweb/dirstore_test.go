package vcweb

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	lmethods "github.com/vmware/govmomi/lookup/methods"
	ltypes "github.com/vmware/govmomi/lookup/types"

	"runbook/lab/vmdir"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	domainDN = "dc=vsphere,dc=local"
	vcID     = "6fd5a3b1-vc"
	stsID    = "a1b2c3d4-sts"
	legacyID = "default-site:7d4e3c2b-0000-4000-8000-00000000aaaa"
	cert1    = "MAMCAQE=" // DER 30 03 02 01 01
	cert2    = "MAMCAQI=" // DER 30 03 02 01 02
)

// seededDir returns a directory holding testdata/registrations.ldif.
func seededDir(t testing.TB) *vmdir.Directory {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "registrations.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := vmdir.ParseLDIF(f)
	if err != nil {
		t.Fatal(err)
	}
	d := vmdir.New(domainDN)
	for _, e := range entries {
		if err := d.Add(e); err != nil {
			t.Fatalf("seed %s: %v", e.DN, err)
		}
	}
	return d
}

func attr(k, v string) ltypes.LookupServiceRegistrationAttribute {
	return ltypes.LookupServiceRegistrationAttribute{Key: k, Value: v}
}

// wantSeed is what the Lookup Service shows for testdata/registrations.ldif.
func wantSeed() map[string]ltypes.LookupServiceRegistrationInfo {
	vc := ltypes.LookupServiceRegistrationInfo{ServiceId: vcID, SiteId: testSite}
	vc.OwnerId = "vpxd-node1@vsphere.local"
	vc.NodeId = "node1"
	vc.ServiceType = ltypes.LookupServiceRegistrationServiceType{Product: "com.vmware.cis", Type: "vcenterserver"}
	vc.ServiceVersion = "6.7"
	vc.ServiceNameResourceKey = "AboutInfo.vpx.name"
	vc.ServiceDescriptionResourceKey = "AboutInfo.vpx.name"
	vc.ServiceAttributes = []ltypes.LookupServiceRegistrationAttribute{attr("com.vmware.cis.cm.HostId", "node1")}
	vc.ServiceEndpoints = []ltypes.LookupServiceRegistrationEndpoint{
		{Url: "https://vc1.example.com/sdk", EndpointType: epVpxd, SslTrust: []string{cert1},
			EndpointAttributes: []ltypes.LookupServiceRegistrationAttribute{attr("cis.common.ep.localurl", "http://localhost:8085/sdk")}},
		{Url: "https://vc1.example.com/", EndpointType: epHTTPS, SslTrust: []string{cert1}},
		{Url: "https://vc1.example.com/", SslTrust: []string{cert1},
			EndpointType: ltypes.LookupServiceRegistrationEndpointType{Protocol: "https", Type: "com.vmware.vim.extension"}},
	}

	sts := ltypes.LookupServiceRegistrationInfo{ServiceId: stsID, SiteId: testSite}
	sts.OwnerId = "administrator@vsphere.local"
	sts.NodeId = "node2"
	sts.ServiceType = ltypes.LookupServiceRegistrationServiceType{Product: "com.vmware.cis", Type: "cs.identity"}
	sts.ServiceVersion = "2.0"
	sts.ServiceEndpoints = []ltypes.LookupServiceRegistrationEndpoint{
		{Url: "https://psc2.example.com/sts/STSService/vsphere.local", EndpointType: epSTS, SslTrust: []string{cert2}},
	}

	legacy := ltypes.LookupServiceRegistrationInfo{ServiceId: legacyID, SiteId: testSite}
	legacy.OwnerId = "administrator@vsphere.local"
	legacy.ServiceType.Type = "urn:sso:sts"
	legacy.ServiceVersion = "1.5"
	legacy.ServiceDescriptionDefault = "The security token service interface of the SSO server"
	legacy.ServiceEndpoints = []ltypes.LookupServiceRegistrationEndpoint{
		{Url: "https://vc1.example.com:7444/sts/STSService/vsphere.local", SslTrust: []string{cert1},
			EndpointType: ltypes.LookupServiceRegistrationEndpointType{Protocol: "wsTrust"}},
	}
	return map[string]ltypes.LookupServiceRegistrationInfo{vcID: vc, stsID: sts, legacyID: legacy}
}

func TestDirStoreRead(t *testing.T) {
	store := NewDirStore(seededDir(t), testSite, domainDN)
	want := wantSeed()

	for id, w := range want {
		t.Run("get "+id, func(t *testing.T) {
			got, err := store.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("Get(%s):\n got %+v\nwant %+v", id, got, w)
			}
		})
	}

	filters := []struct {
		name   string
		filter *ltypes.LookupServiceRegistrationFilter
		want   []string
	}{
		{"empty", &ltypes.LookupServiceRegistrationFilter{}, []string{vcID, stsID, legacyID}},
		{"vcenterserver", &ltypes.LookupServiceRegistrationFilter{
			ServiceType: &ltypes.LookupServiceRegistrationServiceType{Type: "vcenterserver"}}, []string{vcID}},
		{"sso endpoints", &ltypes.LookupServiceRegistrationFilter{
			EndpointType: &ltypes.LookupServiceRegistrationEndpointType{Protocol: "wsTrust"}}, []string{stsID, legacyID}},
		{"node2", &ltypes.LookupServiceRegistrationFilter{NodeId: "node2"}, []string{stsID}},
	}
	for _, tt := range filters {
		t.Run("list "+tt.name, func(t *testing.T) {
			got, err := store.List(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) {
				t.Errorf("List = %q, want %q", ids(got), tt.want)
			}
			for _, info := range got {
				if m, _ := Match(tt.filter, want[info.ServiceId]); !reflect.DeepEqual(info, m) {
					t.Errorf("List entry %s:\n got %+v\nwant %+v", info.ServiceId, info, m)
				}
			}
		})
	}
}

// specOf returns the Set spec that leaves info as it is.
func specOf(info ltypes.LookupServiceRegistrationInfo) ltypes.LookupServiceRegistrationSetSpec {
	m := info.LookupServiceRegistrationMutableServiceInfo
	m.ServiceEndpoints = slices.Clone(m.ServiceEndpoints)
	m.ServiceAttributes = slices.Clone(m.ServiceAttributes)
	return ltypes.LookupServiceRegistrationSetSpec{LookupServiceRegistrationMutableServiceInfo: m}
}

func TestDirStoreWrites(t *testing.T) {
	seed := wantSeed()
	tests := []struct {
		name   string
		id     string // registration to read back after the write
		write  func(s Store) error
		expect func(info *ltypes.LookupServiceRegistrationInfo) // the registration after the write
	}{
		{"set-trust", vcID, func(s Store) error {
			// What ls_update_certs does: the same spec with a new trust.
			spec := specOf(seed[vcID])
			for i := range spec.ServiceEndpoints {
				spec.ServiceEndpoints[i].SslTrust = []string{cert2}
			}
			return s.Set(vcID, spec)
		}, func(info *ltypes.LookupServiceRegistrationInfo) {
			for i := range info.ServiceEndpoints {
				info.ServiceEndpoints[i].SslTrust = []string{cert2}
			}
		}},
		{"set-shrink", vcID, func(s Store) error {
			spec := specOf(seed[vcID])
			spec.ServiceEndpoints = spec.ServiceEndpoints[:1]
			spec.ServiceEndpoints[0].EndpointAttributes = nil
			spec.ServiceAttributes = nil
			spec.ServiceNameResourceKey = ""
			return s.Set(vcID, spec)
		}, func(info *ltypes.LookupServiceRegistrationInfo) {
			info.ServiceEndpoints = info.ServiceEndpoints[:1]
			info.ServiceEndpoints[0].EndpointAttributes = nil
			info.ServiceAttributes = nil
			info.ServiceNameResourceKey = ""
		}},
		{"set-grow", stsID, func(s Store) error {
			spec := specOf(seed[stsID])
			spec.ServiceAttributes = []ltypes.LookupServiceRegistrationAttribute{attr("k1", "v1"), attr("k2", "")}
			spec.ServiceEndpoints = append(spec.ServiceEndpoints, ltypes.LookupServiceRegistrationEndpoint{
				Url: "https://psc2.example.com/sso-adminserver/sdk/vsphere.local", EndpointType: epAdmin,
				SslTrust:           []string{cert2, cert1},
				EndpointAttributes: []ltypes.LookupServiceRegistrationAttribute{attr("cis.common.ep.localurl", "http://localhost:7080/sso-adminserver/sdk")},
			})
			spec.ServiceNameDefault = "STS"
			return s.Set(stsID, spec)
		}, func(info *ltypes.LookupServiceRegistrationInfo) {
			info.ServiceAttributes = []ltypes.LookupServiceRegistrationAttribute{attr("k1", "v1"), attr("k2", "")}
			info.ServiceEndpoints = append(info.ServiceEndpoints, ltypes.LookupServiceRegistrationEndpoint{
				Url: "https://psc2.example.com/sso-adminserver/sdk/vsphere.local", EndpointType: epAdmin,
				SslTrust:           []string{cert2, cert1},
				EndpointAttributes: []ltypes.LookupServiceRegistrationAttribute{attr("cis.common.ep.localurl", "http://localhost:7080/sso-adminserver/sdk")},
			})
			info.ServiceNameDefault = "STS"
		}},
		{"set-legacy", legacyID, func(s Store) error {
			spec := specOf(seed[legacyID])
			spec.ServiceEndpoints[0].SslTrust = []string{cert2}
			return s.Set(legacyID, spec)
		}, func(info *ltypes.LookupServiceRegistrationInfo) {
			info.ServiceEndpoints[0].SslTrust = []string{cert2}
		}},
		{"create", "new-license", func(s Store) error {
			fresh := registration("new-license", "com.vmware.cis", "cs.license", "node1", nil, epVpxd)
			fresh.ServiceEndpoints[0].SslTrust = []string{cert1}
			fresh.ServiceEndpoints[0].EndpointAttributes = []ltypes.LookupServiceRegistrationAttribute{attr("a", "b")}
			fresh.ServiceAttributes = []ltypes.LookupServiceRegistrationAttribute{attr("c", "d")}
			return s.Create("new-license", createSpec(fresh))
		}, func(info *ltypes.LookupServiceRegistrationInfo) {
			*info = registration("new-license", "com.vmware.cis", "cs.license", "node1", nil, epVpxd)
			info.ServiceEndpoints[0].SslTrust = []string{cert1}
			info.ServiceEndpoints[0].EndpointAttributes = []ltypes.LookupServiceRegistrationAttribute{attr("a", "b")}
			info.ServiceAttributes = []ltypes.LookupServiceRegistrationAttribute{attr("c", "d")}
		}},
		{"delete", vcID, func(s Store) error { return s.Delete(vcID) }, nil},
		{"delete-legacy", legacyID, func(s Store) error { return s.Delete(legacyID) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := seededDir(t)
			store := NewDirStore(d, testSite, domainDN)
			if err := tt.write(store); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", tt.name+".ldif"), d.LDIF())

			got, err := store.Get(tt.id)
			if tt.expect == nil {
				var nf *NotFoundError
				if !errors.As(err, &nf) || nf.ID != tt.id {
					t.Fatalf("Get after delete: %v, want NotFoundError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := seed[tt.id]
			tt.expect(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("read back:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// golden compares got with the file, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("directory differs from %s (run with -update to accept):\n%s", path, got)
	}
}

func TestDirStoreSetUnchanged(t *testing.T) {
	d := seededDir(t)
	store := NewDirStore(d, testSite, domainDN)
	before, usn := d.LDIF(), d.HighestUSN()
	for id, info := range wantSeed() {
		if err := store.Set(id, specOf(info)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(d.LDIF(), before) {
		t.Error("a Set that changes nothing changed the directory")
	}
	if d.HighestUSN() != usn {
		t.Errorf("a Set that changes nothing moved the USN from %d to %d", usn, d.HighestUSN())
	}
}

func TestDirStoreErrors(t *testing.T) {
	seed := wantSeed()
	noType := registration("bad", "com.vmware.cis", "cs.license", "node1", nil, epVpxd)
	noType.ServiceEndpoints[0].EndpointType.Type = "" // a MUST of vmwLKUPEndpointRegistration

	tests := []struct {
		name      string
		site      string
		write     func(s Store) error
		wantFound string // NotFoundError.ID
		wantExist string // ExistsError.ID
	}{
		{"set unknown", testSite, func(s Store) error { return s.Set("nope", specOf(seed[vcID])) }, "nope", ""},
		{"get unknown", testSite, func(s Store) error { _, err := s.Get("nope"); return err }, "nope", ""},
		{"delete unknown", testSite, func(s Store) error { return s.Delete("nope") }, "nope", ""},
		{"duplicate create", testSite, func(s Store) error { return s.Create(stsID, createSpec(seed[stsID])) }, "", stsID},
		{"create in a missing site", "other-site", func(s Store) error { return s.Create("x", createSpec(seed[stsID])) }, "", ""},
		{"list a missing site", "other-site", func(s Store) error {
			_, err := s.List(&ltypes.LookupServiceRegistrationFilter{})
			return err
		}, "", ""},
		{"create refused by the schema", testSite, func(s Store) error { return s.Create("bad", createSpec(noType)) }, "", ""},
		{"legacy set with bad base64", testSite, func(s Store) error {
			spec := specOf(seed[legacyID])
			spec.ServiceEndpoints[0].SslTrust = []string{"not base64!"}
			return s.Set(legacyID, spec)
		}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := seededDir(t)
			before := d.LDIF()
			err := tt.write(NewDirStore(d, tt.site, domainDN))
			if err == nil {
				t.Fatal("no error")
			}
			var nf *NotFoundError
			var ex *ExistsError
			switch {
			case tt.wantFound != "":
				if !errors.As(err, &nf) || nf.ID != tt.wantFound {
					t.Errorf("err %v, want NotFoundError{%s}", err, tt.wantFound)
				}
			case tt.wantExist != "":
				if !errors.As(err, &ex) || ex.ID != tt.wantExist {
					t.Errorf("err %v, want ExistsError{%s}", err, tt.wantExist)
				}
			case errors.As(err, &nf) || errors.As(err, &ex):
				t.Errorf("err %v, want neither NotFound nor Exists", err)
			}
			if !bytes.Equal(d.LDIF(), before) {
				t.Errorf("a failed write left changes:\n%s", d.LDIF())
			}
		})
	}
}

func TestDirStoreEscapedID(t *testing.T) {
	d := seededDir(t)
	store := NewDirStore(d, testSite, domainDN)
	id := "odd,id+with=specials "
	fresh := registration(id, "com.vmware.cis", "cs.license", "node1", nil, epVpxd)
	fresh.ServiceEndpoints[0].SslTrust = []string{cert1}
	if err := store.Create(id, createSpec(fresh)); err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, fresh) {
		t.Errorf("Get:\n got %+v\nwant %+v", got, fresh)
	}
	if err := store.Delete(id); err != nil {
		t.Fatal(err)
	}
}

// TestDirStoreOverSOAP drives the directory through the lookup client: the
// directory is the source of truth, the server only a view.
func TestDirStoreOverSOAP(t *testing.T) {
	ctx := context.Background()
	d := seededDir(t)
	n := startNode(t, nil, Config{Store: NewDirStore(d, testSite, domainDN)})
	lc := n.lookupClient(t, true)
	this := *lc.ServiceContent.ServiceRegistration

	got, err := lmethods.Get(ctx, lc, &ltypes.Get{This: this, ServiceId: legacyID})
	if err != nil {
		t.Fatal(err)
	}
	spec := specOf(got.Returnval)
	spec.ServiceEndpoints[0].SslTrust = []string{cert2}
	if _, err := lmethods.Set(ctx, lc, &ltypes.Set{This: this, ServiceId: legacyID, ServiceSpec: spec}); err != nil {
		t.Fatal(err)
	}
	ep, err := d.Get("cn=Endpoint1,cn=" + legacyID + ",cn=ServiceRegistrations,cn=LookupService,cn=default-site,cn=Sites,cn=Configuration," + domainDN)
	if err != nil {
		t.Fatal(err)
	}
	if anchors := ep.Values("vmwLKUPSslTrustAnchor"); len(anchors) != 1 || !bytes.Equal(anchors[0], []byte{0x30, 3, 2, 1, 2}) {
		t.Errorf("vmwLKUPSslTrustAnchor = %x, want the DER of cert 2", anchors)
	}

	// A change made in the directory shows at once.
	if err := d.Modify(ep.DN, []vmdir.Change{{Op: vmdir.ModReplace, Attr: vmdir.StrAttr("vmwLKUPURI", "https://moved.example.com/sts")}}); err != nil {
		t.Fatal(err)
	}
	list, err := lc.List(ctx, &ltypes.LookupServiceRegistrationFilter{NodeId: ""})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(info ltypes.LookupServiceRegistrationInfo) bool { return info.ServiceId == legacyID })
	if i < 0 || list[i].ServiceEndpoints[0].Url != "https://moved.example.com/sts" {
		t.Errorf("List does not show the directory change: %+v", list)
	}
}

// TestDirStoreDNSpelling reads entries whose DNs spell the same names with
// other case and spacing, as LDIF written by hand or by other tools does.
func TestDirStoreDNSpelling(t *testing.T) {
	d := seededDir(t)
	svcDN := "CN=spelled, CN=ServiceRegistrations, CN=LookupService, cn=default-site,cn=Sites,cn=Configuration, DC=vsphere,DC=local"
	entries := []*vmdir.Entry{
		vmdir.NewEntry(svcDN,
			vmdir.StrAttr("objectClass", "top", "vmwLKUPServiceRegistration"),
			vmdir.StrAttr("cn", "spelled"),
			vmdir.StrAttr("vmwLKUPVersion", "1"), vmdir.StrAttr("vmwLKUPProduct", "p"),
			vmdir.StrAttr("vmwLKUPType", "t"), vmdir.StrAttr("vmwLKUPOwnerId", "o")),
		vmdir.NewEntry("cn=Endpoint1,cn=spelled,cn=serviceregistrations,cn=lookupservice,cn=default-site,cn=sites,cn=configuration,dc=vsphere,dc=local",
			vmdir.StrAttr("objectClass", "top", "vmwLKUPEndpointRegistration"),
			vmdir.StrAttr("vmwLKUPEndpointType", "t"), vmdir.StrAttr("vmwLKUPEndpointProtocol", "https"),
			vmdir.StrAttr("vmwLKUPURI", "https://x/")),
	}
	for _, e := range entries {
		if err := d.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	store := NewDirStore(d, testSite, domainDN)
	list, err := store.List(&ltypes.LookupServiceRegistrationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{vcID, stsID, legacyID, "spelled"}
	if !slices.Equal(ids(list), want) {
		t.Fatalf("List = %q, want %q", ids(list), want)
	}
	got, err := store.Get("spelled")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ServiceEndpoints) != 1 || got.ServiceEndpoints[0].Url != "https://x/" {
		t.Errorf("endpoints of the respelled registration: %+v", got.ServiceEndpoints)
	}
	if err := store.Delete("spelled"); err != nil {
		t.Fatal(err)
	}
}
