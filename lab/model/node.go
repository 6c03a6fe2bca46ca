package model

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"runbook/lab/pki"
)

// NodeType is the deployment type of a node, as
// /etc/vmware/deployment.node.type holds it.
type NodeType string

// Node types.
const (
	// Embedded is a vCenter Server with an embedded PSC (vmdir, STS, VMCA).
	Embedded NodeType = "embedded"
	// Infrastructure is an external PSC: vmdir, STS and VMCA, no vCenter.
	Infrastructure NodeType = "infrastructure"
	// Management is a vCenter Server that uses an external PSC.
	Management NodeType = "management"
)

// Node is one appliance of the SSO domain.
type Node struct {
	// PNID is the node's primary network identifier (its FQDN).
	PNID string
	// Type is the deployment type.
	Type NodeType
	// MachineID is the vmafd machine id (a UUID).
	MachineID string
	// IP is the address the lab's servers for this node listen on.
	IP string
	// DisplayIP is the address the appliance would have on a real network;
	// it appears in certificates and command output.
	DisplayIP string
	// Site is the SSO site the node belongs to.
	Site string
	// Root is the directory on disk that holds the node's file tree, as the
	// SSH/SFTP server serves it; map appliance paths into it with Path.
	Root string
	// RootPassword is the appliance's root password for SSH.
	RootPassword string
	// MachineAccountPassword is the password of the node's vmdir machine
	// account (dcAccountPassword).
	MachineAccountPassword string
	// VECS is the node's certificate store.
	VECS *VECS
	// Services are the node's services.
	Services *Services

	accountDN string
	online    atomic.Bool
	paused    atomic.Bool
}

// HasDirectory reports whether the node runs vmdir, STS and VMCA (embedded
// and infrastructure nodes).
func (n *Node) HasDirectory() bool { return n.Type != Management }

// HasVCenter reports whether the node runs vCenter Server (embedded and
// management nodes).
func (n *Node) HasVCenter() bool { return n.Type != Infrastructure }

// AccountDN returns the DN of the node's vmdir machine account: under
// ou=Domain Controllers for nodes with a directory, ou=Computers otherwise.
func (n *Node) AccountDN() string { return n.accountDN }

// Online reports whether the node is reachable; the lab's servers refuse
// connections to an offline node.
func (n *Node) Online() bool { return n.online.Load() }

// ReplicationPaused reports whether the node has stopped consuming changes
// from its replication partners (see Domain.Agreements).
func (n *Node) ReplicationPaused() bool { return n.paused.Load() }

// Path maps an absolute appliance path such as /var/lib/vmware/vmca/root.cer
// to the file in the node's tree. ".." cannot climb above the tree. It does
// not resolve symbolic links: use OpenRoot to access files when the tree may
// contain links written by a client.
func (n *Node) Path(p string) string {
	clean := filepath.Clean("/" + filepath.FromSlash(p))
	return filepath.Join(n.Root, clean)
}

// OpenRoot opens the node's tree as an os.Root, which confines every access,
// symbolic links included, to the tree.
func (n *Node) OpenRoot() (*os.Root, error) {
	r, err := os.OpenRoot(n.Root)
	if err != nil {
		return nil, fmt.Errorf("open node root: %w", err)
	}
	return r, nil
}

// ReadFile reads the appliance file p.
func (n *Node) ReadFile(p string) ([]byte, error) {
	r, err := n.OpenRoot()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := r.ReadFile(rel(p))
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, n.PNID, err)
	}
	return b, nil
}

// WriteFile writes the appliance file p, creating its parent directories.
func (n *Node) WriteFile(p string, data []byte, perm os.FileMode) error {
	r, err := n.OpenRoot()
	if err != nil {
		return err
	}
	defer r.Close()
	if dir := filepath.Dir(rel(p)); dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write %s on %s: %w", p, n.PNID, err)
		}
	}
	if err := r.WriteFile(rel(p), data, perm); err != nil {
		return fmt.Errorf("write %s on %s: %w", p, n.PNID, err)
	}
	return nil
}

// AppendFile appends data to the appliance file p, creating it and its
// parent directories.
func (n *Node) AppendFile(p string, data []byte) error {
	r, err := n.OpenRoot()
	if err != nil {
		return err
	}
	defer r.Close()
	if dir := filepath.Dir(rel(p)); dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("append to %s on %s: %w", p, n.PNID, err)
		}
	}
	f, err := r.OpenFile(rel(p), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append to %s on %s: %w", p, n.PNID, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("append to %s on %s: %w", p, n.PNID, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("append to %s on %s: %w", p, n.PNID, err)
	}
	return nil
}

// rel turns an appliance path into a path relative to the node root.
func rel(p string) string {
	r := strings.TrimPrefix(filepath.Clean("/"+filepath.FromSlash(p)), string(filepath.Separator))
	if r == "" {
		return "."
	}
	return r
}

// MachineCert returns the node's current Machine SSL certificate
// (MACHINE_SSL_CERT/__MACHINE_CERT) and the same as a tls.Certificate with
// the entry's chain and key, read from VECS at call time so that a
// replacement takes effect at once. Both are zero when the entry is missing
// or unusable.
func (n *Node) MachineCert() (*x509.Certificate, tls.Certificate) {
	e, err := n.VECS.Get(StoreMachineSSL, AliasMachineCert)
	if err != nil || len(e.Certs) == 0 {
		return nil, tls.Certificate{}
	}
	c, err := pki.ParseCert(e.Certs[0], e.Key)
	if err != nil || c.Key == nil {
		return nil, tls.Certificate{}
	}
	return c.X509, c.TLS(e.Certs[1:]...)
}

// StoreCert returns the parsed leaf certificate of entry alias in store.
func (n *Node) StoreCert(store, alias string) (*x509.Certificate, error) {
	e, err := n.VECS.Get(store, alias)
	if err != nil {
		return nil, err
	}
	if len(e.Certs) == 0 {
		return nil, fmt.Errorf("entry %s in %s has no certificate", alias, store)
	}
	c, err := x509.ParseCertificate(e.Certs[0])
	if err != nil {
		return nil, fmt.Errorf("parse %s/%s: %w", store, alias, err)
	}
	return c, nil
}
