package lab

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	lmethods "github.com/vmware/govmomi/lookup/methods"
	ltypes "github.com/vmware/govmomi/lookup/types"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	vim "github.com/vmware/govmomi/vim25/types"

	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/target"
)

func TestScenarios(t *testing.T) {
	got := Scenarios()
	want := model.Scenarios()
	if !slices.Equal(got, want) {
		t.Errorf("Scenarios() = %v, want %v", got, want)
	}
	if len(got) != 9 {
		t.Errorf("%d scenarios, want 9", len(got))
	}
}

func TestStartUnknownScenario(t *testing.T) {
	_, err := Start(t.Context(), "no-such-scenario")
	if err == nil || !strings.Contains(err.Error(), `unknown scenario "no-such-scenario"`) {
		t.Fatalf("Start = %v, want unknown scenario", err)
	}
}

func TestNodes(t *testing.T) {
	l := startLab(t, "healthy", WithNodes(3))
	infos := l.Nodes()
	if len(infos) != 3 {
		t.Fatalf("%d nodes, want 3", len(infos))
	}
	seen := map[string]bool{}
	for i, info := range infos {
		n := l.Model().Nodes[i]
		if info.PNID != n.PNID || !info.Online {
			t.Errorf("node %d: %+v, want PNID %s online", i, info, n.PNID)
		}
		for _, addr := range []string{info.LDAPAddr, info.LDAPSAddr, info.HTTPSAddr, info.SSHAddr} {
			if seen[addr] {
				t.Errorf("address %s used twice", addr)
			}
			seen[addr] = true
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Errorf("node %d: dial %s: %v", i, addr, err)
				continue
			}
			c.Close()
		}
		if want := pki.Thumbprint256(machineCert(t, l, i).Raw); info.TLSThumbprint != want {
			t.Errorf("node %d thumbprint %s, want %s", i, info.TLSThumbprint, want)
		}
		if !strings.HasPrefix(info.SSHHostKey, "SHA256:") {
			t.Errorf("node %d host key %q", i, info.SSHHostKey)
		}
	}
}

func TestProfile(t *testing.T) {
	l := startLab(t, "healthy")
	dir := t.TempDir()
	path, err := l.Profile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "lab-healthy.yaml"); path != want {
		t.Errorf("Profile = %s, want %s", path, want)
	}
	p, err := target.LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := l.Model()
	if p.Domain != d.Name || p.SSO.User != d.AdminUPN() {
		t.Errorf("profile domain %q user %q", p.Domain, p.SSO.User)
	}
	infos := l.Nodes()
	if len(p.Nodes) != len(infos) {
		t.Fatalf("%d profile nodes, want %d", len(p.Nodes), len(infos))
	}
	secrets := map[string]string{p.SSO.PasswordFile: d.AdminPassword}
	for i, np := range p.Nodes {
		info := infos[i]
		if np.PNID != info.PNID || np.TLSThumbprint != info.TLSThumbprint || np.SSH.HostKey != info.SSHHostKey || np.SSH.User != "root" {
			t.Errorf("profile node %d = %+v, want %+v", i, np, info)
		}
		if got := net.JoinHostPort(np.Address, strconv.Itoa(np.Ports.HTTPS)); got != info.HTTPSAddr {
			t.Errorf("node %d https %s, want %s", i, got, info.HTTPSAddr)
		}
		if got := net.JoinHostPort(np.Address, strconv.Itoa(np.Ports.LDAPS)); got != info.LDAPSAddr {
			t.Errorf("node %d ldaps %s, want %s", i, got, info.LDAPSAddr)
		}
		secrets[np.SSH.PasswordFile] = d.Nodes[i].RootPassword
	}
	yaml, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for file, secret := range secrets {
		if filepath.IsAbs(file) || strings.Contains(file, "/") {
			t.Errorf("password file %q is not a name relative to the profile", file)
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != secret+"\n" {
			t.Errorf("%s does not hold the password", file)
		}
		if bytes.Contains(yaml, []byte(secret)) {
			t.Errorf("profile holds the password of %s", file)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1+len(secrets) {
		t.Errorf("%d files in %s, want %d", len(entries), dir, 1+len(secrets))
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
}

func TestClose(t *testing.T) {
	l, err := Start(t.Context(), "healthy")
	if err != nil {
		t.Fatal(err)
	}
	tg, err := l.Target(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tg.Close()
	roots := []string{l.Model().Nodes[0].Root, l.Model().Nodes[1].Root, l.profilesDir}
	infos := l.Nodes()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, r := range roots {
		if _, err := os.Stat(r); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Close: %v", r, err)
		}
	}
	for _, info := range infos {
		for _, addr := range []string{info.LDAPAddr, info.LDAPSAddr, info.HTTPSAddr, info.SSHAddr} {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Errorf("%s still accepts connections after Close", addr)
			}
		}
	}
	if _, err := l.Target(t.Context()); err == nil {
		t.Error("Target after Close succeeded")
	}
}

func TestWithDirIsKept(t *testing.T) {
	dir := t.TempDir()
	l, err := Start(t.Context(), "healthy", WithDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	root := l.Model().Nodes[0].Root
	if !strings.HasPrefix(root, dir) {
		t.Errorf("node tree %s is not under %s", root, dir)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/vmware/deployment.node.type")); err != nil {
		t.Errorf("WithDir tree removed by Close: %v", err)
	}
}

func TestWithNow(t *testing.T) {
	// Twenty years from now, longer than any certificate the lab issues
	// lives: the scenario dates its certificates from the lab clock.
	future := time.Now().AddDate(20, 0, 0)
	l := startLab(t, "healthy", WithNow(func() time.Time { return future }))
	c := machineCert(t, l, 0)
	if !pki.ValidAt(c, future) || pki.ValidAt(c, time.Now()) {
		t.Errorf("machine cert valid %v to %v; want valid at the lab clock %v and not today", c.NotBefore, c.NotAfter, future)
	}
}

// TestPartnerDown shows that node 2 of partner-down refuses connections on
// every port, as a host that is down does, while node 1 serves.
func TestPartnerDown(t *testing.T) {
	l := startLab(t, "partner-down")
	infos := l.Nodes()
	if !infos[0].Online || infos[1].Online {
		t.Fatalf("online = %v, %v; want true, false", infos[0].Online, infos[1].Online)
	}
	for _, addr := range []string{infos[1].LDAPAddr, infos[1].LDAPSAddr, infos[1].HTTPSAddr, infos[1].SSHAddr} {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("node 2 %s accepted a connection", addr)
			continue
		}
		if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("node 2 %s: %v, want connection refused", addr, err)
		}
	}
	tg, err := l.Target(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	n2 := tg.Nodes()[1]
	if _, err := n2.LDAP(t.Context()); err == nil {
		t.Error("LDAP to node 2 succeeded")
	}
	if _, err := n2.DialTLS(t.Context(), 0); err == nil {
		t.Error("TLS to node 2 succeeded")
	}
	if _, err := tg.Nodes()[0].LDAP(t.Context()); err != nil {
		t.Errorf("LDAP to node 1: %v", err)
	}
}

// TestOfflineWhileRunning takes a node off the network through the model:
// its servers drop every connection until it is back.
func TestOfflineWhileRunning(t *testing.T) {
	l := startLab(t, "healthy")
	d := l.Model()
	addr := l.Nodes()[1].LDAPAddr
	if err := d.SetOnline(d.Nodes[1], false); err != nil {
		t.Fatal(err)
	}
	if l.Nodes()[1].Online {
		t.Error("node 2 reported online")
	}
	if c, err := ldap.DialURL("ldap://" + addr); err == nil {
		err = c.Bind(d.AdminDN(), d.AdminPassword)
		c.Close()
		if err == nil {
			t.Error("bind to an offline node succeeded")
		}
	}
	if _, err := tls.Dial("tcp", l.Nodes()[1].HTTPSAddr, &tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Error("TLS handshake with an offline node succeeded")
	}
	if err := d.SetOnline(d.Nodes[1], true); err != nil {
		t.Fatal(err)
	}
	c, err := ldap.DialURL("ldap://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(d.AdminDN(), d.AdminPassword); err != nil {
		t.Errorf("bind after the node is back: %v", err)
	}
}

// dropped reports whether err is what go-ldap returns when the server
// closed the connection instead of answering: a transport error, not an
// LDAP result.
func dropped(err error) bool {
	if err == nil {
		return false
	}
	var le *ldap.Error
	if errors.As(err, &le) {
		return le.ResultCode == ldap.ErrorNetwork
	}
	msg := err.Error()
	return strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "closed")
}

// TestFaults arms the model's faults and watches the servers obey them.
func TestFaults(t *testing.T) {
	l := startLab(t, "healthy")
	d := l.Model()
	info := l.Nodes()[0]
	bind := func() (*ldap.Conn, error) {
		c, err := ldap.DialURL("ldap://" + info.LDAPAddr)
		if err != nil {
			return nil, err
		}
		if err := c.Bind(d.AdminDN(), d.AdminPassword); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	search := func(c *ldap.Conn) error {
		_, err := c.Search(ldap.NewSearchRequest(d.TenantDN(), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil))
		return err
	}

	t.Run("DropNext ldap", func(t *testing.T) {
		c, err := bind()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		d.Faults.DropNext(model.ProtoLDAP)
		err = search(c)
		if !dropped(err) {
			t.Fatalf("search after DropNext = %v, want the connection dropped", err)
		}
		c2, err := bind()
		if err != nil {
			t.Fatalf("the operation after the dropped one: %v", err)
		}
		defer c2.Close()
		if err := search(c2); err != nil {
			t.Errorf("search on a new connection: %v", err)
		}
	})

	t.Run("FailNextWrite ldap", func(t *testing.T) {
		c, err := bind()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		before := d.Snapshot()
		d.Faults.FailNextWrite(model.ProtoLDAP)
		if err := search(c); err != nil {
			t.Fatalf("a read is not a write: %v", err)
		}
		mod := ldap.NewModifyRequest(d.RegistrationsDN(), nil)
		mod.Replace("description", []string{"changed"})
		err = c.Modify(mod)
		if err == nil {
			t.Fatal("modify after FailNextWrite succeeded")
		}
		var le *ldap.Error
		if !errors.As(err, &le) || le.ResultCode != ldap.LDAPResultOther || !strings.Contains(err.Error(), model.ErrInjectedWrite.Error()) {
			t.Errorf("modify after FailNextWrite = %v; want result 80 with the injected fault", err)
		}
		if !bytes.Equal(before, d.Snapshot()) {
			t.Error("the failed write changed the model")
		}
		if err := c.Modify(mod); err != nil {
			t.Errorf("the same modify after the failed one: %v", err)
		}
		if bytes.Equal(before, d.Snapshot()) {
			t.Error("the modify after the failed one did not change the model")
		}
	})

	t.Run("FailNextWrite https", func(t *testing.T) {
		tg, err := l.Target(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		lc, err := tg.Nodes()[0].Lookup(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		infos, err := lc.List(t.Context(), &ltypes.LookupServiceRegistrationFilter{})
		if err != nil {
			t.Fatal(err)
		}
		req := &ltypes.Set{
			This:        *lc.ServiceContent.ServiceRegistration,
			ServiceId:   infos[0].ServiceId,
			ServiceSpec: ltypes.LookupServiceRegistrationSetSpec{LookupServiceRegistrationMutableServiceInfo: infos[0].LookupServiceRegistrationMutableServiceInfo},
		}
		d.Faults.FailNextWrite(model.ProtoHTTPS)
		if _, err := lc.List(t.Context(), &ltypes.LookupServiceRegistrationFilter{}); err != nil {
			t.Fatalf("List is not a write: %v", err)
		}
		_, err = lmethods.Set(t.Context(), lc, req)
		if !soap.IsSoapFault(err) {
			t.Fatalf("Set after FailNextWrite = %v, want a SOAP fault", err)
		}
		fault, ok := soap.ToSoapFault(err).VimFault().(vim.SystemError)
		if !ok || !strings.Contains(fault.Reason, "injected fault: write failed") {
			t.Fatalf("Set after FailNextWrite: fault %#v, want a SystemError with the injected fault", soap.ToSoapFault(err).VimFault())
		}
		if _, err := lmethods.Set(t.Context(), lc, req); err != nil {
			t.Errorf("the Set after: %v", err)
		}
	})

	t.Run("Delay", func(t *testing.T) {
		const delay = 200 * time.Millisecond
		d.Faults.Delay(model.ProtoLDAP, delay)
		start := time.Now()
		c, err := bind()
		took := time.Since(start)
		d.Faults.Delay(model.ProtoLDAP, 0)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		// connect and bind are each delayed.
		if took < 2*delay {
			t.Errorf("connect+bind took %v with a %v delay per operation", took, delay)
		}
	})

	t.Run("DropNext ssh", func(t *testing.T) {
		d.Faults.DropNext(model.ProtoSSH)
		if _, err := sshDial(l, 0); err == nil {
			t.Fatal("SSH login after DropNext succeeded")
		}
		c, err := sshDial(l, 0)
		if err != nil {
			t.Fatalf("the login after: %v", err)
		}
		c.Close()
	})
}

// TestLogin checks the SSO logins the vSphere API accepts, over SOAP.
func TestLogin(t *testing.T) {
	l := startLab(t, "healthy")
	d := l.Model()
	tests := []struct {
		user, password string
		ok             bool
	}{
		{"administrator@vsphere.local", d.AdminPassword, true},
		{"Administrator@VSPHERE.LOCAL", d.AdminPassword, true},
		{"Administrator", d.AdminPassword, true},
		{"administrator@vsphere.local", d.AdminPassword + "x", false},
		{"administrator@other.local", d.AdminPassword, false},
		{"root", d.Nodes[0].RootPassword, false},
		{"", "", false},
	}
	u, err := url.Parse("https://" + l.Nodes()[0].HTTPSAddr + "/sdk")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			sc := soap.NewClient(u, true)
			vc, err := vim25.NewClient(t.Context(), sc)
			if err != nil {
				t.Fatal(err)
			}
			err = session.NewManager(vc).Login(t.Context(), url.UserPassword(tt.user, tt.password))
			if (err == nil) != tt.ok {
				t.Errorf("Login(%q) = %v, want ok=%v", tt.user, err, tt.ok)
			}
		})
	}
}
