package target

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
)

// Where facts come from on an appliance (see vcenter-procedures.md §3.1 and §7).
const (
	vmafdCLI     = "/usr/lib/vmware-vmafd/bin/vmafd-cli"
	lwregshell   = "/opt/likewise/bin/lwregshell"
	vmafdRegKey  = `[HKEY_THIS_MACHINE\Services\vmafd\Parameters]`
	nodeTypeFile = "/etc/vmware/deployment.node.type"
)

// nodeTypes are the values deployment.node.type holds.
var nodeTypes = []string{"embedded", "infrastructure", "management"}

// nodeInfo is what a node says about itself.
type nodeInfo struct {
	pnid, machineID, domain, site, dcName, nodeType string
}

// vmafdQueries are the vmafd-cli sub-commands facts come from, with the
// vmafd registry value that holds the same fact.
var vmafdQueries = []struct {
	sub, regValue string
	field         func(*nodeInfo) *string
}{
	{"get-pnid", "PNID", func(i *nodeInfo) *string { return &i.pnid }},
	{"get-machine-id", "MachineID", func(i *nodeInfo) *string { return &i.machineID }},
	{"get-domain-name", "DomainName", func(i *nodeInfo) *string { return &i.domain }},
	{"get-site-name", "SiteName", func(i *nodeInfo) *string { return &i.site }},
	{"get-dc-name", "DCName", func(i *nodeInfo) *string { return &i.dcName }},
}

// Facts reads the facts of every node over SSH, as fixsts does: PNID,
// machine id, SSO domain, site and domain controller from vmafd-cli (or,
// when vmafd does not answer, from the vmafd registry values), and the node
// type from /etc/vmware/deployment.node.type. IP is the profile's address.
// The first node's facts are also the top-level ones. Facts are read once
// per run; Refresh forgets them.
//
// A node reporting another PNID or SSO domain than the profile says is an
// error: the profile points at the wrong appliance.
func (t *Target) Facts(ctx context.Context) (engine.Facts, error) {
	f, err := t.facts.get(ctx, nil, nil, t.readFacts)
	if err != nil {
		return engine.Facts{}, err
	}
	f.Nodes = slices.Clone(f.Nodes)
	return f, nil
}

// Refresh forgets the facts read so far; the next Facts reads them again.
func (t *Target) Refresh() { t.facts.reset(nil) }

func (t *Target) readFacts(ctx context.Context) (engine.Facts, error) {
	infos := make([]nodeInfo, len(t.nodes))
	errs := make([]error, len(t.nodes))
	var wg sync.WaitGroup
	for i, n := range t.nodes {
		wg.Go(func() { infos[i], errs[i] = n.readFacts(ctx) })
	}
	wg.Wait()
	// The first node is the one runbooks act on: it must answer. Another
	// node that cannot be reached (a partner down) is a fact, not a failure,
	// so that check runbooks can report it; any other error (a pin that
	// does not match, a different appliance) still fails.
	var fatal []error
	for i, err := range errs {
		if err != nil && (i == 0 || !Unreachable(err)) {
			fatal = append(fatal, err)
		}
	}
	if err := errors.Join(fatal...); err != nil {
		return engine.Facts{}, fmt.Errorf("read facts: %w", err)
	}
	f := engine.Facts{Target: t.name}
	for i, info := range infos {
		if errs[i] != nil {
			f.Nodes = append(f.Nodes, engine.NodeFacts{PNID: t.nodes[i].pnid, IP: t.nodes[i].address, Error: errs[i].Error()})
			continue
		}
		f.Nodes = append(f.Nodes, engine.NodeFacts{
			PNID:      info.pnid,
			NodeType:  info.nodeType,
			MachineID: info.machineID,
			IP:        t.nodes[i].address,
			Site:      info.site,
			Reachable: true,
		})
	}
	first := infos[0]
	f.Domain = first.domain
	f.DomainDN = DomainDN(first.domain)
	f.Site = first.site
	f.PNID = first.pnid
	f.NodeType = first.nodeType
	f.MachineID = first.machineID
	f.IP = t.nodes[0].address
	f.DCName = first.dcName
	return f, nil
}

// readFacts asks the node about itself.
func (n *Node) readFacts(ctx context.Context) (nodeInfo, error) {
	var info nodeInfo
	// Connect once before running the commands side by side, so that an
	// unreachable node is dialled once.
	if _, err := n.SSH(ctx); err != nil {
		return info, err
	}
	vmafdErrs := make([]error, len(vmafdQueries))
	var typeErr error
	var wg sync.WaitGroup
	for i, q := range vmafdQueries {
		wg.Go(func() {
			*q.field(&info), vmafdErrs[i] = n.runLine(ctx, "vmafd-cli "+q.sub, vmafdCLI+" "+q.sub+" --server-name localhost")
		})
	}
	wg.Go(func() { info.nodeType, typeErr = n.runLine(ctx, "cat "+nodeTypeFile, "cat "+nodeTypeFile) })
	wg.Wait()

	// A failed connection is fatal, and so is unexpected output; a
	// vmafd-cli that fails (vmafd is down) has a fallback.
	for _, err := range append(slices.Clone(vmafdErrs), typeErr) {
		var ce *commandError
		if err != nil && (!errors.As(err, &ce) || ce.problem != "") {
			return info, err
		}
	}
	if typeErr != nil {
		return info, typeErr
	}
	if !slices.Contains(nodeTypes, info.nodeType) {
		return info, fmt.Errorf("node %s: %s holds %q, not one of %s", n.pnid, nodeTypeFile, info.nodeType, strings.Join(nodeTypes, ", "))
	}
	if err := n.fillFromRegistry(ctx, &info, vmafdErrs); err != nil {
		return info, err
	}
	if !strings.EqualFold(info.pnid, n.pnid) {
		return info, fmt.Errorf("node %s: the appliance at %s reports PNID %q; fix the node's pnid or address in the profile", n.pnid, n.address, info.pnid)
	}
	if d := n.t.profile.Domain; !strings.EqualFold(info.domain, d) {
		return info, fmt.Errorf("node %s: the appliance is in SSO domain %q, not %q as the profile says", n.pnid, info.domain, d)
	}
	return info, nil
}

// fillFromRegistry takes the facts vmafd-cli failed to give from the vmafd
// registry values, as fixsts does; vmafd-cli needs the vmafd service, which
// may be down on an appliance under repair. failed holds the vmafd-cli
// errors in vmafdQueries order.
func (n *Node) fillFromRegistry(ctx context.Context, info *nodeInfo, failed []error) error {
	if !slices.ContainsFunc(failed, func(err error) bool { return err != nil }) {
		return nil
	}
	cmd := lwregshell + " list_values '" + vmafdRegKey + "'"
	out, errOut, code, err := n.Run(ctx, cmd, nil)
	var regErr error
	var values map[string]string
	switch {
	case err != nil:
		return err
	case code != 0:
		regErr = &commandError{node: n.pnid, cmd: "lwregshell list_values", exit: code, stdout: out, stderr: errOut}
	default:
		values = parseRegistryValues(out)
	}
	var errs []error
	for i, q := range vmafdQueries {
		if failed[i] == nil {
			continue
		}
		v, ok := values[q.regValue]
		if ok && v != "" {
			*q.field(info) = v
			continue
		}
		if regErr == nil {
			regErr = fmt.Errorf("the vmafd registry has no %s value", q.regValue)
		}
		errs = append(errs, fmt.Errorf("%w (and reading the registry instead failed: %v)", failed[i], regErr))
	}
	return errors.Join(errs...)
}

// registryLine matches one value that lwregshell list_values prints, such as
// `+  "PNID"  REG_SZ  "vcsa1.example.com"`.
var registryLine = regexp.MustCompile(`^\+?\s*"([^"]+)"\s+REG_SZ\s+"(.*)"\s*$`)

// parseRegistryValues returns the REG_SZ values of lwregshell output.
func parseRegistryValues(out string) map[string]string {
	values := map[string]string{}
	for line := range strings.Lines(out) {
		if m := registryLine.FindStringSubmatch(strings.TrimRight(line, "\r\n")); m != nil {
			values[m[1]] = m[2]
		}
	}
	return values
}

// commandError is a command that ran but failed or printed something
// unexpected.
type commandError struct {
	node, cmd      string
	exit           int
	stdout, stderr string
	problem        string // set when the command succeeded but its output is wrong
}

func (e *commandError) Error() string {
	if e.problem != "" {
		return fmt.Sprintf("node %s: %s: %s", e.node, e.cmd, e.problem)
	}
	msg := fmt.Sprintf("node %s: %s exited with status %d", e.node, e.cmd, e.exit)
	if line := firstLine(e.stderr); line != "" {
		msg += ": " + line
	} else if line := firstLine(e.stdout); line != "" {
		msg += ": " + line
	}
	if strings.Contains(e.stdout+e.stderr, "Unknown command") {
		msg += " (root's login shell looks like the appliance shell; set it to bash with chsh -s /bin/bash root)"
	}
	return msg
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// runLine runs a command that prints a single line and returns that line;
// name is the command as error messages show it.
func (n *Node) runLine(ctx context.Context, name, cmd string) (string, error) {
	out, errOut, code, err := n.Run(ctx, cmd, nil)
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", &commandError{node: n.pnid, cmd: name, exit: code, stdout: out, stderr: errOut}
	}
	v := strings.TrimSpace(out)
	switch {
	case v == "":
		return "", &commandError{node: n.pnid, cmd: name, problem: "printed nothing"}
	case strings.ContainsAny(v, "\r\n"):
		return "", &commandError{node: n.pnid, cmd: name, problem: fmt.Sprintf("printed %d lines, want one", strings.Count(v, "\n")+1)}
	}
	return v, nil
}

// Unreachable reports whether err means a node could not be reached over
// the network (refused, timed out, reset), as opposed to a node that
// answered wrongly (a pin that does not match, a failing tool). Steps that
// read every node record an unreachable one instead of failing.
func Unreachable(err error) bool {
	var pin *PinError
	if errors.As(err, &pin) {
		return false
	}
	var op *net.OpError
	return errors.As(err, &op)
}
