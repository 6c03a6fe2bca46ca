package appliance

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"runbook/lab/model"
	"runbook/lab/sshd"
	"runbook/lab/vmdir"
)

const vdcrepadminUsage = `Usage: vdcrepadmin -f showpartners
                   -h <source_hostname> [-p <source_portnumber>]
                   -u <source_username> [-w <source_password>]
       vdcrepadmin -f showpartnerstatus
                   -h <source_hostname> [-p <source_portnumber>]
                   -u <source_username> [-w <source_password>]
       vdcrepadmin -f showfederationstatus
                   -h <source_hostname> [-p <source_portnumber>]
                   -u <source_username> [-w <source_password>]
       vdcrepadmin -f showservers
                   -h <source_hostname> [-p <source_portnumber>]
                   -u <source_username> [-w <source_password>]
       vdcrepadmin -f createagreement [-2]
                   -h <source_hostname> [-p <source_portnumber>]
                   -u <source_username> [-w <source_password>]
                   -H <target_hostname> [-P <target_portnumber>]
       Note: if create only one-way replication agreement (source->target),
             the entry is created on the target.
       vdcrepadmin -f removeagreement [-2]
                   -h <source_hostname> [-p <source_portnumber>]
                   -u <source_username> [-w <source_password>]
                   -H <target_hostname> [-P <target_portnumber>]
       Note: if remove only one-way replication agreement (source->target),
             the entry is removed from the target.
       vdcrepadmin -f isfirstcycledone
                   -h <source_hostname> [-p <source_portnumber>]
                   -u <source_username> [-w <source_password>]
       vdcrepadmin -f dummydomainwrite
                   -h <fully-qualified-domain-name>
                   -u <admin UPN, e.g. Administrator@vsphere.local>
                   [-w <password>]
`

// vdcrepadmin errors (vmdir error numbers and their messages).
var vmdirMessages = map[int]string{
	errVmdirServerDown:        "Server down",
	errVmdirInvalidCredential: "User invalid credential",
	9002:                      "Invalid parameter",
}

// vdcrepadminRequest is a parsed vdcrepadmin command line.
type vdcrepadminRequest struct {
	feature, host, user string
	password            *string
}

func parseVdcrepadmin(args []string) (vdcrepadminRequest, bool) {
	var r vdcrepadminRequest
	values := map[string]*string{"-f": &r.feature, "-h": &r.host, "-u": &r.user}
	var ignored string
	for _, o := range []string{"-p", "-H", "-P", "-e", "-a", "-s"} {
		values[o] = &ignored
	}
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-2", "-n", "-o", "-v":
			continue
		case "-w":
			if i+1 >= len(args) {
				return r, false
			}
			pw := args[i+1]
			r.password = &pw
			i++
			continue
		}
		p, ok := values[args[i]]
		if !ok || i+1 >= len(args) {
			return r, false
		}
		*p = args[i+1]
		i++
	}
	switch r.feature {
	case "showpartners", "showpartnerstatus", "showservers", "showfederationstatus", "isfirstcycledone":
	default:
		return r, false
	}
	return r, r.host != "" && r.user != ""
}

// vdcrepadmin is /usr/lib/vmware-vmdir/bin/vdcrepadmin.
func (a *appliance) vdcrepadmin(_ context.Context, inv *sshd.Invocation) int {
	r, ok := parseVdcrepadmin(inv.Args[1:])
	if !ok {
		io.WriteString(inv.Stdout, vdcrepadminUsage)
		return exitCode(9002)
	}
	pw := ""
	if r.password != nil {
		pw = *r.password
	} else {
		var err error
		if pw, err = promptPassword(inv, "password: "); err != nil {
			pw = ""
		}
	}
	host := a.resolveHost(r.host)
	if host == nil || !host.Online() || !host.HasDirectory() || !running(host, "vmdird") {
		return vdcrepadminFail(inv, errVmdirServerDown)
	}
	upn := r.user
	if !strings.Contains(upn, "@") {
		upn += "@" + a.d.Name
	}
	if err := a.d.Dir.Bind(upn, pw); err != nil {
		return vdcrepadminFail(inv, errVmdirInvalidCredential)
	}
	switch r.feature {
	case "showservers":
		es, err := a.d.Dir.Search(a.d.SitesDN(), vmdir.ScopeSub, "(objectClass=vmwDirServer)", []string{"1.1"})
		if err != nil {
			return vdcrepadminFail(inv, errVmdirServerDown)
		}
		for _, e := range es {
			fmt.Fprintln(inv.Stdout, e.DN)
		}
		return 0
	case "isfirstcycledone":
		fmt.Fprintln(inv.Stdout, "First replication cycle done: TRUE")
		return 0
	case "showfederationstatus":
		// The format of showfederationstatus is not known (reference
		// open question 7); the lab prints its per-server USNs.
		for _, n := range a.nodes() {
			if n.HasDirectory() {
				fmt.Fprintf(inv.Stdout, "\nDomain Controller: %s\n", n.PNID)
				fmt.Fprintf(inv.Stdout, "  Highest Originating USN: %d\n", a.d.Dir.HighestUSN())
			}
		}
		return 0
	}
	ras, err := a.d.Agreements()
	if err != nil {
		return vdcrepadminFail(inv, errVmdirServerDown)
	}
	var mine []model.Agreement
	for _, ra := range ras {
		if strings.EqualFold(ra.Server, host.PNID) {
			mine = append(mine, ra)
		}
	}
	if r.feature == "showpartners" {
		for _, ra := range mine {
			fmt.Fprintf(inv.Stdout, "ldap://%s\n", ra.Partner)
		}
		return 0
	}
	for i, ra := range mine {
		fmt.Fprintf(inv.Stdout, "Partner: %s\n", ra.Partner)
		p := a.d.Node(ra.Partner)
		available := p != nil && p.Online() && p.HasDirectory() && running(p, "vmdird")
		fmt.Fprintf(inv.Stdout, "Host available:   %s\n", yesNo(available))
		if available {
			var back *model.Agreement
			for j := range ras {
				if strings.EqualFold(ras[j].Server, ra.Partner) && strings.EqualFold(ras[j].Partner, host.PNID) {
					back = &ras[j]
				}
			}
			fmt.Fprintf(inv.Stdout, "Status available: %s\n", yesNo(back != nil))
			if back != nil {
				target := a.d.Dir.HighestUSN()
				fmt.Fprintf(inv.Stdout, "My last change number:             %d\n", target)
				fmt.Fprintf(inv.Stdout, "Partner has seen my change number: %d\n", back.LastLocalUSN)
				fmt.Fprintf(inv.Stdout, "Partner is %d changes behind.\n", target-back.LastLocalUSN)
			}
		}
		if i < len(mine)-1 {
			fmt.Fprintln(inv.Stdout)
		}
	}
	return 0
}

func vdcrepadminFail(inv *sshd.Invocation, code int) int {
	fmt.Fprintf(inv.Stdout, "Vdcrepadmin failed. Error [%s] [%d]\n", vmdirMessages[code], code)
	return exitCode(code)
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// running reports whether service name runs on node n.
func running(n *model.Node, name string) bool {
	ok, err := n.Services.Running(name)
	return err == nil && ok
}

// resolveHost maps a host name given on a command line to a node:
// localhost, the node's own names, or another node's PNID.
func (a *appliance) resolveHost(h string) *model.Node {
	switch {
	case strings.EqualFold(h, "localhost"), h == "127.0.0.1", h == a.n.DisplayIP:
		return a.n
	}
	for _, n := range a.nodes() {
		if strings.EqualFold(n.PNID, h) || n.DisplayIP == h {
			return n
		}
	}
	return nil
}

func (a *appliance) nodes() []*model.Node {
	a.d.Lock()
	defer a.d.Unlock()
	return append([]*model.Node(nil), a.d.Nodes...)
}

const vdcadmintoolMenu = "\n\n==================\n" +
	"Please select:\n" +
	"0. exit\n" +
	"1. Test LDAP connectivity\n" +
	"2. Force start replication cycle\n" +
	"3. Reset account password\n" +
	"4. Set log level and mask\n" +
	"5. Set vmdir state\n" +
	"6. Get vmdir state\n" +
	"7. Get vmdir log level and mask\n" +
	"8. Reinstantiate vmdir with a foreign database copy(e.g. /var/lib/vmware/vmdir/partner/data.mdb)\n" +
	"==================\n\n"

// vdcadmintool is /usr/lib/vmware-vmdir/bin/vdcadmintool; the lab
// implements option 6 (Get vmdir state).
func (a *appliance) vdcadmintool(_ context.Context, inv *sshd.Invocation) int {
	for {
		io.WriteString(inv.Stdout, vdcadmintoolMenu)
		var line string
		var err error
		if inv.TTY != nil {
			line, err = inv.TTY.ReadLine("")
		} else {
			line, err = readLine(inv.Stdin)
		}
		choice, _ := strconv.Atoi(strings.TrimSpace(line))
		if choice == 0 {
			return 0
		}
		switch choice {
		case 6:
			if !a.n.HasDirectory() || !running(a.n, "vmdird") {
				fmt.Fprintf(inv.Stdout, "\n GetVmDirState failed: %s\n", "Cannot connect vmdir")
			} else {
				fmt.Fprintf(inv.Stdout, "\n\n VmDir State is - %s\n\n", "Normal")
			}
		default:
			fmt.Fprintf(inv.Stdout, "\n Option %d is not simulated by the lab\n", choice)
		}
		if err != nil {
			return 0
		}
	}
}
