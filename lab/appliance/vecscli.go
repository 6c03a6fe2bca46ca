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

// Win32 error numbers vmafd tools report, with the names their error
// strings carry.
const (
	errFileNotFound     = 2
	errInvalidData      = 13
	errWriteFault       = 29
	errInvalidParameter = 87
	errAlreadyExists    = 183
	errObjectNotFound   = 4312
	errInvalidState     = 5023
)

var win32Names = map[int]string{
	errFileNotFound:     "ERROR_FILE_NOT_FOUND",
	errInvalidData:      "ERROR_INVALID_DATA",
	errWriteFault:       "ERROR_WRITE_FAULT",
	errInvalidParameter: "ERROR_INVALID_PARAMETER",
	errAlreadyExists:    "ERROR_ALREADY_EXISTS",
	errObjectNotFound:   "ERROR_OBJECT_NOT_FOUND",
	errInvalidState:     "ERROR_INVALID_STATE",
}

// vmafdErrorString is VmAfdGetErrorString's text for a Win32 error.
func vmafdErrorString(code int) string {
	return fmt.Sprintf("Operation failed with error %s (%d)", win32Names[code], code)
}

// vecsError is a failed vecs-cli request: its Win32 error number.
type vecsError int

func (e vecsError) Error() string { return vmafdErrorString(int(e)) }

// vecsCode maps a model error onto the error number vecs-cli reports.
func vecsCode(err error) vecsError {
	var ve vecsError
	switch {
	case errors.As(err, &ve):
		return ve
	case errors.Is(err, model.ErrNoStore), errors.Is(err, model.ErrNoEntry):
		return errObjectNotFound
	case errors.Is(err, model.ErrStoreExists), errors.Is(err, model.ErrEntryExists):
		return errAlreadyExists
	case errors.Is(err, model.ErrInjectedWrite), errors.Is(err, model.ErrDropped):
		return errWriteFault
	}
	return errInvalidParameter
}

const vecsUsage = `Usage: vecs-cli { arguments }

Arguments:

	store create --name <name> 
	            [--server <server-name>]
	            [--upn <user-name>]
	store list
	            [--server <server-name>]
	            [--upn <user-name>]
	store delete --name <name> 
	            [--server <server-name>]
	            [--upn <user-name>]
	            [-y]
	store permission --name <name>
	                 --user <username>
	                 --grant|--revoke  read|write
	store get-permissions --name <name>
	            [--server <server-name>]
	            [--upn <user-name>]
	entry create --store <store-name>
	             --alias <alias>
	             --cert <file-path>
	            [--key  <file-path>]
	            [--password  <password>]
	            [--text]
	            [--server <server-name>]
	            [--upn <user-name>]
	entry list   --store <store-name>
	entry getcert --store <store-name>
	              --alias <alias>
	            [--output <output-file-path>]
	            [--text]
	            [--server <server-name>]
	            [--upn <user-name>]
	entry getkey --store <store-name>
	             --alias <alias>
	            [--password  <password>]
	            [--output <output-file-path>]
	            [--text]
	            [--server <server-name>]
	            [--upn <user-name>]
	entry delete --store <store-name> --alias <alias>
	            [--server <server-name>]
	            [--upn <user-name>]
	            [-y]
	force-refresh
	            [--server <server-name>]
	            [--upn <user-name>]
	help
`

// VecsRequest is a parsed vecs-cli command line.
type VecsRequest struct {
	// Object is "store", "entry", "force-refresh" or "help".
	Object string
	// Verb is the operation: list, create, delete, getcert, getkey.
	Verb string
	// Name is the --name of a store request.
	Name string
	// Store, Alias, Cert, Key and Output are the entry options.
	Store, Alias, Cert, Key, Output string
	// Text, Aliases and Yes are the --text, --aliases and -y flags.
	Text, Aliases, Yes bool
	// Server and UPN select a remote VECS (not supported by the lab).
	Server, UPN string
}

// ErrUsage means a command line does not fit the tool's syntax; the tool
// prints its usage.
var ErrUsage = errors.New("invalid command line")

// ParseVecsArgs parses vecs-cli's arguments (argv without the program
// name) as vecs-cli does: an object, a verb, then options each followed by
// its value; an unknown or misplaced token is ErrUsage.
func ParseVecsArgs(args []string) (VecsRequest, error) {
	var r VecsRequest
	if len(args) == 0 {
		return r, ErrUsage
	}
	r.Object = args[0]
	switch r.Object {
	case "help":
		return r, nil
	case "force-refresh":
		return r, parseOpts(args[1:], map[string]*string{"--server": &r.Server, "--upn": &r.UPN}, nil)
	case "store", "entry":
	default:
		return r, ErrUsage
	}
	if len(args) < 2 {
		return r, ErrUsage
	}
	r.Verb = args[1]
	rest := args[2:]
	remote := map[string]*string{"--server": &r.Server, "--upn": &r.UPN}
	with := func(extra map[string]*string) map[string]*string {
		for k, v := range remote {
			extra[k] = v
		}
		return extra
	}
	switch r.Object + " " + r.Verb {
	case "store create":
		return r, parseOpts(rest, with(map[string]*string{"--name": &r.Name}), nil)
	case "store list":
		return r, parseOpts(rest, with(map[string]*string{}), nil)
	case "store delete":
		return r, parseOpts(rest, with(map[string]*string{"--name": &r.Name}), map[string]*bool{"-y": &r.Yes})
	case "entry create":
		var password string
		return r, parseOpts(rest, with(map[string]*string{"--store": &r.Store, "--alias": &r.Alias,
			"--cert": &r.Cert, "--key": &r.Key, "--password": &password}), nil)
	case "entry list":
		return r, parseOpts(rest, with(map[string]*string{"--store": &r.Store}),
			map[string]*bool{"--text": &r.Text, "--aliases": &r.Aliases})
	case "entry getcert":
		var password string
		return r, parseOpts(rest, with(map[string]*string{"--store": &r.Store, "--alias": &r.Alias,
			"--output": &r.Output, "--password": &password}), map[string]*bool{"--text": &r.Text})
	case "entry getkey":
		var password string
		return r, parseOpts(rest, with(map[string]*string{"--store": &r.Store, "--alias": &r.Alias,
			"--output": &r.Output, "--password": &password}), map[string]*bool{"--text": &r.Text})
	case "entry delete":
		return r, parseOpts(rest, with(map[string]*string{"--store": &r.Store, "--alias": &r.Alias}),
			map[string]*bool{"-y": &r.Yes})
	}
	return r, ErrUsage
}

// parseOpts matches "--opt value" pairs and boolean flags exactly, as the
// vmafd tools' argument loops do. A trailing option without its value is
// ignored, as theirs is.
func parseOpts(args []string, values map[string]*string, flags map[string]*bool) error {
	for i := 0; i < len(args); i++ {
		if p, ok := values[args[i]]; ok {
			if i+1 < len(args) {
				*p = args[i+1]
				i++
			}
			continue
		}
		if p, ok := flags[args[i]]; ok {
			*p = true
			continue
		}
		return ErrUsage
	}
	return nil
}

// vecsCLI is /usr/lib/vmware-vmafd/bin/vecs-cli.
func (a *appliance) vecsCLI(_ context.Context, inv *sshd.Invocation) int {
	r, err := ParseVecsArgs(inv.Args[1:])
	if err != nil {
		io.WriteString(inv.Stdout, vecsUsage)
		return vecsFail(inv, errInvalidParameter)
	}
	if r.Object == "help" {
		io.WriteString(inv.Stdout, vecsUsage)
		return 0
	}
	if (r.Server == "") != (r.UPN == "") {
		fmt.Fprintf(inv.Stderr, "Error: You have to provide both server and upn \n\n")
		return vecsFail(inv, errInvalidState)
	}
	if r.Server != "" {
		// Remote VECS needs the Lotus password and an RPC connection the
		// lab does not model.
		fmt.Fprintf(inv.Stderr, "Error: Failed to open a connection to the server [%s]\n", r.Server)
		return vecsFail(inv, errInvalidState)
	}
	v := a.n.VECS
	if r.Object == "force-refresh" {
		// TRUSTED_ROOTS already mirrors vmdir: installRoot writes both.
		return 0
	}
	switch r.Object + " " + r.Verb {
	case "store list":
		names := v.StoreNames()
		if len(names) == 0 {
			fmt.Fprintln(inv.Stderr, "No stores found")
		}
		for _, s := range names {
			fmt.Fprintln(inv.Stdout, s)
		}
		return 0
	case "store create":
		if r.Name == "" {
			fmt.Fprintf(inv.Stderr, "Error : An invalid store name [%s] was specified \n", "(null)")
			return vecsFail(inv, errInvalidParameter)
		}
		if err := a.before("create"); err != nil {
			return vecsFail(inv, vecsCode(err))
		}
		if err := v.CreateStore(r.Name); err != nil {
			return vecsFail(inv, vecsCode(err))
		}
		fmt.Fprintf(inv.Stdout, "Successfully created store [%s]\n", r.Name)
		return 0
	case "store delete":
		if !r.Yes && !confirm(inv, fmt.Sprintf("Warning: This operation will delete store [%s]\nDo you wish to continue? Y/N [N] \n", r.Name)) {
			return 0
		}
		if r.Name == "" {
			fmt.Fprintf(inv.Stderr, "Error : An invalid store name [%s] was specified \n", "(null)")
			return vecsFail(inv, errInvalidParameter)
		}
		if err := a.before("delete"); err != nil {
			return vecsFail(inv, vecsCode(err))
		}
		if err := v.DeleteStore(r.Name); err != nil {
			if errors.Is(err, model.ErrNoStore) {
				fmt.Fprintf(inv.Stderr, "Error : Store [%s] does not exist\n", r.Name)
			}
			return vecsFail(inv, vecsCode(err))
		}
		fmt.Fprintf(inv.Stdout, "Successfully deleted store [%s]\n", r.Name)
		return 0
	case "entry list":
		return a.vecsList(inv, r)
	case "entry getcert":
		return a.vecsGetCert(inv, r)
	case "entry getkey":
		return a.vecsGetKey(inv, r)
	case "entry create":
		return a.vecsCreate(inv, r)
	case "entry delete":
		if r.Store == "" || r.Alias == "" {
			fmt.Fprintf(inv.Stderr, "Error : An invalid store name [%s] was specified\n ", nullable(r.Store))
			return vecsFail(inv, errInvalidParameter)
		}
		if !r.Yes && !confirm(inv, fmt.Sprintf("Warning: This operation will delete entry [%s] from store [%s]\nDo you wish to continue? Y/N [N] \n", r.Alias, r.Store)) {
			return 0
		}
		if !hasStore(v, r.Store) {
			fmt.Fprintln(inv.Stderr, "Error: Failed to open the store")
			return vecsFail(inv, errObjectNotFound)
		}
		if err := a.before("delete"); err != nil {
			return vecsFail(inv, vecsCode(err))
		}
		if err := v.Delete(r.Store, r.Alias); err != nil {
			return vecsFail(inv, vecsCode(err))
		}
		fmt.Fprintf(inv.Stdout, "Deleted entry with alias [%s] in store [%s] successfully\n ", r.Alias, r.Store)
		return 0
	}
	io.WriteString(inv.Stdout, vecsUsage)
	return vecsFail(inv, errInvalidParameter)
}

// vecsFail prints vecs-cli's closing error line and returns its status.
func vecsFail(inv *sshd.Invocation, code vecsError) int {
	fmt.Fprintf(inv.Stderr, "vecs-cli failed. Error %d: %s \n", int(code), vmafdErrorString(int(code)))
	return exitCode(int(code))
}

func nullable(s string) string {
	if s == "" {
		return "(null)"
	}
	return s
}

func hasStore(v *model.VECS, name string) bool {
	for _, s := range v.StoreNames() {
		if s == name {
			return true
		}
	}
	return false
}

// confirm prints question and reads one answer character, as scanf("%c")
// does; only y or Y confirms.
func confirm(inv *sshd.Invocation, question string) bool {
	io.WriteString(inv.Stdout, question)
	var line string
	if inv.TTY != nil {
		l, err := inv.TTY.ReadLine("")
		if err != nil {
			return false
		}
		line = l
	} else {
		buf := make([]byte, 1)
		if n, _ := inv.Stdin.Read(buf); n == 1 {
			line = string(buf)
		}
	}
	return strings.HasPrefix(line, "y") || strings.HasPrefix(line, "Y")
}

// entryCertText is the certificate text VECS hands out for an entry: the
// PEM chain of a certificate entry, the PEM CRL of a CRL entry, nothing
// for a secret.
func entryCertText(e model.Entry) string {
	switch {
	case len(e.Certs) > 0:
		return pemChain(e.Certs...)
	case len(e.CRL) > 0:
		return strings.TrimSuffix(string(pki.EncodeCRL(e.CRL)), "\n")
	}
	return ""
}

// writeEntryText writes an entry's certificate (or CRL) as OpenSSL text.
func writeEntryText(w io.Writer, e model.Entry) error {
	switch {
	case len(e.Certs) > 0:
		c, err := x509.ParseCertificate(e.Certs[0])
		if err != nil {
			return fmt.Errorf("parse certificate: %w", err)
		}
		WriteCertText(w, c)
	case len(e.CRL) > 0:
		crl, err := x509.ParseRevocationList(e.CRL)
		if err != nil {
			return fmt.Errorf("parse crl: %w", err)
		}
		WriteCRLText(w, crl)
	}
	return nil
}

func (a *appliance) vecsList(inv *sshd.Invocation, r VecsRequest) int {
	if r.Store == "" {
		fmt.Fprintf(inv.Stderr, "Error : An invalid store name [%s] was specified \n", "(null)")
		return vecsFail(inv, errInvalidParameter)
	}
	entries, err := a.n.VECS.Entries(r.Store)
	if err != nil {
		return vecsFail(inv, vecsCode(err))
	}
	fmt.Fprintf(inv.Stdout, "Number of entries in store :\t%d\n", len(entries))
	for _, e := range entries {
		if r.Aliases {
			fmt.Fprintln(inv.Stdout, e.Alias)
			continue
		}
		fmt.Fprintf(inv.Stdout, "Alias :\t%s\n", e.Alias)
		fmt.Fprintf(inv.Stdout, "Entry type :\t%s\n", e.Type)
		if r.Text && entryCertText(e) != "" {
			if err := writeEntryText(inv.Stdout, e); err != nil {
				return vecsFail(inv, errInvalidData)
			}
			continue
		}
		fmt.Fprintf(inv.Stdout, "Certificate :\t%s\n\n", entryCertText(e))
	}
	return 0
}

func (a *appliance) vecsGetCert(inv *sshd.Invocation, r VecsRequest) int {
	if r.Store == "" || r.Alias == "" {
		fmt.Fprintf(inv.Stderr, "Error: The store name [%s] or the Alias [%s] is invalid \n", nullable(r.Store), nullable(r.Alias))
		return vecsFail(inv, errInvalidParameter)
	}
	if !hasStore(a.n.VECS, r.Store) {
		fmt.Fprintln(inv.Stderr, "Error: Failed to open the store.")
		return vecsFail(inv, errObjectNotFound)
	}
	e, err := a.n.VECS.Get(r.Store, r.Alias)
	if err != nil {
		return vecsFail(inv, vecsCode(err))
	}
	if e.Type == model.SecretKey {
		fmt.Fprintf(inv.Stderr, "Error: No certificates were found for entry [%s] of type [%s].\n", r.Alias, e.Type)
		return vecsFail(inv, errInvalidParameter)
	}
	if r.Output != "" {
		if err := a.before("write"); err != nil {
			return vecsFail(inv, vecsCode(err))
		}
		if err := writeFile(inv, r.Output, []byte(entryCertText(e)+"\n"), 0o600); err != nil {
			return vecsFail(inv, errFileNotFound)
		}
	}
	if r.Text {
		if err := writeEntryText(inv.Stdout, e); err != nil {
			return vecsFail(inv, errInvalidData)
		}
	} else if r.Output == "" {
		fmt.Fprintf(inv.Stdout, "%s\n", entryCertText(e))
	}
	return 0
}

func (a *appliance) vecsGetKey(inv *sshd.Invocation, r VecsRequest) int {
	if r.Store == "" || r.Alias == "" {
		fmt.Fprintf(inv.Stderr, "Error: The store name [%s] or the Alias [%s] is invalid \n", nullable(r.Store), nullable(r.Alias))
		return vecsFail(inv, errInvalidParameter)
	}
	if !hasStore(a.n.VECS, r.Store) {
		fmt.Fprintln(inv.Stderr, "Error: Failed to open the store.")
		return vecsFail(inv, errObjectNotFound)
	}
	e, err := a.n.VECS.Get(r.Store, r.Alias)
	if err != nil {
		return vecsFail(inv, vecsCode(err))
	}
	if len(e.Key) == 0 || e.Type == model.TrustedCert || e.Type == model.CRL {
		fmt.Fprintf(inv.Stderr, "Error: No key was found for entry [%s] of type [%s]\n", r.Alias, e.Type)
		return vecsFail(inv, errInvalidParameter)
	}
	key := string(e.Key)
	if e.Type == model.PrivateKey {
		key = strings.TrimSuffix(string(pki.EncodeKey(e.Key)), "\n")
	}
	if r.Output != "" {
		if err := a.before("write"); err != nil {
			return vecsFail(inv, vecsCode(err))
		}
		if err := writeFile(inv, r.Output, []byte(key+"\n"), 0o600); err != nil {
			return vecsFail(inv, errFileNotFound)
		}
	}
	if r.Text && e.Type == model.PrivateKey {
		// VecsCliPrintKey prints the key as OpenSSL text; the lab prints
		// the PEM, which is what every procedure consumes.
		fmt.Fprintf(inv.Stdout, "%s\n", key)
	} else if r.Output == "" {
		fmt.Fprintf(inv.Stdout, "%s\n", key)
	}
	return 0
}

func (a *appliance) vecsCreate(inv *sshd.Invocation, r VecsRequest) int {
	if r.Store == "" {
		fmt.Fprintf(inv.Stderr, "Error: The store name [%s] is invalid \n", "(null)")
		return vecsFail(inv, errInvalidParameter)
	}
	var certPEM, keyPEM []byte
	var err error
	if r.Cert != "" {
		if certPEM, err = readFile(inv, r.Cert); err != nil {
			fmt.Fprintf(inv.Stderr, "Error: Failed to open file [%s] \n", r.Cert)
			return vecsFail(inv, errFileNotFound)
		}
	}
	if r.Key != "" {
		if keyPEM, err = readFile(inv, r.Key); err != nil {
			fmt.Fprintf(inv.Stderr, "Error: Failed to open file [%s] \n", r.Key)
			return vecsFail(inv, errFileNotFound)
		}
	}
	if len(certPEM) == 0 && len(keyPEM) == 0 {
		fmt.Fprintf(inv.Stderr, "Error: A certificate or a key must be specified. \n")
		return vecsFail(inv, errInvalidParameter)
	}
	e := model.Entry{Alias: r.Alias}
	switch {
	case len(certPEM) == 0:
		e.Type = model.SecretKey
		e.Key = keyPEM
		if r.Alias == "" {
			fmt.Fprintf(inv.Stderr, "Error: The alias [%s] is invalid \n", "(null)")
			return vecsFail(inv, errInvalidParameter)
		}
	default:
		ders, err := pki.DecodeCerts(certPEM)
		if err != nil || len(ders) == 0 {
			return vecsFail(inv, errInvalidData)
		}
		if _, err := x509.ParseCertificate(ders[0]); err != nil {
			return vecsFail(inv, errInvalidData)
		}
		e.Certs = ders
		e.Type = model.TrustedCert
		if len(keyPEM) > 0 {
			_, pkcs8, err := pki.ParseKey(keyPEM)
			if err != nil {
				return vecsFail(inv, errInvalidData)
			}
			if _, err := pki.ParseCert(ders[0], pkcs8); err != nil {
				// VECS refuses a key that does not match the certificate.
				return vecsFail(inv, errInvalidData)
			}
			e.Type, e.Key = model.PrivateKey, pkcs8
		} else {
			// A trusted cert entry holds one certificate.
			e.Certs = ders[:1]
		}
		if e.Alias == "" {
			e.Alias = pki.SHA1Hex(ders[0])
		}
	}
	if !hasStore(a.n.VECS, r.Store) {
		fmt.Fprintln(inv.Stderr, "Error: Failed to open the store.")
		return vecsFail(inv, errObjectNotFound)
	}
	if err := a.before("create"); err != nil {
		return vecsFail(inv, vecsCode(err))
	}
	if err := a.n.VECS.Create(r.Store, e); err != nil {
		return vecsFail(inv, vecsCode(err))
	}
	fmt.Fprintf(inv.Stdout, "Entry with alias [%s] in store [%s] was created successfully \n", e.Alias, r.Store)
	return 0
}
