package lookup

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"runbook/engine"
	"runbook/lab"
	"runbook/lab/model"
)

// testLab starts a lab in scenario and returns it with an Env whose target
// is the lab, as the engine builds one for a step; the Env's operator
// output is the returned buffer.
func testLab(t testing.TB, scenario string) (*lab.Lab, *engine.Env, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, scenario)
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
	return l, &engine.Env{
		RunID:     "test-run",
		RunDir:    t.TempDir(),
		BackupDir: t.TempDir(),
		StepID:    "step",
		Target:    tg,
		Out:       out,
		Redact:    func(s string) string { return s },
	}, out
}

// machineDER returns the Machine SSL certificate node i of the lab serves.
func machineDER(t testing.TB, d *model.Domain, i int) []byte {
	t.Helper()
	c, _ := d.Nodes[i].MachineCert()
	if c == nil {
		t.Fatalf("node %d has no Machine SSL certificate", i)
	}
	return c.Raw
}

// backupDER returns the certificate node i's BACKUP_STORE keeps for the
// Machine SSL certificate: the one stale-ssltrust's registrations trust.
func backupDER(t testing.TB, d *model.Domain, i int) []byte {
	t.Helper()
	c, err := d.Nodes[i].StoreCert(model.StoreBackup, model.BackupAlias(model.AliasMachineCert))
	if err != nil {
		t.Fatal(err)
	}
	return c.Raw
}

// sha1Colon is a thumbprint as openssl prints it.
func sha1Colon(der []byte) string {
	sum := sha1.Sum(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func trustOf(der []byte) string { return base64.StdEncoding.EncodeToString(der) }

func pemOf(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// registrations returns the lab's registrations by service id.
func registrations(t testing.TB, d *model.Domain) map[string]model.Registration {
	t.Helper()
	regs, err := d.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]model.Registration, len(regs))
	for _, r := range regs {
		m[r.ServiceID] = r
	}
	return m
}

// selfSigned returns a throwaway certificate, such as a third party's.
func selfSigned(t testing.TB, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Example"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		DNSNames:     []string{cn},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
