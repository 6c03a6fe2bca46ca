package appliance

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"
)

// The text printers below reproduce what OpenSSL 1.0.2 (the version the
// appliance ships) prints for X509_print and X509_CRL_print, which is what
// `vecs-cli entry list --text`, `vecs-cli entry getcert --text` and
// `certool --getrootca` show: the same labels, indentation, date format,
// hex dumps and extension texts.

// Object identifiers the printers name.
var (
	oidExtSKID           = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidExtKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtSAN            = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtBasic          = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtCRLNumber      = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidExtAKID           = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtCRLDistPoints  = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidExtCertPolicies   = asn1.ObjectIdentifier{2, 5, 29, 32}
	oidExtAuthorityInfo  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidExtNetscapeCert   = asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 1, 1}
	oidExtNetscapeComent = asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 1, 13}
)

// extNames are OpenSSL's long names of the extensions it knows.
var extNames = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{oidExtSKID, "X509v3 Subject Key Identifier"},
	{oidExtKeyUsage, "X509v3 Key Usage"},
	{oidExtSAN, "X509v3 Subject Alternative Name"},
	{oidExtBasic, "X509v3 Basic Constraints"},
	{oidExtCRLNumber, "X509v3 CRL Number"},
	{oidExtAKID, "X509v3 Authority Key Identifier"},
	{oidExtExtKeyUsage, "X509v3 Extended Key Usage"},
	{oidExtCRLDistPoints, "X509v3 CRL Distribution Points"},
	{oidExtCertPolicies, "X509v3 Certificate Policies"},
	{oidExtAuthorityInfo, "Authority Information Access"},
	{oidExtNetscapeCert, "Netscape Cert Type"},
	{oidExtNetscapeComent, "Netscape Comment"},
}

// nameAttrs are the short names OpenSSL gives name attributes.
var nameAttrs = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{asn1.ObjectIdentifier{2, 5, 4, 3}, "CN"},
	{asn1.ObjectIdentifier{2, 5, 4, 6}, "C"},
	{asn1.ObjectIdentifier{2, 5, 4, 7}, "L"},
	{asn1.ObjectIdentifier{2, 5, 4, 8}, "ST"},
	{asn1.ObjectIdentifier{2, 5, 4, 9}, "street"},
	{asn1.ObjectIdentifier{2, 5, 4, 10}, "O"},
	{asn1.ObjectIdentifier{2, 5, 4, 11}, "OU"},
	{asn1.ObjectIdentifier{2, 5, 4, 5}, "serialNumber"},
	{asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, "DC"},
	{asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, "UID"},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, "emailAddress"},
}

// sigAlgNames are OpenSSL's names of signature algorithms.
var sigAlgNames = map[x509.SignatureAlgorithm]string{
	x509.MD5WithRSA:       "md5WithRSAEncryption",
	x509.SHA1WithRSA:      "sha1WithRSAEncryption",
	x509.SHA256WithRSA:    "sha256WithRSAEncryption",
	x509.SHA384WithRSA:    "sha384WithRSAEncryption",
	x509.SHA512WithRSA:    "sha512WithRSAEncryption",
	x509.SHA256WithRSAPSS: "rsassaPss",
	x509.SHA384WithRSAPSS: "rsassaPss",
	x509.SHA512WithRSAPSS: "rsassaPss",
	x509.ECDSAWithSHA1:    "ecdsa-with-SHA1",
	x509.ECDSAWithSHA256:  "ecdsa-with-SHA256",
	x509.ECDSAWithSHA384:  "ecdsa-with-SHA384",
	x509.ECDSAWithSHA512:  "ecdsa-with-SHA512",
	x509.PureEd25519:      "ED25519",
}

func sigAlgName(a x509.SignatureAlgorithm) string {
	if n, ok := sigAlgNames[a]; ok {
		return n
	}
	return a.String()
}

// opensslTime formats t as ASN1_TIME_print does: "Apr  6 11:57:19 2019 GMT".
func opensslTime(t time.Time) string {
	return t.UTC().Format("Jan _2 15:04:05 2006") + " GMT"
}

// onelineName renders a DER name as OpenSSL 1.0's X509_NAME_print does
// (XN_FLAG_COMPAT): the "/A=v/B=w" one-line form with each "/" that starts
// a one- or two-letter upper-case attribute turned into ", ". Longer
// attribute names such as emailAddress keep their slash, which is why
// OpenSSL 1.0 prints "OU=VMware Engineering/emailAddress=email@acme.com".
func onelineName(raw []byte) string {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &seq); err != nil || len(rest) > 0 {
		return "<invalid name>"
	}
	var one strings.Builder
	for _, rdn := range seq {
		for i, atv := range rdn {
			if i == 0 {
				one.WriteByte('/')
			} else {
				one.WriteByte('+')
			}
			name := atv.Type.String()
			for _, a := range nameAttrs {
				if a.oid.Equal(atv.Type) {
					name = a.name
					break
				}
			}
			one.WriteString(name)
			one.WriteByte('=')
			one.WriteString(escapeNameValue(atv.Value))
		}
	}
	s := one.String()
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '/' && isCompatSeparator(s[i+1:]) {
			if i > 0 {
				out.WriteString(", ")
			}
			continue
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

func isCompatSeparator(s string) bool {
	upper := func(c byte) bool { return c >= 'A' && c <= 'Z' }
	switch {
	case len(s) >= 2 && upper(s[0]) && s[1] == '=':
		return true
	case len(s) >= 3 && upper(s[0]) && upper(s[1]) && s[2] == '=':
		return true
	}
	return false
}

// escapeNameValue renders a name value as X509_NAME_oneline does: printable
// ASCII as is, other bytes as \xHH.
func escapeNameValue(v any) string {
	var s string
	switch val := v.(type) {
	case string:
		s = val
	default:
		b, _ := asn1.Marshal(val)
		return "#" + hex.EncodeToString(b)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' {
			fmt.Fprintf(&b, "\\x%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// hexDump writes data as colon-separated lower-case hex pairs, perLine
// bytes per line, each line starting with a newline and indent spaces,
// the way ASN1_bn_print and X509_signature_dump lay out keys and
// signatures. It ends with a newline.
func hexDump(w io.Writer, data []byte, perLine, indent int) {
	pad := strings.Repeat(" ", indent)
	for i, c := range data {
		if i%perLine == 0 {
			fmt.Fprintf(w, "\n%s", pad)
		}
		sep := ":"
		if i == len(data)-1 {
			sep = ""
		}
		fmt.Fprintf(w, "%02x%s", c, sep)
	}
	io.WriteString(w, "\n")
}

// bnBytes returns the magnitude of n as ASN1_bn_print dumps it: big-endian
// with a leading zero byte when the top bit is set.
func bnBytes(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

// colonUpper formats b as upper-case colon-separated hex pairs.
func colonUpper(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// WriteCertText writes cert as OpenSSL 1.0.2's X509_print does.
func WriteCertText(w io.Writer, cert *x509.Certificate) {
	fmt.Fprintf(w, "Certificate:\n    Data:\n")
	fmt.Fprintf(w, "        Version: %d (0x%x)\n", cert.Version, cert.Version-1)
	serial := cert.SerialNumber
	if serial.Sign() >= 0 && serial.BitLen() < 64 {
		fmt.Fprintf(w, "        Serial Number: %d (0x%x)\n", serial, serial)
	} else {
		neg := ""
		if serial.Sign() < 0 {
			neg = " (Negative)"
		}
		mag := new(big.Int).Abs(serial).Bytes()
		parts := make([]string, len(mag))
		for i, c := range mag {
			parts[i] = fmt.Sprintf("%02x", c)
		}
		fmt.Fprintf(w, "        Serial Number:%s\n            %s\n", neg, strings.Join(parts, ":"))
	}
	fmt.Fprintf(w, "    Signature Algorithm: %s\n", sigAlgName(cert.SignatureAlgorithm))
	fmt.Fprintf(w, "        Issuer: %s\n", onelineName(cert.RawIssuer))
	fmt.Fprintf(w, "        Validity\n")
	fmt.Fprintf(w, "            Not Before: %s\n", opensslTime(cert.NotBefore))
	fmt.Fprintf(w, "            Not After : %s\n", opensslTime(cert.NotAfter))
	fmt.Fprintf(w, "        Subject: %s\n", onelineName(cert.RawSubject))
	fmt.Fprintf(w, "        Subject Public Key Info:\n")
	writePublicKey(w, cert)
	if len(cert.Extensions) > 0 {
		fmt.Fprintf(w, "        X509v3 extensions:\n")
		for _, ext := range cert.Extensions {
			writeExtension(w, ext, 12)
		}
	}
	fmt.Fprintf(w, "    Signature Algorithm: %s", sigAlgName(cert.SignatureAlgorithm))
	hexDump(w, cert.Signature, 18, 9)
}

func writePublicKey(w io.Writer, cert *x509.Certificate) {
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		fmt.Fprintf(w, "            Public Key Algorithm: rsaEncryption\n")
		fmt.Fprintf(w, "                Public-Key: (%d bit)\n", pub.N.BitLen())
		fmt.Fprintf(w, "                Modulus:")
		hexDump(w, bnBytes(pub.N), 15, 20)
		fmt.Fprintf(w, "                Exponent: %d (0x%x)\n", pub.E, pub.E)
	case *ecdsa.PublicKey:
		fmt.Fprintf(w, "            Public Key Algorithm: id-ecPublicKey\n")
		fmt.Fprintf(w, "                Public-Key: (%d bit)\n", pub.Curve.Params().BitSize)
		if raw, err := pub.Bytes(); err == nil {
			fmt.Fprintf(w, "                pub:")
			hexDump(w, raw, 15, 20)
		}
		fmt.Fprintf(w, "                ASN1 OID: %s\n", curveName(pub.Curve.Params().Name))
	default:
		fmt.Fprintf(w, "            Public Key Algorithm: %s\n", cert.PublicKeyAlgorithm)
	}
}

func curveName(n string) string {
	switch n {
	case "P-256":
		return "prime256v1"
	case "P-384":
		return "secp384r1"
	case "P-521":
		return "secp521r1"
	}
	return n
}

// writeExtension writes one extension as X509V3_extensions_print does: the
// name, ": ", "critical" when critical, then the value indented by four
// more spaces, then a newline.
func writeExtension(w io.Writer, ext pkix.Extension, indent int) {
	name := ext.Id.String()
	for _, e := range extNames {
		if e.oid.Equal(ext.Id) {
			name = e.name
			break
		}
	}
	crit := ""
	if ext.Critical {
		crit = "critical"
	}
	fmt.Fprintf(w, "%s%s: %s\n", strings.Repeat(" ", indent), name, crit)
	pad := strings.Repeat(" ", indent+4)
	value, multiline, ok := extensionText(ext)
	switch {
	case !ok:
		// Unknown or undecodable: OpenSSL dumps the DER.
		fmt.Fprintf(w, "%s%s", pad, asciiDump(ext.Value))
	case multiline:
		for _, line := range value {
			fmt.Fprintf(w, "%s%s\n", pad, line)
		}
	default:
		fmt.Fprintf(w, "%s%s", pad, strings.Join(value, ", "))
	}
	io.WriteString(w, "\n")
}

// asciiDump approximates the printable rendering OpenSSL gives an unknown
// extension's octets.
func asciiDump(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c >= ' ' && c <= '~' {
			s.WriteByte(c)
		} else {
			s.WriteByte('.')
		}
	}
	return s.String()
}

var keyUsageNames = []string{
	"Digital Signature", "Non Repudiation", "Key Encipherment", "Data Encipherment",
	"Key Agreement", "Certificate Sign", "CRL Sign", "Encipher Only", "Decipher Only",
}

var extKeyUsageNames = map[string]string{
	"1.3.6.1.5.5.7.3.1": "TLS Web Server Authentication",
	"1.3.6.1.5.5.7.3.2": "TLS Web Client Authentication",
	"1.3.6.1.5.5.7.3.3": "Code Signing",
	"1.3.6.1.5.5.7.3.4": "E-mail Protection",
	"1.3.6.1.5.5.7.3.8": "Time Stamping",
	"1.3.6.1.5.5.7.3.9": "OCSP Signing",
	"2.5.29.37.0":       "Any Extended Key Usage",
}

// extensionText returns the value lines of an extension OpenSSL knows,
// whether it prints them one per line, and false when the extension is
// unknown or undecodable.
func extensionText(ext pkix.Extension) ([]string, bool, bool) {
	switch {
	case ext.Id.Equal(oidExtSKID):
		var id []byte
		if _, err := asn1.Unmarshal(ext.Value, &id); err != nil {
			return nil, false, false
		}
		return []string{colonUpper(id)}, false, true
	case ext.Id.Equal(oidExtAKID):
		var akid struct {
			ID     []byte        `asn1:"optional,tag:0"`
			Issuer asn1.RawValue `asn1:"optional,tag:1"`
			Serial *big.Int      `asn1:"optional,tag:2"`
		}
		if _, err := asn1.Unmarshal(ext.Value, &akid); err != nil {
			return nil, false, false
		}
		var lines []string
		if akid.ID != nil {
			lines = append(lines, "keyid:"+colonUpper(akid.ID))
		}
		if akid.Serial != nil {
			lines = append(lines, "serial:"+colonUpper(akid.Serial.Bytes()))
		}
		return lines, true, true
	case ext.Id.Equal(oidExtBasic):
		var bc struct {
			IsCA    bool `asn1:"optional"`
			PathLen int  `asn1:"optional,default:-1"`
		}
		bc.PathLen = -1
		if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil {
			return nil, false, false
		}
		v := []string{"CA:FALSE"}
		if bc.IsCA {
			v[0] = "CA:TRUE"
		}
		if bc.PathLen >= 0 {
			v = append(v, fmt.Sprintf("pathlen:%d", bc.PathLen))
		}
		return v, false, true
	case ext.Id.Equal(oidExtKeyUsage):
		var bits asn1.BitString
		if _, err := asn1.Unmarshal(ext.Value, &bits); err != nil {
			return nil, false, false
		}
		var v []string
		for i, n := range keyUsageNames {
			if bits.At(i) == 1 {
				v = append(v, n)
			}
		}
		return v, false, true
	case ext.Id.Equal(oidExtExtKeyUsage):
		var oids []asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(ext.Value, &oids); err != nil {
			return nil, false, false
		}
		var v []string
		for _, o := range oids {
			n, ok := extKeyUsageNames[o.String()]
			if !ok {
				n = o.String()
			}
			v = append(v, n)
		}
		return v, false, true
	case ext.Id.Equal(oidExtSAN):
		var names []asn1.RawValue
		if _, err := asn1.Unmarshal(ext.Value, &names); err != nil {
			return nil, false, false
		}
		var v []string
		for _, n := range names {
			switch n.Tag {
			case 1:
				v = append(v, "email:"+string(n.Bytes))
			case 2:
				v = append(v, "DNS:"+string(n.Bytes))
			case 6:
				v = append(v, "URI:"+string(n.Bytes))
			case 7:
				if len(n.Bytes) == 4 || len(n.Bytes) == 16 {
					v = append(v, "IP Address:"+ipText(net.IP(n.Bytes)))
				} else {
					v = append(v, "IP Address:<invalid>")
				}
			case 4:
				v = append(v, "DirName:"+onelineSlash(n.Bytes))
			default:
				v = append(v, "othername:<unsupported>")
			}
		}
		return v, false, true
	case ext.Id.Equal(oidExtCRLNumber):
		var num *big.Int
		if _, err := asn1.Unmarshal(ext.Value, &num); err != nil {
			return nil, false, false
		}
		return []string{num.String()}, false, true
	}
	return nil, false, false
}

// ipText formats an IP as OpenSSL does: dotted IPv4, or IPv6 as eight
// upper-case hex groups without zero compression.
func ipText(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil && len(ip) == 4 {
		return v4.String()
	}
	var groups []string
	for i := 0; i+1 < len(ip); i += 2 {
		groups = append(groups, fmt.Sprintf("%X", uint16(ip[i])<<8|uint16(ip[i+1])))
	}
	return strings.Join(groups, ":")
}

// onelineSlash renders a DirName general name the way X509_NAME_oneline
// does: "/C=US/O=…".
func onelineSlash(raw []byte) string {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		return "<invalid>"
	}
	var b strings.Builder
	for _, rdn := range seq {
		for _, atv := range rdn {
			name := atv.Type.String()
			for _, a := range nameAttrs {
				if a.oid.Equal(atv.Type) {
					name = a.name
				}
			}
			fmt.Fprintf(&b, "/%s=%s", name, escapeNameValue(atv.Value))
		}
	}
	return b.String()
}

// WriteCRLText writes a CRL as OpenSSL 1.0.2's X509_CRL_print does.
func WriteCRLText(w io.Writer, crl *x509.RevocationList) {
	fmt.Fprintf(w, "Certificate Revocation List (CRL):\n")
	// Go parses only v2 lists with extensions; v1 lists have none.
	version := 1
	if len(crl.Extensions) > 0 {
		version = 2
	}
	fmt.Fprintf(w, "        Version %d (0x%x)\n", version, version-1)
	fmt.Fprintf(w, "    Signature Algorithm: %s\n", sigAlgName(crl.SignatureAlgorithm))
	fmt.Fprintf(w, "        Issuer: %s\n", onelineSlashName(crl.RawIssuer))
	fmt.Fprintf(w, "        Last Update: %s\n", opensslTime(crl.ThisUpdate))
	if crl.NextUpdate.IsZero() {
		fmt.Fprintf(w, "        Next Update: NONE\n")
	} else {
		fmt.Fprintf(w, "        Next Update: %s\n", opensslTime(crl.NextUpdate))
	}
	if len(crl.Extensions) > 0 {
		fmt.Fprintf(w, "        CRL extensions:\n")
		for _, ext := range crl.Extensions {
			writeExtension(w, ext, 12)
		}
	}
	if len(crl.RevokedCertificateEntries) == 0 {
		fmt.Fprintf(w, "No Revoked Certificates.\n")
	} else {
		fmt.Fprintf(w, "Revoked Certificates:\n")
		for _, r := range crl.RevokedCertificateEntries {
			fmt.Fprintf(w, "    Serial Number: %s\n", strings.ToUpper(r.SerialNumber.Text(16)))
			fmt.Fprintf(w, "        Revocation Date: %s\n", opensslTime(r.RevocationTime))
		}
	}
	fmt.Fprintf(w, "    Signature Algorithm: %s", sigAlgName(crl.SignatureAlgorithm))
	hexDump(w, crl.Signature, 18, 9)
}

// onelineSlashName renders a full DER name as X509_NAME_oneline: "/CN=CA/DC=…".
func onelineSlashName(raw []byte) string { return onelineSlash(raw) }
