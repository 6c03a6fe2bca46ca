package model

import (
	"fmt"
	"time"

	"runbook/lab/pki"
)

// SRM is the third-party solution registered in every scenario.
const (
	SRMHost    = "srm.lab.test"
	SRMProduct = "com.vmware.dr"
	SRMType    = "vcDr"
)

// nodeRegistrations returns the Lookup Service registrations of node n,
// every endpoint trusting trust (DER).
func (d *Domain) nodeRegistrations(n *Node, trust []byte) []Registration {
	ts := []string{pki.TrustString(trust)}
	url := func(path string) string { return "https://" + n.PNID + path }
	id := func(key string) string { return detUUID(d.Scenario, n.PNID, "service", key) }
	ep := func(path, typ, proto string) Endpoint {
		return Endpoint{URL: url(path), Type: typ, Protocol: proto, SslTrust: ts}
	}
	owner := func(user string) string { return user + "-" + n.MachineID + "@" + d.Name }
	var regs []Registration
	if n.HasDirectory() {
		regs = append(regs,
			Registration{ServiceID: id("cs.identity"), Product: "com.vmware.cis", Type: "cs.identity",
				OwnerID: d.AdminUPN(), Version: "2.0", Endpoints: []Endpoint{
					ep("/sts/STSService/"+d.Name, "com.vmware.cis.cs.identity.sso", "wsTrust"),
					ep("/sso-adminserver/sdk/"+d.Name, "com.vmware.cis.cs.identity.admin", "vmomi"),
					ep("/sso-adminserver/sdk/"+d.Name, "com.vmware.cis.cs.identity.groupcheck", "vmomi"),
				}},
			Registration{ServiceID: id("cs.lookup"), Product: "com.vmware.cis", Type: "cs.lookup",
				OwnerID: d.AdminUPN(), Version: "2.0", Endpoints: []Endpoint{
					ep("/lookupservice/sdk", "com.vmware.cis.cs.lookup.sdk", "vmomi"),
				}},
			Registration{ServiceID: id("cs.license"), Product: "com.vmware.cis", Type: "cs.license",
				OwnerID: owner(StoreMachine), Version: "2.0", Endpoints: []Endpoint{
					ep("/ls/sdk", "com.vmware.cis.cs.license.sdk", "vmomi"),
				}},
		)
	}
	if n.HasVCenter() {
		sdk := ep("/sdk", "com.vmware.vim", "vmomi")
		sdk.Attributes = map[string]string{"cis.common.ep.localurl": "http://localhost:8085/sdk"}
		regs = append(regs,
			Registration{ServiceID: id("vcenterserver"), Product: "com.vmware.cis", Type: "vcenterserver",
				OwnerID: owner(StoreVpxd), Version: "7.0", Name: "AboutInfo.vpx.name", Description: "AboutInfo.vpx.name",
				Endpoints: []Endpoint{sdk},
				Attributes: map[string]string{
					"com.vmware.cis.cm.GroupInternalId":   "com.vmware.vim.vcenter",
					"com.vmware.cis.cm.HostId":            n.MachineID,
					"com.vmware.vim.vcenter.instanceName": n.PNID,
				}},
			Registration{ServiceID: id("cs.inventory"), Product: "com.vmware.cis", Type: "cs.inventory",
				OwnerID: owner(StoreVpxd), Version: "2.0", Endpoints: []Endpoint{
					ep("/invsvc/vmomi/sdk", "com.vmware.cis.cs.inventory.sdk", "vmomi"),
				}},
			Registration{ServiceID: n.MachineID + "_com.vmware.vsphere.client", Product: "com.vmware.cis", Type: "vsphereclient",
				OwnerID: owner(StoreWebClient), Version: "7.0", Endpoints: []Endpoint{
					ep("/ui", "com.vmware.vsphere.client", "https"),
				}},
			Registration{ServiceID: id("sms"), Product: "com.vmware.vim.sms", Type: "sms",
				OwnerID: owner(StoreVpxdExtension), Version: "7.0", Endpoints: []Endpoint{
					ep("/sms/sdk", "com.vmware.vim.sms", "vmomi"),
				}},
			Registration{ServiceID: id("cs.eam"), Product: "com.vmware.cis", Type: "cs.eam",
				OwnerID: owner(StoreVpxdExtension), Version: "7.0", Endpoints: []Endpoint{
					ep("/eam/sdk", "com.vmware.cis.cs.eam.sdk", "vmomi"),
				}},
		)
	}
	for i := range regs {
		regs[i].NodeID = n.MachineID
		regs[i].SiteID = d.Site
	}
	return regs
}

// addRegistrations registers every node's services, one legacy 5.5 STS
// registration of the first directory node and the third-party SRM.
func (d *Domain) addRegistrations(certs []*nodeCerts, t0 time.Time) error {
	var regs []Registration
	legacyDone := false
	for i, n := range d.Nodes {
		trust := certs[i].machineSSL.DER
		if certs[i].oldSSL != nil {
			trust = certs[i].oldSSL.DER
		}
		regs = append(regs, d.nodeRegistrations(n, trust)...)
		if !legacyDone && n.HasDirectory() {
			legacyDone = true
			regs = append(regs, Registration{
				ServiceID: d.Site + ":" + detUUID(d.Scenario, n.PNID, "legacy-sts"),
				Legacy:    true, Type: "urn:sso:sts", Version: "1.5", OwnerID: d.AdminUPN(), SiteID: d.Site,
				Description: "The security token service interface of the SSO server",
				Endpoints: []Endpoint{{URL: "https://" + n.PNID + "/sts/STSService/" + d.Name,
					Protocol: "wsTrust", SslTrust: []string{pki.TrustString(trust)}}},
			})
		}
	}
	key, err := d.Keys.Next()
	if err != nil {
		return err
	}
	srm, err := pki.SelfSigned(pki.Request{CommonName: SRMHost, Country: "US", Organization: "VMware",
		OrgUnit: "Site Recovery Manager", DNSNames: []string{SRMHost},
		NotBefore: years(t0, -1, 0), NotAfter: years(t0, 4, 0), Usage: pki.UsageServer | pki.UsageClient, Key: key})
	if err != nil {
		return fmt.Errorf("issue srm certificate: %w", err)
	}
	srmID := detUUID(d.Scenario, SRMHost, "service")
	regs = append(regs, Registration{
		ServiceID: srmID, Product: SRMProduct, Type: SRMType, Version: "8.5", SiteID: d.Site,
		OwnerID: "com.vmware.dr-" + srmID[:8] + "@" + d.Name,
		Name:    "Site Recovery Manager",
		Endpoints: []Endpoint{{URL: "https://" + SRMHost + ":9086/vcdr/extapi/sdk",
			Type: "com.vmware.dr.vcDr", Protocol: "vmomi", SslTrust: []string{pki.TrustString(srm.DER)}}},
		Attributes: map[string]string{"com.vmware.dr.vcDr.vcInstanceUuid": d.Nodes[0].MachineID},
	})
	for _, r := range regs {
		if err := d.SaveRegistration(r); err != nil {
			return err
		}
	}
	return nil
}
