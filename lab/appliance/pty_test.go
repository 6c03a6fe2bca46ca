package appliance

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"runbook/lab/model"
	"runbook/lab/sshd"
)

// expecter drives an interactive session: it collects everything the
// server writes and waits for patterns in what is new.
type expecter struct {
	t       *testing.T
	in      io.Writer
	mu      sync.Mutex
	out     bytes.Buffer
	pos     int
	eof     bool
	changed chan struct{}
}

func newExpecter(t *testing.T, in io.Writer, out io.Reader) *expecter {
	e := &expecter{t: t, in: in, changed: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			e.mu.Lock()
			e.out.Write(buf[:n])
			if err != nil {
				e.eof = true
			}
			e.mu.Unlock()
			select {
			case e.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return e
}

// expect waits until pattern matches the output not yet consumed and
// consumes it up to the end of the match. The deadline only guards
// against a hung session.
func (e *expecter) expect(pattern string) string {
	e.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.After(60 * time.Second)
	for {
		e.mu.Lock()
		rest := e.out.String()[e.pos:]
		loc := re.FindStringIndex(rest)
		eof := e.eof
		if loc != nil {
			e.pos += loc[1]
		}
		e.mu.Unlock()
		if loc != nil {
			return rest[:loc[1]]
		}
		if eof {
			e.t.Fatalf("session ended waiting for %q; unread output:\n%s", pattern, rest)
		}
		select {
		case <-e.changed:
		case <-deadline:
			e.t.Fatalf("timed out waiting for %q; unread output:\n%s", pattern, rest)
		}
	}
}

func (e *expecter) send(s string) {
	e.t.Helper()
	if _, err := io.WriteString(e.in, s); err != nil {
		e.t.Fatal(err)
	}
}

// transcript returns everything the session printed so far.
func (e *expecter) transcript() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.out.String()
}

// startSSH serves node n over the lab's SSH server and returns a client.
func startSSH(t *testing.T, d *model.Domain, n *model.Node) (*sshd.Server, *ssh.Client) {
	t.Helper()
	srv, err := sshd.Start(t.Context(), sshd.Config{
		User: "root", Password: n.RootPassword, Root: n.Root, Hostname: n.PNID,
		Commands: Commands(d, n),
		Faults: sshd.FaultFunc(func(op string) error {
			return d.Faults.Before(model.ProtoSSH, op)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.Password(n.RootPassword)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// ptyRun starts cmd in a session with a PTY.
func ptyRun(t *testing.T, c *ssh.Client, cmd string) (*ssh.Session, *expecter) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.RequestPty("xterm", 50, 200, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		t.Fatal(err)
	}
	in, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(cmd); err != nil {
		t.Fatal(err)
	}
	return s, newExpecter(t, in, out)
}

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitStatus()
	}
	t.Fatalf("wait: %v", err)
	return -1
}

// answerConfig answers the first-time certool.cfg block for node n,
// exercising each validation once.
func answerConfig(e *expecter, n *model.Node) {
	e.expect(`Please configure certool.cfg with proper values before proceeding to next step\.\r\n`)
	e.expect(`Press Enter key to skip optional parameters or use Default value\.\r\n`)
	e.expect(`Enter proper value for 'Country' \[Default value : US\] : $`)
	e.send("USA\r")
	e.expect(`Enter valid 2 letter country code\r\n`)
	e.expect(`Enter proper value for 'Country' \[Default value : US\] : $`)
	e.send("\r")
	e.expect(`Enter proper value for 'Name' \[Default value : CA\] : $`)
	e.send(n.PNID + "\r")
	for _, k := range []string{`'Organization' \[Default value : VMware\]`, `'OrgUnit' \[Default value : VMware Engineering\]`,
		`'State' \[Default value : California\]`, `'Locality' \[Default value : Palo Alto\]`} {
		e.expect(`Enter proper value for ` + k + ` : $`)
		e.send("\r")
	}
	ip := regexp.QuoteMeta(`Enter proper value for 'IPAddress' (Provide comma separated values for multiple IP addresses) [optional] : `) + "$"
	e.expect(ip)
	e.send("10.0.0.300\r")
	e.expect(`Please enter IP address in valid IPV4 or IPV6 format\r\n`)
	e.expect(ip)
	e.send(n.DisplayIP + "\r")
	e.expect(`Enter proper value for 'Email' \[Default value : email@acme\.com\] : $`)
	e.send("\r")
	host := regexp.QuoteMeta(`Enter proper value for 'Hostname' (Provide comma separated values for multiple Hostname entries) [Enter valid Fully Qualified Domain Name(FQDN), For Example : example.domain.com] : `) + "$"
	e.expect(host)
	e.send("\r")
	e.expect(`Hostname should not be empty, please enter valid FQDN\.\r\n`)
	e.expect(host)
	e.send(n.PNID + "\r")
	e.expect(`Enter proper value for VMCA 'Name' :$`)
	e.send(n.PNID + "\r")
}

// login answers the credential prompts; wrong passwords come first.
func login(e *expecter, wrong []string, password string) {
	e.expect(`Please provide valid SSO and VC privileged user credential to perform certificate operations\.\r\n`)
	e.expect(`Enter username \[Administrator@vsphere\.local\]:$`)
	e.send("\r")
	for i, pw := range wrong {
		e.expect(`Enter password:$`)
		e.send(pw + "\r")
		e.expect(regexp.QuoteMeta("Incorrect Password! Try Again! (" + string(rune('0'+2-i)) + " attempt/s left)"))
	}
	e.expect(`Enter password:$`)
	e.send(password + "\r")
}

// checkTranscript asserts the terminal conventions and that no password
// reached the screen or the audit log.
func checkTranscript(t *testing.T, srv *sshd.Server, tr string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(tr, s) {
			t.Errorf("password %q echoed in the transcript", s)
		}
		if strings.Contains(strings.Join(srv.Audit(), "\n"), s) {
			t.Errorf("password %q in the audit log", s)
		}
	}
	if regexp.MustCompile(`[^\r]\n`).MatchString(tr) {
		t.Errorf("bare LF in PTY output:\n%q", tr)
	}
}

// TestCertificateManagerOption3 drives option 3 over SSH with a PTY on the
// healthy lab and judges the result by the lab's state.
func TestCertificateManagerOption3(t *testing.T) {
	d := newLab(t, "healthy")
	n := d.Nodes[0]
	old, _ := n.MachineCert()
	before, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	srv, c := startSSH(t, d, n)
	s, e := ptyRun(t, c, PathCertificateManager)
	e.expect(regexp.QuoteMeta("|      *** Welcome to the vSphere 7.0 Certificate Manager  ***        |"))
	e.expect(`Note : Use Ctrl-D to exit\.\r\n`)
	e.expect(`Option\[1 to 8\]: $`)
	e.send("3\r")
	login(e, []string{"not-the-password"}, d.AdminPassword)
	answerConfig(e, n)
	e.expect(`You are going to regenerate Machine SSL cert using VMCA\r\n`)
	e.expect(`Continue operation : Option\[Y/N\] \? : $`)
	e.send("maybe\r")
	e.expect(`Please enter any value with in \[Y/N\]\.\r\n`)
	e.expect(`Continue operation : Option\[Y/N\] \? : $`)
	e.send("Y\r")
	e.expect(`Status : 0% Completed \[Replacing Machine SSL Cert\.\.\.\]\r\nGet site name\r\ndefault-site\r\nLookup all services\r\n`)
	e.expect(`Updated \d+ service\(s\)\r\n`)
	e.expect(`Status : 100% Completed \[All tasks completed successfully\]\r\n`)
	if got := exitStatus(t, s.Wait()); got != 0 {
		t.Errorf("exit status %d\n%s", got, e.transcript())
	}
	checkTranscript(t, srv, e.transcript(), d.AdminPassword, "not-the-password")
	golden(t, "certificate-manager-option3", normalize(strings.ReplaceAll(e.transcript(), "\r\n", "\n")))
	checkMachineSSLReplaced(t, d, n, old.Raw, before)
	cert, _ := n.StoreCert(model.StoreMachineSSL, model.AliasMachineCert)
	if cert.Subject.CommonName != n.PNID || len(cert.DNSNames) != 1 || cert.DNSNames[0] != n.PNID ||
		len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != n.DisplayIP {
		t.Errorf("new certificate subject %s, SANs %v %v", cert.Subject, cert.DNSNames, cert.IPAddresses)
	}
	cfg, err := n.ReadFile(PathCertoolWorkingCopy)
	if err != nil || !strings.Contains(string(cfg), "Hostname = "+n.PNID+"\n") {
		t.Errorf("working certool.cfg: %v\n%s", err, cfg)
	}
}

// TestCertificateManagerOption8 runs option 3 then option 8 in one lab, so
// option 8 meets an existing working certool.cfg.
func TestCertificateManagerOption8(t *testing.T) {
	d := newLab(t, "healthy")
	n := d.Nodes[0]
	if err := ReplaceMachineSSL(t.Context(), d, n, machineCfg(n), io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := n.WriteFile(PathCertoolWorkingCopy, machineCfg(n).Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	oldRoot := d.VMCARoot()
	srv, c := startSSH(t, d, n)
	s, e := ptyRun(t, c, "certificate-manager")
	e.expect(`Option\[1 to 8\]: $`)
	e.send("8\r")
	e.expect(regexp.QuoteMeta("Do you wish to generate all certificates using configuration file : Option[Y/N] ? : ") + "$")
	e.send("Y\r")
	login(e, nil, d.AdminPassword)
	e.expect(regexp.QuoteMeta("certool.cfg file exists, Do you wish to reconfigure : Option[Y/N] ? : ") + "$")
	e.send("N\r")
	e.expect(`Enter proper value for VMCA 'Name' :$`)
	e.send("CA-" + n.PNID + "\r")
	e.expect(`Continue operation : Option\[Y/N\] \? : $`)
	e.send("y\r")
	e.expect(`You are going to reset by regenerating Root Certificate and replace all certificates using VMCA\r\n`)
	e.expect(`Continue operation : Option\[Y/N\] \? : $`)
	e.send("y\r")
	e.expect(`Status : 0% Completed \[Replacing Root Cert\.\.\.\]\r\n`)
	e.expect(`Status : 100% Completed \[All tasks completed successfully\]\r\n`)
	if got := exitStatus(t, s.Wait()); got != 0 {
		t.Errorf("exit status %d\n%s", got, e.transcript())
	}
	checkTranscript(t, srv, e.transcript(), d.AdminPassword)
	newRoot := d.VMCARoot()
	if bytes.Equal(newRoot.DER, oldRoot.DER) || newRoot.X509.Subject.CommonName != "CA-"+n.PNID {
		t.Fatalf("root not replaced (CN %q)", newRoot.X509.Subject.CommonName)
	}
	cert, _ := n.StoreCert(model.StoreMachineSSL, model.AliasMachineCert)
	if cert.CheckSignatureFrom(newRoot.X509) != nil {
		t.Error("machine certificate not signed by the new root")
	}
	if r := runLine(t, d, n, "vecs-cli entry list --store TRUSTED_ROOTS"); !strings.Contains(r.stdout, "Number of entries in store :\t2\n") {
		t.Errorf("TRUSTED_ROOTS after option 8:\n%s", r.stdout)
	}
}

// TestCertificateManagerOption8RootExpired drives option 8 over a PTY
// where the VMCA root has expired and vmcad is stopped (the STS signing
// credential comes from an enterprise CA, see customSTS): the reset makes
// a new root without vmcad, then replaces everything else and restarts
// every service.
func TestCertificateManagerOption8RootExpired(t *testing.T) {
	d := newLab(t, "root-expired")
	customSTS(t, d)
	n := d.Nodes[0]
	expired := d.VMCARoot()
	srv, c := startSSH(t, d, n)
	s, e := ptyRun(t, c, PathCertificateManager)
	e.expect(`Option\[1 to 8\]: $`)
	e.send("8\r")
	e.expect(regexp.QuoteMeta("Do you wish to generate all certificates using configuration file : Option[Y/N] ? : ") + "$")
	e.send("Y\r")
	login(e, nil, d.AdminPassword)
	answerConfig(e, n)
	e.expect(`Continue operation : Option\[Y/N\] \? : $`)
	e.send("Y\r")
	e.expect(`You are going to reset by regenerating Root Certificate and replace all certificates using VMCA\r\n`)
	e.expect(`Continue operation : Option\[Y/N\] \? : $`)
	e.send("Y\r")
	e.expect(`Status : 0% Completed \[Replacing Root Cert\.\.\.\]\r\n`)
	e.expect(`Status : 100% Completed \[All tasks completed successfully\]\r\n`)
	if got := exitStatus(t, s.Wait()); got != 0 {
		t.Errorf("exit status %d\n%s", got, e.transcript())
	}
	checkTranscript(t, srv, e.transcript(), d.AdminPassword)
	golden(t, "certificate-manager-option8-root-expired", normalize(strings.ReplaceAll(e.transcript(), "\r\n", "\n")))
	checkRootReset(t, d, n, expired, n.PNID)
}

// TestCertificateManagerOption3RootExpired: option 3 where the VMCA root
// has expired stops before it changes anything and says to run option 8.
func TestCertificateManagerOption3RootExpired(t *testing.T) {
	d := newLab(t, "root-expired")
	n := d.Nodes[0]
	before := d.Snapshot()
	_, c := startSSH(t, d, n)
	s, e := ptyRun(t, c, PathCertificateManager)
	e.expect(`Option\[1 to 8\]: $`)
	e.send("3\r")
	login(e, nil, d.AdminPassword)
	answerConfig(e, n)
	e.expect(`Continue operation : Option\[Y/N\] \? : $`)
	e.send("Y\r")
	e.expect(`Error: replace machine ssl certificate: vmca root certificate has expired: CN=CA, DC=vsphere, DC=local, .* expired on 2026-03-09 09:26:53 GMT; ` +
		`regenerate it with certificate-manager option 8 \(Reset all Certificates\) on ` + regexp.QuoteMeta(n.PNID) + `\r\n`)
	e.expect(regexp.QuoteMeta("certificate-manager Error while replacing Machine SSL Cert, please see /var/log/vmware/vmcad/certificate-manager.log for more information."))
	if got := exitStatus(t, s.Wait()); got == 0 {
		t.Error("exit status 0 after a refused operation")
	}
	if strings.Contains(e.transcript(), "Status :") {
		t.Errorf("the refused operation shows progress:\n%s", e.transcript())
	}
	strip := func(b []byte) string {
		var out []string
		for _, l := range strings.Split(stripSnapshot(b), "\n") {
			if !strings.Contains(l, PathCertoolWorkingCopy) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	if got, want := strip(d.Snapshot()), strip(before); got != want {
		t.Errorf("the lab changed:\n%s", lineDiff(want, got))
	}
}

// TestCertificateManagerRollbackPTY: option 3 on all-expired shows the
// automatic rollback and exits non-zero.
func TestCertificateManagerRollbackPTY(t *testing.T) {
	d := newLab(t, "all-expired")
	n := d.Nodes[0]
	before := d.Snapshot()
	_, c := startSSH(t, d, n)
	s, e := ptyRun(t, c, PathCertificateManager)
	e.expect(`Option\[1 to 8\]: $`)
	e.send("3\r")
	login(e, nil, d.AdminPassword)
	answerConfig(e, n)
	e.expect(`Continue operation : Option\[Y/N\] \? : $`)
	e.send("Y\r")
	e.expect(`Error while starting services, please see log for more details\r\n`)
	e.expect(`Status : 0% Completed \[Operation failed, performing automatic rollback\]\r\nPerforming rollback of Machine SSL Cert\.\.\.\r\n`)
	e.expect(`Rollback Status : 100% Completed \[Rollback completed successfully\]\r\n`)
	e.expect(regexp.QuoteMeta("certificate-manager Error while replacing Machine SSL Cert, please see /var/log/vmware/vmcad/certificate-manager.log for more information."))
	if got := exitStatus(t, s.Wait()); got == 0 {
		t.Error("exit status 0 after a rolled-back operation")
	}
	strip := func(b []byte) string {
		var out []string
		for _, l := range strings.Split(stripSnapshot(b), "\n") {
			if !strings.Contains(l, PathCertoolWorkingCopy) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	if got, want := strip(d.Snapshot()), strip(before); got != want {
		t.Errorf("state after rollback differs:\n%s", lineDiff(want, got))
	}
}

// TestCertificateManagerNeedsTerminal: without a PTY the menu refuses.
func TestCertificateManagerNeedsTerminal(t *testing.T) {
	d := newLab(t, "healthy")
	r := runLine(t, d, d.Nodes[0], "certificate-manager")
	if r.status == 0 || !strings.Contains(r.stderr, "terminal") {
		t.Errorf("without a terminal: %+v", r)
	}
}

// TestCertificateManagerThreeWrongPasswords ends the session.
func TestCertificateManagerThreeWrongPasswords(t *testing.T) {
	d := newLab(t, "healthy")
	before := d.Snapshot()
	_, c := startSSH(t, d, d.Nodes[0])
	s, e := ptyRun(t, c, PathCertificateManager)
	e.expect(`Option\[1 to 8\]: $`)
	e.send("6\r")
	login(e, []string{"wrong-1", "wrong-2"}, "wrong-3")
	e.expect(`Reached max number of attempts, terminating operation\.\r\n`)
	if got := exitStatus(t, s.Wait()); got == 0 {
		t.Error("exit status 0 after three wrong passwords")
	}
	if string(before) != string(d.Snapshot()) {
		t.Error("the lab changed")
	}
}
