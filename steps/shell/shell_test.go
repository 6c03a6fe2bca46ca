package shell

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"runbook/engine"
	"runbook/lab"
	"runbook/lab/model"
	"runbook/steps/conn"
)

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	Register(r)
	want := map[string]engine.Effect{
		"ssh.exec": engine.EffectWrite, "sftp.put": engine.EffectWrite,
		"sftp.get": engine.EffectRead, "appliance.facts": engine.EffectRead,
	}
	if got := r.IDs(); len(got) != len(want) {
		t.Fatalf("registered %v", got)
	}
	for id, eff := range want {
		st, ok := r.Lookup(id)
		if !ok || st.Effect() != eff {
			t.Fatalf("%s: registered %v, effect %v", id, ok, st.Effect())
		}
	}
}

func TestExecLab(t *testing.T) {
	l, env := testLab(t, "healthy")
	ctx := t.Context()

	t.Run("read", func(t *testing.T) {
		p := &execParams{Command: "/usr/lib/vmware-vmafd/bin/vecs-cli store list | grep MACHINE", Effect: "read"}
		if !execStep.ReadOnly(p) {
			t.Fatal("effect read is not read-only")
		}
		before := l.Snapshot()
		out, err := applyExec(ctx, env, p)
		if err != nil {
			t.Fatal(err)
		}
		if out.Stdout != "MACHINE_SSL_CERT\n" || out.ExitCode != 0 {
			t.Errorf("outputs %+v", out)
		}
		snapshotUnchanged(t, l, before, "a read command")
	})

	t.Run("write with check", func(t *testing.T) {
		p := &execParams{
			Node:    "vcsa2.lab.test",
			Command: "mkdir -p /tmp/rb && echo done > /tmp/rb/marker",
			Check:   "test -s /tmp/rb/marker",
		}
		before := l.Snapshot()
		pl, err := planExec(ctx, env, p)
		if err != nil {
			t.Fatal(err)
		}
		snapshotUnchanged(t, l, before, "Plan")
		if pl.InPlace || len(pl.Changes) != 1 || pl.Changes[0].Object != "vcsa2.lab.test ssh "+p.Command || pl.Changes[0].Action != "run" {
			t.Fatalf("plan %+v", pl)
		}
		if v, err := checkExec(ctx, env, p); err != nil || v.State != engine.NotApplied {
			t.Fatalf("Check before = %v %q, %v", v.State, v.Detail, err)
		}
		for range 2 { // applying twice is safe
			if _, err := applyExec(ctx, env, p); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := l.Model().Nodes[1].ReadFile("/tmp/rb/marker"); err != nil || string(got) != "done\n" {
			t.Fatalf("marker %q, %v", got, err)
		}
		if _, err := l.Model().Nodes[0].ReadFile("/tmp/rb/marker"); err == nil {
			t.Error("the command ran on the first node too")
		}
		if v, err := checkExec(ctx, env, p); err != nil || v.State != engine.Applied {
			t.Fatalf("Check after = %v %q, %v", v.State, v.Detail, err)
		}
		if pl, err := planExec(ctx, env, p); err != nil || !pl.InPlace {
			t.Fatalf("plan after = %+v, %v", pl, err)
		}
	})

	t.Run("no check", func(t *testing.T) {
		p := &execParams{Command: "touch /tmp/x"}
		pl, err := planExec(ctx, env, p)
		if err != nil || pl.InPlace || !strings.Contains(pl.Summary, "is unknown") {
			t.Fatalf("plan %+v, %v", pl, err)
		}
		v, err := checkExec(ctx, env, p)
		if err != nil || v.State != engine.Unknown || !strings.Contains(v.Detail, "add check:") {
			t.Fatalf("Check = %v %q, %v", v.State, v.Detail, err)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		p := &execParams{Command: "echo partial; echo 'no such store' >&2; exit 3", Effect: "read"}
		out, err := applyExec(ctx, env, p)
		if err == nil || err.Error() != "vcsa1.lab.test: echo partial; echo 'no such store' >&2; exit 3 exited with code 3: no such store" {
			t.Errorf("error %v", err)
		}
		if out.ExitCode != 3 || out.Stdout != "partial\n" || out.Stderr != "no such store\n" {
			t.Errorf("outputs %+v", out)
		}
		p.OkExit = []int{0, 3}
		if _, err := applyExec(ctx, env, p); err != nil {
			t.Errorf("ok_exit [0, 3]: %v", err)
		}
	})

	t.Run("secrets", func(t *testing.T) {
		for _, p := range []*execParams{
			{Command: "dir-cli service list --password " + testSecret},
			{Command: "true", Check: "echo " + testSecret},
		} {
			_, err := applyExec(ctx, env, p)
			if err == nil || !strings.Contains(err.Error(), "pass it through stdin") || strings.Contains(err.Error(), testSecret) {
				t.Errorf("%q: %v", p.Command, err)
			}
			if _, err := planExec(ctx, env, p); err == nil {
				t.Errorf("%q: Plan accepted a secret", p.Command)
			}
		}
		// Through stdin it is fine, and the outputs hide it.
		out, err := applyExec(ctx, env, &execParams{Command: "cat", Stdin: "pw=" + testSecret + "\n", Effect: "read"})
		if err != nil || out.Stdout != "pw=***\n" {
			t.Errorf("stdin: %+v, %v", out, err)
		}
	})

	t.Run("bad params", func(t *testing.T) {
		for _, tc := range []struct {
			p    execParams
			want string
		}{
			{execParams{Command: " "}, "command: no command given"},
			{execParams{Command: "true", Effect: "read", Check: "true"}, "only a write command takes a check"},
			{execParams{Command: "true", Effect: "maybe"}, `"maybe" is neither read nor write`},
			{execParams{Command: "true", OkExit: []int{256}}, "256 is not an exit status"},
			{execParams{Command: "true", Node: "nosuch.lab.test"}, `find node "nosuch.lab.test"`},
		} {
			if _, err := applyExec(ctx, env, &tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
			}
		}
	})
}

func TestExecNoTarget(t *testing.T) {
	_, err := applyExec(t.Context(), &engine.Env{}, &execParams{Command: "true"})
	if err != conn.ErrNoTarget {
		t.Fatalf("err = %v", err)
	}
}

func sum(data string) string {
	s := sha256.Sum256([]byte(data))
	return hex.EncodeToString(s[:])
}

func TestPutLab(t *testing.T) {
	l, env := testLab(t, "healthy")
	ctx := t.Context()
	node := l.Model().Nodes[0]

	t.Run("create and restore", func(t *testing.T) {
		p := &putParams{Path: "/tmp/certool.cfg", Content: "Country = US\n", Mode: "0600"}
		before := l.Snapshot()
		pl, err := planPut(ctx, env, p)
		if err != nil {
			t.Fatal(err)
		}
		snapshotUnchanged(t, l, before, "Plan")
		want := engine.Change{Action: "create", Object: "vcsa1.lab.test file /tmp/certool.cfg",
			After: "13 bytes, sha256 " + sum("Country = US\n") + ", mode 0600"}
		if pl.InPlace || !reflect.DeepEqual(pl.Changes, []engine.Change{want}) {
			t.Fatalf("plan %+v", pl)
		}
		if v, err := checkPut(ctx, env, p); err != nil || v.State != engine.NotApplied {
			t.Fatalf("Check before = %v, %v", v.State, err)
		}
		env := *env
		env.BackupDir = t.TempDir()
		files, err := backupPut(ctx, &env, p)
		if err != nil || len(files) != 1 {
			t.Fatalf("Backup = %v, %v", files, err)
		}
		for range 2 {
			out, err := applyPut(ctx, &env, p)
			if err != nil {
				t.Fatal(err)
			}
			if out.Size != 13 || out.SHA256 != sum("Country = US\n") || out.Path != p.Path || out.Node != "vcsa1.lab.test" {
				t.Errorf("outputs %+v", out)
			}
		}
		got, err := node.ReadFile(p.Path)
		fi, serr := os.Stat(node.Path(p.Path))
		if err != nil || serr != nil || string(got) != p.Content || fi.Mode().Perm() != 0o600 {
			t.Fatalf("file %q %v, %v %v", got, fi.Mode(), err, serr)
		}
		if v, err := checkPut(ctx, &env, p); err != nil || v.State != engine.Applied || v.Outputs.SHA256 != sum(p.Content) {
			t.Fatalf("Check after = %+v, %v", v, err)
		}
		if pl, err := planPut(ctx, &env, p); err != nil || !pl.InPlace || len(pl.Changes) != 0 {
			t.Fatalf("plan after = %+v, %v", pl, err)
		}
		n, _ := conn.Node(&env, "")
		for range 2 {
			if err := Restore(ctx, n, env.BackupDir); err != nil {
				t.Fatal(err)
			}
		}
		snapshotUnchanged(t, l, before, "Apply then Restore")
	})

	t.Run("replace and restore", func(t *testing.T) {
		const orig = "/etc/vmware/deployment.node.type"
		src := filepath.Join(env.RunDir, "node.type")
		if err := os.WriteFile(src, []byte("management\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p := &putParams{Path: orig, LocalFile: "node.type", Mode: "0644"}
		before := l.Snapshot()
		pl, err := planPut(ctx, env, p)
		if err != nil || len(pl.Changes) != 1 || pl.Changes[0].Action != "replace" ||
			pl.Changes[0].Before != "9 bytes, sha256 "+sum("embedded\n")+", mode 0644" {
			t.Fatalf("plan %+v, %v", pl, err)
		}
		env := *env
		env.BackupDir = t.TempDir()
		if _, err := backupPut(ctx, &env, p); err != nil {
			t.Fatal(err)
		}
		saved, err := os.ReadFile(filepath.Join(env.BackupDir, PutBackupContent))
		if err != nil || string(saved) != "embedded\n" {
			t.Fatalf("backup %q, %v", saved, err)
		}
		if _, err := applyPut(ctx, &env, p); err != nil {
			t.Fatal(err)
		}
		if got, _ := node.ReadFile(orig); string(got) != "management\n" {
			t.Fatalf("after Apply: %q", got)
		}
		n, _ := conn.Node(&env, "")
		if err := Restore(ctx, n, env.BackupDir); err != nil {
			t.Fatal(err)
		}
		snapshotUnchanged(t, l, before, "Apply then Restore")
	})

	t.Run("mode only", func(t *testing.T) {
		p := &putParams{Path: "/etc/hostname", Content: "vcsa1.lab.test\n", Mode: "0600"}
		pl, err := planPut(ctx, env, p)
		if err != nil || len(pl.Changes) != 1 || pl.Changes[0].Action != "update" {
			t.Fatalf("plan %+v, %v", pl, err)
		}
		if _, err := applyPut(ctx, env, p); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(node.Path(p.Path)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, %v", fi.Mode(), err)
		}
	})

	t.Run("bad params", func(t *testing.T) {
		for _, tc := range []struct {
			p    putParams
			want string
		}{
			{putParams{Path: "tmp/x", Content: "x"}, `path: "tmp/x" is not absolute`},
			{putParams{Path: "/tmp/", Content: "x"}, "names a folder"},
			{putParams{Path: "/tmp/x", Content: "x", LocalFile: "y"}, "give one of them, not both"},
			{putParams{Path: "/tmp/x", Content: "x", Mode: "0888"}, `mode: "0888" is not octal`},
			{putParams{Path: "/tmp/x", LocalFile: "nosuch"}, "local_file: open"},
			{putParams{Path: "/nosuchdir/x", Content: "x"}, "its folder /nosuchdir does not exist"},
		} {
			if _, err := applyPut(ctx, env, &tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
			}
		}
	})
}

func TestGetLab(t *testing.T) {
	l, env := testLab(t, "healthy")
	ctx := t.Context()

	out, err := runGet(ctx, env, &getParams{Node: "vcsa2.lab.test", Path: "/etc/vmware/deployment.node.type"})
	if err != nil {
		t.Fatal(err)
	}
	want := getOutputs{File: filepath.Join(env.RunDir, "deployment.node.type"), Size: 9, SHA256: sum("embedded\n"), Content: "embedded\n"}
	if out != want {
		t.Errorf("outputs %+v, want %+v", out, want)
	}
	if fi, err := os.Stat(out.File); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("copy: %v, %v", fi, err)
	}

	// A private key is copied but never put into outputs.
	out, err = runGet(ctx, env, &getParams{Path: model.PathRootKey, To: "keys/root.key"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := l.Model().Nodes[0].ReadFile(model.PathRootKey)
	if out.Content != "" || out.SHA256 != sum(string(key)) || out.File != filepath.Join(env.RunDir, "keys", "root.key") {
		t.Errorf("key outputs %+v", out)
	}

	// Redaction of a text file.
	if err := l.Model().Nodes[0].WriteFile("/tmp/pw.txt", []byte("password="+testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runGet(ctx, env, &getParams{Path: "/tmp/pw.txt"}); err != nil || out.Content != "password=***\n" {
		t.Errorf("redacted: %+v, %v", out, err)
	}

	for _, tc := range []struct {
		p    getParams
		want string
	}{
		{getParams{Path: "/etc/hostname", To: "../escape"}, "not a name inside the run folder"},
		{getParams{Path: "/etc/hostname", To: "/tmp/abs"}, "not a name inside the run folder"},
		{getParams{Path: "/etc"}, "/etc is not a regular file"},
		{getParams{Path: "/nosuch"}, "stat /nosuch"},
	} {
		if _, err := runGet(ctx, env, &tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
		}
	}
}

func TestFactsLab(t *testing.T) {
	l, env := testLab(t, "healthy", lab.WithTypes(model.Embedded, model.Management))
	ctx := t.Context()
	before := l.Snapshot()
	out, err := runFacts(ctx, env, &factsParams{Node: "all"})
	if err != nil {
		t.Fatal(err)
	}
	snapshotUnchanged(t, l, before, "appliance.facts")
	if len(out.Nodes) != 2 {
		t.Fatalf("nodes %+v", out.Nodes)
	}
	for i, n := range l.Model().Nodes {
		got := out.Nodes[i]
		want := NodeFacts{
			PNID: n.PNID, MachineID: n.MachineID, Domain: "vsphere.local", DomainDN: "dc=vsphere,dc=local",
			Site: n.Site, DCName: "vcsa1.lab.test", NodeType: string(n.Type), IP: "127.0.0.1",
			LsLocation: "https://vcsa1.lab.test/lookupservice/sdk", VmdirInstalled: n.HasDirectory(),
		}
		if got != want {
			t.Errorf("node %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	if out.PNID != "vcsa1.lab.test" || out.NodeType != "embedded" || !out.VmdirInstalled || out.MachineID != out.Nodes[0].MachineID {
		t.Errorf("top level %+v", out)
	}
	if out.Nodes[1].VmdirInstalled {
		t.Error("the management node has vmdir")
	}

	// One node by PNID.
	one, err := runFacts(ctx, env, &factsParams{Node: "vcsa2.lab.test"})
	if err != nil || len(one.Nodes) != 1 || one.PNID != "vcsa2.lab.test" || one.NodeType != "management" {
		t.Fatalf("one node: %+v, %v", one, err)
	}

	// With vmafd stopped, the registry is asked, which the lab does not
	// have: the error says both.
	if err := l.Model().Nodes[0].Services.Stop("vmafdd"); err != nil {
		t.Fatal(err)
	}
	_, err = runFacts(ctx, env, &factsParams{})
	if err == nil || !strings.Contains(err.Error(), "vmafd-cli get-pnid exited with code 20") ||
		!strings.Contains(err.Error(), "reading the registry instead failed: vcsa1.lab.test: lwregshell list_values exited with code 127") {
		t.Fatalf("vmafd down: %v", err)
	}
}

func TestParsers(t *testing.T) {
	reg := "[HKEY_THIS_MACHINE\\Services\\vmafd\\Parameters]\n" +
		"+  \"CAPath\"         REG_SZ          \"/etc/ssl/certs\"\n" +
		"+  \"DCName\"         REG_SZ          \"psc1.example.com\"\n" +
		"+  \"DCNameHA\"       REG_SZ          \"psc-ha.example.com\"\n" +
		"+  \"DomainName\"     REG_SZ          \"vsphere.local\"\n" +
		"+  \"MachineID\"      REG_SZ          \"ce510c87-35e6-444e-82f0-60a7527608a3\"\n" +
		"+  \"PNID\"           REG_SZ          \"vcsa1.example.com\"\n" +
		"   \"SiteName\"       REG_SZ          \"default-site\"\n" +
		"+  \"Port\"           REG_DWORD       0x000008d3 (2259)\n"
	got := ParseRegistryValues(reg)
	want := map[string]string{"CAPath": "/etc/ssl/certs", "DCName": "psc1.example.com", "DCNameHA": "psc-ha.example.com",
		"DomainName": "vsphere.local", "MachineID": "ce510c87-35e6-444e-82f0-60a7527608a3",
		"PNID": "vcsa1.example.com", "SiteName": "default-site"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseRegistryValues = %v", got)
	}
	for out, want := range map[string]string{
		"2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\n":                       "10.0.0.5",
		"eth0      Link encap:Ethernet  HWaddr 00:50:56:8a:12:34\n          inet addr:192.168.1.20  Bcast:192.168.1.255  Mask:255.255.255.0\n": "192.168.1.20",
		"eth0: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 1500\n        inet 172.16.0.9  netmask 255.255.0.0\n":                           "172.16.0.9",
		"inet 999.1.1.1/24\n": "",
		"":                    "",
	} {
		if got := ParseIPv4(out); got != want {
			t.Errorf("ParseIPv4(%q) = %q, want %q", out, got, want)
		}
	}
}
