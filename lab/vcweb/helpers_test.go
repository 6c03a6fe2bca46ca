package vcweb

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmware/govmomi/lookup"
	ltypes "github.com/vmware/govmomi/lookup/types"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
)

const (
	testUser     = "administrator@vsphere.local"
	testPassword = "VMware1!"
	testSite     = "default-site"
)

// testCA is a throw-away certificate authority issuing machine SSL leaves
// for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "CA", Organization: []string{"vcweb test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

var serial atomic.Int64

// leaf issues a machine SSL certificate for 127.0.0.1 named cn.
func (ca *testCA) leaf(t testing.TB, cn string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{cn},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
}

// memStore is an in-memory Store with the semantics NewDirStore has over
// vmdir; it lets the SOAP server be tested without a directory.
type memStore struct {
	site string
	mu   sync.Mutex
	ids  []string
	regs map[string]ltypes.LookupServiceRegistrationInfo
}

func newMemStore(site string, infos ...ltypes.LookupServiceRegistrationInfo) *memStore {
	s := &memStore{site: site, regs: make(map[string]ltypes.LookupServiceRegistrationInfo)}
	for _, info := range infos {
		s.ids = append(s.ids, info.ServiceId)
		s.regs[info.ServiceId] = info
	}
	return s
}

func (s *memStore) SiteID() string { return s.site }

func (s *memStore) List(filter *ltypes.LookupServiceRegistrationFilter) ([]ltypes.LookupServiceRegistrationInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ltypes.LookupServiceRegistrationInfo
	for _, id := range s.ids {
		if info, ok := Match(filter, s.regs[id]); ok {
			out = append(out, info)
		}
	}
	return out, nil
}

func (s *memStore) Get(id string) (ltypes.LookupServiceRegistrationInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.regs[id]
	if !ok {
		return info, &NotFoundError{ID: id}
	}
	return info, nil
}

func (s *memStore) Set(id string, spec ltypes.LookupServiceRegistrationSetSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.regs[id]
	if !ok {
		return &NotFoundError{ID: id}
	}
	info.LookupServiceRegistrationMutableServiceInfo = spec.LookupServiceRegistrationMutableServiceInfo
	s.regs[id] = info
	return nil
}

func (s *memStore) Create(id string, spec ltypes.LookupServiceRegistrationCreateSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.regs[id]; ok {
		return &ExistsError{ID: id}
	}
	s.ids = append(s.ids, id)
	s.regs[id] = ltypes.LookupServiceRegistrationInfo{
		LookupServiceRegistrationCommonServiceInfo: spec.LookupServiceRegistrationCommonServiceInfo,
		ServiceId: id,
		SiteId:    s.site,
	}
	return nil
}

func (s *memStore) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.regs[id]; !ok {
		return &NotFoundError{ID: id}
	}
	delete(s.regs, id)
	s.ids = slices.DeleteFunc(s.ids, func(x string) bool { return x == id })
	return nil
}

// registration builds a 6.x registration with one endpoint per type.
func registration(id, product, typ, node string, trust []byte, epTypes ...ltypes.LookupServiceRegistrationEndpointType) ltypes.LookupServiceRegistrationInfo {
	info := ltypes.LookupServiceRegistrationInfo{ServiceId: id, SiteId: testSite}
	info.OwnerId = "vpxd-" + node + "@vsphere.local"
	info.NodeId = node
	info.ServiceType = ltypes.LookupServiceRegistrationServiceType{Product: product, Type: typ}
	info.ServiceVersion = "2.0"
	for _, et := range epTypes {
		info.ServiceEndpoints = append(info.ServiceEndpoints, ltypes.LookupServiceRegistrationEndpoint{
			Url:          "https://vc1.example.com/" + et.Type,
			EndpointType: et,
			SslTrust:     []string{base64.StdEncoding.EncodeToString(trust)},
		})
	}
	return info
}

// node is a started server with what the tests need to reach it.
type node struct {
	srv   *Server
	ca    *testCA
	cert  atomic.Pointer[tls.Certificate]
	store *memStore
}

// startNode starts a server over store (or cfg.Store when store is nil)
// with a fresh CA and leaf; cfg may preset Faults or TrustedChains.
func startNode(t testing.TB, store *memStore, cfg Config) *node {
	t.Helper()
	n := &node{ca: newTestCA(t), store: store}
	n.cert.Store(n.ca.leaf(t, "vc1.example.com"))
	if store != nil {
		cfg.Store = store
	}
	cfg.Certificate = func() (*tls.Certificate, error) { return n.cert.Load(), nil }
	cfg.Login = func(user, password string) bool { return user == testUser && password == testPassword }
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	n.srv = srv
	return n
}

// client returns a vim25 client that verifies the node against its CA,
// logged in with password unless password is empty.
func (n *node) client(t testing.TB, password string) (*vim25.Client, error) {
	t.Helper()
	ctx := context.Background()
	sc := soap.NewClient(n.srv.URL(), false)
	sc.DefaultTransport().TLSClientConfig.RootCAs = n.ca.pool
	t.Cleanup(sc.CloseIdleConnections)
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	if password != "" {
		if err := session.NewManager(vc).Login(ctx, url.UserPassword(testUser, password)); err != nil {
			return vc, err
		}
	}
	return vc, nil
}

// lookupClient returns a lookup client, authenticated when login is true.
func (n *node) lookupClient(t testing.TB, login bool) *lookup.Client {
	t.Helper()
	password := ""
	if login {
		password = testPassword
	}
	vc, err := n.client(t, password)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := lookup.NewClient(context.Background(), vc)
	if err != nil {
		t.Fatal(err)
	}
	return lc
}
