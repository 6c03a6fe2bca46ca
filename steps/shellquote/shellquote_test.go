package shellquote

import (
	"os/exec"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"vecs-cli", "vecs-cli"},
		{"/usr/lib/vmware-vmafd/bin/vecs-cli", "/usr/lib/vmware-vmafd/bin/vecs-cli"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
		{"x;rm -rf /", "'x;rm -rf /'"},
	}
	for _, tc := range tests {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestJoinRoundTrip has a real shell split what Join wrote.
func TestJoinRoundTrip(t *testing.T) {
	args := []string{"printf", "%s\n", "a b", "it's", "$HOME", "", "`x`", "\\"}
	out, err := exec.Command("sh", "-c", Join(args)).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "a b\nit's\n$HOME\n\n`x`\n\\\n"
	if string(out) != want {
		t.Errorf("sh split Join(%q) into %q, want %q", args, out, want)
	}
}
