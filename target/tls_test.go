package target_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/vmware/govmomi/lookup/simulator" // registers the Lookup Service endpoint
	"github.com/vmware/govmomi/lookup/types"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"

	"runbook/target"
)

// httpsServer is a TLS server whose certificate can be swapped, as a
// machine SSL replacement does.
type httpsServer struct {
	srv  *httptest.Server
	cert atomic.Pointer[tls.Certificate]
	port int
}

func startHTTPS(t *testing.T, c *testCert) *httpsServer {
	t.Helper()
	s := &httpsServer{}
	s.cert.Store(&c.tls)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	}))
	s.srv.TLS = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil }}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.port = splitPort(t, s.srv.Listener.Addr().String())
	return s
}

// logRecorder collects what Options.Logf receives.
type logRecorder struct {
	mu   sync.Mutex
	logs []string
}

func (l *logRecorder) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.logs = append(l.logs, fmt.Sprintf(format, args...))
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.logs, "\n")
}

func TestDialTLSExpiredCertificate(t *testing.T) {
	cert := expiredCert(t, "vcsa1.lab.test")
	srv := startHTTPS(t, cert)
	pin := target.Thumbprint(cert.leaf)
	other := target.Thumbprint(expiredCert(t, "other").leaf)
	addr := fmt.Sprintf("127.0.0.1:%d", srv.port)

	tests := []struct {
		name       string
		pin        string
		tofu       bool
		wantPinErr *target.PinError // nil: the handshake succeeds
	}{
		{name: "pinned, lower case without colons", pin: strings.ToLower(strings.ReplaceAll(pin, ":", ""))},
		{name: "pinned", pin: pin},
		{name: "missing", wantPinErr: &target.PinError{Node: "vcsa1.lab.test", Kind: target.PinTLS, Presented: pin}},
		{name: "mismatch", pin: other, wantPinErr: &target.PinError{Node: "vcsa1.lab.test", Kind: target.PinTLS, Pinned: other, Presented: pin}},
		{name: "mismatch with TOFU", pin: other, tofu: true, wantPinErr: &target.PinError{Node: "vcsa1.lab.test", Kind: target.PinTLS, Pinned: other, Presented: pin}},
		{name: "trust on first use", tofu: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log logRecorder
			p := newProfile(t, profileSpec{ports: target.Ports{HTTPS: srv.port}, tlsThumbprint: tc.pin})
			_, n := open(t, p, target.Options{TrustOnFirstUse: tc.tofu, Logf: log.logf})
			chain, err := n.DialTLS(t.Context(), 0)
			if tc.wantPinErr != nil {
				var pe *target.PinError
				if !errors.As(err, &pe) {
					t.Fatalf("DialTLS = %v, want a *PinError", err)
				}
				if *pe != *tc.wantPinErr {
					t.Errorf("PinError = %+v, want %+v", *pe, *tc.wantPinErr)
				}
				want := "connect tls vcsa1.lab.test (" + addr + "): " + tc.wantPinErr.Error()
				if err.Error() != want {
					t.Errorf("error:\n got: %s\nwant: %s", err, want)
				}
				if tc.pin == "" && !strings.Contains(err.Error(), "no tls_thumbprint pinned; the server presents SHA-256 "+pin+" — add it to the profile if it is right") {
					t.Errorf("missing pin error does not tell the thumbprint to pin: %s", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 1 || !bytes.Equal(chain[0].Raw, cert.leaf.Raw) {
				t.Fatalf("chain = %d certificates, not the server's", len(chain))
			}
			if !chain[0].NotAfter.Before(time.Now()) {
				t.Errorf("test certificate is not expired: %v", chain[0].NotAfter)
			}
			if got, _ := n.Pins(); got != pin {
				t.Errorf("pin in use = %s, want %s", got, pin)
			}
			if tc.tofu && !strings.Contains(log.String(), "trusting the TLS certificate with SHA-256 "+pin+" on first use") {
				t.Errorf("TOFU not reported; logs: %q", log.String())
			}
		})
	}
}

func TestHTTPClientPinnedAndRepin(t *testing.T) {
	oldCert := expiredCert(t, "vcsa1.lab.test")
	newCert := newCert(t, "vcsa1.lab.test", time.Now().Add(-time.Hour), time.Now().AddDate(2, 0, 0))
	srv := startHTTPS(t, oldCert)
	p := newProfile(t, profileSpec{ports: target.Ports{HTTPS: srv.port}, tlsThumbprint: target.Thumbprint(oldCert.leaf)})
	_, n := open(t, p, target.Options{})

	get := func() (string, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, n.URL("/idm/tenant/vsphere.local/certificates"), nil)
		if err != nil {
			return "", err
		}
		resp, err := n.HTTPClient().Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	body, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if body != "hello from /idm/tenant/vsphere.local/certificates" {
		t.Fatalf("body = %q", body)
	}

	// The machine certificate is replaced and the server restarts: the pin
	// refuses the new certificate until a step repins.
	srv.cert.Store(&newCert.tls)
	srv.srv.CloseClientConnections()
	_, err = get()
	var pe *target.PinError
	if !errors.As(err, &pe) || pe.Presented != target.Thumbprint(newCert.leaf) {
		t.Fatalf("after the swap: %v, want a PinError presenting the new certificate", err)
	}
	if err := n.Repin(target.Thumbprint(newCert.leaf)); err != nil {
		t.Fatal(err)
	}
	if _, err := get(); err != nil {
		t.Fatalf("after Repin: %v", err)
	}
	if _, err := n.DialTLS(t.Context(), srv.port); err != nil {
		t.Fatalf("DialTLS after Repin: %v", err)
	}
}

// startVcsim starts govmomi's vCenter simulator with the Lookup Service,
// serving cert, accepting only user/password.
func startVcsim(t *testing.T, cert *testCert, user, password string) int {
	t.Helper()
	model := simulator.VPX()
	model.Datacenter, model.Host, model.Cluster, model.ClusterHost, model.Machine = 1, 0, 0, 0, 0
	if err := model.Create(); err != nil {
		t.Fatal(err)
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert.tls}}
	model.Service.RegisterEndpoints = true
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(user, password)}
	srv := model.Service.NewServer()
	t.Cleanup(func() {
		srv.Close()
		model.Remove()
	})
	return splitPort(t, srv.URL.Host)
}

func TestVimAndLookup(t *testing.T) {
	const password = "VMware1!-sso"
	cert := expiredCert(t, "vcsa1.lab.test")
	port := startVcsim(t, cert, "administrator@vsphere.local", password)
	pin := target.Thumbprint(cert.leaf)
	ctx := t.Context()

	t.Run("login and lookup", func(t *testing.T) {
		p := newProfile(t, profileSpec{ssoPassword: password, ports: target.Ports{HTTPS: port}, tlsThumbprint: pin})
		_, n := open(t, p, target.Options{})
		vc, err := n.Vim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		us, err := session.NewManager(vc).UserSession(ctx)
		if err != nil || us == nil || us.UserName != "administrator@vsphere.local" {
			t.Fatalf("UserSession = %+v, %v", us, err)
		}
		lc, err := n.Lookup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		regs, err := lc.List(ctx, &types.LookupServiceRegistrationFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(regs) == 0 {
			t.Fatal("Lookup Service lists no registrations")
		}
		if lc.URL().Host != fmt.Sprintf("127.0.0.1:%d", port) || lc.URL().Path != "/lookupservice/sdk" {
			t.Errorf("lookup URL = %s", lc.URL())
		}

		// Cached: the same clients come back, also to concurrent callers.
		var wg sync.WaitGroup
		got := make([]*vim25.Client, 8)
		for i := range got {
			wg.Go(func() { got[i], _ = n.Vim(ctx) })
		}
		wg.Wait()
		for i, c := range got {
			if c != vc {
				t.Fatalf("caller %d got another client", i)
			}
		}
		if lc2, _ := n.Lookup(ctx); lc2 != lc {
			t.Error("Lookup client not cached")
		}

		// The session ends behind the target's back (a service restart or
		// a timeout): the next call logs in again.
		if err := session.NewManager(vc).Logout(ctx); err != nil {
			t.Fatal(err)
		}
		vc2, err := n.Vim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if vc2 == vc {
			t.Fatal("dead session reused")
		}
		if us, err := session.NewManager(vc2).UserSession(ctx); err != nil || us == nil {
			t.Fatalf("new session: %+v, %v", us, err)
		}
		if lc3, err := n.Lookup(ctx); err != nil || lc3 == lc {
			t.Fatalf("Lookup after re-login: %v (same client: %v)", err, lc3 == lc)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-password-42"
		p := newProfile(t, profileSpec{ssoPassword: wrong, ports: target.Ports{HTTPS: port}, tlsThumbprint: pin})
		_, n := open(t, p, target.Options{})
		_, err := n.Vim(ctx)
		if err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
		if !strings.HasPrefix(err.Error(), fmt.Sprintf("connect vim vcsa1.lab.test (127.0.0.1:%d): log in as administrator@vsphere.local: ", port)) {
			t.Errorf("error = %v", err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("error shows the password: %v", err)
		}
	})

	t.Run("pin mismatch", func(t *testing.T) {
		other := target.Thumbprint(expiredCert(t, "x").leaf)
		p := newProfile(t, profileSpec{ssoPassword: password, ports: target.Ports{HTTPS: port}, tlsThumbprint: other})
		_, n := open(t, p, target.Options{})
		_, err := n.Vim(ctx)
		var pe *target.PinError
		if !errors.As(err, &pe) || pe.Presented != pin || pe.Pinned != other {
			t.Fatalf("Vim = %v, want a PinError", err)
		}
		if _, err := n.Lookup(ctx); !errors.As(err, &pe) {
			t.Fatalf("Lookup = %v, want a PinError", err)
		}
	})

	t.Run("closed", func(t *testing.T) {
		p := newProfile(t, profileSpec{ssoPassword: password, ports: target.Ports{HTTPS: port}, tlsThumbprint: pin})
		tg, n := open(t, p, target.Options{})
		if _, err := n.Vim(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tg.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Vim(ctx); !errors.Is(err, target.ErrClosed) {
			t.Errorf("Vim after Close = %v", err)
		}
		if _, err := n.DialTLS(ctx, 0); !errors.Is(err, target.ErrClosed) {
			t.Errorf("DialTLS after Close = %v", err)
		}
		if err := tg.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
	})
}
