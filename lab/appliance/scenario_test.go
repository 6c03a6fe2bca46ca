package appliance

import (
	"strings"
	"testing"

	"runbook/lab/model"
	"runbook/lab/pki"
)

// lstoolTrusts parses `lstool.py list` output into the SSL trust values
// listed per endpoint URL.
func lstoolTrusts(t *testing.T, out string) map[string][]string {
	t.Helper()
	trusts := map[string][]string{}
	var url string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "URL: "); ok {
			url = v
		}
		if v, ok := strings.CutPrefix(l, "SSL trust: "); ok {
			if url == "" {
				t.Fatalf("SSL trust before any URL in:\n%s", out)
			}
			trusts[url] = append(trusts[url], v)
		}
	}
	return trusts
}

// getcertTrust returns a VECS entry's certificate, fetched with vecs-cli,
// as an sslTrust string.
func getcertTrust(t *testing.T, d *model.Domain, n *model.Node, store, alias string) string {
	t.Helper()
	r := runLine(t, d, n, "vecs-cli entry getcert --store "+store+" --alias "+alias)
	if r.status != 0 {
		t.Fatalf("getcert %s/%s: %+v", store, alias, r)
	}
	ders, err := pki.DecodeCerts([]byte(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	return pki.TrustString(ders[0])
}

func TestScenarioSTSExpired(t *testing.T) {
	d := newLab(t, "sts-expired")
	n := d.Nodes[0]
	if r := runLine(t, d, n, "service-control --stop --all"); r.status != 0 {
		t.Fatalf("stop: %+v", r)
	}
	r := runLine(t, d, n, "service-control --start --all")
	if r.status == 0 {
		t.Fatalf("start --all succeeded with an expired STS signing certificate:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "Error executing start on service vmware-stsd") ||
		!strings.Contains(r.stderr, "Signing certificate is not valid") {
		t.Errorf("start failure does not name the service and the signing certificate:\n%s", r.stderr)
	}
	if running, _ := n.Services.Running("vmware-stsd"); running {
		t.Error("vmware-stsd runs")
	}
}

func TestScenarioStaleSSLTrust(t *testing.T) {
	d := newLab(t, "stale-ssltrust")
	r := runLine(t, d, d.Nodes[0], "lstool.py list --url https://localhost/lookupservice/sdk --no-check-cert")
	if r.status != 0 {
		t.Fatalf("lstool: %+v", r)
	}
	trusts := lstoolTrusts(t, r.stdout)
	for i, n := range d.Nodes {
		current := getcertTrust(t, d, n, model.StoreMachineSSL, model.AliasMachineCert)
		seen := 0
		for url, ts := range trusts {
			if !strings.Contains(url, "//"+n.PNID+"/") {
				continue
			}
			seen++
			stale := ts[0] != current
			if want := i == 0; stale != want {
				t.Errorf("%s: trust is stale=%t, want %t", url, stale, want)
			}
		}
		if seen == 0 {
			t.Fatalf("no endpoint of %s listed", n.PNID)
		}
	}
	// The stale value is the certificate BACKUP_STORE kept.
	old := getcertTrust(t, d, d.Nodes[0], model.StoreBackup, model.BackupAlias(model.AliasMachineCert))
	if got := trusts["https://"+d.Nodes[0].PNID+"/sdk"]; len(got) == 0 || got[0] != old {
		t.Errorf("node 1 /sdk trusts %v, want the backed-up certificate", got)
	}
}

func TestScenarioReplication(t *testing.T) {
	tests := []struct {
		scenario string
		node     int
		want     []string
		not      []string
	}{
		{"replication-lag", 0, []string{"Partner: vcsa2.lab.test\nHost available:   Yes\nStatus available: Yes\n", "Partner is 42 changes behind.\n"}, nil},
		{"replication-lag", 1, []string{"Partner: vcsa1.lab.test\n", "Partner is 0 changes behind.\n"}, nil},
		{"partner-down", 0, []string{"Partner: vcsa2.lab.test\nHost available:   No\n"}, []string{"Status available", "changes behind"}},
		{"healthy", 0, []string{"Partner is 0 changes behind.\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			d := newLab(t, tt.scenario)
			n := d.Nodes[tt.node]
			r := run(t, d, n, d.AdminPassword+"\n", strings.Fields("vdcrepadmin -f showpartnerstatus -h localhost -u administrator")...)
			if r.status != 0 {
				t.Fatalf("vdcrepadmin: %+v", r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(r.stdout, w) {
					t.Errorf("output has %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

// TestFaultInjection: an armed ssh write fault fails the next write a
// command makes, and only that one.
func TestFaultInjection(t *testing.T) {
	d := newLab(t, "healthy")
	n := d.Nodes[0]
	d.Faults.FailNextWrite(model.ProtoSSH)
	if r := runLine(t, d, n, "vecs-cli entry list --store vpxd"); r.status != 0 {
		t.Fatalf("a read consumed the write fault: %+v", r)
	}
	r := runLine(t, d, n, "vecs-cli store create --name FAULTY")
	if r.status == 0 || !strings.Contains(r.stderr, "ERROR_WRITE_FAULT") {
		t.Fatalf("store create under a write fault: %+v", r)
	}
	if hasStore(n.VECS, "FAULTY") {
		t.Fatal("the failed write happened")
	}
	if r := runLine(t, d, n, "vecs-cli store create --name FAULTY"); r.status != 0 {
		t.Fatalf("the fault outlived one write: %+v", r)
	}
}

// TestPasswordsChecked: every tool that takes the SSO password refuses a
// wrong one and changes nothing.
func TestPasswordsChecked(t *testing.T) {
	d := newLab(t, "healthy")
	n := d.Nodes[0]
	before := d.Snapshot()
	for _, line := range []string{
		"dir-cli service list --login administrator@vsphere.local --password nope",
		"dir-cli trustedcert list --password nope",
		"vdcrepadmin -f showservers -h localhost -u administrator -w nope",
		"python /usr/lib/vmware-lookupsvc/tools/ls_update_certs.py --url https://localhost/lookupservice/sdk --fingerprint AA --certfile /etc/hostname --user administrator@vsphere.local --password nope",
	} {
		if r := runLine(t, d, n, line); r.status == 0 {
			t.Errorf("%s: accepted a wrong password: %+v", line, r)
		}
	}
	if string(before) != string(d.Snapshot()) {
		t.Error("a refused command changed the lab")
	}
}
