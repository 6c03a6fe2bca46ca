package ldap

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"runbook/internal/testbin"

	goldap "github.com/go-ldap/ldap/v3"

	"runbook/engine"
	"runbook/lab/ldapd"
	"runbook/lab/model"
	"runbook/target"
)

// fixture is a directory server reached through a target, as steps see it.
type fixture struct {
	env  *engine.Env
	tg   *target.Target
	pnid string
	// url is the plain LDAP URL of a slapd fixture.
	url string
	// dump returns the whole directory as canonical text: what "unchanged"
	// and "restored" are judged by.
	dump func() string
}

// conn returns the first node's bound connection.
func (f *fixture) conn(t testing.TB) *goldap.Conn {
	t.Helper()
	c, err := f.tg.Nodes()[0].LDAP(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newEnv returns the Env the engine would give a step of the target, with
// its own run and backup folders.
func newEnv(t testing.TB, tg *target.Target) *engine.Env {
	t.Helper()
	run := t.TempDir()
	backup := filepath.Join(run, "backups", "step")
	if err := os.MkdirAll(backup, 0o700); err != nil {
		t.Fatal(err)
	}
	env := &engine.Env{RunID: "test-run", RunDir: run, BackupDir: backup, StepID: "step", Out: &bytes.Buffer{}}
	if tg != nil {
		env.Target = tg
	}
	return env
}

// writeProfile writes a one- or two-node profile whose SSO password is in
// a file beside it, and opens it.
func openTarget(t testing.TB, user, password string, nodes []target.NodeProfile) *target.Target {
	t.Helper()
	dir := t.TempDir()
	for name, pw := range map[string]string{"sso.pass": password, "root.pass": "unused-root-pw"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nodes {
		nodes[i].SSH = target.SSHProfile{Credentials: target.Credentials{User: "root", PasswordFile: "root.pass"}}
	}
	p := &target.Profile{
		Domain: "vsphere.local",
		SSO:    target.Credentials{User: user, PasswordFile: "sso.pass"},
		Nodes:  nodes,
		Path:   filepath.Join(dir, "profile.yaml"),
	}
	tg, err := target.Open(t.Context(), p, target.Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// startLab builds the lab's healthy domain and serves its directory over
// LDAPS with the first node's machine certificate, pinned in the profile.
// Both nodes of the profile reach the one shared directory.
func startLab(t testing.TB) (*fixture, *model.Domain) {
	t.Helper()
	dom, err := model.Build("healthy", model.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dom.Close() })
	leaf, cert := dom.Nodes[0].MachineCert()
	srv, err := ldapd.Start(t.Context(), ldapd.Config{Dir: dom.Dir, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	port := splitPort(t, srv.LDAPSAddr())
	var nodes []target.NodeProfile
	for _, n := range dom.Nodes {
		nodes = append(nodes, target.NodeProfile{
			PNID: n.PNID, Address: "127.0.0.1", Ports: target.Ports{LDAPS: port},
			TLSThumbprint: target.Thumbprint(leaf),
		})
	}
	tg := openTarget(t, dom.AdminUPN(), dom.AdminPassword, nodes)
	return &fixture{
		env:  newEnv(t, tg),
		tg:   tg,
		pnid: dom.Nodes[0].PNID,
		dump: func() string { return string(dom.Dir.LDIF()) },
	}, dom
}

// slapdSchema is the part of vmdir's schema the STS entries need, loaded
// instead of core.schema: there userCertificate would need ";binary", which
// vmdir does not use.
const slapdSchema = `objectidentifier TestSTS 1.3.6.1.4.1.99999.1
attributetype ( 0.9.2342.19200300.100.1.25 NAME ( 'dc' 'domainComponent' ) EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( 2.5.4.36 NAME 'userCertificate' EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
attributetype ( TestSTS:1.5 NAME 'vmwSTSPrivateKey' EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.1466.344 NAME 'dcObject' SUP top AUXILIARY MUST dc )
objectclass ( 1.2.840.113556.1.5.66 NAME 'domain' SUP top ABSTRACT MUST dc )
objectclass ( 1.2.840.113556.1.5.67 NAME 'domainDNS' SUP domain STRUCTURAL )
objectclass ( 1.2.840.113556.1.3.23 NAME 'container' SUP top STRUCTURAL MUST cn MAY description )
objectclass ( TestSTS:2.17 NAME 'vmwSTSTenantCredential' SUP top STRUCTURAL MUST ( cn $ vmwSTSPrivateKey $ userCertificate ) MAY description )
objectclass ( TestSTS:2.22 NAME 'vmwSTSTenantTrustedCertificateChain' SUP top STRUCTURAL MUST ( cn $ userCertificate ) )
`

const (
	domainDN     = "dc=vsphere,dc=local"
	tenantDN     = "cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=Services," + domainDN
	chainsDN     = "cn=TrustedCertificateChains," + tenantDN
	slapdAdminPW = "VMware1!-slapd"
)

func credDN(n int) string  { return fmt.Sprintf("cn=TenantCredential-%d,%s", n, tenantDN) }
func chainDN(n int) string { return fmt.Sprintf("cn=TrustedCertChain-%d,%s", n, chainsDN) }

// startSlapd starts Debian's slapd on loopback with the vmdir-like schema,
// the STS tenant tree and the given extra entries, and returns a fixture
// reaching it as administrator@vsphere.local over plain LDAP.
func startSlapd(t testing.TB, extra []record) *fixture {
	t.Helper()
	slapd := testbin.Need(t, "/usr/sbin/slapd", "slapd")
	slapadd := testbin.Need(t, "/usr/sbin/slapadd", "slapd")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("vmdir-min.schema", []byte(slapdSchema))
	conf := write("slapd.conf", fmt.Appendf(nil, `include %[1]s/vmdir-min.schema
pidfile %[1]s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 67108864
suffix "%[2]s"
rootdn "cn=Administrator,cn=Users,%[2]s"
rootpw %[3]s
directory %[1]s/db
access to dn.base="" by * read
access to * by users read by * none
`, dir, domainDN, slapdAdminPW))
	seed := []record{{entry: entry{DN: domainDN, Attrs: []attr{{"objectClass", vals("domainDNS", "dcObject")}, {"dc", vals("vsphere")}}}}}
	dn := domainDN
	for _, cn := range []string{"Users"} {
		seed = append(seed, container("cn="+cn+","+dn, cn))
	}
	for _, cn := range []string{"Services", "IdentityManager", "Tenants", "vsphere.local", "TrustedCertificateChains"} {
		dn = "cn=" + cn + "," + dn
		seed = append(seed, container(dn, cn))
	}
	seed = append(seed, extra...)
	var ldif bytes.Buffer
	if err := writeLDIF(&ldif, "seed", seed); err != nil {
		t.Fatal(err)
	}
	seedFile := write("seed.ldif", ldif.Bytes())
	if out, err := exec.Command(slapadd, "-q", "-f", conf, "-l", seedFile).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	port := freePort(t)
	var log bytes.Buffer
	cmd := exec.Command(slapd, "-d", "0", "-f", conf, "-h", fmt.Sprintf("ldap://127.0.0.1:%d/", port))
	cmd.Stderr = &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("slapd exited: %v\n%s", err, log.String())
		default:
		}
		if c, err := goldap.DialURL(fmt.Sprintf("ldap://127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd did not start:\n%s", log.String())
		}
	}
	tg := openTarget(t, "administrator@vsphere.local", slapdAdminPW, []target.NodeProfile{{
		PNID: "vcsa1.lab.test", Address: "127.0.0.1", Ports: target.Ports{LDAP: port, LDAPS: -1},
	}})
	f := &fixture{env: newEnv(t, tg), tg: tg, pnid: "vcsa1.lab.test", url: fmt.Sprintf("ldap://127.0.0.1:%d", port)}
	f.dump = func() string { return dumpTree(t, f.conn(t), domainDN) }
	return f
}

func container(dn, cn string) record {
	return record{entry: entry{DN: dn, Attrs: []attr{{"objectClass", vals("container")}, {"cn", vals(cn)}}}}
}

// dumpTree returns every entry under base as canonical text, written
// without this package's LDIF code: entries by lower-cased DN, attributes
// by lower-cased name, values in server order, each value quoted with %q
// (bytes that are not printable show escaped).
func dumpTree(t testing.TB, c *goldap.Conn, base string) string {
	t.Helper()
	res, err := c.Search(goldap.NewSearchRequest(base, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"*"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range res.Entries {
		attrs := slices.Clone(e.Attributes)
		slices.SortFunc(attrs, func(a, b *goldap.EntryAttribute) int {
			return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
		})
		var b strings.Builder
		fmt.Fprintf(&b, "dn: %s\n", strings.ToLower(e.DN))
		for _, a := range attrs {
			for _, v := range a.ByteValues {
				fmt.Fprintf(&b, "%s: %q\n", a.Name, v)
			}
		}
		lines = append(lines, b.String())
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// splitPort returns the port of a host:port address.
func splitPort(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// stsCred is a generated STS signing credential: a key (PKCS#8 DER) and
// its certificate chain, leaf first.
type stsCred struct {
	key   []byte
	chain [][]byte
}

// newSTSCred makes a CA and an STS leaf signed by it, as fixsts does.
func newSTSCred(t testing.TB, cn string) stsCred {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := certTemplate(t, "CN=CA,DC=vsphere,DC=local")
	caTmpl.IsCA, caTmpl.BasicConstraintsValid = true, true
	caTmpl.KeyUsage = x509.KeyUsageCertSign
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, certTemplate(t, cn), ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return stsCred{key: keyDER, chain: [][]byte{leafDER, caDER}}
}

func certTemplate(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	name := pkix.Name{CommonName: strings.TrimPrefix(strings.SplitN(cn, ",", 2)[0], "CN=")}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      name,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

// testCertDER is a self-signed certificate for cn ("CN=name").
func testCertDER(t testing.TB, cn string) []byte {
	return newSTSCred(t, cn).chain[0]
}

// credRecords are the two entries fixsts writes for credential n.
func credRecords(n int, c stsCred) []record {
	return []record{
		{entry: entry{DN: credDN(n), Attrs: []attr{
			{"objectClass", vals("vmwSTSTenantCredential")},
			{"cn", vals(fmt.Sprintf("TenantCredential-%d", n))},
			{"userCertificate", c.chain},
			{"vmwSTSPrivateKey", [][]byte{c.key}},
		}}},
		{entry: entry{DN: chainDN(n), Attrs: []attr{
			{"objectClass", vals("vmwSTSTenantTrustedCertificateChain")},
			{"cn", vals(fmt.Sprintf("TrustedCertChain-%d", n))},
			{"userCertificate", c.chain},
		}}},
	}
}

// b64 is the params form of binary values.
func b64(vs ...[]byte) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = base64Prefix + base64.StdEncoding.EncodeToString(v)
	}
	return out
}
