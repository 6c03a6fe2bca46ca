package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"runbook/lab/model"
	"runbook/lab/sshd"
)

const serviceControlUsage = `usage: service-control [-h] [--start | --stop | --status | --list]
                       [--all] [--ignore] [--vmon-profile VMON_PROFILE]
                       [svc_names [svc_names ...]]
`

// serviceControlRequest is a parsed service-control command line.
type serviceControlRequest struct {
	action string // start, stop, status, list
	all    bool
	ignore bool
	names  []string
}

func parseServiceControl(args []string) (serviceControlRequest, error) {
	var r serviceControlRequest
	var unknown []string
	for _, a := range args {
		switch a {
		case "--start", "--stop", "--status", "--list":
			act := strings.TrimPrefix(a, "--")
			if r.action != "" && r.action != act {
				return r, fmt.Errorf("argument %s: not allowed with argument --%s", a, r.action)
			}
			r.action = act
		case "--all":
			r.all = true
		case "--ignore":
			r.ignore = true
		case "-h", "--help":
			r.action = "help"
		default:
			if strings.HasPrefix(a, "-") {
				unknown = append(unknown, a)
				continue
			}
			r.names = append(r.names, a)
		}
	}
	if len(unknown) > 0 {
		return r, fmt.Errorf("unrecognized arguments: %s", strings.Join(unknown, " "))
	}
	return r, nil
}

// serviceControl is /usr/bin/service-control.
func (a *appliance) serviceControl(_ context.Context, inv *sshd.Invocation) int {
	r, err := parseServiceControl(inv.Args[1:])
	if err != nil {
		io.WriteString(inv.Stderr, serviceControlUsage)
		fmt.Fprintf(inv.Stderr, "service-control: error: %s\n", err)
		return 2
	}
	svcs := a.n.Services
	for _, name := range r.names {
		if !slices.Contains(svcs.Names(), name) {
			fmt.Fprintf(inv.Stderr, "Service-control failed. Error: Service %s does not seems to be registered with vMon\n", name)
			return 1
		}
	}
	switch r.action {
	case "help":
		io.WriteString(inv.Stdout, serviceControlUsage)
		return 0
	case "", "status":
		if r.action == "" && (len(r.names) > 0 || r.all) {
			io.WriteString(inv.Stderr, serviceControlUsage)
			fmt.Fprintln(inv.Stderr, "service-control: error: one of the arguments --start --stop --status --list is required")
			return 2
		}
		writeStatus(inv.Stdout, svcs, r.names)
		return 0
	case "list":
		for _, n := range svcs.Names() {
			fmt.Fprintf(inv.Stdout, "%s (%s)\n", n, n)
		}
		return 0
	case "stop":
		if !r.all && len(r.names) == 0 {
			fmt.Fprintln(inv.Stderr, "Service-control failed. Error: No service names or --all given")
			return 1
		}
		fmt.Fprintln(inv.Stdout, "Operation not cancellable. Please wait for it to finish...")
		if r.all {
			fmt.Fprintln(inv.Stdout, "Performing stop operation on profile: ALL...")
			svcs.StopAll()
			fmt.Fprintln(inv.Stdout, "Successfully stopped profile: ALL.")
			return 0
		}
		for _, name := range r.names {
			fmt.Fprintf(inv.Stdout, "Performing stop operation on service %s...\n", name)
			if err := svcs.Stop(name); err != nil && !r.ignore {
				fmt.Fprintf(inv.Stderr, "Service-control failed. Error: %v\n", err)
				return 1
			}
			fmt.Fprintf(inv.Stdout, "Successfully stopped service %s\n", name)
		}
		return 0
	case "start":
		if !r.all && len(r.names) == 0 {
			fmt.Fprintln(inv.Stderr, "Service-control failed. Error: No service names or --all given")
			return 1
		}
		fmt.Fprintln(inv.Stdout, "Operation not cancellable. Please wait for it to finish...")
		names := r.names
		if r.all {
			names = nil
			for _, n := range svcs.Names() {
				if auto, _ := svcs.Automatic(n); auto {
					names = append(names, n)
				}
			}
		}
		for _, name := range names {
			if running, _ := svcs.Running(name); running && r.all {
				continue
			}
			fmt.Fprintf(inv.Stdout, "Performing start operation on service %s...\n", name)
			if err := svcs.Start(name); err != nil {
				writeStartError(inv.Stderr, err)
				return 1
			}
			fmt.Fprintf(inv.Stdout, "Successfully started service %s\n", name)
		}
		if r.all {
			fmt.Fprintln(inv.Stdout, "Performing start operation on profile: ALL...")
			fmt.Fprintln(inv.Stdout, "Successfully started profile: ALL.")
		}
		return 0
	}
	return 1
}

// writeStatus prints the Stopped: and Running: groups, names sorted and
// space-separated on one indented line, as `service-control --status` does.
func writeStatus(w io.Writer, svcs *model.Services, only []string) {
	running, stopped := svcs.Status()
	filter := func(list []string) []string {
		var out []string
		for _, n := range list {
			if len(only) == 0 || slices.Contains(only, n) {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, g := range []struct {
		label string
		names []string
	}{{"Stopped", filter(stopped)}, {"Running", filter(running)}} {
		if len(g.names) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s:\n %s\n", g.label, strings.Join(g.names, " "))
	}
}

// writeStartError prints vMon's start failure as service-control does
// (the JSON problem details twice), followed by the reason the service's
// log gives, which the lab adds so the failure is diagnosable from the
// console.
func writeStartError(w io.Writer, err error) {
	var se *model.StartError
	if !errors.As(err, &se) {
		fmt.Fprintf(w, "Service-control failed. Error: %v\n", err)
		return
	}
	details := fmt.Sprintf(`{
    "detail": [
        {
            "id": "install.ciscommon.service.failstart",
            "translatable": "An error occurred while starting service '%%(0)s'",
            "args": [
                "%s"
            ],
            "localized": "An error occurred while starting service '%s'"
        }
    ],
    "componentKey": null,
    "problemId": null,
    "resolution": null
}`, se.Service, se.Service)
	fmt.Fprintf(w, "Error executing start on service %s. Details %s\n", se.Service, details)
	fmt.Fprintf(w, "Service-control failed. Error: %s\n", details)
	fmt.Fprintf(w, "Reason: %s\n", se.Reason)
}
