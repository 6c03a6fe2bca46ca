package vecs

import (
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"runbook/internal/golden"

	"runbook/steps/certinfo"
)

// parsedEntry is what the golden files record of a parsed entry: enough to
// see that the right text landed in the right field.
type parsedEntry struct {
	Alias     string    `json:"alias"`
	Type      string    `json:"type"`
	PEMBlocks int       `json:"pemBlocks,omitempty"`
	SHA1      string    `json:"sha1,omitempty"`
	CertLines int       `json:"certLines,omitempty"`
	TextLines int       `json:"textLines,omitempty"`
	Text      *CertText `json:"text,omitempty"`
}

// TestParseEntryListGolden parses entry list outputs in the formats of
// vcenter-procedures.md §7 (with and without --text, certificates, CRLs,
// secrets, CRLF) and compares what it found with testdata/*.golden.
func TestParseEntryListGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := ParseEntryList(string(data))
			if err != nil {
				t.Fatal(err)
			}
			got := []parsedEntry{}
			for _, e := range entries {
				pe := parsedEntry{Alias: e.Alias, Type: e.Type}
				if e.Cert != "" {
					pe.CertLines = strings.Count(e.Cert, "\n") + 1
					if certs, err := certinfo.Decode(e.Cert); err == nil && strings.Contains(e.Cert, "CERTIFICATE") {
						pe.PEMBlocks = len(certs)
						pe.SHA1 = certinfo.Thumbprint(certs[0].Raw, crypto.SHA1)
					}
				}
				if e.Text != "" {
					pe.TextLines = strings.Count(e.Text, "\n") + 1
					if ct, err := ParseCertText(e.Text); err == nil {
						pe.Text = &ct
					}
				}
				got = append(got, pe)
			}
			golden.JSON(t, strings.TrimSuffix(in, ".txt")+".golden", got)
		})
	}
}

// TestParseEntryListSame checks that CRLF and LF outputs parse alike.
func TestParseEntryListSame(t *testing.T) {
	read := func(name string) []ListedEntry {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		es, err := ParseEntryList(string(data))
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	if a, b := read("machine-ssl.txt"), read("machine-ssl-crlf.txt"); !reflect.DeepEqual(a, b) {
		t.Errorf("LF %+v\nCRLF %+v", a, b)
	}
}

func TestParseEntryListErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Number of entries in store :\t2\nAlias :\ta\nEntry type :\tTrusted Cert\nCertificate :\tx\n\n", "says it has 2 entries, the list shows 1"},
		{"Entry type :\tTrusted Cert\n", `line 1: "Entry type :\tTrusted Cert" before the first alias`},
		{"Alias :\ta\nEntry type :\tTrusted Cert\nEntry type :\tPrivate Key\n", "entry a has two types"},
		{"Alias :\t \n", "line 1: entry without an alias"},
		{"Alias :\ta\ngarbage\n", `line 2: unexpected "garbage" in entry a`},
		{"Alias :\ta\nNumber of entries in store :\t1\n", `line 2: unexpected "Number of entries in store :\t1"`},
		{"Vdcrepadmin failed. Error [x] [1]\n", "before the first alias"},
	} {
		if _, err := ParseEntryList(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseEntryList(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
	// Unknown fields are ignored; an empty output is an empty store.
	es, err := ParseEntryList("Alias :\ta\nEntry type :\tTrusted Cert\nOwner :\troot\nCertificate :\tPEM\n\n")
	if err != nil || len(es) != 1 || es[0].Cert != "PEM" {
		t.Errorf("unknown field: %+v, %v", es, err)
	}
	if es, err := ParseEntryList(""); err != nil || len(es) != 0 {
		t.Errorf("empty: %+v, %v", es, err)
	}
}

func TestParseCertText(t *testing.T) {
	text := "Certificate:\n    Data:\n        Issuer: CN=CA, DC=vsphere, DC=local\n        Validity\n" +
		"            Not Before: Apr  6 11:57:19 2019 GMT\n            Not After : Apr  6 11:57:19 2029 GMT\n" +
		"        Subject: CN=vcsa1.example.com\n        X509v3 extensions:\n            X509v3 Subject Key Identifier: \n" +
		"                AB:CD\n            X509v3 Basic Constraints: critical\n                CA:FALSE\n"
	got, err := ParseCertText(text)
	want := CertText{Subject: "CN=vcsa1.example.com", Issuer: "CN=CA, DC=vsphere, DC=local",
		NotAfter: time.Date(2029, 4, 6, 11, 57, 19, 0, time.UTC)}
	if err != nil || got != want {
		t.Errorf("ParseCertText = %+v, %v", got, err)
	}
	// The one-liner's collapsed form, as blogs show it.
	got, err = ParseCertText("Not After : Dec 12 08:01:02 2030 GMT\nCA:TRUE\n")
	if err != nil || !got.NotAfter.Equal(time.Date(2030, 12, 12, 8, 1, 2, 0, time.UTC)) || !got.IsCA {
		t.Errorf("collapsed = %+v, %v", got, err)
	}
	for _, in := range []string{"", "Not After : someday\n", "Certificate Revocation List (CRL):\n        Next Update: Apr 13 11:57:19 2019 GMT\n"} {
		if _, err := ParseCertText(in); err == nil {
			t.Errorf("ParseCertText(%q) accepted", in)
		}
	}
}

// render writes entries back in the format ParseEntryList reads.
func render(es []ListedEntry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Number of entries in store :\t%d\n", len(es))
	for _, e := range es {
		fmt.Fprintf(&b, "Alias :\t%s\nEntry type :\t%s\n", e.Alias, e.Type)
		if e.Cert != "" {
			fmt.Fprintf(&b, "Certificate :\t%s\n\n", e.Cert)
		}
		if e.Text != "" {
			b.WriteString(e.Text + "\n")
		}
	}
	return b.String()
}

func FuzzParseEntryList(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Add("Alias :\ta\nEntry type :\tTrusted Cert\nCertificate :\t\n\nCertificate:\n  x\n")
	f.Fuzz(func(t *testing.T, out string) {
		es, err := ParseEntryList(out)
		if err != nil {
			return
		}
		for _, e := range es {
			if e.Alias == "" || strings.TrimSpace(e.Alias) != e.Alias || strings.Contains(e.Cert, "\n\n") {
				t.Fatalf("entry %+v", e)
			}
		}
		again, err := ParseEntryList(render(es))
		if err != nil {
			t.Fatalf("re-parse %q: %v", render(es), err)
		}
		if len(es) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(es, again) {
			t.Fatalf("round trip:\n%+v\n%+v", es, again)
		}
		for _, e := range es {
			if e.Text != "" {
				_, _ = ParseCertText(e.Text)
			}
		}
	})
}

func FuzzParseCertText(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "trusted-roots-text.txt"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(data))
	f.Add("Not After : Apr  6 11:57:19 2029 GMT\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCertText(text)
		if err == nil && c.NotAfter.IsZero() {
			t.Fatalf("no error and no date: %+v", c)
		}
	})
}

func BenchmarkParseEntryList(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "trusted-roots-text.txt"))
	if err != nil {
		b.Fatal(err)
	}
	pemData, err := os.ReadFile(filepath.Join("testdata", "machine-ssl.txt"))
	if err != nil {
		b.Fatal(err)
	}
	for _, in := range []struct {
		name string
		data []byte
	}{{"text", data}, {"pem", pemData}} {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				if _, err := ParseEntryList(string(in.data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
