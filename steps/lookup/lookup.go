// Package lookup provides the step types that read and repair Lookup Service
// registrations (KB 2121701 / 322835): lookup.list, which lists the
// registrations and the certificates their endpoints trust, and
// lookup.update_ssltrust, which re-points the endpoints that trust an old
// certificate to a new one, as ls_update_certs.py does.
//
// Both talk to a node's Lookup Service over its SOAP API
// (https://<node>/lookupservice/sdk), logged in as the profile's SSO
// administrator; the registrations they see are the whole site's.
package lookup

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/vmware/govmomi/lookup"
	ltypes "github.com/vmware/govmomi/lookup/types"

	"runbook/engine"
	"runbook/steps/conn"
	"runbook/target"
)

// Register adds lookup.list (read) and lookup.update_ssltrust (write) to r.
func Register(r *engine.Registry) {
	r.Register(listStep)
	r.Register(updateStep)
}

// client returns the node and its logged-in Lookup Service client.
func client(ctx context.Context, env *engine.Env, pnid string) (*target.Node, *lookup.Client, error) {
	n, err := conn.Node(env, pnid)
	if err != nil {
		return nil, nil, err
	}
	lc, err := n.Lookup(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("open lookup service of %s: %w", n.PNID(), err)
	}
	return n, lc, nil
}

// listAll lists every registration of the site. The filter is empty, not
// nil: a real Lookup Service faults on a missing filterCriteria.
func listAll(ctx context.Context, lc *lookup.Client, filter *ltypes.LookupServiceRegistrationFilter) ([]ltypes.LookupServiceRegistrationInfo, error) {
	if filter == nil {
		filter = &ltypes.LookupServiceRegistrationFilter{}
	}
	infos, err := lc.List(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list lookup service registrations: %w", err)
	}
	return infos, nil
}

// siteID returns the Lookup Service's site id, or "" when the node does not
// say (legacy registrations are then told by the site id each one carries).
func siteID(ctx context.Context, lc *lookup.Client) string {
	id, err := lc.SiteID(ctx)
	if err != nil {
		return ""
	}
	return id
}

// isLegacy reports whether a registration is a 5.5-style one, whose id is
// "<site id>:<uuid>".
func isLegacy(id, site, ownSite string) bool {
	for _, s := range []string{site, ownSite} {
		if s != "" && len(id) > len(s) && id[len(s)] == ':' && strings.EqualFold(id[:len(s)], s) {
			return true
		}
	}
	return false
}

// errNotBase64 is returned for an sslTrust value that is not base64.
var errNotBase64 = errors.New("sslTrust is not base64")

// trustDER decodes an sslTrust value: base64 DER on one line, as the Lookup
// Service stores it. White space, missing padding and PEM armor, which some
// tools leave in the value, are tolerated.
func trustDER(s string) ([]byte, error) {
	if strings.Contains(s, "-----BEGIN") {
		if b, _ := pem.Decode([]byte(s)); b != nil {
			return b.Bytes, nil
		}
	}
	compact := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if der, err := enc.DecodeString(compact); err == nil && len(der) > 0 {
			return der, nil
		}
	}
	return nil, errNotBase64
}

// thumbprint is a certificate digest given by an operator: SHA-1 (20 bytes,
// what ls_update_certs.py takes) or SHA-256 (32 bytes).
type thumbprint []byte

// matches reports whether der has this digest.
func (t thumbprint) matches(der []byte) bool {
	switch len(t) {
	case sha1.Size:
		d := sha1.Sum(der)
		return bytes.Equal(d[:], t)
	case sha256.Size:
		d := sha256.Sum256(der)
		return bytes.Equal(d[:], t)
	}
	return false
}
