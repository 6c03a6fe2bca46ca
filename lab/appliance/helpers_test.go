package appliance

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"runbook/lab/model"
	"runbook/lab/sshd"
)

var update = flag.Bool("update", false, "rewrite golden files")

// labNow is the lab clock of every test: fixed, so that validity dates in
// command output are deterministic.
var labNow = time.Date(2026, time.March, 14, 9, 26, 53, 0, time.UTC)

// newLab builds scenario with a fixed clock in a temporary directory.
func newLab(t testing.TB, scenario string) *model.Domain {
	t.Helper()
	d, err := model.Build(scenario, model.Options{Dir: t.TempDir(), Now: func() time.Time { return labNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, n := range d.Nodes {
		if err := os.MkdirAll(n.Path("/root"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// result is what a command did.
type result struct {
	stdout, stderr string
	status         int
}

// run runs one command of node n directly, without SSH, as the shell
// would: args[0] is looked up in Commands, the working directory is /root.
func run(t testing.TB, d *model.Domain, n *model.Node, stdin string, args ...string) result {
	t.Helper()
	cmd, ok := Commands(d, n)[args[0]]
	if !ok {
		t.Fatalf("no command %q", args[0])
	}
	root, err := n.OpenRoot()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var out, errb bytes.Buffer
	inv := &sshd.Invocation{
		Args:   args,
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errb,
		Env:    map[string]string{"HOME": "/root"},
		Dir:    "/root",
		Path:   func(p string) string { return n.Path(absPath("/root", p)) },
		FS:     root,
	}
	status := cmd(context.Background(), inv)
	return result{out.String(), errb.String(), status}
}

// runLine runs a command line split on blanks.
func runLine(t testing.TB, d *model.Domain, n *model.Node, line string) result {
	t.Helper()
	return run(t, d, n, "", strings.Fields(line)...)
}

// normalizers replace what differs between builds (keys, serial numbers,
// signatures, thumbprints) with placeholders; structure and labels stay.
var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?s)(-----BEGIN ([A-Z0-9 ]+)-----\n).*?(\n-----END ([A-Z0-9 ]+)-----)`), "${1}<base64>${3}"},
	{regexp.MustCompile(`MII[A-Za-z0-9+/=]{60,}`), "<base64>"},
	{regexp.MustCompile(`\b[0-9A-F]{40}\b`), "<SKID>"},
	{regexp.MustCompile(`\b[0-9a-f]{40}\b`), "<sha1>"},
	{regexp.MustCompile(`svcspec_[a-z0-9_]{8}`), "svcspec_<random>"},
	{regexp.MustCompile(`Serial Number: \d+ \(0x[0-9a-f]+\)`), "Serial Number: <serial>"},
}

// hexRun is a colon-separated hex dump (serial, key, signature, key
// identifier, thumbprint); timeLine marks lines whose hh:mm:ss must stay.
var (
	hexRun   = regexp.MustCompile(`\b[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})+(:|\b)`)
	timeLine = regexp.MustCompile(`GMT|\d{4}-\d{2}-\d{2}T\d{2}:`)
)

func normalize(s string) string {
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if !timeLine.MatchString(l) {
			lines[i] = hexRun.ReplaceAllString(l, "<hex>")
		}
	}
	return strings.Join(lines, "\n")
}

// transcript renders a command and its result.
func transcript(line string, r result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ %s\n", line)
	b.WriteString(r.stdout)
	if r.stderr != "" {
		for _, l := range strings.SplitAfter(strings.TrimSuffix(r.stderr, "\n"), "\n") {
			b.WriteString("stderr> " + l)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "[exit %d]\n\n", r.status)
	return b.String()
}

// golden compares got with testdata/<name>.golden, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file:\n%s", name, lineDiff(string(want), got))
	}
}

// lineDiff shows the first differing lines of want and got.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant %q\ngot  %q", i+1, wl, gl)
		}
	}
	return "(no difference)"
}
