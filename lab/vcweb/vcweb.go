// Package vcweb serves the HTTPS face of a simulated vCenter node on loopback.
//
// One listener presents the node's machine SSL certificate and answers:
//
//   - /sdk: the vSphere API as govmomi's simulator gives it (a VPX model
//     without inventory: ServiceContent, SessionManager, OptionManager …);
//   - /lookupservice/sdk: the Lookup Service with List, Get, Set, Create,
//     Delete and GetSiteId over a [Store] that the caller owns;
//   - /idm/tenant/<domain>/certificates?scope=TENANT: the IDM REST view of
//     the tenant's trusted certificate chains, as checksts.py reads it.
//
// The package keeps no state of its own: registrations, the certificate and
// the trusted chains are read through [Config] on every request, so the
// model that owns them (vmdir entries, VECS) stays the only source of truth.
//
// Authentication follows a real appliance. SessionManager.Login checks the
// SSO credentials with [Config.Login] (wrong password: InvalidLogin). The
// lookup client inherits the vim25 session cookie; Set, Create and Delete
// need that session (otherwise NotAuthenticated) while List, Get and
// GetSiteId are served anonymously, as a real Lookup Service does. The
// ssoadmin simulator is deliberately not loaded: with it, vcsim would check
// logins against its own principal table instead of Config.Login.
package vcweb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"

	ltypes "github.com/vmware/govmomi/lookup/types"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	vim "github.com/vmware/govmomi/vim25/types"
)

// Store holds the Lookup Service registrations of one site. It is
// implemented over the model by the caller (see [NewDirStore]); the server
// calls it on every request and never caches what it returns. Values it
// returns belong to the caller; it must be safe for concurrent use.
type Store interface {
	// SiteID returns the site the registrations belong to.
	SiteID() string
	// List returns the registrations that pass filter as [Match] defines it.
	// The server never passes a nil filter.
	List(filter *ltypes.LookupServiceRegistrationFilter) ([]ltypes.LookupServiceRegistrationInfo, error)
	// Get returns one registration, or a *NotFoundError.
	Get(id string) (ltypes.LookupServiceRegistrationInfo, error)
	// Set replaces the mutable part of a registration, or returns a
	// *NotFoundError.
	Set(id string, spec ltypes.LookupServiceRegistrationSetSpec) error
	// Create adds a registration, or returns an *ExistsError.
	Create(id string, spec ltypes.LookupServiceRegistrationCreateSpec) error
	// Delete removes a registration, or returns a *NotFoundError.
	Delete(id string) error
}

// NotFoundError reports that no registration has the service ID.
type NotFoundError struct {
	ID string // the service ID asked for
}

// Error implements error.
func (e *NotFoundError) Error() string { return fmt.Sprintf("registration %q not found", e.ID) }

// ExistsError reports that a registration with the service ID already exists.
type ExistsError struct {
	ID string // the service ID asked for
}

// Error implements error.
func (e *ExistsError) Error() string { return fmt.Sprintf("registration %q already exists", e.ID) }

// Faults injects failures ahead of the operations the server performs.
//
// Before is called with the name of the operation about to run: "tls" for
// a TLS handshake, "sdk.<Method>" for a vSphere API call (sdk.Login,
// sdk.RetrieveServiceContent …), "lookup.<Method>" for a Lookup Service call
// (lookup.List, lookup.Set …) and "idm.certificates" for the IDM endpoint.
// It may sleep to model a slow node. A nil error lets the operation run; an
// error wrapping [ErrDrop] closes the connection without an answer; any
// other error fails the operation (a SOAP SystemError fault carrying its
// text, an HTTP 503, or a failed handshake).
type Faults interface {
	Before(op string) error
}

// FaultsFunc adapts a function to the [Faults] interface.
type FaultsFunc func(op string) error

// Before calls f(op).
func (f FaultsFunc) Before(op string) error { return f(op) }

// ErrDrop, returned (or wrapped) by [Faults.Before], makes the server close
// the connection without answering.
var ErrDrop = errors.New("drop connection")

// Config describes one node's HTTPS face. Store, Certificate and Login are
// required.
type Config struct {
	// Store holds the Lookup Service registrations.
	Store Store
	// Certificate returns the node's current machine SSL certificate and key.
	// It is called on every TLS handshake, so a replacement in the model
	// changes what the port serves without a restart.
	Certificate func() (*tls.Certificate, error)
	// Domain is the SSO domain name; empty means "vsphere.local".
	Domain string
	// TrustedChains returns the tenant's trusted certificate chains
	// (TrustedCertChain-N, leaf first) for the IDM endpoint; nil serves none.
	TrustedChains func() ([][]*x509.Certificate, error)
	// Login checks SSO credentials for SessionManager.Login.
	Login func(user, password string) bool
	// Faults, when not nil, is consulted before every operation.
	Faults Faults
}

// Server is a running node HTTPS server. Close stops it.
type Server struct {
	model *simulator.Model
	srv   *simulator.Server
	url   *url.URL

	closeOnce sync.Once
}

// Start serves cfg on 127.0.0.1 at a free port. ctx bounds start-up only;
// the server runs until Close.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Certificate == nil || cfg.Login == nil {
		return nil, errors.New("start node https: Store, Certificate and Login are required")
	}
	if cfg.Domain == "" {
		cfg.Domain = "vsphere.local"
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start node https: %w", err)
	}
	first, err := cfg.Certificate()
	if err != nil {
		return nil, fmt.Errorf("start node https: read certificate: %w", err)
	}
	if first == nil || len(first.Certificate) == 0 {
		return nil, errors.New("start node https: read certificate: no certificate")
	}

	// A VPX model without inventory keeps what /sdk clients need (service
	// content, sessions, options naming the SSO endpoints) and starts in
	// about a millisecond instead of a third of a second.
	model, err := newModel()
	if err != nil {
		return nil, fmt.Errorf("start node https: create model: %w", err)
	}
	svc := model.Service

	// Any Userinfo other than simulator.DefaultLogin makes vcsim ask
	// ValidLogin; the name is informational and carries no password.
	svc.Listen = &url.URL{Host: "127.0.0.1:0", User: url.User("administrator@" + cfg.Domain)}
	model.Map().SessionManager().ValidLogin = func(req *vim.Login) bool {
		return cfg.Login(req.UserName, req.Password)
	}
	model.Map().Handler = faultHandler("sdk.", cfg.Faults)

	svc.RegisterSDK(newLookupRegistry(cfg.Store, cfg.Faults))
	svc.HandleFunc(idmPrefix, idmHandler(cfg))

	svc.TLS = &tls.Config{
		// vcsim reads Certificates[0] for its own uses; what the listener
		// presents comes from GetConfigForClient. (GetCertificate alone is
		// not enough: crypto/tls skips it when Certificates is set and the
		// client sends no SNI, which is the case for https://127.0.0.1.)
		Certificates:       []tls.Certificate{*first},
		GetConfigForClient: handshakeConfig(cfg),
		MinVersion:         tls.VersionTLS12,
	}

	srv, err := newServer(svc)
	if err != nil {
		model.Remove()
		return nil, fmt.Errorf("start node https: %w", err)
	}
	u := *srv.URL
	u.User = nil
	return &Server{model: model, srv: srv, url: &u}, nil
}

// createMu serializes vcsim model creation, which writes package-level
// state of the simulator (the evaluation licence, the settings template).
var createMu sync.Mutex

// newModel creates a VPX model without inventory whose settings belong to
// it alone.
func newModel() (*simulator.Model, error) {
	createMu.Lock()
	defer createMu.Unlock()
	model := simulator.VPX()
	model.Datacenter, model.Portgroup, model.Host, model.Cluster = 0, 0, 0, 0
	model.ClusterHost, model.Datastore, model.Machine = 0, 0, 0
	// Create appends the product name and version to the shared evaluation
	// licence every time; keep it from growing with each node started. The
	// clip makes the next append copy instead of writing into the array the
	// models created so far still read.
	props := simulator.EvalLicense.Properties
	err := model.Create()
	simulator.EvalLicense.Properties = slices.Clip(props)
	if err != nil {
		return nil, err
	}
	privateSettings(model.Map().OptionManager())
	return model, nil
}

// privateSettings gives the model its own copy of the vCenter settings.
// vcsim fills every VPX OptionManager with pointers to one package-level
// list and NewServer rewrites the *.uri values in place with its own
// host:port, so without this copy the node started last would redirect the
// other nodes' clients (config.vpxd.sso.sts.uri, which lookup.NewClient
// follows) to itself.
func privateSettings(m *simulator.OptionManager) {
	own := make([]vim.BaseOptionValue, len(m.Setting))
	for i, s := range m.Setting {
		v := *s.GetOptionValue()
		own[i] = &v
	}
	m.Setting = own
}

// newServer starts vcsim's listener, turning its panics into errors.
func newServer(svc *simulator.Service) (srv *simulator.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("listen: %v", r)
		}
	}()
	return svc.NewServer(), nil
}

// handshakeConfig returns the per-connection TLS configuration carrying the
// certificate the model holds right now.
func handshakeConfig(cfg Config) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if cfg.Faults != nil {
			if err := cfg.Faults.Before("tls"); err != nil {
				return nil, fmt.Errorf("handshake: %w", err)
			}
		}
		cert, err := cfg.Certificate()
		if err != nil {
			return nil, fmt.Errorf("read certificate: %w", err)
		}
		if cert == nil {
			return nil, errors.New("read certificate: no certificate")
		}
		return &tls.Config{
			Certificates: []tls.Certificate{*cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"},
			// As vcsim: lets SessionManager.LoginExtensionByCertificate see
			// a client certificate when one is offered.
			ClientAuth: tls.RequestClientCert,
		}, nil
	}
}

// faultHandler returns a registry Handler that consults faults before each
// SOAP method; prefix names the endpoint in the operation name.
func faultHandler(prefix string, faults Faults) func(*simulator.Context, *simulator.Method) (mo.Reference, vim.BaseMethodFault) {
	if faults == nil {
		return nil
	}
	return func(_ *simulator.Context, m *simulator.Method) (mo.Reference, vim.BaseMethodFault) {
		return nil, injectFault(faults, prefix+m.Name)
	}
}

// injectFault asks faults about op. It drops the connection (by aborting
// the HTTP handler) for ErrDrop and turns other errors into a SystemError.
// It must run outside vcsim's object locks, as registry Handlers do.
func injectFault(faults Faults, op string) vim.BaseMethodFault {
	if faults == nil {
		return nil
	}
	err := faults.Before(op)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrDrop):
		panic(http.ErrAbortHandler)
	default:
		return &vim.SystemError{Reason: fmt.Sprintf("%s: %v", op, err)}
	}
}

// URL returns the vSphere API address, https://127.0.0.1:PORT/sdk, without
// credentials.
func (s *Server) URL() *url.URL {
	u := *s.url
	return &u
}

// Addr returns the listener's host:port.
func (s *Server) Addr() string { return s.url.Host }

// Close stops the listener, waits for requests in flight and releases the
// model. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.srv.Close()
		s.model.Remove()
	})
	return nil
}
