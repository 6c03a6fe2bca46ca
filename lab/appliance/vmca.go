package appliance

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"runbook/lab/model"
	"runbook/lab/pki"
)

// VMCA policy the lab applies when it signs.
const (
	// vmcaValidity is how long VMCA-signed certificates live (VMCA caps
	// requests at two years, and at the root's own expiry).
	vmcaValidity = 2 * 365 * 24 * time.Hour
	// vmcaRootValidity is how long a regenerated VMCA root lives.
	vmcaRootValidity = 10 * 365 * 24 * time.Hour
	// vmcaPredate is how far before now VMCA starts a certificate's validity.
	vmcaPredate = 10 * time.Minute
)

// ErrVMCAUnavailable means the VMCA service that would sign is not
// reachable or not running.
var ErrVMCAUnavailable = errors.New("vmca service is not available")

// ErrRootExpired means the VMCA root has expired, so VMCA cannot sign.
var ErrRootExpired = errors.New("vmca root certificate has expired")

// vmcaNode returns the node whose VMCA serves n: n itself when it runs
// one, else its domain controller.
func vmcaNode(d *model.Domain, n *model.Node) *model.Node {
	if n.HasDirectory() {
		return n
	}
	return d.Node(d.DCName(n))
}

// checkVMCA reports whether the VMCA service on node v can be used.
func checkVMCA(v *model.Node) error {
	if v == nil || !v.HasDirectory() || !v.Online() {
		return ErrVMCAUnavailable
	}
	if ok, err := v.Services.Running("vmcad"); err != nil || !ok {
		return ErrVMCAUnavailable
	}
	return nil
}

// vmcaReady reports whether the VMCA of node v can sign: when v's VMCA
// root has expired the error wraps ErrRootExpired and says how that is
// repaired, since no certificate it could issue would be of use; otherwise
// it is checkVMCA's verdict.
func vmcaReady(d *model.Domain, v *model.Node) error {
	if v != nil && v.HasDirectory() && v.Online() {
		if err := checkRoot(d, v); err != nil {
			return err
		}
	}
	return checkVMCA(v)
}

// checkRoot fails with ErrRootExpired when the domain's VMCA root has
// expired, naming it and the repair: a new root from certificate-manager
// option 8 on v, the node that runs VMCA.
func checkRoot(d *model.Domain, v *model.Node) error {
	ca := d.VMCARoot()
	if !d.Now().After(ca.X509.NotAfter) {
		return nil
	}
	return fmt.Errorf("%w: %s expired on %s; regenerate it with certificate-manager option 8 (Reset all Certificates) on %s",
		ErrRootExpired, pki.SubjectDN(ca.X509), ca.X509.NotAfter.UTC().Format("2006-01-02 15:04:05 GMT"), v.PNID)
}

// checkRootOp reports whether node v can take a new VMCA root: it must
// be reachable and run its directory, where the root is published. vmcad
// need not run (the lab's vmcad does not start while its root has
// expired, and a new root is how that is repaired).
func checkRootOp(v *model.Node) error {
	if v == nil || !v.HasDirectory() || !v.Online() {
		return ErrVMCAUnavailable
	}
	if !running(v, "vmdird") {
		return fmt.Errorf("%w: vmdird is not running on %s", ErrVMCAUnavailable, v.PNID)
	}
	return nil
}

// vmcaIssue signs req with the VMCA root, valid from a little before the
// lab's now for two years (capped by the root's expiry), with key (a key
// from the domain's sequence when nil).
func vmcaIssue(d *model.Domain, req pki.Request, key *rsa.PrivateKey) (*pki.Cert, error) {
	ca := d.VMCARoot()
	now := d.Now()
	if !pki.ValidAt(ca.X509, now) {
		return nil, fmt.Errorf("sign %q: %w", req.CommonName, ErrRootExpired)
	}
	if key == nil {
		k, err := d.Keys.Next()
		if err != nil {
			return nil, fmt.Errorf("sign %q: %w", req.CommonName, err)
		}
		key = k
	}
	req.Key = key
	req.NotBefore = now.Add(-vmcaPredate)
	req.NotAfter = now.Add(vmcaValidity)
	if req.NotAfter.After(ca.X509.NotAfter) {
		req.NotAfter = ca.X509.NotAfter
	}
	c, err := ca.Issue(req)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", req.CommonName, err)
	}
	return c, nil
}

// newRootCA creates a self-signed VMCA root from req, valid from a little
// before the lab's now for ten years, with a key from the domain's sequence.
func newRootCA(d *model.Domain, req pki.Request) (*pki.CA, error) {
	key, err := d.Keys.Next()
	if err != nil {
		return nil, fmt.Errorf("create root: %w", err)
	}
	now := d.Now()
	req.Key, req.NotBefore, req.NotAfter = key, now.Add(-vmcaPredate), now.Add(vmcaRootValidity)
	ca, err := pki.NewRootCA(req)
	if err != nil {
		return nil, fmt.Errorf("create root: %w", err)
	}
	return ca, nil
}

// installRoot makes ca the VMCA root, as `certool --rootca` and
// certificate-manager's root replacement do: the previous root files are
// kept as root.cer.0 and privatekey.pem.0 on every node that runs VMCA,
// the new files written, the root and its CRL published under
// cn=Certificate-Authorities and added to every node's TRUSTED_ROOTS and
// TRUSTED_ROOT_CRLS. Every write first consults the ssh fault injection.
func installRoot(d *model.Domain, ca *pki.CA) error {
	crl, err := ca.CRL(d.Now())
	if err != nil {
		return fmt.Errorf("install root: %w", err)
	}
	d.Lock()
	nodes := append([]*model.Node(nil), d.Nodes...)
	d.Unlock()
	for _, n := range nodes {
		if !n.HasDirectory() {
			continue
		}
		if err := d.Faults.Before(model.ProtoSSH, "write"); err != nil {
			return fmt.Errorf("install root on %s: %w", n.PNID, err)
		}
		for _, f := range []struct {
			path string
			data []byte
			perm os.FileMode
		}{{model.PathRootCert, ca.PEM(), 0o644}, {model.PathRootKey, ca.KeyPEM(), 0o600}} {
			if old, err := n.ReadFile(f.path); err == nil {
				if err := n.WriteFile(f.path+".0", old, 0o600); err != nil {
					return fmt.Errorf("install root: %w", err)
				}
			}
			if err := n.WriteFile(f.path, f.data, f.perm); err != nil {
				return fmt.Errorf("install root: %w", err)
			}
		}
	}
	d.SetVMCARoot(ca)
	if err := publishRoot(d, ca, crl, nodes); err != nil {
		return fmt.Errorf("install root: %w", err)
	}
	return nil
}

// publishRoot publishes ca under cn=Certificate-Authorities (unless it is
// there) and adds it to the TRUSTED_ROOTS and TRUSTED_ROOT_CRLS stores of
// nodes, as `dir-cli trustedcert publish` followed by vmafd's refresh does.
func publishRoot(d *model.Domain, ca *pki.CA, crl []byte, nodes []*model.Node) error {
	if _, err := d.Dir.Get(d.CADN(ca.X509)); err != nil {
		if err := d.Faults.Before(model.ProtoSSH, "add"); err != nil {
			return err
		}
		if err := d.PublishCA(ca.X509, crl); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if err := d.Faults.Before(model.ProtoSSH, "create"); err != nil {
			return err
		}
		if err := n.VECS.Replace(model.StoreTrustedRoots, model.Entry{Alias: pki.SHA1Hex(ca.DER), Type: model.TrustedCert, Certs: [][]byte{ca.DER}}); err != nil {
			return err
		}
		if len(crl) > 0 {
			if err := n.VECS.Replace(model.StoreTrustedRootCRLs, model.Entry{Alias: pki.SHA1Hex(crl), Type: model.CRL, CRL: crl}); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseRSAKey reads a PEM private key file's content as certool does.
func parseRSAKey(data []byte) (*rsa.PrivateKey, error) {
	signer, _, err := pki.ParseKey(data)
	if err != nil {
		return nil, err
	}
	k, ok := signer.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, not RSA", signer)
	}
	return k, nil
}

// publicKeyPEM returns key's public half as a PEM "PUBLIC KEY" block.
func publicKeyPEM(key *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
