package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
)

var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidCountry      = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidLocality     = asn1.ObjectIdentifier{2, 5, 4, 7}
	oidState        = asn1.ObjectIdentifier{2, 5, 4, 8}
	oidStreet       = asn1.ObjectIdentifier{2, 5, 4, 9}
	oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOrgUnit      = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}
	oidDC           = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidUID          = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
	oidEmail        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

var shortNames = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{oidCommonName, "CN"}, {oidCountry, "C"}, {oidLocality, "L"}, {oidState, "ST"},
	{oidStreet, "STREET"}, {oidOrganization, "O"}, {oidOrgUnit, "OU"},
	{oidSerialNumber, "SERIALNUMBER"}, {oidDC, "DC"}, {oidUID, "UID"},
	{oidEmail, "emailAddress"},
}

func subjectRDNs(req Request) pkix.RDNSequence {
	var seq pkix.RDNSequence
	add := func(oid asn1.ObjectIdentifier, v string, ia5 bool) {
		if v == "" {
			return
		}
		var val any = v
		if ia5 {
			val = asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(v)}
		}
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: val}})
	}
	add(oidCommonName, req.CommonName, false)
	for _, dc := range req.DomainComponents {
		add(oidDC, dc, true)
	}
	add(oidCountry, req.Country, false)
	add(oidState, req.State, false)
	add(oidLocality, req.Locality, false)
	add(oidOrganization, req.Organization, false)
	add(oidOrgUnit, req.OrgUnit, false)
	add(oidEmail, req.Email, true)
	return seq
}

// SubjectDN formats cert's subject in encoded order, comma-space separated,
// as VMware tools print it: "CN=CA, DC=vsphere, DC=local, C=US, …".
func SubjectDN(cert *x509.Certificate) string {
	s, err := FormatDN(cert.RawSubject)
	if err != nil {
		return cert.Subject.String()
	}
	return s
}

// IssuerDN formats cert's issuer like SubjectDN.
func IssuerDN(cert *x509.Certificate) string {
	s, err := FormatDN(cert.RawIssuer)
	if err != nil {
		return cert.Issuer.String()
	}
	return s
}

// FormatDN formats a DER-encoded distinguished name in encoded order with
// short attribute names (CN, DC, C, ST, L, O, OU, emailAddress) joined by
// ", ". Unknown attributes print as dotted OIDs.
func FormatDN(raw []byte) (string, error) {
	var seq pkix.RDNSequence
	rest, err := asn1.Unmarshal(raw, &seq)
	if err != nil {
		return "", fmt.Errorf("decode distinguished name: %w", err)
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("decode distinguished name: %d trailing bytes", len(rest))
	}
	var parts []string
	for _, rdn := range seq {
		for _, atv := range rdn {
			name := atv.Type.String()
			for _, sn := range shortNames {
				if sn.oid.Equal(atv.Type) {
					name = sn.name
					break
				}
			}
			var v string
			switch val := atv.Value.(type) {
			case string:
				v = val
			default:
				b, _ := asn1.Marshal(val)
				v = "#" + hex.EncodeToString(b)
			}
			parts = append(parts, name+"="+v)
		}
	}
	return strings.Join(parts, ", "), nil
}
