package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/lab/vmdir"
)

// ErrRolledBack marks a certificate-manager operation that failed and
// whose changes were rolled back: the node's certificates, the
// registrations and the services are as they were before it, except that
// BACKUP_STORE holds the backups the operation took and the logs grew.
var ErrRolledBack = errors.New("operation failed and was rolled back")

// ErrRollbackFailed marks an operation whose automatic rollback failed too.
var ErrRollbackFailed = errors.New("automatic rollback failed")

// Rollback groups, in the order certificate-manager rolls them back.
const (
	groupMachineSSL    = "Machine SSL Cert"
	groupSolutionUsers = "Solution User Certs"
	groupRoot          = "Root Cert"
)

// opRun is one certificate-manager operation: its console, log and the
// undo actions that roll it back.
type opRun struct {
	ctx  context.Context
	d    *model.Domain
	n    *model.Node
	out  io.Writer
	undo map[string][]func() error
	// regs and services are the state before the operation.
	regs     []model.Registration
	services []string
}

func newOp(ctx context.Context, d *model.Domain, n *model.Node, out io.Writer) (*opRun, error) {
	regs, err := d.Registrations()
	if err != nil {
		return nil, err
	}
	running, _ := n.Services.Status()
	return &opRun{ctx: ctx, d: d, n: n, out: out, undo: map[string][]func() error{}, regs: regs, services: running}, nil
}

// status prints a progress line and logs it.
func (o *opRun) status(pct int, msg string) {
	fmt.Fprintf(o.out, "Status : %d%% Completed [%s]\n", pct, msg)
	o.log("INFO", msg)
}

// log appends a line to certificate-manager.log.
func (o *opRun) log(level, msg string) { cmLog(o.d, o.n, level, msg) }

// cmLog appends a line to node n's certificate-manager.log.
func cmLog(d *model.Domain, n *model.Node, level, msg string) {
	line := fmt.Sprintf("%s %s certificate-manager %s\n", d.Now().UTC().Format("2006-01-02T15:04:05.000Z"), level, msg)
	// A log that cannot be written does not change the outcome.
	_ = n.AppendFile(PathCertificateManagerLog, []byte(line))
}

func (o *opRun) before(op string) error { return o.d.Faults.Before(model.ProtoSSH, op) }

func (o *opRun) onRollback(group string, fn func() error) {
	o.undo[group] = append(o.undo[group], fn)
}

// checkCancel turns a cancelled context into an operation failure.
func (o *opRun) checkCancel() error {
	if err := o.ctx.Err(); err != nil {
		return fmt.Errorf("operation interrupted: %w", err)
	}
	return nil
}

// ReplaceMachineSSL is certificate-manager option 3: it backs up node n's
// Machine SSL certificate into BACKUP_STORE (bkp___MACHINE_CERT, one
// generation), replaces it with a new VMCA certificate for cfg (Name as
// CN, the Hostname list and IPAddress list as subject alternative names),
// re-points the Lookup Service registrations that trusted the old
// certificate (UpdateLookupService), then stops and starts the node's
// services. When any step fails, including the service start, it rolls
// everything back and returns an error wrapping ErrRolledBack. Progress
// goes to out as certificate-manager prints it.
//
// A VMCA root that has expired fails it before anything changes, with an
// error wrapping ErrRootExpired that points to option 8: a certificate
// chained to an expired root would be of no use.
func ReplaceMachineSSL(ctx context.Context, d *model.Domain, n *model.Node, cfg CertoolConfig, out io.Writer) error {
	if err := vmcaReady(d, vmcaNode(d, n)); err != nil {
		return refuse(d, n, "replace machine ssl certificate", err)
	}
	o, err := newOp(ctx, d, n, out)
	if err != nil {
		return fmt.Errorf("replace machine ssl certificate: %w", err)
	}
	err = o.replaceMachineSSL(cfg, 0)
	if err == nil {
		err = o.restartServices()
	}
	if err != nil {
		return o.fail("replace machine ssl certificate", err)
	}
	o.status(100, "All tasks completed successfully")
	return nil
}

// ReplaceSolutionUsers is certificate-manager option 6: for every
// solution user of node n (a VECS store with a service principal
// <store>-<machineID>) it backs up the certificate into BACKUP_STORE
// (bkp_<store>), issues a new VMCA certificate, replaces the store's entry
// and the service principal's certificate in vmdir, then restarts the
// node's services; any failure rolls everything back (ErrRolledBack). An
// expired VMCA root fails it before anything changes (ErrRootExpired), as
// for ReplaceMachineSSL.
func ReplaceSolutionUsers(ctx context.Context, d *model.Domain, n *model.Node, out io.Writer) error {
	if err := vmcaReady(d, vmcaNode(d, n)); err != nil {
		return refuse(d, n, "replace solution user certificates", err)
	}
	o, err := newOp(ctx, d, n, out)
	if err != nil {
		return fmt.Errorf("replace solution user certificates: %w", err)
	}
	err = o.replaceSolutionUsers(0, 60)
	if err == nil {
		err = o.restartServices()
	}
	if err != nil {
		return o.fail("replace solution user certificates", err)
	}
	o.status(100, "All tasks completed successfully")
	return nil
}

// ResetAllCertificates is certificate-manager option 8 (and 4): on a node
// that runs VMCA it regenerates the VMCA root (CN = vmcaName, the other
// subject attributes from cfg; the previous root kept as root.cer.0 and
// still trusted), publishes it to vmdir and every node's TRUSTED_ROOTS,
// then replaces the Machine SSL certificate (as ReplaceMachineSSL, with
// the Lookup Service update) and every solution-user certificate, and
// restarts the services. Any failure rolls everything back
// (ErrRolledBack).
//
// The root is made the way certificate-manager makes it, as `certool
// --selfca` and `--rootca` do, which needs the node and its directory but
// not a running vmcad: option 8 is how a VMCA root that has expired (and
// with it vmcad, which does not start on an expired root) is repaired.
// With the new root in place it starts vmcad if it is stopped, then has
// it sign the other certificates. It does not touch the STS signing
// credential, which certificate-manager does not replace (that is
// fixsts.sh's work, reference §2 and §3), so where that credential's chain
// ends in the expired root the service restart fails and the operation
// rolls back.
//
// On a management node it skips the root and needs its domain
// controller's VMCA to sign, with a root that has not expired
// (ErrRootExpired: reset the root on the domain controller first).
func ResetAllCertificates(ctx context.Context, d *model.Domain, n *model.Node, cfg CertoolConfig, vmcaName string, out io.Writer) error {
	const what = "reset all certificates"
	if n.HasDirectory() {
		if err := checkRootOp(n); err != nil {
			return refuse(d, n, what, err)
		}
	} else if err := vmcaReady(d, vmcaNode(d, n)); err != nil {
		return refuse(d, n, what, err)
	}
	o, err := newOp(ctx, d, n, out)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	err = nil
	if n.HasDirectory() {
		err = o.replaceRoot(cfg, vmcaName)
		if err == nil {
			err = o.startVMCA()
		}
	}
	if err == nil {
		err = o.replaceMachineSSL(cfg, 45)
	}
	if err == nil {
		err = o.replaceSolutionUsers(50, 70)
	}
	if err == nil {
		err = o.restartServices()
	}
	if err != nil {
		return o.fail(what, err)
	}
	o.status(100, "All tasks completed successfully")
	return nil
}

// refuse logs why an operation cannot start and returns the error to
// report; nothing has changed, so there is nothing to roll back.
func refuse(d *model.Domain, n *model.Node, what string, cause error) error {
	err := fmt.Errorf("%s: %w", what, cause)
	cmLog(d, n, "ERROR", err.Error())
	return err
}

// fail logs cause, rolls the operation back and returns the error to
// report.
func (o *opRun) fail(what string, cause error) error {
	o.log("ERROR", fmt.Sprintf("%s failed: %v", what, cause))
	if rerr := o.rollback(); rerr != nil {
		return fmt.Errorf("%s: %w (%w: %v)", what, cause, ErrRollbackFailed, rerr)
	}
	return fmt.Errorf("%s: %w (%w)", what, cause, ErrRolledBack)
}

// rollback undoes the operation: certificates group by group, the
// registrations, then the services as they were.
func (o *opRun) rollback() error {
	fmt.Fprintln(o.out, "Status : 0% Completed [Operation failed, performing automatic rollback]")
	o.log("INFO", "Operation failed, performing automatic rollback")
	fail := func(err error) error {
		fmt.Fprintln(o.out, "Error while performing rollback operation, please try Reset operation...")
		o.log("ERROR", "rollback failed: "+err.Error())
		return err
	}
	pct := 0
	for _, g := range []string{groupMachineSSL, groupSolutionUsers, groupRoot} {
		fns := o.undo[g]
		if len(fns) == 0 {
			continue
		}
		fmt.Fprintf(o.out, "Performing rollback of %s...\n", g)
		pct += 25
		fmt.Fprintf(o.out, "Rollback Status : %d%% Completed [Rollback %s...]\n", pct, g)
		for i := len(fns) - 1; i >= 0; i-- {
			if err := fns[i](); err != nil {
				return fail(err)
			}
		}
	}
	if err := o.restoreRegistrations(); err != nil {
		return fail(err)
	}
	o.n.Services.StopAll()
	for _, s := range o.services {
		if err := o.n.Services.Start(s); err != nil {
			o.log("ERROR", "rollback: "+err.Error())
		}
	}
	fmt.Fprintln(o.out, "Rollback Status : 100% Completed [Rollback completed successfully]")
	o.log("INFO", "Rollback completed successfully")
	return nil
}

// restoreRegistrations saves back every registration that differs from
// what it was before the operation.
func (o *opRun) restoreRegistrations() error {
	for _, before := range o.regs {
		now, err := o.d.Registration(before.ServiceID)
		if err == nil && reflect.DeepEqual(now, before) {
			continue
		}
		if err := o.before("set"); err != nil {
			return fmt.Errorf("restore registration %s: %w", before.ServiceID, err)
		}
		if err := o.d.SaveRegistration(before); err != nil {
			return fmt.Errorf("restore registration %s: %w", before.ServiceID, err)
		}
	}
	return nil
}

// restartServices stops and starts the node's services as
// `service-control --stop --ignore --all` and `--start --all` do.
func (o *opRun) restartServices() error {
	if err := o.checkCancel(); err != nil {
		return err
	}
	o.status(70, "stopping services...")
	o.n.Services.StopAll()
	o.status(85, "starting services...")
	if err := o.n.Services.StartAll(); err != nil {
		fmt.Fprintln(o.out, "Error while starting services, please see log for more details")
		return fmt.Errorf("start services: %w", err)
	}
	return o.checkCancel()
}

// backup copies an entry into BACKUP_STORE and arranges for the entry to
// be restored on rollback.
func (o *opRun) backup(group, store, alias string) (model.Entry, error) {
	old, err := o.n.VECS.Get(store, alias)
	if err != nil {
		return model.Entry{}, fmt.Errorf("back up %s/%s: %w", store, alias, err)
	}
	if err := o.before("create"); err != nil {
		return model.Entry{}, fmt.Errorf("back up %s/%s: %w", store, alias, err)
	}
	if err := o.n.VECS.Backup(store, alias); err != nil {
		return model.Entry{}, err
	}
	o.onRollback(group, func() error {
		if err := o.before("create"); err != nil {
			return fmt.Errorf("restore %s/%s: %w", store, alias, err)
		}
		return o.n.VECS.Replace(store, old)
	})
	return old, nil
}

// replaceEntry replaces an entry with a new certificate and key, checking
// that the certificate really changed, as certificate-manager verifies.
func (o *opRun) replaceEntry(store string, old model.Entry, c *pki.Cert) error {
	if err := o.before("create"); err != nil {
		return fmt.Errorf("replace %s/%s: %w", store, old.Alias, err)
	}
	e := model.Entry{Alias: old.Alias, Type: model.PrivateKey, Certs: [][]byte{c.DER, o.d.VMCARoot().DER}, Key: c.KeyPKCS8}
	if err := o.n.VECS.Replace(store, e); err != nil {
		return fmt.Errorf("replace %s/%s: %w", store, old.Alias, err)
	}
	now, err := o.n.StoreCert(store, old.Alias)
	if err != nil {
		return fmt.Errorf("replace %s/%s: %w", store, old.Alias, err)
	}
	if bytes.Equal(now.Raw, old.Cert()) {
		return fmt.Errorf("%s certificate replacement failed. SerialNumber and Thumbprint not changed after replacement, certificates are same before and after", store)
	}
	return nil
}

func (o *opRun) replaceMachineSSL(cfg CertoolConfig, pct int) error {
	if err := o.checkCancel(); err != nil {
		return err
	}
	o.status(pct, "Replacing Machine SSL Cert...")
	req, err := cfg.Request()
	if err != nil {
		return fmt.Errorf("machine ssl request: %w", err)
	}
	req.Usage = pki.UsageServer | pki.UsageClient
	old, err := o.backup(groupMachineSSL, model.StoreMachineSSL, model.AliasMachineCert)
	if err != nil {
		return err
	}
	c, err := o.issue(req)
	if err != nil {
		return err
	}
	if err := o.replaceEntry(model.StoreMachineSSL, old, c); err != nil {
		return err
	}
	o.log("INFO", "Replaced Machine SSL certificate; updating Lookup Service registrations")
	if _, err := UpdateLookupService(o.ctx, o.d, o.n, pki.Thumbprint(old.Cert()), pki.EncodeCert(c.DER), o.out); err != nil {
		return err
	}
	return nil
}

// issue has the VMCA that serves the node sign req, as certool --gencert
// and --genCIScert ask it to: VMCA must run, with a root that has not
// expired.
func (o *opRun) issue(req pki.Request) (*pki.Cert, error) {
	if err := vmcaReady(o.d, vmcaNode(o.d, o.n)); err != nil {
		return nil, fmt.Errorf("sign %q: %w", req.CommonName, err)
	}
	return vmcaIssue(o.d, req, nil)
}

// solutionUserStores are the solution users of node n: VECS stores whose
// <store>-<machineID> is a service principal in vmdir.
func solutionUserStores(d *model.Domain, n *model.Node) []string {
	var out []string
	for _, s := range append(slices.Clone(model.SolutionUsers), "hvc", "wcp") {
		if !hasStore(n.VECS, s) {
			continue
		}
		if _, err := d.Dir.Get(d.ServicePrincipalDN(s, n)); err != nil {
			continue
		}
		out = append(out, s)
	}
	return out
}

func (o *opRun) replaceSolutionUsers(from, to int) error {
	stores := solutionUserStores(o.d, o.n)
	for i, s := range stores {
		if err := o.checkCancel(); err != nil {
			return err
		}
		o.status(from+(to-from)*i/len(stores), "Replace "+s+" Cert...")
		old, err := o.backup(groupSolutionUsers, s, s)
		if err != nil {
			return err
		}
		dn := o.d.ServicePrincipalDN(s, o.n)
		principal, err := o.d.Dir.Get(dn)
		if err != nil {
			return fmt.Errorf("read service principal %s: %w", dn, err)
		}
		req := model.SolutionUserRequest(o.n, s, o.d.Name)
		c, err := o.issue(req)
		if err != nil {
			return err
		}
		if err := o.replaceEntry(s, old, c); err != nil {
			return err
		}
		o.onRollback(groupSolutionUsers, func() error {
			if err := o.before("modify"); err != nil {
				return fmt.Errorf("restore service principal %s: %w", dn, err)
			}
			return o.d.Dir.Modify(dn, []vmdir.Change{
				{Op: vmdir.ModReplace, Attr: vmdir.Attr{Name: "vmwSTSSubjectDN", Values: principal.Values("vmwSTSSubjectDN")}},
				{Op: vmdir.ModReplace, Attr: vmdir.Attr{Name: "userCertificate", Values: principal.Values("userCertificate")}},
			})
		})
		if err := updateServicePrincipal(o.d, s+"-"+o.n.MachineID, c.X509); err != nil {
			return err
		}
	}
	return nil
}

// rootFile is a VMCA root file of a node as it was before the operation.
type rootFile struct {
	n      *model.Node
	path   string
	data   []byte
	exists bool
}

func (o *opRun) replaceRoot(cfg CertoolConfig, vmcaName string) error {
	if err := o.checkCancel(); err != nil {
		return err
	}
	o.status(0, "Replacing Root Cert...")
	req, err := cfg.Request()
	if err != nil {
		return fmt.Errorf("root request: %w", err)
	}
	if vmcaName == "" {
		vmcaName = o.n.PNID
	}
	req.CommonName = vmcaName
	req.DomainComponents = strings.Split(o.d.Name, ".")
	req.DNSNames, req.IPs = nil, nil

	// Remember what installRoot changes.
	oldRoot := o.d.VMCARoot()
	var files []rootFile
	nodes := o.nodes()
	stores := map[*model.Node][2][]string{}
	for _, n := range nodes {
		stores[n] = [2][]string{aliases(n, model.StoreTrustedRoots), aliases(n, model.StoreTrustedRootCRLs)}
		if !n.HasDirectory() {
			continue
		}
		for _, p := range []string{model.PathRootCert, model.PathRootKey, model.PathRootCert + ".0", model.PathRootKey + ".0"} {
			data, err := n.ReadFile(p)
			files = append(files, rootFile{n: n, path: p, data: data, exists: err == nil})
		}
	}
	ca, err := newRootCA(o.d, req)
	if err != nil {
		return err
	}
	_, caErr := o.d.Dir.Get(o.d.CADN(ca.X509))
	caExisted := caErr == nil
	o.onRollback(groupRoot, func() error {
		if err := o.before("write"); err != nil {
			return fmt.Errorf("restore root: %w", err)
		}
		for _, f := range files {
			if f.exists {
				if err := f.n.WriteFile(f.path, f.data, 0o600); err != nil {
					return err
				}
				continue
			}
			if r, err := f.n.OpenRoot(); err == nil {
				_ = r.Remove(strings.TrimPrefix(f.path, "/"))
				r.Close()
			}
		}
		o.d.SetVMCARoot(oldRoot)
		for n, before := range stores {
			for i, store := range []string{model.StoreTrustedRoots, model.StoreTrustedRootCRLs} {
				for _, a := range aliases(n, store) {
					if !slices.Contains(before[i], a) {
						if err := n.VECS.Delete(store, a); err != nil {
							return err
						}
					}
				}
			}
		}
		if !caExisted {
			if err := o.d.Dir.Delete(o.d.CADN(ca.X509)); err != nil && vmdir.Code(err) != vmdir.CodeNoSuchObject {
				return err
			}
		}
		return nil
	})
	if err := installRoot(o.d, ca); err != nil {
		return err
	}
	o.status(10, "Replaced Root Cert...")
	o.status(20, "Publishing Root cert...")
	return nil
}

// startVMCA starts vmcad on the node if it is stopped, as
// certificate-manager makes sure VMCA runs before it asks it for
// certificates; with the new root in place it starts even where the old
// root had expired. The rollback stops it again if it was stopped before.
func (o *opRun) startVMCA() error {
	if err := o.checkCancel(); err != nil {
		return err
	}
	if running(o.n, "vmcad") {
		return nil
	}
	if err := o.n.Services.Start("vmcad"); err != nil {
		return fmt.Errorf("start vmca service: %w", err)
	}
	o.log("INFO", "Started vmcad with the new root certificate")
	return nil
}

func (o *opRun) nodes() []*model.Node {
	o.d.Lock()
	defer o.d.Unlock()
	return slices.Clone(o.d.Nodes)
}

// aliases lists a store's aliases (none when the store is missing).
func aliases(n *model.Node, store string) []string {
	es, err := n.VECS.Entries(store)
	if err != nil {
		return nil
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Alias
	}
	return out
}
