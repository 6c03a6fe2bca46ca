package appliance

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"

	"runbook/lab/model"
	"runbook/lab/sshd"
)

// Paths of ls_update_certs.py on 7.0 and 6.x appliances.
const (
	PathLsUpdateCerts  = "/usr/lib/vmware-lookupsvc/tools/ls_update_certs.py"
	PathLsUpdateCerts6 = "/usr/lib/vmidentity/tools/scripts/ls_update_certs.py"
)

const lstoolUsage = `usage: lstool.py [-h] {list,get-site-id} ...
`

// lstoolRequest is a parsed lstool.py command line.
type lstoolRequest struct {
	command             string
	url                 string
	noCheckCert, idOnly bool
	epType, typ, prod   string
	site                string
}

func parseLstool(args []string) (lstoolRequest, error) {
	var r lstoolRequest
	if len(args) == 0 {
		return r, fmt.Errorf("too few arguments")
	}
	r.command = args[0]
	switch r.command {
	case "list", "get-site-id":
	case "-h", "--help":
		return r, nil
	default:
		return r, fmt.Errorf("argument command: invalid choice: '%s' (choose from 'list', 'get-site-id')", r.command)
	}
	values := map[string]*string{"--url": &r.url}
	flags := map[string]*bool{"--no-check-cert": &r.noCheckCert}
	if r.command == "list" {
		values["--ep-type"], values["--type"], values["--product"], values["--site"] = &r.epType, &r.typ, &r.prod, &r.site
		flags["--id-only"] = &r.idOnly
	}
	var unknown []string
	for i := 1; i < len(args); i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		if p, ok := values[name]; ok {
			if !hasValue {
				if i+1 >= len(args) {
					return r, fmt.Errorf("argument %s: expected one argument", name)
				}
				i++
				value = args[i]
			}
			*p = value
			continue
		}
		if p, ok := flags[args[i]]; ok {
			*p = true
			continue
		}
		unknown = append(unknown, args[i])
	}
	if len(unknown) > 0 {
		return r, fmt.Errorf("unrecognized arguments: %s", strings.Join(unknown, " "))
	}
	if r.url == "" {
		return r, fmt.Errorf("argument --url is required")
	}
	return r, nil
}

// lstool is lstool.py (7.0 and 6.x paths).
func (a *appliance) lstool(_ context.Context, inv *sshd.Invocation) int {
	prog := path.Base(inv.Args[0])
	r, err := parseLstool(inv.Args[1:])
	if err != nil {
		io.WriteString(inv.Stderr, strings.Replace(lstoolUsage, "lstool.py", prog, 1))
		fmt.Fprintf(inv.Stderr, "%s: error: %s\n", prog, err)
		return 2
	}
	if r.command == "-h" || r.command == "--help" {
		io.WriteString(inv.Stdout, lstoolUsage)
		return 0
	}
	if err := a.reachLookupService(r.url, r.noCheckCert); err != nil {
		fmt.Fprintf(inv.Stderr, "Error: %v\n", err)
		return 1
	}
	if r.command == "get-site-id" {
		fmt.Fprintln(inv.Stdout, a.d.Site)
		return 0
	}
	regs, err := a.d.Registrations()
	if err != nil {
		fmt.Fprintf(inv.Stderr, "Error: %v\n", err)
		return 1
	}
	first := true
	for _, reg := range regs {
		if !matchRegistration(reg, r) {
			continue
		}
		if r.idOnly {
			fmt.Fprintln(inv.Stdout, reg.ServiceID)
			continue
		}
		if !first {
			fmt.Fprintln(inv.Stdout)
		}
		first = false
		WriteRegistration(inv.Stdout, reg)
	}
	return 0
}

// matchRegistration applies lstool's list filters.
func matchRegistration(reg model.Registration, r lstoolRequest) bool {
	if r.typ != "" && !strings.EqualFold(reg.Type, r.typ) {
		return false
	}
	if r.prod != "" && !strings.EqualFold(reg.Product, r.prod) {
		return false
	}
	if r.site != "" && !strings.EqualFold(reg.SiteID, r.site) {
		return false
	}
	if r.epType != "" && !slices.ContainsFunc(reg.Endpoints, func(e model.Endpoint) bool { return strings.EqualFold(e.Type, r.epType) }) {
		return false
	}
	return true
}

// WriteRegistration writes one registration as `lstool.py list` prints
// it (reference §1.2): Name and Description and Node ID only when set,
// then per endpoint its Type, Protocol, URL and each SSL trust value.
// Endpoint and service attributes follow under "Endpoint Attributes:" and
// "Service Attributes:" headings with tab-indented "key: value" lines (the
// exact layout of attribute lines is not known).
func WriteRegistration(w io.Writer, reg model.Registration) {
	line := func(label, v string) { fmt.Fprintf(w, "%s: %s\n", label, v) }
	if reg.Name != "" {
		line("Name", reg.Name)
	}
	if reg.Description != "" {
		line("Description", reg.Description)
	}
	if reg.Product != "" {
		line("Service Product", reg.Product)
	}
	line("Service Type", reg.Type)
	line("Service ID", reg.ServiceID)
	line("Site ID", reg.SiteID)
	if reg.NodeID != "" {
		line("Node ID", reg.NodeID)
	}
	line("Owner ID", reg.OwnerID)
	line("Version", reg.Version)
	writeAttributes(w, "Service Attributes:", reg.Attributes)
	fmt.Fprintln(w, "Endpoints:")
	for _, ep := range reg.Endpoints {
		if ep.Type != "" {
			line("Type", ep.Type)
		}
		line("Protocol", ep.Protocol)
		line("URL", ep.URL)
		for _, t := range ep.SslTrust {
			line("SSL trust", t)
		}
		writeAttributes(w, "Endpoint Attributes:", ep.Attributes)
	}
}

func writeAttributes(w io.Writer, heading string, attrs map[string]string) {
	if len(attrs) == 0 {
		return
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintln(w, heading)
	for _, k := range keys {
		fmt.Fprintf(w, "\t%s: %s\n", k, attrs[k])
	}
}

// reachLookupService checks that the Lookup Service at rawURL answers: the
// host is a node that is online and runs vmware-lookupsvc, behind the
// reverse proxy for https URLs, whose certificate Python would refuse
// unless told not to check it.
func (a *appliance) reachLookupService(rawURL string, noCheckCert bool) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("invalid lookup service URL %q", rawURL)
	}
	n := a.resolveHost(u.Hostname())
	if n == nil {
		return fmt.Errorf("<urlopen error [Errno -2] Name or service not known>")
	}
	if !n.Online() {
		return fmt.Errorf("<urlopen error [Errno 113] No route to host>")
	}
	ls := n
	if !n.HasDirectory() {
		ls = a.d.Node(a.d.DCName(n))
	}
	refused := fmt.Errorf("<urlopen error [Errno 111] Connection refused>")
	if u.Scheme == "https" {
		if !running(n, "vmware-envoy") && !running(n, "vmware-rhttpproxy") {
			return refused
		}
		if !noCheckCert {
			return fmt.Errorf("<urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed (_ssl.c:1056)>")
		}
	} else if n != a.n {
		// The plain-HTTP ports 7080/7090 listen on localhost only.
		return refused
	}
	if ls == nil || !running(ls, "vmware-lookupsvc") {
		return fmt.Errorf("HTTP Error 503: Service Unavailable")
	}
	return nil
}

// lsUpdateCerts is ls_update_certs.py (KB 2121701 Task 4).
func (a *appliance) lsUpdateCerts(ctx context.Context, inv *sshd.Invocation) int {
	prog := path.Base(inv.Args[0])
	var lsURL, fingerprint, certFile, user string
	var password *string
	values := map[string]*string{"--url": &lsURL, "--fingerprint": &fingerprint, "--certfile": &certFile, "--user": &user}
	args := inv.Args[1:]
	usage := fmt.Sprintf("usage: %s [-h] --url URL --fingerprint FINGERPRINT --certfile CERTFILE\n                          --user USER --password PASSWORD\n", prog)
	var pw string
	values["--password"] = &pw
	for i := 0; i < len(args); i++ {
		if args[i] == "--no-check-cert" {
			continue
		}
		name, value, hasValue := strings.Cut(args[i], "=")
		p, ok := values[name]
		if !ok {
			io.WriteString(inv.Stderr, usage)
			fmt.Fprintf(inv.Stderr, "%s: error: unrecognized arguments: %s\n", prog, args[i])
			return 2
		}
		if !hasValue {
			if i+1 >= len(args) {
				io.WriteString(inv.Stderr, usage)
				fmt.Fprintf(inv.Stderr, "%s: error: argument %s: expected one argument\n", prog, name)
				return 2
			}
			i++
			value = args[i]
		}
		*p = value
		if name == "--password" {
			password = &pw
		}
	}
	if lsURL == "" || fingerprint == "" || certFile == "" || user == "" || password == nil {
		io.WriteString(inv.Stderr, usage)
		fmt.Fprintf(inv.Stderr, "%s: error: the following arguments are required: --url, --fingerprint, --certfile, --user, --password\n", prog)
		return 2
	}
	if err := a.reachLookupService(lsURL, true); err != nil {
		fmt.Fprintf(inv.Stderr, "Error: %v\n", err)
		return 1
	}
	if err := a.d.Dir.Bind(user, *password); err != nil {
		fmt.Fprintln(inv.Stderr, "Error: 'lstool get-site-id' failed: 1 (invalid credentials)")
		return 1
	}
	data, err := readFile(inv, certFile)
	if err != nil {
		fmt.Fprintf(inv.Stderr, "Error: [Errno 2] No such file or directory: '%s'\n", certFile)
		return 1
	}
	if _, err := UpdateLookupService(ctx, a.d, a.n, fingerprint, data, inv.Stdout); err != nil {
		fmt.Fprintf(inv.Stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}
