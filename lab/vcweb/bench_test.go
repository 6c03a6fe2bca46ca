package vcweb

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"runtime"
	"sync"
	"testing"

	lmethods "github.com/vmware/govmomi/lookup/methods"
	ltypes "github.com/vmware/govmomi/lookup/types"

	"runbook/lab/vmdir"
)

func BenchmarkStart(b *testing.B) {
	ca := newTestCA(b)
	leaf := ca.leaf(b, "vc1.example.com")
	cfg := Config{
		Store:       newMemStore(testSite),
		Certificate: func() (*tls.Certificate, error) { return leaf, nil },
		Login:       func(string, string) bool { return false },
	}
	for b.Loop() {
		srv, err := Start(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		_ = srv.Close()
	}
}

// BenchmarkStartTwoNodes starts two nodes at once, as a two-node lab does.
func BenchmarkStartTwoNodes(b *testing.B) {
	ca := newTestCA(b)
	leaves := []*tls.Certificate{ca.leaf(b, "vc1.example.com"), ca.leaf(b, "vc2.example.com")}
	for b.Loop() {
		var wg sync.WaitGroup
		errs := make([]error, len(leaves))
		for i, leaf := range leaves {
			wg.Go(func() {
				srv, err := Start(context.Background(), Config{
					Store:       newMemStore(testSite),
					Certificate: func() (*tls.Certificate, error) { return leaf, nil },
					Login:       func(string, string) bool { return false },
				})
				if err == nil {
					err = srv.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// bigDir returns a directory holding n 6.x registrations of two endpoints
// and one property each, all trusting the DER of a real leaf, and that DER.
func bigDir(b *testing.B, n int) (*vmdir.Directory, Store, [2]string) {
	b.Helper()
	ca := newTestCA(b)
	trusts := [2]string{
		base64.StdEncoding.EncodeToString(ca.leaf(b, "vc1.example.com").Certificate[0]),
		base64.StdEncoding.EncodeToString(ca.leaf(b, "vc1.example.com").Certificate[0]),
	}
	d := seededDir(b)
	store := NewDirStore(d, testSite, domainDN)
	for i := range n {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		info := registration(id, "com.vmware.cis", "cs.perf", fmt.Sprintf("node-%d", i%16), nil, epVpxd, epHTTPS)
		for j := range info.ServiceEndpoints {
			info.ServiceEndpoints[j].SslTrust = []string{trusts[0]}
		}
		info.ServiceAttributes = []ltypes.LookupServiceRegistrationAttribute{attr("com.vmware.cis.cm.HostId", "node")}
		if err := store.Create(id, createSpec(info)); err != nil {
			b.Fatal(err)
		}
	}
	return d, store, trusts
}

// BenchmarkListSet lists 5,000 registrations through the DirStore and sets
// a new trust on every one of them, as a Machine SSL repair does.
func BenchmarkListSet(b *testing.B) {
	const n = 5000
	_, store, trusts := bigDir(b, n)
	report := measureLive(func() any {
		infos, err := store.List(&ltypes.LookupServiceRegistrationFilter{})
		if err != nil {
			b.Fatal(err)
		}
		return infos
	})
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		round++
		infos, err := store.List(&ltypes.LookupServiceRegistrationFilter{})
		if err != nil {
			b.Fatal(err)
		}
		if len(infos) < n {
			b.Fatalf("listed %d registrations", len(infos))
		}
		for _, info := range infos {
			spec := specOf(info)
			for j := range spec.ServiceEndpoints {
				spec.ServiceEndpoints[j].SslTrust = []string{trusts[round%2]}
			}
			if err := store.Set(info.ServiceId, spec); err != nil {
				b.Fatal(err)
			}
		}
	}
	report(b)
}

// measureLive measures the live heap after a collection (dir-MiB: the
// directory and server) and the live memory a List result holds on top
// (list-MiB); the returned func reports them (after b.Loop, which clears
// metrics reported earlier).
func measureLive(list func() any) (report func(*testing.B)) {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	before := m.HeapAlloc
	result := list()
	runtime.GC()
	runtime.ReadMemStats(&m)
	runtime.KeepAlive(result)
	dir, held := float64(before)/(1<<20), (float64(m.HeapAlloc)-float64(before))/(1<<20)
	return func(b *testing.B) {
		b.ReportMetric(dir, "dir-MiB")
		b.ReportMetric(held, "list-MiB")
	}
}

// BenchmarkLookupList5000 lists 5,000 registrations over SOAP.
func BenchmarkLookupList5000(b *testing.B) {
	_, store, _ := bigDir(b, 5000)
	n := startNode(b, nil, Config{Store: store})
	lc := n.lookupClient(b, false)
	report := measureLive(func() any {
		infos, err := lc.List(context.Background(), &ltypes.LookupServiceRegistrationFilter{})
		if err != nil {
			b.Fatal(err)
		}
		return infos
	})
	b.ReportAllocs()
	for b.Loop() {
		infos, err := lc.List(context.Background(), &ltypes.LookupServiceRegistrationFilter{})
		if err != nil || len(infos) < 5000 {
			b.Fatal(len(infos), err)
		}
	}
	report(b)
}

// BenchmarkLookupSet measures one Set over SOAP with 5,000 registrations in
// the directory.
func BenchmarkLookupSet(b *testing.B) {
	_, store, trusts := bigDir(b, 5000)
	n := startNode(b, nil, Config{Store: store})
	lc := n.lookupClient(b, true)
	infos, err := store.List(&ltypes.LookupServiceRegistrationFilter{ServiceType: &ltypes.LookupServiceRegistrationServiceType{Type: "cs.perf"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		info := infos[i%len(infos)]
		spec := specOf(info)
		for j := range spec.ServiceEndpoints {
			spec.ServiceEndpoints[j].SslTrust = []string{trusts[(i/len(infos)+1)%2]}
		}
		req := &ltypes.Set{This: *lc.ServiceContent.ServiceRegistration, ServiceId: info.ServiceId, ServiceSpec: spec}
		if _, err := lmethods.Set(context.Background(), lc, req); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
