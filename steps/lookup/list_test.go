package lookup

import (
	"context"
	"slices"
	"strings"
	"testing"

	"runbook/engine"
	"runbook/lab/model"
)

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	Register(r)
	want := map[string]engine.Effect{
		"lookup.list":            engine.EffectRead,
		"lookup.update_ssltrust": engine.EffectWrite,
	}
	if got := r.IDs(); len(got) != len(want) {
		t.Fatalf("registered %v, want %d types", got, len(want))
	}
	for id, effect := range want {
		st, ok := r.Lookup(id)
		if !ok {
			t.Errorf("%s is not registered", id)
			continue
		}
		if st.Effect() != effect {
			t.Errorf("%s: effect %s, want %s", id, st.Effect(), effect)
		}
	}
}

// TestListHealthy lists a healthy lab: every registration is listed as
// vmdir holds it, and each node's endpoints trust what the node serves.
func TestListHealthy(t *testing.T) {
	l, env, _ := testLab(t, "healthy")
	d := l.Model()
	out, err := runList(context.Background(), env, &listParams{})
	if err != nil {
		t.Fatal(err)
	}
	regs := registrations(t, d)
	if out.Count != len(regs) || len(out.Services) != len(regs) {
		t.Fatalf("count %d, %d services; the lab has %d registrations", out.Count, len(out.Services), len(regs))
	}
	if out.SiteID != d.Site {
		t.Errorf("siteId %q, want %q", out.SiteID, d.Site)
	}
	legacy := 0
	for _, s := range out.Services {
		r, ok := regs[s.ID]
		if !ok {
			t.Errorf("listed %s, which the lab does not have", s.ID)
			continue
		}
		if s.Legacy != r.Legacy || s.Type != r.Type || s.Product != r.Product || s.OwnerID != r.OwnerID ||
			s.NodeID != r.NodeID || s.Version != r.Version || s.SiteID != d.Site {
			t.Errorf("service %s = %+v, the lab has %+v", s.ID, s, r)
		}
		if s.Legacy {
			legacy++
			if !strings.HasPrefix(s.ID, d.Site+":") {
				t.Errorf("legacy service id %s has no site prefix", s.ID)
			}
		}
		if len(s.Endpoints) != len(r.Endpoints) {
			t.Errorf("service %s: %d endpoints, the lab has %d", s.ID, len(s.Endpoints), len(r.Endpoints))
			continue
		}
		for i, e := range s.Endpoints {
			re := r.Endpoints[i]
			if e.Index != i+1 || e.URL != re.URL || e.Type != re.Type || e.Protocol != re.Protocol ||
				e.SSLTrust != re.SslTrust[0] || e.TrustCount != len(re.SslTrust) {
				t.Errorf("service %s endpoint %d = %+v, the lab has %+v", s.ID, i+1, e, re)
			}
			if e.CertError != "" || e.Cert.SHA1 == "" || e.Cert.PEM != "" || e.Cert.Base64 != "" {
				t.Errorf("service %s endpoint %d: cert %+v, error %q", s.ID, i+1, e.Cert, e.CertError)
			}
		}
	}
	if legacy != 1 {
		t.Errorf("%d legacy registrations listed, want the lab's one", legacy)
	}

	// One trust per node, each the node's own Machine SSL certificate,
	// and the SRM's.
	if len(out.Trusts) != len(d.Nodes)+1 {
		t.Fatalf("%d trusts, want %d: %+v", len(out.Trusts), len(d.Nodes)+1, out.Trusts)
	}
	for i, n := range d.Nodes {
		tr := findTrust(out.Trusts, sha1Colon(machineDER(t, d, i)))
		if tr == nil {
			t.Errorf("no trust is %s's Machine SSL certificate", n.PNID)
			continue
		}
		if !slices.Equal(tr.Hosts, []string{n.PNID}) || tr.Base64 != trustOf(machineDER(t, d, i)) ||
			tr.PEM != pemOf(machineDER(t, d, i)) || tr.Expired || tr.Error != "" {
			t.Errorf("trust of %s = %+v", n.PNID, tr)
		}
		want := 0
		for _, r := range regs {
			for _, e := range r.Endpoints {
				if strings.Contains(e.URL, "//"+n.PNID+"/") {
					want++
				}
			}
		}
		if tr.Endpoints != want || len(tr.URLs) == 0 {
			t.Errorf("trust of %s: %d endpoints, %d URLs; want %d endpoints", n.PNID, tr.Endpoints, len(tr.URLs), want)
		}
	}
	srm := out.Trusts[len(out.Trusts)-1]
	if !slices.Equal(srm.Hosts, []string{model.SRMHost}) || len(srm.Services) != 1 || !strings.Contains(srm.Subject, "CN="+model.SRMHost) {
		t.Errorf("SRM trust = %+v", srm)
	}
}

func findTrust(trusts []Trust, sha1 string) *Trust {
	for i := range trusts {
		if trusts[i].SHA1 == sha1 {
			return &trusts[i]
		}
	}
	return nil
}

// TestListStale lists stale-ssltrust: node 1's endpoints trust the
// certificate BACKUP_STORE keeps, not the one node 1 serves; node 2's are
// right. The trusts show it without reading any file.
func TestListStale(t *testing.T) {
	l, env, _ := testLab(t, "stale-ssltrust")
	d := l.Model()
	out, err := runList(context.Background(), env, &listParams{})
	if err != nil {
		t.Fatal(err)
	}
	n1, n2 := d.Nodes[0].PNID, d.Nodes[1].PNID
	old := findTrust(out.Trusts, sha1Colon(backupDER(t, d, 0)))
	if old == nil {
		t.Fatalf("no trust is node 1's old certificate: %+v", out.Trusts)
	}
	if !slices.Equal(old.Hosts, []string{n1}) || old.PEM != pemOf(backupDER(t, d, 0)) {
		t.Errorf("old trust = hosts %v; want %s and the BACKUP_STORE certificate", old.Hosts, n1)
	}
	if tr := findTrust(out.Trusts, sha1Colon(machineDER(t, d, 0))); tr != nil {
		t.Errorf("an endpoint already trusts node 1's new certificate: %+v", tr)
	}
	if tr := findTrust(out.Trusts, sha1Colon(machineDER(t, d, 1))); tr == nil || !slices.Equal(tr.Hosts, []string{n2}) {
		t.Errorf("node 2's trust = %+v", tr)
	}
	// The legacy registration is among the stale ones.
	if !slices.ContainsFunc(old.Services, func(id string) bool { return strings.HasPrefix(id, d.Site+":") }) {
		t.Errorf("the legacy registration does not trust the old certificate: %v", old.Services)
	}
}

// TestListFilters applies each filter to stale-ssltrust's registrations.
func TestListFilters(t *testing.T) {
	l, env, _ := testLab(t, "stale-ssltrust")
	d := l.Model()
	n1, n2 := d.Nodes[0], d.Nodes[1]
	all, err := runList(context.Background(), env, &listParams{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		p         listParams
		services  int
		endpoints int
		check     func(s Service, e Endpoint) bool
	}{
		{"none", listParams{}, all.Count, -1, nil},
		{"type", listParams{Type: "cs.identity"}, 2, 6, func(s Service, _ Endpoint) bool { return s.Type == "cs.identity" }},
		{"product any case", listParams{Product: "COM.VMWARE.DR"}, 1, 1, func(s Service, _ Endpoint) bool { return s.Product == model.SRMProduct }},
		{"endpoint type", listParams{EndpointType: "com.vmware.cis.cs.identity.sso"}, 2, 2,
			func(_ Service, e Endpoint) bool { return e.Type == "com.vmware.cis.cs.identity.sso" }},
		{"protocol", listParams{Protocol: "wsTrust"}, 3, 3, func(_ Service, e Endpoint) bool { return e.Protocol == "wsTrust" }},
		{"node id", listParams{NodeID: n2.MachineID}, 8, 10, func(s Service, _ Endpoint) bool { return s.NodeID == n2.MachineID }},
		{"site id", listParams{SiteID: strings.ToUpper(d.Site)}, all.Count, -1, nil},
		{"other site", listParams{SiteID: "elsewhere"}, 0, 0, nil},
		{"url contains", listParams{URLContains: strings.ToUpper(n1.PNID) + "/STS"}, 2, 2,
			func(_ Service, e Endpoint) bool { return strings.Contains(e.URL, n1.PNID+"/sts/") }},
		{"type and node", listParams{Type: "vcenterserver", NodeID: n1.MachineID}, 1, 1,
			func(s Service, _ Endpoint) bool { return s.Type == "vcenterserver" && s.NodeID == n1.MachineID }},
		{"no match", listParams{URLContains: "nowhere.example"}, 0, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runList(context.Background(), env, &tc.p)
			if err != nil {
				t.Fatal(err)
			}
			endpoints := 0
			for _, s := range out.Services {
				for _, e := range s.Endpoints {
					endpoints++
					if tc.check != nil && !tc.check(s, e) {
						t.Errorf("listed %s endpoint %d (%s)", s.ID, e.Index, e.URL)
					}
				}
			}
			if out.Count != tc.services || len(out.Services) != tc.services {
				t.Errorf("%d services (count %d), want %d", len(out.Services), out.Count, tc.services)
			}
			if tc.endpoints >= 0 && endpoints != tc.endpoints {
				t.Errorf("%d endpoints, want %d", endpoints, tc.endpoints)
			}
			n := 0
			for _, tr := range out.Trusts {
				n += tr.Endpoints
			}
			if n != endpoints {
				t.Errorf("trusts count %d endpoints, the services %d", n, endpoints)
			}
		})
	}
}

// TestListOddTrusts lists endpoints whose sslTrust is not base64 or not a
// certificate, and one with two trusted certificates.
func TestListOddTrusts(t *testing.T) {
	l, env, _ := testLab(t, "healthy")
	d := l.Model()
	extra := selfSigned(t, "extra.example.com")
	reg := model.Registration{
		ServiceID: "0dd00000-0000-4000-8000-000000000001", Product: "com.example", Type: "odd",
		OwnerID: "odd@vsphere.local", Version: "1.0", SiteID: d.Site,
		Endpoints: []model.Endpoint{
			{URL: "https://odd.example.com/a", Type: "com.example.a", Protocol: "https", SslTrust: []string{trustOf([]byte("not a certificate"))}},
			{URL: "https://odd.example.com/b", Type: "com.example.b", Protocol: "https",
				SslTrust: []string{trustOf(machineDER(t, d, 0)), trustOf(extra)}},
			{URL: "http://odd.example.com/c", Type: "com.example.c", Protocol: "http"},
		},
	}
	if err := d.SaveRegistration(reg); err != nil {
		t.Fatal(err)
	}
	out, err := runList(context.Background(), env, &listParams{URLContains: "odd.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Count != 1 || len(out.Services[0].Endpoints) != 3 {
		t.Fatalf("listed %+v", out.Services)
	}
	eps := out.Services[0].Endpoints
	if eps[0].CertError == "" || eps[0].Cert.SHA1 != "" {
		t.Errorf("endpoint a: %+v; want an error", eps[0])
	}
	if eps[1].TrustCount != 2 || eps[1].Cert.SHA1 != sha1Colon(machineDER(t, d, 0)) || eps[1].CertError != "" {
		t.Errorf("endpoint b: %+v", eps[1])
	}
	if eps[2].SSLTrust != "" || eps[2].TrustCount != 0 || eps[2].CertError != "" {
		t.Errorf("endpoint c: %+v", eps[2])
	}
	if len(out.Trusts) != 3 {
		t.Fatalf("trusts %+v, want the bad value, node 1's and the extra certificate", out.Trusts)
	}
	if bad := out.Trusts[0]; bad.Error == "" || bad.SHA1 == "" || bad.Subject != "" {
		t.Errorf("bad trust = %+v", bad)
	}
	if x := findTrust(out.Trusts, sha1Colon(extra)); x == nil || !strings.Contains(x.Subject, "CN=extra.example.com") {
		t.Errorf("second trust value not listed: %+v", out.Trusts)
	}
}

func TestTrustDER(t *testing.T) {
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x05}
	b64 := trustOf(der)
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"single line", b64, true},
		{"wrapped", b64[:4] + "\r\n" + b64[4:], true},
		{"no padding", strings.TrimRight(b64, "="), true},
		{"pem", pemOf(der), true},
		{"not base64", "not*base64", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		got, err := trustDER(tc.in)
		if tc.ok != (err == nil) || tc.ok && string(got) != string(der) {
			t.Errorf("%s: trustDER(%q) = %x, %v", tc.name, tc.in, got, err)
		}
	}
}

func TestIsLegacy(t *testing.T) {
	tests := []struct {
		id, site, own string
		want          bool
	}{
		{"default-site:1234", "default-site", "", true},
		{"Default-Site:1234", "", "default-site", true},
		{"default-site:1234", "", "", false},
		{"1234-default-site", "default-site", "default-site", false},
		{"default-site", "default-site", "", false},
		{"other:1234", "default-site", "default-site", false},
	}
	for _, tc := range tests {
		if got := isLegacy(tc.id, tc.site, tc.own); got != tc.want {
			t.Errorf("isLegacy(%q, %q, %q) = %v", tc.id, tc.site, tc.own, got)
		}
	}
}
