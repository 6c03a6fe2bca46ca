package vcweb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vmware/govmomi/lookup"
	ltypes "github.com/vmware/govmomi/lookup/types"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	vim "github.com/vmware/govmomi/vim25/types"
)

// recorder is a Faults that records every operation and fails one.
type recorder struct {
	mu     sync.Mutex
	ops    []string
	target string
	err    error
}

func (r *recorder) Before(op string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
	if op == r.target {
		return r.err
	}
	return nil
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// scenario logs in and lists registrations over SOAP, then reads the IDM
// endpoint; it returns the first error.
func scenario(ctx context.Context, n *node) error {
	sc := soap.NewClient(n.srv.URL(), false)
	sc.DefaultTransport().TLSClientConfig.RootCAs = n.ca.pool
	defer sc.CloseIdleConnections()
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if err := session.NewManager(vc).Login(ctx, url.UserPassword(testUser, testPassword)); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	lc, err := lookup.NewClient(ctx, vc)
	if err != nil {
		return fmt.Errorf("lookup client: %w", err)
	}
	if _, err := lc.List(ctx, &ltypes.LookupServiceRegistrationFilter{}); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
		"https://"+n.srv.Addr()+"/idm/tenant/vsphere.local/certificates?scope=TENANT", nil)
	res, err := sc.Client.Do(req)
	if err != nil {
		return fmt.Errorf("idm: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("idm: %s", res.Status)
	}
	return nil
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("node is overloaded")
	tests := []struct {
		name   string
		target string
		err    error
		check  func(t *testing.T, err error)
	}{
		{"no fault", "", nil, func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"handshake fails", "tls", boom, func(t *testing.T, err error) {
			if err == nil || !strings.HasPrefix(err.Error(), "connect:") || soap.IsSoapFault(err) {
				t.Fatalf("err %v, want a failed connect without a SOAP answer", err)
			}
		}},
		{"login fails", "sdk.Login", boom, func(t *testing.T, err error) {
			wantSystemError(t, err, "login:", "sdk.Login: node is overloaded")
		}},
		{"service content dropped", "sdk.RetrieveServiceContent", fmt.Errorf("crash: %w", ErrDrop), func(t *testing.T, err error) {
			if err == nil || !strings.HasPrefix(err.Error(), "connect:") || soap.IsSoapFault(err) {
				t.Fatalf("err %v, want a dropped connection", err)
			}
		}},
		{"list fails", "lookup.List", boom, func(t *testing.T, err error) {
			wantSystemError(t, err, "list:", "lookup.List: node is overloaded")
		}},
		{"list dropped", "lookup.List", ErrDrop, func(t *testing.T, err error) {
			if err == nil || !strings.HasPrefix(err.Error(), "list:") || soap.IsSoapFault(err) {
				t.Fatalf("err %v, want a dropped connection", err)
			}
		}},
		{"idm fails", "idm.certificates", boom, func(t *testing.T, err error) {
			if err == nil || err.Error() != "idm: 503 Service Unavailable" {
				t.Fatalf("err %v, want idm 503", err)
			}
		}},
		{"idm dropped", "idm.certificates", ErrDrop, func(t *testing.T, err error) {
			if err == nil || !strings.HasPrefix(err.Error(), "idm:") || strings.Contains(err.Error(), "503") {
				t.Fatalf("err %v, want a dropped connection", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{target: tt.target, err: tt.err}
			n := startNode(t, newMemStore(testSite), Config{Faults: rec})
			tt.check(t, scenario(ctx, n))
			if tt.target != "" && !slices.Contains(rec.seen(), tt.target) {
				t.Errorf("Before never saw %q; saw %q", tt.target, rec.seen())
			}
		})
	}
}

func wantSystemError(t *testing.T, err error, prefix, reason string) {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("err %v, want a %s failure", err, prefix)
	}
	f, ok := soap.ToSoapFault(errors.Unwrap(err)).VimFault().(*vim.SystemError)
	if !ok {
		v, isValue := soap.ToSoapFault(errors.Unwrap(err)).VimFault().(vim.SystemError)
		if !isValue {
			t.Fatalf("fault %T, want SystemError", soap.ToSoapFault(errors.Unwrap(err)).VimFault())
		}
		f = &v
	}
	if f.Reason != reason {
		t.Errorf("SystemError reason %q, want %q", f.Reason, reason)
	}
}

func TestFaultsSeeEveryOperation(t *testing.T) {
	rec := &recorder{}
	n := startNode(t, newMemStore(testSite), Config{Faults: rec})
	if err := scenario(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	want := []string{"tls", "sdk.RetrieveServiceContent", "sdk.Login", "lookup.RetrieveServiceContent", "lookup.List", "idm.certificates"}
	got := rec.seen()
	for _, op := range want {
		if !slices.Contains(got, op) {
			t.Errorf("Before never saw %q; saw %q", op, got)
		}
	}
	if i, j := slices.Index(got, "sdk.Login"), slices.Index(got, "lookup.List"); i > j {
		t.Errorf("operations out of order: %q", got)
	}
}
