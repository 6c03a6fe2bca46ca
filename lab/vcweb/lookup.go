package vcweb

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/vmware/govmomi/lookup"
	lmethods "github.com/vmware/govmomi/lookup/methods"
	ltypes "github.com/vmware/govmomi/lookup/types"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	vim "github.com/vmware/govmomi/vim25/types"
)

// Managed object references of the Lookup Service, as a real one names them.
var (
	registrationRef = vim.ManagedObjectReference{Type: "LookupServiceRegistration", Value: "ServiceRegistration"}
	lookupContent   = ltypes.LookupServiceContent{
		LookupService:                vim.ManagedObjectReference{Type: "LookupLookupService", Value: "lookupService"},
		ServiceRegistration:          &registrationRef,
		DeploymentInformationService: vim.ManagedObjectReference{Type: "LookupDeploymentInformationService", Value: "deploymentInformationService"},
		L10n:                         vim.ManagedObjectReference{Type: "LookupL10n", Value: "l10n"},
	}
)

// newLookupRegistry returns the /lookupservice/sdk registry over store.
//
// A real Lookup Service answers List, Get and GetSiteId without a session,
// whereas vcsim lets a request without a session call only List and
// RetrieveServiceContent. So the registry maps a request that carries no
// session cookie to one shared anonymous session, which is never announced
// to a client, and the mutating methods refuse it themselves.
func newLookupRegistry(store Store, faults Faults) *simulator.Registry {
	r := simulator.NewRegistry()
	r.Namespace = lookup.Namespace
	r.Path = lookup.Path
	anonymous := simulator.Session{
		UserSession: vim.UserSession{Key: rand.Text(), UserName: "anonymous", FullName: "anonymous"},
		Registry:    simulator.NewRegistry(),
		Map:         r,
	}
	r.Put(&lookupInstance{ManagedObjectReference: lookup.ServiceInstance})
	r.Put(&serviceRegistration{ManagedObjectReference: registrationRef, store: store, anonymous: anonymous.Key})
	r.Cookie = func(ctx *simulator.Context) string {
		if c := simulator.HTTPCookie(ctx); c != "" {
			return c
		}
		ctx.SetSession(anonymous, false)
		return anonymous.Key
	}
	r.Handler = func(_ *simulator.Context, m *simulator.Method) (mo.Reference, vim.BaseMethodFault) {
		return nil, injectFault(faults, "lookup."+m.Name)
	}
	return r
}

// lookupInstance is the Lookup Service's ServiceInstance.
type lookupInstance struct {
	vim.ManagedObjectReference
}

// RetrieveServiceContent answers the lookup client's first call.
func (*lookupInstance) RetrieveServiceContent(*ltypes.RetrieveServiceContent) soap.HasFault {
	return &lmethods.RetrieveServiceContentBody{
		Res: &ltypes.RetrieveServiceContentResponse{Returnval: lookupContent},
	}
}

// serviceRegistration is the Lookup Service's ServiceRegistration object;
// vcsim dispatches SOAP methods to it by name.
type serviceRegistration struct {
	vim.ManagedObjectReference
	store     Store
	anonymous string // key of the anonymous session
}

// authenticated returns a NotAuthenticated fault unless ctx has a session
// from SessionManager.Login.
func (s *serviceRegistration) authenticated(ctx *simulator.Context) *soap.Fault {
	if ctx.Session != nil && ctx.Session.Key != s.anonymous {
		return nil
	}
	return simulator.Fault("", &vim.NotAuthenticated{
		NoPermission: vim.NoPermission{Object: &s.ManagedObjectReference, PrivilegeId: "System.View"},
	})
}

// GetSiteId returns the store's site.
func (s *serviceRegistration) GetSiteId(*ltypes.GetSiteId) soap.HasFault {
	return &lmethods.GetSiteIdBody{Res: &ltypes.GetSiteIdResponse{Returnval: s.store.SiteID()}}
}

// List returns the registrations passing the filter; a nil filter faults.
func (s *serviceRegistration) List(req *ltypes.List) soap.HasFault {
	body := new(lmethods.ListBody)
	if req.FilterCriteria == nil {
		// What a real PSC answers to a missing filterCriteria (and what
		// govmomi's stock lookup simulator reproduces).
		body.Fault_ = simulator.Fault("LookupFaultServiceFault", &vim.SystemError{Reason: "Invalid fault"})
		return body
	}
	infos, err := s.store.List(req.FilterCriteria)
	if err != nil {
		body.Fault_ = storeFault(err)
		return body
	}
	body.Res = &ltypes.ListResponse{Returnval: infos}
	return body
}

// Get returns one registration.
func (s *serviceRegistration) Get(req *ltypes.Get) soap.HasFault {
	body := new(lmethods.GetBody)
	info, err := s.store.Get(req.ServiceId)
	if err != nil {
		body.Fault_ = storeFault(err)
		return body
	}
	body.Res = &ltypes.GetResponse{Returnval: info}
	return body
}

// Set replaces the mutable part of a registration.
func (s *serviceRegistration) Set(ctx *simulator.Context, req *ltypes.Set) soap.HasFault {
	body := new(lmethods.SetBody)
	if body.Fault_ = s.write(ctx, func() error { return s.store.Set(req.ServiceId, req.ServiceSpec) },
		func() *soap.Fault { return checkID(req.ServiceId) },
		func() *soap.Fault { return checkMutable(&req.ServiceSpec.LookupServiceRegistrationMutableServiceInfo) }); body.Fault_ == nil {
		body.Res = new(ltypes.SetResponse)
	}
	return body
}

// Create adds a registration.
func (s *serviceRegistration) Create(ctx *simulator.Context, req *ltypes.Create) soap.HasFault {
	body := new(lmethods.CreateBody)
	if body.Fault_ = s.write(ctx, func() error { return s.store.Create(req.ServiceId, req.CreateSpec) },
		func() *soap.Fault { return checkID(req.ServiceId) },
		func() *soap.Fault { return checkCommon(&req.CreateSpec.LookupServiceRegistrationCommonServiceInfo) }); body.Fault_ == nil {
		body.Res = new(ltypes.CreateResponse)
	}
	return body
}

// Delete removes a registration.
func (s *serviceRegistration) Delete(ctx *simulator.Context, req *ltypes.Delete) soap.HasFault {
	body := new(lmethods.DeleteBody)
	if body.Fault_ = s.write(ctx, func() error { return s.store.Delete(req.ServiceId) }); body.Fault_ == nil {
		body.Res = new(ltypes.DeleteResponse)
	}
	return body
}

// write runs a mutating call as a real Lookup Service does: the session
// must be authenticated and every check pass (in order); then the store's
// error, if any, becomes the fault.
func (s *serviceRegistration) write(ctx *simulator.Context, do func() error, checks ...func() *soap.Fault) *soap.Fault {
	if f := s.authenticated(ctx); f != nil {
		return f
	}
	for _, check := range checks {
		if f := check(); f != nil {
			return f
		}
	}
	if err := do(); err != nil {
		return storeFault(err)
	}
	return nil
}

// storeFault translates a Store error into the Lookup Service fault a real
// node sends.
func storeFault(err error) *soap.Fault {
	var nf *NotFoundError
	var ex *ExistsError
	switch {
	case errors.As(err, &nf):
		return simulator.Fault(fmt.Sprintf("Entry with name '%s' not found", nf.ID),
			&ltypes.LookupFaultEntryNotFoundFault{Name: nf.ID})
	case errors.As(err, &ex):
		return simulator.Fault(fmt.Sprintf("Entry with name '%s' already exists", ex.ID),
			&ltypes.LookupFaultEntryExistsFault{Name: ex.ID})
	default:
		return simulator.Fault(err.Error(), &ltypes.LookupFaultServiceFault{ErrorMessage: err.Error()})
	}
}

// invalidArgument is the fault for a malformed request field.
func invalidArgument(property, why string) *soap.Fault {
	return simulator.Fault(fmt.Sprintf("Invalid argument %s: %s", property, why),
		&vim.InvalidArgument{InvalidProperty: property})
}

func checkID(id string) *soap.Fault {
	if id == "" {
		return invalidArgument("serviceId", "empty")
	}
	return nil
}

func checkCommon(c *ltypes.LookupServiceRegistrationCommonServiceInfo) *soap.Fault {
	switch {
	case c.OwnerId == "":
		return invalidArgument("ownerId", "empty")
	case c.ServiceType.Product == "":
		return invalidArgument("serviceType.product", "empty")
	case c.ServiceType.Type == "":
		return invalidArgument("serviceType.type", "empty")
	}
	return checkMutable(&c.LookupServiceRegistrationMutableServiceInfo)
}

func checkMutable(m *ltypes.LookupServiceRegistrationMutableServiceInfo) *soap.Fault {
	if m.ServiceVersion == "" {
		return invalidArgument("serviceVersion", "empty")
	}
	for i, ep := range m.ServiceEndpoints {
		if ep.Url == "" {
			return invalidArgument(fmt.Sprintf("serviceEndpoints[%d].url", i), "empty")
		}
		for j, trust := range ep.SslTrust {
			if _, err := base64.StdEncoding.DecodeString(trust); err != nil {
				return invalidArgument(fmt.Sprintf("serviceEndpoints[%d].sslTrust[%d]", i, j), "not base64")
			}
		}
	}
	return nil
}

// Match reports whether info passes filter as Lookup Service List applies
// it, and returns info narrowed to the endpoints of filter.EndpointType.
// Empty filter fields match anything; an EndpointType filter drops services
// with no matching endpoint. The result never shares the endpoint slice of
// info when it was narrowed. A nil filter matches everything.
func Match(filter *ltypes.LookupServiceRegistrationFilter, info ltypes.LookupServiceRegistrationInfo) (ltypes.LookupServiceRegistrationInfo, bool) {
	if filter == nil {
		return info, true
	}
	if filter.SiteId != "" && filter.SiteId != info.SiteId {
		return info, false
	}
	if filter.NodeId != "" && filter.NodeId != info.NodeId {
		return info, false
	}
	if st := filter.ServiceType; st != nil {
		if st.Product != "" && st.Product != info.ServiceType.Product {
			return info, false
		}
		if st.Type != "" && st.Type != info.ServiceType.Type {
			return info, false
		}
	}
	if et := filter.EndpointType; et != nil {
		var eps []ltypes.LookupServiceRegistrationEndpoint
		for _, ep := range info.ServiceEndpoints {
			if et.Protocol != "" && et.Protocol != ep.EndpointType.Protocol {
				continue
			}
			if et.Type != "" && et.Type != ep.EndpointType.Type {
				continue
			}
			eps = append(eps, ep)
		}
		if len(eps) == 0 {
			return info, false
		}
		info.ServiceEndpoints = eps
	}
	return info, true
}
