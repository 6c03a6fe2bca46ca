package ldap

import (
	"bytes"
	"errors"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// vals makes a value list from strings.
func vals(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func TestParseLDIF(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []record
		wantErr string
	}{
		{
			name: "content records, version, comments",
			in: "# exported\n#  folded\n  comment\nversion: 1\n\n" +
				"dn: cn=a,dc=x\nobjectClass: top\nobjectClass: container\ncn: a\n\n\n" +
				"# between\ndn: cn=b,dc=x\ncn: b\n",
			want: []record{
				{entry: entry{DN: "cn=a,dc=x", Attrs: []attr{{"objectClass", vals("top", "container")}, {"cn", vals("a")}}}, Line: 6},
				{entry: entry{DN: "cn=b,dc=x", Attrs: []attr{{"cn", vals("b")}}}, Line: 13},
			},
		},
		{
			name: "folding, base64, CRLF, spaces",
			in: "dn: cn=TenantCredential-1,cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=\r\n Services,dc=vsphere,dc=local\r\n" +
				"userCertificate:: AAEC\r\n /w==\r\n" +
				"description:    leading spaces go, trailing stay  \r\n" +
				"empty:\r\n" +
				"CN: repeated names merge\r\ncn: in order\r\n",
			want: []record{{entry: entry{
				DN: "cn=TenantCredential-1,cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=Services,dc=vsphere,dc=local",
				Attrs: []attr{
					{"userCertificate", [][]byte{{0, 1, 2, 0xff}}},
					{"description", vals("leading spaces go, trailing stay  ")},
					{"empty", vals("")},
					{"CN", vals("repeated names merge", "in order")},
				},
			}, Line: 1}},
		},
		{
			name: "base64 DN and option names",
			in:   "dn:: Y249w6lsw6huZSxkYz14\nuserCertificate;binary:: AA==\n1.2.840.113556.1.4.1:: AQ==\n",
			want: []record{{entry: entry{DN: "cn=élène,dc=x", Attrs: []attr{
				{"userCertificate;binary", [][]byte{{0}}},
				{"1.2.840.113556.1.4.1", [][]byte{{1}}},
			}}, Line: 1}},
		},
		{
			name: "change records",
			in: "dn: cn=a,dc=x\nchangetype: add\ncn: a\n\n" +
				"dn: cn=b,dc=x\nchangetype: delete\n\n" +
				"dn: cn=c,dc=x\nchangetype: modify\nadd: mail\nmail: m1\nmail: m2\n-\ndelete: description\n-\nreplace: sn\nsn: s\n-\n",
			want: []record{
				{entry: entry{DN: "cn=a,dc=x", Attrs: []attr{{"cn", vals("a")}}}, ChangeType: "add", Line: 1},
				{entry: entry{DN: "cn=b,dc=x"}, ChangeType: "delete", Line: 5},
				{entry: entry{DN: "cn=c,dc=x"}, ChangeType: "modify", Line: 8, Mods: []mod{
					{Op: "add", attr: attr{"mail", vals("m1", "m2")}},
					{Op: "delete", attr: attr{Name: "description"}},
					{Op: "replace", attr: attr{"sn", vals("s")}},
				}},
			},
		},
		{name: "empty", in: "\n\n# nothing\n", want: nil},
		{name: "no dn", in: "cn: a\n", wantErr: "ldif line 1: a record starts with dn:, not cn:"},
		{name: "bad base64", in: "dn: cn=a\ncn:: !!\n", wantErr: "ldif line 2: cn: bad base64"},
		{name: "no colon", in: "dn: cn=a\ngarbage\n", wantErr: `ldif line 2: want name: value, got "garbage"`},
		{name: "bad attribute name", in: "dn: cn=a\nc_n: x\n", wantErr: `ldif line 2: "c_n" is not an attribute name`},
		{name: "no attributes", in: "dn: cn=a\n\n", wantErr: "ldif line 1: record cn=a has no attributes"},
		{name: "version 2", in: "version: 2\ndn: cn=a\ncn: a\n", wantErr: `ldif line 1: unsupported LDIF version "2"`},
		{name: "modrdn", in: "dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\n", wantErr: "ldif line 2: changetype modrdn is not supported"},
		{name: "unknown changetype", in: "dn: cn=a\nchangetype: frob\n", wantErr: `ldif line 2: unknown changetype "frob"`},
		{name: "control", in: "dn: cn=a\ncontrol: 1.2.3 true\nchangetype: delete\n", wantErr: "ldif line 2: LDIF controls are not supported"},
		{name: "delete with body", in: "dn: cn=a\nchangetype: delete\ncn: a\n", wantErr: "ldif line 3: a delete record has no other lines"},
		{name: "modify without dash", in: "dn: cn=a\nchangetype: modify\nreplace: sn\nsn: s\n", wantErr: "ldif line 4: modification of sn does not end with -"},
		{name: "modify wrong attribute", in: "dn: cn=a\nchangetype: modify\nreplace: sn\ncn: s\n-\n", wantErr: "ldif line 4: value of cn inside the modification of sn"},
		{name: "modify add without values", in: "dn: cn=a\nchangetype: modify\nadd: sn\n-\n", wantErr: "ldif line 4: add: sn without values"},
		{name: "changetype late", in: "dn: cn=a\ncn: a\nchangetype: add\n", wantErr: "ldif line 3: changetype: out of place"},
		{name: "binary dn", in: "dn:: AAE=\ncn: a\n", wantErr: "ldif line 1: dn: not text"},
		{name: "url not allowed", in: "dn: cn=a\nuserCertificate:< file:///etc/hostname\n", wantErr: "ldif line 2: userCertificate: values from URLs (file:///etc/hostname) are not allowed here"},
		{name: "continuation first", in: " cn: a\n", wantErr: `ldif line 1: " cn" is not an attribute name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLDIF(strings.NewReader(tc.in), ldifOptions{})
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestParseLDIFFileURLs reads fixsts's own LDIF: values from files next to
// it ("name:< file:sts.der") and absolute file URLs.
func TestParseLDIFFileURLs(t *testing.T) {
	dir := t.TempDir()
	der, key := []byte{0x30, 0x82, 0x00, 0x01, 0xff}, []byte{0x30, 0x00, 0x0a, 0x0d}
	for name, b := range map[string][]byte{"sts.der": der, "sts.key.der": key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	abs := filepath.Join(dir, "sts.der")
	src := "dn: cn=TenantCredential-1,cn=x\nchangetype: add\nobjectClass: vmwSTSTenantCredential\n" +
		"userCertificate:< file:sts.der\nuserCertificate:< file://" + abs + "\nvmwSTSPrivateKey:< file:sts.key.der\n"
	path := filepath.Join(dir, "sso-sts.ldif")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	recs, err := readLDIFFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []attr{
		{"objectClass", vals("vmwSTSTenantCredential")},
		{"userCertificate", [][]byte{der, der}},
		{"vmwSTSPrivateKey", [][]byte{key}},
	}
	if len(recs) != 1 || !reflect.DeepEqual(recs[0].Attrs, want) {
		t.Fatalf("records %+v", recs)
	}

	read := fileURLReader(dir)
	for _, tc := range []struct{ url, wantErr string }{
		{"http://example.com/x", "http: only file: URLs are supported"},
		{"file://otherhost/etc/x", "file URL on host otherhost: only local files are read"},
		{"file:missing.der", "open " + filepath.Join(dir, "missing.der")},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := read(u); err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want %q", tc.url, err, tc.wantErr)
		}
	}
	if _, err := read(&url.URL{Scheme: "http"}); !errors.Is(err, errURLScheme) {
		t.Errorf("http URL: %v, want errURLScheme", err)
	}
}

// goldenRecords exercise every way the writer writes a value.
func goldenRecords() []record {
	der := make([]byte, 120)
	for i := range der {
		der[i] = byte(i * 7)
	}
	return []record{
		{entry: entry{
			DN: "cn=TenantCredential-1,cn=vsphere.local,cn=Tenants,cn=IdentityManager,cn=Services,dc=vsphere,dc=local",
			Attrs: []attr{
				{"objectClass", vals("top", "vmwSTSTenantCredential")},
				{"cn", vals("TenantCredential-1")},
				{"userCertificate", [][]byte{der, der[:3]}},
				{"vmwSTSPrivateKey", vals("ascii bytes of a binary attribute are base64 too")},
			},
		}},
		{entry: entry{
			DN: "cn=élène,dc=x",
			Attrs: []attr{
				{"description", vals(
					strings.Repeat("a long text value that is folded at seventy-six columns. ", 3)+"end",
					" leading space", ":colon", "<less", "trailing space ", "line\nbreak", "nul\x00", "ünïcode", "",
				)},
			},
		}},
		{entry: entry{DN: "cn=gone,dc=x"}, ChangeType: changeDelete},
		{entry: entry{DN: "cn=c,dc=x"}, ChangeType: changeModify, Mods: []mod{
			{Op: "replace", attr: attr{"userCertificate", [][]byte{{1, 2, 3}}}},
			{Op: "delete", attr: attr{Name: "description"}},
		}},
	}
}

func TestWriteLDIFGolden(t *testing.T) {
	recs := goldenRecords()
	var buf bytes.Buffer
	header := "golden test of the LDIF writer\nsecond line of the header, which is long enough to be folded like any other line"
	if err := writeLDIF(&buf, header, recs); err != nil {
		t.Fatal(err)
	}
	golden(t, "write.ldif", buf.Bytes())
	for i, l := range strings.Split(buf.String(), "\n") {
		if len(l) > foldWidth {
			t.Errorf("line %d is %d bytes long", i+1, len(l))
		}
	}
	back, err := parseLDIF(&buf, ldifOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range back {
		back[i].Line = 0
	}
	if !reflect.DeepEqual(back, recs) {
		t.Errorf("read back\n%+v\nwant\n%+v", back, recs)
	}
}

// FuzzParseLDIF checks that the parser never panics, and that whatever it
// accepts the writer writes back to the same records.
func FuzzParseLDIF(f *testing.F) {
	var buf bytes.Buffer
	if err := writeLDIF(&buf, "seed", goldenRecords()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.String())
	f.Add("version: 1\ndn: cn=a\ncn: a\n")
	f.Add("dn: cn=a\nchangetype: modify\nadd: cn\ncn: b\n-\n")
	f.Add("dn:: Y249YQ==\ncn:: AAE=\n #x\n")
	f.Fuzz(func(t *testing.T, in string) {
		recs, err := parseLDIF(strings.NewReader(in), ldifOptions{})
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := writeLDIF(&out, "", recs); err != nil {
			t.Fatal(err)
		}
		back, err := parseLDIF(bytes.NewReader(out.Bytes()), ldifOptions{})
		if err != nil {
			t.Fatalf("written LDIF does not parse: %v\n%s", err, out.Bytes())
		}
		if len(back) != len(recs) {
			t.Fatalf("%d records read back, want %d", len(back), len(recs))
		}
		for i := range recs {
			recs[i].Line, back[i].Line = 0, 0
			if !reflect.DeepEqual(norm(back[i]), norm(recs[i])) {
				t.Fatalf("record %d read back as\n%+v\nwant\n%+v", i, back[i], recs[i])
			}
		}
	})
}

// norm makes empty value slices nil, so that records compare by content.
func norm(r record) record {
	fix := func(a attr) attr {
		vs := make([][]byte, len(a.Values))
		for i, v := range a.Values {
			if len(v) == 0 {
				v = []byte{}
			}
			vs[i] = v
		}
		if len(vs) == 0 {
			vs = nil
		}
		return attr{Name: a.Name, Values: vs}
	}
	for i := range r.Attrs {
		r.Attrs[i] = fix(r.Attrs[i])
	}
	for i := range r.Mods {
		r.Mods[i].attr = fix(r.Mods[i].attr)
	}
	return r
}
