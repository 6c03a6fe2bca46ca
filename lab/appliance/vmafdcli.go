package appliance

import (
	"context"
	"fmt"
	"io"

	"runbook/lab/sshd"
)

const errCannotConnectVmafd = 1021

const vmafdUsage = `Usage: vmafd-cli { arguments }

Arguments:

	get-status --server-name <server name>
	get-domain-state --server-name <server name>
	get-domain-name --server-name <server name>
	get-ls-location --server-name <server name>
	get-dc-name --server-name <server name>
	get-pnid-url --server-name <server name>
	get-pnid --server-name <server name>
	get-site-name --server-name <server name>
	get-machine-id --server-name <server name>
	help
`

// vmafdMessages are vmafd-cli's messages and exit statuses for its errors.
var vmafdMessages = map[int]struct {
	status int
	msg    string
}{
	errLocalOptionUnknown: {2, "An unknown option was present on the command line."},
	errLocalOptionInvalid: {3, "The options present on the command line are not valid."},
	errCannotConnectVmafd: {20, "Could not connect to the local service VMware AFD.\nVerify VMware AFD is running."},
}

func vmafdFail(inv *sshd.Invocation, code int) int {
	if code == errInvalidParameter || code == errLocalOptionUnknown || code == errLocalOptionInvalid {
		io.WriteString(inv.Stdout, vmafdUsage)
	}
	if m, ok := vmafdMessages[code]; ok {
		fmt.Fprintf(inv.Stderr, "Error %d: %s\n", code, m.msg)
		return m.status
	}
	fmt.Fprintf(inv.Stderr, "Error %d: %s\n", code, vmafdErrorString(code))
	return 1
}

// vmafdCLI is /usr/lib/vmware-vmafd/bin/vmafd-cli.
func (a *appliance) vmafdCLI(_ context.Context, inv *sshd.Invocation) int {
	args := inv.Args[1:]
	if len(args) == 0 {
		return vmafdFail(inv, errInvalidParameter)
	}
	if args[0] == "help" {
		io.WriteString(inv.Stdout, vmafdUsage)
		return 0
	}
	dc := a.d.DCName(a.n)
	values := map[string]func() string{
		"get-pnid":         func() string { return a.n.PNID },
		"get-pnid-url":     func() string { return "https://" + a.n.PNID },
		"get-machine-id":   func() string { return a.n.MachineID },
		"get-domain-name":  func() string { return a.d.Name },
		"get-site-name":    func() string { return a.n.Site },
		"get-dc-name":      func() string { return dc },
		"get-ls-location":  func() string { return "https://" + dc + "/lookupservice/sdk" },
		"get-status":       func() string { return "Running" },
		"get-domain-state": func() string { return domainState(a.n.HasDirectory()) },
	}
	get, ok := values[args[0]]
	if !ok {
		return vmafdFail(inv, errLocalOptionUnknown)
	}
	var server string
	for i := 1; i < len(args); i++ {
		if args[i] != "--server-name" {
			return vmafdFail(inv, errLocalOptionUnknown)
		}
		if i+1 < len(args) {
			if server != "" {
				return vmafdFail(inv, errLocalOptionInvalid)
			}
			server = args[i+1]
			i++
		}
	}
	if server == "" {
		return vmafdFail(inv, errLocalOptionInvalid)
	}
	if server != "localhost" && a.d.Node(server) != a.n {
		// Remote vmafd calls need DCE-RPC credentials the lab does not model.
		return vmafdFail(inv, errCannotConnectVmafd)
	}
	if ok, err := a.n.Services.Running("vmafdd"); err != nil || !ok {
		return vmafdFail(inv, errCannotConnectVmafd)
	}
	fmt.Fprintln(inv.Stdout, get())
	return 0
}

// domainState is what get-domain-state prints: nodes running a directory
// are domain controllers, the others domain clients.
func domainState(controller bool) string {
	if controller {
		return "Controller"
	}
	return "Client"
}
