package model

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"runbook/lab/pki"
	"runbook/lab/vmdir"
)

// Log files the services write start failures to.
const (
	LogVpxdSvcs    = "/var/log/vmware/vpxd-svcs/vpxd-svcs.log"
	LogSTS         = "/var/log/vmware/sso/vmware-identity-sts.log"
	LogVmcad       = "/var/log/vmware/vmcad/vmcad.log"
	LogVmdird      = "/var/log/vmware/vmdird/vmdird-syslog.log"
	LogRhttpproxy  = "/var/log/vmware/rhttpproxy/rhttpproxy.log"
	LogEnvoy       = "/var/log/vmware/envoy/envoy.log"
	LogVpxd        = "/var/log/vmware/vpxd/vpxd.log"
	LogVsphereUI   = "/var/log/vmware/vsphere-ui/logs/vsphere_client_virgo.log"
	LogServiceCtrl = "/var/log/vmware/vmon/vmon.log"
)

// Paths of the VMCA root on nodes that run VMCA.
const (
	PathRootCert = "/var/lib/vmware/vmca/root.cer"
	PathRootKey  = "/var/lib/vmware/vmca/privatekey.pem"
)

// ErrUnknownService means no service has the given name on the node.
var ErrUnknownService = errors.New("unknown service")

// StartError is why a service did not start.
type StartError struct {
	// Service is the service that failed to start.
	Service string
	// Reason says why, in the words of the service's log.
	Reason string
}

// Error returns "start <service>: <reason>".
func (e *StartError) Error() string { return "start " + e.Service + ": " + e.Reason }

// check is a start-time dependency: nil when satisfied, else the reason.
type check func(s *Services, now time.Time) (reason, logPath string)

type service struct {
	name     string
	auto     bool // started by StartAll (vMon startup type Automatic)
	requires []string
	checks   []check
	log      string
	running  bool
	lastErr  *StartError
}

// Services are the services of one node, started and stopped as
// service-control does. Start evaluates each service's dependencies at call
// time against the node's VECS, its files, the directory and the clock, so
// repairing a certificate makes the next Start succeed. Services is safe for
// concurrent use; it reads VECS and the directory (which have their own
// locks) but never the Domain.
type Services struct {
	mu       sync.Mutex
	node     *Node
	dir      *vmdir.Directory
	tenantDN string
	now      func() time.Time
	list     []*service
}

// newServices returns the services of node n, all stopped.
func newServices(n *Node, dir *vmdir.Directory, tenantDN string, now func() time.Time) *Services {
	s := &Services{node: n, dir: dir, tenantDN: tenantDN, now: now}
	add := func(name string, auto bool, log string, requires []string, checks ...check) {
		s.list = append(s.list, &service{name: name, auto: auto, log: log, requires: requires, checks: checks})
	}
	dirNode, vc := n.HasDirectory(), n.HasVCenter()
	add("lwsmd", true, "", nil)
	add("vmafdd", true, "", []string{"lwsmd"})
	if dirNode {
		add("vmdird", true, LogVmdird, []string{"vmafdd"})
		add("vmcad", true, LogVmcad, []string{"vmdird"}, checkVMCARoot)
		add("vmdnsd", true, "", []string{"vmdird"})
		add("vmware-stsd", true, LogSTS, []string{"vmdird"}, checkSTS)
		add("vmware-sts-idmd", true, LogSTS, []string{"vmware-stsd"})
		add("vmware-lookupsvc", true, "", []string{"vmdird"})
		add("vmware-cis-license", true, "", []string{"vmafdd"}, checkStore(StoreMachine, StoreMachine))
	}
	add("vmware-rhttpproxy", true, LogRhttpproxy, []string{"vmafdd"}, checkStore(StoreMachineSSL, AliasMachineCert))
	add("vmware-envoy", true, LogEnvoy, []string{"vmafdd"}, checkStore(StoreMachineSSL, AliasMachineCert))
	add("vmonapi", true, "", nil)
	add("applmgmt", true, "", nil)
	if dirNode {
		add("pschealth", true, "", []string{"vmdird"})
	}
	if vc {
		svcsReq := []string{"vmafdd", "vmware-vpostgres"}
		if dirNode {
			svcsReq = append(svcsReq, "vmware-stsd")
		}
		add("vmware-vpostgres", true, "", []string{"vmafdd"})
		add("vmware-vpxd-svcs", true, LogVpxdSvcs, svcsReq, checkSTS)
		add("vmware-vpxd", true, LogVpxd, []string{"vmware-vpxd-svcs", "vmware-vpostgres"},
			checkSTS, checkStore(StoreVpxd, StoreVpxd), checkStore(StoreVpxdExtension, StoreVpxdExtension))
		add("vmware-eam", true, "", []string{"vmware-vpxd"})
		add("vmware-sps", true, "", []string{"vmware-vpxd"}, checkStore(StoreSMS, AliasSMS))
		add("vmware-content-library", true, "", []string{"vmware-vpxd"})
		add("vmware-vapi-endpoint", true, "", []string{"vmware-vpxd-svcs"})
		add("vmware-perfcharts", true, "", []string{"vmware-vpxd"})
		add("vmware-updatemgr", true, "", []string{"vmware-vpxd"})
		add("vsphere-ui", true, LogVsphereUI, []string{"vmware-vpxd-svcs"},
			checkSTS, checkStore(StoreWebClient, StoreWebClient))
		for _, m := range []string{"vmcam", "vmware-imagebuilder", "vmware-mbcs", "vmware-netdumper",
			"vmware-rbd-watchdog", "vmware-vcha", "vsan-dps"} {
			add(m, false, "", nil)
		}
	}
	return s
}

func (s *Services) find(name string) (*service, error) {
	for _, svc := range s.list {
		if svc.name == name {
			return svc, nil
		}
	}
	return nil, fmt.Errorf("service %s on %s: %w", name, s.node.PNID, ErrUnknownService)
}

// Names returns every service name in start order.
func (s *Services) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.list))
	for i, svc := range s.list {
		out[i] = svc.name
	}
	return out
}

// Status returns the running and the stopped services, each in start order.
func (s *Services) Status() (running, stopped []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range s.list {
		if svc.running {
			running = append(running, svc.name)
		} else {
			stopped = append(stopped, svc.name)
		}
	}
	return running, stopped
}

// Running reports whether the service runs.
func (s *Services) Running(name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, err := s.find(name)
	if err != nil {
		return false, err
	}
	return svc.running, nil
}

// Automatic reports whether StartAll starts the service (vMon startup type
// Automatic); the others stay stopped until started by name.
func (s *Services) Automatic(name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, err := s.find(name)
	if err != nil {
		return false, err
	}
	return svc.auto, nil
}

// Stop stops one service; stopping a stopped service is not an error.
func (s *Services) Stop(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, err := s.find(name)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	svc.running = false
	return nil
}

// StopAll stops every service.
func (s *Services) StopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range s.list {
		svc.running = false
	}
}

// Start starts a service, first starting the services it requires. It
// returns a *StartError naming the first service that failed and why; the
// reason is also appended to that service's log file.
func (s *Services) Start(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, err := s.find(name)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return s.start(svc, map[string]bool{})
}

// StartAll starts every automatic service in order and stops at the first
// failure, returning its *StartError.
func (s *Services) StartAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range s.list {
		if !svc.auto {
			continue
		}
		if err := s.start(svc, map[string]bool{}); err != nil {
			return err
		}
	}
	return nil
}

// boot starts every automatic service that can start, as an appliance does
// when it powers on, leaving the others stopped with their error recorded.
func (s *Services) boot() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range s.list {
		if svc.auto {
			_ = s.start(svc, map[string]bool{})
		}
	}
}

// Errors returns the start errors of the services that are stopped because
// their last start failed, in start order.
func (s *Services) Errors() []*StartError {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*StartError
	for _, svc := range s.list {
		if !svc.running && svc.lastErr != nil {
			out = append(out, svc.lastErr)
		}
	}
	return out
}

func (s *Services) start(svc *service, visiting map[string]bool) error {
	if svc.running {
		return nil
	}
	if visiting[svc.name] {
		return &StartError{Service: svc.name, Reason: "dependency cycle"}
	}
	visiting[svc.name] = true
	for _, r := range svc.requires {
		dep, err := s.find(r)
		if err != nil {
			continue // not on this node type
		}
		if err := s.start(dep, visiting); err != nil {
			var se *StartError
			if errors.As(err, &se) && se.Service != svc.name {
				svc.lastErr = &StartError{Service: svc.name, Reason: "dependency " + dep.name + " failed to start"}
			}
			return err
		}
	}
	now := s.now()
	for _, c := range svc.checks {
		reason, logPath := c(s, now)
		if reason == "" {
			continue
		}
		se := &StartError{Service: svc.name, Reason: reason}
		svc.lastErr = se
		if logPath == "" {
			logPath = svc.log
		}
		if logPath != "" {
			line := fmt.Sprintf("%s error %s[%s] %s\n", now.UTC().Format("2006-01-02T15:04:05.000Z"), svc.name, s.node.PNID, reason)
			// A log that cannot be written does not change the outcome.
			_ = s.node.AppendFile(logPath, []byte(line))
		}
		return se
	}
	svc.running = true
	svc.lastErr = nil
	return nil
}

// javaDate formats t as java.util.Date.toString does, as STS logs it.
func javaDate(t time.Time) string { return t.UTC().Format("Mon Jan 02 15:04:05 MST 2006") }

// checkSTS fails while the active STS signing certificate (highest
// TenantCredential) is outside its validity period, or its chain has
// expired, with the InvalidTimeRange message of KB 76719.
func checkSTS(s *Services, now time.Time) (string, string) {
	cred, err := activeSTS(s.dir, s.tenantDN)
	if err != nil {
		return "cannot read the STS signing certificate: " + err.Error(), LogVpxdSvcs
	}
	leaf := cred.Leaf()
	if leaf == nil {
		return "the STS signing credential " + cred.DN + " has no certificate", LogVpxdSvcs
	}
	if !pki.ValidAt(leaf, now) {
		return fmt.Sprintf("com.vmware.vim.sso.client.exception.InvalidTimeRangeException: InvalidTimeRange: "+
			"Signing certificate is not valid at %s, cert validity: TimePeriod [startTime=%s, endTime=%s]",
			javaDate(now), javaDate(leaf.NotBefore), javaDate(leaf.NotAfter)), LogVpxdSvcs
	}
	if len(cred.Key) > 0 {
		if c, err := pki.ParseCert(leaf.Raw, cred.Key); err != nil || c.Key == nil {
			return "the STS signing key does not match its certificate", LogVpxdSvcs
		}
	}
	for _, ca := range cred.Certs[1:] {
		if !pki.ValidAt(ca, now) {
			return fmt.Sprintf("STS signing certificate chain is not valid: CA certificate %s expired on %s",
				pki.SubjectDN(ca), javaDate(ca.NotAfter)), LogVpxdSvcs
		}
	}
	return "", ""
}

// checkStore returns a check that fails while the entry's certificate is
// missing, outside its validity period, does not match its key, or chains
// to an issuer that is missing from TRUSTED_ROOTS or expired.
func checkStore(store, alias string) check {
	return func(s *Services, now time.Time) (string, string) {
		e, err := s.node.VECS.Get(store, alias)
		if err != nil {
			return fmt.Sprintf("cannot read certificate %s/%s: %v", store, alias, err), ""
		}
		c, err := pki.ParseCert(e.Cert(), e.Key)
		if err != nil {
			return fmt.Sprintf("certificate %s/%s is unusable: %v", store, alias, err), ""
		}
		if c.Key == nil {
			return fmt.Sprintf("certificate %s/%s has no private key", store, alias), ""
		}
		if reason := validity("certificate "+store+"/"+alias, c.X509, now); reason != "" {
			return reason, ""
		}
		return s.chain(c.X509, now), ""
	}
}

func validity(what string, c *x509.Certificate, now time.Time) string {
	switch {
	case now.After(c.NotAfter):
		return fmt.Sprintf("%s (%s) expired on %s", what, pki.SubjectDN(c), c.NotAfter.UTC().Format("2006-01-02 15:04:05 GMT"))
	case now.Before(c.NotBefore):
		return fmt.Sprintf("%s (%s) is not valid before %s", what, pki.SubjectDN(c), c.NotBefore.UTC().Format("2006-01-02 15:04:05 GMT"))
	}
	return ""
}

// chain walks from c up to a self-signed certificate through TRUSTED_ROOTS.
func (s *Services) chain(c *x509.Certificate, now time.Time) string {
	entries, err := s.node.VECS.Entries(StoreTrustedRoots)
	if err != nil {
		return "cannot read TRUSTED_ROOTS: " + err.Error()
	}
	var roots []*x509.Certificate
	for _, e := range entries {
		if r, err := x509.ParseCertificate(e.Cert()); err == nil {
			roots = append(roots, r)
		}
	}
	for depth := 0; depth < 8; depth++ {
		if c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil &&
			string(c.RawIssuer) == string(c.RawSubject) {
			return "" // self-signed: the end of the chain
		}
		var issuer *x509.Certificate
		for _, r := range roots {
			if string(r.RawSubject) == string(c.RawIssuer) && c.CheckSignatureFrom(r) == nil {
				issuer = r
				break
			}
		}
		if issuer == nil {
			return fmt.Sprintf("issuer %s of %s is not in TRUSTED_ROOTS", pki.IssuerDN(c), pki.SubjectDN(c))
		}
		if reason := validity("CA certificate", issuer, now); reason != "" {
			return reason
		}
		c = issuer
	}
	return "certificate chain too long"
}

// checkVMCARoot fails while the VMCA root on disk is unreadable, expired or
// does not match its key.
func checkVMCARoot(s *Services, now time.Time) (string, string) {
	certPEM, err := s.node.ReadFile(PathRootCert)
	if err != nil {
		return "cannot read the VMCA root certificate: " + err.Error(), ""
	}
	keyPEM, err := s.node.ReadFile(PathRootKey)
	if err != nil {
		return "cannot read the VMCA root key: " + err.Error(), ""
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return "the VMCA root is unusable: " + strings.TrimPrefix(err.Error(), "load ca: "), ""
	}
	return validity("VMCA root certificate", ca.X509, now), ""
}
