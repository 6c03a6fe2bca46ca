package appliance

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"

	"runbook/lab/model"
	"runbook/lab/pki"
)

// TestCertoolFixstsFlow runs fixsts.sh's certool steps and checks the STS
// signing certificate they produce.
func TestCertoolFixstsFlow(t *testing.T) {
	d := newLab(t, "sts-expired")
	n := d.Nodes[0]
	if err := n.WriteFile("/tmp/vmware-fixsts/certool.cfg", []byte(certoolCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"certool --server localhost --genkey --privkey=/tmp/vmware-fixsts/sts.key --pubkey=/tmp/vmware-fixsts/sts.pub",
		"certool --gencert --cert=/tmp/vmware-fixsts/sts.cer --privkey=/tmp/vmware-fixsts/sts.key --config=/tmp/vmware-fixsts/certool.cfg",
	} {
		r := runLine(t, d, n, line)
		if r.status != 0 || !strings.HasSuffix(r.stdout, "Status : Success\n") {
			t.Fatalf("%s: %+v", line, r)
		}
	}
	certPEM, _ := n.ReadFile("/tmp/vmware-fixsts/sts.cer")
	keyPEM, _ := n.ReadFile("/tmp/vmware-fixsts/sts.key")
	certs, err := pki.ParseCerts(certPEM)
	if err != nil || len(certs) != 2 {
		t.Fatalf("sts.cer holds %d certificates (%v), want leaf and root", len(certs), err)
	}
	leaf := certs[0]
	if leaf.Subject.CommonName != "STS" || leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment || len(leaf.ExtKeyUsage) != 0 {
		t.Errorf("STS certificate: CN %q key usage %v ext %v", leaf.Subject.CommonName, leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	if !bytes.Equal(certs[1].Raw, d.VMCARoot().DER) || leaf.CheckSignatureFrom(d.VMCARoot().X509) != nil {
		t.Error("STS certificate is not signed by the VMCA root")
	}
	key, err := parseRSAKey(keyPEM)
	if err != nil || !pki.KeyMatches(leaf, key) {
		t.Errorf("sts.key does not match sts.cer (%v)", err)
	}
	if !pki.ValidAt(leaf, labNow) || !pki.ValidAt(leaf, labNow.AddDate(1, 0, 0)) {
		t.Errorf("STS certificate valid %s – %s", leaf.NotBefore, leaf.NotAfter)
	}
}

// TestCertoolVMCADown: certool cannot sign while vmcad is stopped.
func TestCertoolVMCADown(t *testing.T) {
	d := newLab(t, "healthy")
	n := d.Nodes[0]
	if err := n.WriteFile("/root/certool.cfg", []byte(certoolCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runLine(t, d, n, "certool --genkey --privkey=k --pubkey=p"); r.status != 0 {
		t.Fatal(r)
	}
	if err := n.Services.Stop("vmcad"); err != nil {
		t.Fatal(err)
	}
	r := runLine(t, d, n, "certool --gencert --privkey=k --cert=c")
	if r.status == 0 || !strings.Contains(r.stdout, "Status : Failed\nError Code : 1225\n") {
		t.Errorf("gencert with vmcad stopped: %+v", r)
	}
}

// TestCertoolSelfCA replaces the VMCA root as `certool --selfca` does.
func TestCertoolSelfCA(t *testing.T) {
	d := newLab(t, "root-expired")
	n := d.Nodes[0]
	old := d.VMCARoot()
	cfg := "Country = US\nName = CA\nOrganization = " + n.PNID + "\nOrgUnit = VMware Engineering\nState = California\n"
	if err := n.WriteFile("/certs/vmca.cfg", []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runLine(t, d, n, "certool --selfca --config /certs/vmca.cfg")
	if r.status != 0 {
		t.Fatalf("selfca: %+v", r)
	}
	ca := d.VMCARoot()
	if bytes.Equal(ca.DER, old.DER) || !pki.ValidAt(ca.X509, labNow) || !ca.X509.IsCA {
		t.Fatal("root not replaced by a valid CA")
	}
	if got := pki.SubjectDN(ca.X509); got != "CN=CA, DC=vsphere, DC=local, C=US, ST=California, O="+n.PNID+", OU=VMware Engineering" {
		t.Errorf("root subject %q", got)
	}
	prev, err := n.ReadFile(model.PathRootCert + ".0")
	if err != nil || !bytes.Equal(prev, old.PEM()) {
		t.Errorf("root.cer.0 is not the previous root (%v)", err)
	}
	// vmcad starts again with the new root.
	n.Services.StopAll()
	if err := n.Services.Start("vmcad"); err != nil {
		t.Errorf("vmcad does not start with the new root: %v", err)
	}
	r = runLine(t, d, n, "certool --getrootca --server localhost")
	if r.status != 0 || !strings.Contains(r.stdout, "Subject: CN=CA, DC=vsphere") || !strings.Contains(r.stdout, "Not After : "+opensslTime(ca.X509.NotAfter)) {
		t.Errorf("getrootca: %+v", r)
	}
}

// TestLsUpdateCertsCommand repairs stale-ssltrust with ls_update_certs.py
// as KB 2121701 Task 4 does, then checks it with lstool.py.
func TestLsUpdateCertsCommand(t *testing.T) {
	d := newLab(t, "stale-ssltrust")
	n := d.Nodes[0]
	steps := []string{
		"vecs-cli entry getcert --store BACKUP_STORE --alias bkp___MACHINE_CERT --output /certificates/old_machine.crt",
		"vecs-cli entry getcert --store MACHINE_SSL_CERT --alias __MACHINE_CERT --output /certificates/new_machine.crt",
	}
	for _, l := range steps {
		if r := runLine(t, d, n, l); r.status != 0 {
			t.Fatalf("%s: %+v", l, r)
		}
	}
	oldPEM, _ := n.ReadFile("/certificates/old_machine.crt")
	olds, _ := pki.ParseCerts(oldPEM)
	line := "python ls_update_certs.py --url https://vcsa1.lab.test/lookupservice/sdk --fingerprint " + pki.Thumbprint(olds[0].Raw) +
		" --certfile /certificates/new_machine.crt --user administrator@vsphere.local --password " + d.AdminPassword
	r := run(t, d, n, "", strings.Fields(strings.Replace(line, "ls_update_certs.py", PathLsUpdateCerts, 1))...)
	if r.status != 0 || !strings.Contains(r.stdout, "Updated ") {
		t.Fatalf("ls_update_certs: %+v", r)
	}
	lst := runLine(t, d, n, "lstool.py list --url https://localhost/lookupservice/sdk --no-check-cert")
	current := getcertTrust(t, d, n, model.StoreMachineSSL, model.AliasMachineCert)
	for url, ts := range lstoolTrusts(t, lst.stdout) {
		if strings.Contains(url, "//"+n.PNID+"/") && ts[0] != current {
			t.Errorf("%s still trusts another certificate", url)
		}
	}
}
