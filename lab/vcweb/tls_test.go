package vcweb

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"runbook/internal/testbin"

	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
)

// servedLeaf dials addr, verifying against roots, and returns the leaf.
func servedLeaf(t *testing.T, addr string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func TestCertificateSwap(t *testing.T) {
	n := startNode(t, newMemStore(testSite), Config{})
	first := n.cert.Load()

	if got := servedLeaf(t, n.srv.Addr(), n.ca.pool); !bytes.Equal(got.Raw, first.Certificate[0]) {
		t.Fatalf("served %q, want the machine cert %q", got.Subject, first.Leaf.Subject)
	}

	// A pinned client as the runbook keeps one: it trusts the old leaf by
	// SHA1 thumbprint only (no CA).
	pinned := soap.NewClient(n.srv.URL(), false)
	pinned.SetThumbprint(n.srv.Addr(), soap.ThumbprintSHA1(first.Leaf))
	t.Cleanup(pinned.CloseIdleConnections)
	if _, err := vim25.NewClient(context.Background(), pinned); err != nil {
		t.Fatalf("thumbprint-pinned client refused the served cert: %v", err)
	}

	replacement := n.ca.leaf(t, "vc1.example.com")
	n.cert.Store(replacement)

	if got := servedLeaf(t, n.srv.Addr(), n.ca.pool); !bytes.Equal(got.Raw, replacement.Certificate[0]) {
		t.Fatalf("after the swap served serial %v, want %v", got.SerialNumber, replacement.Leaf.SerialNumber)
	}
	pinned.CloseIdleConnections()
	_, err := vim25.NewClient(context.Background(), pinned)
	if err == nil || !strings.Contains(err.Error(), "thumbprint does not match") {
		t.Fatalf("pinned client after the swap: err %v, want a thumbprint mismatch", err)
	}
}

func TestCertificateError(t *testing.T) {
	n := startNode(t, newMemStore(testSite), Config{})
	n.cert.Store(nil) // the model lost the machine cert
	conn, err := tls.Dial("tcp", n.srv.Addr(), &tls.Config{RootCAs: n.ca.pool, ServerName: "127.0.0.1"})
	if err == nil {
		conn.Close()
		t.Fatal("handshake succeeded without a machine certificate")
	}
}

func TestOpenSSLShowCerts(t *testing.T) {
	openssl := testbin.Need(t, "openssl", "openssl")
	n := startNode(t, newMemStore(testSite), Config{})
	for i, cert := range []*tls.Certificate{n.cert.Load(), n.ca.leaf(t, "vc1-new.example.com")} {
		n.cert.Store(cert)
		cmd := exec.Command(openssl, "s_client", "-connect", n.srv.Addr(), "-showcerts")
		cmd.Stdin = strings.NewReader("")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl s_client: %v\n%s", err, stderr.Bytes())
		}
		block, _ := pem.Decode(out)
		if block == nil {
			t.Fatalf("no certificate in openssl output:\n%s", out)
		}
		if !bytes.Equal(block.Bytes, cert.Certificate[0]) {
			t.Errorf("round %d: openssl saw a different leaf than the model holds:\n%s", i, out)
		}
		if want := "CN = " + cert.Leaf.Subject.CommonName; !strings.Contains(string(out), want) {
			t.Errorf("round %d: openssl output lacks %q", i, want)
		}
	}
}

func TestStartErrors(t *testing.T) {
	ca := newTestCA(t)
	leaf := ca.leaf(t, "vc1.example.com")
	valid := Config{
		Store:       newMemStore(testSite),
		Certificate: func() (*tls.Certificate, error) { return leaf, nil },
		Login:       func(string, string) bool { return false },
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name   string
		ctx    context.Context
		mutate func(*Config)
		want   string
	}{
		{"no store", context.Background(), func(c *Config) { c.Store = nil }, "required"},
		{"no certificate func", context.Background(), func(c *Config) { c.Certificate = nil }, "required"},
		{"no login", context.Background(), func(c *Config) { c.Login = nil }, "required"},
		{"certificate fails", context.Background(), func(c *Config) {
			c.Certificate = func() (*tls.Certificate, error) { return nil, errors.New("vecs down") }
		}, "vecs down"},
		{"empty certificate", context.Background(), func(c *Config) {
			c.Certificate = func() (*tls.Certificate, error) { return &tls.Certificate{}, nil }
		}, "no certificate"},
		{"cancelled", cancelled, func(*Config) {}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			srv, err := Start(tt.ctx, cfg)
			if err == nil {
				_ = srv.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestServerAddress(t *testing.T) {
	n := startNode(t, newMemStore(testSite), Config{})
	u := n.srv.URL()
	if u.Scheme != "https" || u.Path != "/sdk" || u.User != nil || u.Host != n.srv.Addr() {
		t.Errorf("URL() = %v, want https://%s/sdk without credentials", u, n.srv.Addr())
	}
	if !strings.HasPrefix(n.srv.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want loopback", n.srv.Addr())
	}
	u.Path = "/changed"
	if n.srv.URL().Path != "/sdk" {
		t.Error("URL() returned the server's own copy")
	}
	if err := n.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if conn, err := tls.Dial("tcp", n.srv.Addr(), &tls.Config{RootCAs: n.ca.pool, ServerName: "127.0.0.1"}); err == nil {
		conn.Close()
		t.Error("listener still answers after Close")
	}
}
