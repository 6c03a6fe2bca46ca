package certmgr

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"runbook/engine"
	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/target"
)

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	Register(r)
	st, ok := r.Lookup("certmgr.run")
	if !ok || st.Effect() != engine.EffectWrite || len(r.IDs()) != 1 {
		t.Fatalf("registered %v", r.IDs())
	}
	// Register refuses step types that break the tag conventions.
}

// storeCert returns the leaf of a VECS entry of node n.
func storeCert(t *testing.T, n *model.Node, store, alias string) *x509.Certificate {
	t.Helper()
	c, err := n.StoreCert(store, alias)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// noPassword fails the test when the password appears in s.
func (e *labEnv) noPassword(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, e.password) {
		t.Errorf("the SSO password appears in %s", what)
	}
}

// checkBackupFiles checks the backup folder: a certificate and an
// owner-only key for each VECS object, and no password anywhere but in
// key files (where it cannot be either).
func (e *labEnv) checkBackupFiles(t *testing.T, files []string, n *model.Node, objs []object) {
	t.Helper()
	for _, o := range objs {
		if o.File != "" {
			continue
		}
		crt := filepath.Join(e.env.BackupDir, o.Store, o.Alias+".crt")
		key := filepath.Join(e.env.BackupDir, o.Store, o.Alias+".key")
		if !slices.Contains(files, crt) || !slices.Contains(files, key) {
			t.Errorf("backup files %v lack %s and its key", files, o)
			continue
		}
		data, err := os.ReadFile(crt)
		if err != nil {
			t.Fatal(err)
		}
		certs, err := pki.ParseCerts(data)
		if err != nil || !certs[0].Equal(storeCert(t, n, o.Store, o.Alias)) {
			t.Errorf("%s does not hold %s's certificate: %v", crt, o, err)
		}
		keyPEM, err := os.ReadFile(key)
		if err != nil {
			t.Fatal(err)
		}
		signer, _, err := pki.ParseKey(keyPEM)
		if err != nil || !pki.KeyMatches(certs[0], signer) {
			t.Errorf("%s is not the key of %s: %v", key, o, err)
		}
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", key, fi.Mode(), err)
		}
	}
	err := filepath.WalkDir(e.env.BackupDir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || strings.HasSuffix(p, ".key") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		e.noPassword(t, p, string(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(files, filepath.Join(e.env.BackupDir, manifestFile)) {
		t.Errorf("backup files %v lack %s", files, manifestFile)
	}
}

// checkOutputsClean checks that neither the outputs nor their JSON (what
// the journal records) nor the operator's output hold the password.
func (e *labEnv) checkOutputsClean(t *testing.T, out runOutputs, err error) {
	t.Helper()
	js, jerr := json.Marshal(out)
	if jerr != nil {
		t.Fatal(jerr)
	}
	e.noPassword(t, "the outputs' JSON", string(js))
	e.noPassword(t, "the transcript", out.Transcript)
	e.noPassword(t, "the operator's output", e.out.String())
	if err != nil {
		e.noPassword(t, "the error", err.Error())
	}
}

// TestOption3 replaces the Machine SSL certificate of the healthy lab's
// first node and judges by the lab's state: the plan changes nothing, the
// backup holds the old certificate and key, VECS and port 443 hold the
// new certificate (through the target after the re-pin), the Lookup
// Service registrations trust it, and the password is nowhere.
func TestOption3(t *testing.T) {
	ctx := t.Context()
	e := testLab(t, "healthy")
	n := e.d.Nodes[0]
	p := e.params("3")
	old := storeCert(t, n, model.StoreMachineSSL, model.AliasMachineCert)

	snap := e.l.Snapshot()
	plan, err := planRun(ctx, e.env, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.l.Snapshot(), snap) {
		t.Fatal("Plan changed the lab")
	}
	oldSHA1 := pki.Thumbprint(old.Raw)
	if len(plan.Changes) != 3 || plan.Changes[0].Action != "replace" ||
		plan.Changes[0].Object != n.PNID+" VECS MACHINE_SSL_CERT/__MACHINE_CERT" ||
		!strings.Contains(plan.Changes[0].Before, "sha1 "+oldSHA1) || plan.Changes[0].After == "" ||
		plan.Changes[1].Action != "update" || !strings.Contains(plan.Changes[1].Object, "Lookup Service registrations") {
		t.Errorf("plan %+v", plan)
	}

	v, err := checkRun(ctx, e.env, p)
	if err != nil || v.State != engine.NotApplied {
		t.Fatalf("Check before Backup = %v %q, %v; want not applied", v.State, v.Detail, err)
	}
	files, err := backupRun(ctx, e.env, p)
	if err != nil {
		t.Fatal(err)
	}
	e.checkBackupFiles(t, files, n, []object{{Store: StoreMachineSSL, Alias: AliasMachineCert}})
	if v, err := checkRun(ctx, e.env, p); err != nil || v.State != engine.NotApplied {
		t.Fatalf("Check before Apply = %v %q, %v; want not applied", v.State, v.Detail, err)
	}
	regsBefore, err := e.d.Registrations()
	if err != nil {
		t.Fatal(err)
	}

	out, err := applyRun(ctx, e.env, p)
	e.checkOutputsClean(t, out, err)
	if err != nil {
		t.Fatalf("Apply: %v\n%s", err, out.Transcript)
	}
	if out.RolledBack || !strings.Contains(out.Transcript, "Status : 100% Completed [All tasks completed successfully]") ||
		!strings.Contains(out.Transcript, "You are going to regenerate Machine SSL cert using VMCA") {
		t.Errorf("transcript:\n%s", out.Transcript)
	}

	// VECS holds a new certificate, valid, for the PNID, signed by VMCA.
	cur := storeCert(t, n, model.StoreMachineSSL, model.AliasMachineCert)
	if cur.Equal(old) {
		t.Fatal("MACHINE_SSL_CERT still holds the old certificate")
	}
	if !pki.ValidAt(cur, e.d.Now()) || cur.Subject.CommonName != n.PNID || !slices.Contains(cur.DNSNames, n.PNID) {
		t.Errorf("new certificate %s %v", pki.SubjectDN(cur), cur.DNSNames)
	}
	wantReplaced := []Replacement{{Object: "MACHINE_SSL_CERT/__MACHINE_CERT", OldSHA1: oldSHA1, NewSHA1: pki.Thumbprint(cur.Raw), NotAfter: cur.NotAfter}}
	if !slices.EqualFunc(out.Replaced, wantReplaced, func(a, b Replacement) bool {
		return a.Object == b.Object && a.OldSHA1 == b.OldSHA1 && a.NewSHA1 == b.NewSHA1 && a.NotAfter.Equal(b.NotAfter)
	}) {
		t.Errorf("replaced %+v, want %+v", out.Replaced, wantReplaced)
	}

	// Port 443, through the target: the pin moved to the new certificate.
	tn := e.env.Target.(*target.Target).Nodes()[0]
	if pinned, _ := tn.Pins(); !strings.EqualFold(strings.ReplaceAll(pinned, ":", ""), strings.ReplaceAll(target.Thumbprint(cur), ":", "")) {
		t.Errorf("pin %s, want the new certificate's %s", pinned, target.Thumbprint(cur))
	}
	chain, err := tn.DialTLS(ctx, 0)
	if err != nil {
		t.Fatalf("TLS through the target after the re-pin: %v", err)
	}
	if !chain[0].Equal(cur) {
		t.Error("port 443 serves another certificate than VECS holds")
	}

	// The registrations that trusted the old certificate trust the new one.
	regsAfter, err := e.d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	trusts := func(regs []model.Registration, der []byte) int {
		k := 0
		for _, r := range regs {
			for _, ep := range r.Endpoints {
				if len(ep.SslTrust) > 0 && ep.SslTrust[0] == pki.TrustString(der) {
					k++
				}
			}
		}
		return k
	}
	if was := trusts(regsBefore, old.Raw); was == 0 || trusts(regsAfter, old.Raw) != 0 || trusts(regsAfter, cur.Raw) != was {
		t.Errorf("endpoints trusting the old certificate: %d before, %d after; trusting the new one after: %d",
			was, trusts(regsAfter, old.Raw), trusts(regsAfter, cur.Raw))
	}

	// Check: applied, and it changes nothing.
	snap = e.l.Snapshot()
	v, err = checkRun(ctx, e.env, p)
	if err != nil || v.State != engine.Applied || len(v.Outputs.Replaced) != 1 || v.Outputs.Replaced[0].NewSHA1 != pki.Thumbprint(cur.Raw) {
		t.Errorf("Check after Apply = %v %q %+v, %v; want applied", v.State, v.Detail, v.Outputs, err)
	}
	if !bytes.Equal(e.l.Snapshot(), snap) {
		t.Error("Check changed the lab")
	}
	// On resume the engine gives Check no backup folder: the run
	// folder's before-state still tells.
	resumed := *e.env
	resumed.BackupDir = ""
	if v, err := checkRun(ctx, &resumed, p); err != nil || v.State != engine.Applied {
		t.Errorf("Check on resume = %v %q, %v; want applied", v.State, v.Detail, err)
	}
	e.checkBackupFiles(t, files, n, nil)
}

// TestOption3RollsBack runs option 3 on all-expired: the services cannot
// start (STS expired), certificate-manager rolls back, and the step fails
// saying so with the KB's advice; the lab is as before except for
// BACKUP_STORE, logs and certificate-manager's working files.
func TestOption3RollsBack(t *testing.T) {
	ctx := t.Context()
	e := testLab(t, "all-expired")
	p := e.params("3")
	files, err := backupRun(ctx, e.env, p)
	if err != nil {
		t.Fatal(err)
	}
	e.checkBackupFiles(t, files, e.d.Nodes[0], []object{{Store: StoreMachineSSL, Alias: AliasMachineCert}})
	before := e.l.Snapshot()
	out, err := applyRun(ctx, e.env, p)
	e.checkOutputsClean(t, out, err)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("Apply: %v, want ErrRolledBack\n%s", err, out.Transcript)
	}
	msg := err.Error()
	for _, want := range []string{"certificate-manager rolled back", `during "starting services..."`,
		"fix the STS signing certificate first (KB 76719)", "option 8, or option 6 then option 3",
		PathCertificateManagerLog + " ends with:", "The rollback completed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if !out.RolledBack || !strings.Contains(out.Transcript, "Rollback Status : 100% Completed [Rollback completed successfully]") {
		t.Errorf("rolled_back %v, transcript:\n%s", out.RolledBack, out.Transcript)
	}
	if got, want := stripSnapshot(e.l.Snapshot()), stripSnapshot(before); got != want {
		t.Errorf("the lab after the rollback differs from before:\n%s", lineDiff(want, got))
	}
	if v, err := checkRun(ctx, e.env, p); err != nil || v.State != engine.NotApplied {
		t.Errorf("Check after the rollback = %v %q, %v; want not applied", v.State, v.Detail, err)
	}
}

// TestOption6 replaces the expired solution-user certificates of
// solution-users-expired: every solution-user store holds a new valid
// certificate, also set on its service principal in vmdir, and the
// services start.
func TestOption6(t *testing.T) {
	ctx := t.Context()
	e := testLab(t, "solution-users-expired")
	n := e.d.Nodes[0]
	p := e.params("6")
	olds := map[string]*x509.Certificate{}
	var objs []object
	for _, s := range model.SolutionUsers {
		olds[s] = storeCert(t, n, s, s)
		if pki.ValidAt(olds[s], e.d.Now()) {
			t.Fatalf("%s is valid: the scenario proves nothing", s)
		}
		objs = append(objs, object{Store: s, Alias: s})
	}
	if err := n.Services.StartAll(); err == nil {
		t.Fatal("services start with expired solution users: the scenario proves nothing")
	}

	snap := e.l.Snapshot()
	plan, err := planRun(ctx, e.env, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.l.Snapshot(), snap) {
		t.Fatal("Plan changed the lab")
	}
	for i, s := range model.SolutionUsers {
		c := plan.Changes[i]
		if c.Action != "replace" || c.Object != n.PNID+" VECS "+s+"/"+s || !strings.Contains(c.Before, "(EXPIRED)") {
			t.Errorf("change %d: %+v", i, c)
		}
	}
	files, err := backupRun(ctx, e.env, p)
	if err != nil {
		t.Fatal(err)
	}
	e.checkBackupFiles(t, files, n, objs)

	out, err := applyRun(ctx, e.env, p)
	e.checkOutputsClean(t, out, err)
	if err != nil {
		t.Fatalf("Apply: %v\n%s", err, out.Transcript)
	}
	if len(out.Replaced) != len(model.SolutionUsers) {
		t.Errorf("replaced %+v", out.Replaced)
	}
	for i, s := range model.SolutionUsers {
		c := storeCert(t, n, s, s)
		if c.Equal(olds[s]) || !pki.ValidAt(c, e.d.Now()) {
			t.Errorf("%s: not replaced with a valid certificate", s)
		}
		if i < len(out.Replaced) && (out.Replaced[i].Object != s+"/"+s || out.Replaced[i].NewSHA1 != pki.Thumbprint(c.Raw) || out.Replaced[i].OldSHA1 != pki.Thumbprint(olds[s].Raw)) {
			t.Errorf("replaced[%d] = %+v", i, out.Replaced[i])
		}
		sp, err := e.d.Dir.Get(e.d.ServicePrincipalDN(s, n))
		if err != nil {
			t.Fatal(err)
		}
		if v := sp.Values("userCertificate"); len(v) != 1 || !bytes.Equal(v[0], c.Raw) {
			t.Errorf("%s: the service principal does not hold the new certificate", s)
		}
	}
	for _, name := range n.Services.Names() {
		if auto, _ := n.Services.Automatic(name); auto {
			if running, _ := n.Services.Running(name); !running {
				t.Errorf("service %s is not running after option 6", name)
			}
		}
	}
	if v, err := checkRun(ctx, e.env, p); err != nil || v.State != engine.Applied || len(v.Outputs.Replaced) != len(model.SolutionUsers) {
		t.Errorf("Check after Apply = %v %q, %v; want applied", v.State, v.Detail, err)
	}
}

// TestOption8 resets all certificates of the healthy lab's first node: a
// new VMCA root (CN vmca_name), new Machine SSL and solution-user
// certificates signed by it, the pin moved, and the backup holding
// TRUSTED_ROOTS and the old root file.
func TestOption8(t *testing.T) {
	ctx := t.Context()
	e := testLab(t, "healthy")
	n := e.d.Nodes[0]
	p := e.params("8")
	p.VMCAName = "VMCA-" + n.PNID
	oldRoot, err := n.ReadFile(model.PathRootCert)
	if err != nil {
		t.Fatal(err)
	}
	oldSSL := storeCert(t, n, model.StoreMachineSSL, model.AliasMachineCert)

	snap := e.l.Snapshot()
	plan, err := planRun(ctx, e.env, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.l.Snapshot(), snap) {
		t.Fatal("Plan changed the lab")
	}
	objs := []object{{Store: StoreMachineSSL, Alias: AliasMachineCert}}
	for _, s := range model.SolutionUsers {
		objs = append(objs, object{Store: s, Alias: s})
	}
	objs = append(objs, object{File: PathRootCert})
	var objects []string
	for _, c := range plan.Changes {
		if c.Action == "replace" {
			objects = append(objects, c.Object)
		}
	}
	if len(objects) != len(objs) || objects[len(objects)-1] != n.PNID+" VMCA root "+PathRootCert {
		t.Errorf("plan replaces %v", objects)
	}

	files, err := backupRun(ctx, e.env, p)
	if err != nil {
		t.Fatal(err)
	}
	e.checkBackupFiles(t, files, n, objs)
	if got, err := os.ReadFile(filepath.Join(e.env.BackupDir, "vmca", "root.cer")); err != nil || !bytes.Equal(got, oldRoot) {
		t.Errorf("the backup's root.cer is not the node's: %v", err)
	}
	trusted, err := n.VECS.Entries(model.StoreTrustedRoots)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range trusted {
		if !slices.Contains(files, filepath.Join(e.env.BackupDir, StoreTrustedRoots, tr.Alias+".crt")) {
			t.Errorf("TRUSTED_ROOTS/%s is not backed up", tr.Alias)
		}
	}

	out, err := applyRun(ctx, e.env, p)
	e.checkOutputsClean(t, out, err)
	if err != nil {
		t.Fatalf("Apply: %v\n%s", err, out.Transcript)
	}
	root := e.d.VMCARoot()
	if bytes.Equal(root.PEM(), oldRoot) || root.X509.Subject.CommonName != p.VMCAName {
		t.Fatalf("the VMCA root was not regenerated with CN %s: %s", p.VMCAName, pki.SubjectDN(root.X509))
	}
	for _, o := range objs[:len(objs)-1] {
		c := storeCert(t, n, o.Store, o.Alias)
		if err := c.CheckSignatureFrom(root.X509); err != nil {
			t.Errorf("%s is not signed by the new root: %v", o, err)
		}
	}
	cur := storeCert(t, n, model.StoreMachineSSL, model.AliasMachineCert)
	if cur.Equal(oldSSL) {
		t.Error("the Machine SSL certificate was not replaced")
	}
	chain, err := e.env.Target.(*target.Target).Nodes()[0].DialTLS(ctx, 0)
	if err != nil || !chain[0].Equal(cur) {
		t.Errorf("TLS through the target after option 8: %v", err)
	}
	if len(out.Replaced) != len(objs) || out.Replaced[len(objs)-1].Object != PathRootCert {
		t.Errorf("replaced %+v", out.Replaced)
	}
	if v, err := checkRun(ctx, e.env, p); err != nil || v.State != engine.Applied {
		t.Errorf("Check after Apply = %v %q, %v; want applied", v.State, v.Detail, err)
	}
}

// TestOption8OnRootExpired runs option 8 where the VMCA root has expired.
// The lab's certificate-manager regenerates the root without vmcad, as the
// real one does, but the STS signing certificate still chains to the
// expired root (option 8 does not replace it: that is fixsts.sh's work),
// so the services do not start and it rolls everything back. The step
// must fail saying so with the KB's advice (fix the STS first), the lab
// must be as before but for BACKUP_STORE, logs and working files, and
// Check must say not applied.
func TestOption8OnRootExpired(t *testing.T) {
	ctx := t.Context()
	e := testLab(t, "root-expired")
	p := e.params("8")
	if _, err := backupRun(ctx, e.env, p); err != nil {
		t.Fatal(err)
	}
	before := e.l.Snapshot()
	out, err := applyRun(ctx, e.env, p)
	e.checkOutputsClean(t, out, err)
	if !errors.Is(err, ErrRolledBack) || !out.RolledBack {
		t.Fatalf("Apply: %v (rolled back %v), want ErrRolledBack", err, out.RolledBack)
	}
	for _, want := range []string{`during "starting services..."`, "The rollback completed",
		"fix the STS signing certificate first (KB 76719)", "STS signing certificate chain is not valid"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if got, want := stripSnapshot(e.l.Snapshot()), stripSnapshot(before); got != want {
		t.Errorf("the lab changed:\n%s", lineDiff(want, got))
	}
	if v, err := checkRun(ctx, e.env, p); err != nil || v.State != engine.NotApplied {
		t.Errorf("Check = %v %q, %v; want not applied", v.State, v.Detail, err)
	}
}
