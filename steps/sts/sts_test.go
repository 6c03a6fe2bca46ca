package sts

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/lab/model"
	"runbook/lab/vmdir"
	"runbook/steps/certinfo"
)

var update = flag.Bool("update", false, "rewrite golden files")

// labNow is the lab clock of these tests, so that validity dates, and the
// days in reports, are the same on every run.
var labNow = time.Date(2025, 6, 1, 12, 30, 0, 0, time.UTC)

// testLab starts a lab in scenario on the fixed clock and returns it with
// an Env whose target is the lab. The step's clock is set to the lab's.
func testLab(t *testing.T, scenario string) (*lab.Lab, *engine.Env, *bytes.Buffer) {
	t.Helper()
	old := now
	now = func() time.Time { return labNow }
	t.Cleanup(func() { now = old })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, scenario, lab.WithNow(func() time.Time { return labNow }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	tg, err := l.Target(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	out := &bytes.Buffer{}
	return l, &engine.Env{RunID: "test-run", StepID: "step", Target: tg, Out: out}, out
}

func TestRegister(t *testing.T) {
	r := engine.NewRegistry()
	Register(r)
	st, ok := r.Lookup("sts.certificates")
	if !ok || st.Effect() != engine.EffectRead || len(r.IDs()) != 1 {
		t.Fatalf("registered %v", r.IDs())
	}
	pt := st.ParamsType()
	for i := range pt.NumField() {
		f := pt.Field(i)
		if f.Tag.Get("yaml") == "" || !strings.HasSuffix(f.Tag.Get("doc"), ".") {
			t.Errorf("params %s: yaml %q, doc %q", f.Name, f.Tag.Get("yaml"), f.Tag.Get("doc"))
		}
	}
	for _, ot := range []reflect.Type{st.OutputsType(), reflect.TypeFor[Chain](), reflect.TypeFor[Cert](),
		reflect.TypeFor[Credential](), reflect.TypeFor[Active]()} {
		for i := range ot.NumField() {
			f := ot.Field(i)
			if j := f.Tag.Get("json"); j == "" || j != f.Tag.Get("expr") {
				t.Errorf("outputs %s.%s: json %q, expr %q", ot.Name(), f.Name, j, f.Tag.Get("expr"))
			}
		}
	}
}

// sha1Of is a certificate's thumbprint as checksts prints it.
func sha1Of(c *x509.Certificate) string { return certinfo.Describe(c, labNow).SHA1 }

// golden compares got with testdata/name, after replacing each thumbprint
// in names by its placeholder; -update rewrites the file.
func golden(t *testing.T, name, got string, names map[string]string) {
	t.Helper()
	for tp, placeholder := range names {
		got = strings.ReplaceAll(got, tp, placeholder)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n got %q\nwant %q", name, got, want)
	}
}

// TestCertificates reads the STS certificates of healthy and sts-expired
// labs and compares them with the lab's model: vmdir's entries, the IDM
// chains, the active credential, checksts's counts and report.
func TestCertificates(t *testing.T) {
	tests := []struct {
		scenario     string
		expiredLeafs int
	}{
		{"healthy", 0},
		{"sts-expired", 1},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			l, env, _ := testLab(t, tc.scenario)
			d := l.Model()
			out, err := runCertificates(context.Background(), env, &certificatesParams{})
			if err != nil {
				t.Fatal(err)
			}
			creds, err := d.TenantCredentials()
			if err != nil {
				t.Fatal(err)
			}
			chains, err := d.TrustedCertChains()
			if err != nil {
				t.Fatal(err)
			}
			active, err := d.ActiveSTS()
			if err != nil {
				t.Fatal(err)
			}
			leaf := active.Leaf()

			if out.Node != d.Nodes[0].PNID || out.ReportSource != "idm" || out.IDMError != "" {
				t.Errorf("node %s, source %s, idm error %q", out.Node, out.ReportSource, out.IDMError)
			}
			if out.TenantCredentialCount != len(creds) || len(out.Credentials) != len(creds) || out.TrustedCertChainCount != len(chains) {
				t.Fatalf("%d credentials, %d chains; the lab has %d and %d", out.TenantCredentialCount, out.TrustedCertChainCount, len(creds), len(chains))
			}
			for i, c := range creds {
				got := out.Credentials[i]
				if got.N != c.N || got.DN != d.TenantCredentialDN(c.N) || got.ChainLength != len(c.Certs) || got.SHA1 != sha1Of(c.Leaf()) {
					t.Errorf("credential %d = %+v", i, got)
				}
			}
			if out.Active.N != active.N || out.Active.SHA1 != sha1Of(leaf) || !out.Active.NotAfter.Equal(leaf.NotAfter) ||
				out.Active.Expired != (tc.expiredLeafs > 0) {
				t.Errorf("active = %+v; the lab's is TenantCredential-%d %s", out.Active, active.N, sha1Of(leaf))
			}
			wantDays := int(time.Date(leaf.NotAfter.Year(), leaf.NotAfter.Month(), leaf.NotAfter.Day(), 0, 0, 0, 0, time.UTC).
				Sub(time.Date(labNow.Year(), labNow.Month(), labNow.Day(), 0, 0, 0, 0, time.UTC)).Hours() / 24)
			if out.Active.DaysLeft != wantDays {
				t.Errorf("active daysLeft %d, want %d", out.Active.DaysLeft, wantDays)
			}

			// IDM chains first, then vmdir's, the same certificates.
			if len(out.Chains) != 2*len(chains) {
				t.Fatalf("%d chains, want %d from IDM and %d from vmdir", len(out.Chains), len(chains), len(chains))
			}
			for i, c := range chains {
				idm, dir := out.Chains[i], out.Chains[len(chains)+i]
				if idm.Source != "idm" || dir.Source != "TrustedCertChain-"+strconv.Itoa(c.N) || !reflect.DeepEqual(idm.Certs, dir.Certs) {
					t.Errorf("chain %d: idm %+v, vmdir %+v", i, idm, dir)
				}
				for j, cert := range c.Certs {
					if dir.Certs[j].SHA1 != sha1Of(cert) || dir.Certs[j].Leaf != (len(cert.AuthorityKeyId) > 0) {
						t.Errorf("chain %d cert %d = %+v", i, j, dir.Certs[j])
					}
				}
			}
			if out.ExpiredLeaves != tc.expiredLeafs || out.ValidLeaves != 1-tc.expiredLeafs || out.ValidRoots != 1 || out.ExpiredRoots != 0 {
				t.Errorf("counts: valid %d leaves %d roots, expired %d leaves %d roots", out.ValidLeaves, out.ValidRoots, out.ExpiredLeaves, out.ExpiredRoots)
			}

			// No private key bytes in the outputs.
			data, err := json.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			key, err := stsKey(d, active.N)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, key) || bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(key))) {
				t.Error("the outputs hold the STS private key")
			}

			golden(t, "report-"+tc.scenario+".txt", out.Report, map[string]string{
				sha1Of(leaf):              "<STS-LEAF-SHA1>",
				sha1Of(d.VMCARoot().X509): "<VMCA-ROOT-SHA1>",
			})
		})
	}
}

// stsKey returns the private key vmdir holds for TenantCredential-n.
func stsKey(d *model.Domain, n int) ([]byte, error) {
	es, err := d.Dir.Search(d.TenantCredentialDN(n), vmdir.ScopeBase, "", nil)
	if err != nil {
		return nil, err
	}
	keys := es[0].Values("vmwSTSPrivateKey")
	if len(keys) != 1 || len(keys[0]) == 0 {
		return nil, fmt.Errorf("TenantCredential-%d has %d keys", n, len(keys))
	}
	return keys[0], nil
}
