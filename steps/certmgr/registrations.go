package certmgr

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/vmware/govmomi/lookup"
	lmethods "github.com/vmware/govmomi/lookup/methods"
	ltypes "github.com/vmware/govmomi/lookup/types"
	"github.com/vmware/govmomi/vim25/soap"

	"runbook/steps/certinfo"
	"runbook/target"
)

// maxUpdateEndpoints is how many endpoints of a service ls_update_certs.py
// (and certificate-manager's Lookup Service update) examines.
const maxUpdateEndpoints = 10

// repointRegistrations replaces, in every Lookup Service registration of
// the node's site, the first sslTrust of each of its first ten endpoints
// that is the certificate from by the certificate to, as ls_update_certs.py
// does: it lists, then gets each matching service again right before it
// sets it. It returns how many services it set and how many endpoints it
// changed.
func repointRegistrations(ctx context.Context, n *target.Node, from, to []byte) (services, endpoints int, err error) {
	lc, err := n.Lookup(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("open lookup service of %s: %w", n.PNID(), err)
	}
	infos, err := lc.List(ctx, &ltypes.LookupServiceRegistrationFilter{})
	if err != nil {
		return 0, 0, fmt.Errorf("list lookup service registrations: %w", err)
	}
	fromSum := sha1.Sum(from)
	toTrust := base64.StdEncoding.EncodeToString(to)
	for i := range infos {
		if len(trusting(&infos[i], fromSum)) == 0 {
			continue
		}
		fresh, err := getService(ctx, lc, infos[i].ServiceId)
		if errors.Is(err, errNoService) {
			continue // unregistered since the list
		}
		if err != nil {
			return services, endpoints, err
		}
		hits := trusting(&fresh, fromSum)
		if len(hits) == 0 {
			continue
		}
		for _, e := range hits {
			fresh.ServiceEndpoints[e].SslTrust[0] = toTrust
		}
		if err := setService(ctx, lc, &fresh); err != nil {
			return services, endpoints, err
		}
		services++
		endpoints += len(hits)
	}
	return services, endpoints, nil
}

// trusting returns the indexes of the endpoints, among the first ten up
// to the first without a URL, whose first sslTrust has SHA-1 sum.
func trusting(info *ltypes.LookupServiceRegistrationInfo, sum [sha1.Size]byte) []int {
	var out []int
	for i, ep := range info.ServiceEndpoints {
		if i >= maxUpdateEndpoints || ep.Url == "" {
			break
		}
		if len(ep.SslTrust) == 0 {
			continue
		}
		certs, err := certinfo.Decode(ep.SslTrust[0])
		if err != nil || len(certs) == 0 {
			continue
		}
		if sha1.Sum(certs[0].Raw) == sum {
			out = append(out, i)
		}
	}
	return out
}

// errNoService is returned for a registration the Lookup Service does not
// have (any more).
var errNoService = errors.New("no such service")

// getService reads one registration.
func getService(ctx context.Context, lc *lookup.Client, id string) (ltypes.LookupServiceRegistrationInfo, error) {
	res, err := lmethods.Get(ctx, lc, &ltypes.Get{This: *lc.ServiceContent.ServiceRegistration, ServiceId: id})
	if err != nil {
		if soap.IsSoapFault(err) {
			if _, ok := soap.ToSoapFault(err).VimFault().(ltypes.LookupFaultEntryNotFoundFault); ok {
				err = errNoService
			}
		}
		return ltypes.LookupServiceRegistrationInfo{}, fmt.Errorf("get service %s: %w", id, err)
	}
	return res.Returnval, nil
}

// setService replaces the mutable part of a registration with info's.
func setService(ctx context.Context, lc *lookup.Client, info *ltypes.LookupServiceRegistrationInfo) error {
	req := &ltypes.Set{
		This:        *lc.ServiceContent.ServiceRegistration,
		ServiceId:   info.ServiceId,
		ServiceSpec: ltypes.LookupServiceRegistrationSetSpec{LookupServiceRegistrationMutableServiceInfo: info.LookupServiceRegistrationMutableServiceInfo},
	}
	if _, err := lmethods.Set(ctx, lc, req); err != nil {
		return fmt.Errorf("set service %s: %w", info.ServiceId, err)
	}
	return nil
}

// principalCerts returns the userCertificate values of the service
// principal dn in vmdir.
func principalCerts(conn *goldap.Conn, dn string) ([][]byte, error) {
	res, err := conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"userCertificate"}, nil))
	if err != nil {
		return nil, fmt.Errorf("read service principal %s: %w", dn, err)
	}
	if len(res.Entries) != 1 {
		return nil, fmt.Errorf("read service principal %s: %d entries", dn, len(res.Entries))
	}
	var out [][]byte
	for _, a := range res.Entries[0].Attributes {
		if strings.EqualFold(a.Name, "userCertificate") || strings.EqualFold(a.Name, "userCertificate;binary") {
			out = append(out, a.ByteValues...)
		}
	}
	return out, nil
}
