package vecs

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ListedEntry is one entry as `vecs-cli entry list --store S [--text]`
// prints it (vcenter-procedures.md §7).
type ListedEntry struct {
	// Alias is the entry's alias, such as __MACHINE_CERT.
	Alias string
	// Type is the entry type: Private Key, Secret Key, Trusted Cert or
	// Certification Revocation List.
	Type string
	// Cert is what follows "Certificate :" without --text: the PEM of the
	// certificate and its chain, or of a CRL; empty for a secret.
	Cert string
	// Text is what --text prints instead: OpenSSL's X509_print (or CRL)
	// text of the entry's first certificate.
	Text string
}

// fieldLine matches an entry list field line, "Name :\tvalue", at the start
// of a line. vecs-cli puts a space before the colon; the OpenSSL text
// ("Certificate:") does not.
var fieldLine = regexp.MustCompile(`^([A-Za-z][A-Za-z ]*?) :(?:[ \t]+(.*)|)$`)

// ParseEntryList parses the output of `vecs-cli entry list --store S`, with
// or without --text: an optional "Number of entries in store :\tN" line,
// then per entry "Alias :\t<alias>", "Entry type :\t<type>" and either
// "Certificate :\t<PEM>" followed by the rest of the PEM up to a blank line,
// or (--text) the OpenSSL text of the certificate up to the next alias.
// Line endings may be LF or CRLF. Unknown "Name : value" fields are
// ignored; any other line outside an entry's certificate, or a count that
// does not match the entries, is an error.
func ParseEntryList(out string) ([]ListedEntry, error) {
	var (
		entries []ListedEntry
		cur     *ListedEntry
		mode    int
		count   = -1
		body    strings.Builder
	)
	// What the lines being read are: fields, a PEM body or OpenSSL text.
	const (
		fields = iota
		inPEM
		inText
	)
	flush := func() {
		if cur == nil {
			return
		}
		switch mode {
		case inPEM:
			cur.Cert = strings.TrimSpace(body.String())
		case inText:
			cur.Text = strings.TrimRight(body.String(), "\n")
		}
		body.Reset()
		mode = fields
	}
	for i, raw := range strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n") {
		line := strings.TrimRight(raw, " \t\r")
		m := fieldLine.FindStringSubmatch(line)
		if m != nil && m[1] == "Alias" {
			flush()
			entries = append(entries, ListedEntry{Alias: strings.TrimSpace(m[2])})
			cur = &entries[len(entries)-1]
			if cur.Alias == "" {
				return nil, fmt.Errorf("line %d: entry without an alias", i+1)
			}
			continue
		}
		switch mode {
		case inPEM:
			if line == "" {
				flush()
				continue
			}
			body.WriteString(line + "\n")
			continue
		case inText:
			body.WriteString(line + "\n")
			continue
		}
		switch {
		case line == "":
			continue
		case m != nil && m[1] == "Number of entries in store":
			n, err := strconv.Atoi(strings.TrimSpace(m[2]))
			if err != nil || n < 0 || cur != nil || count >= 0 {
				return nil, fmt.Errorf("line %d: unexpected %q", i+1, line)
			}
			count = n
		case cur == nil:
			return nil, fmt.Errorf("line %d: %q before the first alias", i+1, line)
		case m != nil && m[1] == "Entry type":
			if cur.Type != "" {
				return nil, fmt.Errorf("line %d: entry %s has two types", i+1, cur.Alias)
			}
			cur.Type = strings.TrimSpace(m[2])
		case m != nil && m[1] == "Certificate":
			mode = inPEM
			if v := strings.TrimSpace(m[2]); v != "" {
				body.WriteString(v + "\n")
			}
		case line == "Certificate:" || strings.HasPrefix(line, "Certificate Revocation List"):
			mode = inText
			body.WriteString(line + "\n")
		case m != nil:
			// A field this parser does not know, such as one a newer
			// vecs-cli adds: ignored.
		default:
			return nil, fmt.Errorf("line %d: unexpected %q in entry %s", i+1, line, cur.Alias)
		}
	}
	flush()
	if count >= 0 && count != len(entries) {
		return nil, fmt.Errorf("the store says it has %d entries, the list shows %d", count, len(entries))
	}
	return entries, nil
}

// ParseStoreList returns the store names `vecs-cli store list` printed, one
// per line.
func ParseStoreList(out string) []string {
	var names []string
	for l := range strings.Lines(out) {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	return names
}

// CertText is what OpenSSL's certificate text says about a certificate.
type CertText struct {
	// Subject and Issuer are the names as printed.
	Subject, Issuer string
	// NotAfter is the end of the validity period.
	NotAfter time.Time
	// IsCA is true when basic constraints say CA:TRUE.
	IsCA bool
}

// opensslTime is the date format X509_print uses: "Apr  6 11:57:19 2029 GMT".
const opensslTime = "Jan _2 15:04:05 2006 MST"

// ParseCertText reads subject, issuer, validity end and CA flag from the
// OpenSSL text of one certificate (X509_print, as `vecs-cli entry list
// --text` and `openssl x509 -text` print it). Only the first certificate's
// fields are read. A text without a parsable "Not After" is an error.
func ParseCertText(text string) (CertText, error) {
	var c CertText
	seenAfter := false
	for l := range strings.Lines(text) {
		l = strings.TrimSpace(l)
		key, val, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "Subject":
			if c.Subject == "" {
				c.Subject = val
			}
		case "Issuer":
			if c.Issuer == "" {
				c.Issuer = val
			}
		case "Not After":
			if seenAfter {
				continue
			}
			t, err := time.Parse(opensslTime, strings.Join(strings.Fields(val), " "))
			if err != nil {
				// Single-digit days collapse to one space once fields are
				// joined; parse that form too.
				t, err = time.Parse("Jan 2 15:04:05 2006 MST", strings.Join(strings.Fields(val), " "))
			}
			if err != nil {
				return c, fmt.Errorf("not after %q: %w", val, err)
			}
			c.NotAfter, seenAfter = t.UTC(), true
		case "CA":
			if strings.EqualFold(val, "TRUE") {
				c.IsCA = true
			}
		}
	}
	if !seenAfter {
		return c, fmt.Errorf("no Not After line in the certificate text")
	}
	return c, nil
}
