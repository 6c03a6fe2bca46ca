package vmca

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"

	"runbook/engine"
	"runbook/lab/model"
	"runbook/lab/pki"
)

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	Register(r)
	st, ok := r.Lookup("vmca.issue")
	if !ok || st.Effect() != engine.EffectWrite || len(r.IDs()) != 1 {
		t.Fatalf("registered %v", r.IDs())
	}
}

// workDir is the remote work folder for testLab's run id.
const workDir = "/tmp/vmware-runbook-20260102-030405-test"

// TestIssueSTS issues fixsts's STS certificate on the healthy lab and
// checks the step's contract on the lab's state and the files: the plan
// changes nothing, Check tells before from after, the files hold a
// certificate signed by the VMCA root with its key, the key is gone from
// the node, and a second Apply is not needed.
func TestIssueSTS(t *testing.T) {
	ctx := t.Context()
	l, env := testLab(t, "healthy")
	d := l.Model()
	n := d.Nodes[0]
	p := &issueParams{Profile: ProfileSTS}

	snap := l.Snapshot()
	plan, err := planIssue(ctx, env, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Fatal("Plan changed the lab")
	}
	if len(plan.Changes) != 1 || plan.InPlace {
		t.Fatalf("plan %+v", plan)
	}
	c := plan.Changes[0]
	if c.Action != "create" || c.Object != n.PNID+" certool sts certificate" || c.Before != "" ||
		!strings.Contains(c.After, "CN=STS, OU=VMware, O=VMware, L=VMware, ST=VMware, C=DS") ||
		!strings.Contains(c.After, "SANs "+n.PNID) || !strings.Contains(c.After, "signed by the node's VMCA (root ") {
		t.Errorf("change %+v", c)
	}

	v, err := checkIssue(ctx, env, p)
	if err != nil || v.State != engine.NotApplied {
		t.Fatalf("Check before Apply = %v %q, %v; want not applied", v.State, v.Detail, err)
	}
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Fatal("Check changed the lab")
	}

	out, err := applyIssue(ctx, env, p)
	if err != nil {
		t.Fatal(err)
	}
	checkIssued(t, d, n, out)
	leaf := parseDER(t, out.CertDERFile)
	if leaf.Subject.CommonName != "STS" || !slices.Equal(leaf.Subject.Country, []string{"DS"}) ||
		!slices.Equal(leaf.Subject.Organization, []string{"VMware"}) || !slices.Contains(leaf.DNSNames, n.PNID) {
		t.Errorf("subject %s, names %v", out.Subject, leaf.DNSNames)
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		t.Errorf("an STS signing certificate without digitalSignature: %v", leaf.KeyUsage)
	}

	// On the node: the certool.cfg fixsts writes, the certificate, and no key.
	cfg, err := n.ReadFile(path.Join(workDir, "certool.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sts-certool.cfg", strings.ReplaceAll(string(cfg), "IPAddress = "+l.Nodes()[0].SSHAddr[:strings.LastIndexByte(l.Nodes()[0].SSHAddr, ':')], "IPAddress = <node address>"))
	if _, err := n.ReadFile(path.Join(workDir, "sts.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the private key is still on the node: %v", err)
	}
	if _, err := n.ReadFile(path.Join(workDir, "sts.cer")); err != nil {
		t.Errorf("the certificate is not in the work folder: %v", err)
	}

	// Check now says applied, with the same outputs, and changes nothing.
	snap = l.Snapshot()
	v, err = checkIssue(ctx, env, p)
	if err != nil || v.State != engine.Applied {
		t.Fatalf("Check after Apply = %v %q, %v; want applied", v.State, v.Detail, err)
	}
	if !reflect.DeepEqual(v.Outputs, out) {
		t.Errorf("Check outputs differ from Apply's:\n%+v\n%+v", v.Outputs, out)
	}
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Error("Check changed the lab")
	}
}

// checkIssued checks what Apply left in the run folder: a certificate
// signed by the lab's VMCA root, its key (owner-only files), the DER
// forms, and outputs that describe them without the key.
func checkIssued(t *testing.T, d *model.Domain, n *model.Node, out issueOutputs) {
	t.Helper()
	root := d.VMCARoot()
	leaf := parseDER(t, out.CertDERFile)
	if err := leaf.CheckSignatureFrom(root.X509); err != nil {
		t.Errorf("the certificate is not signed by the lab's VMCA root: %v", err)
	}
	pemCerts, err := pki.ParseCerts(readFile(t, out.CertFile))
	if err != nil || !pemCerts[0].Equal(leaf) {
		t.Errorf("cert_file does not start with the certificate of cert_der_file: %v", err)
	}
	keyDER := readFile(t, out.KeyDERFile)
	if _, err := x509.ParsePKCS8PrivateKey(keyDER); err != nil {
		t.Fatalf("key_der_file is not PKCS#8 DER: %v", err)
	}
	pemKey, pkcs8, err := pki.ParseKey(readFile(t, out.KeyFile))
	if err != nil || !bytes.Equal(pkcs8, keyDER) {
		t.Errorf("key_file and key_der_file differ: %v", err)
	}
	if !pki.KeyMatches(leaf, pemKey) {
		t.Error("the key does not match the certificate")
	}
	for _, f := range []string{out.KeyFile, out.KeyDERFile} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode(), err)
		}
	}
	if len(out.ChainDERFiles) != 1 || !bytes.Equal(readFile(t, out.ChainDERFiles[0]), root.DER) {
		t.Errorf("chain_der_files %v do not hold the VMCA root", out.ChainDERFiles)
	}
	nodeRoot, err := n.ReadFile(model.PathRootCert)
	if err != nil || !bytes.Equal(readFile(t, out.RootFile), nodeRoot) {
		t.Errorf("root_file is not the node's root.cer: %v", err)
	}
	b64 := base64.StdEncoding.EncodeToString(leaf.Raw)
	wantChain := []string{"base64:" + b64, "base64:" + base64.StdEncoding.EncodeToString(root.DER)}
	if out.CertBase64 != b64 || !slices.Equal(out.ChainBase64, wantChain) {
		t.Errorf("cert_base64 / chain_base64 are not the DER of the leaf then the root")
	}
	if out.SHA1 != pki.Thumbprint(leaf.Raw) || !out.NotAfter.Equal(leaf.NotAfter) || out.Subject == "" {
		t.Errorf("sha1 %s notAfter %v subject %q; want %s %v", out.SHA1, out.NotAfter, out.Subject, pki.Thumbprint(leaf.Raw), leaf.NotAfter)
	}
	js, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(js, []byte("PRIVATE KEY")) || bytes.Contains(js, []byte(base64.StdEncoding.EncodeToString(keyDER)[:40])) {
		t.Error("the outputs hold the private key")
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseDER(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(readFile(t, p))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return c
}

// TestIssueProfiles issues the other profiles and checks the names each
// puts into the certificate.
func TestIssueProfiles(t *testing.T) {
	ctx := t.Context()
	l, env := testLab(t, "healthy")
	d := l.Model()
	n := d.Nodes[0]
	tests := []struct {
		name    string
		p       issueParams
		cn      string
		ou      string
		dnsName []string
	}{
		{"machine ssl with an alias", issueParams{Profile: ProfileMachineSSL, Hostnames: []string{"vcenter.lab.test", n.PNID}},
			n.PNID, "VMware Engineering", []string{"vcenter.lab.test", n.PNID}},
		{"solution user", issueParams{Profile: ProfileSolutionUser, Name: "vpxd-" + n.MachineID, WorkDir: "/tmp/soluser work"},
			"vpxd-" + n.MachineID, "mID-" + n.MachineID, []string{n.PNID}},
		{"second node", issueParams{Node: d.Nodes[1].PNID, Profile: ProfileMachineSSL, IP: "10.0.0.99"},
			d.Nodes[1].PNID, "VMware Engineering", []string{d.Nodes[1].PNID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := *env
			env.StepID = strings.ReplaceAll(tt.name, " ", "_")
			out, err := applyIssue(ctx, &env, &tt.p)
			if err != nil {
				t.Fatal(err)
			}
			node := n
			if tt.p.Node != "" {
				node = d.Node(tt.p.Node)
			}
			checkIssued(t, d, node, out)
			leaf := parseDER(t, out.CertDERFile)
			if leaf.Subject.CommonName != tt.cn || !slices.Equal(leaf.Subject.OrganizationalUnit, []string{tt.ou}) || !slices.Equal(leaf.DNSNames, tt.dnsName) {
				t.Errorf("subject %s, names %v; want CN %s OU %s names %v", out.Subject, leaf.DNSNames, tt.cn, tt.ou, tt.dnsName)
			}
			if tt.p.IP != "" && (len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != tt.p.IP) {
				t.Errorf("IP addresses %v, want %s", leaf.IPAddresses, tt.p.IP)
			}
			v, err := checkIssue(ctx, &env, &tt.p)
			if err != nil || v.State != engine.Applied {
				t.Errorf("Check = %v %q, %v", v.State, v.Detail, err)
			}
		})
	}
}

// TestIssueRefused: params that would give a broken certificate are
// refused by Plan, Apply and Check alike, before anything changes.
func TestIssueRefused(t *testing.T) {
	ctx := t.Context()
	l, env := testLab(t, "healthy")
	pnid := l.Model().Nodes[0].PNID
	tests := []struct {
		name string
		p    issueParams
		want string
	}{
		{"hostnames without the PNID", issueParams{Profile: ProfileSTS, Hostnames: []string{"vcenter.lab.test"}}, "do not include the node's PNID " + pnid},
		{"host name list in one item", issueParams{Profile: ProfileSTS, Hostnames: []string{pnid + ",x.lab.test"}}, "is not a host name"},
		{"line break in a name", issueParams{Profile: ProfileMachineSSL, Name: "a\nHostname = evil"}, "line break"},
		{"solution user without name", issueParams{Profile: ProfileSolutionUser}, "needs the solution user's name"},
		{"bad ip", issueParams{Profile: ProfileSTS, IP: "10.0.0.300"}, "not an IPv4 or IPv6 address"},
		{"relative work dir", issueParams{Profile: ProfileSTS, WorkDir: "tmp"}, "not an absolute path"},
		{"unknown node", issueParams{Profile: ProfileSTS, Node: "nope.lab.test"}, "nope.lab.test"},
	}
	snap := l.Snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := planIssue(ctx, env, &tt.p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Plan: %v, want %q", err, tt.want)
			}
			if _, err := applyIssue(ctx, env, &tt.p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Apply: %v, want %q", err, tt.want)
			}
			if _, err := checkIssue(ctx, env, &tt.p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check: %v, want %q", err, tt.want)
			}
		})
	}
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Error("refused requests changed the lab")
	}
}

// TestIssueCheckRejectsTampering: Check is not applied when the run
// folder's files do not belong together.
func TestIssueCheckRejectsTampering(t *testing.T) {
	ctx := t.Context()
	_, env := testLab(t, "healthy")
	p := &issueParams{Profile: ProfileSTS}
	out, err := applyIssue(ctx, env, p)
	if err != nil {
		t.Fatal(err)
	}
	other := *env
	other.StepID = "other"
	otherOut, err := applyIssue(ctx, &other, &issueParams{Profile: ProfileSTS})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		file   string
		data   []byte
		detail string
	}{
		{"another key", out.KeyFile, readFile(t, otherOut.KeyFile), "does not belong"},
		{"DER not of the PEM", out.CertDERFile, readFile(t, otherOut.CertDERFile), "does not hold the DER"},
		{"missing key", out.KeyDERFile, nil, "no certificate issued yet"},
		{"garbage root", out.RootFile, []byte("not a certificate"), "parse VMCA root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := readFile(t, tt.file)
			t.Cleanup(func() { _ = os.WriteFile(tt.file, orig, 0o600) })
			if tt.data == nil {
				if err := os.Remove(tt.file); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(tt.file, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			v, err := checkIssue(ctx, env, p)
			if err != nil || v.State != engine.NotApplied || !strings.Contains(v.Detail, tt.detail) {
				t.Errorf("Check = %v %q, %v; want not applied, %q", v.State, v.Detail, err, tt.detail)
			}
		})
	}
	if v, err := checkIssue(ctx, env, p); err != nil || v.State != engine.Applied {
		t.Errorf("Check after restoring the files = %v %q, %v", v.State, v.Detail, err)
	}
}

// TestIssueFailsOnExpiredRoot: with the VMCA root expired certool fails;
// Apply says so, and the key it generated does not stay on the node.
func TestIssueFailsOnExpiredRoot(t *testing.T) {
	ctx := t.Context()
	l, env := testLab(t, "root-expired")
	n := l.Model().Nodes[0]
	p := &issueParams{Profile: ProfileSTS}
	plan, err := planIssue(ctx, env, p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.Changes[0].After, "EXPIRED") {
		t.Errorf("the plan does not warn that the root expired: %s", plan.Changes[0].After)
	}
	_, err = applyIssue(ctx, env, p)
	if err == nil || !strings.Contains(err.Error(), "certool --gencert on "+n.PNID+" failed") || !strings.Contains(err.Error(), "Status : Failed") {
		t.Fatalf("Apply: %v; want certool --gencert's failure", err)
	}
	if _, err := n.ReadFile(path.Join(workDir, "sts.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the private key stayed on the node after the failure: %v", err)
	}
	if v, err := checkIssue(ctx, env, p); err != nil || v.State != engine.NotApplied {
		t.Errorf("Check = %v %q, %v; want not applied", v.State, v.Detail, err)
	}
}

// TestConfigText pins the certool.cfg of each profile.
func TestConfigText(t *testing.T) {
	n := node{PNID: "vcsa1.lab.test", IP: "10.0.0.11", Domain: "vsphere.local", MachineID: "0b3f5c1e-1111-2222-3333-444455556666"}
	tests := []struct {
		file    string
		profile string
		name    string
		hosts   []string
	}{
		{"sts.cfg", ProfileSTS, "", nil},
		{"machine_ssl.cfg", ProfileMachineSSL, "", []string{"vcsa1.lab.test", "vcenter.lab.test", "VCSA1.lab.test"}},
		{"solution_user.cfg", ProfileSolutionUser, "vpxd-" + n.MachineID, nil},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			r, err := newRequest(n, tt.profile, tt.name, "", tt.hosts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, r.cfg.text()+"# subject: "+r.subject()+"\n# sans: "+strings.Join(r.sans(), ", ")+"\n")
		})
	}
}
