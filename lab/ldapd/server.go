// Package ldapd serves a vmdir.Directory over LDAP and LDAPS on loopback,
// the way a vCenter's vmdir answers on ports 389 and 636: simple bind with
// a DN or a UPN, anonymous access to the root DSE only (everything else
// before a bind is 50 insufficientAccessRights), search with size limits and
// simple paged results, add, modify and delete, StartTLS, and LDAP result
// codes taken from vmdir.Error.
//
// The LDAP protocol work is done by github.com/jimlambrt/gldap, which runs
// on a private loopback port. Clients connect to a thin front listener
// (one per protocol) that frames LDAP messages and relays them; the front
// owns the client connection, so it can report its exact address, terminate
// TLS, answer what gldap cannot (ModifyDN and Compare get 53
// unwillingToPerform, unknown extended operations 2 protocolError, Abandon
// is ignored), inject faults (a failed request gets 80 other) and drop a
// connection on demand (ErrDrop).
package ldapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"

	"runbook/lab/vmdir"
)

// Config configures a Server.
type Config struct {
	// Dir is the directory served. Required.
	Dir *vmdir.Directory
	// TLS enables LDAPS on a second listener and StartTLS on the plain one.
	// nil leaves both off.
	TLS *tls.Config
	// Faults, if set, is consulted before each client request; see Faults.
	Faults Faults
}

// Faults injects failures into a Server. Before is called with the
// operation name ("connect" once per accepted connection, then "bind",
// "unbind", "search", "add", "modify", "delete", "modifydn", "compare",
// "abandon", "extended" or "starttls" per request) before the request is
// handled. It may sleep to model a slow server. An error wrapping ErrDrop
// drops the client connection without a reply, as a crashed or unreachable
// server would. Any other error fails that one request, which is not
// performed: the client gets result 80 (other) with the error's text as
// the diagnostic message, and the connection stays usable. On "connect" and "unbind",
// which have no result to carry it, any error drops the connection; a
// failed "abandon" is ignored. Before is called from many goroutines at
// once, and Close waits for the calls in progress to return.
//
// Result 80 rather than 51 busy or 52 unavailable: those two tell a
// client that the server is, for now, unable to do anything and that the
// request may be retried, which a client library may do on its own and so
// hide the fault from the code under test; 80 is LDAP's server error, the
// counterpart of the HTTP 500 and SOAP SystemError the lab's other servers
// answer the same fault with.
type Faults interface {
	Before(op string) error
}

// ErrDrop, returned or wrapped by Faults.Before, makes the server close
// the client connection without answering.
var ErrDrop = errors.New("drop connection")

// Server is a running LDAP server. Close stops it.
type Server struct {
	cfg      Config
	backend  *gldap.Server
	backAddr string
	runErr   chan error // receives what gldap's Run returns

	plain net.Listener
	ldaps net.Listener

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
	closeCh chan struct{}
	wg      sync.WaitGroup

	h *handlers
}

// Start starts a server for cfg.Dir listening on 127.0.0.1 on a free port
// (and, with cfg.TLS, a second one for LDAPS). The server stops when ctx is
// done or Close is called.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == nil {
		return nil, errors.New("start ldap server: config has no directory")
	}
	s := &Server{cfg: cfg, conns: map[net.Conn]struct{}{}, closeCh: make(chan struct{})}
	s.h = newHandlers(cfg.Dir)
	if err := s.startBackend(); err != nil {
		return nil, fmt.Errorf("start ldap server: %w", err)
	}
	var err error
	if s.plain, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		_ = s.backend.Stop()
		return nil, fmt.Errorf("start ldap server: %w", err)
	}
	if cfg.TLS != nil {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			_ = s.plain.Close()
			_ = s.backend.Stop()
			return nil, fmt.Errorf("start ldaps server: %w", err)
		}
		s.ldaps = tls.NewListener(raw, cfg.TLS)
	}
	s.wg.Add(1)
	go s.accept(s.plain, false)
	if s.ldaps != nil {
		s.wg.Add(1)
		go s.accept(s.ldaps, true)
	}
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				_ = s.Close()
			case <-s.closeCh:
			}
		}()
	}
	return s, nil
}

// startBackend runs gldap on a free loopback port. gldap does not report
// the address it bound, so a port is picked, released and handed to Run;
// if another process takes it in between, Run fails and we try again.
func (s *Server) startBackend() error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr := l.Addr().String()
		_ = l.Close()

		srv, err := gldap.NewServer(gldap.WithLogger(hclog.NewNullLogger()), gldap.WithOnClose(s.h.connClosed))
		if err != nil {
			return err
		}
		if err := srv.Router(s.h.mux()); err != nil {
			return err
		}
		runErr := make(chan error, 1)
		go func() { runErr <- srv.Run(addr) }()
		if err := waitListening(addr, runErr); err != nil {
			lastErr = err
			_ = srv.Stop()
			continue
		}
		s.backend, s.backAddr, s.runErr = srv, addr, runErr
		return nil
	}
	return fmt.Errorf("run gldap backend: %w", lastErr)
}

// waitListening waits until addr accepts connections or Run reports an
// error.
func waitListening(addr string, runErr <-chan error) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-runErr:
			if err == nil {
				err = errors.New("gldap Run returned early")
			}
			return err
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			select {
			case err := <-runErr: // lost a race for the port
				if err == nil {
					err = errors.New("gldap Run returned early")
				}
				return err
			default:
				return nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("gldap did not listen on %s in time", addr)
}

// LDAPAddr returns the host:port of the plain LDAP listener.
func (s *Server) LDAPAddr() string { return s.plain.Addr().String() }

// LDAPSAddr returns the host:port of the LDAPS listener, or "" when the
// server has no TLS configuration.
func (s *Server) LDAPSAddr() string {
	if s.ldaps == nil {
		return ""
	}
	return s.ldaps.Addr().String()
}

// Close stops the listeners, drops every connection and stops the
// backend. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closeCh)
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()

	errs := []error{s.plain.Close()}
	if s.ldaps != nil {
		errs = append(errs, s.ldaps.Close())
	}
	s.wg.Wait()
	errs = append(errs, s.backend.Stop(), <-s.runErr) // Run returns once stopped
	return errors.Join(ignoreClosed(errs)...)
}

func ignoreClosed(errs []error) []error {
	var out []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			out = append(out, err)
		}
	}
	return out
}

// track registers c for Close; it returns false when the server is closing.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) accept(l net.Listener, isTLS bool) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return // listener closed
		}
		if !s.track(c) {
			_ = c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.serveConn(c, isTLS)
		}()
	}
}
