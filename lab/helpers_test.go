package lab

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"runbook/internal/testbin"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"runbook/lab/model"
)

// startLab starts a lab and closes it when the test ends.
func startLab(t testing.TB, scenario string, opts ...Option) *Lab {
	t.Helper()
	l, err := Start(t.Context(), scenario, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// result is what a client program did.
type result struct {
	stdout, stderr string
	code           int
}

// run runs cmd and returns its output and exit status; failing to start it
// fails the test.
func run(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run %s: %v", cmd.Path, err)
	}
	return r
}

// mustRun runs cmd and fails the test unless it exits 0.
func mustRun(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	r := run(t, cmd)
	if r.code != 0 {
		t.Fatalf("%s exited %d\nstdout: %s\nstderr: %s", strings.Join(cmd.Args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// openSSH runs Debian's OpenSSH ssh and sftp against one lab node, the
// password passed through sshpass -e (the environment, never argv) and the
// host key checked against a known_hosts file made from the lab's key.
type openSSH struct {
	addr, port string
	dir        string
	opts       []string
	env        []string
}

func newOpenSSH(t testing.TB, l *Lab, i int) *openSSH {
	t.Helper()
	testbin.Need(t, "ssh", "openssh-client")
	testbin.Need(t, "sshpass", "sshpass")
	nd := l.nodes[i]
	info := l.Nodes()[i]
	host, port, err := net.SplitHostPort(info.SSHAddr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(info.SSHAddr)}, nd.hostKey.PublicKey())
	if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &openSSH{
		addr: host, port: port, dir: dir,
		opts: []string{
			"-F", "/dev/null",
			"-o", "UserKnownHostsFile=" + kh,
			"-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "StrictHostKeyChecking=yes",
			"-o", "PreferredAuthentications=password",
			"-o", "PubkeyAuthentication=no",
			"-o", "NumberOfPasswordPrompts=1",
			"-o", "BatchMode=no",
			"-o", "ConnectTimeout=10",
			"-o", "LogLevel=ERROR",
		},
		env: append(os.Environ(), "HOME="+dir, "SSHPASS="+nd.n.RootPassword),
	}
}

// ssh runs a command line on the node with stdin.
func (o *openSSH) ssh(t testing.TB, cmdline, stdin string) result {
	t.Helper()
	args := append([]string{"-e", "ssh"}, o.opts...)
	args = append(args, "-p", o.port, "root@"+o.addr, cmdline)
	cmd := exec.Command("sshpass", args...)
	cmd.Env, cmd.Dir = o.env, o.dir
	cmd.Stdin = strings.NewReader(stdin)
	return run(t, cmd)
}

// sftp runs an sftp batch on the node.
func (o *openSSH) sftp(t testing.TB, batch string) result {
	t.Helper()
	testbin.Need(t, "sftp", "openssh-client")
	bf := filepath.Join(o.dir, "batch")
	if err := os.WriteFile(bf, []byte(batch), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-e", "sftp"}, o.opts...)
	args = append(args, "-P", o.port, "-b", bf, "root@"+o.addr)
	cmd := exec.Command("sshpass", args...)
	cmd.Env, cmd.Dir = o.env, o.dir
	return run(t, cmd)
}

// ldapClient runs Debian's ldapsearch and ldapmodify against a lab node,
// bound as the SSO administrator with the password in a file (-y).
type ldapClient struct {
	uri    string
	bindDN string
	pwFile string
	env    []string
}

func newLDAPClient(t testing.TB, l *Lab, uri string) *ldapClient {
	t.Helper()
	testbin.Need(t, "ldapsearch", "ldap-utils")
	dir := t.TempDir()
	pw := filepath.Join(dir, "sso.pass")
	d := l.Model()
	d.Lock()
	secret := d.AdminPassword
	d.Unlock()
	// -y uses the file's whole content: no trailing newline.
	if err := os.WriteFile(pw, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return &ldapClient{
		uri: uri, bindDN: d.AdminDN(), pwFile: pw,
		env: append(os.Environ(), "LDAPTLS_REQCERT=never", "LDAPCONF=/dev/null", "LDAPRC=none", "HOME="+dir),
	}
}

func (c *ldapClient) command(prog string, args ...string) *exec.Cmd {
	argv := append([]string{"-x", "-H", c.uri, "-D", c.bindDN, "-y", c.pwFile}, args...)
	cmd := exec.Command(prog, argv...)
	cmd.Env = c.env
	return cmd
}

// search runs ldapsearch -LLL and returns the DNs of the entries found,
// unfolded.
func (c *ldapClient) search(t testing.TB, base, filter string, attrs ...string) []string {
	t.Helper()
	out := mustRun(t, c.command("ldapsearch", append([]string{"-LLL", "-o", "ldif-wrap=no", "-b", base, filter}, attrs...)...))
	var dns []string
	for line := range strings.SplitSeq(out, "\n") {
		if dn, ok := strings.CutPrefix(line, "dn: "); ok {
			dns = append(dns, dn)
		}
	}
	return dns
}

// modify runs ldapmodify with an LDIF on stdin.
func (c *ldapClient) modify(t testing.TB, ldif string) result {
	t.Helper()
	testbin.Need(t, "ldapmodify", "ldap-utils")
	cmd := c.command("ldapmodify")
	cmd.Stdin = strings.NewReader(ldif)
	return run(t, cmd)
}

// servedCert returns the leaf certificate `openssl s_client` is shown at
// addr.
func servedCert(t testing.TB, addr string) *x509.Certificate {
	t.Helper()
	testbin.Need(t, "openssl", "openssl")
	cmd := exec.Command("openssl", "s_client", "-connect", addr, "-showcerts")
	cmd.Stdin = strings.NewReader("")
	out := mustRun(t, cmd)
	block, _ := pem.Decode([]byte(out[strings.Index(out, "-----BEGIN"):]))
	if block == nil {
		t.Fatalf("openssl s_client -connect %s printed no certificate:\n%s", addr, out)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// expiredPerOpenSSL reports whether `openssl x509 -checkend 0` says the
// certificate has expired.
func expiredPerOpenSSL(t testing.TB, der []byte) bool {
	t.Helper()
	testbin.Need(t, "openssl", "openssl")
	cmd := exec.Command("openssl", "x509", "-noout", "-checkend", "0")
	cmd.Stdin = bytes.NewReader(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	r := run(t, cmd)
	switch {
	case r.code == 0 && strings.Contains(r.stdout, "will not expire"):
		return false
	case r.code == 1 && strings.Contains(r.stdout, "will expire"):
		return true
	}
	t.Fatalf("openssl x509 -checkend 0: exit %d: %s%s", r.code, r.stdout, r.stderr)
	return false
}

// sshDial logs in to node i as root with x/crypto/ssh, checking the lab's
// host key.
func sshDial(l *Lab, i int) (*ssh.Client, error) {
	nd := l.nodes[i]
	return ssh.Dial("tcp", l.Nodes()[i].SSHAddr, &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.Password(nd.n.RootPassword)},
		HostKeyCallback: ssh.FixedHostKey(nd.hostKey.PublicKey()),
		Timeout:         10 * time.Second,
	})
}

// goSSH is sshDial for tests: it fails the test on error and closes the
// client when the test ends.
func goSSH(t testing.TB, l *Lab, i int) *ssh.Client {
	t.Helper()
	c, err := sshDial(l, i)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// machineCert returns node i's Machine SSL certificate as the model holds
// it.
func machineCert(t testing.TB, l *Lab, i int) *x509.Certificate {
	t.Helper()
	c, err := l.Model().Nodes[i].StoreCert(model.StoreMachineSSL, model.AliasMachineCert)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
