package ldap

import (
	"bytes"
	"fmt"
	"testing"
)

// benchRecords are n STS credentials of about 2.5 KB each, as a large
// vmdir export holds them.
func benchRecords(n int) []record {
	cert := bytes.Repeat([]byte{0x30, 0x82, 0x03, 0x98, 0xa0}, 200)
	key := bytes.Repeat([]byte{0x30, 0x82, 0x04, 0xbe}, 300)
	recs := make([]record, n)
	for i := range recs {
		recs[i] = record{entry: entry{
			DN: credDN(i + 1),
			Attrs: []attr{
				{"objectClass", vals("top", "vmwSTSTenantCredential")},
				{"cn", vals(fmt.Sprintf("TenantCredential-%d", i+1))},
				{"userCertificate", [][]byte{cert, cert}},
				{"vmwSTSPrivateKey", [][]byte{key}},
			},
		}}
	}
	return recs
}

func BenchmarkWriteLDIF(b *testing.B) {
	recs := benchRecords(1000)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := writeLDIF(&buf, "bench", recs); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

func BenchmarkParseLDIF(b *testing.B) {
	var buf bytes.Buffer
	if err := writeLDIF(&buf, "bench", benchRecords(1000)); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		recs, err := parseLDIF(bytes.NewReader(data), ldifOptions{})
		if err != nil || len(recs) != 1000 {
			b.Fatal(len(recs), err)
		}
	}
}

// BenchmarkSearchLab searches the lab's tenant over LDAPS, as ldap.search
// runs: one paged search and the conversion of the entries for outputs.
func BenchmarkSearchLab(b *testing.B) {
	f, dom := startLab(b)
	p := &searchParams{Base: dom.DN, Scope: "sub", Filter: "(objectClass=*)"}
	if _, err := runSearch(b.Context(), f.env, p); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		out, err := runSearch(b.Context(), f.env, p)
		if err != nil || out.Count == 0 {
			b.Fatal(out.Count, err)
		}
	}
}
