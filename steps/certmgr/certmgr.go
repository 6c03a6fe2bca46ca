// Package certmgr provides certmgr.run, the step type that drives the
// vSphere Certificate Manager (/usr/lib/vmware-vmca/bin/certificate-manager;
// KB 2097936, KB 2112283) over an SSH terminal, as an administrator would,
// for its VMCA options: 3 (replace the Machine SSL certificate), 6 (replace
// the solution-user certificates) and 8 (reset all certificates, the VMCA
// root included).
//
// The step answers each prompt by its exact text, types the SSO password
// at its prompt (never in a command line, never echoed, never in the
// transcript), exports every certificate and key the option replaces
// before it runs (certificate-manager's own BACKUP_STORE keeps a single
// generation), recognizes its progress and rollback lines, and, after a
// Machine SSL replacement, moves the target's TLS pin to the new
// certificate read from the appliance's own VECS over SSH.
//
// Restore puts a node back as such a backup describes it, through the
// appliance's own tools, as certificate-manager's option 7 (revert) does.
package certmgr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"runbook/internal/runfile"

	"runbook/engine"
	"runbook/steps/conn"
	"runbook/target"
)

// Register adds certmgr.run (write) to r.
func Register(r *engine.Registry) {
	r.Register(runStep)
}

// runParams are the params of certmgr.run.
type runParams struct {
	Node         string   `yaml:"node" doc:"The PNID of the node to run certificate-manager on; the target's first node when empty. Option 8 regenerates the VMCA root only on a node that runs VMCA (embedded or PSC)."`
	Option       string   `yaml:"option" required:"true" enum:"3,6,8" doc:"The menu option, quoted: \"3\" replaces the Machine SSL certificate with a VMCA certificate; \"6\" replaces the solution-user certificates with VMCA certificates; \"8\" regenerates the VMCA root and replaces all certificates (KB 2112283). Only Machine SSL expired → 3; solution users expired → 6; a trusted root expired → 8."`
	SSOUser      string   `yaml:"sso_user" doc:"The SSO administrator typed at the username prompt; administrator@<SSO domain> when empty."`
	SSOPassword  string   `yaml:"sso_password" doc:"The SSO administrator's password, typed at the password prompt and nowhere else. Empty (the usual case) means the target profile's SSO password; when given, pass a secret runbook param: ${{ params.sso_password }}."`
	Country      string   `yaml:"country" default:"US" doc:"certool.cfg Country: two letters."`
	Name         string   `yaml:"name" doc:"certool.cfg Name, the Machine SSL certificate's common name; the node's PNID when empty (KB 2097936)."`
	Organization string   `yaml:"organization" default:"VMware" doc:"certool.cfg Organization."`
	OrgUnit      string   `yaml:"org_unit" default:"VMware Engineering" doc:"certool.cfg OrgUnit."`
	State        string   `yaml:"state" default:"California" doc:"certool.cfg State."`
	Locality     string   `yaml:"locality" default:"Palo Alto" doc:"certool.cfg Locality."`
	IP           string   `yaml:"ip" doc:"certool.cfg IPAddress: an IPv4 or IPv6 address to name in the certificate; none when empty."`
	Email        string   `yaml:"email" default:"email@acme.com" doc:"certool.cfg Email."`
	Hostnames    []string `yaml:"hostnames" doc:"certool.cfg Hostname: the names the Machine SSL certificate is valid for. They must include the node's PNID (a list without it is refused: KB 2097936); only the PNID when empty."`
	VMCAName     string   `yaml:"vmca_name" doc:"The answer to \"Enter proper value for VMCA 'Name'\", the common name of a regenerated VMCA root (option 8); the node's PNID when empty, as KB 2097936's guidance says."`
}

// runOutputs are the outputs of certmgr.run.
type runOutputs struct {
	// Transcript is what certificate-manager printed, secrets masked,
	// blank-line runs squeezed, at most 64 KiB (its end).
	Transcript string `json:"transcript" expr:"transcript"`
	// Replaced lists each certificate the option replaced, old and new.
	Replaced []Replacement `json:"replaced" expr:"replaced"`
	// RolledBack is true when certificate-manager failed and rolled back.
	RolledBack bool `json:"rolled_back" expr:"rolled_back"`
}

// Replacement is one certificate certificate-manager replaced.
type Replacement struct {
	// Object is the VECS store/alias (MACHINE_SSL_CERT/__MACHINE_CERT,
	// vpxd/vpxd, …) or, for the VMCA root, its file.
	Object string `json:"object" expr:"object"`
	// OldSHA1 and NewSHA1 are the SHA-1 thumbprints before and after.
	OldSHA1 string `json:"old_sha1" expr:"old_sha1"`
	NewSHA1 string `json:"new_sha1" expr:"new_sha1"`
	// NotAfter is the end of the new certificate's validity.
	NotAfter time.Time `json:"notAfter" expr:"notAfter"`
}

// optionTitles are the menu texts of the options the step drives.
var optionTitles = map[string]string{
	"3": "Replace Machine SSL certificate with VMCA Certificate",
	"6": "Replace Solution user certificates with VMCA certificates",
	"8": "Reset all Certificates",
}

var runStep = engine.Write[runParams, runOutputs]{
	Spec: engine.Spec{
		ID:      "certmgr.run",
		Summary: "Run vSphere Certificate Manager option 3, 6 or 8 on a node over an SSH terminal.",
		Doc: "Drives `/usr/lib/vmware-vmca/bin/certificate-manager` as KB 2097936 and KB 2112283 have an " +
			"administrator do: it chooses the option, answers the configuration-file question with Y, " +
			"types `sso_user` and `sso_password`, answers certool.cfg's questions (`country`, `name`, " +
			"`organization`, `org_unit`, `state`, `locality`, `ip`, `email`, `hostnames`, then " +
			"`vmca_name`; a previous certool.cfg is always reconfigured, so no earlier value creeps in) " +
			"and confirms. Every prompt is recognized by its exact text; a question asked again (a " +
			"refused password or value), or one the step does not know (an external PSC's address), " +
			"stops the program with Ctrl-D and fails the step, quoting the screen. The password is typed " +
			"on a terminal that does not echo and is masked in the transcript.\n\n" +
			"Backup exports, with vecs-cli over SSH, every certificate and private key the option " +
			"replaces into the step's backup folder (`<store>/<alias>.crt`, `.key` mode 0600), for " +
			"option 8 also TRUSTED_ROOTS, TRUSTED_ROOT_CRLS' aliases, the VMCA root file and its private key " +
			"(`vmca/privatekey.pem`, mode 0600) and `root.cer.0`/`privatekey.pem.0` as they were, with " +
			"`before.json` describing them: certificate-manager's BACKUP_STORE keeps only the last " +
			"generation, so these copies are the real backup.\n\n" +
			"`certmgr.Restore` puts the node back from that folder, as certificate-manager's option 7 " +
			"(revert) would, through the appliance's tools: `certool --rootca` with the saved root (option " +
			"8); the Lookup Service endpoints that trust the current Machine SSL certificate re-pointed to " +
			"the saved one (options 3 and 8); `vecs-cli entry delete -y` and `entry create` for each saved " +
			"entry that differs (certificates and keys uploaded to a private folder under /tmp and removed " +
			"afterwards); `dir-cli service update` for the solution users' service principals (options 6 " +
			"and 8, the SSO password on dir-cli's standard input); TRUSTED_ROOTS and TRUSTED_ROOT_CRLS " +
			"entries the backup does not list deleted (option 8); `service-control --stop --ignore --all` " +
			"and `--start --all`; the TLS pin moved back. It changes only what differs, so it can be run " +
			"again, and checks the whole folder first (a missing or corrupt one changes nothing). It cannot " +
			"unpublish option 8's new root from vmdir (nor touch the other nodes' TRUSTED_ROOTS), and " +
			"leaves BACKUP_STORE and the logs as certificate-manager left them.\n\n" +
			"Apply follows the `Status : N% Completed [...]` lines. When certificate-manager rolls back " +
			"(services did not start) the step fails with its last lines and the end of " +
			"`/var/log/vmware/vmcad/certificate-manager.log`; success requires `100% Completed [All " +
			"tasks completed successfully]`. After options 3 and 8 the target's TLS pin moves to the " +
			"new Machine SSL certificate, read from the node's VECS over SSH, so that later HTTPS and " +
			"LDAPS steps keep working. Check is applied when every certificate the option replaces " +
			"differs from the backup and is valid, not applied when all are as before, and unknown " +
			"otherwise.\n\n" +
			"```yaml\n- id: machine_ssl\n  uses: certmgr.run\n  with:\n    option: \"3\"\n" +
			"    hostnames: [\"${{ facts.pnid }}\"]\n```",
	},
	Plan:   planRun,
	Backup: backupRun,
	Apply:  applyRun,
	Check:  checkRun,
}

// consoleTiming bounds the terminal conversation; tests shorten it.
var consoleTiming = defaultTiming

// job is a certmgr.run request resolved against the target.
type job struct {
	env     *engine.Env
	n       *target.Node
	option  string
	answers answers
	vecs    vecs
}

// prepare resolves the node and checks the params. The password is
// checked only when it is about to be typed (needPassword).
func prepare(env *engine.Env, p *runParams, needPassword bool) (*job, error) {
	t, err := conn.Target(env)
	if err != nil {
		return nil, err
	}
	n, err := conn.Node(env, p.Node)
	if err != nil {
		return nil, err
	}
	if _, ok := optionTitles[p.Option]; !ok {
		return nil, fmt.Errorf("option: %q is not one of \"3\", \"6\", \"8\"", p.Option)
	}
	pnid := n.PNID()
	user := p.SSOUser
	if user == "" {
		user = "administrator@" + t.Domain()
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	hosts, err := checkHostnames(pnid, p.Hostnames)
	if err != nil {
		return nil, err
	}
	a := answers{
		option:   p.Option,
		user:     user,
		password: p.SSOPassword,
		vmcaName: or(p.VMCAName, pnid),
		values: map[string]string{
			"Country":      or(p.Country, "US"),
			"Name":         or(p.Name, pnid),
			"Organization": or(p.Organization, "VMware"),
			"OrgUnit":      or(p.OrgUnit, "VMware Engineering"),
			"State":        or(p.State, "California"),
			"Locality":     or(p.Locality, "Palo Alto"),
			"IPAddress":    p.IP,
			"Email":        or(p.Email, "email@acme.com"),
			"Hostname":     strings.Join(hosts, ","),
		},
	}
	if c := a.values["Country"]; len(c) != 2 || strings.IndexFunc(c, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) >= 0 {
		return nil, fmt.Errorf("country: %q is not a 2-letter country code", c)
	}
	if ip := a.values["IPAddress"]; ip != "" && net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("ip: %q is not an IPv4 or IPv6 address", ip)
	}
	checks := map[string]string{"sso_user": user, "vmca_name": a.vmcaName}
	for k, v := range a.values {
		checks["certool.cfg "+k] = v
	}
	for what, v := range checks {
		if strings.IndexFunc(v, isControl) >= 0 {
			return nil, fmt.Errorf("%s: %q holds a control character, which would answer the next question too", what, v)
		}
	}
	if needPassword {
		if p.SSOPassword == "" {
			_, pw, err := conn.SSO(env)
			if err != nil {
				return nil, err
			}
			a.password = pw
		}
		if strings.IndexFunc(a.password, isControl) >= 0 {
			return nil, errors.New("sso_password holds a control character (line break, Ctrl-D, …), which cannot be typed at the password prompt")
		}
	}
	return &job{env: env, n: n, option: p.Option, answers: a, vecs: vecs{n: n}}, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// checkHostnames returns the host names to answer: the PNID alone when
// none are given, else the list, which must name the PNID.
func checkHostnames(pnid string, hostnames []string) ([]string, error) {
	if len(hostnames) == 0 {
		return []string{pnid}, nil
	}
	var out []string
	for i, h := range hostnames {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, ", \t") || strings.IndexFunc(h, isControl) >= 0 {
			return nil, fmt.Errorf("hostnames[%d]: %q is not a host name", i, hostnames[i])
		}
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, h) }) {
			out = append(out, h)
		}
	}
	if !slices.ContainsFunc(out, func(h string) bool { return strings.EqualFold(h, pnid) }) {
		return nil, fmt.Errorf("hostnames %v do not include the node's PNID %s: a Machine SSL certificate that does not name the PNID breaks the services that reach the node by it (KB 2097936); add it", out, pnid)
	}
	return out, nil
}

// scope lists the certificates the option replaces on the node.
func (j *job) scope(ctx context.Context) ([]object, error) {
	machine := object{Store: StoreMachineSSL, Alias: AliasMachineCert}
	if j.option == "3" {
		return []object{machine}, nil
	}
	stores, err := j.vecs.stores(ctx)
	if err != nil {
		return nil, err
	}
	var objs []object
	if j.option == "8" {
		objs = append(objs, machine)
	}
	for _, s := range solutionUsers {
		if slices.Contains(stores, s) {
			objs = append(objs, object{Store: s, Alias: s})
		}
	}
	if j.option == "6" && len(objs) == 0 {
		return nil, fmt.Errorf("%s has none of the solution-user stores %v: option 6 has nothing to replace", j.n.PNID(), solutionUsers)
	}
	if j.option == "8" {
		runs, err := j.runsVMCA(ctx)
		if err != nil {
			return nil, err
		}
		if runs {
			objs = append(objs, object{File: PathRootCert})
		}
	}
	return objs, nil
}

// runsVMCA reports whether the node runs VMCA, whose root option 8
// regenerates: not a vCenter with an external PSC, and a root file.
func (j *job) runsVMCA(ctx context.Context) (bool, error) {
	for _, f := range j.env.Facts.Nodes {
		if strings.EqualFold(f.PNID, j.n.PNID()) && f.NodeType == "management" {
			return false, nil
		}
	}
	size, err := remoteSize(ctx, j.n, PathRootCert)
	if err != nil {
		return false, err
	}
	return size > 0, nil
}

// hasMachineSSL reports whether objs include the Machine SSL certificate.
func hasMachineSSL(objs []object) bool {
	return slices.Contains(objs, object{Store: StoreMachineSSL, Alias: AliasMachineCert})
}

// planFacts are what a certmgr.run plan relies on: the certificates it
// would replace, as they are.
type planFacts struct {
	Node   string            `json:"node"`
	Option string            `json:"option"`
	Certs  map[string]string `json:"certs"` // object → SHA-1
}

func planRun(ctx context.Context, env *engine.Env, p *runParams) (engine.Plan, error) {
	j, err := prepare(env, p, false)
	if err != nil {
		return engine.Plan{}, err
	}
	objs, err := j.scope(ctx)
	if err != nil {
		return engine.Plan{}, err
	}
	now := env.Time()
	states, err := j.readAll(ctx, objs, now)
	if err != nil {
		return engine.Plan{}, err
	}
	pnid := j.n.PNID()
	facts := planFacts{Node: pnid, Option: j.option, Certs: map[string]string{}}
	var changes []engine.Change
	for _, s := range states {
		facts.Certs[s.String()] = s.SHA1
		c := engine.Change{Action: "replace", Before: s.text(now)}
		switch {
		case s.File != "":
			c.Object = pnid + " VMCA root " + s.File
			c.After = fmt.Sprintf("new VMCA root certificate CN=%s, published to vmdir and every node's TRUSTED_ROOTS (the old root kept as %s.0 and still trusted)", j.answers.vmcaName, s.File)
		case s.Store == StoreMachineSSL:
			c.Object = pnid + " VECS " + s.String()
			c.After = fmt.Sprintf("new VMCA certificate CN=%s for %s", j.answers.values["Name"], j.answers.values["Hostname"])
		default:
			c.Object = pnid + " VECS " + s.String()
			c.After = "new VMCA certificate, also set on the solution user's service principal in vmdir"
		}
		changes = append(changes, c)
	}
	if hasMachineSSL(objs) {
		changes = append(changes, engine.Change{
			Action: "update",
			Object: "Lookup Service registrations trusting " + pnid + "'s Machine SSL certificate " + states[0].SHA1,
			Before: "sslTrust " + states[0].SHA1,
			After:  "sslTrust of the new Machine SSL certificate (certificate-manager re-points them as ls_update_certs.py does)",
		})
	}
	changes = append(changes, engine.Change{
		Action: "run",
		Object: pnid + " services",
		After:  "all stopped and started again by certificate-manager; when they do not start, it rolls every change back",
	})
	return engine.Plan{
		Summary: fmt.Sprintf("certificate-manager option %s on %s (%s): replace %d certificate(s)", j.option, pnid, optionTitles[j.option], len(states)),
		Changes: changes,
		Facts:   facts,
	}, nil
}

func backupRun(ctx context.Context, env *engine.Env, p *runParams) ([]string, error) {
	if env.BackupDir == "" {
		return nil, errors.New("no backup folder")
	}
	j, err := prepare(env, p, false)
	if err != nil {
		return nil, err
	}
	objs, err := j.scope(ctx)
	if err != nil {
		return nil, err
	}
	now := env.Time()
	st := &beforeState{Node: j.n.PNID(), Option: j.option, Taken: now}
	var files []string
	save := func(rel string, data []byte, perm os.FileMode) error {
		p := filepath.Join(env.BackupDir, rel)
		if err := runfile.Write(p, data, perm); err != nil {
			return err
		}
		files = append(files, p)
		return nil
	}
	for _, o := range objs {
		c, text, err := j.read(ctx, o)
		if err != nil {
			return nil, err
		}
		cs := describe(o, c, now)
		if o.File != "" {
			cs.CertFile = filepath.Join("vmca", filepath.Base(o.File))
			st.RootFile = cs.CertFile
			if err := save(cs.CertFile, []byte(text), 0o644); err != nil {
				return nil, err
			}
		} else {
			cs.CertFile = filepath.Join(safeName(o.Store), safeName(o.Alias)+".crt")
			cs.KeyFile = filepath.Join(safeName(o.Store), safeName(o.Alias)+".key")
			if err := save(cs.CertFile, []byte(j.redact(text)), 0o644); err != nil {
				return nil, err
			}
			key, err := j.vecs.key(ctx, o.Store, o.Alias)
			if err != nil {
				return nil, err
			}
			if err := save(cs.KeyFile, key, 0o600); err != nil {
				return nil, err
			}
		}
		st.Certs = append(st.Certs, cs)
	}
	if j.option == "8" {
		roots, err := j.trustedRoots(ctx, now)
		if err != nil {
			return nil, err
		}
		for _, r := range roots {
			if err := save(r.state.CertFile, []byte(r.text), 0o644); err != nil {
				return nil, err
			}
			st.TrustedRoots = append(st.TrustedRoots, r.state)
		}
		if st.TrustedRootCRLs, err = j.crlAliases(ctx); err != nil {
			return nil, err
		}
	}
	if st.RootFile != "" {
		if err := j.backupRootFiles(ctx, st, save); err != nil {
			return nil, err
		}
	}
	manifest, err := saveBefore(env, st)
	if err != nil {
		return nil, err
	}
	env.Logf("%s: saved %d certificate(s) and their keys before option %s into %s", j.n.PNID(), len(st.Certs), j.option, env.BackupDir)
	return append(files, manifest...), nil
}

// backupRootFiles saves what option 8 changes of the VMCA root besides
// root.cer: its private key, which Restore needs to make the old root
// VMCA's again, and the previous-generation files root.cer.0 and
// privatekey.pem.0 (copied when they exist, recorded as absent when not).
func (j *job) backupRootFiles(ctx context.Context, st *beforeState, save func(rel string, data []byte, perm os.FileMode) error) error {
	key, err := readRemote(ctx, j.n, PathRootKey)
	if err != nil {
		return err
	}
	st.RootKeyFile = filepath.Join("vmca", filepath.Base(PathRootKey))
	if err := save(st.RootKeyFile, key, 0o600); err != nil {
		return err
	}
	sc, err := j.n.SFTP(ctx)
	if err != nil {
		return err
	}
	for _, p := range previousRootFiles {
		rec := fileState{Path: p}
		fi, err := sc.Stat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("stat %s on %s: %w", p, j.n.PNID(), err)
		default:
			data, err := readRemote(ctx, j.n, p)
			if err != nil {
				return err
			}
			rec.Exists, rec.Mode = true, fmt.Sprintf("%04o", fi.Mode().Perm())
			rec.File = filepath.Join("vmca", filepath.Base(p))
			if err := save(rec.File, data, 0o600); err != nil {
				return err
			}
		}
		st.RootPrevious = append(st.RootPrevious, rec)
	}
	return nil
}

// crlAliases lists the aliases of TRUSTED_ROOT_CRLS (none when the node
// has no such store).
func (j *job) crlAliases(ctx context.Context) ([]string, error) {
	stores, err := j.vecs.stores(ctx)
	if err != nil || !slices.Contains(stores, StoreTrustedRootCRLs) {
		return nil, err
	}
	es, err := j.vecs.entries(ctx, StoreTrustedRootCRLs)
	if err != nil {
		return nil, err
	}
	aliases := []string{}
	for _, e := range es {
		aliases = append(aliases, e.Alias)
	}
	return aliases, nil
}

// trustedRoot is one TRUSTED_ROOTS entry to back up.
type trustedRoot struct {
	state certState
	text  string
}

// trustedRoots reads TRUSTED_ROOTS (when the node has it).
func (j *job) trustedRoots(ctx context.Context, now time.Time) ([]trustedRoot, error) {
	stores, err := j.vecs.stores(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(stores, StoreTrustedRoots) {
		return nil, nil
	}
	es, err := j.vecs.entries(ctx, StoreTrustedRoots)
	if err != nil {
		return nil, err
	}
	var out []trustedRoot
	for _, e := range es {
		o := object{Store: StoreTrustedRoots, Alias: e.Alias}
		st := certState{object: o, CertFile: filepath.Join(StoreTrustedRoots, safeName(e.Alias)+".crt")}
		if c, err := decodeFirst(e.Text); err == nil {
			d := describe(o, c, now)
			d.CertFile = st.CertFile
			st = d
		}
		out = append(out, trustedRoot{state: st, text: e.Text})
	}
	return out, nil
}

func applyRun(ctx context.Context, env *engine.Env, p *runParams) (runOutputs, error) {
	j, err := prepare(env, p, true)
	if err != nil {
		return runOutputs{}, err
	}
	pnid := j.n.PNID()
	before, ok, err := loadBefore(env, pnid, j.option)
	if err != nil {
		return runOutputs{}, err
	}
	if !ok {
		// Called without Backup (never by the engine): record at least
		// what Check compares with.
		objs, err := j.scope(ctx)
		if err != nil {
			return runOutputs{}, err
		}
		certs, err := j.readAll(ctx, objs, env.Time())
		if err != nil {
			return runOutputs{}, err
		}
		before = &beforeState{Node: pnid, Option: j.option, Taken: env.Time(), Certs: certs}
		if _, err := saveBefore(env, before); err != nil {
			return runOutputs{}, err
		}
	}
	logOffset, err := remoteSize(ctx, j.n, PathCertificateManagerLog)
	if err != nil {
		logOffset = 0 // only the log tail of a failure needs it
	}
	env.Logf("%s: certificate-manager option %s (%s)", pnid, j.option, optionTitles[j.option])
	transcript, exit, runErr := j.drive(ctx)
	out := runOutputs{Transcript: trimTranscript(j.redact(transcript)), Replaced: []Replacement{}}
	prog := ParseTranscript(transcript)
	out.RolledBack = prog.RolledBack
	switch {
	case prog.RolledBack || prog.RollbackFailed:
		return out, j.rollbackError(ctx, prog, logOffset)
	case runErr != nil && len(prog.Statuses) > 0:
		return out, j.redactErr(fmt.Errorf("certificate-manager option %s on %s was stopped while it worked (last: %s), so its certificates may be half replaced; "+
			"Check, or resuming the run, tells (the originals are in this step's backup folder): %w", j.option, pnid, prog.Statuses[len(prog.Statuses)-1], runErr))
	case runErr != nil:
		return out, j.redactErr(fmt.Errorf("certificate-manager option %s on %s: %w", j.option, pnid, runErr))
	case !prog.Completed:
		return out, j.redactErr(fmt.Errorf("certificate-manager option %s on %s ended (exit status %d) without reporting success; it printed last:\n%s%s",
			j.option, pnid, exit, screenTail(transcript, 8), j.logTail(ctx, logOffset)))
	}
	now := env.Time()
	for _, b := range before.Certs {
		c, _, err := j.read(ctx, b.object)
		if err != nil {
			return out, fmt.Errorf("read %s after certificate-manager: %w", b.String(), err)
		}
		cur := describe(b.object, c, now)
		out.Replaced = append(out.Replaced, Replacement{Object: b.String(), OldSHA1: b.SHA1, NewSHA1: cur.SHA1, NotAfter: cur.NotAfter})
		env.Logf("%s: %s %s → %s", pnid, b.String(), b.SHA1, cur.SHA1)
	}
	if hasMachineSSL(objectsOf(before.Certs)) {
		if err := j.repin(ctx); err != nil {
			return out, err
		}
	}
	return out, nil
}

func objectsOf(certs []certState) []object {
	out := make([]object, len(certs))
	for i, c := range certs {
		out[i] = c.object
	}
	return out
}

// repin moves the target's TLS pin to the Machine SSL certificate the
// node's VECS holds, read over the pinned SSH connection: what the node
// serves on 443 and 636 once certificate-manager restarted it.
func (j *job) repin(ctx context.Context) error {
	c, _, err := j.vecs.cert(ctx, StoreMachineSSL, AliasMachineCert)
	if err != nil {
		return fmt.Errorf("read the new Machine SSL certificate to re-pin: %w", err)
	}
	thumb := target.Thumbprint(c)
	if pinned, _ := j.n.Pins(); strings.EqualFold(strings.ReplaceAll(pinned, ":", ""), strings.ReplaceAll(thumb, ":", "")) {
		return nil
	}
	if err := j.n.Repin(thumb); err != nil {
		return fmt.Errorf("re-pin %s: %w", j.n.PNID(), err)
	}
	j.env.Logf("%s: TLS pin moved to %s, the new Machine SSL certificate read from VECS over SSH", j.n.PNID(), thumb)
	return nil
}

func checkRun(ctx context.Context, env *engine.Env, p *runParams) (engine.Verdict[runOutputs], error) {
	j, err := prepare(env, p, false)
	if err != nil {
		return engine.Verdict[runOutputs]{}, err
	}
	pnid := j.n.PNID()
	before, ok, err := loadBefore(env, pnid, j.option)
	if err != nil {
		return engine.Verdict[runOutputs]{}, err
	}
	if !ok {
		return engine.Verdict[runOutputs]{State: engine.NotApplied,
			Detail: "no before-state was saved: the backup did not complete, so certificate-manager has not run for this step"}, nil
	}
	now := env.Time()
	out := runOutputs{Replaced: []Replacement{}}
	var replaced, same, other []string
	for _, b := range before.Certs {
		c, _, err := j.read(ctx, b.object)
		if err != nil {
			other = append(other, fmt.Sprintf("%s unreadable (%v)", b.String(), err))
			continue
		}
		cur := describe(b.object, c, now)
		switch {
		case cur.SHA1 == b.SHA1:
			same = append(same, b.String())
		case now.Before(c.NotBefore) || now.After(c.NotAfter):
			other = append(other, fmt.Sprintf("%s replaced by %s, which is not valid now (%s to %s)", b.String(), cur.SHA1,
				c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly)))
		default:
			replaced = append(replaced, b.String())
			out.Replaced = append(out.Replaced, Replacement{Object: b.String(), OldSHA1: b.SHA1, NewSHA1: cur.SHA1, NotAfter: cur.NotAfter})
		}
	}
	total := len(before.Certs)
	switch {
	case len(replaced) == total:
		if hasMachineSSL(objectsOf(before.Certs)) {
			if err := j.repin(ctx); err != nil {
				return engine.Verdict[runOutputs]{}, err
			}
		}
		return engine.Verdict[runOutputs]{State: engine.Applied, Outputs: out,
			Detail: fmt.Sprintf("all %d certificate(s) of option %s on %s differ from the backup and are valid: %s", total, j.option, pnid, strings.Join(replaced, ", "))}, nil
	case len(same) == total:
		return engine.Verdict[runOutputs]{State: engine.NotApplied,
			Detail: fmt.Sprintf("the %d certificate(s) of option %s on %s are those of the backup", total, j.option, pnid)}, nil
	}
	var parts []string
	if len(replaced) > 0 {
		parts = append(parts, "replaced: "+strings.Join(replaced, ", "))
	}
	if len(same) > 0 {
		parts = append(parts, "as before: "+strings.Join(same, ", "))
	}
	parts = append(parts, other...)
	return engine.Verdict[runOutputs]{State: engine.Unknown,
		Detail: fmt.Sprintf("option %s on %s is partly in place; %s", j.option, pnid, strings.Join(parts, "; "))}, nil
}

// drive runs certificate-manager on a terminal and converses with it.
// It returns everything it printed (normalized) and its exit status.
func (j *job) drive(ctx context.Context) (string, int, error) {
	c, err := j.n.SSH(ctx)
	if err != nil {
		return "", -1, err
	}
	s, err := startSession(c, PathCertificateManager)
	if err != nil {
		return "", -1, fmt.Errorf("run certificate-manager on %s: %w", j.n.PNID(), err)
	}
	pnid := j.n.PNID()
	con := &console{chunks: s.out.ch, send: s.send, tm: consoleTiming, onLine: func(line string) {
		if st, ok := ParseStatus(line); ok {
			j.env.Logf("%s: certificate-manager: %s", pnid, st)
		}
	}}
	err = con.converse(ctx, newDialog(j.answers))
	exit := s.close(consoleTiming.exit)
	return normalize(con.raw.String(), true), exit, err
}

// ErrRolledBack marks a certificate-manager run that failed and rolled
// back.
var ErrRolledBack = errors.New("certificate-manager rolled back")

// rollbackError explains a rollback with certificate-manager's last lines,
// the end of its log and the KB's advice.
func (j *job) rollbackError(ctx context.Context, prog Progress, logOffset int64) error {
	var b strings.Builder
	if last := prog.Last(); last.Message != "" {
		fmt.Fprintf(&b, " during %q", last.Message)
	}
	if len(prog.Errors) > 0 {
		errs := make([]string, len(prog.Errors))
		for i, e := range prog.Errors {
			errs[i] = strings.TrimRight(e, ".")
		}
		b.WriteString(": " + strings.Join(errs, "; "))
	}
	switch {
	case prog.RollbackFailed:
		b.WriteString(". Its automatic rollback FAILED too: the node's certificates may be half replaced; " +
			"restore them from this step's backup folder, or run option 8 (KB 2112283)")
	case prog.RollbackCompleted:
		b.WriteString(". The rollback completed: the node's certificates and registrations are as before, " +
			"except that BACKUP_STORE now holds this attempt's copies (it keeps one generation; the originals " +
			"are in this step's backup folder)")
	}
	b.WriteString(". A rollback usually means the services did not start with the new certificate because other " +
		"certificates are expired too: fix the STS signing certificate first (KB 76719); when several kinds of " +
		"certificates are expired, run option 8, or option 6 then option 3 (KB 2097936, KB 2112283)")
	b.WriteString(j.logTail(ctx, logOffset))
	return fmt.Errorf("%w%s", ErrRolledBack, j.redact(b.String()))
}

// logTail returns the lines certificate-manager.log gained since offset
// (at most the last 15), for an error message; "" when it cannot be read.
func (j *job) logTail(ctx context.Context, offset int64) string {
	data, err := readFrom(ctx, j.n, PathCertificateManagerLog, offset, 64<<10)
	if err != nil || len(strings.TrimSpace(string(data))) == 0 {
		return ""
	}
	return "\n" + PathCertificateManagerLog + " ends with:\n" + screenTail(j.redact(string(data)), 15)
}

// redact masks the password and the run's secrets.
func (j *job) redact(s string) string {
	if pw := j.answers.password; pw != "" {
		s = strings.ReplaceAll(s, pw, engine.Mask)
	}
	if j.env.Redact != nil {
		s = j.env.Redact(s)
	}
	return s
}

// redactErr returns err with its message redacted; it still matches
// ErrRolledBack and context errors it wrapped.
func (j *job) redactErr(err error) error {
	msg := j.redact(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Is lets errors.Is see the sentinels the original wrapped without
// exposing its text through Unwrap.
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

// maxTranscript bounds the transcript output.
const maxTranscript = 64 << 10

// trimTranscript squeezes runs of blank lines, trims line ends and keeps
// the end of a transcript longer than maxTranscript.
func trimTranscript(s string) string {
	var b strings.Builder
	blank := 0
	for _, l := range strings.Split(strings.Trim(s, "\n"), "\n") {
		l = strings.TrimRight(l, " \t")
		if l == "" {
			blank++
			if blank > 1 {
				continue
			}
		} else {
			blank = 0
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	out := b.String()
	if len(out) > maxTranscript {
		cut := len(out) - maxTranscript
		if i := strings.IndexByte(out[cut:], '\n'); i >= 0 {
			cut += i + 1
		}
		out = fmt.Sprintf("[… %d bytes left out …]\n", cut) + out[cut:]
	}
	return out
}
