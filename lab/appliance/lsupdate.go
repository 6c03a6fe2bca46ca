package appliance

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"runbook/lab/model"
	"runbook/lab/pki"
)

// maxUpdateEndpoints is how many endpoints of a service the update examines.
const maxUpdateEndpoints = 10

// UpdateLookupService re-points the Lookup Service registrations that
// trust the certificate with SHA-1 thumbprint oldThumbprint to the first
// certificate of newCertPEM, exactly as ls_update_certs.py and
// certificate-manager do it (reference §1.6): for every service, in list
// order, only the first trust value of each of its first ten endpoints is
// compared, by SHA-1, with the old thumbprint; services with a match are
// re-registered whole from a spec file /tmp/svcspec_XXXXXXXX in n's tree
// (removed afterwards, kept on failure), the others are left alone.
// Legacy 5.5 registrations (ids "<site>:…") are handled the same way.
// It writes the tool's console lines to out and returns how many services
// it updated.
func UpdateLookupService(ctx context.Context, d *model.Domain, n *model.Node, oldThumbprint string, newCertPEM []byte, out io.Writer) (int, error) {
	old := pki.NormalizeThumbprint(oldThumbprint)
	ders, err := pki.DecodeCerts(newCertPEM)
	if err != nil || len(ders) == 0 {
		return 0, fmt.Errorf("update lookup service: read new certificate: no certificate in the file")
	}
	newTrust := pki.TrustString(ders[0])

	fmt.Fprintln(out, "Get site name")
	site := strings.ToLower(d.Site)
	fmt.Fprintln(out, site)
	fmt.Fprintln(out, "Lookup all services")
	regs, err := d.Registrations()
	if err != nil {
		return 0, fmt.Errorf("update lookup service: 'lstool list' failed: 1: %w", err)
	}
	updated := 0
	for _, listed := range regs {
		if err := ctx.Err(); err != nil {
			return updated, fmt.Errorf("update lookup service: %w", err)
		}
		id := listed.ServiceID
		fmt.Fprintf(out, "Get service %s\n", id)
		reg, err := d.Registration(id)
		if err != nil {
			return updated, fmt.Errorf("update lookup service: 'lstool get' failed: 1: %w", err)
		}
		if !retrust(&reg, old, newTrust) {
			fmt.Fprintf(out, "Don't update service %s\n", id)
			continue
		}
		spec := "/tmp/svcspec_" + randomSuffix()
		if err := n.WriteFile(spec, specText(reg), 0o600); err != nil {
			return updated, fmt.Errorf("update lookup service: write spec: %w", err)
		}
		fmt.Fprintf(out, "Update service %s; spec: %s\n", id, spec)
		verb := "reregister"
		if strings.HasPrefix(strings.ToLower(id), site+":") {
			verb = "reregister55"
		}
		if err := d.Faults.Before(model.ProtoSSH, "set"); err != nil {
			return updated, fmt.Errorf("update lookup service: 'lstool %s' failed: 1: %w", verb, err)
		}
		if err := d.SaveRegistration(reg); err != nil {
			return updated, fmt.Errorf("update lookup service: 'lstool %s' failed: 1: %w", verb, err)
		}
		if root, err := n.OpenRoot(); err == nil {
			_ = root.Remove(strings.TrimPrefix(spec, "/"))
			root.Close()
		}
		updated++
	}
	fmt.Fprintf(out, "Updated %d service(s)\n", updated)
	return updated, nil
}

// retrust replaces, in each of the first ten endpoints of reg, the first
// trust value when its SHA-1 is old, and reports whether any changed.
func retrust(reg *model.Registration, old, newTrust string) bool {
	changed := false
	for i := range reg.Endpoints {
		if i >= maxUpdateEndpoints {
			break
		}
		ep := &reg.Endpoints[i]
		if ep.URL == "" {
			break
		}
		if len(ep.SslTrust) == 0 {
			continue
		}
		der, err := pki.ParseTrust(ep.SslTrust[0])
		if err != nil {
			continue
		}
		sum := sha1.Sum(der)
		if hex.EncodeToString(sum[:]) != old {
			continue
		}
		ep.SslTrust = slices.Clone(ep.SslTrust)
		ep.SslTrust[0] = newTrust
		changed = true
	}
	return changed
}

// randomSuffix returns eight characters as Python's tempfile names use.
func randomSuffix() string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789_"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

// specText renders a registration as lstool's properties-style service
// spec (`lstool get --as-spec`).
func specText(r model.Registration) []byte {
	var b bytes.Buffer
	p := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
	}
	p("service.version", r.Version)
	p("service.type.product", r.Product)
	p("service.type.type", r.Type)
	p("service.ownerid", r.OwnerID)
	p("service.nodeid", r.NodeID)
	p("service.name", r.Name)
	p("service.description", r.Description)
	for i, k := range sortedKeys(r.Attributes) {
		p(fmt.Sprintf("service.attribute%d.key", i), k)
		p(fmt.Sprintf("service.attribute%d.value", i), r.Attributes[k])
	}
	for i, ep := range r.Endpoints {
		pre := fmt.Sprintf("endpoint%d.", i)
		p(pre+"url", ep.URL)
		p(pre+"type.protocol", ep.Protocol)
		p(pre+"type.id", ep.Type)
		for j, t := range ep.SslTrust {
			p(fmt.Sprintf("%sssltrust%d", pre, j), t)
		}
		for j, k := range sortedKeys(ep.Attributes) {
			p(fmt.Sprintf("%sattribute%d.key", pre, j), k)
			p(fmt.Sprintf("%sattribute%d.value", pre, j), ep.Attributes[k])
		}
	}
	return b.Bytes()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
