// Package tlspeer provides tls.peer_certificate, the step type that reads
// the certificate a node serves, as `echo | openssl s_client -connect
// <node>:443` does in KB 2121701 Task 0.
package tlspeer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"runbook/engine"
	"runbook/steps/certinfo"
	"runbook/steps/conn"
	"runbook/target"
)

// Register adds tls.peer_certificate (read) to r.
func Register(r *engine.Registry) {
	r.Register(peerStep)
}

// peerParams are the params of tls.peer_certificate.
type peerParams struct {
	Node    string `yaml:"node" doc:"The PNID of the node to connect to, or all for every node of the target (one entry each in nodes; a node that cannot be reached over the network is recorded there, not a failure); the first node when empty."`
	Service string `yaml:"service" enum:"https,ldaps" default:"https" doc:"Which of the node's TLS ports to read when port is not given: https (the reverse proxy, 443 on an appliance) or ldaps (vmdir, 636); both serve the Machine SSL certificate. The ports are the target profile's."`
	Port    int    `yaml:"port" doc:"The TCP port to connect to instead, on the node's address; 0 (the default) means the service's port."`
}

// peerOutputs are the outputs of tls.peer_certificate: the chain of the
// first node, its leaf's fields at top level, and one entry per node.
type peerOutputs struct {
	// Node is the PNID of the node the top-level fields describe.
	Node string `json:"node" expr:"node"`
	// Port is the port that was read.
	Port int `json:"port" expr:"port"`
	// Chain is the chain the server presented, leaf first.
	Chain []certinfo.Info `json:"chain" expr:"chain"`

	Subject  string    `json:"subject" expr:"subject"`
	Issuer   string    `json:"issuer" expr:"issuer"`
	SHA1     string    `json:"sha1" expr:"sha1"`
	SHA256   string    `json:"sha256" expr:"sha256"`
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
	DaysLeft int       `json:"daysLeft" expr:"daysLeft"`
	Expired  bool      `json:"expired" expr:"expired"`
	Base64   string    `json:"base64" expr:"base64"`
	PEM      string    `json:"pem" expr:"pem"`

	// Nodes has one entry per node, in target order (one entry unless
	// node is all).
	Nodes []Peer `json:"nodes" expr:"nodes"`
	// Peers holds the same entries as Nodes, under the name runbooks
	// written before nodes existed use.
	Peers []Peer `json:"peers" expr:"peers"`
}

// Peer is what one node served.
type Peer struct {
	// Node is the node's PNID.
	Node string `json:"node" expr:"node"`
	// Reachable is false for a node that could not be reached over the
	// network (node: all only); nothing else is set then but Error.
	Reachable bool `json:"reachable" expr:"reachable"`
	// Error says why the node could not be reached; empty when it was.
	Error string `json:"error" expr:"error"`
	// Port is the port that was read.
	Port int `json:"port" expr:"port"`
	// Chain is the chain the server presented, leaf first; the other
	// fields describe its leaf.
	Chain []certinfo.Info `json:"chain" expr:"chain"`

	Subject  string    `json:"subject" expr:"subject"`
	Issuer   string    `json:"issuer" expr:"issuer"`
	SHA1     string    `json:"sha1" expr:"sha1"`
	SHA256   string    `json:"sha256" expr:"sha256"`
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
	DaysLeft int       `json:"daysLeft" expr:"daysLeft"`
	Expired  bool      `json:"expired" expr:"expired"`
	Base64   string    `json:"base64" expr:"base64"`
	PEM      string    `json:"pem" expr:"pem"`
}

var peerStep = engine.Read[peerParams, peerOutputs]{
	Spec: engine.Spec{
		ID:      "tls.peer_certificate",
		Summary: "Read the certificate chain a node serves over TLS (openssl s_client).",
		Doc: "Connects to the node's HTTPS port (or its LDAPS port, or any port) and returns the chain " +
			"the server presented, leaf first, with the leaf's fields at top level: KB 2121701 Task 0 " +
			"compares its `base64` with the Lookup Service's sslTrust, and Task 3's new certificate is " +
			"its `pem`. The connection is verified only by the target's pin, so an expired or " +
			"self-signed certificate is read like any other. With `node: all` every node is read side " +
			"by side, one entry each in `nodes` (also named `peers`), and the top-level fields are the " +
			"first node's. A node that cannot be reached over the network is recorded there " +
			"(`reachable: false`, `error`) instead of failing the step, so that a check can report " +
			"it; any other failure (a pin that does not match, a port that speaks no TLS) fails the " +
			"step, and so does a run in which no node could be reached.\n\n" +
			"```yaml\n- id: served\n  uses: tls.peer_certificate\n" +
			"- uses: note\n  with: {message: \"443 serves ${{ steps.served.sha1 }}\"}\n```",
	},
	Run: runPeer,
}

// now is the clock daysLeft and expired are computed with; tests replace it.
var now = time.Now

func runPeer(ctx context.Context, env *engine.Env, p *peerParams) (peerOutputs, error) {
	nodes, err := conn.Nodes(env, p.Node)
	if err != nil {
		return peerOutputs{}, err
	}
	peers, err := conn.EachNode(ctx, nodes, strings.EqualFold(p.Node, conn.All), "read certificates",
		func(ctx context.Context, n *target.Node) (Peer, error) { return read(ctx, n, p) },
		func(n *target.Node, err error) Peer {
			return Peer{Node: n.PNID(), Error: err.Error(), Chain: []certinfo.Info{}}
		})
	if err != nil {
		return peerOutputs{}, err
	}
	f := peers[0]
	out := peerOutputs{Nodes: peers, Peers: peers}
	out.Node, out.Port, out.Chain = f.Node, f.Port, f.Chain
	out.Subject, out.Issuer, out.SHA1, out.SHA256 = f.Subject, f.Issuer, f.SHA1, f.SHA256
	out.NotAfter, out.DaysLeft, out.Expired = f.NotAfter, f.DaysLeft, f.Expired
	out.Base64, out.PEM = f.Base64, f.PEM
	return out, nil
}

// read connects to one node's port and describes what it served.
func read(ctx context.Context, n *target.Node, p *peerParams) (Peer, error) {
	port := p.Port
	if port == 0 {
		switch p.Service {
		case "", "https":
			port = n.Ports().HTTPS
		case "ldaps":
			port = n.Ports().LDAPS
			if port < 0 {
				return Peer{}, fmt.Errorf("read certificate of %s: the target profile says it serves no LDAPS", n.PNID())
			}
		default:
			return Peer{}, fmt.Errorf("service: %q is neither https nor ldaps", p.Service)
		}
	}
	if port < 0 || port > 65535 {
		return Peer{}, fmt.Errorf("port: %d is not a TCP port", port)
	}
	chain, err := n.DialTLS(ctx, port)
	if err != nil {
		return Peer{}, fmt.Errorf("read certificate of %s port %d: %w", n.PNID(), port, err)
	}
	if len(chain) == 0 {
		return Peer{}, fmt.Errorf("read certificate of %s port %d: the server presented no certificate", n.PNID(), port)
	}
	at := now()
	infos := make([]certinfo.Info, len(chain))
	for i, c := range chain {
		infos[i] = certinfo.Describe(c, at)
	}
	l := infos[0]
	return Peer{
		Node: n.PNID(), Reachable: true, Port: port, Chain: infos,
		Subject: l.Subject, Issuer: l.Issuer, SHA1: l.SHA1, SHA256: l.SHA256,
		NotAfter: l.NotAfter, DaysLeft: l.DaysLeft, Expired: l.Expired,
		Base64: l.Base64, PEM: l.PEM,
	}, nil
}
