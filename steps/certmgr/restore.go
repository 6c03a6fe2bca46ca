package certmgr

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"runbook/steps/certinfo"
	"runbook/steps/shellquote"
	"runbook/target"
)

// SSOLogin is the SSO administrator Restore signs in to vmdir as, to put
// the solution users' certificates back with dir-cli. The password is
// typed on dir-cli's standard input, never in a command line, and String
// and GoString never show it.
type SSOLogin struct {
	// User is a UPN such as administrator@vsphere.local; administrator of
	// the node's SSO domain when empty.
	User string
	// Password is the user's password.
	Password string
}

// String names the user, not the password.
func (l SSOLogin) String() string { return l.User + " (password not shown)" }

// GoString is String for %#v.
func (l SSOLogin) GoString() string {
	return "certmgr.SSOLogin{User: " + strconv.Quote(l.User) + ", Password: <not shown>}"
}

// ErrBadBackup marks a backup folder Restore cannot use: missing, of
// another node, incomplete, or with a file that is not what before.json
// says it is. Restore then changes nothing.
var ErrBadBackup = errors.New("unusable certmgr.run backup")

// Restore puts node n back as the certmgr.run backup in backupDir
// describes it, the way certificate-manager's option 7 ("Revert last
// performed operation by re-publishing old certificates") does, but from
// the step's own copies rather than BACKUP_STORE's single generation, and
// only through the appliance's tools over SSH and SFTP:
//
//   - the VMCA root (option 8): `certool --rootca` with the saved root.cer
//     and privatekey.pem, then root.cer.0 and privatekey.pem.0 as they were;
//   - the Lookup Service (options 3 and 8): the endpoints whose first
//     sslTrust is the Machine SSL certificate VECS holds now get the saved
//     one back, as ls_update_certs.py would with the thumbprints swapped;
//   - each saved VECS entry that differs: `vecs-cli entry delete -y` then
//     `vecs-cli entry create` with the saved certificate (chain) and key;
//   - the solution users' service principals (options 6 and 8):
//     `dir-cli service update --name <store>-<machine id> --cert`, with
//     sso's password on dir-cli's standard input;
//   - TRUSTED_ROOTS and TRUSTED_ROOT_CRLS (option 8): saved roots put back,
//     entries the backup does not list deleted;
//   - `service-control --stop --ignore --all` and `--start --all` when
//     anything changed (else only `--start --all`);
//   - the target's TLS pin, moved to the Machine SSL certificate read back
//     from VECS over SSH.
//
// Certificates and keys are uploaded to a private folder under /tmp
// (mode 0700, files 0600) and removed before Restore returns. Everything
// is compared first and only what differs is changed, so running Restore
// again, or after an interrupted Restore, is safe. The backup folder is
// read and checked whole before anything changes: an unusable one fails
// with ErrBadBackup. sso is needed for backups of options 6 and 8 (the
// caller takes it from conn.SSO). Restore says what it did on out (nil
// discards it); it never prints the password.
//
// What it cannot undo: the new VMCA root of option 8 stays published in
// vmdir (and so on other nodes' TRUSTED_ROOTS); BACKUP_STORE keeps the
// copies certificate-manager made; logs and vmdir's update counters grow.
func Restore(ctx context.Context, n *target.Node, backupDir string, sso SSOLogin, out io.Writer) (err error) {
	if out == nil {
		out = io.Discard
	}
	b, err := loadBackup(backupDir, n.PNID())
	if err != nil {
		return err
	}
	if b.hasSolutionUsers() {
		if sso.Password == "" {
			return errors.New("restore solution users: no SSO password for dir-cli")
		}
		if strings.ContainsAny(sso.Password, "\r\n") {
			return errors.New("restore solution users: the SSO password holds a line break, which dir-cli would read as the end of it")
		}
	}
	r := &restorer{n: n, b: b, sso: sso, out: out, vecs: vecs{n: n}}
	defer func() {
		if cerr := r.cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return r.run(ctx)
}

// savedEntry is a VECS entry of the backup, read and checked.
type savedEntry struct {
	store, alias string
	sha1         string
	subject      string
	// chain is the certificate chain, leaf first, as DER.
	chain [][]byte
	// certPEM is the certificate file as saved; keyPEM the key file
	// (nil for a trusted certificate), secret.
	certPEM, keyPEM []byte
}

func (e *savedEntry) String() string { return e.store + "/" + e.alias }

// savedFile is a node file of the backup: its content and mode, or its
// absence.
type savedFile struct {
	path   string
	exists bool
	mode   os.FileMode
	data   []byte
}

// savedRoot is the VMCA root of the backup.
type savedRoot struct {
	certPEM, keyPEM []byte
	sha1, subject   string
	previous        []savedFile
}

// savedBackup is a backup folder, read and checked.
type savedBackup struct {
	dir string
	st  *beforeState
	// entries are the Machine SSL and solution-user entries, in backup
	// order.
	entries []*savedEntry
	root    *savedRoot
	// trusted are the TRUSTED_ROOTS entries that are certificates;
	// trustedAliases every alias TRUSTED_ROOTS held; hasTrusted whether
	// the backup recorded the store.
	trusted        []*savedEntry
	trustedAliases []string
	hasTrusted     bool
	// crlAliases are TRUSTED_ROOT_CRLS' aliases when recorded (hasCRLs).
	crlAliases []string
	hasCRLs    bool
}

func (b *savedBackup) hasSolutionUsers() bool {
	return slices.ContainsFunc(b.entries, func(e *savedEntry) bool { return e.store != StoreMachineSSL })
}

func (b *savedBackup) machine() *savedEntry {
	for _, e := range b.entries {
		if e.store == StoreMachineSSL {
			return e
		}
	}
	return nil
}

// loadBackup reads a backup folder and checks every file it names against
// before.json: certificates by SHA-1, keys against their certificates.
func loadBackup(dir, pnid string) (*savedBackup, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrBadBackup, dir, fmt.Sprintf(format, args...))
	}
	if dir == "" {
		return nil, fmt.Errorf("%w: no backup folder given", ErrBadBackup)
	}
	data, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, bad("%v", err)
	}
	var st beforeState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, bad("%s: %v", manifestFile, err)
	}
	if !strings.EqualFold(st.Node, pnid) {
		return nil, bad("it is of node %q, not %s", st.Node, pnid)
	}
	if _, ok := optionTitles[st.Option]; !ok {
		return nil, bad("%s: option %q is not 3, 6 or 8", manifestFile, st.Option)
	}
	if len(st.Certs) == 0 {
		return nil, bad("%s lists no certificate", manifestFile)
	}
	read := func(rel string) ([]byte, error) {
		if rel == "" || !filepath.IsLocal(rel) {
			return nil, bad("%s names %q, which is not a file of the backup folder", manifestFile, rel)
		}
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return nil, bad("%v", err)
		}
		return data, nil
	}
	b := &savedBackup{dir: dir, st: &st}
	seen := map[string]bool{}
	for _, c := range st.Certs {
		if seen[c.String()] {
			return nil, bad("%s lists %s twice", manifestFile, c.String())
		}
		seen[c.String()] = true
		if c.File != "" {
			if c.File != PathRootCert || st.Option != "8" {
				return nil, bad("%s names the file %s, which option %s does not replace", manifestFile, c.File, st.Option)
			}
			root, err := loadRoot(&st, c, read, bad)
			if err != nil {
				return nil, err
			}
			b.root = root
			continue
		}
		machine := c.Store == StoreMachineSSL && c.Alias == AliasMachineCert && st.Option != "6"
		soluser := slices.Contains(solutionUsers, c.Store) && c.Alias == c.Store && st.Option != "3"
		if !machine && !soluser {
			return nil, bad("%s names %s, which option %s does not replace", manifestFile, c.String(), st.Option)
		}
		e, err := loadEntry(c, read, bad)
		if err != nil {
			return nil, err
		}
		if c.KeyFile == "" {
			return nil, bad("%s names no key for %s", manifestFile, c.String())
		}
		if e.keyPEM, err = read(c.KeyFile); err != nil {
			return nil, err
		}
		if err := keyMatches(e.keyPEM, e.chain[0]); err != nil {
			return nil, bad("%s is not the key of %s: %v", c.KeyFile, c.String(), err)
		}
		b.entries = append(b.entries, e)
	}
	if st.Option == "8" {
		b.hasTrusted = st.TrustedRoots != nil
		for _, t := range st.TrustedRoots {
			if t.Store != StoreTrustedRoots || t.Alias == "" {
				return nil, bad("%s lists %s among TRUSTED_ROOTS", manifestFile, t.String())
			}
			b.trustedAliases = append(b.trustedAliases, t.Alias)
			if t.SHA1 == "" {
				continue // not a certificate (the backup could not read it): left alone
			}
			e, err := loadEntry(t, read, bad)
			if err != nil {
				return nil, err
			}
			b.trusted = append(b.trusted, e)
		}
		b.crlAliases, b.hasCRLs = st.TrustedRootCRLs, st.TrustedRootCRLs != nil
	}
	return b, nil
}

// loadEntry reads and checks the certificate file of a VECS entry.
func loadEntry(c certState, read func(string) ([]byte, error), bad func(string, ...any) error) (*savedEntry, error) {
	data, err := read(c.CertFile)
	if err != nil {
		return nil, err
	}
	chain, err := pemCerts(data)
	if err != nil {
		return nil, bad("%s: %v", c.CertFile, err)
	}
	leaf, _ := x509.ParseCertificate(chain[0])
	info := certinfo.Describe(leaf, time.Time{})
	if !sameSHA1(info.SHA1, c.SHA1) {
		return nil, bad("%s holds the certificate with SHA-1 %s, not %s's %s", c.CertFile, info.SHA1, c.String(), c.SHA1)
	}
	return &savedEntry{store: c.Store, alias: c.Alias, sha1: info.SHA1, subject: info.Subject, chain: chain, certPEM: data}, nil
}

// loadRoot reads and checks the VMCA root files of the backup.
func loadRoot(st *beforeState, c certState, read func(string) ([]byte, error), bad func(string, ...any) error) (*savedRoot, error) {
	certPEM, err := read(c.CertFile)
	if err != nil {
		return nil, err
	}
	ders, err := pemCerts(certPEM)
	if err != nil {
		return nil, bad("%s: %v", c.CertFile, err)
	}
	cert, _ := x509.ParseCertificate(ders[0])
	info := certinfo.Describe(cert, time.Time{})
	if !sameSHA1(info.SHA1, c.SHA1) {
		return nil, bad("%s holds the certificate with SHA-1 %s, not the VMCA root's %s", c.CertFile, info.SHA1, c.SHA1)
	}
	if st.RootKeyFile == "" {
		return nil, bad("it has no copy of the VMCA root's private key (%s), without which the old root cannot sign again", PathRootKey)
	}
	keyPEM, err := read(st.RootKeyFile)
	if err != nil {
		return nil, err
	}
	if err := keyMatches(keyPEM, ders[0]); err != nil {
		return nil, bad("%s is not the key of the VMCA root: %v", st.RootKeyFile, err)
	}
	root := &savedRoot{certPEM: certPEM, keyPEM: keyPEM, sha1: info.SHA1, subject: info.Subject}
	for _, p := range st.RootPrevious {
		if !slices.Contains(previousRootFiles, p.Path) {
			return nil, bad("%s names the file %s, which option 8 does not replace", manifestFile, p.Path)
		}
		f := savedFile{path: p.Path, exists: p.Exists}
		if p.Exists {
			mode, err := strconv.ParseUint(p.Mode, 8, 32)
			if err != nil || mode > 0o777 {
				return nil, bad("%s: mode %q of %s is not octal permission bits", manifestFile, p.Mode, p.Path)
			}
			f.mode = os.FileMode(mode)
			if f.data, err = read(p.File); err != nil {
				return nil, err
			}
		}
		root.previous = append(root.previous, f)
	}
	return root, nil
}

// pemCerts returns the DER of every CERTIFICATE block of data, which must
// hold at least one, each a certificate.
func pemCerts(data []byte) ([][]byte, error) {
	var ders [][]byte
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		ders = append(ders, blk.Bytes)
	}
	if len(ders) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return ders, nil
}

// privateKey returns the PEM private key in data.
func privateKey(data []byte) (crypto.Signer, []byte, error) {
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, nil, errors.New("no PEM private key")
		}
		if !strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			continue
		}
		var key any
		var err error
		switch blk.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(blk.Bytes)
		default:
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("parse private key: %w", err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			return k, blk.Bytes, nil
		case *ecdsa.PrivateKey:
			return k, blk.Bytes, nil
		case ed25519.PrivateKey:
			return k, blk.Bytes, nil
		}
		return nil, nil, fmt.Errorf("unsupported private key %T", key)
	}
}

// keyMatches checks that the PEM key is the private half of the
// certificate's public key.
func keyMatches(keyPEM, certDER []byte) error {
	key, _, err := privateKey(keyPEM)
	if err != nil {
		return err
	}
	c, err := x509.ParseCertificate(certDER)
	if err != nil {
		return err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(c.PublicKey) {
		return errors.New("the key does not match the certificate")
	}
	return nil
}

// sameSHA1 compares thumbprints with or without colons, in any case.
func sameSHA1(a, b string) bool {
	norm := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, ":", "")) }
	return a != "" && norm(a) == norm(b)
}

// restorer is one Restore on a node.
type restorer struct {
	n    *target.Node
	b    *savedBackup
	sso  SSOLogin
	out  io.Writer
	vecs vecs
	// changed counts the changes made; services are restarted when any.
	changed int
	// stage is the private folder certificates and keys are uploaded to.
	stage *stage
}

// say writes a line about the node on out.
func (r *restorer) say(format string, args ...any) {
	fmt.Fprintf(r.out, "%s: %s\n", r.n.PNID(), fmt.Sprintf(format, args...))
}

func (r *restorer) run(ctx context.Context) error {
	st := r.b.st
	r.say("restoring what certificate-manager option %s (%s) replaced, from the backup of %s in %s",
		st.Option, optionTitles[st.Option], st.Taken.UTC().Format(time.RFC3339), r.b.dir)
	if r.b.root != nil {
		if err := r.restoreRoot(ctx); err != nil {
			return err
		}
	}
	machine := r.b.machine()
	if machine != nil {
		// Before VECS changes: the certificate to take the registrations
		// from is the one VECS holds now. After an interrupted Restore that
		// already put the old one back, the registrations were done first.
		if err := r.restoreRegistrations(ctx, machine); err != nil {
			return err
		}
	}
	for _, e := range r.b.entries {
		if err := r.restoreEntry(ctx, e); err != nil {
			return err
		}
		if e == machine {
			if err := r.repin(ctx); err != nil {
				return err
			}
		}
	}
	if r.b.hasSolutionUsers() {
		if err := r.restorePrincipals(ctx); err != nil {
			return err
		}
	}
	if r.b.hasTrusted {
		if err := r.restoreTrustedRoots(ctx); err != nil {
			return err
		}
	}
	if r.b.hasCRLs {
		if err := r.restoreCRLs(ctx); err != nil {
			return err
		}
	}
	if err := r.restartServices(ctx); err != nil {
		return err
	}
	if r.changed == 0 {
		r.say("restore done: everything was already as in the backup")
	} else {
		r.say("restore done: %d change(s)", r.changed)
	}
	return nil
}

// restoreRoot makes the saved VMCA root VMCA's again with `certool
// --rootca`, then puts root.cer.0 and privatekey.pem.0 back as they were
// (certool keeps the root it replaces there).
func (r *restorer) restoreRoot(ctx context.Context) error {
	root := r.b.root
	curCert, errCert := readRemote(ctx, r.n, PathRootCert)
	curKey, errKey := readRemote(ctx, r.n, PathRootKey)
	if errCert == nil && errKey == nil && bytes.Equal(curCert, root.certPEM) && bytes.Equal(curKey, root.keyPEM) {
		r.say("VMCA root %s (sha1 %s): already as in the backup", root.subject, root.sha1)
	} else {
		certPath, err := r.upload(ctx, "root.cer", root.certPEM)
		if err != nil {
			return err
		}
		keyPath, err := r.upload(ctx, "privatekey.pem", root.keyPEM)
		if err != nil {
			return err
		}
		if _, err := r.tool(ctx, "certool", PathCertool, nil, "--rootca", "--cert="+certPath, "--privkey="+keyPath); err != nil {
			return fmt.Errorf("restore the vmca root: %w", err)
		}
		r.changed++
		r.say("VMCA root %s (sha1 %s): restored with certool --rootca", root.subject, root.sha1)
	}
	sc, err := r.n.SFTP(ctx)
	if err != nil {
		return err
	}
	for _, f := range root.previous {
		if err := r.restoreFile(sc, f); err != nil {
			return err
		}
	}
	return nil
}

// restoreFile puts a node file back as it was: content and mode, or no
// file.
func (r *restorer) restoreFile(sc *sftp.Client, f savedFile) error {
	fi, err := sc.Stat(f.path)
	exists := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat %s on %s: %w", f.path, r.n.PNID(), err)
	}
	if !f.exists {
		if !exists {
			r.say("%s: already absent, as in the backup", f.path)
			return nil
		}
		if err := sc.Remove(f.path); err != nil {
			return fmt.Errorf("remove %s on %s: %w", f.path, r.n.PNID(), err)
		}
		r.changed++
		r.say("%s: removed (it did not exist at the backup)", f.path)
		return nil
	}
	if exists && fi.Mode().Perm() == f.mode {
		if cur, err := readSFTP(sc, f.path); err == nil && bytes.Equal(cur, f.data) {
			r.say("%s: already as in the backup", f.path)
			return nil
		}
	}
	if err := writeSFTP(sc, f.path, f.data, f.mode, false); err != nil {
		return fmt.Errorf("restore %s on %s: %w", f.path, r.n.PNID(), err)
	}
	r.changed++
	r.say("%s: restored (%d bytes, mode %04o)", f.path, len(f.data), f.mode)
	return nil
}

// restoreRegistrations re-points the Lookup Service endpoints that trust
// the Machine SSL certificate VECS holds now back to the saved one: the
// update certificate-manager made, run backwards.
func (r *restorer) restoreRegistrations(ctx context.Context, saved *savedEntry) error {
	cur, ok, err := r.current(ctx, saved.store, saved.alias)
	if err != nil {
		return err
	}
	if !ok {
		r.say("Lookup Service: %s has no entry now (an interrupted Restore deleted it after the registrations were restored); registrations left as they are", saved)
		return nil
	}
	if bytes.Equal(cur[0], saved.chain[0]) {
		r.say("Lookup Service: %s is already the backup's certificate; registrations left as they are", saved)
		return nil
	}
	c, err := x509.ParseCertificate(cur[0])
	if err != nil {
		return fmt.Errorf("read %s on %s: %w", saved, r.n.PNID(), err)
	}
	newSHA1 := certinfo.Describe(c, time.Time{}).SHA1
	services, endpoints, err := repointRegistrations(ctx, r.n, cur[0], saved.chain[0])
	if err != nil {
		return err
	}
	r.changed += services
	r.say("Lookup Service: %d endpoint(s) of %d service(s) trusting sha1 %s re-pointed back to sha1 %s", endpoints, services, newSHA1, saved.sha1)
	return nil
}

// restoreEntry puts a saved VECS entry back when it differs: delete, then
// create from the saved certificate (chain) and key.
func (r *restorer) restoreEntry(ctx context.Context, e *savedEntry) error {
	cur, ok, err := r.current(ctx, e.store, e.alias)
	if err != nil {
		return err
	}
	if ok && slices.EqualFunc(cur, e.chain, bytes.Equal) {
		same, err := r.sameKey(ctx, e)
		if err != nil {
			return err
		}
		if same {
			r.say("VECS %s: already as in the backup (sha1 %s)", e, e.sha1)
			return nil
		}
	}
	certPath, err := r.upload(ctx, safeName(e.store)+"-"+safeName(e.alias)+".crt", e.certPEM)
	if err != nil {
		return err
	}
	args := []string{"entry", "create", "--store", e.store, "--alias", e.alias, "--cert", certPath}
	if e.keyPEM != nil {
		keyPath, err := r.upload(ctx, safeName(e.store)+"-"+safeName(e.alias)+".key", e.keyPEM)
		if err != nil {
			return err
		}
		args = append(args, "--key", keyPath)
	}
	was := "absent"
	if ok {
		if c, err := x509.ParseCertificate(cur[0]); err == nil {
			was = "sha1 " + certinfo.Describe(c, time.Time{}).SHA1
		}
		if _, err := r.vecs.run(ctx, "entry", "delete", "--store", e.store, "--alias", e.alias, "-y"); err != nil {
			return fmt.Errorf("restore %s: %w", e, err)
		}
	}
	if _, err := r.vecs.run(ctx, args...); err != nil {
		return fmt.Errorf("restore %s: %w", e, err)
	}
	r.changed++
	r.say("VECS %s: restored sha1 %s %s (was %s)", e, e.sha1, e.subject, was)
	return nil
}

// current returns the chain (DER, leaf first) of a VECS entry, and false
// when the store has no such entry.
func (r *restorer) current(ctx context.Context, store, alias string) ([][]byte, bool, error) {
	es, err := r.vecs.entries(ctx, store)
	if err != nil {
		return nil, false, err
	}
	for _, e := range es {
		if e.Alias != alias {
			continue
		}
		chain, err := pemCerts([]byte(e.Text))
		if err != nil {
			return nil, false, fmt.Errorf("read %s/%s on %s: %w", store, alias, r.n.PNID(), err)
		}
		return chain, true, nil
	}
	return nil, false, nil
}

// sameKey reports whether the entry's key in VECS is the saved one.
func (r *restorer) sameKey(ctx context.Context, e *savedEntry) (bool, error) {
	if e.keyPEM == nil {
		return true, nil
	}
	cur, err := r.vecs.key(ctx, e.store, e.alias)
	if err != nil {
		return false, err
	}
	_, curDER, err := privateKey(cur)
	if err != nil {
		return false, fmt.Errorf("read the key of %s on %s: %w", e, r.n.PNID(), err)
	}
	_, savedDER, err := privateKey(e.keyPEM)
	if err != nil {
		return false, err
	}
	return bytes.Equal(curDER, savedDER), nil
}

// repin moves the TLS pin to the Machine SSL certificate VECS holds, read
// over the pinned SSH connection.
func (r *restorer) repin(ctx context.Context) error {
	c, _, err := r.vecs.cert(ctx, StoreMachineSSL, AliasMachineCert)
	if err != nil {
		return fmt.Errorf("read the restored Machine SSL certificate to re-pin: %w", err)
	}
	thumb := target.Thumbprint(c)
	if pinned, _ := r.n.Pins(); strings.EqualFold(strings.ReplaceAll(pinned, ":", ""), strings.ReplaceAll(thumb, ":", "")) {
		return nil
	}
	if err := r.n.Repin(thumb); err != nil {
		return fmt.Errorf("re-pin %s: %w", r.n.PNID(), err)
	}
	r.say("TLS pin moved to %s, the restored Machine SSL certificate read from VECS over SSH", thumb)
	return nil
}

// restorePrincipals puts the saved certificates back on the solution
// users' service principals in vmdir, with dir-cli, where they differ.
func (r *restorer) restorePrincipals(ctx context.Context) error {
	machineID, err := r.tool(ctx, "vmafd-cli", PathVmafdCLI, nil, "get-machine-id", "--server-name", "localhost")
	if err != nil {
		return fmt.Errorf("read the machine id: %w", err)
	}
	machineID = strings.TrimSpace(machineID)
	domain, err := r.tool(ctx, "vmafd-cli", PathVmafdCLI, nil, "get-domain-name", "--server-name", "localhost")
	if err != nil {
		return fmt.Errorf("read the sso domain: %w", err)
	}
	domain = strings.TrimSpace(domain)
	if machineID == "" || domain == "" {
		return fmt.Errorf("vmafd-cli on %s printed no machine id or domain name", r.n.PNID())
	}
	user := r.sso.User
	if user == "" {
		user = "administrator@" + domain
	}
	conn, err := r.n.LDAP(ctx)
	if err != nil {
		return err
	}
	for _, e := range r.b.entries {
		if e.store == StoreMachineSSL {
			continue
		}
		name := e.store + "-" + machineID
		dn := "cn=" + name + ",cn=ServicePrincipals," + target.DomainDN(domain)
		cur, err := principalCerts(conn, dn)
		if err != nil {
			return err
		}
		if len(cur) == 1 && bytes.Equal(cur[0], e.chain[0]) {
			r.say("service principal %s: already holds the backup's certificate", name)
			continue
		}
		certPath, err := r.upload(ctx, "principal-"+safeName(name)+".crt", e.certPEM)
		if err != nil {
			return err
		}
		if _, err := r.tool(ctx, "dir-cli", PathDirCLI, strings.NewReader(r.sso.Password+"\n"),
			"service", "update", "--name", name, "--cert", certPath, "--login", user); err != nil {
			return fmt.Errorf("restore service principal %s: %w", name, err)
		}
		r.changed++
		r.say("service principal %s: restored sha1 %s with dir-cli service update", name, e.sha1)
	}
	return nil
}

// restoreTrustedRoots puts TRUSTED_ROOTS back as the backup lists it: its
// certificates where they differ or are missing, no entry it does not list.
func (r *restorer) restoreTrustedRoots(ctx context.Context) error {
	es, err := r.vecs.entries(ctx, StoreTrustedRoots)
	if err != nil {
		return err
	}
	for _, e := range es {
		if slices.Contains(r.b.trustedAliases, e.Alias) {
			continue
		}
		if _, err := r.vecs.run(ctx, "entry", "delete", "--store", StoreTrustedRoots, "--alias", e.Alias, "-y"); err != nil {
			return fmt.Errorf("restore %s: %w", StoreTrustedRoots, err)
		}
		r.changed++
		r.say("VECS %s/%s: deleted (not in the backup)", StoreTrustedRoots, e.Alias)
	}
	for _, t := range r.b.trusted {
		if err := r.restoreEntry(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// restoreCRLs deletes the TRUSTED_ROOT_CRLS entries the backup does not
// list (the CRLs of a root published since). vecs-cli cannot create a CRL
// entry; a listed CRL that is missing is reported.
func (r *restorer) restoreCRLs(ctx context.Context) error {
	stores, err := r.vecs.stores(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(stores, StoreTrustedRootCRLs) {
		return nil
	}
	es, err := r.vecs.entries(ctx, StoreTrustedRootCRLs)
	if err != nil {
		return err
	}
	var have []string
	for _, e := range es {
		have = append(have, e.Alias)
		if slices.Contains(r.b.crlAliases, e.Alias) {
			continue
		}
		if _, err := r.vecs.run(ctx, "entry", "delete", "--store", StoreTrustedRootCRLs, "--alias", e.Alias, "-y"); err != nil {
			return fmt.Errorf("restore %s: %w", StoreTrustedRootCRLs, err)
		}
		r.changed++
		r.say("VECS %s/%s: deleted (not in the backup)", StoreTrustedRootCRLs, e.Alias)
	}
	for _, a := range r.b.crlAliases {
		if !slices.Contains(have, a) {
			r.say("VECS %s/%s: missing, and vecs-cli cannot create a CRL entry; `vecs-cli force-refresh` brings back the CRLs published in vmdir", StoreTrustedRootCRLs, a)
		}
	}
	return nil
}

// restartServices stops and starts the node's services as
// certificate-manager does, when anything changed; otherwise it only
// starts those that should run and do not.
func (r *restorer) restartServices(ctx context.Context) error {
	if r.changed > 0 {
		if _, err := r.tool(ctx, "service-control", PathServiceControl, nil, "--stop", "--ignore", "--all"); err != nil {
			return fmt.Errorf("stop services: %w", err)
		}
	}
	if _, err := r.tool(ctx, "service-control", PathServiceControl, nil, "--start", "--all"); err != nil {
		return fmt.Errorf("start services after the restore (the certificates are restored; services that need a certificate the backup holds expired will not start): %w", err)
	}
	if r.changed > 0 {
		r.say("services stopped and started (service-control --stop --ignore --all, --start --all)")
	} else {
		r.say("services: service-control --start --all (nothing was changed, nothing restarted)")
	}
	return nil
}

// tool runs an appliance command with args, feeding it stdin, and
// returns its standard output; a non-zero exit is an error quoting what
// it printed (never stdin).
func (r *restorer) tool(ctx context.Context, name, prog string, stdin io.Reader, args ...string) (string, error) {
	stdout, stderr, code, err := r.n.Run(ctx, prog+" "+shellquote.Join(args), stdin)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if code != 0 {
		return "", fmt.Errorf("%s %s on %s exited %d: %s", name, strings.Join(args[:min(2, len(args))], " "), r.n.PNID(), code, oneLine(stderr+"\n"+stdout))
	}
	return stdout, nil
}

// stage is a private folder of the node that Restore uploads to.
type stage struct {
	sc    *sftp.Client
	dir   string
	files []string
}

// upload writes data to a new owner-only file of the stage folder and
// returns its path.
func (r *restorer) upload(ctx context.Context, name string, data []byte) (string, error) {
	if r.stage == nil {
		sc, err := r.n.SFTP(ctx)
		if err != nil {
			return "", err
		}
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("name a folder: %w", err)
		}
		dir := "/tmp/certmgr-restore-" + hex.EncodeToString(b)
		if err := sc.Mkdir(dir); err != nil {
			return "", fmt.Errorf("create %s on %s: %w", dir, r.n.PNID(), err)
		}
		r.stage = &stage{sc: sc, dir: dir}
		if err := sc.Chmod(dir, 0o700); err != nil {
			return "", fmt.Errorf("chmod %s on %s: %w", dir, r.n.PNID(), err)
		}
	}
	p := path.Join(r.stage.dir, name)
	r.stage.files = append(r.stage.files, p)
	if err := writeSFTP(r.stage.sc, p, data, 0o600, true); err != nil {
		return "", fmt.Errorf("upload %s to %s: %w", name, r.n.PNID(), err)
	}
	return p, nil
}

// cleanup removes the stage folder and what was uploaded to it.
func (r *restorer) cleanup() error {
	if r.stage == nil {
		return nil
	}
	var errs []error
	for _, p := range r.stage.files {
		if err := r.stage.sc.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := r.stage.sc.RemoveDirectory(r.stage.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove the uploaded certificates and keys from %s on %s: %w", r.stage.dir, r.n.PNID(), err)
	}
	return nil
}

// writeSFTP writes data to p with mode perm, set before any byte is
// written; excl refuses an existing file.
func writeSFTP(sc *sftp.Client, p string, data []byte, perm os.FileMode, excl bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if excl {
		flags |= os.O_EXCL
	}
	f, err := sc.OpenFile(p, flags)
	if err != nil {
		return err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readSFTP reads a small file.
func readSFTP(sc *sftp.Client, p string) ([]byte, error) {
	f, err := sc.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 4<<20))
}
