package shell

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"

	"runbook/engine"
	"runbook/steps/conn"
	"runbook/target"
)

// Where an appliance keeps what it says about itself (vcenter-procedures.md
// §3.1 step 3 and §7).
const (
	vmafdCLI     = "/usr/lib/vmware-vmafd/bin/vmafd-cli"
	lwregshell   = "/opt/likewise/bin/lwregshell"
	vmafdRegKey  = `[HKEY_THIS_MACHINE\Services\vmafd\Parameters]`
	nodeTypeFile = "/etc/vmware/deployment.node.type"
	// VmdirBinary is vmdir's daemon; a node without it runs no directory
	// (a vCenter with an external PSC, or a vCenter gateway).
	VmdirBinary = "/usr/lib/vmware-vmdir/sbin/vmdird"
)

// factsParams are the params of appliance.facts.
type factsParams struct {
	Node string `yaml:"node" doc:"The PNID of the node to read, or all for every node of the target (one entry each in nodes); the first node when empty."`
}

// NodeFacts are what one node says about itself.
type NodeFacts struct {
	// PNID is the node's primary network identifier (vmafd-cli get-pnid).
	PNID string `json:"pnid" expr:"pnid"`
	// MachineID is its machine id (vmafd-cli get-machine-id).
	MachineID string `json:"machineId" expr:"machineId"`
	// Domain is its SSO domain (vmafd-cli get-domain-name).
	Domain string `json:"domain" expr:"domain"`
	// DomainDN is the SSO domain as an LDAP DN: dc=vsphere,dc=local.
	DomainDN string `json:"domainDN" expr:"domainDN"`
	// Site is its SSO site (vmafd-cli get-site-name).
	Site string `json:"site" expr:"site"`
	// DCName is the PSC it uses (vmafd-cli get-dc-name).
	DCName string `json:"dcName" expr:"dcName"`
	// NodeType is embedded, infrastructure or management
	// (/etc/vmware/deployment.node.type).
	NodeType string `json:"nodeType" expr:"nodeType"`
	// IP is eth0's IPv4 address, or the profile's address when the node
	// does not say.
	IP string `json:"ip" expr:"ip"`
	// LsLocation is the Lookup Service URL it uses (vmafd-cli
	// get-ls-location).
	LsLocation string `json:"lsLocation" expr:"lsLocation"`
	// VmdirInstalled is true when the node has vmdir's daemon, that is
	// when it is an embedded vCenter or a PSC rather than a vCenter with an
	// external PSC or a vCenter gateway (fixsts.sh's test).
	VmdirInstalled bool `json:"vmdirInstalled" expr:"vmdirInstalled"`
}

// factsOutputs are the outputs of appliance.facts: the (first) node's facts
// at top level and one entry per node.
type factsOutputs struct {
	PNID           string `json:"pnid" expr:"pnid"`
	MachineID      string `json:"machineId" expr:"machineId"`
	Domain         string `json:"domain" expr:"domain"`
	DomainDN       string `json:"domainDN" expr:"domainDN"`
	Site           string `json:"site" expr:"site"`
	DCName         string `json:"dcName" expr:"dcName"`
	NodeType       string `json:"nodeType" expr:"nodeType"`
	IP             string `json:"ip" expr:"ip"`
	LsLocation     string `json:"lsLocation" expr:"lsLocation"`
	VmdirInstalled bool   `json:"vmdirInstalled" expr:"vmdirInstalled"`
	// Nodes has one entry per node read, in target order.
	Nodes []NodeFacts `json:"nodes" expr:"nodes"`
}

var factsStep = engine.Read[factsParams, factsOutputs]{
	Spec: engine.Spec{
		ID:      "appliance.facts",
		Summary: "Read what appliance nodes say about themselves, as fixsts.sh detects it.",
		Doc: "Asks each node, live, over SSH: PNID, machine id, SSO domain, site, domain controller and " +
			"Lookup Service location from vmafd-cli (or, when vmafd does not answer, from the vmafd " +
			"registry values as fixsts.sh reads them with lwregshell), the node type from " +
			"/etc/vmware/deployment.node.type, eth0's IPv4 address (ip, else ifconfig; the profile's " +
			"address when neither answers), and whether vmdir is installed " +
			"(`test -x /usr/lib/vmware-vmdir/sbin/vmdird`: false on a vCenter with an external PSC " +
			"and on a vCenter gateway, which fixsts.sh refuses). Unlike `facts`, read once when the " +
			"run starts, this reads again each time, so it sees what earlier steps changed. With " +
			"`node: all` every node is read, one entry each in `nodes`, and the top-level fields " +
			"are the first node's.\n\n" +
			"```yaml\n- id: me\n  uses: appliance.facts\n- id: not_management\n  uses: assert\n  with:\n" +
			"    that: ${{ steps.me.vmdirInstalled }}\n    message: run this on a vCenter with an embedded PSC or on a PSC (KB 76719)\n```",
	},
	Run: runFacts,
}

func runFacts(ctx context.Context, env *engine.Env, p *factsParams) (factsOutputs, error) {
	nodes, err := conn.Nodes(env, p.Node)
	if err != nil {
		return factsOutputs{}, err
	}
	facts := make([]NodeFacts, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { facts[i], errs[i] = ReadFacts(ctx, env, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return factsOutputs{}, err
	}
	f := facts[0]
	return factsOutputs{
		PNID: f.PNID, MachineID: f.MachineID, Domain: f.Domain, DomainDN: f.DomainDN, Site: f.Site,
		DCName: f.DCName, NodeType: f.NodeType, IP: f.IP, LsLocation: f.LsLocation,
		VmdirInstalled: f.VmdirInstalled, Nodes: facts,
	}, nil
}

// vmafdQueries are the vmafd-cli sub-commands facts come from, with the
// vmafd registry value holding the same fact ("" when there is none).
var vmafdQueries = []struct {
	sub, regValue string
	field         func(*NodeFacts) *string
}{
	{"get-pnid", "PNID", func(f *NodeFacts) *string { return &f.PNID }},
	{"get-machine-id", "MachineID", func(f *NodeFacts) *string { return &f.MachineID }},
	{"get-domain-name", "DomainName", func(f *NodeFacts) *string { return &f.Domain }},
	{"get-site-name", "SiteName", func(f *NodeFacts) *string { return &f.Site }},
	{"get-dc-name", "DCName", func(f *NodeFacts) *string { return &f.DCName }},
	{"get-ls-location", "", func(f *NodeFacts) *string { return &f.LsLocation }},
}

// nodeTypes are the values deployment.node.type holds.
var nodeTypes = []string{"embedded", "infrastructure", "management"}

// ReadFacts asks node n about itself, as appliance.facts does.
func ReadFacts(ctx context.Context, env *engine.Env, n *target.Node) (NodeFacts, error) {
	var f NodeFacts
	// Connect once before running the commands side by side, so that an
	// unreachable node is dialled once.
	if _, err := n.SSH(ctx); err != nil {
		return f, fmt.Errorf("%s: %w", n.PNID(), err)
	}
	vmafdErrs := make([]error, len(vmafdQueries))
	var typeErr, vmdirErr, ipErr error
	var ip string
	var wg sync.WaitGroup
	for i, q := range vmafdQueries {
		wg.Go(func() {
			*q.field(&f), vmafdErrs[i] = line(ctx, env, n, "vmafd-cli "+q.sub, vmafdCLI+" "+q.sub+" --server-name localhost")
		})
	}
	wg.Go(func() { f.NodeType, typeErr = line(ctx, env, n, "cat "+nodeTypeFile, "cat "+nodeTypeFile) })
	wg.Go(func() {
		var res Result
		res, vmdirErr = Run(ctx, env, n, "test -x "+VmdirBinary, "test -x "+VmdirBinary, "")
		f.VmdirInstalled = vmdirErr == nil && res.ExitCode == 0
	})
	wg.Go(func() {
		var res Result
		res, ipErr = Run(ctx, env, n, "ip addr", "ip -4 -o addr show dev eth0 2>/dev/null || ifconfig eth0 2>/dev/null", "")
		ip = ParseIPv4(res.Stdout)
	})
	wg.Wait()

	for _, err := range []error{typeErr, vmdirErr, ipErr} {
		if err != nil {
			return f, err
		}
	}
	if !slices.Contains(nodeTypes, f.NodeType) {
		return f, fmt.Errorf("%s: %s holds %q, not one of %s", n.PNID(), nodeTypeFile, f.NodeType, strings.Join(nodeTypes, ", "))
	}
	if err := fillFromRegistry(ctx, env, n, &f, vmafdErrs); err != nil {
		return f, err
	}
	f.DomainDN = target.DomainDN(f.Domain)
	f.IP = ip
	if f.IP == "" {
		f.IP = n.Address()
		if host, _, err := net.SplitHostPort(f.IP); err == nil {
			f.IP = host
		}
	}
	return f, nil
}

// fillFromRegistry takes the facts vmafd-cli failed to give from the vmafd
// registry values, as fixsts.sh does: vmafd-cli needs the vmafd service,
// which may be down on an appliance under repair. The Lookup Service
// location, which the registry does not hold, is then the one vmafd
// reports: https://<dcName>/lookupservice/sdk.
func fillFromRegistry(ctx context.Context, env *engine.Env, n *target.Node, f *NodeFacts, failed []error) error {
	if !slices.ContainsFunc(failed, func(err error) bool { return err != nil }) {
		return nil
	}
	res, err := Run(ctx, env, n, "lwregshell list_values", lwregshell+" list_values '"+vmafdRegKey+"'", "")
	if err != nil {
		return err
	}
	var regErr error
	var values map[string]string
	if res.ExitCode != 0 {
		regErr = &ExitError{Node: n.PNID(), Command: "lwregshell list_values", Result: res}
	} else {
		values = ParseRegistryValues(res.Stdout)
	}
	var errs []error
	for i, q := range vmafdQueries {
		if failed[i] == nil {
			continue
		}
		if v := values[q.regValue]; q.regValue != "" && v != "" {
			*q.field(f) = v
			continue
		}
		if q.sub == "get-ls-location" && f.DCName != "" {
			continue // derived below, once DCName is known
		}
		why := regErr
		if why == nil {
			why = fmt.Errorf("the vmafd registry has no %s value", q.regValue)
		}
		errs = append(errs, fmt.Errorf("%w (and reading the registry instead failed: %v)", failed[i], why))
	}
	if f.LsLocation == "" && f.DCName != "" {
		f.LsLocation = "https://" + f.DCName + "/lookupservice/sdk"
	}
	return errors.Join(errs...)
}

// line runs a command that prints one line and returns that line.
func line(ctx context.Context, env *engine.Env, n *target.Node, name, cmd string) (string, error) {
	res, err := Must(ctx, env, n, name, cmd, "")
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(res.Stdout)
	switch {
	case v == "":
		return "", fmt.Errorf("%s: %s printed nothing", n.PNID(), name)
	case strings.ContainsAny(v, "\r\n"):
		return "", fmt.Errorf("%s: %s printed %d lines, want one", n.PNID(), name, strings.Count(v, "\n")+1)
	}
	return v, nil
}

// registryLine matches one value that lwregshell list_values prints, such
// as `+  "PNID"  REG_SZ  "vcsa1.example.com"`.
var registryLine = regexp.MustCompile(`^\+?\s*"([^"]+)"\s+REG_SZ\s+"(.*)"\s*$`)

// ParseRegistryValues returns the REG_SZ values that `lwregshell
// list_values` printed, by name. When a name appears twice (DCName and
// DCNameHA are distinct names, so only a repeated key) the first is kept.
func ParseRegistryValues(out string) map[string]string {
	values := map[string]string{}
	for l := range strings.Lines(out) {
		if m := registryLine.FindStringSubmatch(strings.TrimRight(l, "\r\n")); m != nil {
			if _, dup := values[m[1]]; !dup {
				values[m[1]] = m[2]
			}
		}
	}
	return values
}

// inetLine matches the IPv4 address in `ip -4 -o addr` output ("inet
// 10.0.0.5/24") and in ifconfig's, old ("inet addr:10.0.0.5") and new
// ("inet 10.0.0.5  netmask").
var inetLine = regexp.MustCompile(`\binet (?:addr:)?(\d{1,3}(?:\.\d{1,3}){3})\b`)

// ParseIPv4 returns the first IPv4 address `ip -4 -o addr show` or ifconfig
// printed, or "" when there is none.
func ParseIPv4(out string) string {
	for _, m := range inetLine.FindAllStringSubmatch(out, -1) {
		if ip := net.ParseIP(m[1]); ip != nil && ip.To4() != nil {
			return m[1]
		}
	}
	return ""
}
