package replication

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"runbook/internal/golden"
)

// TestParsePartnerStatusGolden parses showpartnerstatus outputs in the
// format of vcenter-procedures.md §5.1 (several partners, Host available
// No, Status available No, the password prompt, CRLF, fields of newer
// builds) and compares them with testdata/*.golden.
func TestParsePartnerStatusGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := ParsePartnerStatus(string(data))
			if err != nil {
				t.Fatal(err)
			}
			if ps == nil {
				ps = []Partner{}
			}
			golden.JSON(t, strings.TrimSuffix(in, ".txt")+".golden", ps)
		})
	}
}

func TestParsePartnerStatusErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Vdcrepadmin failed. Error [User invalid credential] [9234]\n", "vdcrepadmin failed: User invalid credential (9234)"},
		{"password: \nVdcrepadmin failed. Error [Server down] [9127]\n", "vdcrepadmin failed: Server down (9127)"},
		{"Host available:   Yes\n", `line 1: "Host available:   Yes" before the first Partner line`},
		{"Partner: a\nHost available:   Maybe\n", `line 2: Host available: "Maybe" is neither Yes nor No`},
		{"Partner: a\n", "partner a: no Host available line"},
		{"Partner: a\nHost available: Yes\n", "partner a: no Status available line"},
		{"Partner: a\nHost available: No\nStatus available: Yes\n", "line 3: partner a: a status for a host that is not available"},
		{"Partner: a\nHost available: Yes\nStatus available: No\nMy last change number: 5\n", "line 4: partner a: change numbers without a status"},
		{"Partner: a\nHost available: Yes\nStatus available: Yes\nMy last change number: x\n", `line 4: My last change number: "x" is not a number`},
		{"Partner: a\nHost available: Yes\nStatus available: Yes\nMy last change number: 5\n", "partner a: no change numbers"},
		{"Partner: a\nHost available: Yes\nStatus available: Yes\nMy last change number: 5\nPartner has seen my change number: 3\nPartner is 1 changes behind.\n",
			"partner a: 1 changes behind, but 5 - 3 = 2"},
		{"Partner: a\nHost available: Yes\nHost available: Yes\n", "line 3: partner a: Host available twice"},
		{"Partner: two words\n", `line 1: partner "two words" is not a host name`},
		{"Partner: a\nHost available: No\ngarbage\n", `line 3: unexpected "garbage"`},
		{"Partner is 0 changes behind.\n", `line 1: unexpected "Partner is 0 changes behind."`},
	} {
		if _, err := ParsePartnerStatus(tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("ParsePartnerStatus(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
	// Without the lag line, the lag is computed.
	ps, err := ParsePartnerStatus("Partner: a\nHost available: Yes\nStatus available: Yes\nMy last change number: 5\nPartner has seen my change number: 3\n")
	if err != nil || len(ps) != 1 || ps[0].ChangesBehind != 2 {
		t.Errorf("computed lag: %+v, %v", ps, err)
	}
}

func TestParseVmdirState(t *testing.T) {
	for out, want := range map[string]string{
		"\n\n==================\nPlease select:\n0. exit\n6. Get vmdir state\n==================\n\n\n\n VmDir State is - Normal\n\n": "Normal",
		" VmDir State is - Read only\n":                  "Read only",
		"Directory Server State: Normal (3)\n":           "Normal",
		"Directory Server State: Standalone (6)\n":       "Standalone",
		"Enter password: Directory Server State: Normal": "Normal",
	} {
		if got, err := ParseVmdirState(out); err != nil || got != want {
			t.Errorf("ParseVmdirState(%q) = %q, %v; want %q", out, got, err, want)
		}
	}
	for out, want := range map[string]string{
		"\n GetVmDirState failed: Cannot connect vmdir\n": "GetVmDirState failed: Cannot connect vmdir",
		"menu only\n": "no vmdir state in the output",
	} {
		if _, err := ParseVmdirState(out); err == nil || err.Error() != want {
			t.Errorf("ParseVmdirState(%q) = %v, want %q", out, err, want)
		}
	}
}

// render prints partners back in showpartnerstatus's format.
func render(ps []Partner) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Partner: %s\nHost available:   %s\n", p.Partner, yn(p.HostAvailable))
		if p.HostAvailable {
			fmt.Fprintf(&b, "Status available: %s\n", yn(p.StatusAvailable))
		}
		if p.StatusAvailable {
			fmt.Fprintf(&b, "My last change number:             %d\nPartner has seen my change number: %d\nPartner is %d changes behind.\n",
				p.MyLastChange, p.PartnerSeen, p.ChangesBehind)
		}
	}
	return b.String()
}

func yn(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func FuzzParsePartnerStatus(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, out string) {
		ps, err := ParsePartnerStatus(out)
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Partner == "" || !p.HostAvailable && p.StatusAvailable ||
				!p.StatusAvailable && (p.MyLastChange != 0 || p.PartnerSeen != 0 || p.ChangesBehind != 0) ||
				p.StatusAvailable && p.ChangesBehind != p.MyLastChange-p.PartnerSeen {
				t.Fatalf("partner %+v", p)
			}
		}
		again, err := ParsePartnerStatus(render(ps))
		if err != nil || len(ps) > 0 && !reflect.DeepEqual(again, ps) {
			t.Fatalf("round trip %q: %+v, %v; was %+v", render(ps), again, err, ps)
		}
		_, _ = ParseVmdirState(out)
	})
}

func BenchmarkParsePartnerStatus(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "partners-mixed-prompt.txt"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParsePartnerStatus(string(data)); err != nil {
			b.Fatal(err)
		}
	}
}
