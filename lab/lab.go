// Package lab runs a simulated vCenter SSO domain on loopback, for tests and
// for rehearsing runbooks.
//
// Start builds the domain from a scenario (see runbook/lab/model, the one
// source of truth) and serves every node on the protocols a real appliance
// speaks, each server a view over the model:
//
//   - LDAP and LDAPS (runbook/lab/ldapd): the shared vmdir directory, LDAPS
//     presenting the node's Machine SSL certificate;
//   - HTTPS (runbook/lab/vcweb): the Machine SSL certificate, the vSphere
//     API, the Lookup Service over the registrations kept in vmdir, and the
//     IDM certificates endpoint;
//   - SSH and SFTP (runbook/lab/sshd): root's shell with the appliance
//     commands (runbook/lab/appliance, installed at their paths in the
//     node's tree) and the node's file tree.
//
// Certificates are read from the model at every TLS handshake, so replacing
// the Machine SSL certificate in VECS changes what ports 443 and 636 serve
// at once, as it does on an appliance once its proxy restarts.
//
// A node that the scenario takes off the network (partner-down) gets no
// servers at all: its addresses refuse connections, which is what a real
// client sees of a host that is down ("Host available: No"). A node taken
// offline while the lab runs (model.Domain.SetOnline) keeps its listeners but
// drops every connection and operation until it is back online.
//
// Profile writes a target profile for the lab, so that the runbook CLI and
// the target package reach it exactly as they reach a real appliance.
package lab

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"runbook/lab/appliance"
	"runbook/lab/ldapd"
	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/lab/sshd"
	"runbook/lab/vcweb"
	"runbook/target"
)

// Scenarios lists the scenarios Start accepts, as model.Scenarios does.
func Scenarios() []model.Scenario { return model.Scenarios() }

// Option changes how Start builds the lab.
type Option func(*config)

type config struct {
	dir   string
	now   func() time.Time
	nodes int
	types []model.NodeType
}

// WithDir keeps the node trees in dir (one subdirectory per PNID) instead of
// a temporary directory; Close leaves dir in place.
func WithDir(dir string) Option { return func(c *config) { c.dir = dir } }

// WithNow sets the lab clock. Every validity check of the lab, services
// included, calls now; to move time while the lab runs, pass a function over
// a clock the caller controls.
func WithNow(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithNodes sets the number of nodes; the default is two.
func WithNodes(n int) Option { return func(c *config) { c.nodes = n } }

// WithTypes sets each node's deployment type, first node first; the default
// is all embedded.
func WithTypes(types ...model.NodeType) Option {
	return func(c *config) { c.types = types }
}

// Lab is a running simulated SSO domain. Its methods are safe for concurrent
// use.
type Lab struct {
	d     *model.Domain
	nodes []*node

	stop context.CancelFunc // ends the servers' context

	mu          sync.Mutex
	profilesDir string // private directory for Target's profiles
	closed      bool
	closeErr    error
}

// node is one appliance's servers.
type node struct {
	n       *model.Node
	hostKey ssh.Signer

	ldap *ldapd.Server
	web  *vcweb.Server
	ssh  *sshd.Server

	// down are refusing addresses (LDAP, LDAPS, HTTPS, SSH) handed out for
	// a node that was offline at start.
	down [4]string
}

// NodeInfo is how to reach one node of a running lab.
type NodeInfo struct {
	// PNID is the node's primary network identifier.
	PNID string
	// Online reports whether the node is reachable now. A node the
	// scenario took off the network has no servers: its addresses refuse
	// connections. One taken offline later drops every connection.
	Online bool
	// LDAPAddr, LDAPSAddr, HTTPSAddr and SSHAddr are host:port on loopback.
	LDAPAddr, LDAPSAddr, HTTPSAddr, SSHAddr string
	// TLSThumbprint is the SHA-256 thumbprint of the node's current Machine
	// SSL certificate, as upper-case colon-separated hex.
	TLSThumbprint string
	// SSHHostKey is the SSH host key fingerprint, as "SHA256:…".
	SSHHostKey string
}

// Start builds the named scenario and serves each of its nodes, nodes in
// parallel. ctx bounds start-up only: the lab runs until Close.
func Start(ctx context.Context, scenario string, opts ...Option) (*Lab, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	d, err := model.Build(scenario, model.Options{Dir: c.dir, Now: c.now, Nodes: c.nodes, Types: c.types})
	if err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	serveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l := &Lab{d: d, stop: stop}
	d.Lock()
	nodes := append([]*model.Node(nil), d.Nodes...)
	d.Unlock()
	l.nodes = make([]*node, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		l.nodes[i] = &node{n: n}
		wg.Go(func() { errs[i] = l.startNode(serveCtx, l.nodes[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("start lab %s: %w", scenario, err)
	}
	if err := ctx.Err(); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("start lab %s: %w", scenario, err)
	}
	return l, nil
}

// startNode starts the three servers of one node at once. A node that is
// offline gets refusing addresses instead.
func (l *Lab) startNode(ctx context.Context, nd *node) error {
	n := nd.n
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("node %s: generate host key: %w", n.PNID, err)
	}
	if nd.hostKey, err = ssh.NewSignerFromKey(key); err != nil {
		return fmt.Errorf("node %s: host key: %w", n.PNID, err)
	}
	if err := appliance.Install(n); err != nil {
		return fmt.Errorf("node %s: %w", n.PNID, err)
	}
	if !n.Online() {
		for i := range nd.down {
			if nd.down[i], err = refusingAddr(); err != nil {
				return fmt.Errorf("node %s: %w", n.PNID, err)
			}
		}
		return nil
	}

	certificate := func() (*tls.Certificate, error) {
		leaf, c := n.MachineCert()
		if leaf == nil || len(c.Certificate) == 0 {
			return nil, fmt.Errorf("node %s has no usable %s/%s entry", n.PNID, model.StoreMachineSSL, model.AliasMachineCert)
		}
		return &c, nil
	}
	var ldapErr, webErr, sshErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		nd.ldap, ldapErr = ldapd.Start(ctx, ldapd.Config{
			Dir: l.d.Dir,
			TLS: &tls.Config{
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certificate() },
				MinVersion:     tls.VersionTLS12,
			},
			Faults: l.faults(n, model.ProtoLDAP, ldapOp, ldapd.ErrDrop),
		})
	})
	wg.Go(func() {
		nd.web, webErr = vcweb.Start(ctx, vcweb.Config{
			Store:         vcweb.NewDirStore(l.d.Dir, l.d.Site, l.d.DN),
			Certificate:   certificate,
			Domain:        l.d.Name,
			TrustedChains: l.trustedChains,
			Login:         l.login,
			Faults:        l.faults(n, model.ProtoHTTPS, httpsOp, vcweb.ErrDrop),
		})
	})
	wg.Go(func() {
		nd.ssh, sshErr = sshd.Start(ctx, sshd.Config{
			User:     "root",
			Password: n.RootPassword,
			HostKey:  nd.hostKey,
			Root:     n.Root,
			Hostname: n.PNID,
			Commands: appliance.Commands(l.d, n),
			Faults:   l.faults(n, model.ProtoSSH, func(op string) string { return op }, sshd.ErrDrop),
		})
	})
	wg.Wait()
	if err := errors.Join(ldapErr, webErr, sshErr); err != nil {
		return fmt.Errorf("node %s: %w", n.PNID, err)
	}
	return nil
}

// refusingAddr returns a loopback address nothing listens on: a port that
// was free a moment ago. Connections to it are refused.
func refusingAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("reserve address: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("reserve address: %w", err)
	}
	return addr, nil
}

// login checks SSO credentials for the vSphere API: the domain's
// administrator, as Administrator or administrator@<domain> in any case.
func (l *Lab) login(user, password string) bool {
	l.d.Lock()
	want, domain := l.d.AdminPassword, l.d.Name
	l.d.Unlock()
	name, dom, hasDomain := strings.Cut(user, "@")
	if !strings.EqualFold(name, "administrator") || hasDomain && !strings.EqualFold(dom, domain) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
}

// trustedChains returns the tenant's TrustedCertChain-N entries for the IDM
// endpoint.
func (l *Lab) trustedChains() ([][]*x509.Certificate, error) {
	chains, err := l.d.TrustedCertChains()
	if err != nil {
		return nil, err
	}
	out := make([][]*x509.Certificate, len(chains))
	for i, c := range chains {
		out[i] = c.Certs
	}
	return out, nil
}

// faultFunc is the Faults interface the three servers share.
type faultFunc func(op string) error

func (f faultFunc) Before(op string) error { return f(op) }

// faults adapts the model's fault injector to one server of node n: op maps
// the server's operation name to the model's (which decides what a write
// is), and drop is the server's own "drop the connection" error. While n is
// offline every operation is dropped.
func (l *Lab) faults(n *model.Node, proto string, op func(string) string, drop error) faultFunc {
	return func(name string) error {
		if !n.Online() {
			return fmt.Errorf("%s is offline: %w", n.PNID, drop)
		}
		err := l.d.Faults.Before(proto, op(name))
		if errors.Is(err, model.ErrDropped) {
			return fmt.Errorf("%w: %w", drop, err)
		}
		return err
	}
}

// ldapOp names LDAP operations as the model's write list spells them.
func ldapOp(op string) string {
	if op == "modifydn" {
		return "moddn"
	}
	return op
}

// httpsOp names Lookup Service methods by their bare name ("Set",
// "Create", "Delete"), which the model counts as writes; other operations
// ("tls", "sdk.Login", "idm.certificates") keep their names.
func httpsOp(op string) string {
	if m, ok := strings.CutPrefix(op, "lookup."); ok {
		return m
	}
	return op
}

// Model returns the domain the lab serves. Changing it changes what the
// servers answer.
func (l *Lab) Model() *model.Domain { return l.d }

// Snapshot returns the model's canonical snapshot (see model.Domain.Snapshot).
func (l *Lab) Snapshot() []byte { return l.d.Snapshot() }

// Scenario returns the scenario the lab was built from.
func (l *Lab) Scenario() string { return l.d.Scenario }

// Nodes returns how to reach each node, first node first. TLSThumbprint is
// read from the model at call time.
func (l *Lab) Nodes() []NodeInfo {
	out := make([]NodeInfo, len(l.nodes))
	for i, nd := range l.nodes {
		info := NodeInfo{
			PNID:       nd.n.PNID,
			Online:     nd.ldap != nil && nd.n.Online(),
			SSHHostKey: ssh.FingerprintSHA256(nd.hostKey.PublicKey()),
		}
		if leaf, _ := nd.n.MachineCert(); leaf != nil {
			info.TLSThumbprint = pki.Thumbprint256(leaf.Raw)
		}
		if nd.ldap != nil {
			info.LDAPAddr, info.LDAPSAddr, info.HTTPSAddr, info.SSHAddr = nd.ldap.LDAPAddr(), nd.ldap.LDAPSAddr(), nd.web.Addr(), nd.ssh.Addr()
		} else {
			info.LDAPAddr, info.LDAPSAddr, info.HTTPSAddr, info.SSHAddr = nd.down[0], nd.down[1], nd.down[2], nd.down[3]
		}
		out[i] = info
	}
	return out
}

// SSHAudit returns the command lines run so far on node pnid's shell (see
// sshd.Server.Audit), or nil for an unknown or offline node.
func (l *Lab) SSHAudit(pnid string) []string {
	for _, nd := range l.nodes {
		if strings.EqualFold(nd.n.PNID, pnid) && nd.ssh != nil {
			return nd.ssh.Audit()
		}
	}
	return nil
}

// ProfileName returns the file name Profile gives the lab's profile:
// lab-<scenario>.yaml.
func (l *Lab) ProfileName() string { return "lab-" + l.d.Scenario + ".yaml" }

// Profile writes a target profile for the lab into dir, named by
// ProfileName, and returns its path. The passwords go to files beside it
// (mode 0600) that the profile names by relative paths.
func (l *Lab) Profile(dir string) (string, error) {
	path := filepath.Join(dir, l.ProfileName())
	if err := l.WriteProfile(path); err != nil {
		return "", err
	}
	return path, nil
}

// WriteProfile writes a target profile for the lab to path, and the
// passwords to files beside it (mode 0600, named <base>.sso.password and
// <base>.<pnid>.root.password) that the profile names relatively. Each
// node's TLS thumbprint and SSH host key are pinned as they are now.
func (l *Lab) WriteProfile(path string) error {
	p, err := l.profile(path)
	if err != nil {
		return err
	}
	if err := p.Write(path); err != nil {
		return fmt.Errorf("write lab profile: %w", err)
	}
	return nil
}

// profile builds the lab's profile for path and writes its password files.
func (l *Lab) profile(path string) (*target.Profile, error) {
	dir := filepath.Dir(path)
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	writeSecret := func(name, secret string) error {
		if err := writePrivate(filepath.Join(dir, name), []byte(secret+"\n")); err != nil {
			return fmt.Errorf("write lab profile: %w", err)
		}
		return nil
	}
	l.d.Lock()
	admin, domain := l.d.AdminPassword, l.d.Name
	upn := l.d.AdminUPN()
	l.d.Unlock()
	ssoFile := base + ".sso.password"
	if err := writeSecret(ssoFile, admin); err != nil {
		return nil, err
	}
	p := &target.Profile{
		Domain: domain,
		SSO:    target.Credentials{User: upn, PasswordFile: ssoFile},
		Path:   path,
	}
	for i, info := range l.Nodes() {
		rootFile := base + "." + info.PNID + ".root.password"
		if err := writeSecret(rootFile, l.nodes[i].n.RootPassword); err != nil {
			return nil, err
		}
		host, _, err := net.SplitHostPort(info.HTTPSAddr)
		if err != nil {
			return nil, fmt.Errorf("write lab profile: %w", err)
		}
		p.Nodes = append(p.Nodes, target.NodeProfile{
			PNID:    info.PNID,
			Address: host,
			Ports: target.Ports{
				HTTPS: port(info.HTTPSAddr),
				LDAP:  port(info.LDAPAddr),
				LDAPS: port(info.LDAPSAddr),
				SSH:   port(info.SSHAddr),
			},
			TLSThumbprint: info.TLSThumbprint,
			SSH: target.SSHProfile{
				Credentials: target.Credentials{User: "root", PasswordFile: rootFile},
				HostKey:     info.SSHHostKey,
			},
		})
	}
	return p, nil
}

// port returns the port of host:port, or 0.
func port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// writePrivate writes data to path readable by the owner only, replacing
// any file there.
func writePrivate(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// Target opens the lab as a target, named lab:<scenario>, through a profile
// written to a private directory that Close removes. The caller closes the
// target, before closing the lab.
func (l *Lab) Target(ctx context.Context) (*target.Target, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("open lab target: lab is closed")
	}
	if l.profilesDir == "" {
		dir, err := os.MkdirTemp("", "runbook-lab-profile-")
		if err != nil {
			l.mu.Unlock()
			return nil, fmt.Errorf("open lab target: %w", err)
		}
		l.profilesDir = dir
	}
	dir := l.profilesDir
	l.mu.Unlock()
	f, err := os.CreateTemp(dir, "lab-"+l.d.Scenario+"-*.yaml")
	if err != nil {
		return nil, fmt.Errorf("open lab target: %w", err)
	}
	path := f.Name()
	_ = f.Close()
	p, err := l.profile(path)
	if err != nil {
		return nil, fmt.Errorf("open lab target: %w", err)
	}
	if err := p.Write(path); err != nil {
		return nil, fmt.Errorf("open lab target: %w", err)
	}
	t, err := target.Open(ctx, p, target.Options{Name: "lab:" + l.d.Scenario})
	if err != nil {
		return nil, fmt.Errorf("open lab target: %w", err)
	}
	return t, nil
}

// Close stops every server, then removes the lab's temporary files (the
// node trees too, unless WithDir gave their directory). It is safe to call
// more than once; later calls return the first call's result.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.closeErr
	}
	l.closed = true
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nd := range l.nodes {
		for _, c := range nd.closers() {
			wg.Go(func() {
				if err := c(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("node %s: %w", nd.n.PNID, err))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	l.stop()
	if err := l.d.Close(); err != nil {
		errs = append(errs, err)
	}
	if l.profilesDir != "" {
		if err := os.RemoveAll(l.profilesDir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab profiles: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		l.closeErr = fmt.Errorf("close lab: %w", err)
	}
	return l.closeErr
}

// closers returns the Close methods of the servers that started.
func (nd *node) closers() []func() error {
	var cs []func() error
	if nd.ldap != nil {
		cs = append(cs, nd.ldap.Close)
	}
	if nd.web != nil {
		cs = append(cs, nd.web.Close)
	}
	if nd.ssh != nil {
		cs = append(cs, nd.ssh.Close)
	}
	return cs
}
