package ldap_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/steps/ldap"
	"runbook/steps/local"
)

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	ldap.Register(r)
	want := map[string]engine.Effect{
		"ldap.search": engine.EffectRead,
		"ldap.export": engine.EffectRead,
		"ldap.add":    engine.EffectWrite,
		"ldap.modify": engine.EffectWrite,
		"ldap.delete": engine.EffectWrite,
	}
	if got := r.IDs(); len(got) != len(want) {
		t.Fatalf("registered %v, want %d types", got, len(want))
	}
	for id, effect := range want {
		st, ok := r.Lookup(id)
		if !ok {
			t.Errorf("%s is not registered", id)
			continue
		}
		if st.Effect() != effect {
			t.Errorf("%s: effect %s, want %s", id, st.Effect(), effect)
		}
		if st.Describe().Doc == "" {
			t.Errorf("%s has no doc", id)
		}
	}
}

// stsRunbook is fixsts (KB 76719) in the runbook format: find the
// credentials and chains, export them, delete them, add the new credential
// from fixsts's LDIF with file values.
const stsRunbook = `apiVersion: runbook/v1
name: sts-cycle
title: Replace the STS signing credential
params:
  ldif:
    type: string
    required: true
    description: The sso-sts.ldif of the new credential.
steps:
  - id: creds
    uses: ldap.search
    with:
      base: "cn=${{ facts.domain }},cn=Tenants,cn=IdentityManager,cn=Services,${{ facts.domainDN }}"
      filter: (|(objectClass=vmwSTSTenantCredential)(&(objectclass=vmwSTSTenantTrustedCertificateChain)(cn=TrustedCertChain*)))
      attributes: [cn, userCertificate, vmwSTSPrivateKey]
  - id: count
    uses: assert
    with:
      that: "${{ steps.creds.count == 2 && len(steps.creds.entries[0].attrs.userCertificate) > 0 }}"
      message: want one credential and one chain
  - id: save
    uses: ldap.export
    with:
      base: "cn=${{ facts.domain }},cn=Tenants,cn=IdentityManager,cn=Services,${{ facts.domainDN }}"
      filter: (|(objectClass=vmwSTSTenantCredential)(objectClass=vmwSTSTenantTrustedCertificateChain))
      file: sts-backup.ldif
  - id: remove_old
    uses: ldap.delete
    with:
      dns: "${{ map(steps.creds.entries, .dn) }}"
  - id: add_new
    uses: ldap.add
    with:
      ldif_file: "${{ params.ldif }}"
`

// TestThroughEngine runs the STS cycle through engine.Load and Runner
// against the lab: a dry-run changes nothing, a run interrupted in the
// middle of the add resumes and converges, and the backups in the run
// folder restore the directory exactly.
func TestThroughEngine(t *testing.T) {
	l, err := lab.Start(t.Context(), "sts-expired", lab.WithNodes(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tg, err := l.Target(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	dom := l.Model()
	original := string(dom.Dir.LDIF())
	old, err := dom.ActiveSTS()
	if err != nil {
		t.Fatal(err)
	}

	key, chain := newCred(t)
	dir := t.TempDir()
	for name, b := range map[string][]byte{"sts.der": chain[0], "vmca01.der": chain[1], "sts.key.der": key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ldifPath := filepath.Join(dir, "sso-sts.ldif")
	src := fmt.Sprintf("dn: %[1]s\nchangetype: add\nobjectClass: vmwSTSTenantCredential\nobjectClass: top\ncn: TenantCredential-2\n"+
		"userCertificate:< file:sts.der\nuserCertificate:< file:vmca01.der\nvmwSTSPrivateKey:< file:sts.key.der\n\n"+
		"dn: %[2]s\nchangetype: add\nobjectClass: vmwSTSTenantTrustedCertificateChain\nobjectClass: top\ncn: TrustedCertChain-2\n"+
		"userCertificate:< file:sts.der\nuserCertificate:< file:vmca01.der\n", dom.TenantCredentialDN(2), dom.TrustedChainDN(2))
	if err := os.WriteFile(ldifPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}

	reg := engine.NewRegistry()
	local.Register(reg)
	ldap.Register(reg)
	rb, err := engine.Load(reg, "sts-cycle.yaml", []byte(stsRunbook))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	params := map[string]any{"ldif": ldifPath}
	state := t.TempDir()
	runner := func(dry bool) *engine.Runner {
		return &engine.Runner{StateDir: state, Target: tg, DryRun: dry}
	}

	res, err := runner(true).Run(t.Context(), rb, params)
	if err != nil {
		t.Fatalf("dry-run: %v", err)
	}
	if got := string(dom.Dir.LDIF()); got != original {
		t.Fatal("the dry-run changed the directory")
	}
	for id, changes := range map[string]int{"remove_old": 2, "add_new": 2} {
		if s := res.Step(id); s == nil || s.Status != engine.StepPlanned || s.Plan == nil || len(s.Plan.Changes) != changes {
			t.Errorf("dry-run %s: %+v", id, s)
		}
	}

	// The lab fails the chain's add: the run stops inside add_new, with the
	// credential added and the chain not.
	injected := errors.New("injected: vmdir stopped")
	dom.Dir.SetWriteHook(func(op, dn string) error {
		if op == "add" && strings.Contains(dn, "TrustedCertChain-2") {
			return injected
		}
		return nil
	})
	res, err = runner(false).Run(t.Context(), rb, params)
	dom.Dir.SetWriteHook(nil)
	if err == nil {
		t.Fatal("the run with a failing vmdir succeeded")
	}
	if s := res.Step("add_new"); s == nil || s.Status == engine.StepDone {
		t.Fatalf("add_new after the failure: %+v", s)
	}
	if _, err := dom.Dir.Get(dom.TenantCredentialDN(2)); err != nil {
		t.Fatalf("the interrupted add did not add the credential: %v", err)
	}
	runDir := res.RunDir

	res, err = runner(false).Resume(t.Context(), res.RunID, rb, params)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if s := res.Step("add_new"); s == nil || s.Status != engine.StepDone {
		t.Fatalf("add_new after resume: %+v", s)
	}
	active, err := dom.ActiveSTS()
	if err != nil {
		t.Fatal(err)
	}
	if active.N != 2 || string(active.Key) != string(key) || len(active.Certs) != 2 || string(active.Certs[0].Raw) != string(chain[0]) {
		t.Errorf("active credential %d is not the new one", active.N)
	}
	chains, err := dom.TrustedCertChains()
	if err != nil || len(chains) != 1 || chains[0].N != 2 {
		t.Errorf("trusted chains after the run: %+v, %v", chains, err)
	}
	if got, err := os.ReadFile(filepath.Join(runDir, "sts-backup.ldif")); err != nil || !strings.Contains(string(got), "vmwSTSPrivateKey:: ") {
		t.Errorf("the export in the run folder: %v", err)
	}
	journal, err := os.ReadFile(filepath.Join(runDir, engine.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(journal), `private key, `) {
		t.Error("the journal does not show the search's masked key")
	}
	for _, secret := range [][]byte{old.Key, key} {
		if enc := b64(secret); strings.Contains(string(journal), enc[:32]) {
			t.Error("the journal holds a private key")
		}
	}

	// The backups undo the run: the add's first, then the delete's.
	conn, err := tg.Nodes()[0].LDAP(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"add_new", "remove_old"} {
		if err := ldap.Restore(t.Context(), conn, filepath.Join(runDir, "backups", step, "restore.ldif")); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(dom.Dir.LDIF()); got != original {
		t.Error("the backups did not restore the directory")
	}
	if again, err := dom.ActiveSTS(); err != nil || again.N != old.N || string(again.Key) != string(old.Key) {
		t.Errorf("restored credential: %+v, %v", again.N, err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// newCred makes an STS key (PKCS#8 DER) and a chain (leaf, CA).
func newCred(t *testing.T) (key []byte, chain [][]byte) {
	t.Helper()
	tmpl := func(cn string, ca bool) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
			IsCA: ca, BasicConstraintsValid: ca,
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caT := tmpl("CA", true)
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, tmpl("STS", false), ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return keyDER, [][]byte{leafDER, caDER}
}
