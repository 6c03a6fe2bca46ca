package lookup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	ltypes "github.com/vmware/govmomi/lookup/types"

	"runbook/engine"
	"runbook/lab/model"
	"runbook/steps/conn"
)

// expectedUpdate computes, from the lab's registrations, what
// ls_update_certs.py would change: the first trust of each of the first ten
// endpoints, compared with old.
func expectedUpdate(regs map[string]model.Registration, old []byte, urlContains string) map[string][]int {
	want := map[string][]int{}
	for id, r := range regs {
		for i, e := range r.Endpoints {
			if i < 10 && len(e.SslTrust) > 0 && e.SslTrust[0] == trustOf(old) &&
				strings.Contains(strings.ToLower(e.URL), strings.ToLower(urlContains)) {
				want[id] = append(want[id], i)
			}
		}
	}
	return want
}

// checkUpdated compares the registrations after an update with those
// before: exactly the endpoints in changed now trust newDER; everything
// else is as it was.
func checkUpdated(t *testing.T, before, after map[string]model.Registration, changed map[string][]int, newDER []byte) {
	t.Helper()
	if len(after) != len(before) {
		t.Errorf("%d registrations after, %d before", len(after), len(before))
	}
	for id, b := range before {
		a, ok := after[id]
		if !ok {
			t.Errorf("registration %s is gone", id)
			continue
		}
		want := b
		want.Endpoints = slices.Clone(b.Endpoints)
		for _, i := range changed[id] {
			e := want.Endpoints[i]
			e.SslTrust = append([]string{trustOf(newDER)}, e.SslTrust[1:]...)
			want.Endpoints[i] = e
		}
		if !reflect.DeepEqual(a, want) {
			t.Errorf("registration %s:\n got %s\nwant %s", id, brief(a), brief(want))
		}
	}
}

// brief prints a registration with each trust as a short thumbprint.
func brief(r model.Registration) string {
	r.Endpoints = slices.Clone(r.Endpoints)
	for i, e := range r.Endpoints {
		short := make([]string, len(e.SslTrust))
		for j, tr := range e.SslTrust {
			der, err := trustDER(tr)
			if err != nil {
				short[j] = "(bad)"
				continue
			}
			short[j] = sha1Colon(der)[:11]
		}
		r.Endpoints[i].SslTrust = short
	}
	return fmt.Sprintf("%+v", r)
}

// TestUpdateStale repairs stale-ssltrust as KB 2121701 does and checks the
// step's whole contract on the lab's state: the plan changes nothing and
// lists what Apply then does, Check tells before from after, Apply twice is
// harmless, and the backup restores the old state.
func TestUpdateStale(t *testing.T) {
	ctx := context.Background()
	l, env, out := testLab(t, "stale-ssltrust")
	d := l.Model()
	old, newDER := backupDER(t, d, 0), machineDER(t, d, 0)
	p := &updateParams{OldThumbprint: sha1Colon(old), NewCert: pemOf(newDER)}

	before := registrations(t, d)
	want := expectedUpdate(before, old, "")
	endpoints := 0
	for _, eps := range want {
		endpoints += len(eps)
	}
	legacyID := ""
	for id, r := range before {
		if r.Legacy {
			legacyID = id
		}
	}
	if _, ok := want[legacyID]; !ok || len(want) < 2 {
		t.Fatalf("the scenario does not have stale legacy and 6.x registrations: %v", want)
	}

	snap := l.Snapshot()
	plan, err := planUpdate(ctx, env, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Fatal("Plan changed the lab")
	}
	if plan.InPlace || len(plan.Changes) != endpoints {
		t.Fatalf("plan: in place %v, %d changes; want %d endpoints of %d services", plan.InPlace, len(plan.Changes), endpoints, len(want))
	}
	wantSummary := fmt.Sprintf("re-point %d endpoint(s) of %d service(s) from %s to %s", endpoints, len(want), sha1Colon(old), sha1Colon(newDER))
	if plan.Summary != wantSummary {
		t.Errorf("summary %q, want %q", plan.Summary, wantSummary)
	}
	facts := plan.Facts.(updateFacts)
	for i, c := range plan.Changes {
		m := facts.Matched[i]
		r := before[m.Service]
		url := r.Endpoints[m.Endpoint-1].URL
		if c.Action != "update" || c.Object != fmt.Sprintf("%s endpoint %d %s", m.Service, m.Endpoint, url) ||
			!strings.HasPrefix(c.Before, "sslTrust "+sha1Colon(old)+" (") || !strings.HasPrefix(c.After, "sslTrust "+sha1Colon(newDER)+" (") ||
			m.SHA1 != sha1Colon(old) || !slices.Contains(want[m.Service], m.Endpoint-1) {
			t.Errorf("change %d = %+v (fact %+v)", i, c, m)
		}
	}

	v, err := checkUpdate(ctx, env, p)
	if err != nil || v.State != engine.NotApplied {
		t.Fatalf("Check before Apply = %v %q, %v; want not applied", v.State, v.Detail, err)
	}

	files, err := backupUpdate(ctx, env, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0] != filepath.Join(env.BackupDir, BackupFile) {
		t.Fatalf("backup files %v", files)
	}
	var saved []ltypes.LookupServiceRegistrationInfo
	if data, err := os.ReadFile(files[0]); err != nil || json.Unmarshal(data, &saved) != nil {
		t.Fatalf("read backup: %v", err)
	}
	if len(saved) != len(want) {
		t.Errorf("backup holds %d registrations, want the %d to change", len(saved), len(want))
	}
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Fatal("Backup changed the lab")
	}

	res, err := applyUpdate(ctx, env, p)
	if err != nil {
		t.Fatal(err)
	}
	after := registrations(t, d)
	checkUpdated(t, before, after, want, newDER)
	if res.Updated != len(want) || len(res.Services) != len(want) || res.Endpoints != endpoints {
		t.Errorf("outputs %+v; want %d services, %d endpoints", res, len(want), endpoints)
	}
	for _, id := range res.Services {
		if _, ok := want[id]; !ok {
			t.Errorf("updated %s, which did not trust the old certificate", id)
		}
	}
	lines := strings.Split(strings.TrimSuffix(res.Log, "\n"), "\n")
	if last := lines[len(lines)-1]; last != fmt.Sprintf("Updated %d service(s)", len(want)) {
		t.Errorf("last log line %q", last)
	}
	for id := range before {
		_, changed := want[id]
		hasGet := slices.Contains(lines, "Get service "+id)
		hasUpdate := slices.Contains(lines, "Update service "+id)
		hasDont := slices.Contains(lines, "Don't update service "+id)
		if changed != hasGet || changed != hasUpdate || changed == hasDont {
			t.Errorf("log for %s (changed %v): get %v, update %v, don't %v", id, changed, hasGet, hasUpdate, hasDont)
		}
	}
	if !strings.Contains(out.String(), fmt.Sprintf("Updated %d service(s)", len(want))) {
		t.Errorf("operator output %q", out)
	}

	// What 443 serves is what every re-pointed endpoint now trusts.
	n, err := conn.Node(env, "")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := n.DialTLS(ctx, 0)
	if err != nil || !bytes.Equal(chain[0].Raw, newDER) {
		t.Fatalf("node 1 serves another certificate than the new one (%v)", err)
	}

	v, err = checkUpdate(ctx, env, p)
	if err != nil || v.State != engine.Applied {
		t.Fatalf("Check after Apply = %v %q, %v; want applied", v.State, v.Detail, err)
	}
	plan, err = planUpdate(ctx, env, p)
	if err != nil || !plan.InPlace || len(plan.Changes) != 0 {
		t.Fatalf("plan after Apply = %+v, %v; want in place", plan, err)
	}

	snap = l.Snapshot()
	res, err = applyUpdate(ctx, env, p)
	if err != nil || res.Updated != 0 || len(res.Services) != 0 {
		t.Fatalf("second Apply = %+v, %v", res, err)
	}
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Error("a second Apply changed the lab")
	}

	// The backup puts every registration back as it was.
	_, lc, err := client(ctx, env, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := Restore(ctx, lc, files[0]); err != nil {
		t.Fatal(err)
	}
	if got := registrations(t, d); !reflect.DeepEqual(got, before) {
		t.Error("Restore did not bring the registrations back")
	}
	if v, err := checkUpdate(ctx, env, p); err != nil || v.State != engine.NotApplied {
		t.Errorf("Check after Restore = %v, %v", v.State, err)
	}
}

// TestUpdateResume interrupts an update (a failed Set, then services
// repaired behind its back) and checks that Apply finishes the rest.
func TestUpdateResume(t *testing.T) {
	ctx := context.Background()
	l, env, _ := testLab(t, "stale-ssltrust")
	d := l.Model()
	old, newDER := backupDER(t, d, 0), machineDER(t, d, 0)
	p := &updateParams{OldThumbprint: sha1Colon(old), NewCert: pemOf(newDER)}
	before := registrations(t, d)
	want := expectedUpdate(before, old, "")

	d.Faults.FailNextWrite(model.ProtoHTTPS)
	res, err := applyUpdate(ctx, env, p)
	if err == nil || res.Updated >= len(want) {
		t.Fatalf("Apply with a failing Set = %+v, %v; want an error", res, err)
	}
	if !strings.HasSuffix(res.Log, fmt.Sprintf("Updated %d service(s)\n", res.Updated)) {
		t.Errorf("log of the failed Apply: %q", res.Log)
	}
	if v, err := checkUpdate(ctx, env, p); err != nil || v.State != engine.NotApplied {
		t.Fatalf("Check = %v, %v", v.State, err)
	}
	// What the failed Apply did is done right (its other services, set
	// at the same time, may have gone through).
	done := slices.Clone(res.Services)
	left := expectedUpdate(registrations(t, d), old, "")
	for _, id := range done {
		if _, ok := left[id]; ok {
			t.Errorf("Apply reported %s updated, but it still trusts the old certificate", id)
		}
	}

	// Repair two more services as an interrupted Apply would have.
	for id := range left {
		if len(done) == res.Updated+2 {
			break
		}
		r := before[id]
		r.Endpoints = slices.Clone(r.Endpoints)
		for _, i := range want[id] {
			r.Endpoints[i].SslTrust = []string{trustOf(newDER)}
		}
		if err := d.SaveRegistration(r); err != nil {
			t.Fatal(err)
		}
		done = append(done, id)
	}
	v, err := checkUpdate(ctx, env, p)
	if err != nil || v.State != engine.NotApplied || !strings.Contains(v.Detail, "still trust") {
		t.Fatalf("Check half way = %v %q, %v", v.State, v.Detail, err)
	}
	res, err = applyUpdate(ctx, env, p)
	if err != nil || res.Updated != len(want)-len(done) {
		t.Fatalf("resumed Apply = %+v, %v; want %d services", res, err, len(want)-len(done))
	}
	for _, id := range done {
		if slices.Contains(res.Services, id) || !strings.Contains(res.Log, "Don't update service "+id+"\n") {
			t.Errorf("resumed Apply set %s again", id)
		}
	}
	checkUpdated(t, before, registrations(t, d), want, newDER)
	if v, err := checkUpdate(ctx, env, p); err != nil || v.State != engine.Applied {
		t.Errorf("Check after = %v, %v", v.State, err)
	}
}

// TestUpdateRules checks the details of ls_update_certs.py's algorithm on
// a registration made for it: only the first trust of each of the first
// ten endpoints counts, and url_contains narrows further.
func TestUpdateRules(t *testing.T) {
	ctx := context.Background()
	l, env, _ := testLab(t, "healthy")
	d := l.Model()
	old, other, newDER := selfSigned(t, "old.example.com"), selfSigned(t, "other.example.com"), machineDER(t, d, 0)
	reg := model.Registration{
		ServiceID: "5e1ec7ed-0000-4000-8000-000000000001", Product: "com.example", Type: "rules",
		OwnerID: "rules@vsphere.local", Version: "1.0", SiteID: d.Site,
		Attributes: map[string]string{"com.example.attr": "kept"},
	}
	for i := range 12 {
		e := model.Endpoint{URL: fmt.Sprintf("https://rules%d.example.com/sdk", i), Type: "com.example.sdk", Protocol: "vmomi",
			SslTrust: []string{trustOf(old)}}
		switch i {
		case 1: // old as a second trust only
			e.SslTrust = []string{trustOf(other), trustOf(old)}
		case 2: // old first, then another
			e.SslTrust = []string{trustOf(old), trustOf(other)}
			e.Attributes = map[string]string{"cis.common.ep.localurl": "http://localhost:1/sdk"}
		case 3:
			e.SslTrust = nil
		}
		reg.Endpoints = append(reg.Endpoints, e)
	}
	if err := d.SaveRegistration(reg); err != nil {
		t.Fatal(err)
	}
	before := registrations(t, d)

	tests := []struct {
		name        string
		urlContains string
		want        []int
	}{
		{"first ten endpoints, first trust", "", []int{0, 2, 4, 5, 6, 7, 8, 9}},
		{"url contains", "RULES2.example", []int{2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &updateParams{OldThumbprint: sha1Colon(old), NewCert: trustOf(newDER), URLContains: tc.urlContains}
			plan, err := planUpdate(ctx, env, p)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range plan.Facts.(updateFacts).Matched {
				got = append(got, m.Endpoint-1)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("plan matches endpoints %v, want %v", got, tc.want)
			}
			if want := expectedUpdate(before, old, tc.urlContains); !slices.Equal(want[reg.ServiceID], tc.want) {
				t.Fatalf("test expectation %v disagrees with the reference rule %v", tc.want, want[reg.ServiceID])
			}
		})
	}

	p := &updateParams{OldThumbprint: sha1Colon(old), NewCert: trustOf(newDER), URLContains: "rules2.example.com"}
	res, err := applyUpdate(ctx, env, p)
	if err != nil || res.Updated != 1 || res.Endpoints != 1 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	checkUpdated(t, before, registrations(t, d), map[string][]int{reg.ServiceID: {2}}, newDER)
	if v, err := checkUpdate(ctx, env, p); err != nil || v.State != engine.Applied {
		t.Errorf("Check within url_contains = %v %q, %v; want applied", v.State, v.Detail, err)
	}
	p.URLContains = ""
	if v, err := checkUpdate(ctx, env, p); err != nil || v.State != engine.NotApplied {
		t.Errorf("Check of the whole site = %v %q, %v; want not applied", v.State, v.Detail, err)
	}
}

// TestUpdateThumbprintForms gives the old thumbprint in the forms people
// paste it, and checks they all plan the same changes.
func TestUpdateThumbprintForms(t *testing.T) {
	ctx := context.Background()
	l, env, _ := testLab(t, "stale-ssltrust")
	d := l.Model()
	old, newDER := backupDER(t, d, 0), machineDER(t, d, 0)
	colon := sha1Colon(old)
	sum := sha256.Sum256(old)
	forms := map[string]string{
		"openssl":            colon,
		"lower case":         strings.ToLower(colon),
		"windows viewer":     strings.ReplaceAll(colon, ":", " "),
		"plain hex":          strings.ReplaceAll(colon, ":", ""),
		"hidden mark":        "\u200e" + strings.ReplaceAll(colon, ":", " "),
		"surrounding spaces": "  " + colon + "\n",
		"sha-256":            hex.EncodeToString(sum[:]),
	}
	var first []engine.Change
	for name, form := range forms {
		plan, err := planUpdate(ctx, env, &updateParams{OldThumbprint: form, NewCert: pemOf(newDER)})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if first == nil {
			first = plan.Changes
		}
		if len(plan.Changes) == 0 || !reflect.DeepEqual(plan.Changes, first) {
			t.Errorf("%s: %d changes, differing from the others", name, len(plan.Changes))
		}
	}
}

// TestUpdateRefuses checks the errors: bad params, and a thumbprint that
// no endpoint trusts (with neither the new certificate trusted).
func TestUpdateRefuses(t *testing.T) {
	ctx := context.Background()
	l, env, _ := testLab(t, "stale-ssltrust")
	d := l.Model()
	old, newDER := backupDER(t, d, 0), machineDER(t, d, 0)
	stranger := selfSigned(t, "stranger.example.com")
	tests := []struct {
		name string
		p    updateParams
		want string
	}{
		{"bad thumbprint", updateParams{OldThumbprint: "AB:CD:EF", NewCert: pemOf(newDER)}, "old_thumbprint: "},
		{"not hex", updateParams{OldThumbprint: strings.Repeat("ZZ:", 19) + "ZZ", NewCert: pemOf(newDER)}, "old_thumbprint: "},
		{"bad cert", updateParams{OldThumbprint: sha1Colon(old), NewCert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "new_cert: "},
		{"no cert", updateParams{OldThumbprint: sha1Colon(old), NewCert: "hello"}, "new_cert: "},
		{"same cert", updateParams{OldThumbprint: sha1Colon(old), NewCert: pemOf(old)}, "nothing to re-point"},
		{"unknown thumbprint", updateParams{OldThumbprint: sha1Colon(stranger), NewCert: pemOf(newDER)},
			"no endpoint trusts the certificate with thumbprint " + sha1Colon(stranger)},
	}
	snap := l.Snapshot()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := planUpdate(ctx, env, &tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Plan error %v, want %q", err, tc.want)
			}
			if _, err := applyUpdate(ctx, env, &tc.p); err == nil && !strings.HasPrefix(tc.name, "unknown") {
				t.Error("Apply accepted the params")
			}
		})
	}
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Error("refused updates changed the lab")
	}

	// The error of an unknown thumbprint names what the endpoints trust.
	_, err := planUpdate(ctx, env, &updateParams{OldThumbprint: sha1Colon(stranger), NewCert: pemOf(newDER)})
	for _, der := range [][]byte{old, machineDER(t, d, 1)} {
		if err == nil || !strings.Contains(err.Error(), sha1Colon(der)) {
			t.Errorf("error %v does not list %s", err, sha1Colon(der))
		}
	}
	v, err := checkUpdate(ctx, env, &updateParams{OldThumbprint: sha1Colon(stranger), NewCert: pemOf(newDER)})
	if err != nil || v.State != engine.Unknown {
		t.Errorf("Check of an unknown thumbprint = %v %q, %v; want unknown", v.State, v.Detail, err)
	}
	if _, err := planUpdate(ctx, &engine.Env{}, &updateParams{OldThumbprint: sha1Colon(old), NewCert: pemOf(newDER)}); err == nil {
		t.Error("Plan without a target succeeded")
	}
}

// TestRestoreErrors checks that Restore reports unreadable backups.
func TestRestoreErrors(t *testing.T) {
	ctx := context.Background()
	_, env, _ := testLab(t, "healthy")
	_, lc, err := client(ctx, env, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	noID := filepath.Join(dir, "noid.json")
	unknown := filepath.Join(dir, "unknown.json")
	for path, data := range map[string]string{
		bad:     "{",
		noID:    `[{"ServiceVersion": "1.0"}]`,
		unknown: `[{"ServiceId": "no-such-service", "ServiceVersion": "1.0"}]`,
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{filepath.Join(dir, "missing.json"), bad, noID, unknown} {
		if err := Restore(ctx, lc, path); err == nil {
			t.Errorf("Restore(%s) succeeded", filepath.Base(path))
		}
	}
}

// TestRepoint covers the service that changed between Apply's list and its
// get, and the service that is gone.
func TestRepoint(t *testing.T) {
	ctx := context.Background()
	l, env, _ := testLab(t, "stale-ssltrust")
	d := l.Model()
	j, err := newJob(&updateParams{OldThumbprint: sha1Colon(backupDER(t, d, 0)), NewCert: pemOf(machineDER(t, d, 0))})
	if err != nil {
		t.Fatal(err)
	}
	_, lc, err := client(ctx, env, "")
	if err != nil {
		t.Fatal(err)
	}
	snap := l.Snapshot()
	for id, r := range registrations(t, d) {
		if strings.Contains(r.Endpoints[0].URL, d.Nodes[1].PNID) {
			if changed, eps, err := j.repoint(ctx, lc, id); changed || eps != 0 || err != nil {
				t.Errorf("repoint(%s) = %v, %d, %v; want nothing to do", id, changed, eps, err)
			}
			break
		}
	}
	if changed, _, err := j.repoint(ctx, lc, "no-such-service"); changed || err != nil {
		t.Errorf("repoint of a service unregistered since the list = %v, %v; want nothing to do", changed, err)
	}
	if _, err := get(ctx, lc, "no-such-service"); !errors.Is(err, errNoService) {
		t.Errorf("get of a missing service: %v", err)
	}
	d.Faults.DropNext(model.ProtoHTTPS)
	if _, _, err := j.repoint(ctx, lc, "no-such-service"); err == nil || errors.Is(err, errNoService) {
		t.Errorf("repoint with the connection dropped = %v; want an error", err)
	}
	if !bytes.Equal(l.Snapshot(), snap) {
		t.Error("repoint changed a service it had nothing to do for")
	}
}
