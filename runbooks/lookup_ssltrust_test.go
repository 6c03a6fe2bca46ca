package runbooks_test

// End-to-end tests of lookup-ssltrust-check and lookup-ssltrust-update
// (KB 2121701 / 322835) against the lab, judged by the registrations vmdir
// holds and the certificate each node's port 443 serves.

import (
	"bytes"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"runbook/lab/model"
)

const (
	lookupSSLTrustCheck  = "lookup-ssltrust-check"
	lookupSSLTrustUpdate = "lookup-ssltrust-update"
)

// lookupSSLTrustServed returns the leaf certificate port 443 of node pnid
// serves, read over TLS as a client sees it.
func lookupSSLTrustServed(t *testing.T, r *labRun, pnid string) *x509.Certificate {
	t.Helper()
	for _, n := range r.Lab.Nodes() {
		if n.PNID != pnid {
			continue
		}
		conn, err := tls.Dial("tcp", n.HTTPSAddr, &tls.Config{ServerName: pnid, InsecureSkipVerify: true}) // #nosec G402 -- reads the served certificate, nothing is trusted
		if err != nil {
			t.Fatalf("dial %s (%s): %v", pnid, n.HTTPSAddr, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	t.Fatalf("no node %s in the lab", pnid)
	return nil
}

// lookupSSLTrustRegs returns the lab's registrations.
func lookupSSLTrustRegs(t *testing.T, r *labRun) []model.Registration {
	t.Helper()
	regs, err := r.Lab.Model().Registrations()
	if err != nil {
		t.Fatal(err)
	}
	return regs
}

// lookupSSLTrustHost is an endpoint URL's host, lower case.
func lookupSSLTrustHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("endpoint URL %q: %v", raw, err)
	}
	return strings.ToLower(u.Hostname())
}

// lookupSSLTrustDER decodes an sslTrust value.
func lookupSSLTrustDER(t *testing.T, trust string) []byte {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(trust)
	if err != nil {
		t.Fatalf("sslTrust %.20s…: %v", trust, err)
	}
	return der
}

// lookupSSLTrustSHA1 is a DER certificate's SHA-1 thumbprint as openssl
// prints it (AB:CD:…).
func lookupSSLTrustSHA1(der []byte) string {
	sum := sha1.Sum(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// lookupSSLTrustOf returns the ids of the services with an endpoint on
// host pnid, and the distinct first sslTrust values (DER) of those
// endpoints.
func lookupSSLTrustOf(t *testing.T, regs []model.Registration, pnid string) (ids []string, trusts [][]byte) {
	t.Helper()
	for _, reg := range regs {
		for _, e := range reg.Endpoints {
			if lookupSSLTrustHost(t, e.URL) != pnid {
				continue
			}
			if !slices.Contains(ids, reg.ServiceID) {
				ids = append(ids, reg.ServiceID)
			}
			der := lookupSSLTrustDER(t, e.SslTrust[0])
			if !slices.ContainsFunc(trusts, func(d []byte) bool { return bytes.Equal(d, der) }) {
				trusts = append(trusts, der)
			}
		}
	}
	return ids, trusts
}

// lookupSSLTrustSRM returns the third-party (Site Recovery Manager)
// registration.
func lookupSSLTrustSRM(t *testing.T, regs []model.Registration) model.Registration {
	t.Helper()
	for _, reg := range regs {
		if reg.Product == model.SRMProduct {
			return reg
		}
	}
	t.Fatal("the lab has no SRM registration")
	return model.Registration{}
}

// lookupSSLTrustInSync fails unless every endpoint on a node's host trusts
// (first sslTrust) the certificate that node's port 443 serves: KB 2121701
// Task 0, judged by the lab's state. It also requires the SRM registration
// to trust its own certificate still and the legacy registration to be
// among those checked.
func lookupSSLTrustInSync(t *testing.T, r *labRun) {
	t.Helper()
	regs := lookupSSLTrustRegs(t, r)
	served := map[string][]byte{}
	for _, n := range r.Lab.Nodes() {
		served[n.PNID] = lookupSSLTrustServed(t, r, n.PNID).Raw
	}
	legacy := 0
	for _, reg := range regs {
		for i, e := range reg.Endpoints {
			want, ours := served[lookupSSLTrustHost(t, e.URL)]
			if !ours {
				continue
			}
			if got := lookupSSLTrustDER(t, e.SslTrust[0]); !bytes.Equal(got, want) {
				t.Errorf("%s endpoint %d %s trusts %s, its node serves %s", reg.ServiceID, i+1, e.URL, lookupSSLTrustSHA1(got), lookupSSLTrustSHA1(want))
			}
			if reg.Legacy {
				legacy++
			}
		}
	}
	if legacy == 0 {
		t.Error("no legacy 5.5 registration on a node's host: the scenario lost it")
	}
	srm := lookupSSLTrustSRM(t, regs)
	c, err := x509.ParseCertificate(lookupSSLTrustDER(t, srm.Endpoints[0].SslTrust[0]))
	if err != nil {
		t.Fatalf("SRM sslTrust: %v", err)
	}
	if c.Subject.CommonName != model.SRMHost {
		t.Errorf("the SRM registration trusts %q, not its own certificate", c.Subject.String())
	}
}

func TestLookupSSLTrustCheck(t *testing.T) {
	tests := []struct {
		scenario string
		want     int
		stale    bool // node 1's registrations trust its old certificate
		expired  bool // every node's registrations trust its expired certificate
	}{
		{scenario: "healthy", want: 0},
		{scenario: "stale-ssltrust", want: 6, stale: true},
		{scenario: "machine-ssl-expired", want: 6, expired: true},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			r := startLab(t, tt.scenario)
			regs := lookupSSLTrustRegs(t, r)
			n1, n2 := r.Lab.Nodes()[0].PNID, r.Lab.Nodes()[1].PNID
			ids1, trusts1 := lookupSSLTrustOf(t, regs, n1)
			ids2, _ := lookupSSLTrustOf(t, regs, n2)
			srm := lookupSSLTrustSRM(t, regs)
			served1 := lookupSSLTrustServed(t, r, n1)

			before := r.Lab.Snapshot()
			res := r.mustRun(tt.want, nil, "run", lookupSSLTrustCheck)
			if after := r.Lab.Snapshot(); !bytes.Equal(before, after) {
				t.Fatalf("the check changed the lab:\n%s", diffLines(string(before), string(after)))
			}
			out := res.Stdout + res.Stderr
			if strings.Contains(out, srm.ServiceID) {
				t.Errorf("the report flags the SRM registration %s, which trusts its own certificate:\n%s", srm.ServiceID, out)
			}
			for _, id := range ids2 {
				if strings.Contains(out, id) {
					t.Errorf("the report lists %s of %s, which is in sync:\n%s", id, n2, out)
				}
			}
			if tt.expired {
				// In sync, but what the nodes serve and their
				// registrations trust has expired: flagged as such.
				for _, n := range []string{n1, n2} {
					c := lookupSSLTrustServed(t, r, n)
					if !r.Lab.Model().Now().After(c.NotAfter) {
						t.Fatalf("scenario: %s serves a certificate valid until %s", n, c.NotAfter)
					}
					if line := lookupSSLTrustSHA1(c.Raw) + "  expired " + c.NotAfter.UTC().Format("2006-01-02"); !strings.Contains(out, line) {
						t.Errorf("the report does not say %q:\n%s", line, out)
					}
				}
			}
			if !tt.stale {
				for _, id := range ids1 {
					if strings.Contains(out, id) {
						t.Errorf("the report lists %s of %s, which is in sync:\n%s", id, n1, out)
					}
				}
				return
			}
			// stale-ssltrust: node 1's endpoints trust exactly one
			// certificate, which is not what its port 443 serves.
			if len(trusts1) != 1 || bytes.Equal(trusts1[0], served1.Raw) {
				t.Fatalf("scenario: %s's endpoints trust %d certificates, want one other than the served one", n1, len(trusts1))
			}
			if old := lookupSSLTrustSHA1(trusts1[0]); !strings.Contains(out, "SSL trust SHA1 "+old) {
				t.Errorf("the report does not name the old thumbprint %s:\n%s", old, out)
			}
			for _, id := range ids1 {
				if !strings.Contains(out, id) {
					t.Errorf("the report does not list %s of %s:\n%s", id, n1, out)
				}
			}
		})
	}
}

// lookupSSLTrustRequireRepaired fails unless, compared with before, exactly
// the first sslTrust of every endpoint on host pnid changed, to the
// certificate pnid's port 443 serves, and nothing else in any registration.
func lookupSSLTrustRequireRepaired(t *testing.T, r *labRun, before []model.Registration, pnid string) {
	t.Helper()
	served := lookupSSLTrustServed(t, r, pnid)
	after := lookupSSLTrustRegs(t, r)
	if len(after) != len(before) {
		t.Fatalf("%d registrations after the run, %d before", len(after), len(before))
	}
	changed := 0
	for _, a := range after {
		i := slices.IndexFunc(before, func(b model.Registration) bool { return b.ServiceID == a.ServiceID })
		if i < 0 {
			t.Errorf("registration %s appeared", a.ServiceID)
			continue
		}
		want := before[i]
		want.Endpoints = slices.Clone(want.Endpoints)
		for j, e := range want.Endpoints {
			if lookupSSLTrustHost(t, e.URL) != pnid {
				continue
			}
			e.SslTrust = slices.Clone(e.SslTrust)
			e.SslTrust[0] = base64.StdEncoding.EncodeToString(served.Raw)
			want.Endpoints[j] = e
			changed++
		}
		if !reflect.DeepEqual(a, want) {
			t.Errorf("registration %s:\n got  %+v\n want %+v", a.ServiceID, a, want)
		}
	}
	if changed == 0 {
		t.Fatalf("no endpoint on %s", pnid)
	}
}

func TestLookupSSLTrustUpdateStale(t *testing.T) {
	r := startLab(t, "stale-ssltrust")
	n1 := r.Lab.Nodes()[0].PNID
	before := lookupSSLTrustRegs(t, r)
	srm := lookupSSLTrustSRM(t, before)

	// The dry-run changes nothing and plans every endpoint of node 1,
	// the legacy registration's included, and nothing of SRM's.
	res := r.dryRunChangesNothing(lookupSSLTrustUpdate, 0)
	plan := res.Stdout + res.Stderr
	planned := 0
	for _, reg := range before {
		for i, e := range reg.Endpoints {
			object := fmt.Sprintf("%s endpoint %d %s", reg.ServiceID, i+1, e.URL)
			switch {
			case lookupSSLTrustHost(t, e.URL) == n1:
				planned++
				if !strings.Contains(plan, object) {
					t.Errorf("the plan does not list %s:\n%s", object, plan)
				}
			case strings.Contains(plan, object):
				t.Errorf("the plan lists %s, which is not %s's:\n%s", object, n1, plan)
			}
		}
	}
	if planned == 0 || strings.Contains(plan, srm.ServiceID) {
		t.Fatalf("planned %d endpoints of %s; SRM in the plan: %v", planned, n1, strings.Contains(plan, srm.ServiceID))
	}

	// The run re-points exactly node 1's endpoints, and Task 0 passes.
	r.mustRun(0, nil, "run", lookupSSLTrustUpdate, "--yes")
	lookupSSLTrustRequireRepaired(t, r, before, n1)
	lookupSSLTrustInSync(t, r)
	r.mustRun(0, nil, "run", lookupSSLTrustCheck)

	// Once in sync it is a no-op: no question, no change.
	snap := r.Lab.Snapshot()
	r.mustRun(0, nil, "run", lookupSSLTrustUpdate)
	if after := r.Lab.Snapshot(); !bytes.Equal(snap, after) {
		t.Fatalf("a second run changed the lab:\n%s", diffLines(string(snap), string(after)))
	}
}

func TestLookupSSLTrustUpdateHealthy(t *testing.T) {
	r := startLab(t, "healthy")
	r.dryRunChangesNothing(lookupSSLTrustUpdate, 0)
	before := r.Lab.Snapshot()
	// Without --yes: in sync, it must not even ask for the snapshot.
	r.mustRun(0, nil, "run", lookupSSLTrustUpdate)
	if after := r.Lab.Snapshot(); !bytes.Equal(before, after) {
		t.Fatalf("the update changed a healthy lab:\n%s", diffLines(string(before), string(after)))
	}
	r.mustRun(0, nil, "run", lookupSSLTrustUpdate, "--param", "node="+r.Lab.Nodes()[1].PNID)
	if after := r.Lab.Snapshot(); !bytes.Equal(before, after) {
		t.Fatalf("the update of an in-sync node changed the lab:\n%s", diffLines(string(before), string(after)))
	}
	r.mustRun(3, nil, "run", lookupSSLTrustUpdate, "--param", "node=nosuch.lab.test")
}

// TestLookupSSLTrustUpdateSharedOldCert makes node 2's registrations trust
// node 1's old certificate too (as after replacing a certificate the two
// nodes shared): two nodes are stale. Without node the runbook refuses;
// with node it re-points that node's endpoints only, where
// ls_update_certs.py, matching by thumbprint alone, would have pointed
// both nodes' endpoints at one node's new certificate.
func TestLookupSSLTrustUpdateSharedOldCert(t *testing.T) {
	r := startLab(t, "stale-ssltrust")
	d := r.Lab.Model()
	n1, n2 := r.Lab.Nodes()[0].PNID, r.Lab.Nodes()[1].PNID
	regs := lookupSSLTrustRegs(t, r)
	_, trusts1 := lookupSSLTrustOf(t, regs, n1)
	if len(trusts1) != 1 {
		t.Fatalf("scenario: %s's endpoints trust %d certificates, want 1", n1, len(trusts1))
	}
	old := base64.StdEncoding.EncodeToString(trusts1[0])
	for _, reg := range regs {
		touched := false
		for i, e := range reg.Endpoints {
			if lookupSSLTrustHost(t, e.URL) == n2 {
				reg.Endpoints[i].SslTrust = []string{old}
				touched = true
			}
		}
		if touched {
			if err := d.SaveRegistration(reg); err != nil {
				t.Fatal(err)
			}
		}
	}

	snap := r.Lab.Snapshot()
	r.mustRun(3, nil, "run", lookupSSLTrustUpdate, "--yes")
	if after := r.Lab.Snapshot(); !bytes.Equal(snap, after) {
		t.Fatalf("a refused run changed the lab:\n%s", diffLines(string(snap), string(after)))
	}
	r.mustRun(6, nil, "run", lookupSSLTrustCheck)

	before := lookupSSLTrustRegs(t, r)
	r.mustRun(0, nil, "run", lookupSSLTrustUpdate, "--yes", "--param", "node="+n2)
	lookupSSLTrustRequireRepaired(t, r, before, n2)

	before = lookupSSLTrustRegs(t, r)
	r.mustRun(0, nil, "run", lookupSSLTrustUpdate, "--yes", "--param", "node="+n1)
	lookupSSLTrustRequireRepaired(t, r, before, n1)
	lookupSSLTrustInSync(t, r)
	r.mustRun(0, nil, "run", lookupSSLTrustCheck)
}

func TestLookupSSLTrustUpdateKillAndResume(t *testing.T) {
	killAndResumeEverywhere(t, "stale-ssltrust", lookupSSLTrustUpdate, nil, lookupSSLTrustInSync)
}

// TestLookupSSLTrustCheckPartnerDown checks that a node that does not answer
// is reported as such, not as a mismatch, and fails the check (exit 6),
// since its registrations could not be compared.
func TestLookupSSLTrustCheckPartnerDown(t *testing.T) {
	r := startLab(t, "partner-down")
	down := r.Lab.Nodes()[1].PNID
	before := r.Lab.Snapshot()
	res := r.mustRun(6, nil, "run", lookupSSLTrustCheck)
	if after := r.Lab.Snapshot(); !bytes.Equal(before, after) {
		t.Fatalf("the check changed the lab:\n%s", diffLines(string(before), string(after)))
	}
	out := res.Stdout + res.Stderr
	if !strings.Contains(out, down+"  NOT REACHABLE") {
		t.Errorf("the report does not say %s is not reachable:\n%s", down, out)
	}
	if strings.Contains(out, "MISMATCH") {
		t.Errorf("the report calls an unreachable node a mismatch:\n%s", out)
	}
}
