package certmgr

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"runbook/steps/shellquote"

	"runbook/steps/certinfo"
	"runbook/target"
)

// Appliance paths.
const (
	// PathCertificateManager is the vSphere Certificate Manager.
	PathCertificateManager = "/usr/lib/vmware-vmca/bin/certificate-manager"
	// PathCertificateManagerLog is its log.
	PathCertificateManagerLog = "/var/log/vmware/vmcad/certificate-manager.log"
	// PathVecsCLI is VECS's command-line client.
	PathVecsCLI = "/usr/lib/vmware-vmafd/bin/vecs-cli"
	// PathRootCert is the VMCA root certificate of a node that runs VMCA.
	PathRootCert = "/var/lib/vmware/vmca/root.cer"
	// PathRootKey is the VMCA root's private key.
	PathRootKey = "/var/lib/vmware/vmca/privatekey.pem"
	// PathCertool is VMCA's command-line client.
	PathCertool = "/usr/lib/vmware-vmca/bin/certool"
	// PathDirCLI is vmdir's command-line client.
	PathDirCLI = "/usr/lib/vmware-vmafd/bin/dir-cli"
	// PathVmafdCLI is vmafd's command-line client.
	PathVmafdCLI = "/usr/lib/vmware-vmafd/bin/vmafd-cli"
	// PathServiceControl stops and starts the appliance's services.
	PathServiceControl = "/usr/bin/service-control"
)

// previousRootFiles are where certool keeps the previous VMCA root when it
// installs a new one.
var previousRootFiles = []string{PathRootCert + ".0", PathRootKey + ".0"}

// VECS stores and aliases certificate-manager replaces.
const (
	StoreMachineSSL   = "MACHINE_SSL_CERT"
	AliasMachineCert  = "__MACHINE_CERT"
	StoreTrustedRoots = "TRUSTED_ROOTS"
	// StoreTrustedRootCRLs holds the CRLs of the trusted roots.
	StoreTrustedRootCRLs = "TRUSTED_ROOT_CRLS"
)

// solutionUsers are the solution-user stores option 6 replaces, when the
// node has them (hvc and wcp exist from 7.0 on); each store's entry is
// named after the store.
var solutionUsers = []string{"machine", "vsphere-webclient", "vpxd", "vpxd-extension", "hvc", "wcp"}

// vecs reads a node's VECS with vecs-cli over SSH. Names are passed as
// quoted shell words; none of them is secret.
type vecs struct {
	n *target.Node
}

// run runs vecs-cli with args. An error quotes what vecs-cli printed,
// but never the standard output of a secret read (getkey).
func (v vecs) run(ctx context.Context, args ...string) (string, error) {
	cmd := PathVecsCLI + " " + shellquote.Join(args)
	stdout, stderr, code, err := v.n.Run(ctx, cmd, nil)
	if err != nil {
		return "", fmt.Errorf("vecs-cli %s: %w", strings.Join(args[:2], " "), err)
	}
	if code != 0 {
		said := stderr
		if !slices.Contains(args, "getkey") {
			said += stdout
		}
		return "", fmt.Errorf("vecs-cli %s on %s exited %d: %s", shellquote.Join(args), v.n.PNID(), code, oneLine(said))
	}
	return stdout, nil
}

// stores lists the node's stores.
func (v vecs) stores(ctx context.Context) ([]string, error) {
	out, err := v.run(ctx, "store", "list")
	if err != nil {
		return nil, err
	}
	var stores []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			stores = append(stores, l)
		}
	}
	return stores, nil
}

// cert returns the certificate of an entry (its first, when vecs-cli
// prints a chain) and the PEM text vecs-cli printed.
func (v vecs) cert(ctx context.Context, store, alias string) (*x509.Certificate, string, error) {
	out, err := v.run(ctx, "entry", "getcert", "--store", store, "--alias", alias)
	if err != nil {
		return nil, "", err
	}
	certs, err := certinfo.Decode(out)
	if err != nil {
		return nil, "", fmt.Errorf("read %s/%s on %s: %w", store, alias, v.n.PNID(), err)
	}
	return certs[0], out, nil
}

// key returns the PEM private key of an entry. It is secret: callers
// write it to owner-only files and nowhere else.
func (v vecs) key(ctx context.Context, store, alias string) ([]byte, error) {
	out, err := v.run(ctx, "entry", "getkey", "--store", store, "--alias", alias)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(out, "PRIVATE KEY-----") {
		return nil, fmt.Errorf("read the key of %s/%s on %s: vecs-cli printed no PEM key", store, alias, v.n.PNID())
	}
	return []byte(out), nil
}

// entry is one entry of `vecs-cli entry list`.
type entry struct {
	Alias string
	Type  string
	Text  string // the certificate (or CRL) PEM
}

// entries lists a store's entries with their certificates.
func (v vecs) entries(ctx context.Context, store string) ([]entry, error) {
	out, err := v.run(ctx, "entry", "list", "--store", store)
	if err != nil {
		return nil, err
	}
	return parseEntryList(out)
}

// parseEntryList reads `vecs-cli entry list` output: a count line, then
// per entry "Alias :\t<alias>", "Entry type :\t<type>" and
// "Certificate :\t<PEM>" lines.
func parseEntryList(out string) ([]entry, error) {
	var es []entry
	var cur *entry
	inCert := false
	for _, line := range strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n") {
		key, value, found := strings.Cut(line, ":")
		key = strings.TrimSpace(key)
		switch {
		case found && key == "Alias" && !strings.HasPrefix(line, "-----"):
			es = append(es, entry{Alias: strings.TrimSpace(value)})
			cur, inCert = &es[len(es)-1], false
		case cur == nil:
		case found && key == "Entry type":
			cur.Type = strings.TrimSpace(value)
		case found && key == "Certificate":
			cur.Text = strings.TrimSpace(value) + "\n"
			inCert = true
		case inCert:
			if strings.TrimSpace(line) == "" {
				inCert = false
				continue
			}
			cur.Text += strings.TrimSpace(line) + "\n"
		}
	}
	if len(es) == 0 && !strings.Contains(out, "Number of entries in store") {
		return nil, errors.New("parse vecs-cli entry list: no entry and no count")
	}
	return es, nil
}

// readRemote reads a small file of the node over SFTP.
func readRemote(ctx context.Context, n *target.Node, p string) ([]byte, error) {
	sc, err := n.SFTP(ctx)
	if err != nil {
		return nil, err
	}
	f, err := sc.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, n.PNID(), err)
	}
	defer f.Close()
	const limit = 4 << 20
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, n.PNID(), err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("read %s on %s: larger than %d MiB", p, n.PNID(), limit>>20)
	}
	return b, nil
}

// remoteSize returns the size of a file of the node, 0 when it does not
// exist.
func remoteSize(ctx context.Context, n *target.Node, p string) (int64, error) {
	sc, err := n.SFTP(ctx)
	if err != nil {
		return 0, err
	}
	fi, err := sc.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stat %s on %s: %w", p, n.PNID(), err)
	}
	return fi.Size(), nil
}

// readFrom reads a file of the node from offset on (the whole file when
// it is shorter than offset: it was rotated), at most limit bytes from
// its end.
func readFrom(ctx context.Context, n *target.Node, p string, offset int64, limit int64) ([]byte, error) {
	sc, err := n.SFTP(ctx)
	if err != nil {
		return nil, err
	}
	f, err := sc.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, n.PNID(), err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, n.PNID(), err)
	}
	if fi.Size() < offset {
		offset = 0
	}
	offset = max(offset, fi.Size()-limit)
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, n.PNID(), err)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, n.PNID(), err)
	}
	return b, nil
}

// oneLine joins the non-empty lines of s with " | ", at most 300 bytes.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	out := strings.Join(parts, " | ")
	if len(out) > 300 {
		out = out[:300] + "…"
	}
	return out
}
