package target

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/pkg/sftp"
	"github.com/vmware/govmomi/lookup"
	"github.com/vmware/govmomi/lookup/methods"
	ltypes "github.com/vmware/govmomi/lookup/types"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"golang.org/x/crypto/ssh"
)

// logoutTimeout bounds the vSphere API logout when a target is closed.
const logoutTimeout = 5 * time.Second

// Node is one appliance of a target. Its connections are opened on first
// use, cached, and reopened when they have died (for example after the
// appliance's services restarted). A Node is safe for concurrent use, and so
// are the connections it returns; callers must not close them, nor re-bind
// or log out on them — Target.Close does that.
type Node struct {
	t       *Target
	pnid    string
	address string
	ports   Ports
	sshUser string
	sshPass Credentials

	mu      sync.Mutex // guards the pins
	tlsPin  string
	hostKey string

	ldap   *slot[*ldap.Conn]
	vim    *slot[*vim25.Client]
	lookup *slot[*lookupConn]
	ssh    *slot[*sshConn]
	sftp   *slot[*sftpConn]

	http *http.Client
}

func newNode(t *Target, np NodeProfile) *Node {
	n := &Node{
		t:       t,
		pnid:    np.PNID,
		address: np.Address,
		ports:   np.Ports.withDefaults(),
		sshUser: np.SSH.User,
		sshPass: np.SSH.Credentials,
		ldap:    newSlot[*ldap.Conn](),
		vim:     newSlot[*vim25.Client](),
		lookup:  newSlot[*lookupConn](),
		ssh:     newSlot[*sshConn](),
		sftp:    newSlot[*sftpConn](),
	}
	if n.sshUser == "" {
		n.sshUser = "root"
	}
	var d net.Dialer
	n.http = &http.Client{Transport: &http.Transport{
		DialContext:         d.DialContext,
		TLSClientConfig:     n.tlsConfig(),
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 30 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 4,
	}}
	// The profile was validated, so the pins parse.
	if np.TLSThumbprint != "" {
		n.tlsPin, _ = parseThumbprint(np.TLSThumbprint)
	}
	if np.SSH.HostKey != "" {
		n.hostKey, _ = parseHostKey(np.SSH.HostKey)
	}
	return n
}

// PNID returns the node's primary network identifier from the profile.
func (n *Node) PNID() string { return n.pnid }

// Address returns the address connections to the node go to.
func (n *Node) Address() string { return n.address }

// Ports returns the node's ports, with defaults filled in.
func (n *Node) Ports() Ports { return n.ports }

// URL returns the https URL of path on the node, such as
// https://10.0.0.5:443/idm/….
func (n *Node) URL(path string) string {
	return "https://" + hostPort(n.address, n.ports.HTTPS) + path
}

// Pins returns the pins in use: the TLS certificate thumbprint and the SSH
// host key fingerprint, empty when none is pinned yet.
func (n *Node) Pins() (tlsThumbprint, hostKey string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tlsPin, n.hostKey
}

// Repin replaces the pinned TLS thumbprint (SHA-256, colon-separated or plain
// hex). New TLS connections are verified against it; connections already
// open are kept (they were verified when they were opened) until they die.
//
// Replacing the machine SSL certificate (certificate-manager option 3, or a
// VECS update followed by a restart) legitimately changes what the node
// serves. A step doing so calls Repin only after it has checked that the new
// certificate came from the appliance's own VECS store, read over the pinned
// SSH connection — never from what an HTTPS server presents.
//
// With Options.PinFile the new pin is recorded there, so that a resumed run
// (a new process) trusts the new certificate too.
func (n *Node) Repin(thumbprint string) error {
	pin, err := parseThumbprint(thumbprint)
	if err != nil {
		return fmt.Errorf("repin %s: %w", n.pnid, err)
	}
	n.mu.Lock()
	old := n.tlsPin
	n.tlsPin = pin
	n.mu.Unlock()
	n.http.CloseIdleConnections()
	if old == pin {
		return nil
	}
	if n.t.pins == nil {
		n.t.logf("node %s: TLS pin changed from %s to %s; update tls_thumbprint in the profile", n.pnid, orNone(old), pin)
		return nil
	}
	if err := n.t.pins.save(n.pnid, pin); err != nil {
		return fmt.Errorf("repin %s: %w", n.pnid, err)
	}
	n.t.logf("node %s: TLS pin changed from %s to %s (recorded in %s); update tls_thumbprint in the profile", n.pnid, orNone(old), pin, n.t.pins.path)
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// checkPin compares what a server presented with the pin of that kind,
// trusting it on first use when the options allow.
func (n *Node) checkPin(kind PinKind, presented string) error {
	n.mu.Lock()
	pin := &n.tlsPin
	if kind == PinSSH {
		pin = &n.hostKey
	}
	switch {
	case *pin == presented:
		n.mu.Unlock()
		return nil
	case *pin != "":
		err := &PinError{Node: n.pnid, Kind: kind, Pinned: *pin, Presented: presented}
		n.mu.Unlock()
		return err
	case !n.t.opts.TrustOnFirstUse:
		n.mu.Unlock()
		return &PinError{Node: n.pnid, Kind: kind, Presented: presented}
	}
	*pin = presented
	n.mu.Unlock()
	if kind == PinTLS {
		n.t.logf("node %s: trusting the TLS certificate with SHA-256 %s on first use; to pin it, add tls_thumbprint: %q to the profile", n.pnid, presented, presented)
	} else {
		n.t.logf("node %s: trusting the SSH host key %s on first use; to pin it, add host_key: %q to the node's ssh in the profile", n.pnid, presented, presented)
	}
	return nil
}

// tlsConfig returns a client configuration that accepts exactly the pinned
// certificate.
func (n *Node) tlsConfig() *tls.Config {
	cfg := &tls.Config{
		// The chain, name and dates are not verified: the appliance's
		// certificate may be expired or self-signed, which is what operators
		// repair. VerifyConnection checks the pin instead, on every
		// handshake.
		InsecureSkipVerify: true,
		VerifyConnection:   n.verifyTLS,
		MinVersion:         tls.VersionTLS12,
	}
	if net.ParseIP(n.pnid) == nil {
		cfg.ServerName = n.pnid
	}
	return cfg
}

func (n *Node) verifyTLS(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("node %s: the server presented no certificate", n.pnid)
	}
	return n.checkPin(PinTLS, Thumbprint(cs.PeerCertificates[0]))
}

// dialTLS connects to addr and completes a pinned TLS handshake.
func (n *Node) dialTLS(ctx context.Context, addr string) (*tls.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, n.tlsConfig())
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// DialTLS connects to the node's port (0 means the HTTPS port), completes a
// TLS handshake verified by the pin only, and returns the chain the server
// presented, leaf first. It is what reading a served certificate needs:
// expired and self-signed certificates are returned like any other.
func (n *Node) DialTLS(ctx context.Context, port int) ([]*x509.Certificate, error) {
	if port == 0 {
		port = n.ports.HTTPS
	}
	addr := hostPort(n.address, port)
	if n.t.closed.Load() {
		return nil, fmt.Errorf("connect tls %s (%s): %w", n.pnid, addr, ErrClosed)
	}
	conn, err := n.dialTLS(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("connect tls %s (%s): %w", n.pnid, addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates, nil
}

// HTTPClient returns an HTTP client whose TLS connections accept only the
// node's pinned certificate, for the appliance's REST endpoints (see URL).
// It uses no proxy.
func (n *Node) HTTPClient() *http.Client { return n.http }

// password reads the SSO or SSH password for this node.
func (n *Node) password(kind string) (string, error) {
	switch kind {
	case "sso":
		return n.t.profile.SSO.password(n.t.profile.dir())
	case "ssh":
		return n.sshPass.password(n.t.profile.dir())
	}
	return "", fmt.Errorf("read password: unknown kind %q", kind)
}

// isLoopback reports whether address is a loopback IP or localhost.
func isLoopback(address string) bool {
	if strings.EqualFold(address, "localhost") {
		return true
	}
	ip := net.ParseIP(address)
	return ip != nil && ip.IsLoopback()
}

// BindDN returns the LDAP DN of the profile's SSO user, as vmdir knows it:
// administrator@vsphere.local is cn=administrator,cn=users,dc=vsphere,dc=local.
func (t *Target) BindDN() string {
	user, domain, _ := strings.Cut(t.profile.SSO.User, "@")
	return "cn=" + ldap.EscapeDN(user) + ",cn=users," + DomainDN(domain)
}

// LDAP returns the node's vmdir connection, bound as the SSO user (see
// BindDN). It uses LDAPS on the LDAPS port with the pinned certificate;
// when the profile says the node serves no LDAPS (ports.ldaps: -1) it uses
// plain LDAP, and only to a loopback address.
func (n *Node) LDAP(ctx context.Context) (*ldap.Conn, error) {
	return n.ldap.get(ctx,
		func(c *ldap.Conn) bool { return !c.IsClosing() },
		func(c *ldap.Conn) { c.Close() },
		n.openLDAP)
}

func (n *Node) openLDAP(ctx context.Context) (*ldap.Conn, error) {
	port, useTLS := n.ports.LDAPS, true
	if port < 0 {
		port, useTLS = n.ports.LDAP, false
	}
	addr := hostPort(n.address, port)
	fail := func(err error) (*ldap.Conn, error) {
		return nil, fmt.Errorf("connect ldap %s (%s): %w", n.pnid, addr, err)
	}
	if !useTLS && !isLoopback(n.address) {
		return fail(errors.New("the profile says the node serves no LDAPS (ports.ldaps: -1), and plain LDAP, which would send the SSO password in clear text, is only used to a loopback address"))
	}
	pw, err := n.password("sso")
	if err != nil {
		return fail(err)
	}
	var raw net.Conn
	if useTLS {
		raw, err = n.dialTLS(ctx, addr)
	} else {
		var d net.Dialer
		raw, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fail(err)
	}
	conn := ldap.NewConn(raw, useTLS)
	conn.Start()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	dn := n.t.BindDN()
	err = conn.Bind(dn, pw)
	if !stop() {
		conn.Close()
		return fail(ctx.Err())
	}
	if err != nil {
		conn.Close()
		return fail(fmt.Errorf("bind as %s: %w", dn, err))
	}
	return conn, nil
}

// Vim returns a vSphere API (SOAP) client for https://address:port/sdk,
// logged in as the SSO user. A cached client whose session has ended (the
// appliance restarted, or the session timed out) is replaced by a new login.
func (n *Node) Vim(ctx context.Context) (*vim25.Client, error) {
	return n.vim.get(ctx,
		func(c *vim25.Client) bool {
			s, err := session.NewManager(c).UserSession(ctx)
			// A check cut short by the caller's context says nothing
			// about the session; keep it.
			return (err == nil && s != nil) || ctx.Err() != nil
		},
		n.logout,
		n.openVim)
}

func (n *Node) openVim(ctx context.Context) (*vim25.Client, error) {
	addr := hostPort(n.address, n.ports.HTTPS)
	fail := func(err error) (*vim25.Client, error) {
		return nil, fmt.Errorf("connect vim %s (%s): %w", n.pnid, addr, err)
	}
	pw, err := n.password("sso")
	if err != nil {
		return fail(err)
	}
	sc := soap.NewClient(&url.URL{Scheme: "https", Host: addr, Path: vim25.Path}, false)
	tr := sc.DefaultTransport()
	tr.Proxy = nil
	tr.TLSClientConfig = n.tlsConfig()
	tr.DialTLSContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return n.dialTLS(ctx, addr)
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		sc.CloseIdleConnections()
		return fail(err)
	}
	user := n.t.profile.SSO.User
	if err := session.NewManager(vc).Login(ctx, url.UserPassword(user, pw)); err != nil {
		sc.CloseIdleConnections()
		return fail(fmt.Errorf("log in as %s: %w", user, err))
	}
	return vc, nil
}

// logout ends the client's session, best effort.
func (n *Node) logout(c *vim25.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), logoutTimeout)
	defer cancel()
	_ = session.NewManager(c).Logout(ctx)
	c.CloseIdleConnections()
}

// lookupConn is a Lookup Service client and the vSphere client whose session
// it shares.
type lookupConn struct {
	client *lookup.Client
	on     *vim25.Client
}

// Lookup returns a Lookup Service client for https://address:port/lookupservice/sdk
// on this node, sharing the session of Vim. It always talks to this node:
// with an external PSC, ask the PSC's node.
func (n *Node) Lookup(ctx context.Context) (*lookup.Client, error) {
	vc, err := n.Vim(ctx)
	if err != nil {
		return nil, err
	}
	lc, err := n.lookup.get(ctx,
		func(l *lookupConn) bool { return l.on == vc },
		nil,
		func(ctx context.Context) (*lookupConn, error) {
			sc := vc.Client.NewServiceClient(lookup.Path, lookup.Namespace)
			sc.Version = lookup.Version
			c := &lookup.Client{Client: sc, RoundTripper: sc}
			res, err := methods.RetrieveServiceContent(ctx, c, &ltypes.RetrieveServiceContent{This: lookup.ServiceInstance})
			if err != nil {
				return nil, fmt.Errorf("connect lookup %s (%s): %w", n.pnid, hostPort(n.address, n.ports.HTTPS), err)
			}
			c.ServiceContent = res.Returnval
			return &lookupConn{client: c, on: vc}, nil
		})
	if err != nil {
		return nil, err
	}
	return lc.client, nil
}

// sshConn is an SSH client and a channel closed when its connection ends.
type sshConn struct {
	client *ssh.Client
	done   chan struct{}
}

func (c *sshConn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// SSH returns the node's SSH client, logged in with the profile's SSH user
// and password (password or keyboard-interactive authentication), the host
// key verified against the pinned fingerprint.
func (n *Node) SSH(ctx context.Context) (*ssh.Client, error) {
	c, err := n.ssh.get(ctx,
		(*sshConn).alive,
		func(c *sshConn) { c.client.Close() },
		n.openSSH)
	if err != nil {
		return nil, err
	}
	return c.client, nil
}

func (n *Node) openSSH(ctx context.Context) (*sshConn, error) {
	addr := hostPort(n.address, n.ports.SSH)
	fail := func(err error) (*sshConn, error) {
		return nil, fmt.Errorf("connect ssh %s (%s): %w", n.pnid, addr, err)
	}
	pw, err := n.password("ssh")
	if err != nil {
		return fail(err)
	}
	cfg := &ssh.ClientConfig{
		User: n.sshUser,
		Auth: []ssh.AuthMethod{
			ssh.Password(pw),
			// Appliances that authenticate through PAM ask for the password
			// as a keyboard-interactive prompt.
			ssh.KeyboardInteractive(n.answerPassword(pw)),
		},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			return n.checkPin(PinSSH, ssh.FingerprintSHA256(key))
		},
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	cc, chans, reqs, err := ssh.NewClientConn(raw, addr, cfg)
	if !stop() {
		raw.Close()
		return fail(ctx.Err())
	}
	if err != nil {
		raw.Close()
		return fail(err)
	}
	_ = raw.SetDeadline(time.Time{})
	c := &sshConn{client: ssh.NewClient(cc, chans, reqs), done: make(chan struct{})}
	go func() {
		_ = c.client.Wait()
		close(c.done)
	}()
	return c, nil
}

// answerPassword answers a keyboard-interactive login: the password, once,
// to prompts that do not echo. A second round of prompts is refused rather
// than answered with the same password: it is how PAM asks for a new
// password when root's has expired, which a person must set.
func (n *Node) answerPassword(pw string) ssh.KeyboardInteractiveChallenge {
	answered := false
	return func(_, _ string, questions []string, echos []bool) ([]string, error) {
		if len(questions) == 0 {
			return nil, nil // an informational message
		}
		if answered {
			return nil, fmt.Errorf("the appliance asks again after the password (%q); if the password has expired, change it in a session of your own", questions[0])
		}
		answers := make([]string, len(questions))
		for i, q := range questions {
			if echos[i] {
				return nil, fmt.Errorf("unexpected login prompt %q", q)
			}
			answers[i] = pw
		}
		answered = true
		return answers, nil
	}
}

// Run runs one command on the node in its own SSH exec session, feeding it
// stdin (which may be nil), and returns what it wrote and its exit status.
// A non-zero exit status is not an error; failing to reach the node, a
// session ending without an exit status, and ctx ending are. Error messages
// name the command's program, never its arguments, which could hold secrets.
func (n *Node) Run(ctx context.Context, cmd string, stdin io.Reader) (stdout, stderr string, exit int, err error) {
	c, err := n.SSH(ctx)
	if err != nil {
		return "", "", -1, err
	}
	prog := programName(cmd)
	sess, err := c.NewSession()
	if err != nil {
		return "", "", -1, fmt.Errorf("run %s on %s: open session: %w", prog, n.pnid, err)
	}
	defer sess.Close()
	var out, errOut bytes.Buffer
	sess.Stdout, sess.Stderr, sess.Stdin = &out, &errOut, stdin
	stop := context.AfterFunc(ctx, func() {
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
	})
	err = sess.Run(cmd)
	if !stop() {
		return out.String(), errOut.String(), -1, fmt.Errorf("run %s on %s: %w", prog, n.pnid, ctx.Err())
	}
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0, nil
	case errors.As(err, &exitErr):
		return out.String(), errOut.String(), exitErr.ExitStatus(), nil
	}
	return out.String(), errOut.String(), -1, fmt.Errorf("run %s on %s: %w", prog, n.pnid, err)
}

// programName is the base name of the first word of a command line.
func programName(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return "empty command"
	}
	p := f[0]
	if i := strings.LastIndexByte(p, '/'); i >= 0 && i < len(p)-1 {
		p = p[i+1:]
	}
	return p
}

// sftpConn is an SFTP client and a channel closed when it has shut down.
type sftpConn struct {
	client *sftp.Client
	done   chan struct{}
}

func (c *sftpConn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// SFTP returns an SFTP client over the node's SSH connection.
func (n *Node) SFTP(ctx context.Context) (*sftp.Client, error) {
	c, err := n.sftp.get(ctx,
		(*sftpConn).alive,
		func(c *sftpConn) { c.client.Close() },
		func(ctx context.Context) (*sftpConn, error) {
			sc, err := n.SSH(ctx)
			if err != nil {
				return nil, err
			}
			client, err := sftp.NewClient(sc)
			if err != nil {
				return nil, fmt.Errorf("connect sftp %s (%s): %w", n.pnid, hostPort(n.address, n.ports.SSH), err)
			}
			c := &sftpConn{client: client, done: make(chan struct{})}
			go func() {
				_ = client.Wait()
				close(c.done)
			}()
			return c, nil
		})
	if err != nil {
		return nil, err
	}
	return c.client, nil
}

// close closes the node's connections.
func (n *Node) close() {
	n.sftp.close(func(c *sftpConn) { c.client.Close() })
	n.ssh.close(func(c *sshConn) { c.client.Close() })
	n.lookup.close(nil)
	n.vim.close(n.logout)
	n.ldap.close(func(c *ldap.Conn) { c.Close() })
	n.http.CloseIdleConnections()
}

// SSOCredentials returns the profile's SSO user (a UPN) and its password,
// for steps that must type them into an appliance tool: on its stdin or at
// its prompt, never in its argv.
func (t *Target) SSOCredentials() (user, password string, err error) {
	pw, err := t.profile.SSO.password(t.profile.dir())
	if err != nil {
		return "", "", err
	}
	return t.profile.SSO.User, pw, nil
}

// Secrets returns every password the profile gives (the SSO password and
// each node's SSH password) that can be read, so that the engine can mask
// them wherever it writes. A password that cannot be read is left out; the
// connection that needs it reports the error.
func (t *Target) Secrets() []string {
	var out []string
	if pw, err := t.profile.SSO.password(t.profile.dir()); err == nil && pw != "" {
		out = append(out, pw)
	}
	for _, n := range t.nodes {
		if pw, err := n.password("ssh"); err == nil && pw != "" {
			out = append(out, pw)
		}
	}
	return out
}
