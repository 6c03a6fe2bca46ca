package runbooks_test

// End-to-end tests of sts-check (KB 79248) and sts-regenerate (KB 76719)
// against lab scenarios, through the real CLI. The repair is judged by the
// lab's state: vmdir's TenantCredential and TrustedCertChain entries, the
// services of every node and what the IDM endpoint serves.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"runbook/lab"
	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/lab/vmdir"
	"runbook/target"
)

// stsStartLab is startLab with lab options (node types).
func stsStartLab(t *testing.T, scenario string, opts ...lab.Option) *labRun {
	t.Helper()
	l, err := lab.Start(context.Background(), scenario, opts...)
	if err != nil {
		t.Fatalf("start lab %s: %v", scenario, err)
	}
	t.Cleanup(func() { l.Close() })
	dir := t.TempDir()
	profile, err := l.Profile(dir)
	if err != nil {
		t.Fatalf("write profile: %v", err)
	}
	return &labRun{t: t, Lab: l, Profile: profile, State: filepath.Join(dir, "state")}
}

// stsThumbprint is a certificate's SHA-1 thumbprint as checksts.py prints it.
func stsThumbprint(c *x509.Certificate) string {
	sum := sha1.Sum(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// stsActiveLeaf returns the lab's active STS signing certificate.
func stsActiveLeaf(t *testing.T, d *model.Domain) *x509.Certificate {
	t.Helper()
	cred, err := d.ActiveSTS()
	if err != nil {
		t.Fatal(err)
	}
	if cred.Leaf() == nil {
		t.Fatalf("%s has no certificate", cred.DN)
	}
	return cred.Leaf()
}

// section returns the text of report from the line starting with from up
// to the line starting with to (or the end).
func section(report, from, to string) string {
	i := strings.Index(report, from)
	if i < 0 {
		return ""
	}
	rest := report[i:]
	if j := strings.Index(rest[len(from):], to); j >= 0 && to != "" {
		return rest[:len(from)+j]
	}
	return rest
}

func TestSTSCheck(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		args     []string
		code     int
		// expiredLeaf: the active leaf must be listed under EXPIRED CERTS.
		expiredLeaf bool
		want        []string
	}{
		{scenario: "healthy", code: 0, want: []string{"0 EXPIRED CERTS", "365 days left"}},
		{scenario: "sts-expired", code: 6, expiredLeaf: true,
			want: []string{"You have expired STS certificates", ": EXPIRED", "run sts-regenerate"}},
		// The healthy lab's signing certificate has 365 days left: a
		// threshold above that is a finding, below it is not.
		{scenario: "healthy", args: []string{"--param", "warn_days=400"}, code: 6,
			want: []string{"expires in 365 days, fewer than 400"}},
		{scenario: "healthy", args: []string{"--param", "warn_days=300"}, code: 0},
	} {
		t.Run(tc.scenario+strings.Join(tc.args, ""), func(t *testing.T) {
			r := startLab(t, tc.scenario)
			leaf := stsThumbprint(stsActiveLeaf(t, r.Lab.Model()))
			before := r.Lab.Snapshot()
			res := r.mustRun(tc.code, nil, append([]string{"run", "sts-check"}, tc.args...)...)
			if after := r.Lab.Snapshot(); !bytes.Equal(before, after) {
				t.Fatalf("sts-check changed the lab:\n%s", diffLines(string(before), string(after)))
			}
			out := res.Stderr
			expired := section(out, "EXPIRED CERTS", "Active signing credential")
			valid := section(out, "VALID CERTS", "EXPIRED CERTS")
			if tc.expiredLeaf {
				if !strings.Contains(section(expired, "LEAF CERTS", "ROOT CERTS"), "Certificate: "+leaf+" expired on") {
					t.Errorf("the expired leaf %s is not listed under EXPIRED CERTS:\n%s", leaf, out)
				}
			} else if !strings.Contains(section(valid, "LEAF CERTS", "ROOT CERTS"), "Certificate "+leaf+" will expire in") {
				t.Errorf("the valid leaf %s is not listed under VALID CERTS:\n%s", leaf, out)
			}
			if !strings.Contains(out, "Active signing credential: TenantCredential-1 (CN=ssoserverSign, "+leaf+")") {
				t.Errorf("the report does not name the active credential %s:\n%s", leaf, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// stsVerifyRepaired judges sts-regenerate by the lab's state: one
// TenantCredential whose valid leaf chains to the VMCA root and whose key
// is the leaf's, one TrustedCertChain holding the same chain, that
// credential active, every automatic service running on every node, and
// every node's IDM endpoint serving the new chain. It returns the new leaf.
func stsVerifyRepaired(t *testing.T, r *labRun) *x509.Certificate {
	t.Helper()
	d := r.Lab.Model()
	now := d.Now()
	creds, err := d.TenantCredentials()
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 {
		t.Fatalf("%d TenantCredential entries, want 1", len(creds))
	}
	cred := creds[0]
	leaf := cred.Leaf()
	if leaf == nil {
		t.Fatalf("%s has no certificate", cred.DN)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		t.Errorf("new STS leaf is not valid now (%s): %s – %s", now, leaf.NotBefore, leaf.NotAfter)
	}
	if last := cred.Certs[len(cred.Certs)-1]; !last.Equal(d.VMCARoot().X509) {
		t.Errorf("the credential's chain ends with %s, not the VMCA root", last.Subject)
	}
	roots := x509.NewCertPool()
	roots.AddCert(d.VMCARoot().X509)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("new STS leaf does not chain to the VMCA root: %v", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(cred.Key)
	if err != nil {
		t.Fatalf("vmwSTSPrivateKey is not PKCS#8 DER: %v", err)
	}
	if signer, ok := key.(crypto.Signer); !ok || !signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
		t.Errorf("vmwSTSPrivateKey is not the key of the new leaf")
	}
	active, err := d.ActiveSTS()
	if err != nil {
		t.Fatal(err)
	}
	if active.DN != cred.DN {
		t.Errorf("active credential %s, want %s", active.DN, cred.DN)
	}
	chains, err := d.TrustedCertChains()
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) != 1 {
		t.Fatalf("%d TrustedCertChain entries, want 1", len(chains))
	}
	if !slices.EqualFunc(chains[0].Certs, cred.Certs, (*x509.Certificate).Equal) {
		t.Errorf("TrustedCertChain-%d does not hold the credential's chain", chains[0].N)
	}
	if chains[0].N != cred.N {
		t.Errorf("TrustedCertChain-%d and TenantCredential-%d are numbered differently", chains[0].N, cred.N)
	}
	for _, n := range d.Nodes {
		for _, name := range n.Services.Names() {
			auto, err := n.Services.Automatic(name)
			if err != nil {
				t.Fatal(err)
			}
			if running, _ := n.Services.Running(name); auto && !running {
				t.Errorf("%s: service %s is not running", n.PNID, name)
			}
		}
	}
	for _, info := range r.Lab.Nodes() {
		served := stsIDMChains(t, info, d.Name)
		if len(served) != 1 || !slices.EqualFunc(served[0], cred.Certs, (*x509.Certificate).Equal) {
			t.Errorf("%s: the IDM endpoint serves %d chains, not the new one", info.PNID, len(served))
		}
	}
	return leaf
}

// stsIDMChains reads the IDM certificates endpoint of a node, as
// checksts.py does, with the node's Machine SSL certificate pinned.
func stsIDMChains(t *testing.T, info lab.NodeInfo, domain string) [][]*x509.Certificate {
	t.Helper()
	pin := func(raw [][]byte, _ [][]*x509.Certificate) error {
		sum := sha256.Sum256(raw[0])
		got := strings.ToUpper(hex.EncodeToString(sum[:]))
		if got != strings.ReplaceAll(info.TLSThumbprint, ":", "") {
			return fmt.Errorf("%s serves certificate %s, want %s", info.PNID, got, info.TLSThumbprint)
		}
		return nil
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// The Machine SSL certificate is pinned by thumbprint instead.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, VerifyPeerCertificate: pin},
	}}
	res, err := client.Get("https://" + info.HTTPSAddr + "/idm/tenant/" + domain + "/certificates?scope=TENANT")
	if err != nil {
		t.Fatalf("read IDM certificates of %s: %v", info.PNID, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("read IDM certificates of %s: %s %v\n%s", info.PNID, res.Status, err, body)
	}
	var dto []struct {
		Certificates []struct {
			Encoded string `json:"encoded"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal(body, &dto); err != nil {
		t.Fatalf("parse IDM certificates of %s: %v", info.PNID, err)
	}
	var out [][]*x509.Certificate
	for _, ch := range dto {
		var chain []*x509.Certificate
		for _, c := range ch.Certificates {
			block, _ := pem.Decode([]byte(c.Encoded))
			if block == nil {
				t.Fatalf("%s: IDM certificate is not PEM", info.PNID)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			chain = append(chain, cert)
		}
		out = append(out, chain)
	}
	return out
}

func TestSTSRegenerateDryRun(t *testing.T) {
	r := startLab(t, "sts-expired")
	d := r.Lab.Model()
	res := r.dryRunChangesNothing("sts-regenerate", 0)
	plan := res.Stderr
	for _, want := range []string{
		"delete vcsa1.lab.test ldap " + d.TenantCredentialDN(1),
		"delete vcsa1.lab.test ldap " + d.TrustedChainDN(1),
		"create vcsa1.lab.test ldap " + d.TenantCredentialDN(2),
		"create vcsa1.lab.test ldap " + d.TrustedChainDN(2),
		"create vcsa1.lab.test certool sts certificate",
		"restart vcsa1.lab.test services",
		"restart vcsa2.lab.test services",
		"Amount of tenant credentials: 1",
		"Amount of trustedcertchains: 1",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("the plan lacks %q:\n%s", want, plan)
		}
	}
}

func TestSTSRegenerateRepairs(t *testing.T) {
	r := startLab(t, "sts-expired")
	d := r.Lab.Model()
	old := stsActiveLeaf(t, d)
	oldCreds, err := d.TenantCredentials()
	if err != nil {
		t.Fatal(err)
	}
	r.mustRun(0, nil, "run", "sts-regenerate", "--yes")
	leaf := stsVerifyRepaired(t, r)
	if leaf.Equal(old) {
		t.Fatal("the signing certificate was not replaced")
	}
	cred, _ := d.ActiveSTS()
	if want := d.TenantCredentialDN(2); cred.DN != want {
		t.Errorf("new credential %s, want %s (one above the highest)", cred.DN, want)
	}

	// The fixsts backup holds every old entry, private key included.
	runs, err := filepath.Glob(filepath.Join(r.State, "runs", "*"))
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v %v", runs, err)
	}
	raw, err := os.ReadFile(filepath.Join(runs[0], "fixsts", "tenantcredentials.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	// Unfold LDIF continuation lines; never print the file: it holds a key.
	backup := strings.ReplaceAll(string(raw), "\n ", "")
	key := "vmwSTSPrivateKey:: " + base64.StdEncoding.EncodeToString(oldCreds[0].Key) + "\n"
	if !strings.Contains(backup, "dn: "+oldCreds[0].DN+"\n") || !strings.Contains(backup, key) {
		t.Errorf("the credential backup lacks %s with its key", oldCreds[0].DN)
	}
	if fi, err := os.Stat(filepath.Join(runs[0], "fixsts", "tenantcredentials.ldif")); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("the credential backup is readable by others: %v %v", fi.Mode(), err)
	}
	requireBackups(t, runs[0])

	res := r.mustRun(0, nil, "run", "sts-check")
	if !strings.Contains(res.Stderr, "0 EXPIRED CERTS") || !strings.Contains(res.Stderr, stsThumbprint(leaf)) {
		t.Errorf("sts-check after the repair:\n%s", res.Stderr)
	}
}

// TestSTSRegenerateRefuses: every refusal exits with its code, says what
// to do instead, and leaves the lab exactly as it was.
func TestSTSRegenerateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int
		want string
		// setup returns the lab to run on, ready (its own lab, broken as
		// the case needs), and extra environment for the run.
		setup func(t *testing.T) *labRun
	}{
		{name: "management node", code: 3, want: "Please run this from a vCenter with embedded PSC, or an external PSC",
			setup: func(t *testing.T) *labRun {
				return stsStartLab(t, "sts-expired", lab.WithTypes(model.Management, model.Embedded))
			}},
		{name: "vCenter gateway", code: 3, want: "vCenter gateway",
			setup: func(t *testing.T) *labRun {
				r := startLab(t, "sts-expired")
				// An embedded node without vmdird is what fixsts.sh 2021
				// calls a vCenter gateway.
				if err := os.Remove(r.Lab.Model().Nodes[0].Path("/usr/lib/vmware-vmdir/sbin/vmdird")); err != nil {
					t.Fatal(err)
				}
				return r
			}},
		{name: "expired root", code: 3, want: "Run expired-certs-recovery",
			setup: func(t *testing.T) *labRun { return startLab(t, "root-expired") }},
		{name: "node missing from the profile", code: 3, want: "add every node to the target profile",
			setup: func(t *testing.T) *labRun {
				r := startLab(t, "sts-expired")
				p, err := target.LoadProfile(r.Profile)
				if err != nil {
					t.Fatal(err)
				}
				p.Nodes = p.Nodes[:1]
				if err := p.Write(r.Profile); err != nil {
					t.Fatal(err)
				}
				return r
			}},
		{name: "node down", code: 3, want: "A node of the target profile cannot be reached",
			setup: func(t *testing.T) *labRun { return startLab(t, "partner-down") }},
		{name: "domain locked", code: 5, want: "sso-domain:vsphere.local",
			setup: func(t *testing.T) *labRun {
				r := startLab(t, "sts-expired")
				stsHoldDomainLock(t, r)
				return r
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.setup(t)
			before := r.Lab.Snapshot()
			res := r.mustRun(tc.code, nil, "run", "sts-regenerate", "--yes")
			if !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("the refusal does not say %q:\n%s", tc.want, res.Stderr)
			}
			if after := r.Lab.Snapshot(); !bytes.Equal(before, after) {
				t.Fatalf("a refused run changed the lab:\n%s", diffLines(string(before), string(after)))
			}
		})
	}
}

// stsHoldDomainLock holds the SSO domain lock of r's state dir until the
// test ends, the way another operator's run would: a real CLI run of a
// runbook that takes the same lock key and waits in a sleep step. It
// returns once the lock file names that run.
func stsHoldDomainLock(t *testing.T, r *labRun) {
	t.Helper()
	dir := t.TempDir()
	holder := "apiVersion: runbook/v1\nname: hold-sso-lock\ntitle: Hold the SSO domain lock\n" +
		"lock: \"sso-domain:${{ facts.domain }}\"\nsteps:\n  - id: wait\n    uses: sleep\n    with: {duration: 10m}\n"
	if err := os.WriteFile(filepath.Join(dir, "hold-sso-lock.yaml"), []byte(holder), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cli, "run", "--dir", dir, "hold-sso-lock", "--target", r.Profile)
	cmd.Env = append(os.Environ(), "RUNBOOK_STATE_DIR="+r.State, "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	for {
		if stsLockHeld(t, r.State, "sso-domain:vsphere.local") {
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the lock holder exited (%v) before taking the lock:\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stsLockHeld reports whether a lock file in the state dir names key.
func stsLockHeld(t *testing.T, state, key string) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(state, "locks", "*.lock"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Key string `json:"key"`
		}
		if json.Unmarshal(b, &info) == nil && info.Key == key {
			return true
		}
	}
	return false
}

// TestSTSRegenerateOtherCertsExpired: with the Machine SSL and solution
// user certificates expired too, the STS certificate is replaced but the
// restart, which would fail (KB 76719 step 7), is refused with what to do.
func TestSTSRegenerateOtherCertsExpired(t *testing.T) {
	r := startLab(t, "all-expired")
	d := r.Lab.Model()
	status := func() string {
		var b strings.Builder
		for _, n := range d.Nodes {
			running, stopped := n.Services.Status()
			fmt.Fprintf(&b, "%s running %v stopped %v\n", n.PNID, running, stopped)
		}
		return b.String()
	}
	services := status()
	res := r.mustRun(3, nil, "run", "sts-regenerate", "--yes")
	for _, want := range []string{"MACHINE_SSL_CERT / __MACHINE_CERT", "vpxd / vpxd", "certificate-manager (KB 2097936)"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, res.Stderr)
		}
	}
	leaf := stsActiveLeaf(t, d)
	if now := d.Now(); now.After(leaf.NotAfter) {
		t.Errorf("the STS signing certificate was not replaced (expires %s)", leaf.NotAfter)
	}
	if creds, _ := d.TenantCredentials(); len(creds) != 1 {
		t.Errorf("%d TenantCredential entries, want 1", len(creds))
	}
	if got := status(); got != services {
		t.Errorf("services changed although the restart was refused:\nbefore:\n%s\nafter:\n%s", services, got)
	}
}

func TestSTSRegenerateKillAndResume(t *testing.T) {
	killAndResumeEverywhere(t, "sts-expired", "sts-regenerate", nil, func(t *testing.T, r *labRun) {
		stsVerifyRepaired(t, r)
	})
}

// TestSTSRegenerateLeftoverChains: a TrustedCertChain entry that fixsts.sh
// of 2020 left behind (it deleted only TrustedCertChain-1..<credentials>)
// keeps an expired leaf that sts-check reports. sts-regenerate counts the
// two kinds separately, numbers the new entries above the leftover, and
// deletes every old entry.
func TestSTSRegenerateLeftoverChains(t *testing.T) {
	r := startLab(t, "sts-expired")
	d := r.Lab.Model()
	chains, err := d.TrustedCertChains()
	if err != nil || len(chains) != 1 {
		t.Fatalf("chains: %v %v", chains, err)
	}
	var certs [][]byte
	for _, c := range chains[0].Certs {
		certs = append(certs, c.Raw)
	}
	leftover := vmdir.NewEntry(d.TrustedChainDN(3),
		vmdir.StrAttr("objectClass", "top", "vmwSTSTenantTrustedCertificateChain"),
		vmdir.StrAttr("cn", "TrustedCertChain-3"),
		vmdir.Attr{Name: "userCertificate", Values: certs})
	if err := d.Dir.Add(leftover); err != nil {
		t.Fatal(err)
	}

	res := r.mustRun(0, nil, "run", "sts-regenerate", "--yes")
	for _, want := range []string{"Amount of tenant credentials: 1", "Amount of trustedcertchains: 2", "K = 4"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, res.Stderr)
		}
	}
	stsVerifyRepaired(t, r)
	if cred, _ := d.ActiveSTS(); cred.DN != d.TenantCredentialDN(4) {
		t.Errorf("new credential %s, want %s", cred.DN, d.TenantCredentialDN(4))
	}
	r.mustRun(0, nil, "run", "sts-check")
}

// TestSTSCheckLeftoverChain is the blog comment's case: the active signing
// certificate is valid, but a leftover TrustedCertChain entry holds an
// expired leaf that checksts reports and fixsts.sh of 2020 did not remove.
// sts-check reports it; after sts-regenerate it is gone.
func TestSTSCheckLeftoverChain(t *testing.T) {
	r := startLab(t, "healthy")
	d := r.Lab.Model()
	key, err := d.Keys.Next()
	if err != nil {
		t.Fatal(err)
	}
	now := d.Now()
	old, err := d.VMCARoot().Issue(pki.Request{CommonName: "ssoserverSign", Key: key, Usage: pki.UsageSigning,
		NotBefore: now.AddDate(-2, 0, -30), NotAfter: now.AddDate(0, 0, -30)})
	if err != nil {
		t.Fatal(err)
	}
	leftover := vmdir.NewEntry(d.TrustedChainDN(2),
		vmdir.StrAttr("objectClass", "top", "vmwSTSTenantTrustedCertificateChain"),
		vmdir.StrAttr("cn", "TrustedCertChain-2"),
		vmdir.Attr{Name: "userCertificate", Values: [][]byte{old.DER, d.VMCARoot().DER}})
	if err := d.Dir.Add(leftover); err != nil {
		t.Fatal(err)
	}

	res := r.mustRun(6, nil, "run", "sts-check")
	expired := section(res.Stderr, "EXPIRED CERTS", "Active signing credential")
	if !strings.Contains(section(expired, "LEAF CERTS", "ROOT CERTS"), "Certificate: "+stsThumbprint(old.X509)+" expired on") {
		t.Errorf("the leftover chain's expired leaf is not reported:\n%s", res.Stderr)
	}
	for _, want := range []string{"365 days left", "checksts found 1 expired LEAF and 0 expired ROOT"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, res.Stderr)
		}
	}
	if strings.Contains(res.Stderr, "active_valid: assertion failed") {
		t.Errorf("the valid active certificate was reported:\n%s", res.Stderr)
	}

	r.mustRun(0, nil, "run", "sts-regenerate", "--yes")
	stsVerifyRepaired(t, r)
	r.mustRun(0, nil, "run", "sts-check")
}
