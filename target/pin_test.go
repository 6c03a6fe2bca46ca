package target

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestParseThumbprint(t *testing.T) {
	plain := strings.ReplaceAll(tp, ":", "")
	tests := []struct {
		in, want, wantErr string
	}{
		{in: tp, want: tpUp},
		{in: tpUp, want: tpUp},
		{in: plain, want: tpUp},
		{in: strings.ToUpper(plain), want: tpUp},
		{in: "  " + tp + "\n", want: tpUp},
		{in: "AB:CD", wantErr: "it has 2 bytes, not 32"},
		{in: "ABC:D", wantErr: `byte 1 is "ABC"`},
		{in: strings.Repeat("zz", 32), wantErr: "want hex digits"},
		{in: strings.Repeat("ab", 20), wantErr: "looks like a SHA-1 thumbprint"},
	}
	for _, tc := range tests {
		got, err := parseThumbprint(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseThumbprint(%q) = %q, %v; want error with %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseThumbprint(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseHostKey(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{hk, hk, true},
		{hk + "=", hk, true},
		{" " + hk + " ", hk, true},
		{"SHA256:abc", "", false},
		{"uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s", "", false},
		{"MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48", "", false},
		{"SHA256:" + strings.Repeat("!", 43), "", false},
	}
	for _, tc := range tests {
		got, err := parseHostKey(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseHostKey(%q) = %q, %v; want %q (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// pinNode returns a node of a one-node target with the given pins and
// options, and a function returning what Logf received.
func pinNode(t *testing.T, tlsPin, hostKey string, opts Options) (*Node, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var logs []string
	opts.Logf = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
	}
	p := &Profile{
		Domain: "vsphere.local",
		SSO:    Credentials{User: "administrator@vsphere.local", PasswordEnv: "X"},
		Nodes: []NodeProfile{{
			PNID: "vcsa1.lab.test", Address: "127.0.0.1", TLSThumbprint: tlsPin,
			SSH: SSHProfile{Credentials: Credentials{PasswordEnv: "X"}, HostKey: hostKey},
		}},
	}
	tg, err := Open(t.Context(), p, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tg.Nodes()[0], func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), logs...)
	}
}

func TestCheckPin(t *testing.T) {
	other := strings.Replace(tpUp, "AB", "00", 1)
	otherKey := "SHA256:" + strings.Repeat("A", 43)
	tests := []struct {
		name      string
		tlsPin    string
		hostKey   string
		tofu      bool
		kind      PinKind
		presented string
		wantErr   string // exact message; "" = accepted
	}{
		{name: "tls match", tlsPin: tp, kind: PinTLS, presented: tpUp},
		{name: "ssh match", hostKey: hk, kind: PinSSH, presented: hk},
		{
			name: "tls missing", kind: PinTLS, presented: tpUp,
			wantErr: "node vcsa1.lab.test: no tls_thumbprint pinned; the server presents SHA-256 " + tpUp + " — add it to the profile if it is right",
		},
		{
			name: "ssh missing", kind: PinSSH, presented: hk,
			wantErr: "node vcsa1.lab.test: no ssh host_key pinned; the server presents " + hk + " — add it to the profile if it is right",
		},
		{
			name: "tls mismatch", tlsPin: tp, kind: PinTLS, presented: other,
			wantErr: "node vcsa1.lab.test: the server presents a certificate with SHA-256 " + other + ", but the profile pins tls_thumbprint " + tpUp + "; refusing to connect (if the certificate was replaced on purpose, check the new one and update the profile)",
		},
		{
			name: "ssh mismatch", hostKey: hk, kind: PinSSH, presented: otherKey,
			wantErr: "node vcsa1.lab.test: the server presents SSH host key " + otherKey + ", but the profile pins host_key " + hk + "; refusing to connect (if the host key was changed on purpose, check the new one and update the profile)",
		},
		{
			name: "tofu does not override a pin", tlsPin: tp, tofu: true, kind: PinTLS, presented: other,
			wantErr: "node vcsa1.lab.test: the server presents a certificate with SHA-256 " + other + ", but the profile pins tls_thumbprint " + tpUp + "; refusing to connect (if the certificate was replaced on purpose, check the new one and update the profile)",
		},
		{name: "tofu tls", tofu: true, kind: PinTLS, presented: tpUp},
		{name: "tofu ssh", tofu: true, kind: PinSSH, presented: hk},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, logs := pinNode(t, tc.tlsPin, tc.hostKey, Options{TrustOnFirstUse: tc.tofu})
			err := n.checkPin(tc.kind, tc.presented)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("checkPin: %v", err)
				}
				return
			}
			var pe *PinError
			if !errors.As(err, &pe) {
				t.Fatalf("checkPin = %v, want a *PinError", err)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("error:\n got: %s\nwant: %s", err, tc.wantErr)
			}
			if pe.Presented != tc.presented || pe.Kind != tc.kind || pe.Node != "vcsa1.lab.test" {
				t.Errorf("PinError = %+v", pe)
			}
			if len(logs()) != 0 {
				t.Errorf("logged %q on a refusal", logs())
			}
		})
	}
}

func TestTrustOnFirstUse(t *testing.T) {
	n, logs := pinNode(t, "", "", Options{TrustOnFirstUse: true})
	if err := n.checkPin(PinTLS, tpUp); err != nil {
		t.Fatal(err)
	}
	if err := n.checkPin(PinSSH, hk); err != nil {
		t.Fatal(err)
	}
	// Learned pins hold for the rest of the run.
	if err := n.checkPin(PinTLS, tpUp); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(tpUp, "AB", "00", 1)
	var pe *PinError
	if err := n.checkPin(PinTLS, other); !errors.As(err, &pe) || pe.Pinned != tpUp {
		t.Fatalf("second certificate after TOFU: %v", err)
	}
	if tlsPin, hostKey := n.Pins(); tlsPin != tpUp || hostKey != hk {
		t.Errorf("Pins = %q, %q", tlsPin, hostKey)
	}
	got := logs()
	want := []string{
		`node vcsa1.lab.test: trusting the TLS certificate with SHA-256 ` + tpUp + ` on first use; to pin it, add tls_thumbprint: "` + tpUp + `" to the profile`,
		`node vcsa1.lab.test: trusting the SSH host key ` + hk + ` on first use; to pin it, add host_key: "` + hk + `" to the node's ssh in the profile`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logs:\n got %q\nwant %q", got, want)
	}
	// The target's profile now carries the learned pins.
	p := n.t.Profile()
	if p.Nodes[0].TLSThumbprint != tpUp || p.Nodes[0].SSH.HostKey != hk {
		t.Errorf("Profile() node = %+v", p.Nodes[0])
	}
	if n.t.profile.Nodes[0].TLSThumbprint != "" {
		t.Error("Profile() changed the target's own profile")
	}
}

func TestTrustOnFirstUseConcurrent(t *testing.T) {
	// Two servers presenting different certificates race for the first
	// use: exactly one wins, the other is refused.
	n, _ := pinNode(t, "", "", Options{TrustOnFirstUse: true})
	other := strings.Replace(tpUp, "AB", "00", 1)
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Go(func() {
			if i%2 == 0 {
				errs[i] = n.checkPin(PinTLS, tpUp)
			} else {
				errs[i] = n.checkPin(PinTLS, other)
			}
		})
	}
	wg.Wait()
	pin, _ := n.Pins()
	for i, err := range errs {
		presented := tpUp
		if i%2 == 1 {
			presented = other
		}
		if (presented == pin) != (err == nil) {
			t.Fatalf("pin %s, check %d of %s: %v", pin, i, presented, err)
		}
	}
}

func TestRepin(t *testing.T) {
	n, logs := pinNode(t, tp, "", Options{})
	other := strings.Replace(tpUp, "AB", "00", 1)
	if err := n.checkPin(PinTLS, other); err == nil {
		t.Fatal("other certificate accepted before Repin")
	}
	if err := n.Repin(strings.ToLower(strings.ReplaceAll(other, ":", ""))); err != nil {
		t.Fatal(err)
	}
	if err := n.checkPin(PinTLS, other); err != nil {
		t.Fatalf("after Repin: %v", err)
	}
	if err := n.checkPin(PinTLS, tpUp); err == nil {
		t.Fatal("old certificate still accepted after Repin")
	}
	if err := n.Repin("not a thumbprint"); err == nil || !strings.HasPrefix(err.Error(), "repin vcsa1.lab.test: ") {
		t.Fatalf("Repin(bad) = %v", err)
	}
	if pin, _ := n.Pins(); pin != other {
		t.Errorf("a bad Repin changed the pin to %s", pin)
	}
	want := "node vcsa1.lab.test: TLS pin changed from " + tpUp + " to " + other + "; update tls_thumbprint in the profile"
	if got := logs(); len(got) != 1 || got[0] != want {
		t.Errorf("logs = %q, want %q", got, want)
	}
}

// TestRepinRecorded checks that with a pin file, a changed pin outlives the
// process: a target opened again from the same profile (a resumed run)
// trusts the new certificate and not the profile's, and says so.
func TestRepinRecorded(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pins", "lab.json")
	n, _ := pinNode(t, tp, "", Options{PinFile: file})
	other := strings.Replace(tpUp, "AB", "00", 1)
	if err := n.Repin(other); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pin file: %v, %v", fi, err)
	}

	again, logs := pinNode(t, tp, "", Options{PinFile: file})
	if pin, _ := again.Pins(); pin != other {
		t.Fatalf("reopened with the pin file: pin %s, want the recorded %s", pin, other)
	}
	if err := again.checkPin(PinTLS, tpUp); err == nil {
		t.Error("the profile's old certificate is still accepted")
	}
	if got := logs(); len(got) != 1 || !strings.Contains(got[0], "update tls_thumbprint") {
		t.Errorf("logs = %q, want a note that the profile is out of date", got)
	}

	without, _ := pinNode(t, tp, "", Options{})
	if pin, _ := without.Pins(); pin != tpUp {
		t.Errorf("without the pin file: pin %s, want the profile's %s", pin, tpUp)
	}

	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Profile{Domain: "vsphere.local", SSO: Credentials{User: "administrator@vsphere.local", PasswordEnv: "X"},
		Nodes: []NodeProfile{{PNID: "vcsa1.lab.test", Address: "127.0.0.1", TLSThumbprint: tp,
			SSH: SSHProfile{Credentials: Credentials{PasswordEnv: "X"}}}}}
	if _, err := Open(t.Context(), p, Options{PinFile: file}); err == nil {
		t.Error("a corrupt pin file was ignored")
	}
}
