package appliance

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"

	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/lab/sshd"
	"runbook/lab/vmdir"
)

// dir-cli error numbers (vmdir and dir-cli's local ones) and the messages
// dir-cli's main prints for them.
const (
	errVmdirServerDown        = 9127
	errVmdirInvalidCredential = 9234
	errLocalOptionUnknown     = 100001
	errLocalOptionInvalid     = 100002
	errLocalPasswordEmpty     = 100005
)

var dirCLIMessages = map[int]string{
	errLocalOptionUnknown:     "An unknown option was present on the command line.",
	errLocalOptionInvalid:     "The options present on the command line are not valid.",
	errLocalPasswordEmpty:     "Invalid password; password cannot be empty.",
	errVmdirServerDown:        "Could not connect to VMware Directory Service via LDAP.\nVerify VMware Directory Service is running on the appropriate system and is reachable from this host.",
	errVmdirInvalidCredential: "Authentication to VMware Directory Service failed.\nVerify the username and password.",
}

const dirCLIUsage = `Usage: dir-cli { arguments }

Arguments:

	service create --name <name>
	               --cert <path to cert file>
	             [ --ssogroups <','separated group names>]
	             [ --wstrustrole <ActAsUser>             ]
	             [ --ssoadminrole <Administrator/User>   ]
	             [ --login    <admin user id>            ]
	             [ --password <password>                 ]
	             [ --multitenant <TRUE|FALSE>            ]
	service list
	             [ --login    <admin user id>            ]
	             [ --password <password>                 ]
	service delete --name <name>
	             [ --login    <admin user id>            ]
	             [ --password <password>                 ]
	service update --name <name>
	               --cert <path to cert file>
	             [ --login    <admin user id>            ]
	             [ --password <password>                 ]
	             [ --multitenant <TRUE|FALSE>            ]
	trustedcert publish --cert <path to cert file>
	             [ --crl <path to crl file>              ]
	             [ --login <admin user id>               ]
	             [ --password <password>                 ]
	             [ --chain                               ]
	trustedcert list
	             [ --login <admin user id>               ]
	             [ --password <password>                 ]
	state get
	             [ --server-name <server name>           ]
	             [ --login <admin user id>               ]
	             [ --password <password>                 ]
	domain-functional-level get
	             [ --login <admin user id>               ]
	             [ --password <password>                 ]
	help
`

// dirCLIFail prints dir-cli's closing error line and returns its status.
func dirCLIFail(inv *sshd.Invocation, code int) int {
	if msg, ok := dirCLIMessages[code]; ok {
		fmt.Fprintf(inv.Stderr, "dir-cli failed, error= %s %d\n", msg, code)
	} else {
		fmt.Fprintf(inv.Stderr, "dir-cli failed. Error %d: %s \n", code, vmafdErrorString(code))
	}
	if code == errLocalOptionUnknown || code == errLocalOptionInvalid || code == errInvalidParameter {
		io.WriteString(inv.Stdout, dirCLIUsage)
	}
	return exitCode(code)
}

// dirRequest is a parsed dir-cli command line.
type dirRequest struct {
	object, verb           string
	name, cert, login      string
	password               *string
	serverName, domainName string
}

func parseDirArgs(args []string) (dirRequest, int) {
	var r dirRequest
	if len(args) == 0 {
		return r, errLocalOptionInvalid
	}
	r.object = strings.ToLower(args[0])
	if r.object == "help" {
		return r, 0
	}
	if len(args) < 2 {
		return r, errInvalidParameter
	}
	r.verb = strings.ToLower(args[1])
	var pw string
	opts := map[string]*string{"--login": &r.login, "--password": &pw}
	var multitenant string
	switch r.object + " " + r.verb {
	case "service list", "trustedcert list", "domain-functional-level get":
	case "service update":
		opts["--name"], opts["--cert"], opts["--multitenant"] = &r.name, &r.cert, &multitenant
	case "state get":
		opts["--server-name"], opts["--domain-name"] = &r.serverName, &r.domainName
	default:
		switch r.object {
		case "service", "trustedcert", "state", "domain-functional-level", "user", "group",
			"ssogroup", "password", "computer", "nodes", "tenant", "orgunit", "trust":
			return r, errInvalidParameter
		}
		return r, errLocalOptionUnknown
	}
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		key := strings.ToLower(rest[i])
		p, ok := opts[key]
		if !ok {
			return r, errInvalidParameter
		}
		if i+1 < len(rest) {
			*p = rest[i+1]
			i++
			if key == "--password" {
				r.password = &pw
			}
		}
	}
	return r, 0
}

// dirCLI is /usr/lib/vmware-vmafd/bin/dir-cli.
func (a *appliance) dirCLI(_ context.Context, inv *sshd.Invocation) int {
	r, code := parseDirArgs(inv.Args[1:])
	if code != 0 {
		return dirCLIFail(inv, code)
	}
	if r.object == "help" {
		io.WriteString(inv.Stdout, dirCLIUsage)
		return 0
	}
	if r.object+" "+r.verb == "service update" && (r.name == "" || r.cert == "") {
		return dirCLIFail(inv, errInvalidParameter)
	}
	user, domain := a.parsePrincipal(r.login)
	pw, code := a.readPassword(inv, r.password, fmt.Sprintf("Enter password for %s@%s: ", user, domain))
	if code != 0 {
		return dirCLIFail(inv, code)
	}
	if code := a.connectDir(r.serverName, user+"@"+domain, pw); code != 0 {
		return dirCLIFail(inv, code)
	}
	switch r.object + " " + r.verb {
	case "service list":
		es, err := a.d.Dir.Search(a.d.ServicePrincipalsDN(), vmdir.ScopeOne, "(objectClass=vmwServicePrincipal)", []string{"cn"})
		if err != nil {
			return dirCLIFail(inv, errObjectNotFound)
		}
		for i, e := range es {
			fmt.Fprintf(inv.Stdout, "%d. %s\n", i+1, e.First("cn"))
		}
		return 0
	case "trustedcert list":
		es, err := a.d.Dir.Search(a.d.CAsDN(), vmdir.ScopeOne, "(objectClass=vmwCertificationAuthority)", nil)
		if err != nil || len(es) == 0 {
			return dirCLIFail(inv, errInvalidParameter)
		}
		fmt.Fprintf(inv.Stdout, "Number of certificates:\t%d\n", len(es))
		for i, e := range es {
			crl := "no"
			if len(e.Values("certificateRevocationList")) > 0 {
				crl = "yes"
			}
			fmt.Fprintf(inv.Stdout, "#%d:\n", i+1)
			fmt.Fprintf(inv.Stdout, "CN(id):\t\t%s\n", e.First("cn"))
			fmt.Fprintf(inv.Stdout, "Subject DN:\t%s\n", e.First("cACertificateDN"))
			fmt.Fprintf(inv.Stdout, "CRL present:\t%s\n", crl)
		}
		return 0
	case "state get":
		fmt.Fprintf(inv.Stdout, "Directory Server State: %s (%d)\n", "Normal", 3)
		return 0
	case "domain-functional-level get":
		fmt.Fprintf(inv.Stdout, "Domain Functional Level: %d\n", 4)
		return 0
	case "service update":
		data, err := readFile(inv, r.cert)
		if err != nil {
			return dirCLIFail(inv, errFileNotFound)
		}
		certs, err := pki.ParseCerts(data)
		if err != nil || len(certs) == 0 {
			return dirCLIFail(inv, errInvalidData)
		}
		if err := updateServicePrincipal(a.d, r.name, certs[0]); err != nil {
			var other sameCertError
			if errors.As(err, &other) {
				fmt.Fprintf(inv.Stdout, "Error: The same certificate cannot be used by multiple services [%s].\n", string(other))
				return dirCLIFail(inv, errInvalidData)
			}
			if errors.Is(err, model.ErrInjectedWrite) || errors.Is(err, model.ErrDropped) {
				return dirCLIFail(inv, errWriteFault)
			}
			return dirCLIFail(inv, errObjectNotFound)
		}
		fmt.Fprintf(inv.Stdout, "Service [%s] updated successfully\n", r.name)
		return 0
	}
	return dirCLIFail(inv, errLocalOptionUnknown)
}

// parsePrincipal splits a dir-cli --login into user and domain; the
// default login is administrator of the local domain.
func (a *appliance) parsePrincipal(login string) (user, domain string) {
	if login == "" {
		login = "administrator"
	}
	if u, dom, ok := strings.Cut(login, "@"); ok {
		return u, dom
	}
	return login, a.d.Name
}

// readPassword returns the password given on the command line, or prompts
// for it: without echo on a terminal, else one line of stdin (the prompt
// still goes to stdout, as the real tools print it). An empty password is
// refused.
func (a *appliance) readPassword(inv *sshd.Invocation, given *string, prompt string) (string, int) {
	if given != nil {
		if *given == "" {
			return "", errLocalPasswordEmpty
		}
		return *given, 0
	}
	pw, err := promptPassword(inv, prompt)
	if err != nil || pw == "" {
		return "", errLocalPasswordEmpty
	}
	return pw, 0
}

// promptPassword writes prompt and reads a password without echo from the
// terminal, or a line from stdin without a terminal.
func promptPassword(inv *sshd.Invocation, prompt string) (string, error) {
	if inv.TTY != nil {
		return inv.TTY.ReadPassword(prompt)
	}
	io.WriteString(inv.Stdout, prompt)
	line, err := readLine(inv.Stdin)
	io.WriteString(inv.Stdout, "\n")
	return line, err
}

// readLine reads one line from r byte by byte (so that nothing after the
// line is consumed), without its line ending.
func readLine(r io.Reader) (string, error) {
	var b bytes.Buffer
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return strings.TrimSuffix(b.String(), "\r"), nil
			}
			b.WriteByte(buf[0])
			continue
		}
		if err != nil {
			if b.Len() > 0 && errors.Is(err, io.EOF) {
				return strings.TrimSuffix(b.String(), "\r"), nil
			}
			return b.String(), err
		}
	}
}

// connectDir checks that the directory dir-cli talks to is up and that upn
// and pw bind to it. server is a --server-name, "" for the node's DC.
func (a *appliance) connectDir(server, upn, pw string) int {
	dc := a.d.Node(a.d.DCName(a.n))
	if server != "" && !strings.EqualFold(server, "localhost") {
		dc = a.d.Node(server)
	} else if server != "" {
		dc = a.n
	}
	if dc == nil || !dc.HasDirectory() || !dc.Online() {
		return errVmdirServerDown
	}
	if ok, err := dc.Services.Running("vmdird"); err != nil || !ok {
		return errVmdirServerDown
	}
	if err := a.d.Dir.Bind(upn, pw); err != nil {
		return errVmdirInvalidCredential
	}
	return 0
}

// sameCertError names the service principal that already holds a
// certificate.
type sameCertError string

func (e sameCertError) Error() string {
	return "the same certificate cannot be used by multiple services " + string(e)
}

// updateServicePrincipal replaces the certificate of the service principal
// cn=<name>,cn=ServicePrincipals (such as "vpxd-<machineID>") and its
// vmwSTSSubjectDN when the subject changed, as `dir-cli service update`
// does. A certificate another service principal already holds is refused.
func updateServicePrincipal(d *model.Domain, name string, cert *x509.Certificate) error {
	es, err := d.Dir.Search(d.ServicePrincipalsDN(), vmdir.ScopeOne, "(objectClass=vmwServicePrincipal)", nil)
	if err != nil {
		return fmt.Errorf("update service %s: %w", name, err)
	}
	var target *vmdir.Entry
	for _, e := range es {
		if strings.EqualFold(e.First("cn"), name) {
			target = e
			continue
		}
		for _, v := range e.Values("userCertificate") {
			if bytes.Equal(v, cert.Raw) {
				return fmt.Errorf("update service %s: %w", name, sameCertError(e.First("cn")))
			}
		}
	}
	if target == nil {
		return fmt.Errorf("update service %s: %w", name, &vmdir.Error{Code: vmdir.CodeNoSuchObject, Message: "no such service"})
	}
	if err := d.Faults.Before(model.ProtoSSH, "modify"); err != nil {
		return fmt.Errorf("update service %s: %w", name, err)
	}
	changes := []vmdir.Change{{Op: vmdir.ModReplace, Attr: vmdir.Attr{Name: "userCertificate", Values: [][]byte{cert.Raw}}}}
	if subject := pki.SubjectDN(cert); !strings.EqualFold(subject, target.First("vmwSTSSubjectDN")) {
		changes = append([]vmdir.Change{{Op: vmdir.ModReplace, Attr: vmdir.StrAttr("vmwSTSSubjectDN", subject)}}, changes...)
	}
	if err := d.Dir.Modify(target.DN, changes); err != nil {
		return fmt.Errorf("update service %s: %w", name, err)
	}
	return nil
}
