package target_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"runbook/engine"
	"runbook/lab/sshd"
	"runbook/target"
)

// appliance is what a lab SSH server knows about its node.
type appliance struct {
	pnid, machineID, domain, site, dcName, nodeType string
	// vmafdDown makes vmafd-cli fail as it does when the vmafd service is
	// stopped; the registry still answers.
	vmafdDown bool
	// registry is printed by lwregshell; nil means it holds the values above.
	registry map[string]string
}

func defaultAppliance() *appliance {
	return &appliance{
		pnid:      "vcsa1.lab.test",
		machineID: "ce510c87-35e6-444e-82f0-60a7527608a3",
		domain:    "vsphere.local",
		site:      "default-site",
		dcName:    "vcsa1.lab.test",
		nodeType:  "embedded",
	}
}

// commands are the appliance commands facts use, by absolute path and by
// base name, as lab/sshd wants them.
func (a *appliance) commands() map[string]sshd.Command {
	vmafd := func(_ context.Context, inv *sshd.Invocation) int {
		if a.vmafdDown {
			fmt.Fprintln(inv.Stderr, "Error 382312694: Failed to connect to the vmafd service")
			return 1
		}
		if len(inv.Args) != 4 || inv.Args[2] != "--server-name" || inv.Args[3] != "localhost" {
			fmt.Fprintln(inv.Stderr, "Invalid arguments")
			return 22
		}
		v, ok := map[string]string{
			"get-pnid": a.pnid, "get-machine-id": a.machineID, "get-domain-name": a.domain,
			"get-site-name": a.site, "get-dc-name": a.dcName,
		}[inv.Args[1]]
		if !ok {
			fmt.Fprintln(inv.Stderr, "Unknown command")
			return 22
		}
		fmt.Fprintln(inv.Stdout, v)
		return 0
	}
	reg := func(_ context.Context, inv *sshd.Invocation) int {
		if len(inv.Args) != 3 || inv.Args[1] != "list_values" || inv.Args[2] != `[HKEY_THIS_MACHINE\Services\vmafd\Parameters]` {
			fmt.Fprintf(inv.Stderr, "lwregshell: bad arguments %q\n", inv.Args[1:])
			return 1
		}
		values := a.registry
		if values == nil {
			values = map[string]string{
				"PNID": a.pnid, "MachineID": a.machineID, "DomainName": a.domain,
				"SiteName": a.site, "DCName": a.dcName, "CAPath": "/etc/ssl/certs",
			}
		}
		for k, v := range values {
			fmt.Fprintf(inv.Stdout, "+  %q  REG_SZ  %q\n", k, v)
		}
		return 0
	}
	return map[string]sshd.Command{
		"/usr/lib/vmware-vmafd/bin/vmafd-cli": vmafd, "vmafd-cli": vmafd,
		"/opt/likewise/bin/lwregshell": reg, "lwregshell": reg,
	}
}

// labSSH is a running lab SSH server with counters fed by its fault hook.
type labSSH struct {
	srv   *sshd.Server
	root  string
	auths atomic.Int32 // password attempts
	drop  atomic.Bool  // drop the connection at the next exec
}

func startLabSSH(t *testing.T, a *appliance, password string) *labSSH {
	t.Helper()
	l := &labSSH{root: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(l.root, "etc", "vmware"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.root, "etc", "vmware", "deployment.node.type"), []byte(a.nodeType+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := sshd.Start(t.Context(), sshd.Config{
		User: "root", Password: password, Root: l.root, Hostname: a.pnid,
		Commands: a.commands(),
		Faults: sshd.FaultFunc(func(op string) error {
			switch {
			case op == sshd.OpAuth:
				l.auths.Add(1)
			case op == sshd.OpExec && l.drop.CompareAndSwap(true, false):
				return sshd.ErrDrop
			}
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	l.srv = srv
	return l
}

// sshProfile is a profile for one lab SSH server, pinned.
func sshProfile(t *testing.T, l *labSSH, password string) *target.Profile {
	return newProfile(t, profileSpec{
		sshPassword: password,
		ports:       target.Ports{SSH: splitPort(t, l.srv.Addr())},
		hostKey:     l.srv.HostKeyFingerprint(),
	})
}

const rootPassword = "VMware1!-root"

func TestRun(t *testing.T) {
	l := startLabSSH(t, defaultAppliance(), rootPassword)
	_, n := open(t, sshProfile(t, l, rootPassword), target.Options{})
	tests := []struct {
		name, cmd, stdin     string
		stdout, stderrPrefix string
		exit                 int
	}{
		{name: "success", cmd: "echo hello", stdout: "hello\n"},
		{name: "appliance command", cmd: "/usr/lib/vmware-vmafd/bin/vmafd-cli get-pnid --server-name localhost", stdout: "vcsa1.lab.test\n"},
		{name: "failure is not an error", cmd: "vmafd-cli get-nothing --server-name localhost", stderrPrefix: "Unknown command", exit: 22},
		{name: "command not found", cmd: "nosuchcmd", stderrPrefix: "", exit: 127},
		{name: "stdin", cmd: "cat", stdin: "line 1\nline 2\n", stdout: "line 1\nline 2\n"},
		{name: "file", cmd: "cat /etc/vmware/deployment.node.type", stdout: "embedded\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdin io.Reader
			if tc.stdin != "" {
				stdin = strings.NewReader(tc.stdin)
			}
			stdout, stderr, exit, err := n.Run(t.Context(), tc.cmd, stdin)
			if err != nil {
				t.Fatal(err)
			}
			if stdout != tc.stdout || exit != tc.exit || !strings.HasPrefix(stderr, tc.stderrPrefix) {
				t.Errorf("Run(%q) = %q, %q, %d; want %q, %q…, %d", tc.cmd, stdout, stderr, exit, tc.stdout, tc.stderrPrefix, tc.exit)
			}
		})
	}
	if got := l.auths.Load(); got != 1 {
		t.Errorf("%d logins for %d commands, want 1", got, len(tests))
	}
}

func TestRunConcurrentSharesOneConnection(t *testing.T) {
	l := startLabSSH(t, defaultAppliance(), rootPassword)
	_, n := open(t, sshProfile(t, l, rootPassword), target.Options{})
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() {
			out, _, exit, err := n.Run(t.Context(), fmt.Sprintf("echo %d", i), nil)
			if err == nil && (exit != 0 || out != fmt.Sprintf("%d\n", i)) {
				err = fmt.Errorf("got %q, exit %d", out, exit)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := l.auths.Load(); got != 1 {
		t.Errorf("%d logins, want 1", got)
	}
}

func TestRunReconnectsAfterDrop(t *testing.T) {
	l := startLabSSH(t, defaultAppliance(), rootPassword)
	_, n := open(t, sshProfile(t, l, rootPassword), target.Options{})
	if _, _, _, err := n.Run(t.Context(), "true", nil); err != nil {
		t.Fatal(err)
	}
	// The appliance drops the connection mid-command: that run fails as a
	// transport error, and the next one connects again.
	l.drop.Store(true)
	_, _, exit, err := n.Run(t.Context(), "echo lost", nil)
	if err == nil || exit != -1 || !strings.HasPrefix(err.Error(), "run echo on vcsa1.lab.test: ") {
		t.Fatalf("dropped run = exit %d, %v", exit, err)
	}
	var out string
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The client notices the dead connection asynchronously.
		out, _, _, err = n.Run(t.Context(), "echo back", nil)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || out != "back\n" {
		t.Fatalf("after reconnect: %q, %v", out, err)
	}
	if got := l.auths.Load(); got != 2 {
		t.Errorf("%d logins, want 2", got)
	}
}

func TestRunContextCancelled(t *testing.T) {
	l := startLabSSH(t, defaultAppliance(), rootPassword)
	_, n := open(t, sshProfile(t, l, rootPassword), target.Options{})
	if _, _, _, err := n.Run(t.Context(), "true", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, _, exit, err := n.Run(ctx, "sleep 30", nil)
	if !errors.Is(err, context.DeadlineExceeded) || exit != -1 {
		t.Fatalf("Run = exit %d, %v; want the deadline", exit, err)
	}
	// The connection survives a cancelled command.
	if out, _, _, err := n.Run(t.Context(), "echo ok", nil); err != nil || out != "ok\n" {
		t.Fatalf("after cancel: %q, %v", out, err)
	}
}

func TestSSHPins(t *testing.T) {
	l := startLabSSH(t, defaultAppliance(), rootPassword)
	fp := l.srv.HostKeyFingerprint()
	other := startLabSSH(t, defaultAppliance(), rootPassword).srv.HostKeyFingerprint()
	addr := l.srv.Addr()
	tests := []struct {
		name    string
		pin     string
		tofu    bool
		wantErr string // "" = connects
	}{
		{name: "pinned", pin: fp},
		{name: "missing", wantErr: "connect ssh vcsa1.lab.test (" + addr + "): ssh: handshake failed: node vcsa1.lab.test: no ssh host_key pinned; the server presents " + fp + " — add it to the profile if it is right"},
		{name: "mismatch", pin: other, wantErr: "connect ssh vcsa1.lab.test (" + addr + "): ssh: handshake failed: node vcsa1.lab.test: the server presents SSH host key " + fp + ", but the profile pins host_key " + other + "; refusing to connect (if the host key was changed on purpose, check the new one and update the profile)"},
		{name: "trust on first use", tofu: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := sshProfile(t, l, rootPassword)
			p.Nodes[0].SSH.HostKey = tc.pin
			var log logRecorder
			tg, n := open(t, p, target.Options{TrustOnFirstUse: tc.tofu, Logf: log.logf})
			before := l.auths.Load()
			out, _, _, err := n.Run(t.Context(), "echo hi", nil)
			if tc.wantErr != "" {
				var pe *target.PinError
				if !errors.As(err, &pe) {
					t.Fatalf("Run = %v, want a PinError", err)
				}
				if err.Error() != tc.wantErr {
					t.Errorf("error:\n got: %s\nwant: %s", err, tc.wantErr)
				}
				if l.auths.Load() != before {
					t.Error("the password was sent to an unverified server")
				}
				return
			}
			if err != nil || out != "hi\n" {
				t.Fatalf("Run = %q, %v", out, err)
			}
			if tc.tofu {
				if _, hk := n.Pins(); hk != fp {
					t.Errorf("learned host key %q, want %q", hk, fp)
				}
				if !strings.Contains(log.String(), "trusting the SSH host key "+fp+" on first use") {
					t.Errorf("TOFU not reported: %q", log.String())
				}
				if got := tg.Profile().Nodes[0].SSH.HostKey; got != fp {
					t.Errorf("Profile() host key = %q", got)
				}
			}
		})
	}
}

func TestSSHWrongPassword(t *testing.T) {
	l := startLabSSH(t, defaultAppliance(), rootPassword)
	const wrong = "wrong-password-xyz"
	_, n := open(t, sshProfile(t, l, wrong), target.Options{})
	_, _, _, err := n.Run(t.Context(), "true", nil)
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("Run = %v", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestSFTP(t *testing.T) {
	l := startLabSSH(t, defaultAppliance(), rootPassword)
	_, n := open(t, sshProfile(t, l, rootPassword), target.Options{})
	c, err := n.SFTP(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MkdirAll("/tmp/vmware-fixsts"); err != nil {
		t.Fatal(err)
	}
	f, err := c.Create("/tmp/vmware-fixsts/certool.cfg")
	if err != nil {
		t.Fatal(err)
	}
	const cfg = "Country = DS\nName = STS\n"
	if _, err := f.Write([]byte(cfg)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join(l.root, "tmp", "vmware-fixsts", "certool.cfg"))
	if err != nil || string(onDisk) != cfg {
		t.Fatalf("file on the node = %q, %v", onDisk, err)
	}
	// The file is visible to commands over the same connection.
	if out, _, _, err := n.Run(t.Context(), "cat /tmp/vmware-fixsts/certool.cfg", nil); err != nil || out != cfg {
		t.Fatalf("cat = %q, %v", out, err)
	}
	if c2, err := n.SFTP(t.Context()); err != nil || c2 != c {
		t.Errorf("SFTP not cached: %v", err)
	}
	if got := l.auths.Load(); got != 1 {
		t.Errorf("%d logins, want 1", got)
	}
}

func TestFacts(t *testing.T) {
	ctx := t.Context()
	t.Run("one node", func(t *testing.T) {
		a := defaultAppliance()
		l := startLabSSH(t, a, rootPassword)
		p := sshProfile(t, l, rootPassword)
		tg, _ := open(t, p, target.Options{Name: "lab:healthy"})
		got, err := tg.Facts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		node := engine.NodeFacts{PNID: a.pnid, NodeType: "embedded", MachineID: a.machineID, IP: "127.0.0.1", Site: "default-site", Reachable: true}
		want := engine.Facts{
			Target: "lab:healthy", Domain: "vsphere.local", DomainDN: "dc=vsphere,dc=local", Site: "default-site",
			PNID: a.pnid, NodeType: "embedded", MachineID: a.machineID, IP: "127.0.0.1", DCName: a.dcName,
			Nodes: []engine.NodeFacts{node},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Facts:\n got %+v\nwant %+v", got, want)
		}
		runs := len(l.srv.Audit())
		if runs != 6 {
			t.Errorf("%d commands for facts, want 6: %q", runs, l.srv.Audit())
		}
		// Cached for the run, and callers cannot change the cache.
		got.Nodes[0].PNID = "changed"
		again, err := tg.Facts(ctx)
		if err != nil || !reflect.DeepEqual(again, want) {
			t.Fatalf("second Facts = %+v, %v", again, err)
		}
		if n := len(l.srv.Audit()); n != runs {
			t.Errorf("second Facts ran %d commands", n-runs)
		}
		// Refresh reads them again.
		a.site = "site-b"
		tg.Refresh()
		fresh, err := tg.Facts(ctx)
		if err != nil || fresh.Site != "site-b" || fresh.Nodes[0].Site != "site-b" {
			t.Fatalf("after Refresh: %+v, %v", fresh, err)
		}
	})

	t.Run("two nodes", func(t *testing.T) {
		a1 := defaultAppliance()
		a2 := defaultAppliance()
		a2.pnid, a2.machineID, a2.nodeType, a2.site = "vc2.lab.test", "8d0e7a4e-0000-4000-8000-000000000002", "management", "site-b"
		l1 := startLabSSH(t, a1, rootPassword)
		l2 := startLabSSH(t, a2, rootPassword)
		p := sshProfile(t, l1, rootPassword)
		n2 := p.Nodes[0]
		n2.PNID, n2.Ports.SSH, n2.SSH.HostKey = a2.pnid, splitPort(t, l2.srv.Addr()), l2.srv.HostKeyFingerprint()
		p.Nodes = append(p.Nodes, n2)
		tg, _ := open(t, p, target.Options{})
		f, err := tg.Facts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Target != p.Path {
			t.Errorf("target name = %q, want the profile path", f.Target)
		}
		if f.PNID != a1.pnid || f.NodeType != "embedded" || len(f.Nodes) != 2 {
			t.Fatalf("facts = %+v", f)
		}
		want2 := engine.NodeFacts{PNID: a2.pnid, NodeType: "management", MachineID: a2.machineID, IP: "127.0.0.1", Site: "site-b", Reachable: true}
		if f.Nodes[1] != want2 {
			t.Errorf("second node = %+v, want %+v", f.Nodes[1], want2)
		}

		// A second node that stops answering is a fact, not a failure;
		// the first node must answer.
		if err := l2.srv.Close(); err != nil {
			t.Fatal(err)
		}
		tg.Refresh()
		tg2, _ := open(t, p, target.Options{})
		f, err = tg2.Facts(ctx)
		if err != nil {
			t.Fatalf("facts with the second node down: %v", err)
		}
		if n := f.Nodes[1]; n.Reachable || n.PNID != a2.pnid || n.Error == "" || f.PNID != a1.pnid {
			t.Errorf("facts with the second node down = %+v", f)
		}
		p.Nodes[0], p.Nodes[1] = p.Nodes[1], p.Nodes[0]
		tg3, _ := open(t, p, target.Options{})
		if _, err := tg3.Facts(ctx); err == nil {
			t.Error("facts with the first node down: no error")
		}
		if n, err := tg.Node("VC2.lab.test"); err != nil || n.PNID() != a2.pnid {
			t.Errorf("Node(VC2…) = %v, %v", n, err)
		}
		if n, err := tg.Node(""); err != nil || n.PNID() != a1.pnid {
			t.Errorf("Node(\"\") = %v, %v", n, err)
		}
		if _, err := tg.Node("nope"); err == nil || err.Error() != `find node: no node "nope" in target `+p.Path+` (nodes: vcsa1.lab.test, vc2.lab.test)` {
			t.Errorf("Node(nope) = %v", err)
		}
	})

	tests := []struct {
		name    string
		change  func(a *appliance)
		want    func(f engine.Facts) bool // for successes
		wantErr string                    // substring, for failures
	}{
		{
			name:   "vmafd down: registry",
			change: func(a *appliance) { a.vmafdDown = true },
			want: func(f engine.Facts) bool {
				return f.PNID == "vcsa1.lab.test" && f.MachineID == "ce510c87-35e6-444e-82f0-60a7527608a3" && f.Site == "default-site" && f.DCName == "vcsa1.lab.test"
			},
		},
		{
			name: "vmafd down, registry incomplete",
			change: func(a *appliance) {
				a.vmafdDown = true
				a.registry = map[string]string{"PNID": a.pnid, "DomainName": a.domain, "SiteName": a.site, "DCName": a.dcName}
			},
			wantErr: "read facts: node vcsa1.lab.test: vmafd-cli get-machine-id exited with status 1: Error 382312694: Failed to connect to the vmafd service (and reading the registry instead failed: the vmafd registry has no MachineID value)",
		},
		{
			name:    "another appliance",
			change:  func(a *appliance) { a.pnid = "vcsa9.lab.test" },
			wantErr: `read facts: node vcsa1.lab.test: the appliance at 127.0.0.1 reports PNID "vcsa9.lab.test"; fix the node's pnid or address in the profile`,
		},
		{
			name:    "another domain",
			change:  func(a *appliance) { a.domain = "corp.local" },
			wantErr: `read facts: node vcsa1.lab.test: the appliance is in SSO domain "corp.local", not "vsphere.local" as the profile says`,
		},
		{
			name:    "bad node type",
			change:  func(a *appliance) { a.nodeType = "gateway" },
			wantErr: `read facts: node vcsa1.lab.test: /etc/vmware/deployment.node.type holds "gateway", not one of embedded, infrastructure, management`,
		},
		{
			name:    "two lines",
			change:  func(a *appliance) { a.site = "a\nb" },
			wantErr: "read facts: node vcsa1.lab.test: vmafd-cli get-site-name: printed 2 lines, want one",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := defaultAppliance()
			tc.change(a)
			l := startLabSSH(t, a, rootPassword)
			tg, _ := open(t, sshProfile(t, l, rootPassword), target.Options{})
			f, err := tg.Facts(ctx)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Facts error:\n got: %v\nwant: %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(f) {
				t.Errorf("facts = %+v", f)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		p := newProfile(t, profileSpec{ports: target.Ports{SSH: freePort(t)}, hostKey: "SHA256:" + strings.Repeat("A", 43)})
		tg, _ := open(t, p, target.Options{})
		_, err := tg.Facts(ctx)
		if err == nil || !strings.HasPrefix(err.Error(), "read facts: connect ssh vcsa1.lab.test (127.0.0.1:") || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("Facts = %v", err)
		}
	})
}

// BenchmarkRun measures one command over the cached SSH connection.
func BenchmarkRun(b *testing.B) {
	l := startLabSSHB(b)
	p := newProfile(b, profileSpec{ports: target.Ports{SSH: splitPort(b, l.Addr())}, hostKey: l.HostKeyFingerprint()})
	tg, err := target.Open(b.Context(), p, target.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer tg.Close()
	n := tg.Nodes()[0]
	for b.Loop() {
		if _, _, _, err := n.Run(b.Context(), "echo hi", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFactsFresh measures reading the facts of one node (six commands).
func BenchmarkFactsFresh(b *testing.B) {
	l := startLabSSHB(b)
	p := newProfile(b, profileSpec{ports: target.Ports{SSH: splitPort(b, l.Addr())}, hostKey: l.HostKeyFingerprint()})
	tg, err := target.Open(b.Context(), p, target.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer tg.Close()
	for b.Loop() {
		tg.Refresh()
		if _, err := tg.Facts(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

func startLabSSHB(b *testing.B) *sshd.Server {
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc", "vmware"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "vmware", "deployment.node.type"), []byte("embedded\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	srv, err := sshd.Start(b.Context(), sshd.Config{User: "root", Password: rootPassword, Root: root, Commands: defaultAppliance().commands()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	return srv
}

// startKbdInteractive starts an SSH server that accepts only
// keyboard-interactive logins, as appliances authenticating through PAM do:
// each round in rounds is a list of prompts; the login succeeds when every
// answer is password. It returns the port and host key fingerprint.
func startKbdInteractive(t *testing.T, password string, rounds [][]string) (int, string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		KeyboardInteractiveCallback: func(_ ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			for _, prompts := range rounds {
				answers, err := client("", "", prompts, make([]bool, len(prompts)))
				if err != nil {
					return nil, err
				}
				for _, a := range answers {
					if a != password {
						return nil, errors.New("wrong answer")
					}
				}
			}
			return nil, nil
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					ch.Reject(ssh.Prohibited, "no sessions here")
				}
			}()
		}
	}()
	return splitPort(t, ln.Addr().String()), ssh.FingerprintSHA256(signer.PublicKey())
}

func TestSSHKeyboardInteractive(t *testing.T) {
	tests := []struct {
		name    string
		rounds  [][]string
		wantErr string
	}{
		{name: "password prompt", rounds: [][]string{{"Password: "}}},
		{name: "informational round first", rounds: [][]string{{}, {"Password: "}}},
		{
			name:    "expired password",
			rounds:  [][]string{{"Password: "}, {"New password: "}},
			wantErr: `the appliance asks again after the password ("New password: "); if the password has expired, change it in a session of your own`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port, fp := startKbdInteractive(t, rootPassword, tc.rounds)
			_, n := open(t, newProfile(t, profileSpec{ports: target.Ports{SSH: port}, hostKey: fp}), target.Options{})
			_, err := n.SSH(t.Context())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasSuffix(err.Error(), tc.wantErr) {
				t.Fatalf("SSH = %v, want …%s", err, tc.wantErr)
			}
		})
	}
}
