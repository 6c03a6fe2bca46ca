package appliance

import (
	"bytes"
	"fmt"
	"net"
	"strings"

	"runbook/lab/pki"
)

// CertoolConfig is a certool.cfg: the subject and alternative names of a
// certificate VMCA issues. certool reads it with boost::program_options'
// config-file syntax, one "Key = value" per line.
type CertoolConfig struct {
	Country         string
	Name            string
	DomainComponent string
	Organization    string
	OrgUnit         string
	State           string
	Locality        string
	// IPAddress and Hostname are comma-separated lists in the file.
	IPAddress []string
	Email     string
	Hostname  []string
}

// certoolKeys are the keys certool accepts, in the order of VMCA's
// template, which is the order certificate-manager prompts for them.
var certoolKeys = []string{"Country", "Name", "Organization", "OrgUnit", "State", "Locality", "IPAddress", "Email", "Hostname", "DomainComponent"}

// field returns a pointer to the string field of key, or nil for the list
// keys.
func (c *CertoolConfig) field(key string) *string {
	switch key {
	case "Country":
		return &c.Country
	case "Name":
		return &c.Name
	case "DomainComponent":
		return &c.DomainComponent
	case "Organization":
		return &c.Organization
	case "OrgUnit":
		return &c.OrgUnit
	case "State":
		return &c.State
	case "Locality":
		return &c.Locality
	case "Email":
		return &c.Email
	}
	return nil
}

// Get returns the value of key as the file spells it.
func (c *CertoolConfig) Get(key string) string {
	switch key {
	case "IPAddress":
		return strings.Join(c.IPAddress, ",")
	case "Hostname":
		return strings.Join(c.Hostname, ",")
	}
	if p := c.field(key); p != nil {
		return *p
	}
	return ""
}

// Set sets key from its file spelling; it reports false for an unknown key.
func (c *CertoolConfig) Set(key, value string) bool {
	switch key {
	case "IPAddress":
		c.IPAddress = splitList(value)
		return true
	case "Hostname":
		c.Hostname = splitList(value)
		return true
	}
	p := c.field(key)
	if p == nil {
		return false
	}
	*p = value
	return true
}

// splitList splits a comma-separated value, trimming each item and
// dropping empty ones.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ParseCertoolConfig parses certool.cfg text as boost::program_options
// does: blank lines and '#' comments (to the end of the line) are skipped,
// every other line is "Key = value" with the key one of certool's, and a
// key may appear once. Errors carry boost's messages.
func ParseCertoolConfig(data []byte) (CertoolConfig, error) {
	var c CertoolConfig
	seen := map[string]bool{}
	section := ""
	for _, raw := range strings.Split(string(data), "\n") {
		line := raw
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1:len(line)-1]) + "."
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return CertoolConfig{}, fmt.Errorf("the options configuration file contains an invalid line '%s'", line)
		}
		key = section + key
		if seen[key] {
			return CertoolConfig{}, fmt.Errorf("option '%s' cannot be specified more than once", key)
		}
		if !c.Set(key, value) {
			return CertoolConfig{}, fmt.Errorf("unrecognised option '%s'", key)
		}
		seen[key] = true
	}
	return c, nil
}

// Marshal returns c as certool.cfg text in the template's key order, as
// certificate-manager writes its working copy: empty keys commented out.
func (c CertoolConfig) Marshal() []byte {
	var b bytes.Buffer
	for _, k := range certoolKeys {
		v := c.Get(k)
		if v == "" {
			if k == "DomainComponent" {
				continue
			}
			fmt.Fprintf(&b, "#%s = \n", k)
			continue
		}
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	return b.Bytes()
}

// Request returns the certificate request c describes: CN = Name, the
// subject attributes, and the Hostname and IPAddress lists as subject
// alternative names.
func (c CertoolConfig) Request() (pki.Request, error) {
	req := pki.Request{
		CommonName:   c.Name,
		Country:      c.Country,
		State:        c.State,
		Locality:     c.Locality,
		Organization: c.Organization,
		OrgUnit:      c.OrgUnit,
		Email:        c.Email,
		DNSNames:     append([]string(nil), c.Hostname...),
	}
	if c.DomainComponent != "" {
		req.DomainComponents = strings.Split(c.DomainComponent, ".")
	}
	for _, s := range c.IPAddress {
		ip := net.ParseIP(s)
		if ip == nil {
			return pki.Request{}, fmt.Errorf("invalid IP address %q", s)
		}
		req.IPs = append(req.IPs, ip)
	}
	return req, nil
}

// DefaultCertoolConfig is VMCA's template certool.cfg with Hostname set
// to the node's PNID and IPAddress to its address, the values
// certificate-manager offers as defaults.
func DefaultCertoolConfig(pnid, ip string) CertoolConfig {
	c := CertoolConfig{
		Country:      "US",
		Name:         pnid,
		Organization: "VMware",
		OrgUnit:      "VMware Engineering",
		State:        "California",
		Locality:     "Palo Alto",
		Email:        "email@acme.com",
		Hostname:     []string{pnid},
	}
	if ip != "" {
		c.IPAddress = []string{ip}
	}
	return c
}
