package appliance

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"

	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/lab/sshd"
)

// VMCA error numbers certool reports, with their descriptions.
const (
	vmcaInvalidTime    = 70002
	vmcaArgumentError  = 70003
	vmcaKeyIOFailure   = 70009
	vmcaCertIOFailure  = 70010
	vmcaNotCACert      = 70011
	vmcaUnknownError   = 70101
	vmcaConnectRefused = 1225
)

var vmcaMessages = map[int]string{
	vmcaInvalidTime:    "Invalid time specified for the Certififcate",
	vmcaArgumentError:  "Invalid arguments found",
	vmcaKeyIOFailure:   "Key I/O failure",
	vmcaCertIOFailure:  "Cert I/O failure",
	vmcaNotCACert:      "Not a CA Cert",
	vmcaUnknownError:   "Certificate Server Unknown Error",
	vmcaConnectRefused: "ERROR_CONNECTION_REFUSED",
}

// certoolFlags are certool's options without a value; certoolValues those
// with one (the config-file keys can be given on the command line too).
var (
	certoolFlags = map[string]bool{
		"genkey": true, "gencert": true, "selfca": true, "rootca": true, "getrootca": true,
		"genCIScert": true, "genselfcacert": true, "viewcert": true,
	}
	certoolValues = map[string]bool{
		"server": true, "srp-upn": true, "srp-pwd": true, "viewerror": true, "config": true,
		"privkey": true, "cert": true, "pubkey": true, "FQDN": true, "outcert": true,
		"outprivkey": true, "predate": true, "csrfile": true, "crl": true, "filter": true,
		"Country": true, "Name": true, "DomainComponent": true, "Organization": true,
		"OrgUnit": true, "State": true, "Locality": true, "IPAddress": true, "Email": true,
		"Hostname": true,
	}
)

const certoolHelp = `certool general command options:
  --help arg                 help <command> for help with each command
                             Commands are :
                             certool --help=init - shows help for all 
                             initialization relevant functions 
                             certool --help=functions - shows help for all 
                             other functions 
                             certool --help=config - shows help for the 
                             parameters of the config file 
  --server arg (=localhost)  The name of the VMware Certficate Server.
  --srp-upn arg              SRP logon UPN authentication identity.
  --srp-pwd arg              SRP logon password.
  --version                  print version string
  --viewerror arg (=0)       Prints out the Error String for the specific 
                             error code.

`

// CertoolArgs is a parsed certool command line.
type CertoolArgs struct {
	// Flags are the options without value given, such as "genkey".
	Flags map[string]bool
	// Values are the options with a value, such as "privkey".
	Values map[string]string
	// Help is set by --help; HelpModule is its value.
	Help       bool
	HelpModule string
}

// ParseCertoolArgs parses certool's arguments (without the program name)
// as boost::program_options does: "--name=value" or "--name value".
// Errors carry boost's messages.
func ParseCertoolArgs(args []string) (CertoolArgs, error) {
	r := CertoolArgs{Flags: map[string]bool{}, Values: map[string]string{}}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" || arg == "--" {
			return r, errors.New("too many positional options have been specified on the command line")
		}
		if !strings.HasPrefix(arg, "--") {
			return r, fmt.Errorf("unrecognised option '%s'", arg)
		}
		name, value, hasValue := strings.Cut(arg[2:], "=")
		switch {
		case name == "help":
			r.Help, r.HelpModule = true, value
		case certoolFlags[name]:
			if hasValue {
				return r, fmt.Errorf("option '--%s' does not take any arguments", name)
			}
			r.Flags[name] = true
		case certoolValues[name]:
			if !hasValue {
				if i+1 >= len(args) || strings.HasPrefix(args[i+1], "--") {
					return r, fmt.Errorf("the required argument for option '--%s' is missing", name)
				}
				i++
				value = args[i]
			}
			if _, dup := r.Values[name]; dup {
				return r, fmt.Errorf("option '--%s' cannot be specified more than once", name)
			}
			r.Values[name] = value
		default:
			return r, fmt.Errorf("unrecognised option '--%s'", name)
		}
	}
	return r, nil
}

// certoolRun is one certool invocation.
type certoolRun struct {
	a    *appliance
	inv  *sshd.Invocation
	args CertoolArgs
}

// certool is /usr/lib/vmware-vmca/bin/certool.
func (a *appliance) certool(_ context.Context, inv *sshd.Invocation) int {
	args, err := ParseCertoolArgs(inv.Args[1:])
	if err != nil {
		fmt.Fprintf(inv.Stderr, "error: %s\n", err)
		return exitCode(vmcaUnknownError)
	}
	if args.Help || len(inv.Args) == 1 {
		io.WriteString(inv.Stdout, certoolHelp)
		return 0
	}
	r := &certoolRun{a: a, inv: inv, args: args}
	code := r.dispatch()
	if code == 0 {
		fmt.Fprintln(inv.Stdout, "Status : Success")
		return 0
	}
	fmt.Fprintln(inv.Stdout, "Status : Failed")
	fmt.Fprintf(inv.Stdout, "Error Code : %d\n", code)
	msg, ok := vmcaMessages[code]
	if !ok {
		msg = "UNKNOWN"
	}
	fmt.Fprintf(inv.Stdout, "Error Message : %s\n", msg)
	return exitCode(code)
}

// dispatch runs the requested functions in certool's order and returns the
// first error number.
func (r *certoolRun) dispatch() int {
	steps := []struct {
		flag string
		fn   func() int
	}{
		{"selfca", r.selfCA},
		{"rootca", r.rootCA},
		{"gencert", r.genCert},
		{"genkey", r.genKey},
		{"viewcert", r.viewCert},
		{"getrootca", r.getRootCA},
		{"genCIScert", r.genCISCert},
		{"genselfcacert", r.genSelfCACert},
	}
	for _, s := range steps {
		if !r.args.Flags[s.flag] {
			continue
		}
		if code := s.fn(); code != 0 {
			return code
		}
	}
	return 0
}

func (r *certoolRun) out(format string, args ...any) { fmt.Fprintf(r.inv.Stdout, format, args...) }

func (r *certoolRun) value(name string) (string, bool) {
	v, ok := r.args.Values[name]
	return v, ok
}

// config reads the --config file (default certool.cfg in the working
// directory) and lays the command line's config keys over it, as boost
// stores the command line first.
func (r *certoolRun) config() (CertoolConfig, int) {
	path, ok := r.value("config")
	if !ok {
		path = "certool.cfg"
	}
	data, err := readFile(r.inv, path)
	if err != nil {
		r.out("Failed to open config file: %s\nExiting ...", path)
		return CertoolConfig{}, vmcaArgumentError
	}
	r.out("Using config file : %s\n", path)
	cfg, err := ParseCertoolConfig(data)
	if err != nil {
		fmt.Fprintf(r.inv.Stderr, "error: %s\n", err)
		return CertoolConfig{}, vmcaUnknownError
	}
	r.overlay(&cfg)
	return cfg, 0
}

// overlay sets the config keys given on the command line.
func (r *certoolRun) overlay(cfg *CertoolConfig) {
	for _, k := range certoolKeys {
		if v, ok := r.value(k); ok {
			cfg.Set(k, v)
		}
	}
}

// vmca returns the VMCA node --server names after checking it serves.
// A root replacement (rootOp) only needs the node and its directory up:
// the lab's vmcad refuses to start while its root is unusable, yet taking
// a new root is how that is repaired (fixsts.sh, certool --rootca).
func (r *certoolRun) vmca(rootOp bool) (*model.Node, int) {
	server, _ := r.value("server")
	var v *model.Node
	switch {
	case server == "" || strings.EqualFold(server, "localhost") || server == "127.0.0.1" ||
		strings.EqualFold(server, r.a.n.PNID) || server == r.a.n.DisplayIP:
		if r.a.n.HasDirectory() {
			v = r.a.n
		}
	default:
		v = r.a.d.Node(server)
	}
	if rootOp {
		if checkRootOp(v) != nil {
			return nil, vmcaConnectRefused
		}
		return v, 0
	}
	if checkVMCA(v) != nil {
		return nil, vmcaConnectRefused
	}
	return v, 0
}

// writeOut writes an output file after consulting fault injection.
func (r *certoolRun) writeOut(path string, data []byte, code int) int {
	if err := r.a.before("write"); err != nil {
		return code
	}
	if err := writeFile(r.inv, path, data, 0o600); err != nil {
		return code
	}
	return 0
}

func (r *certoolRun) genKey() int {
	priv, okPriv := r.value("privkey")
	pub, okPub := r.value("pubkey")
	if !okPriv || !okPub {
		r.out("Error : To generate a key pair we need public and private key files names to write to.Example : certool --genkey --privkey=<filename> --pubkey=<filename>\n")
		return vmcaArgumentError
	}
	key, err := r.a.d.Keys.Next()
	if err != nil {
		return vmcaKeyIOFailure
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return vmcaKeyIOFailure
	}
	pubPEM, err := publicKeyPEM(key)
	if err != nil {
		return vmcaKeyIOFailure
	}
	if code := r.writeOut(priv, pki.EncodeKey(der), vmcaKeyIOFailure); code != 0 {
		return code
	}
	return r.writeOut(pub, pubPEM, vmcaKeyIOFailure)
}

func (r *certoolRun) genCert() int {
	priv, okPriv := r.value("privkey")
	certPath, okCert := r.value("cert")
	if !okPriv || !okCert {
		r.out("Error : To generate a certificate we need access to a private key.Example : certool --gencert --privkey=<filename> --cert=<filename>\n")
		return vmcaArgumentError
	}
	cfg, code := r.config()
	if code == vmcaArgumentError {
		r.out("Unable to read the config file")
	}
	if code != 0 {
		return code
	}
	keyPEM, err := readFile(r.inv, priv)
	if err != nil {
		return vmcaKeyIOFailure
	}
	key, err := parseRSAKey(keyPEM)
	if err != nil {
		return vmcaKeyIOFailure
	}
	req, err := cfg.Request()
	if err != nil {
		return vmcaArgumentError
	}
	req.Usage = usageFor(cfg.Name)
	if _, code := r.vmca(false); code != 0 {
		return code
	}
	c, err := vmcaIssue(r.a.d, req, key)
	if err != nil {
		return vmcaInvalidTime
	}
	return r.writeOut(certPath, pki.EncodeCerts(c.DER, r.a.d.VMCARoot().DER), vmcaCertIOFailure)
}

// usageFor is the certificate profile VMCA applies to a request named
// name: the STS signing profile for "STS", a TLS server and client
// certificate otherwise.
func usageFor(name string) pki.Usage {
	if strings.EqualFold(name, "STS") {
		return pki.UsageSigning
	}
	return pki.UsageServer | pki.UsageClient
}

func (r *certoolRun) genCISCert() int {
	priv, okPriv := r.value("privkey")
	certPath, okCert := r.value("cert")
	name, okName := r.value("Name")
	if !okPriv || !okCert || !okName || name == "" {
		r.out("Error : To generate a certificate we need access to a private key.Example : certool --genCIScert --privkey=<filename> --cert=<filename>\n")
		return vmcaArgumentError
	}
	keyPEM, err := readFile(r.inv, priv)
	if err != nil {
		return vmcaKeyIOFailure
	}
	key, err := parseRSAKey(keyPEM)
	if err != nil {
		return vmcaKeyIOFailure
	}
	req := model.SolutionUserRequest(r.a.n, name, r.a.d.Name)
	for _, k := range []string{"Country", "Organization", "State", "Locality", "Email"} {
		if v, ok := r.value(k); ok {
			switch k {
			case "Country":
				req.Country = v
			case "Organization":
				req.Organization = v
			case "State":
				req.State = v
			case "Locality":
				req.Locality = v
			case "Email":
				req.Email = v
			}
		}
	}
	if h, ok := r.value("FQDN"); ok {
		req.DNSNames = splitList(h)
	} else if h, ok := r.value("Hostname"); ok {
		req.DNSNames = splitList(h)
	}
	if _, code := r.vmca(false); code != 0 {
		return code
	}
	c, err := vmcaIssue(r.a.d, req, key)
	if err != nil {
		return vmcaInvalidTime
	}
	if code := r.writeOut(certPath, pki.EncodeCerts(c.DER, r.a.d.VMCARoot().DER), vmcaCertIOFailure); code != 0 {
		return code
	}
	// certool pushes the certificate to the VECS store of that name and
	// only warns when it cannot (the entry usually exists already).
	v := r.a.n.VECS
	if !hasStore(v, name) {
		if err := r.a.before("create"); err == nil {
			_ = v.CreateStore(name)
		}
	}
	err = r.a.before("create")
	if err == nil {
		err = v.Create(name, model.Entry{Alias: name, Type: model.PrivateKey, Certs: [][]byte{c.DER, r.a.d.VMCARoot().DER}, Key: c.KeyPKCS8})
	}
	if err != nil {
		r.out("Warning : %d, Adding cert to VECS Store Failed.", int(vecsCode(err)))
	}
	return 0
}

func (r *certoolRun) getRootCA() int {
	if _, code := r.vmca(false); code != 0 {
		return code
	}
	ca := r.a.d.VMCARoot()
	WriteCertText(r.inv.Stdout, ca.X509)
	r.out("\n")
	if p, ok := r.value("cert"); ok {
		if code := r.writeOut(p, ca.PEM(), vmcaCertIOFailure); code != 0 {
			return code
		}
		r.out("Certificate written to file : %s\n", p)
	}
	return 0
}

func (r *certoolRun) viewCert() int {
	p, ok := r.value("cert")
	if !ok {
		r.out("Error : To view a cert, you need a path to the certificateExample : certool --viewcert --cert=<filename>\n")
		return vmcaArgumentError
	}
	data, err := readFile(r.inv, p)
	if err != nil {
		return vmcaCertIOFailure
	}
	certs, err := pki.ParseCerts(data)
	if err != nil || len(certs) == 0 {
		return vmcaCertIOFailure
	}
	WriteCertText(r.inv.Stdout, certs[0])
	r.out("\n")
	return 0
}

// rootRequest is the subject of a VMCA root built from a certool.cfg: the
// domain's components when the file gives none.
func (r *certoolRun) rootRequest(cfg CertoolConfig) (pki.Request, int) {
	req, err := cfg.Request()
	if err != nil {
		return req, vmcaArgumentError
	}
	if len(req.DomainComponents) == 0 {
		req.DomainComponents = strings.Split(r.a.d.Name, ".")
	}
	req.DNSNames, req.IPs = nil, nil
	return req, 0
}

func (r *certoolRun) selfCA() int {
	cfg, code := r.config()
	if code != 0 {
		return code
	}
	req, code := r.rootRequest(cfg)
	if code != 0 {
		return code
	}
	if _, code := r.vmca(true); code != 0 {
		return code
	}
	ca, err := newRootCA(r.a.d, req)
	if err != nil {
		return vmcaUnknownError
	}
	if err := installRoot(r.a.d, ca); err != nil {
		return vmcaCertIOFailure
	}
	return 0
}

func (r *certoolRun) rootCA() int {
	certPath, okCert := r.value("cert")
	keyPath, okKey := r.value("privkey")
	if !okCert || !okKey {
		r.out("To upload a Root CA Cert, we need both Cert and Private Key.\n\nExample: certool --rootca --cert=root.cert --privkey=privatekey.pem\n\n")
		return vmcaArgumentError
	}
	certPEM, err := readFile(r.inv, certPath)
	if err != nil {
		return vmcaCertIOFailure
	}
	keyPEM, err := readFile(r.inv, keyPath)
	if err != nil {
		return vmcaKeyIOFailure
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return vmcaNotCACert
	}
	if _, code := r.vmca(true); code != 0 {
		return code
	}
	if err := installRoot(r.a.d, ca); err != nil {
		return vmcaCertIOFailure
	}
	return 0
}

func (r *certoolRun) genSelfCACert() int {
	outCert, okCert := r.value("outcert")
	outKey, okKey := r.value("outprivkey")
	if !okCert || !okKey {
		r.out("Error : No certficate file specified.\n")
		return vmcaArgumentError
	}
	cfg, code := r.config()
	if code != 0 {
		return code
	}
	req, code := r.rootRequest(cfg)
	if code != 0 {
		return code
	}
	ca, err := newRootCA(r.a.d, req)
	if err != nil {
		return vmcaUnknownError
	}
	if code := r.writeOut(outKey, ca.KeyPEM(), vmcaKeyIOFailure); code != 0 {
		return code
	}
	return r.writeOut(outCert, ca.PEM(), vmcaCertIOFailure)
}
