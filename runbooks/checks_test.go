package runbooks_test

// End-to-end tests of the check runbooks vecs-expiry (the VECS one-liner of
// KB 76719 step 8) and pre-upgrade-checks (replication both ways, vmdir
// state, STS, VECS, sslTrust, services) against lab scenarios, through the
// real CLI. The findings a run reports are compared with what the lab's
// model says is broken, computed here independently of the runbooks; a
// dry-run and a run must both leave the lab byte for byte as it was, and
// report the same findings.

import (
	"bytes"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/steps/services"
	"runbook/target"
)

// checksRunUnchanged runs the CLI with args (after "run") and fails unless
// it exits with want and the lab is byte for byte as it was.
func checksRunUnchanged(t *testing.T, r *labRun, want int, args ...string) result {
	t.Helper()
	before := r.Lab.Snapshot()
	res := r.mustRun(want, nil, append([]string{"run"}, args...)...)
	if after := r.Lab.Snapshot(); !bytes.Equal(before, after) {
		t.Fatalf("run %s changed the lab:\n%s", strings.Join(args, " "), diffLines(string(before), string(after)))
	}
	return res
}

// checksFinding matches a report line: its status, and the rest.
var checksFinding = regexp.MustCompile(`(?m)^\[(PASS|WARN|FAIL|INFO)\] (.*)$`)

// checksLines returns the report lines ([PASS], [WARN], [FAIL], [INFO])
// of a run's output, in order.
func checksLines(out string) []string {
	return checksFinding.FindAllString(out, -1)
}

// checksSameReport fails unless a dry-run and a run printed the same
// report lines: for a check runbook the dry-run is the run.
func checksSameReport(t *testing.T, dry, run result) {
	t.Helper()
	d, r := checksLines(dry.Stderr), checksLines(run.Stderr)
	if len(r) == 0 {
		t.Fatalf("the run printed no report lines:\n%s", run.Stderr)
	}
	if !slices.Equal(d, r) {
		t.Fatalf("the dry-run reported differently from the run:\n%s", diffLines(strings.Join(d, "\n"), strings.Join(r, "\n")))
	}
}

// checksSHA1 is a certificate's SHA-1 thumbprint, AB:CD:….
func checksSHA1(der []byte) string {
	sum := sha1.Sum(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// checksDaysLeft counts whole days from now to notAfter, rounded down, as
// the step types do.
func checksDaysLeft(notAfter, now time.Time) int {
	d := notAfter.Unix() - now.Unix()
	days := d / 86400
	if d%86400 < 0 {
		days--
	}
	return int(days)
}

// checksVECSEntry is a certificate entry of a node's VECS, from the model.
type checksVECSEntry struct {
	node, store, alias string
	notAfter           time.Time
	expired            bool
	days               int
}

// checksVECS lists the certificate entries of the given nodes' VECS.
func checksVECS(t *testing.T, d *model.Domain, nodes []*model.Node) []checksVECSEntry {
	t.Helper()
	now := d.Now()
	var out []checksVECSEntry
	for _, n := range nodes {
		for _, s := range n.VECS.StoreNames() {
			entries, err := n.VECS.Entries(s)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Type != model.PrivateKey && e.Type != model.TrustedCert {
					continue
				}
				c, err := x509.ParseCertificate(e.Cert())
				if err != nil {
					t.Fatalf("%s %s/%s: %v", n.PNID, s, e.Alias, err)
				}
				out = append(out, checksVECSEntry{node: n.PNID, store: s, alias: e.Alias, notAfter: c.NotAfter,
					expired: now.After(c.NotAfter), days: checksDaysLeft(c.NotAfter, now)})
			}
		}
	}
	return out
}

// vecsExpiryExpected returns the finding lines vecs-expiry must print, as
// "[FAIL] node store/alias" and "[WARN] node store/alias" prefixes, from
// the model: FAIL for an expired certificate or one with fewer than
// threshold days left outside BACKUP_STORE, WARN for the rest with fewer
// than warn days left or expired in BACKUP_STORE; "[FAIL] node" for a node
// the scenario took off the network.
func vecsExpiryExpected(t *testing.T, d *model.Domain, threshold, warn int) []string {
	t.Helper()
	var want []string
	var online []*model.Node
	for _, n := range d.Nodes {
		if !n.Online() {
			want = append(want, "[FAIL] "+n.PNID)
			continue
		}
		online = append(online, n)
	}
	for _, e := range checksVECS(t, d, online) {
		prefix := e.node + " " + e.store + "/" + e.alias
		switch {
		case e.store != model.StoreBackup && (e.expired || e.days < threshold):
			want = append(want, "[FAIL] "+prefix)
		case e.expired || e.days < warn:
			want = append(want, "[WARN] "+prefix)
		}
	}
	sort.Strings(want)
	return want
}

// vecsExpiryFindings returns the per-certificate finding lines of a
// vecs-expiry run cut before their ": ", sorted.
func vecsExpiryFindings(out string) []string {
	var got []string
	for _, l := range checksLines(out) {
		if strings.HasPrefix(l, "[FAIL] ") || strings.HasPrefix(l, "[WARN] ") {
			head, _, _ := strings.Cut(l, ": ")
			got = append(got, head)
		}
	}
	sort.Strings(got)
	return got
}

// vecsExpiryFix is the fix (a certificate-manager option or a runbook)
// vecs-expiry must name for an expired certificate of store.
func vecsExpiryFix(store string) string {
	switch store {
	case model.StoreMachineSSL:
		return "option 3"
	case model.StoreTrustedRoots:
		return "expired-certs-recovery"
	case model.StoreBackup:
		return "KB 82560"
	}
	if slices.Contains(model.SolutionUsers, store) {
		return "option 6"
	}
	return "do not replace this store"
}

func TestVecsExpiry(t *testing.T) {
	tests := []struct {
		scenario string
		want     int
		// broken are the stores whose certificates the scenario expired.
		broken []string
		// asserts are the assert steps that must fail.
		asserts []string
	}{
		{"healthy", 0, nil, nil},
		{"machine-ssl-expired", 6, []string{model.StoreMachineSSL}, []string{"none_expired"}},
		{"solution-users-expired", 6, model.SolutionUsers, []string{"none_expired"}},
		{"all-expired", 6, append([]string{model.StoreMachineSSL}, model.SolutionUsers...), []string{"none_expired"}},
		{"partner-down", 6, nil, []string{"every_node_read"}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			r := startLab(t, tt.scenario)
			d := r.Lab.Model()
			dry := r.dryRunChangesNothing("vecs-expiry", tt.want)
			res := checksRunUnchanged(t, r, tt.want, "vecs-expiry")
			checksSameReport(t, dry, res)

			want := vecsExpiryExpected(t, d, 30, 60)
			if got := vecsExpiryFindings(res.Stderr); !slices.Equal(got, want) {
				t.Fatalf("findings:\n%s\nwant (from the lab's VECS):\n%s\noutput:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), res.Stderr)
			}
			broken := slices.Sorted(slices.Values(tt.broken))
			both := slices.Contains(tt.broken, model.StoreMachineSSL) && len(tt.broken) > 1
			for _, n := range d.Nodes {
				if !n.Online() {
					for _, s := range []string{"== " + n.PNID + " ==\nnot read: the node cannot be reached (", "[FAIL] " + n.PNID + ": cannot be reached ("} {
						if !strings.Contains(res.Stderr, s) {
							t.Errorf("the report does not say %q:\n%s", s, res.Stderr)
						}
					}
					continue
				}
				// The scenario's broken stores are this node's findings.
				var stores []string
				for _, l := range checksLines(res.Stderr) {
					if f := strings.Fields(l); l[1:5] == "FAIL" && len(f) > 2 && f[1] == n.PNID {
						store := strings.SplitN(f[2], "/", 2)[0]
						stores = append(stores, store)
						if fix := vecsExpiryFix(store); !strings.Contains(l, fix) || !strings.Contains(l, "expired on ") {
							t.Errorf("finding %q does not say it expired, or does not name %s", l, fix)
						}
					}
				}
				if slices.Sort(stores); !slices.Equal(stores, broken) {
					t.Errorf("%s: expired stores reported %v, the scenario breaks %v", n.PNID, stores, broken)
				}
				summary := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(n.PNID) + `: \d+ certificates in \d+ stores; (\d+) expired, 0 expire within 30 days, 0 more within 60 days$`).FindStringSubmatch(res.Stderr)
				if summary == nil || summary[1] != fmt.Sprint(len(tt.broken)) {
					t.Errorf("summary of %s: %v, want %d expired\n%s", n.PNID, summary, len(tt.broken), res.Stderr)
				}
				if !strings.Contains(res.Stderr, "== "+n.PNID+" ==\nSTORE MACHINE_SSL_CERT\nAlias : __MACHINE_CERT\nNot After : ") {
					t.Errorf("no one-liner report for %s", n.PNID)
				}
				option8 := strings.Contains(res.Stderr, "Fix on "+n.PNID+": Machine SSL and solution-user certificates both need replacing → certificate-manager option 8")
				if option8 != both {
					t.Errorf("%s: option 8 advised: %v, want %v", n.PNID, option8, both)
				}
			}
			if tt.want == 0 && !strings.Contains(res.Stderr, "[PASS] no certificate has expired or expires within 60 days on vcsa1.lab.test, vcsa2.lab.test") {
				t.Errorf("no PASS line:\n%s", res.Stderr)
			}
			if s := fmt.Sprintf("Summary: %d FAIL, 0 WARN on %d nodes.", len(want), len(d.Nodes)); !strings.Contains(res.Stderr, s) {
				t.Errorf("no %q:\n%s", s, res.Stderr)
			}
			if got := checksFailedAsserts(res.Stderr); !slices.Equal(got, tt.asserts) {
				t.Errorf("failed asserts %v, want %v", got, tt.asserts)
			}
		})
	}
}

// checksFailedAsserts lists the steps a run reported as assertion failed.
func checksFailedAsserts(out string) []string {
	var got []string
	for _, m := range regexp.MustCompile(`(?m)^\[\d+/\d+\] read (\w+): assertion failed: `).FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	return got
}

// vecsExpiryIssue gives node n's VECS entry store/alias a new certificate,
// signed by the lab's VMCA root, valid until days and a half from the
// lab's now (half a day away from a whole number of days, so that the days
// left do not depend on when the run reads them).
func vecsExpiryIssue(t *testing.T, d *model.Domain, n *model.Node, store, alias string, days int) {
	t.Helper()
	key, err := d.Keys.Next()
	if err != nil {
		t.Fatal(err)
	}
	now := d.Now()
	c, err := d.VMCARoot().Issue(pki.Request{CommonName: alias + "-" + n.MachineID, DNSNames: []string{n.PNID},
		NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(0, 0, days).Add(12 * time.Hour), Usage: pki.UsageServer | pki.UsageClient, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	e := model.Entry{Alias: alias, Type: model.PrivateKey, Certs: [][]byte{c.DER, d.VMCARoot().DER}, Key: c.KeyPKCS8}
	if _, err = n.VECS.Get(store, alias); err == nil {
		err = n.VECS.Replace(store, e)
	} else {
		err = n.VECS.Create(store, e)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestVecsExpiryThresholds checks the thresholds and BACKUP_STORE on a
// healthy lab whose certificates the test replaces through the model:
// fewer than warn_days left warns, fewer than threshold_days fails, and an
// expired backup only warns.
func TestVecsExpiryThresholds(t *testing.T) {
	r := startLab(t, "healthy")
	d := r.Lab.Model()
	n1, n2 := d.Nodes[0], d.Nodes[1]
	vecsExpiryIssue(t, d, n2, model.StoreBackup, model.BackupAlias(model.AliasMachineCert), -20)
	vecsExpiryIssue(t, d, n2, model.StoreVpxd, model.StoreVpxd, 45)

	res := checksRunUnchanged(t, r, 0, "vecs-expiry")
	want := []string{
		"[WARN] " + n2.PNID + " BACKUP_STORE/bkp___MACHINE_CERT",
		"[WARN] " + n2.PNID + " vpxd/vpxd",
	}
	if got := vecsExpiryFindings(res.Stderr); !slices.Equal(got, want) {
		t.Fatalf("findings %q, want %q:\n%s", got, want, res.Stderr)
	}
	if !slices.Equal(vecsExpiryExpected(t, d, 30, 60), want) {
		t.Fatal("the model disagrees with the test's setup")
	}
	for _, s := range []string{"BACKUP_STORE/bkp___MACHINE_CERT: expired on ", "an alarm only, KB 82560", "vpxd/vpxd: expires in 45 days", "Summary: 0 FAIL, 2 WARN on 2 nodes."} {
		if !strings.Contains(res.Stderr, s) {
			t.Errorf("the report does not say %q:\n%s", s, res.Stderr)
		}
	}

	// The same lab with threshold_days 50 fails the vpxd certificate.
	res = checksRunUnchanged(t, r, 6, "vecs-expiry", "-p", "threshold_days=50")
	if got, want := vecsExpiryFindings(res.Stderr), vecsExpiryExpected(t, d, 50, 60); !slices.Equal(got, want) || !slices.Contains(got, "[FAIL] "+n2.PNID+" vpxd/vpxd") {
		t.Fatalf("findings with threshold_days=50: %q, want %q", got, want)
	}
	if !strings.Contains(res.Stderr, "step none_expiring: assertion failed: certificates expiring within 50 days: "+n2.PNID+" vpxd/vpxd (45 days left)") {
		t.Errorf("none_expiring did not name vpxd:\n%s", res.Stderr)
	}

	// A Machine SSL certificate with 10 days left fails with the defaults.
	vecsExpiryIssue(t, d, n1, model.StoreMachineSSL, model.AliasMachineCert, 10)
	res = checksRunUnchanged(t, r, 6, "vecs-expiry")
	if got, want := vecsExpiryFindings(res.Stderr), vecsExpiryExpected(t, d, 30, 60); !slices.Equal(got, want) || !slices.Contains(got, "[FAIL] "+n1.PNID+" MACHINE_SSL_CERT/__MACHINE_CERT") {
		t.Fatalf("findings: %q, want %q", got, want)
	}
	if strings.Contains(res.Stderr, "none_expired: assertion failed") {
		t.Errorf("none_expired failed though nothing outside BACKUP_STORE has expired:\n%s", res.Stderr)
	}

	// Thresholds the wrong way round are refused before anything runs.
	res = r.mustRun(3, nil, "run", "vecs-expiry", "-p", "threshold_days=90")
	if !strings.Contains(res.Stderr, "warn_days at least threshold_days") {
		t.Errorf("guard message:\n%s", res.Stderr)
	}
}

// preUpgradeOnlineProfile rewrites the lab's profile without the nodes the
// scenario took off the network, as an operator who knows a node is down
// might: its partners still report it.
func preUpgradeOnlineProfile(t *testing.T, r *labRun) {
	t.Helper()
	p, err := target.LoadProfile(r.Profile)
	if err != nil {
		t.Fatal(err)
	}
	online := map[string]bool{}
	for _, n := range r.Lab.Nodes() {
		online[n.PNID] = n.Online
	}
	p.Nodes = slices.DeleteFunc(p.Nodes, func(n target.NodeProfile) bool { return !online[n.PNID] })
	if err := p.Write(r.Profile); err != nil {
		t.Fatal(err)
	}
}

// preUpgradeKey is a report line's status, check and subject, such as
// "FAIL replication vcsa1.lab.test → vcsa2.lab.test" or "PASS STS".
func preUpgradeKey(line string) string {
	m := checksFinding.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	rest := m[2]
	for _, check := range []string{"node", "replication agreements", "replication", "vmdir state", "STS signing certificate", "STS trusted chains", "VECS", "sslTrust", "services"} {
		if !strings.HasPrefix(rest, check+" ") && !strings.HasPrefix(rest, check+":") {
			continue
		}
		subject := strings.TrimPrefix(rest, check)
		subject, _, _ = strings.Cut(subject, ":")
		subject, _, _ = strings.Cut(subject, " (")
		return strings.TrimSpace(m[1] + " " + check + " " + strings.TrimSpace(subject))
	}
	return m[1] + " ?" + rest
}

// preUpgradeExpected computes from the model the report keys
// pre-upgrade-checks must print for the nodes of the target profile: one
// per replication direction seen from each node that answers, its vmdir
// state, STS, VECS, sslTrust and services, with the status the lab's state
// calls for; a node of the profile that is off the network fails as a
// node, and a partner missing from the profile is a warning.
func preUpgradeExpected(t *testing.T, r *labRun) []string {
	t.Helper()
	d := r.Lab.Model()
	status := func(fail bool) string {
		if fail {
			return "FAIL"
		}
		return "PASS"
	}
	profile, err := target.LoadProfile(r.Profile)
	if err != nil {
		t.Fatal(err)
	}
	inTarget := func(pnid string) bool {
		return slices.ContainsFunc(profile.Nodes, func(n target.NodeProfile) bool { return n.PNID == pnid })
	}
	var want []string
	var nodes []*model.Node // in the profile and on the network
	for _, n := range d.Nodes {
		switch {
		case !inTarget(n.PNID):
		case !n.Online():
			want = append(want, "FAIL node "+n.PNID)
		default:
			nodes = append(nodes, n)
		}
	}
	ras, err := d.Agreements()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		for _, p := range d.Nodes {
			if p == n {
				continue
			}
			// vdcrepadmin on n: is p available, and how far has p (its
			// agreement with n) consumed n's changes?
			behind := int64(-1)
			for _, ra := range ras {
				if ra.Server == p.PNID && ra.Partner == n.PNID {
					behind = d.Dir.HighestUSN() - ra.LastLocalUSN
				}
			}
			want = append(want, status(!p.Online() || behind != 0)+" replication "+n.PNID+" → "+p.PNID)
			if !inTarget(p.PNID) {
				want = append(want, "WARN replication "+p.PNID+" → "+n.PNID)
			}
		}
		want = append(want, "PASS vmdir state "+n.PNID)
	}
	want = append(want, "PASS replication agreements")

	cred, err := d.ActiveSTS()
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, status(d.Now().After(cred.Leaf().NotAfter))+" STS signing certificate")

	for _, n := range nodes {
		fail := false
		for _, e := range checksVECS(t, d, []*model.Node{n}) {
			fail = fail || e.store != model.StoreBackup && (e.expired || e.days < 30)
		}
		want = append(want, status(fail)+" VECS "+n.PNID)
	}

	regs, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range r.Lab.Nodes() {
		if !inTarget(info.PNID) || !info.Online {
			continue
		}
		served := checksServed(t, info.HTTPSAddr)
		stale := false
		for _, reg := range regs {
			for _, ep := range reg.Endpoints {
				u, err := url.Parse(ep.URL)
				if err != nil || !strings.EqualFold(u.Hostname(), info.PNID) || len(ep.SslTrust) == 0 {
					continue
				}
				der, err := base64.StdEncoding.DecodeString(ep.SslTrust[0])
				if err != nil {
					t.Fatal(err)
				}
				stale = stale || !bytes.Equal(der, served)
			}
		}
		want = append(want, status(stale)+" sslTrust "+info.PNID)
	}

	for _, n := range nodes {
		down := false
		for _, s := range services.Required[string(n.Type)] {
			ok, err := n.Services.Running(s)
			down = down || err != nil || !ok
		}
		want = append(want, status(down)+" services "+n.PNID)
	}
	sort.Strings(want)
	return want
}

// checksServed returns the DER certificate the TLS server at addr serves.
func checksServed(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the lab's own server, read only for its certificate
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// preUpgradeGot returns the keys of a run's report lines, [INFO] lines
// left out, sorted.
func preUpgradeGot(out string) []string {
	var got []string
	for _, l := range checksLines(out) {
		if k := preUpgradeKey(l); !strings.HasPrefix(k, "INFO") {
			got = append(got, k)
		}
	}
	sort.Strings(got)
	return got
}

func TestPreUpgradeChecks(t *testing.T) {
	tests := []struct {
		scenario string
		args     []string
		// online leaves the nodes that are off the network out of the
		// profile.
		online bool
		want   int
		// says are what the FAIL lines must say (the reference's meaning).
		says []string
		// asserts are the assert steps that must fail.
		asserts []string
		// named returns what the FAIL lines must name, from the lab's state.
		named func(t *testing.T, r *labRun) []string
	}{
		{scenario: "healthy", want: 0},
		{scenario: "replication-lag", args: []string{"-p", "recheck_after=1s"}, want: 6,
			says: []string{fmt.Sprintf("[FAIL] replication vcsa1.lab.test → vcsa2.lab.test (vdcrepadmin on vcsa1.lab.test): vcsa2.lab.test is %d changes behind vcsa1.lab.test", model.LagChanges),
				fmt.Sprintf("not updating: still %d after 1s", model.LagChanges), "read-only or null", "restored alone from a snapshot or backup (USN rollback)", "powered off"},
			asserts: []string{"replication_ok"}},
		{scenario: "replication-lag", args: []string{"-p", "recheck_after=0s"}, want: 6,
			says:    []string{fmt.Sprintf("vcsa2.lab.test is %d changes behind vcsa1.lab.test (my last change number", model.LagChanges)},
			asserts: []string{"replication_ok"}},
		{scenario: "partner-down", want: 6,
			says: []string{"[FAIL] replication vcsa1.lab.test → vcsa2.lab.test (vdcrepadmin on vcsa1.lab.test): Host available: No: vcsa2.lab.test cannot be reached from vcsa1.lab.test over the network",
				"[FAIL] node vcsa2.lab.test: cannot be reached ("},
			asserts: []string{"nodes_reachable", "replication_ok"}},
		{scenario: "partner-down", online: true, want: 6,
			says: []string{"[FAIL] replication vcsa1.lab.test → vcsa2.lab.test (vdcrepadmin on vcsa1.lab.test): Host available: No",
				"[WARN] replication vcsa2.lab.test → vcsa1.lab.test: not checked: vcsa2.lab.test replicates with vcsa1.lab.test but is not in the target profile"},
			asserts: []string{"replication_ok"}},
		{scenario: "sts-expired", want: 6,
			says:    []string{"[FAIL] STS signing certificate: the active one, TenantCredential-1 (", "run sts-regenerate (KB 76719)", "not running: vmware-stsd"},
			asserts: []string{"sts_valid", "services_running"},
			named: func(t *testing.T, r *labRun) []string {
				cred, err := r.Lab.Model().ActiveSTS()
				if err != nil {
					t.Fatal(err)
				}
				return []string{fmt.Sprintf("TenantCredential-%d (%s), expired on %s", cred.N, checksSHA1(cred.Leaf().Raw), cred.Leaf().NotAfter.UTC().Format("2006-01-02"))}
			}},
		{scenario: "stale-ssltrust", want: 6,
			says:    []string{"[FAIL] sslTrust vcsa1.lab.test: port 443 serves ", "the Lookup Service sslTrust is out of date (KB 2121701)"},
			asserts: []string{"ssltrust_in_sync"},
			named:   preUpgradeStaleTrust},
	}
	for _, tt := range tests {
		name := tt.scenario + strings.Join(tt.args, "")
		if tt.online {
			name += "-profile-without-it"
		}
		t.Run(name, func(t *testing.T) {
			r := startLab(t, tt.scenario)
			if tt.online {
				preUpgradeOnlineProfile(t, r)
			}
			dry := r.dryRunChangesNothing("pre-upgrade-checks", tt.want, tt.args...)
			res := checksRunUnchanged(t, r, tt.want, append([]string{"pre-upgrade-checks"}, tt.args...)...)
			checksSameReport(t, dry, res)

			want := preUpgradeExpected(t, r)
			if got := preUpgradeGot(res.Stderr); !slices.Equal(got, want) {
				t.Fatalf("report:\n%s\nwant (from the lab's state):\n%s\noutput:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), res.Stderr)
			}
			says := tt.says
			if tt.named != nil {
				says = append(says, tt.named(t, r)...)
			}
			for _, s := range says {
				if !strings.Contains(res.Stderr, s) {
					t.Errorf("the report does not say %q:\n%s", s, res.Stderr)
				}
			}
			fails := 0
			for _, k := range want {
				if strings.HasPrefix(k, "FAIL") {
					fails++
				}
			}
			if !strings.Contains(res.Stderr, fmt.Sprintf(" WARN, %d FAIL. ", fails)) {
				t.Errorf("no summary of %d FAIL:\n%s", fails, res.Stderr)
			}
			if got := checksFailedAsserts(res.Stderr); !slices.Equal(got, tt.asserts) {
				t.Errorf("failed asserts %v, want %v", got, tt.asserts)
			}
			if tt.want == 0 && !strings.Contains(res.Stderr, "The domain is ready for the upgrade") {
				t.Errorf("no verdict:\n%s", res.Stderr)
			}
		})
	}
}

// preUpgradeStaleTrust returns, for each node whose registrations trust
// a certificate other than the one its port 443 serves, "port 443 serves
// <served> but <n> registrations trust <stale>" per stale certificate,
// from the lab's state.
func preUpgradeStaleTrust(t *testing.T, r *labRun) []string {
	t.Helper()
	regs, err := r.Lab.Model().Registrations()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, info := range r.Lab.Nodes() {
		served := checksSHA1(checksServed(t, info.HTTPSAddr))
		stale := map[string]map[string]bool{} // thumbprint → services
		for _, reg := range regs {
			for _, ep := range reg.Endpoints {
				u, err := url.Parse(ep.URL)
				if err != nil || !strings.EqualFold(u.Hostname(), info.PNID) || len(ep.SslTrust) == 0 {
					continue
				}
				der, err := base64.StdEncoding.DecodeString(ep.SslTrust[0])
				if err != nil {
					t.Fatal(err)
				}
				if tp := checksSHA1(der); tp != served {
					if stale[tp] == nil {
						stale[tp] = map[string]bool{}
					}
					stale[tp][reg.ServiceID] = true
				}
			}
		}
		for tp, svcs := range stale {
			trust := "registrations trust"
			if len(svcs) == 1 {
				trust = "registration trusts"
			}
			out = append(out, fmt.Sprintf("[FAIL] sslTrust %s: port 443 serves %s but %d %s %s", info.PNID, served, len(svcs), trust, tp))
		}
	}
	if len(out) == 0 {
		t.Fatal("the lab has no stale sslTrust")
	}
	return out
}

// TestPreUpgradeChecksPassword checks that a wrong SSO password in the
// target profile stops the run with vdcrepadmin's refusal, and that the
// password is never printed.
func TestPreUpgradeChecksPassword(t *testing.T) {
	r := startLab(t, "healthy")
	p, err := target.LoadProfile(r.Profile)
	if err != nil {
		t.Fatal(err)
	}
	wrong := "not-the-" + r.Lab.Model().AdminPassword
	p.SSO.PasswordFile = ""
	p.SSO.PasswordEnv = "CHECKS_TEST_SSO_PASSWORD"
	if err := p.Write(r.Profile); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHECKS_TEST_SSO_PASSWORD", wrong)
	res := checksRunUnchanged(t, r, 1, "pre-upgrade-checks")
	if !strings.Contains(res.Stderr, "vdcrepadmin refused the SSO password") {
		t.Errorf("no refusal:\n%s", res.Stderr)
	}
	if strings.Contains(res.Stdout+res.Stderr, wrong) {
		t.Errorf("the password was printed:\n%s", res.Stderr)
	}
}
