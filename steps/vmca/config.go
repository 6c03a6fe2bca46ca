package vmca

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Profiles of vmca.issue: which certool.cfg a certificate is requested with.
const (
	// ProfileSTS is fixsts.sh's certool.cfg (KB 76719): the STS signing
	// certificate.
	ProfileSTS = "sts"
	// ProfileMachineSSL is certificate-manager's template with the node's
	// names: a Machine SSL certificate.
	ProfileMachineSSL = "machine_ssl"
	// ProfileSolutionUser is a solution user's certificate, named as
	// certificate-manager names them (<soluser>-<machine id>).
	ProfileSolutionUser = "solution_user"
)

// cfgKeys are the certool.cfg keys in VMCA's template order, the order
// the file is written in.
var cfgKeys = []string{"Country", "Name", "DomainComponent", "Organization", "OrgUnit", "State", "Locality", "IPAddress", "Email", "Hostname"}

// config is a certool.cfg: certool reads it as "Key = value" lines.
type config map[string]string

// node is what a certool.cfg is built from: the node's identity.
type node struct {
	PNID      string
	IP        string
	Domain    string
	MachineID string
}

// request is a checked vmca.issue request.
type request struct {
	profile   string
	name      string   // CN
	hostnames []string // SAN dNSNames, the PNID among them
	cfg       config
}

// newRequest checks the params against the node and builds the
// certool.cfg of the profile. It refuses a host name list without the
// PNID: a certificate that does not name the PNID breaks the services
// that reach the node by it (KB 2097936, certificate-manager's Hostname
// prompt).
func newRequest(n node, profile, name, ip string, hostnames []string) (*request, error) {
	if n.PNID == "" {
		return nil, errors.New("the node has no PNID")
	}
	hosts, err := checkHostnames(n.PNID, hostnames)
	if err != nil {
		return nil, err
	}
	if ip == "" && net.ParseIP(n.IP) != nil {
		ip = n.IP
	}
	if ip != "" && net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("ip: %q is not an IPv4 or IPv6 address", ip)
	}
	if err := checkValue("name", name); err != nil {
		return nil, err
	}
	r := &request{profile: profile, hostnames: hosts}
	switch profile {
	case ProfileSTS:
		// fixsts.sh writes exactly these values.
		r.name = "STS"
		if name != "" {
			r.name = name
		}
		r.cfg = config{
			"Country": "DS", "Name": r.name, "Organization": "VMware", "OrgUnit": "VMware",
			"State": "VMware", "Locality": "VMware", "IPAddress": ip, "Email": "email@acme.com",
			"Hostname": strings.Join(hosts, ","),
		}
	case ProfileMachineSSL:
		// certificate-manager's template, as option 3 offers it, with
		// the PNID as CN (§4.7).
		r.name = n.PNID
		if name != "" {
			r.name = name
		}
		r.cfg = config{
			"Country": "US", "Name": r.name, "Organization": "VMware", "OrgUnit": "VMware Engineering",
			"State": "California", "Locality": "Palo Alto", "IPAddress": ip, "Email": "email@acme.com",
			"Hostname": strings.Join(hosts, ","),
		}
	case ProfileSolutionUser:
		if name == "" {
			return nil, errors.New("name: the solution_user profile needs the solution user's name, such as vpxd-${{ facts.machineID }}")
		}
		if n.Domain == "" {
			return nil, errors.New("the target has no SSO domain")
		}
		r.name = name
		r.cfg = config{
			"Country": "US", "Name": name, "DomainComponent": n.Domain, "Email": "email@acme.com",
			"IPAddress": ip, "Hostname": strings.Join(hosts, ","),
		}
		if n.MachineID != "" {
			r.cfg["OrgUnit"] = "mID-" + n.MachineID
		}
	default:
		return nil, fmt.Errorf("profile: %q is not one of sts, machine_ssl, solution_user", profile)
	}
	return r, nil
}

// checkHostnames returns the host names to request: the PNID alone when
// none are given, else the list, which must name the PNID.
func checkHostnames(pnid string, hostnames []string) ([]string, error) {
	if len(hostnames) == 0 {
		return []string{pnid}, nil
	}
	var out []string
	for i, h := range hostnames {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, ", \t") {
			return nil, fmt.Errorf("hostnames[%d]: %q is not a host name", i, hostnames[i])
		}
		if err := checkValue(fmt.Sprintf("hostnames[%d]", i), h); err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, h) }) {
			out = append(out, h)
		}
	}
	if !slices.ContainsFunc(out, func(h string) bool { return strings.EqualFold(h, pnid) }) {
		return nil, fmt.Errorf("hostnames %v do not include the node's PNID %s: a certificate that does not name the PNID breaks the services that reach the node by it (KB 2097936); add it", out, pnid)
	}
	return out, nil
}

// checkValue refuses a value certool.cfg cannot hold: a line break or
// a comment character would change the file's meaning.
func checkValue(what, v string) error {
	if strings.ContainsAny(v, "\r\n#\x00") {
		return fmt.Errorf("%s: %q holds a line break, # or NUL, which certool.cfg cannot hold", what, v)
	}
	return nil
}

// text renders the certool.cfg, with the comment header fixsts.sh writes
// and the keys in template order; empty keys are left out.
func (c config) text() string {
	var b strings.Builder
	b.WriteString("# Template file for a CSR request\n")
	b.WriteString("# Country is needed and has to be 2 characters\n")
	for _, k := range cfgKeys {
		if v := c[k]; v != "" {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
	}
	return b.String()
}

// subject describes the requested subject and names for a plan.
func (r *request) subject() string {
	var parts []string
	for _, k := range []struct{ key, attr string }{
		{"Name", "CN"}, {"OrgUnit", "OU"}, {"Organization", "O"}, {"Locality", "L"},
		{"State", "ST"}, {"Country", "C"},
	} {
		if v := r.cfg[k.key]; v != "" {
			parts = append(parts, k.attr+"="+v)
		}
	}
	if dc := r.cfg["DomainComponent"]; dc != "" {
		for _, p := range strings.Split(dc, ".") {
			parts = append(parts, "DC="+p)
		}
	}
	return strings.Join(parts, ", ")
}

// sans lists the requested subject alternative names.
func (r *request) sans() []string {
	out := slices.Clone(r.hostnames)
	if ip := r.cfg["IPAddress"]; ip != "" {
		out = append(out, ip)
	}
	return out
}
