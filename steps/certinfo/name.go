package certinfo

import (
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// attribute is one AttributeTypeAndValue of a distinguished name, its value
// kept raw so that every string type can be decoded as OpenSSL does.
type attribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// attributeSET is a RelativeDistinguishedName; the SET suffix makes
// encoding/asn1 treat it as a SET OF.
type attributeSET []attribute

// shortNames are OpenSSL's short names for the attribute types found in
// certificate names.
var shortNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.4":                    "SN",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "street",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "title",
	"2.5.4.13":                   "description",
	"2.5.4.15":                   "businessCategory",
	"2.5.4.17":                   "postalCode",
	"2.5.4.41":                   "name",
	"2.5.4.42":                   "GN",
	"2.5.4.43":                   "initials",
	"2.5.4.44":                   "generationQualifier",
	"2.5.4.46":                   "dnQualifier",
	"2.5.4.65":                   "pseudonym",
	"2.5.4.97":                   "organizationIdentifier",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"1.2.840.113549.1.9.2":       "unstructuredName",
	"1.2.840.113549.1.9.8":       "unstructuredAddress",
	"1.3.6.1.4.1.311.60.2.1.1":   "jurisdictionL",
	"1.3.6.1.4.1.311.60.2.1.2":   "jurisdictionST",
	"1.3.6.1.4.1.311.60.2.1.3":   "jurisdictionC",
}

// Name renders a DER-encoded distinguished name (a certificate's RawSubject
// or RawIssuer) as `openssl x509 -nameopt RFC2253,sep_comma_plus_space`
// prints it, without escaping non-ASCII characters: attributes from the
// last to the first ("CN=vcsa1.lab.test, O=VMware, C=US"), ", " between
// RDNs, " + " inside a multi-valued RDN, OpenSSL short names (CN, O, OU,
// DC, emailAddress, …), RFC 2253 escapes (`\,`, `\+`, `\"`, `\\`, `\<`,
// `\>`, `\;`, a leading `\#` or `\ `, a trailing `\ `, control characters
// as `\XX`). A value that is not a string, and any value of a type
// without a short name (which is then named by its dotted OID), is written
// as "#" and its DER in hex (RFC 2253 section 2.4).
func Name(raw []byte) (string, error) {
	var seq []attributeSET
	rest, err := asn1.Unmarshal(raw, &seq)
	if err != nil {
		return "", fmt.Errorf("parse name: %w", err)
	}
	if len(rest) > 0 {
		return "", errors.New("parse name: trailing data")
	}
	type part struct {
		attr  attribute
		first bool // first attribute of its RDN in DER order
	}
	var parts []part
	for _, rdn := range seq {
		for i, a := range rdn {
			parts = append(parts, part{a, i == 0})
		}
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		name, known := shortNames[p.attr.Type.String()]
		if !known {
			name = p.attr.Type.String()
		}
		b.WriteString(name)
		b.WriteByte('=')
		if s, ok := decodeString(p.attr.Value); ok && known {
			writeEscaped(&b, s)
		} else {
			b.WriteByte('#')
			b.WriteString(strings.ToUpper(hex.EncodeToString(p.attr.Value.FullBytes)))
		}
		if i > 0 {
			if p.first {
				b.WriteString(", ")
			} else {
				b.WriteString(" + ")
			}
		}
	}
	return b.String(), nil
}

// decodeString returns the UTF-8 text of a string-typed value.
func decodeString(v asn1.RawValue) (string, bool) {
	if v.Class != asn1.ClassUniversal || v.IsCompound {
		return "", false
	}
	switch v.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String,
		asn1.TagNumericString, 26 /* VisibleString */ :
		return string(v.Bytes), true
	case asn1.TagT61String: // read as Latin-1, as OpenSSL does
		r := make([]rune, len(v.Bytes))
		for i, c := range v.Bytes {
			r[i] = rune(c)
		}
		return string(r), true
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(v.Bytes[2*i:])
		}
		return string(utf16.Decode(u)), true
	case 28: // UniversalString
		if len(v.Bytes)%4 != 0 {
			return "", false
		}
		r := make([]rune, len(v.Bytes)/4)
		for i := range r {
			r[i] = rune(binary.BigEndian.Uint32(v.Bytes[4*i:]))
		}
		return string(r), true
	}
	return "", false
}

func writeEscaped(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 { // not UTF-8: escape the byte
			c := s[i]
			b.WriteByte('\\')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0x0f])
			i++
			continue
		}
		last := i+size == len(s)
		switch {
		case r == ',' || r == '+' || r == '"' || r == '\\' || r == '<' || r == '>' || r == ';',
			r == '#' && i == 0,
			r == ' ' && (i == 0 || last):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteByte('\\')
			b.WriteByte(hexDigits[r>>4])
			b.WriteByte(hexDigits[r&0x0f])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
}
