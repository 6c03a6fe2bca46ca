// Package services provides the step types that read and restart the
// vCenter services of appliance nodes with service-control over SSH:
// services.status and services.restart, the "restart services on every node
// of the SSO domain" step of KB 76719 and of the certificate procedures.
package services

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"runbook/engine"
	"runbook/steps/conn"
	"runbook/steps/shell"
	"runbook/target"
)

// ServiceControl is where service-control lives on an appliance.
const ServiceControl = "/usr/bin/service-control"

// nodeTypeFile holds the node's deployment type.
const nodeTypeFile = "/etc/vmware/deployment.node.type"

// Register adds services.status (read) and services.restart (write) to r.
func Register(r *engine.Registry) {
	r.Register(statusStep)
	r.Register(restartStep)
}

// Required lists, by node type, the services services.status and
// services.restart require to be running when the required param is not
// given: the directory, certificate, token and proxy services every
// certificate procedure depends on, and on a vCenter its API and client.
// Services a node type does not run are left out (vmdir, VMCA and STS on
// a vCenter with an external PSC; vpxd on a PSC).
var Required = map[string][]string{
	"embedded":       {"vmafdd", "vmdird", "vmcad", "vmware-stsd", "vmware-rhttpproxy", "vmware-vpxd-svcs", "vmware-vpxd", "vsphere-ui"},
	"infrastructure": {"vmafdd", "vmdird", "vmcad", "vmware-stsd", "vmware-rhttpproxy"},
	"management":     {"vmafdd", "vmware-rhttpproxy", "vmware-vpxd-svcs", "vmware-vpxd", "vsphere-ui"},
}

// statusParams are the params of services.status.
type statusParams struct {
	Node     string   `yaml:"node" doc:"The PNID of the node to read, or all for every node of the target (one entry each in nodes; a node that cannot be reached over the network is recorded there, not a failure); the first node when empty."`
	Required []string `yaml:"required" doc:"The services that must run for allRunning to be true. When empty, those an appliance needs for its node type: vmafdd, vmdird, vmcad, vmware-stsd, vmware-rhttpproxy, vmware-vpxd-svcs, vmware-vpxd and vsphere-ui on an embedded node; vmafdd, vmdird, vmcad, vmware-stsd and vmware-rhttpproxy on a PSC (infrastructure); vmafdd, vmware-rhttpproxy, vmware-vpxd-svcs, vmware-vpxd and vsphere-ui on a vCenter with an external PSC (management)."`
}

// NodeStatus is the state of one node's services.
type NodeStatus struct {
	// PNID is the node's PNID.
	PNID string `json:"pnid" expr:"pnid"`
	// Reachable is false for a node that could not be reached over the
	// network (services.status with node: all only); its services are
	// unknown then, and AllRunning is false.
	Reachable bool `json:"reachable" expr:"reachable"`
	// Error says why the node could not be reached; empty when it was.
	Error string `json:"error" expr:"error"`
	// NodeType is embedded, infrastructure or management.
	NodeType string `json:"nodeType" expr:"nodeType"`
	// Running are the running services, as service-control lists them.
	Running []string `json:"running" expr:"running"`
	// Stopped are the services that are not running (stopped, or in any
	// other state service-control reports).
	Stopped []string `json:"stopped" expr:"stopped"`
	// Required are the services that must run on this node.
	Required []string `json:"required" expr:"required"`
	// NotRunning are the required services that are not running,
	// including any service-control does not know.
	NotRunning []string `json:"notRunning" expr:"notRunning"`
	// AllRunning is true when the node was read and every required
	// service runs.
	AllRunning bool `json:"allRunning" expr:"allRunning"`
}

// statusOutputs are the outputs of services.status and services.restart.
type statusOutputs struct {
	// Running and Stopped are the first node's services, as in nodes.
	Running []string `json:"running" expr:"running"`
	Stopped []string `json:"stopped" expr:"stopped"`
	// Nodes has one entry per node, in target order.
	Nodes []NodeStatus `json:"nodes" expr:"nodes"`
	// AllRunning is true when every node was read and every required
	// service runs on each: false when a node could not be reached.
	AllRunning bool `json:"allRunning" expr:"allRunning"`
	// NotRunning lists each required service that is not running, on any
	// node read, as "<pnid>: <service>"; the services of a node that could
	// not be reached are unknown, and not listed.
	NotRunning []string `json:"notRunning" expr:"notRunning"`
}

var statusStep = engine.Read[statusParams, statusOutputs]{
	Spec: engine.Spec{
		ID:      "services.status",
		Summary: "Read which vCenter services run on appliance nodes (service-control --status --all).",
		Doc: "Runs `service-control --status --all` on the node (or on every node with `node: all`) and " +
			"returns the running and stopped services, and whether every required service runs " +
			"(`allRunning`; `notRunning` says which do not). Services stop, and fail to start, when a " +
			"certificate they depend on has expired: the STS signing certificate (vmware-stsd, " +
			"vmware-vpxd-svcs, vsphere-ui; KB 76719), the Machine SSL certificate (the reverse " +
			"proxy) or a solution user's (vpxd).\n\n" +
			"With `node: all` a node that cannot be reached over the network is recorded in `nodes` " +
			"(`reachable: false`, `error`; `allRunning` is then false) instead of failing the step, so " +
			"that a check can report it; any other failure (a pin that does not match, service-control " +
			"failing) fails the step, and so does a run in which no node could be reached.\n\n" +
			"```yaml\n- id: svc\n  uses: services.status\n  with: {node: all}\n" +
			"- id: all_up\n  uses: assert\n  with:\n    that: ${{ steps.svc.allRunning }}\n" +
			"    message: \"not running: ${{ join(steps.svc.notRunning, ', ') }}\"\n```",
	},
	Run: runStatus,
}

func runStatus(ctx context.Context, env *engine.Env, p *statusParams) (statusOutputs, error) {
	nodes, err := conn.Nodes(env, p.Node)
	if err != nil {
		return statusOutputs{}, err
	}
	return readAll(ctx, env, nodes, p.Required, strings.EqualFold(p.Node, conn.All))
}

// readAll reads the services of nodes side by side. With skipUnreachable,
// a node that cannot be reached over the network is recorded as such
// (unless none can be); any other failure, or any failure without it, is
// an error.
func readAll(ctx context.Context, env *engine.Env, nodes []*target.Node, required []string, skipUnreachable bool) (statusOutputs, error) {
	states, err := conn.EachNode(ctx, nodes, skipUnreachable, "read services",
		func(ctx context.Context, n *target.Node) (NodeStatus, error) { return readNode(ctx, env, n, required) },
		func(n *target.Node, err error) NodeStatus {
			return NodeStatus{PNID: n.PNID(), Error: shell.Redact(env, err.Error()),
				Running: []string{}, Stopped: []string{}, Required: []string{}, NotRunning: []string{}}
		})
	if err != nil {
		return statusOutputs{}, err
	}
	return summarize(states), nil
}

// summarize builds the outputs from each node's state.
func summarize(states []NodeStatus) statusOutputs {
	out := statusOutputs{Nodes: states, AllRunning: true, NotRunning: []string{}}
	if len(states) > 0 {
		out.Running, out.Stopped = states[0].Running, states[0].Stopped
	}
	for _, s := range states {
		out.AllRunning = out.AllRunning && s.AllRunning
		for _, name := range s.NotRunning {
			out.NotRunning = append(out.NotRunning, s.PNID+": "+name)
		}
	}
	return out
}

// readNode reads one node's services and judges them against required (or
// the node type's defaults).
func readNode(ctx context.Context, env *engine.Env, n *target.Node, required []string) (NodeStatus, error) {
	ns := NodeStatus{PNID: n.PNID()}
	// Connect first, so that a node that cannot be reached fails with the
	// connection's error (see unreachable).
	if _, err := n.SSH(ctx); err != nil {
		return ns, err
	}
	ns.Reachable = true
	nodeType, err := nodeTypeOf(ctx, env, n)
	if err != nil {
		return ns, err
	}
	ns.NodeType = nodeType
	res, err := shell.Must(ctx, env, n, "service-control --status --all", ServiceControl+" --status --all", "")
	if err != nil {
		return ns, err
	}
	st, err := ParseStatus(res.Stdout)
	if err != nil {
		return ns, fmt.Errorf("%s: service-control --status --all: %w", n.PNID(), err)
	}
	ns.Running, ns.Stopped = st.Running, st.Stopped
	ns.Required = slices.Clone(required)
	if len(ns.Required) == 0 {
		ns.Required = slices.Clone(Required[nodeType])
	}
	ns.NotRunning = []string{}
	for _, name := range ns.Required {
		if !st.IsRunning(name) {
			ns.NotRunning = append(ns.NotRunning, name)
		}
	}
	ns.AllRunning = len(ns.NotRunning) == 0
	return ns, nil
}

// nodeTypeOf returns the node's type from the run's facts, or reads it
// from the node when the facts do not have it.
func nodeTypeOf(ctx context.Context, env *engine.Env, n *target.Node) (string, error) {
	for _, f := range env.Facts.Nodes {
		if strings.EqualFold(f.PNID, n.PNID()) && f.NodeType != "" {
			return f.NodeType, nil
		}
	}
	res, err := shell.Must(ctx, env, n, "cat "+nodeTypeFile, "cat "+nodeTypeFile, "")
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(res.Stdout)
	if _, ok := Required[t]; !ok {
		return "", fmt.Errorf("%s: %s holds %q, not embedded, infrastructure or management", n.PNID(), nodeTypeFile, t)
	}
	return t, nil
}
