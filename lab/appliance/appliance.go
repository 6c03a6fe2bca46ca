// Package appliance implements the commands of a vCenter appliance's root
// shell — vecs-cli, dir-cli, vmafd-cli, certool, service-control,
// vdcrepadmin, vdcadmintool, lstool.py and certificate-manager — over the
// lab model (runbook/lab/model), for the lab's SSH server (runbook/lab/sshd)
// to serve.
//
// Every command reads and writes the model, never a copy: what vecs-cli
// lists is the node's VECS, what dir-cli updates is the shared vmdir
// directory, what service-control starts are the node's model services.
// Output formats, prompts, messages and exit statuses follow the real tools
// (see shared/reference/vcenter-procedures.md); where the real tool's text
// is unknown the package says so in a comment.
//
// The certificate-manager operations are plain functions (ReplaceMachineSSL,
// ReplaceSolutionUsers, ResetAllCertificates, UpdateLookupService) so that
// tests and other packages can run them without a terminal; the
// certificate-manager command is a thin interactive front end over them.
package appliance

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"runbook/lab/model"
	"runbook/lab/pki"
	"runbook/lab/sshd"
)

// Paths of the commands on a vCenter Server Appliance.
const (
	PathVecsCLI            = "/usr/lib/vmware-vmafd/bin/vecs-cli"
	PathDirCLI             = "/usr/lib/vmware-vmafd/bin/dir-cli"
	PathVmafdCLI           = "/usr/lib/vmware-vmafd/bin/vmafd-cli"
	PathCertool            = "/usr/lib/vmware-vmca/bin/certool"
	PathCertificateManager = "/usr/lib/vmware-vmca/bin/certificate-manager"
	PathServiceControl     = "/usr/bin/service-control"
	PathVdcrepadmin        = "/usr/lib/vmware-vmdir/bin/vdcrepadmin"
	PathVdcadmintool       = "/usr/lib/vmware-vmdir/bin/vdcadmintool"
	PathLstool             = "/usr/lib/vmware-lookupsvc/tools/lstool.py"
	PathLstool6            = "/usr/lib/vmidentity/tools/scripts/lstool.py"
)

// Files the commands keep in the node's tree.
const (
	// PathCertificateManagerLog is certificate-manager's log.
	PathCertificateManagerLog = "/var/log/vmware/vmcad/certificate-manager.log"
	// PathCertoolTemplate is the certool.cfg template VMCA ships.
	PathCertoolTemplate = "/usr/lib/vmware-vmca/share/config/certool.cfg"
	// PathCertoolWorkingCopy is certificate-manager's working certool.cfg.
	PathCertoolWorkingCopy = "/var/tmp/vmware/certool.cfg"
)

// appliance is one node's command set.
type appliance struct {
	d *model.Domain
	n *model.Node
}

// Commands returns the appliance commands of node n of domain d, keyed by
// absolute path and by base name, as sshd.Config.Commands takes them.
// `python`/`python3` run the lstool.py scripts given as their first
// argument.
func Commands(d *model.Domain, n *model.Node) map[string]sshd.Command {
	a := &appliance{d: d, n: n}
	m := map[string]sshd.Command{}
	add := func(c sshd.Command, paths ...string) {
		for _, p := range paths {
			m[p] = c
			m[path.Base(p)] = c
		}
	}
	add(a.vecsCLI, PathVecsCLI)
	add(a.dirCLI, PathDirCLI)
	add(a.vmafdCLI, PathVmafdCLI)
	add(a.certool, PathCertool)
	add(a.certificateManager, PathCertificateManager)
	add(a.serviceControl, PathServiceControl, "/bin/service-control", "/sbin/service-control")
	add(a.vdcrepadmin, PathVdcrepadmin)
	add(a.vdcadmintool, PathVdcadmintool)
	add(a.lstool, PathLstool, PathLstool6)
	add(a.lsUpdateCerts, PathLsUpdateCerts, PathLsUpdateCerts6)
	add(a.python, "/usr/bin/python", "/usr/bin/python3", "/bin/python", "/bin/python3")
	return m
}

// Install writes placeholder executables at the paths of the 7.0 appliance
// commands into n's tree, so that `ls` and `test -x` see them as on a real
// appliance; the commands themselves are served by Commands whether or not
// the files exist.
func Install(n *model.Node) error {
	for _, p := range []string{PathVecsCLI, PathDirCLI, PathVmafdCLI, PathCertool, PathCertificateManager,
		PathServiceControl, PathVdcrepadmin, PathVdcadmintool, PathLstool, PathLsUpdateCerts} {
		body := "#!/bin/sh\n# " + path.Base(p) + " (simulated by the lab)\n"
		if err := n.WriteFile(p, []byte(body), 0o755); err != nil {
			return fmt.Errorf("install %s: %w", p, err)
		}
	}
	return nil
}

// before consults the domain's fault injection for a write the command is
// about to make.
func (a *appliance) before(op string) error {
	return a.d.Faults.Before(model.ProtoSSH, op)
}

// python runs `python <script> args…` for the scripts the lab implements.
func (a *appliance) python(ctx context.Context, inv *sshd.Invocation) int {
	if len(inv.Args) < 2 || strings.HasPrefix(inv.Args[1], "-") {
		fmt.Fprintln(inv.Stderr, "Python 3.7.5 (simulated by the lab): only `python <script> [args]` is supported")
		return 2
	}
	script := absPath(inv.Dir, inv.Args[1])
	switch script {
	case PathLstool, PathLstool6:
		sub := *inv
		sub.Args = append([]string{inv.Args[1]}, inv.Args[2:]...)
		return a.lstool(ctx, &sub)
	case PathLsUpdateCerts, PathLsUpdateCerts6:
		sub := *inv
		sub.Args = append([]string{inv.Args[1]}, inv.Args[2:]...)
		return a.lsUpdateCerts(ctx, &sub)
	}
	if _, err := inv.FS.Stat(inv.Rel(script)); err != nil {
		fmt.Fprintf(inv.Stderr, "%s: can't open file '%s': [Errno 2] No such file or directory\n", path.Base(inv.Args[0]), inv.Args[1])
		return 2
	}
	fmt.Fprintf(inv.Stderr, "%s: the lab does not implement the script %s\n", path.Base(inv.Args[0]), script)
	return 1
}

// absPath resolves p against dir as an appliance path.
func absPath(dir, p string) string {
	if !strings.HasPrefix(p, "/") {
		p = path.Join(dir, p)
	}
	return path.Clean(p)
}

// readFile reads an appliance file through the invocation's confined tree.
func readFile(inv *sshd.Invocation, p string) ([]byte, error) {
	return inv.FS.ReadFile(inv.Rel(p))
}

// writeFile writes an appliance file through the invocation's confined
// tree. The parent directory must exist, as for fopen.
func writeFile(inv *sshd.Invocation, p string, data []byte, perm os.FileMode) error {
	return inv.FS.WriteFile(inv.Rel(p), data, perm)
}

// pemChain is the PEM text of certs as VECS and vmdir hand it out: the
// blocks concatenated, without the final newline.
func pemChain(certs ...[]byte) string {
	return strings.TrimSuffix(string(pki.EncodeCerts(certs...)), "\n")
}

// exitCode turns a Win32/LDAP style error number into a process exit
// status, as returning a DWORD from main does.
func exitCode(code int) int {
	if c := code & 0xff; c != 0 {
		return c
	}
	return 1
}
