package appliance

import (
	"strings"
	"testing"
)

// goldenCases are the command lines whose output the golden files pin, per
// tool, on the healthy scenario. PASSWORD stands for the SSO
// administrator's password; the golden files show it as PASSWORD too.
var goldenCases = []struct {
	name  string
	lines []string
	stdin string
}{
	{name: "vecs-cli", lines: []string{
		"vecs-cli store list",
		"vecs-cli entry list --store MACHINE_SSL_CERT",
		"vecs-cli entry list --store MACHINE_SSL_CERT --text",
		"vecs-cli entry list --store TRUSTED_ROOTS --text",
		"vecs-cli entry list --store TRUSTED_ROOT_CRLS",
		"vecs-cli entry list --store TRUSTED_ROOT_CRLS --text",
		"vecs-cli entry list --store vpxd --aliases",
		"vecs-cli entry list --store BACKUP_STORE",
		"vecs-cli entry getcert --store MACHINE_SSL_CERT --alias __MACHINE_CERT",
		"vecs-cli entry getcert --store SMS --alias sms_self_signed --text",
		"vecs-cli entry getkey --store vpxd --alias vpxd",
		"vecs-cli entry getcert --store MACHINE_SSL_CERT --alias __MACHINE_CERT --output /certificates/new_machine.crt",
		"vecs-cli entry create --store BACKUP_STORE --alias old --cert /certificates/new_machine.crt",
		"vecs-cli entry create --store BACKUP_STORE --alias old --cert /certificates/new_machine.crt",
		"vecs-cli entry delete --store BACKUP_STORE --alias old -y",
		"vecs-cli store create --name TEST_STORE",
		"vecs-cli store create --name TEST_STORE",
		"vecs-cli store delete --name TEST_STORE -y",
		"vecs-cli store delete --name TEST_STORE -y",
		"vecs-cli entry list --store NO_SUCH_STORE",
		"vecs-cli entry getcert --store MACHINE_SSL_CERT --alias nope",
		"vecs-cli entry getcert --store NOPE --alias __MACHINE_CERT",
		"vecs-cli entry frobnicate --store X",
		"vecs-cli store list --bogus",
	}},
	{name: "dir-cli", lines: []string{
		"dir-cli trustedcert list --login administrator@vsphere.local --password PASSWORD",
		"dir-cli service list --login administrator@vsphere.local --password PASSWORD",
		"dir-cli service list --login administrator --password wrong-password",
		"dir-cli state get --login administrator --password PASSWORD",
		"dir-cli domain-functional-level get --login administrator --password PASSWORD",
		"dir-cli service update --name vpxd-MACHINEID --cert /certificates/vpxd.crt --login administrator@vsphere.local --password PASSWORD",
		"dir-cli service update --name vpxd-extension-MACHINEID --cert /certificates/vpxd.crt --login administrator@vsphere.local --password PASSWORD",
		"dir-cli service list --bogus",
		"dir-cli frobnicate",
	}},
	{name: "dir-cli-prompt", stdin: "PASSWORD\n", lines: []string{
		"dir-cli service list",
	}},
	{name: "vmafd-cli", lines: []string{
		"vmafd-cli get-pnid --server-name localhost",
		"vmafd-cli get-machine-id --server-name localhost",
		"vmafd-cli get-domain-name --server-name localhost",
		"vmafd-cli get-site-name --server-name localhost",
		"vmafd-cli get-dc-name --server-name localhost",
		"vmafd-cli get-ls-location --server-name localhost",
		"vmafd-cli get-pnid",
		"vmafd-cli get-frobnicate --server-name localhost",
	}},
	{name: "certool", lines: []string{
		"certool --genkey --privkey=/certificates/sts.key --pubkey=/certificates/sts.pub",
		"certool --gencert --cert=/certificates/sts.cer --privkey=/certificates/sts.key --config=/certificates/certool.cfg",
		"certool --viewcert --cert=/certificates/sts.cer",
		"certool --genkey --privkey=/certificates/vpxd.key --pubkey=/certificates/vpxd.pub",
		"certool --genCIScert --Name=vpxd --privkey=/certificates/vpxd.key --cert=/certificates/vpxd.crt --server localhost",
		"certool --gencert --cert=/certificates/x.cer --privkey=/certificates/sts.key --config=/certificates/missing.cfg",
		"certool --gencert --cert=/certificates/x.cer",
		"certool --frobnicate",
		"certool --genkey=yes",
	}},
	{name: "service-control", lines: []string{
		"service-control --status --all",
		"service-control --status vmware-vpxd",
		"service-control --stop vmware-vpxd",
		"service-control --status",
		"service-control --start vmware-vpxd",
		"service-control --stop --all",
		"service-control --start --all",
		"service-control --status --all",
		"service-control --start no-such-service",
		"service-control --bogus",
	}},
	{name: "vdcrepadmin", lines: []string{
		"vdcrepadmin -f showservers -h localhost -u administrator -w PASSWORD",
		"vdcrepadmin -f showpartners -h localhost -u administrator -w PASSWORD",
		"vdcrepadmin -f showpartnerstatus -h localhost -u administrator -w PASSWORD",
		"vdcrepadmin -f showpartnerstatus -h vcsa2.lab.test -u administrator@vsphere.local -w PASSWORD",
		"vdcrepadmin -f showpartnerstatus -h localhost -u administrator -w wrong-password",
		"vdcrepadmin -f showpartnerstatus -h nosuchhost -u administrator -w PASSWORD",
		"vdcrepadmin -f frobnicate -h localhost -u administrator",
	}},
	{name: "vdcrepadmin-prompt", stdin: "PASSWORD\n", lines: []string{
		"vdcrepadmin -f showpartners -h localhost -u administrator",
	}},
	{name: "vdcadmintool", stdin: "6\n", lines: []string{
		"vdcadmintool",
	}},
	{name: "lstool", lines: []string{
		"/usr/lib/vmware-lookupsvc/tools/lstool.py list --url https://localhost/lookupservice/sdk --no-check-cert --ep-type com.vmware.cis.cs.identity.sso",
		"python /usr/lib/vmidentity/tools/scripts/lstool.py list --url http://localhost:7090/lookupservice/sdk --type vcenterserver",
		"lstool.py list --url http://localhost:7090/lookupservice/sdk --id-only",
		"lstool.py get-site-id --url http://localhost:7090/lookupservice/sdk",
		"lstool.py list --url https://localhost/lookupservice/sdk",
		"lstool.py list --url https://nosuchhost/lookupservice/sdk --no-check-cert",
		"lstool.py list",
		"lstool.py frobnicate --url https://localhost/lookupservice/sdk",
	}},
}

// certoolCfg is the certool.cfg fixsts.sh writes (reference §3.1 step 5).
const certoolCfg = `#
# Template file for a CSR request
#

# Country is needed and has to be 2 characters
Country = DS
Name = STS
Organization = VMware
OrgUnit = VMware
State = VMware
Locality = VMware
IPAddress = 10.0.0.11
Email = email@acme.com
Hostname = vcsa1.lab.test
`

// TestGolden runs every tool's command lines on the healthy scenario and
// compares the normalized transcripts with the golden files.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			d := newLab(t, "healthy")
			n := d.Nodes[0]
			if err := n.WriteFile("/certificates/certool.cfg", []byte(certoolCfg), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.name == "dir-cli" {
				// a VMCA solution-user certificate to update vpxd with
				r := runLine(t, d, n, "certool --genkey --privkey=/certificates/vpxd.key --pubkey=/certificates/vpxd.pub")
				if r.status != 0 {
					t.Fatal(r)
				}
				if r := runLine(t, d, n, "certool --genCIScert --Name=vpxd --privkey=/certificates/vpxd.key --cert=/certificates/vpxd.crt"); r.status != 0 {
					t.Fatal(r)
				}
			}
			var b strings.Builder
			stdin := strings.ReplaceAll(tc.stdin, "PASSWORD", d.AdminPassword)
			for _, line := range tc.lines {
				real := strings.ReplaceAll(line, "PASSWORD", d.AdminPassword)
				real = strings.ReplaceAll(real, "MACHINEID", n.MachineID)
				r := run(t, d, n, stdin, strings.Fields(real)...)
				out := transcript(line, r)
				b.WriteString(strings.ReplaceAll(out, d.AdminPassword, "PASSWORD"))
			}
			golden(t, tc.name, normalize(b.String()))
		})
	}
}
