// Package vmca provides vmca.issue, the step type that has a node's VMCA
// issue a certificate with certool, as fixsts.sh does for the STS signing
// certificate (KB 76719) and certificate-manager does for the Machine SSL
// and solution-user certificates (KB 2097936), and brings the certificate,
// its key and the VMCA chain to the run folder in the PEM and DER forms the
// next steps (ldap.add, VECS updates) take.
package vmca

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"runbook/steps/shellquote"

	"github.com/pkg/sftp"

	"runbook/engine"
	"runbook/steps/certinfo"
	"runbook/steps/conn"
	"runbook/target"
)

// Appliance paths certool and VMCA use.
const (
	// PathCertool is VMCA's command-line client.
	PathCertool = "/usr/lib/vmware-vmca/bin/certool"
	// PathRootCert is the VMCA root certificate (with its chain when VMCA
	// is a subordinate CA).
	PathRootCert = "/var/lib/vmware/vmca/root.cer"
	// pathVmafdCLI reads the node's machine id.
	pathVmafdCLI = "/usr/lib/vmware-vmafd/bin/vmafd-cli"
)

// Register adds vmca.issue (write) to r.
func Register(r *engine.Registry) {
	r.Register(issueStep)
}

// issueParams are the params of vmca.issue.
type issueParams struct {
	Node      string   `yaml:"node" doc:"The PNID of the node whose VMCA issues the certificate: certool runs there, and the PNID goes into the certificate. The target's first node when empty."`
	Profile   string   `yaml:"profile" required:"true" enum:"sts,machine_ssl,solution_user" doc:"Which certool.cfg to request with: sts is fixsts.sh's (Country DS, Name STS, VMware for the organization, unit, state and locality, email@acme.com, the node's IP and PNID; KB 76719); machine_ssl is certificate-manager's template (US, California, Palo Alto, VMware, VMware Engineering) with the PNID as Name; solution_user names a solution user (name required), with the SSO domain as DomainComponent and mID-<machine id> as OrgUnit."`
	Hostnames []string `yaml:"hostnames" doc:"The host names the certificate names (certool.cfg Hostname, its DNS subject alternative names). They must include the node's PNID (KB 2097936): a list without it is refused. Only the PNID when empty."`
	Name      string   `yaml:"name" doc:"The common name (certool.cfg Name) instead of the profile's: STS for sts, the PNID for machine_ssl. Required for solution_user, e.g. vpxd-${{ facts.machineID }}."`
	IP        string   `yaml:"ip" doc:"The IP address to name (certool.cfg IPAddress); the node's address from the target profile when empty and it is an IP address, as fixsts.sh takes eth0's."`
	Server    string   `yaml:"server" doc:"The VMCA server certool asks (--server); the node itself when empty. On a vCenter with an external PSC, name the PSC."`
	WorkDir   string   `yaml:"work_dir" doc:"The folder on the node where certool.cfg, the certificate and, until it is fetched, the private key are written; /tmp/vmware-runbook-<run id> when empty."`
}

// issueOutputs are the outputs of vmca.issue. The private key is only in
// files (key_file, key_der_file), never in outputs.
type issueOutputs struct {
	// CertFile is the certificate file as certool wrote it (PEM, the new
	// certificate first).
	CertFile string `json:"cert_file" expr:"cert_file"`
	// KeyFile is the private key as certool wrote it (PEM), mode 0600.
	KeyFile string `json:"key_file" expr:"key_file"`
	// CertDERFile is the new certificate in DER (fixsts's sts.der).
	CertDERFile string `json:"cert_der_file" expr:"cert_der_file"`
	// KeyDERFile is the private key as unencrypted PKCS#8 DER (fixsts's
	// sts.key.der, the form of vmwSTSPrivateKey), mode 0600.
	KeyDERFile string `json:"key_der_file" expr:"key_der_file"`
	// RootFile is the node's VMCA root file as fetched (PEM).
	RootFile string `json:"root_file" expr:"root_file"`
	// ChainDERFiles are the root file's certificates in DER, in file order
	// (fixsts's vmca01.der, …).
	ChainDERFiles []string `json:"chain_der_files" expr:"chain_der_files"`
	// CertBase64 is the new certificate's DER as one base64 line.
	CertBase64 string `json:"cert_base64" expr:"cert_base64"`
	// ChainBase64 is the new certificate then the root file's
	// certificates, each "base64:" and its DER in base64: the
	// userCertificate values of a TenantCredential or TrustedCertChain
	// entry as ldap.add takes them.
	ChainBase64 []string `json:"chain_base64" expr:"chain_base64"`
	// SHA1 is the new certificate's SHA-1 thumbprint (AB:CD:…).
	SHA1 string `json:"sha1" expr:"sha1"`
	// NotAfter is the end of its validity.
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
	// Subject is its subject, as cert.parse writes names.
	Subject string `json:"subject" expr:"subject"`
	// SANs are its subject alternative names.
	SANs []string `json:"sans" expr:"sans"`
}

var issueStep = engine.Write[issueParams, issueOutputs]{
	Spec: engine.Spec{
		ID:      "vmca.issue",
		Summary: "Have a node's VMCA issue a certificate with certool and fetch it, its key and the VMCA chain to the run folder.",
		Doc: "Does what fixsts.sh (KB 76719) does to get a new STS signing certificate, for the " +
			"profile's certool.cfg: writes `certool.cfg` into `work_dir` on the node over SFTP, runs " +
			"`certool --genkey --privkey=<dir>/<n>.key --pubkey=<dir>/<n>.pub` and " +
			"`certool --gencert --cert=<dir>/<n>.cer --privkey=<dir>/<n>.key --config=<dir>/certool.cfg` " +
			"(each must print `Status : Success`), fetches the certificate, the key and " +
			"`/var/lib/vmware/vmca/root.cer`, checks that the key is the certificate's and that the " +
			"certificate is signed by the root file's certificates, and removes the key from the node.\n\n" +
			"The files land in `issued/<step id>/` in the run folder: `<n>.cer`, `<n>.key` (0600), and " +
			"the DER forms fixsts.sh's LDIF uses — `<n>.der`, `<n>.key.der` (unencrypted PKCS#8, 0600) " +
			"and `vmca01.der`, … for the root file's certificates. The key never appears in outputs: " +
			"ldap.add reads it from `key_der_file` (`vmwSTSPrivateKey:< file:…` in `ldif`). " +
			"`chain_base64` is the userCertificate list (leaf first, then the VMCA chain) as `base64:` " +
			"values. The host names must include the node's PNID.\n\n" +
			"Nothing on the appliance changes but the work folder: VMCA keeps no state for an issued " +
			"certificate, so there is nothing to back up. Check is applied when the run folder holds a " +
			"certificate for this request with its key, signed by the fetched root, so that a resumed run " +
			"does not issue a second one.\n\n" +
			"```yaml\n- id: sts_cert\n  uses: vmca.issue\n  with: {profile: sts}\n" +
			"- uses: ldap.add\n  with:\n    entries:\n      - dn: \"cn=TenantCredential-2,${{ steps.tenant.dn }}\"\n" +
			"        attrs:\n          objectClass: [vmwSTSTenantCredential, top]\n" +
			"          userCertificate: \"${{ steps.sts_cert.chain_base64 }}\"\n```",
	},
	// No Backup: issuing a certificate changes nothing on the appliance
	// but the new work folder — VMCA keeps no record an operator would
	// restore — so there is nothing to save, and the engine then creates
	// no backup folder.
	Plan:  planIssue,
	Apply: applyIssue,
	Check: checkIssue,
}

// job is a vmca.issue request resolved against the target.
type job struct {
	n      *target.Node
	req    *request
	remote string // work dir on the node
	base   string // file name stem
	local  files
	server string
}

func (j *job) remotePath(ext string) string { return path.Join(j.remote, j.base+ext) }
func (j *job) remoteCfg() string            { return path.Join(j.remote, "certool.cfg") }

// prepare resolves the node and checks the params.
func prepare(ctx context.Context, env *engine.Env, p *issueParams) (*job, error) {
	t, err := conn.Target(env)
	if err != nil {
		return nil, err
	}
	n, err := conn.Node(env, p.Node)
	if err != nil {
		return nil, err
	}
	id := node{PNID: n.PNID(), IP: n.Address(), Domain: t.Domain()}
	if p.Profile == ProfileSolutionUser {
		if id.MachineID, err = machineID(ctx, env, n); err != nil {
			return nil, err
		}
	}
	req, err := newRequest(id, p.Profile, p.Name, p.IP, p.Hostnames)
	if err != nil {
		return nil, err
	}
	if err := checkValue("server", p.Server); err != nil {
		return nil, err
	}
	remote := p.WorkDir
	if remote == "" {
		remote = "/tmp/vmware-runbook"
		if env.RunID != "" {
			remote += "-" + safeName(env.RunID)
		}
	}
	if !path.IsAbs(remote) {
		return nil, fmt.Errorf("work_dir: %q is not an absolute path", remote)
	}
	remote = path.Clean(remote)
	if remote == "/" {
		return nil, errors.New("work_dir: / is not a work folder")
	}
	base := p.Profile
	if p.Profile == ProfileSolutionUser {
		base = safeName(req.name)
	}
	dir := filepath.Join(env.RunDir, "issued")
	if env.StepID != "" {
		dir = filepath.Join(dir, safeName(env.StepID))
	}
	return &job{n: n, req: req, remote: remote, base: base, local: files{dir: dir, base: base}, server: p.Server}, nil
}

// machineID is the node's machine id: from the facts when they have it,
// else from vmafd-cli.
func machineID(ctx context.Context, env *engine.Env, n *target.Node) (string, error) {
	for _, f := range env.Facts.Nodes {
		if strings.EqualFold(f.PNID, n.PNID()) && f.MachineID != "" {
			return f.MachineID, nil
		}
	}
	out, errOut, code, err := n.Run(ctx, pathVmafdCLI+" get-machine-id --server-name localhost", nil)
	if err != nil {
		return "", fmt.Errorf("read machine id: %w", err)
	}
	id := strings.TrimSpace(out)
	if code != 0 || id == "" || strings.ContainsAny(id, " \n") {
		return "", fmt.Errorf("read machine id: vmafd-cli exited %d: %s", code, tail(out+errOut))
	}
	return id, nil
}

// issueFacts are what a vmca.issue plan relies on.
type issueFacts struct {
	Node    string   `json:"node"`
	Profile string   `json:"profile"`
	Config  string   `json:"config"`
	Server  string   `json:"server"`
	SANs    []string `json:"sans"`
}

func planIssue(ctx context.Context, env *engine.Env, p *issueParams) (engine.Plan, error) {
	j, err := prepare(ctx, env, p)
	if err != nil {
		return engine.Plan{}, err
	}
	pnid := j.n.PNID()
	signer := "the node's VMCA"
	if j.server != "" {
		signer = "the VMCA of " + j.server
	}
	if root, err := readRemote(ctx, j.n, PathRootCert); err != nil {
		signer += " (root file unreadable: " + err.Error() + ")"
	} else if certs, err := certinfo.Decode(string(root)); err != nil {
		signer += " (root file unreadable: " + err.Error() + ")"
	} else {
		r := certinfo.Describe(certs[0], env.Time())
		signer += fmt.Sprintf(" (root %s, %s, notAfter %s", r.Subject, r.SHA1, r.NotAfter.UTC().Format(time.DateOnly))
		if r.Expired {
			signer += ", EXPIRED: certool will fail until the root is replaced"
		}
		signer += ")"
	}
	after := fmt.Sprintf("subject %s; SANs %s; signed by %s for VMCA's default validity; key and certificate fetched to %s, the key then removed from the node",
		j.req.subject(), strings.Join(j.req.sans(), ", "), signer, j.local.dir)
	return engine.Plan{
		Summary: fmt.Sprintf("issue a certificate (profile %s) for %s with certool in %s", p.Profile, pnid, j.remote),
		Changes: []engine.Change{{
			Action: "create",
			Object: pnid + " certool " + p.Profile + " certificate",
			After:  after,
		}},
		Facts: issueFacts{Node: pnid, Profile: p.Profile, Config: j.req.cfg.text(), Server: j.server, SANs: j.req.sans()},
	}, nil
}

func applyIssue(ctx context.Context, env *engine.Env, p *issueParams) (out issueOutputs, err error) {
	j, err := prepare(ctx, env, p)
	if err != nil {
		return issueOutputs{}, err
	}
	sc, err := j.n.SFTP(ctx)
	if err != nil {
		return issueOutputs{}, err
	}
	if err := sc.MkdirAll(j.remote); err != nil {
		return issueOutputs{}, fmt.Errorf("create %s on %s: %w", j.remote, j.n.PNID(), err)
	}
	if err := sc.Chmod(j.remote, 0o700); err != nil {
		return issueOutputs{}, fmt.Errorf("restrict %s on %s: %w", j.remote, j.n.PNID(), err)
	}
	if err := writeRemote(sc, j.remoteCfg(), []byte(j.req.cfg.text()), 0o644); err != nil {
		return issueOutputs{}, fmt.Errorf("write certool.cfg on %s: %w", j.n.PNID(), err)
	}
	env.Logf("%s: certool.cfg for %s written to %s", j.n.PNID(), j.req.subject(), j.remoteCfg())

	keyPath := j.remotePath(".key")
	// Whatever happens from here, the private key does not stay on the
	// node: it is removed even when ctx has ended.
	defer func() {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rmErr := removeRemote(rmCtx, j.n, keyPath); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove the private key %s from %s: %w", keyPath, j.n.PNID(), rmErr))
		}
	}()
	serverArg := func(args []string) []string {
		if j.server != "" {
			return append([]string{"--server=" + j.server}, args...)
		}
		return args
	}
	if err := certool(ctx, j.n, serverArg([]string{"--genkey", "--privkey=" + keyPath, "--pubkey=" + j.remotePath(".pub")})); err != nil {
		return issueOutputs{}, err
	}
	if err := certool(ctx, j.n, serverArg([]string{"--gencert", "--cert=" + j.remotePath(".cer"), "--privkey=" + keyPath, "--config=" + j.remoteCfg()})); err != nil {
		return issueOutputs{}, err
	}
	cer, err := readRemote(ctx, j.n, j.remotePath(".cer"))
	if err != nil {
		return issueOutputs{}, err
	}
	key, err := readRemote(ctx, j.n, keyPath)
	if err != nil {
		return issueOutputs{}, err
	}
	root, err := readRemote(ctx, j.n, PathRootCert)
	if err != nil {
		return issueOutputs{}, err
	}
	m, err := parseMaterial(cer, key, root)
	if err != nil {
		return issueOutputs{}, fmt.Errorf("check what certool issued on %s: %w", j.n.PNID(), err)
	}
	if err := j.matches(m); err != nil {
		return issueOutputs{}, fmt.Errorf("check what certool issued on %s: %w", j.n.PNID(), err)
	}
	if err := j.local.save(m); err != nil {
		return issueOutputs{}, err
	}
	out = j.local.outputs(m, env.Time())
	env.Logf("%s: issued %s (%s, notAfter %s) into %s", j.n.PNID(), out.Subject, out.SHA1, out.NotAfter.UTC().Format(time.DateOnly), j.local.dir)
	return out, nil
}

// matches checks that the certificate is the one requested: its common
// name and the PNID among its names.
func (j *job) matches(m *material) error {
	if cn := m.leaf.Subject.CommonName; cn != j.req.name {
		return fmt.Errorf("the certificate's common name is %q, not %q", cn, j.req.name)
	}
	pnid := j.n.PNID()
	if !slices.ContainsFunc(m.leaf.DNSNames, func(h string) bool { return strings.EqualFold(h, pnid) }) {
		return fmt.Errorf("the certificate does not name the PNID %s (its names: %v)", pnid, m.leaf.DNSNames)
	}
	return nil
}

func checkIssue(ctx context.Context, env *engine.Env, p *issueParams) (engine.Verdict[issueOutputs], error) {
	j, err := prepare(ctx, env, p)
	if err != nil {
		return engine.Verdict[issueOutputs]{}, err
	}
	m, err := j.local.load()
	if err == nil {
		err = j.matches(m)
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return engine.Verdict[issueOutputs]{State: engine.NotApplied, Detail: "no certificate issued yet: " + err.Error()}, nil
		}
		return engine.Verdict[issueOutputs]{State: engine.NotApplied, Detail: "the run folder holds no usable certificate: " + err.Error()}, nil
	}
	out := j.local.outputs(m, env.Time())
	return engine.Verdict[issueOutputs]{
		State:   engine.Applied,
		Detail:  fmt.Sprintf("%s holds %s (%s) with its key, signed by the VMCA root", j.local.dir, out.Subject, out.SHA1),
		Outputs: out,
	}, nil
}

// certool runs certool with args on n and checks that it reported
// success.
func certool(ctx context.Context, n *target.Node, args []string) error {
	cmd := PathCertool + " " + shellquote.Join(args)
	stdout, stderr, code, err := n.Run(ctx, cmd, nil)
	if err != nil {
		return fmt.Errorf("certool %s: %w", args[0], err)
	}
	if code != 0 || !strings.Contains(stdout, "Status : Success") {
		return fmt.Errorf("certool %s on %s failed (exit %d): %s", args[0], n.PNID(), code, tail(stdout+stderr))
	}
	return nil
}

// maxRemoteFile bounds a file read from the node.
const maxRemoteFile = 1 << 20

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
	b, err := io.ReadAll(io.LimitReader(f, maxRemoteFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, n.PNID(), err)
	}
	if len(b) > maxRemoteFile {
		return nil, fmt.Errorf("read %s on %s: larger than %d KiB", p, n.PNID(), maxRemoteFile>>10)
	}
	return b, nil
}

// writeRemote writes a file of the node over SFTP.
func writeRemote(sc *sftp.Client, p string, data []byte, perm os.FileMode) error {
	f, err := sc.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return sc.Chmod(p, perm)
}

// removeRemote removes a file of the node over SFTP; a file that is not
// there is not an error.
func removeRemote(ctx context.Context, n *target.Node, p string) error {
	sc, err := n.SFTP(ctx)
	if err != nil {
		return err
	}
	if err := sc.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// tail returns the last lines of command output, trimmed, for errors.
func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 6 {
		lines = lines[len(lines)-6:]
	}
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, " | ")
}
