package lab

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/target"
)

// terminal drives a program on an SSH PTY: it waits for prompts and
// answers them, keeping a transcript of everything the program printed.
type terminal struct {
	chunks     chan []byte
	pending    string // printed since the last answered prompt
	transcript strings.Builder
	stdin      io.Writer
}

func newTerminal(stdout io.Reader, stdin io.Writer) *terminal {
	term := &terminal{chunks: make(chan []byte), stdin: stdin}
	go func() {
		defer close(term.chunks)
		buf := make([]byte, 4096)
		for {
			n, err := stdout.Read(buf)
			if n > 0 {
				term.chunks <- bytes.Clone(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	return term
}

// answer is what to type at a prompt; prompts match at the end of what the
// program printed since the last answer.
type answer struct {
	prompt *regexp.Regexp
	reply  string
}

// converse answers prompts, the first matching answer winning, until the
// program closes its output. It fails when the program waits at a prompt
// no answer matches for longer than timeout.
func (term *terminal) converse(t *testing.T, answers []answer, timeout time.Duration) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case chunk, ok := <-term.chunks:
			if !ok {
				return
			}
			term.transcript.Write(chunk)
			term.pending += string(chunk)
			for _, a := range answers {
				if a.prompt.MatchString(term.pending) {
					term.pending = ""
					if _, err := io.WriteString(term.stdin, a.reply+"\r"); err != nil {
						t.Fatalf("answer %q: %v", a.prompt, err)
					}
					break
				}
			}
			timer.Reset(timeout)
		case <-timer.C:
			t.Fatalf("no prompt answered for %v; the program printed:\n%s", timeout, term.transcript.String())
		}
	}
}

func prompt(re string) *regexp.Regexp { return regexp.MustCompile(re + `\s*$`) }

// TestCertificateManagerOption3 runs certificate-manager option 3 on the
// healthy lab over an SSH PTY, as an administrator would, and checks that
// the machine SSL certificate was replaced where it counts: what port 443
// serves, VECS, BACKUP_STORE and the Lookup Service registrations.
func TestCertificateManagerOption3(t *testing.T) {
	e := newEnv(t, "healthy")
	d := e.l.Model()
	node := d.Nodes[0]
	old := e.served(0)
	d.Lock()
	password := d.AdminPassword
	d.Unlock()

	client := goSSH(t, e.l, 0)
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("xterm", 40, 200, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		t.Fatal(err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("/usr/lib/vmware-vmca/bin/certificate-manager"); err != nil {
		t.Fatal(err)
	}
	term := newTerminal(stdout, stdin)
	term.converse(t, []answer{
		{prompt(`Option\[1 to 8\]:`), "3"},
		{prompt(`Enter username \[Administrator@vsphere\.local\]:`), ""},
		{prompt(`Enter password:`), password},
		{prompt(`Enter proper value for 'Name'[^\n]*:`), node.PNID},
		{prompt(`Enter proper value for 'Hostname'[^\n]*:`), node.PNID},
		{prompt(`Enter proper value for [^\n]*:`), ""},
		{prompt(`Option\[Y/N\] \? :`), "Y"},
	}, 30*time.Second)
	if err := sess.Wait(); err != nil {
		t.Fatalf("certificate-manager: %v\n%s", err, term.transcript.String())
	}
	transcript := term.transcript.String()
	if strings.Contains(transcript, password) {
		t.Error("the SSO password appears in the terminal transcript")
	}
	for _, want := range []string{
		"You are going to regenerate Machine SSL cert using VMCA",
		"Status : 100% Completed [All tasks completed successfully]",
	} {
		if !strings.Contains(transcript, want) {
			t.Errorf("transcript lacks %q:\n%s", want, transcript)
		}
	}

	// What port 443 serves now, on a new TLS connection.
	conn, err := tls.Dial("tcp", e.l.Nodes()[0].HTTPSAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	served := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if served.Equal(old) {
		t.Fatalf("port 443 still serves the old certificate; certificate-manager said:\n%s", transcript)
	}
	if !pki.ValidAt(served, d.Now()) || served.Subject.CommonName != node.PNID || !slices.Contains(served.DNSNames, node.PNID) {
		t.Errorf("new certificate %s (SANs %v), valid %v to %v", pki.SubjectDN(served), served.DNSNames, served.NotBefore, served.NotAfter)
	}
	root := parsePEM(t, e.file(0, model.PathRootCert))
	if err := served.CheckSignatureFrom(root); err != nil {
		t.Errorf("new certificate not signed by the VMCA root: %v", err)
	}
	if got := servedCert(t, e.l.Nodes()[0].LDAPSAddr); !got.Equal(served) {
		t.Error("LDAPS serves another certificate than port 443")
	}

	// VECS over SSH: the new certificate in MACHINE_SSL_CERT, the old one
	// in BACKUP_STORE.
	if vecs := e.vecsCert(0, model.StoreMachineSSL, model.AliasMachineCert); !vecs.Equal(served) {
		t.Errorf("VECS MACHINE_SSL_CERT holds %s, port 443 serves %s", pki.Thumbprint(vecs.Raw), pki.Thumbprint(served.Raw))
	}
	if bkp := e.vecsCert(0, model.StoreBackup, model.BackupAlias(model.AliasMachineCert)); !bkp.Equal(old) {
		t.Errorf("BACKUP_STORE holds %s, want the old certificate %s", pki.Thumbprint(bkp.Raw), pki.Thumbprint(old.Raw))
	}

	// A target pinned to the old certificate refuses the new one until it
	// is re-pinned.
	_, err = e.tg.Nodes()[0].DialTLS(t.Context(), 0)
	var pinErr *target.PinError
	if !errors.As(err, &pinErr) {
		t.Errorf("TLS through the old pin: %v, want a PinError", err)
	}
	if err := e.tg.Nodes()[0].Repin(pki.Thumbprint256(served.Raw)); err != nil {
		t.Fatal(err)
	}
	chain, err := e.tg.Nodes()[0].DialTLS(t.Context(), 0)
	if err != nil || !chain[0].Equal(served) {
		t.Errorf("TLS after Repin: %v", err)
	}
	if info := e.l.Nodes()[0]; info.TLSThumbprint != pki.Thumbprint256(served.Raw) {
		t.Errorf("Nodes() thumbprint %s, want the new certificate's", info.TLSThumbprint)
	}

	// The registrations of node 1 trust the new certificate.
	if got := e.trusts(0); !slices.Equal(got, []string{pki.TrustString(served.Raw)}) {
		t.Errorf("node 1's registrations trust %d certificates, not just the new one", len(got))
	}
	// Node 2 is untouched.
	if got, served2 := e.trusts(1), e.served(1); !slices.Equal(got, []string{pki.TrustString(served2.Raw)}) {
		t.Error("node 2's registrations changed")
	}

	// The services came back up with the new certificate.
	r := e.ssh(0, "service-control --status vmware-rhttpproxy vmware-vpxd", "")
	if _, running, _ := strings.Cut(r.stdout, "Running:\n"); !strings.Contains(running, "vmware-rhttpproxy") || !strings.Contains(running, "vmware-vpxd") {
		t.Errorf("services after option 3:\n%s", r.stdout)
	}

}
