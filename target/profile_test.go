package target

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	tp   = "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"
	tpUp = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
	hk   = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
)

const validProfile = `domain: vsphere.local
sso: {user: administrator@vsphere.local, password_file: sso.pass}
nodes:
  - pnid: vcsa1.lab.test
    address: 127.0.0.1
    ports: {https: 8443, ldap: 0, ldaps: 1636, ssh: 2222}
    tls_thumbprint: "` + tp + `"
    ssh: {user: root, password_env: RB_TEST_ROOT_PW, host_key: "` + hk + `"}
  - pnid: psc1.lab.test
    address: 10.0.0.2
    ssh: {password_file: /abs/root.pass}
`

// writeProfile writes text to a profile file in a new directory.
func writeProfile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "profile.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadProfileValid(t *testing.T) {
	path := writeProfile(t, validProfile)
	p, err := LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Path != path || p.Domain != "vsphere.local" || len(p.Nodes) != 2 {
		t.Fatalf("got %+v", p)
	}
	n := p.Nodes[0]
	if n.Ports != (Ports{HTTPS: 8443, LDAPS: 1636, SSH: 2222}) {
		t.Errorf("ports = %+v", n.Ports)
	}
	if got := n.Ports.withDefaults(); got != (Ports{HTTPS: 8443, LDAP: 389, LDAPS: 1636, SSH: 2222}) {
		t.Errorf("ports with defaults = %+v", got)
	}
	if got := p.Nodes[1].Ports.withDefaults(); got != (Ports{HTTPS: 443, LDAP: 389, LDAPS: 636, SSH: 22}) {
		t.Errorf("default ports = %+v", got)
	}
	if n.SSH.User != "root" || n.SSH.PasswordEnv != "RB_TEST_ROOT_PW" || n.SSH.HostKey != hk {
		t.Errorf("ssh = %+v", n.SSH)
	}
	if p.SSO.PasswordFile != "sso.pass" {
		t.Errorf("sso = %+v", p.SSO)
	}
}

func TestLoadProfileErrors(t *testing.T) {
	// Each case replaces old with new in validProfile, or uses whole as the
	// profile, and expects exactly the error text want (where FILE is the
	// profile's path).
	tests := []struct {
		name     string
		old, new string
		whole    string
		want     string
	}{
		{
			name: "unknown key",
			old:  "    address: 127.0.0.1\n", new: "    adress: 127.0.0.1\n",
			want: `FILE:5:5: unknown key "adress" in nodes[0] (did you mean "address"?)`,
		},
		{
			name: "unknown top-level key",
			old:  "domain: vsphere.local\n", new: "domain: vsphere.local\nsite: default-site\n",
			want: `FILE:2:1: unknown key "site" in the profile`,
		},
		{
			name: "missing pnid",
			old:  "  - pnid: vcsa1.lab.test\n    address", new: "  - address",
			want: "FILE:4:5: nodes[0]: pnid is required",
		},
		{
			name: "both password_file and password_env",
			old:  "password_file: sso.pass}", new: "password_file: sso.pass, password_env: SSO_PW}",
			want: "FILE:2:6: sso: set only one of password_file and password_env",
		},
		{
			name: "no password source",
			old:  "    ssh: {password_file: /abs/root.pass}\n", new: "    ssh: {user: root}\n",
			want: "FILE:11:10: nodes[1].ssh: set password_file or password_env",
		},
		{
			name: "wrong type",
			old:  "https: 8443", new: "https: web",
			want: `FILE:6:20: nodes[0].ports.https: expected an integer, got "web"`,
		},
		{
			name: "port out of range",
			old:  "ssh: 2222}", new: "ssh: 70000}",
			want: "FILE:6:53: nodes[0].ports.ssh: 70000 is not a port number",
		},
		{
			name: "sha1 thumbprint",
			old:  tp, new: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01",
			want: `FILE:7:21: nodes[0].tls_thumbprint: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01" looks like a SHA-1 thumbprint; pin the SHA-256 one (openssl x509 -noout -fingerprint -sha256)`,
		},
		{
			name: "md5 host key",
			old:  hk, new: "MD5:12:34",
			want: `FILE:8:64: nodes[0].ssh.host_key: "MD5:12:34" is not an SSH host key fingerprint: want SHA256:… as ssh-keygen -l -E sha256 prints it`,
		},
		{
			name: "duplicate pnid",
			old:  "pnid: psc1.lab.test", new: "pnid: VCSA1.lab.test",
			want: "FILE:9:11: nodes[1].pnid: VCSA1.lab.test is already nodes[0]",
		},
		{
			name: "user of another domain",
			old:  "user: administrator@vsphere.local", new: "user: admin@corp.example",
			want: `FILE:2:13: sso.user: "admin@corp.example" is not a user of the SSO domain vsphere.local; vmdir only binds its own users`,
		},
		{
			name:  "no nodes and no domain",
			whole: "sso: {user: administrator@vsphere.local, password_env: X}\nnodes: []\n",
			want:  "FILE:1:1: domain is required (the SSO domain, such as vsphere.local)\nFILE:2:8: nodes: at least one node is required",
		},
		{
			name:  "empty",
			whole: "# nothing\n",
			want:  "FILE: profile is empty",
		},
		{
			name:  "two documents",
			whole: validProfile + "---\ndomain: x\n",
			want:  "FILE:12:1: a profile is a single YAML document",
		},
		{
			name:  "syntax error",
			whole: "domain: [vsphere.local\n",
			want:  "FILE:1:1: did not find expected ',' or ']'",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.whole
			if text == "" {
				if !strings.Contains(validProfile, tc.old) {
					t.Fatalf("%q is not in the profile", tc.old)
				}
				text = strings.Replace(validProfile, tc.old, tc.new, 1)
			}
			path := writeProfile(t, text)
			_, err := LoadProfile(path)
			if err == nil {
				t.Fatal("LoadProfile succeeded")
			}
			var pe ProfileErrors
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not ProfileErrors: %v", err, err)
			}
			want := strings.ReplaceAll(tc.want, "FILE", path)
			if got := err.Error(); got != want {
				t.Errorf("error:\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestLoadProfileMissingFile(t *testing.T) {
	_, err := LoadProfile(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not exist", err)
	}
}

func TestPasswords(t *testing.T) {
	const secret = "S3cr3t!pw"
	dir := t.TempDir()
	sub := filepath.Join(dir, "conf")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	mustWrite := func(name, data string) string {
		p := filepath.Join(sub, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mustWrite("sso.pass", secret+"\n")
	mustWrite("crlf.pass", secret+"\r\n")
	abs := mustWrite("abs.pass", secret)
	mustWrite("empty.pass", "\n")
	t.Setenv("RB_TEST_PW", secret)
	t.Setenv("RB_TEST_EMPTY", "")

	base := sub // a profile at conf/profile.yaml
	tests := []struct {
		name    string
		creds   Credentials
		want    string
		wantErr string
	}{
		{"relative file", Credentials{PasswordFile: "sso.pass"}, secret, ""},
		{"crlf file", Credentials{PasswordFile: "crlf.pass"}, secret, ""},
		{"absolute file", Credentials{PasswordFile: abs}, secret, ""},
		{"env", Credentials{PasswordEnv: "RB_TEST_PW"}, secret, ""},
		{"missing file", Credentials{PasswordFile: "nope.pass"}, "", "read password: open " + filepath.Join(sub, "nope.pass") + ": no such file or directory"},
		{"empty file", Credentials{PasswordFile: "empty.pass"}, "", "read password: file " + filepath.Join(sub, "empty.pass") + " is empty"},
		{"unset env", Credentials{PasswordEnv: "RB_TEST_UNSET_XYZ"}, "", "read password: environment variable RB_TEST_UNSET_XYZ is not set"},
		{"empty env", Credentials{PasswordEnv: "RB_TEST_EMPTY"}, "", "read password: environment variable RB_TEST_EMPTY is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.creds.password(base)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("password = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestProfilePasswordsRelativeToProfile loads a profile from another
// directory than the working one and reads its passwords through a node.
func TestProfilePasswordsRelativeToProfile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sso.pass"), []byte("sso-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RB_TEST_ROOT_PW", "root-pw")
	path := filepath.Join(dir, "profile.yaml")
	if err := os.WriteFile(path, []byte(validProfile), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := Open(t.Context(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := tg.Nodes()[0]
	for kind, want := range map[string]string{"sso": "sso-pw", "ssh": "root-pw"} {
		got, err := n.password(kind)
		if err != nil || got != want {
			t.Errorf("password(%s) = %q, %v; want %q", kind, got, err, want)
		}
	}
	// The second node's ssh password file is absent: the error names the
	// file and the target still opened (passwords are read lazily).
	if _, err := tg.Nodes()[1].password("ssh"); err == nil || !strings.Contains(err.Error(), "/abs/root.pass") {
		t.Errorf("password of node 2: %v", err)
	}
}

func TestProfileWriteGolden(t *testing.T) {
	p, err := parseProfile("in.yaml", []byte(validProfile))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "profile.yaml")
	if err := p.Write(out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	golden := filepath.Join("testdata", "profile.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("written profile differs from %s (run with -update):\n%s", golden, got)
	}
	// What Write wrote loads back to the same profile.
	back, err := LoadProfile(out)
	if err != nil {
		t.Fatal(err)
	}
	back.Path = p.Path
	if !equalProfiles(back, p) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, p)
	}
}

func equalProfiles(a, b *Profile) bool {
	if a.Domain != b.Domain || a.SSO != b.SSO || a.Path != b.Path || len(a.Nodes) != len(b.Nodes) {
		return false
	}
	for i := range a.Nodes {
		if a.Nodes[i] != b.Nodes[i] {
			return false
		}
	}
	return true
}

func TestProfileWriteRefusesInvalid(t *testing.T) {
	p := &Profile{Domain: "vsphere.local", SSO: Credentials{User: "administrator@vsphere.local", PasswordEnv: "X"}}
	out := filepath.Join(t.TempDir(), "p.yaml")
	err := p.Write(out)
	if err == nil || !strings.Contains(err.Error(), "nodes: at least one node is required") {
		t.Fatalf("Write = %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("invalid profile was written: %v", err)
	}
}

func TestOpenRefusesInvalid(t *testing.T) {
	_, err := Open(t.Context(), &Profile{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "open target: domain is required") {
		t.Fatalf("Open = %v", err)
	}
}

func TestDomainDNAndBindDN(t *testing.T) {
	tests := []struct{ domain, user, dn, bind string }{
		{"vsphere.local", "administrator@vsphere.local", "dc=vsphere,dc=local", "cn=administrator,cn=users,dc=vsphere,dc=local"},
		{"corp.example.com", "Administrator@CORP.example.com", "dc=corp,dc=example,dc=com", "cn=Administrator,cn=users,dc=CORP,dc=example,dc=com"},
		{"sso", "a,b@sso", "dc=sso", `cn=a\,b,cn=users,dc=sso`},
	}
	for _, tc := range tests {
		if got := DomainDN(tc.domain); got != tc.dn {
			t.Errorf("DomainDN(%q) = %q, want %q", tc.domain, got, tc.dn)
		}
		p := &Profile{Domain: tc.domain, SSO: Credentials{User: tc.user, PasswordEnv: "X"},
			Nodes: []NodeProfile{{PNID: "n", Address: "127.0.0.1", SSH: SSHProfile{Credentials: Credentials{PasswordEnv: "X"}}}}}
		tg, err := Open(t.Context(), p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.BindDN(); got != tc.bind {
			t.Errorf("BindDN for %q = %q, want %q", tc.user, got, tc.bind)
		}
	}
}

func BenchmarkLoadProfile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "profile.yaml")
	if err := os.WriteFile(path, []byte(validProfile), 0o600); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := LoadProfile(path); err != nil {
			b.Fatal(err)
		}
	}
}
