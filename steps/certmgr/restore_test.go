package certmgr

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"runbook/engine"
	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/steps/conn"
	"runbook/target"
)

// snapLine is one line of a lab snapshot with where it is: the section
// ("directory", or the node's PNID) and the part of it (the entry's DN in
// the directory; "vecs <store>", "services" or "files" in a node).
type snapLine struct {
	node, part, text string
}

func (l snapLine) String() string {
	where := l.node
	if l.part != "" {
		where += " [" + l.part + "]"
	}
	return where + " " + l.text
}

// snapLines splits a lab snapshot (model.Domain.Snapshot) into located
// lines: LDIF records are unfolded, VECS entry lines carry their alias.
func snapLines(snap []byte) []snapLine {
	var out []snapLine
	section, part, alias := "domain", "", ""
	var record []string
	flush := func() {
		if len(record) == 0 {
			return
		}
		dn := strings.TrimPrefix(record[0], "dn: ")
		for _, l := range record[1:] {
			out = append(out, snapLine{node: "directory", part: dn, text: l})
		}
		out = append(out, snapLine{node: "directory", part: dn, text: "(entry)"})
		record = nil
	}
	for _, l := range strings.Split(string(snap), "\n") {
		switch {
		case l == "== directory":
			section, part = "directory", ""
			continue
		case strings.HasPrefix(l, "== node "):
			flush()
			section, part = strings.TrimPrefix(l, "== node "), ""
			continue
		}
		if section == "directory" {
			switch {
			case l == "":
				flush()
			case strings.HasPrefix(l, " ") && len(record) > 0:
				record[len(record)-1] += l[1:]
			default:
				record = append(record, l)
			}
			continue
		}
		switch {
		case l == "":
			continue
		case l == "-- vecs":
			part = "vecs"
			continue
		case strings.HasPrefix(l, "store "):
			part, alias = "vecs "+strings.TrimPrefix(l, "store "), ""
		case l == "-- services" || l == "-- files":
			part = strings.TrimPrefix(l, "-- ")
			continue
		case strings.HasPrefix(l, "  entry "):
			alias = strings.Fields(l)[1]
		case strings.HasPrefix(l, "    "):
			l = "entry " + alias + strings.TrimPrefix(l, "   ")
		}
		out = append(out, snapLine{node: section, part: part, text: strings.TrimSpace(l)})
	}
	flush()
	return out
}

// cannotUndo is a difference between the lab before certmgr.run and after
// Restore that Restore legitimately leaves, and why.
type cannotUndo struct {
	what, why string
	// match reports whether the rule accounts for l, a line only in the
	// snapshot after Restore (added) or only in the one before.
	match func(l snapLine, added bool) bool
}

// commonCannotUndo are the differences option leaves on node pnid,
// besides option 8's own. vmdir's update sequence numbers (USNs) grow
// too, but they are operational attributes the snapshot does not hold.
func commonCannotUndo(option, pnid string) []cannotUndo {
	file := func(l snapLine, p string) bool {
		return l.node == pnid && l.part == "files" && (strings.HasSuffix(l.text, " "+p) || strings.Contains(l.text, " "+p+"/"))
	}
	rules := []cannotUndo{{
		what: "BACKUP_STORE of the restored node",
		why:  "certificate-manager copies each certificate it replaces there (one generation, bkp_<alias>); Restore works from the step's own backup and leaves certificate-manager's copies, as its option 7 does",
		match: func(l snapLine, _ bool) bool {
			return l.node == pnid && l.part == "vecs "+model.StoreBackup
		},
	}, {
		what:  PathCertificateManagerLog,
		why:   "a log records what happened; nothing rolls it back",
		match: func(l snapLine, _ bool) bool { return file(l, PathCertificateManagerLog) },
	}}
	if option != "6" { // option 6 asks no certool.cfg questions
		rules = append(rules, cannotUndo{
			what:  "/var/tmp/vmware/certool.cfg",
			why:   "certificate-manager's working copy of certool.cfg, kept for the next run's \"Previous value\" answers",
			match: func(l snapLine, added bool) bool { return added && file(l, "/var/tmp/vmware") },
		})
	}
	return rules
}

// option8CannotUndo are the differences option 8 leaves besides: what it
// did to the directory and to the other nodes, which Restore (acting on
// the node of the backup, through that node's tools) does not reach.
func option8CannotUndo(pnid, newRootDN, newRootAlias string) []cannotUndo {
	other := func(l snapLine) bool { return l.node != pnid && l.node != "directory" && l.node != "domain" }
	return []cannotUndo{{
		what: "the new VMCA root's entry " + newRootDN,
		why: "option 8 published it; the lab's dir-cli has no `trustedcert unpublish`, and certificate-manager's revert re-publishes " +
			"the old root without unpublishing the new one (an extra trusted root, whose certificates Restore replaced)",
		match: func(l snapLine, added bool) bool {
			return added && l.node == "directory" && strings.EqualFold(l.part, newRootDN)
		},
	}, {
		what: "the new VMCA root in the other nodes' TRUSTED_ROOTS",
		why:  "option 8 adds it to every node's TRUSTED_ROOTS; Restore changes the node of the backup only",
		match: func(l snapLine, added bool) bool {
			return added && other(l) && l.part == "vecs "+StoreTrustedRoots && strings.Contains(l.text, newRootAlias)
		},
	}, {
		what: "CRLs added to the other nodes' TRUSTED_ROOT_CRLS",
		why: "the new root's CRL (option 8) and the old root's CRL re-issued when `certool --rootca` makes it VMCA's again; " +
			"Restore deletes them on the node of the backup only",
		match: func(l snapLine, added bool) bool { return added && other(l) && l.part == "vecs "+StoreTrustedRootCRLs },
	}, {
		what: "root.cer.0 and privatekey.pem.0 of the other nodes",
		why: "certool keeps the replaced root there on every node that runs VMCA (the lab's VMCA nodes share the root); " +
			"Restore puts back those of the node of the backup",
		match: func(l snapLine, added bool) bool {
			return added && other(l) && l.part == "files" && slices.ContainsFunc(previousRootFiles, func(p string) bool { return strings.HasSuffix(l.text, " "+p) })
		},
	}}
}

// diffBut compares two snapshots and returns the differing lines that no
// rule accounts for, and the rules that accounted for some.
func diffBut(before, after []byte, rules []cannotUndo) (unexplained []string, used map[string]bool) {
	used = map[string]bool{}
	count := func(ls []snapLine) map[snapLine]int {
		m := map[snapLine]int{}
		for _, l := range ls {
			m[l]++
		}
		return m
	}
	b, a := snapLines(before), snapLines(after)
	cb, ca := count(b), count(a)
	check := func(added bool, ls []snapLine, other map[snapLine]int) {
		sign := "-"
		if added {
			sign = "+"
		}
		for _, l := range ls {
			if other[l] > 0 {
				other[l]--
				continue
			}
			explained := false
			for _, r := range rules {
				if r.match(l, added) {
					used[r.what], explained = true, true
					break
				}
			}
			if !explained {
				unexplained = append(unexplained, sign+" "+l.String())
			}
		}
	}
	check(false, b, ca)
	check(true, a, cb)
	return unexplained, used
}

// restoreLab is a lab where certmgr.run's Backup and Apply ran.
type restoreLab struct {
	*labEnv
	n      *target.Node
	sso    SSOLogin
	before []byte // the snapshot before the step
	oldSSL *x509.Certificate
	pnid   string
	// newRoot is the VMCA root after Apply.
	newRoot *pki.CA
}

// appliedLab runs Backup and Apply of option on the first node of a fresh
// lab of scenario.
func appliedLab(t *testing.T, scenario, option string) *restoreLab {
	t.Helper()
	ctx := t.Context()
	e := testLab(t, scenario)
	r := &restoreLab{labEnv: e, pnid: e.d.Nodes[0].PNID, before: e.l.Snapshot(),
		oldSSL: storeCert(t, e.d.Nodes[0], model.StoreMachineSSL, model.AliasMachineCert)}
	p := e.params(option)
	if _, err := backupRun(ctx, e.env, p); err != nil {
		t.Fatal(err)
	}
	if out, err := applyRun(ctx, e.env, p); err != nil {
		t.Fatalf("Apply: %v\n%s", err, out.Transcript)
	}
	r.newRoot = e.d.VMCARoot()
	var err error
	if r.n, err = conn.Node(e.env, ""); err != nil {
		t.Fatal(err)
	}
	user, pw, err := conn.SSO(e.env)
	if err != nil {
		t.Fatal(err)
	}
	r.sso = SSOLogin{User: user, Password: pw}
	return r
}

// restore runs Restore from the step's backup folder and returns what it
// said.
func (r *restoreLab) restore(t *testing.T, dir string) (string, error) {
	t.Helper()
	var out syncBuffer
	err := Restore(t.Context(), r.n, dir, r.sso, &out)
	r.noPassword(t, "Restore's output", out.String())
	if err != nil {
		r.noPassword(t, "Restore's error", err.Error())
	}
	return out.String(), err
}

// requireRestored requires the lab to be as before certmgr.run but for
// the differences listed as cannot-undo (each of which must occur: a rule
// that matches nothing is a stale excuse), then checks through the target
// what the snapshot implies: the pin and port 443 back on the old
// certificate, services running, no password in any command line. It
// returns the snapshot.
func (r *restoreLab) requireRestored(t *testing.T, option string) []byte {
	t.Helper()
	rules := commonCannotUndo(option, r.pnid)
	if option == "8" {
		newRoot := r.newRoot
		rules = append(rules, option8CannotUndo(r.pnid, r.d.CADN(newRoot.X509), pki.SHA1Hex(newRoot.DER))...)
	}
	restored := r.l.Snapshot()
	unexplained, used := diffBut(r.before, restored, rules)
	if len(unexplained) > 0 {
		t.Errorf("the lab after Restore differs from before certmgr.run:\n%s", strings.Join(unexplained, "\n"))
	}
	for _, rule := range rules {
		if !used[rule.what] {
			t.Errorf("cannot-undo %q accounts for no difference: drop it", rule.what)
		}
	}
	if pinned, _ := r.n.Pins(); !sameSHA1(pinned, target.Thumbprint(r.oldSSL)) {
		t.Errorf("pin %s, want the restored certificate's %s", pinned, target.Thumbprint(r.oldSSL))
	}
	chain, err := r.n.DialTLS(t.Context(), 0)
	if err != nil || !chain[0].Equal(r.oldSSL) {
		t.Errorf("port 443 after Restore: %v", err)
	}
	node := r.d.Nodes[0]
	for _, name := range node.Services.Names() {
		if auto, _ := node.Services.Automatic(name); auto {
			if running, _ := node.Services.Running(name); !running {
				t.Errorf("service %s is not running after Restore", name)
			}
		}
	}
	for _, cmd := range r.l.SSHAudit(r.pnid) {
		r.noPassword(t, "a command line", cmd)
	}
	return restored
}

// TestRestore runs certmgr.run's Backup and Apply, then Restore from the
// backup folder, and requires the lab to be as before but for what
// Restore cannot undo (requireRestored); Check must say not applied, and
// a second Restore must change nothing.
func TestRestore(t *testing.T) {
	for _, tc := range []struct {
		name, scenario, option string
		// said are lines Restore must print.
		said []string
	}{
		{"option 3", "healthy", "3", []string{
			"VECS MACHINE_SSL_CERT/__MACHINE_CERT: restored", "Lookup Service: ", " re-pointed back to sha1 ", "TLS pin moved to ",
			"services stopped and started"}},
		{"option 6", "healthy", "6", []string{
			"VECS vpxd/vpxd: restored", "service principal vpxd-", "restored sha1", "with dir-cli service update", "services stopped and started"}},
		{"option 8", "healthy", "8", []string{
			"restored with certool --rootca", "/var/lib/vmware/vmca/root.cer.0: removed", "VECS MACHINE_SSL_CERT/__MACHINE_CERT: restored",
			"VECS machine/machine: restored", "service principal machine-", "VECS TRUSTED_ROOTS/", ": deleted (not in the backup)",
			"VECS TRUSTED_ROOT_CRLS/", "Lookup Service: ", "services stopped and started"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			r := appliedLab(t, tc.scenario, tc.option)
			applied := r.l.Snapshot()
			if bytes.Equal(applied, r.before) {
				t.Fatal("Apply changed nothing: the test proves nothing")
			}
			said, err := r.restore(t, r.env.BackupDir)
			if err != nil {
				t.Fatalf("Restore: %v\n%s", err, said)
			}
			for _, want := range tc.said {
				if !strings.Contains(said, want) {
					t.Errorf("Restore did not say %q:\n%s", want, said)
				}
			}
			restored := r.requireRestored(t, tc.option)

			// Check says the step is not applied any more.
			if v, err := checkRun(ctx, r.env, r.params(tc.option)); err != nil || v.State != engine.NotApplied {
				t.Errorf("Check after Restore = %v %q, %v; want not applied", v.State, v.Detail, err)
			}

			// A second Restore changes nothing and says so.
			again, err := r.restore(t, r.env.BackupDir)
			if err != nil {
				t.Fatalf("second Restore: %v\n%s", err, again)
			}
			if !strings.Contains(again, "everything was already as in the backup") || strings.Contains(again, ": restored") {
				t.Errorf("second Restore said:\n%s", again)
			}
			if now := r.l.Snapshot(); !bytes.Equal(now, restored) {
				t.Errorf("the second Restore changed the lab:\n%s", lineDiff(string(restored), string(now)))
			}
		})
	}
}

// editManifest rewrites the before.json of backup folder dir with edit.
func editManifest(t *testing.T, dir string, edit func(st *beforeState)) {
	t.Helper()
	p := filepath.Join(dir, manifestFile)
	data, err := os.ReadFile(p)
	must(t, err)
	var st beforeState
	must(t, json.Unmarshal(data, &st))
	edit(&st)
	data, err = json.Marshal(&st)
	must(t, err)
	must(t, os.WriteFile(p, data, 0o600))
}

// TestRestoreResumes puts the lab in the state a Restore of option 8
// leaves when it dies right after deleting the Machine SSL entry (the
// VMCA root and the registrations already restored, the entry gone, the
// rest not done yet), through a Restore of part of the backup and
// vecs-cli, then requires a whole Restore to finish the job.
func TestRestoreResumes(t *testing.T) {
	r := appliedLab(t, "healthy", "8")
	part := t.TempDir()
	must(t, os.CopyFS(part, os.DirFS(r.env.BackupDir)))
	editManifest(t, part, func(st *beforeState) {
		st.Certs = slices.DeleteFunc(st.Certs, func(c certState) bool { return c.File == "" && c.Store != StoreMachineSSL })
		st.TrustedRoots, st.TrustedRootCRLs = nil, nil
	})
	if said, err := r.restore(t, part); err != nil {
		t.Fatalf("Restore of part of the backup: %v\n%s", err, said)
	}
	if _, stderr, code, err := r.n.Run(t.Context(), PathVecsCLI+" entry delete --store MACHINE_SSL_CERT --alias __MACHINE_CERT -y", nil); err != nil || code != 0 {
		t.Fatalf("vecs-cli entry delete: exit %d, %v %s", code, err, stderr)
	}

	said, err := r.restore(t, r.env.BackupDir)
	if err != nil {
		t.Fatalf("Restore: %v\n%s", err, said)
	}
	for _, want := range []string{"already as in the backup", "Lookup Service: MACHINE_SSL_CERT/__MACHINE_CERT has no entry now",
		"VECS MACHINE_SSL_CERT/__MACHINE_CERT: restored sha1 " + pki.Thumbprint(r.oldSSL.Raw) + " ", "(was absent)", "VECS vpxd/vpxd: restored"} {
		if !strings.Contains(strings.ReplaceAll(said, ":", ""), strings.ReplaceAll(want, ":", "")) {
			t.Errorf("Restore did not say %q:\n%s", want, said)
		}
	}
	r.requireRestored(t, "8")
}

// TestRestoreBadBackup gives Restore missing and corrupt backup folders
// of an option 8 run: each fails naming the problem (ErrBadBackup), and
// the lab does not change.
func TestRestoreBadBackup(t *testing.T) {
	r := appliedLab(t, "healthy", "8")
	file := func(rel string) string { return filepath.FromSlash(rel) }
	machineCrt, machineKey := file("MACHINE_SSL_CERT/__MACHINE_CERT.crt"), file("MACHINE_SSL_CERT/__MACHINE_CERT.key")
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, dir string) string // returns the folder to restore from
		want    string
	}{
		{"no folder", func(t *testing.T, dir string) string { return filepath.Join(dir, "missing") }, "no such file or directory"},
		{"empty folder name", func(t *testing.T, dir string) string { return "" }, "no backup folder given"},
		{"no before.json", func(t *testing.T, dir string) string {
			must(t, os.Remove(filepath.Join(dir, manifestFile)))
			return dir
		}, "before.json: no such file"},
		{"before.json not JSON", func(t *testing.T, dir string) string {
			must(t, os.WriteFile(filepath.Join(dir, manifestFile), []byte("{\"node\": "), 0o600))
			return dir
		}, "before.json: unexpected end of JSON input"},
		{"another node", func(t *testing.T, dir string) string {
			editManifest(t, dir, func(st *beforeState) { st.Node = "vcsa9.lab.test" })
			return dir
		}, `it is of node "vcsa9.lab.test", not ` + r.pnid},
		{"no certificate", func(t *testing.T, dir string) string {
			editManifest(t, dir, func(st *beforeState) { st.Certs = nil })
			return dir
		}, "lists no certificate"},
		{"a store option 8 does not replace", func(t *testing.T, dir string) string {
			editManifest(t, dir, func(st *beforeState) { st.Certs[0].Store, st.Certs[0].Alias = StoreTrustedRoots, "x" })
			return dir
		}, "names TRUSTED_ROOTS/x, which option 8 does not replace"},
		{"a file outside the folder", func(t *testing.T, dir string) string {
			editManifest(t, dir, func(st *beforeState) { st.Certs[0].KeyFile = "../../etc/shadow" })
			return dir
		}, `names "../../etc/shadow", which is not a file of the backup folder`},
		{"key file missing", func(t *testing.T, dir string) string {
			must(t, os.Remove(filepath.Join(dir, machineKey)))
			return dir
		}, "__MACHINE_CERT.key: no such file"},
		{"another entry's key", func(t *testing.T, dir string) string {
			copyFile(t, filepath.Join(dir, "vpxd", "vpxd.key"), filepath.Join(dir, machineKey))
			return dir
		}, machineKey + " is not the key of MACHINE_SSL_CERT/__MACHINE_CERT: the key does not match the certificate"},
		{"another certificate", func(t *testing.T, dir string) string {
			copyFile(t, filepath.Join(dir, "vpxd", "vpxd.crt"), filepath.Join(dir, machineCrt))
			return dir
		}, machineCrt + " holds the certificate with SHA-1 "},
		{"truncated certificate", func(t *testing.T, dir string) string {
			data, err := os.ReadFile(filepath.Join(dir, machineCrt))
			must(t, err)
			must(t, os.WriteFile(filepath.Join(dir, machineCrt), data[:len(data)/2], 0o644))
			return dir
		}, machineCrt + ": no PEM certificate"},
		{"no root key", func(t *testing.T, dir string) string {
			editManifest(t, dir, func(st *beforeState) { st.RootKeyFile = "" })
			return dir
		}, "no copy of the VMCA root's private key"},
		{"root key of another certificate", func(t *testing.T, dir string) string {
			copyFile(t, filepath.Join(dir, machineKey), filepath.Join(dir, "vmca", "privatekey.pem"))
			return dir
		}, "is not the key of the VMCA root"},
		{"a trusted root changed", func(t *testing.T, dir string) string {
			editManifest(t, dir, func(st *beforeState) { st.TrustedRoots[0].SHA1 = "00:11" })
			return dir
		}, "not TRUSTED_ROOTS/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.CopyFS(dir, os.DirFS(r.env.BackupDir)))
			from := tc.corrupt(t, dir)
			before := r.l.Snapshot()
			said, err := r.restore(t, from)
			if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Restore = %v, want ErrBadBackup saying %q", err, tc.want)
			}
			if said != "" {
				t.Errorf("Restore said, though it did nothing:\n%s", said)
			}
			if now := r.l.Snapshot(); !bytes.Equal(now, before) {
				t.Errorf("the lab changed:\n%s", lineDiff(string(before), string(now)))
			}
		})
	}

	t.Run("no password", func(t *testing.T) {
		before := r.l.Snapshot()
		err := Restore(t.Context(), r.n, r.env.BackupDir, SSOLogin{User: r.sso.User}, nil)
		if err == nil || !strings.Contains(err.Error(), "no SSO password for dir-cli") {
			t.Errorf("Restore without a password = %v", err)
		}
		if now := r.l.Snapshot(); !bytes.Equal(now, before) {
			t.Errorf("the lab changed:\n%s", lineDiff(string(before), string(now)))
		}
	})
}

// TestSSOLoginHidesPassword checks that formatting an SSOLogin never shows
// the password.
func TestSSOLoginHidesPassword(t *testing.T) {
	l := SSOLogin{User: "administrator@vsphere.local", Password: "s3cret!"}
	for _, f := range []string{"%v", "%+v", "%s", "%#v", "%q"} {
		if got := fmt.Sprintf(f, l); strings.Contains(got, l.Password) || !strings.Contains(got, l.User) {
			t.Errorf("Sprintf(%q) = %q", f, got)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, data, 0o600))
}

// TestUploadIsPrivate checks where Restore puts certificates and keys on
// the node: a folder under /tmp only root can enter, files only root can
// read, all gone after cleanup.
func TestUploadIsPrivate(t *testing.T) {
	e := testLab(t, "healthy")
	n, err := conn.Node(e.env, "")
	must(t, err)
	r := &restorer{n: n, out: io.Discard}
	p, err := r.upload(t.Context(), "x.key", []byte("-----BEGIN PRIVATE KEY-----\n"))
	must(t, err)
	node := e.d.Nodes[0]
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{path.Dir(p), 0o700}, {p, 0o600}} {
		fi, err := os.Stat(node.Path(c.path))
		if err != nil || fi.Mode().Perm() != c.mode || !strings.HasPrefix(c.path, "/tmp/certmgr-restore-") {
			t.Errorf("%s: %v, %v; want mode %v under /tmp", c.path, fi.Mode(), err, c.mode)
		}
	}
	must(t, r.cleanup())
	if _, err := os.Stat(node.Path(path.Dir(p))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after cleanup: %v", path.Dir(p), err)
	}
}
