package ldap

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
)

func TestOutputEntry(t *testing.T) {
	cert := []byte{0x30, 0x82, 0x01, 0x00}
	e := &entry{DN: "cn=TenantCredential-1,dc=x", Attrs: []attr{
		{"objectClass", vals("top", "vmwSTSTenantCredential")},
		{"usercertificate", [][]byte{cert, []byte("ascii but binary")}},
		{"vmwSTSPrivateKey", [][]byte{make([]byte, 1217)}},
		{"userPassword", vals("VMware1!")},
		{"invocationId", [][]byte{{0xff, 0x00}}},
		{"description", vals("plain ü text")},
	}}
	got := outputEntry(e, map[string]string{"usercertificate": "userCertificate"})
	want := Entry{
		DN: "cn=TenantCredential-1,dc=x",
		Attrs: map[string][]string{
			"objectClass":      {"top", "vmwSTSTenantCredential"},
			"userCertificate":  {base64.StdEncoding.EncodeToString(cert), base64.StdEncoding.EncodeToString([]byte("ascii but binary"))},
			"vmwSTSPrivateKey": {"<private key, 1217 bytes>"},
			"userPassword":     {"<password>"},
			"invocationId":     {"/wA="},
			"description":      {"plain ü text"},
		},
		Binary: []string{"userCertificate", "invocationId"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestDescribeValue(t *testing.T) {
	der := testCertDER(t, "CN=STS")
	tests := []struct {
		name string
		attr string
		v    []byte
		want string // prefix
	}{
		{"text", "cn", []byte("TenantCredential-2"), "TenantCredential-2"},
		{"key", "vmwSTSPrivateKey", make([]byte, 100), "<private key, 100 bytes>"},
		{"password", "userPassword", []byte("s3cret"), "<password>"},
		{"certificate", "userCertificate", der, `<certificate "CN=STS", expires `},
		{"bytes", "userCertificate", []byte{1, 2, 3}, "<3 bytes, sha256 039058C6F2C0CB49…>"},
		{"non-text", "description", []byte{0xff}, "<1 bytes, sha256 A8100AE6AA1940D0…>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := describeValue(tc.attr, tc.v)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want %q…", got, tc.want)
			}
			if strings.Contains(got, "s3cret") {
				t.Errorf("the secret shows: %q", got)
			}
		})
	}
}

func TestParamValue(t *testing.T) {
	tests := []struct {
		in      string
		want    []byte
		wantErr string
	}{
		{"plain", []byte("plain"), ""},
		{"base64:AAEC/w==", []byte{0, 1, 2, 0xff}, ""},
		{"base64:AAEC\n /w==", []byte{0, 1, 2, 0xff}, ""},
		{"base64:", []byte{}, ""},
		{"base64:!!", nil, `value "base64:!!": bad base64 after "base64:"`},
		{"Base64:AA==", []byte("Base64:AA=="), ""},
	}
	for _, tc := range tests {
		got, err := paramValue(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || string(got) != string(tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestSameValues(t *testing.T) {
	tests := []struct {
		name       string
		attr       string
		want, have [][]byte
		same       bool
	}{
		{"binary in order", "userCertificate", vals("leaf", "root"), vals("leaf", "root"), true},
		{"binary out of order", "userCertificate", vals("leaf", "root"), vals("root", "leaf"), false},
		{"binary case", "userCertificate", vals("a"), vals("A"), false},
		{"text as a set", "member", vals("a", "b"), vals("b", "a"), true},
		{"text case", "cn", vals("a"), vals("A"), false},
		{"text extra", "member", vals("a"), vals("a", "b"), false},
		{"text missing", "member", vals("a", "b"), vals("a"), false},
		{"objectClass case and top", "objectClass", vals("vmwSTSTenantCredential"), vals("top", "vmwststenantcredential"), true},
		{"objectClass other", "objectClass", vals("container"), vals("top", "vmwSTSTenantCredential"), false},
		{"absent", "cn", vals("a"), nil, false},
	}
	for _, tc := range tests {
		if got := sameValues(tc.attr, tc.want, tc.have); got != tc.same {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.same)
		}
	}
}

func TestValidAttrName(t *testing.T) {
	for s, want := range map[string]bool{
		"cn": true, "userCertificate;binary": true, "vmwLKUP-x": true, "2.5.4.3": true, "cn;lang-en;x": true,
		"": false, "1cn": false, "c_n": false, "cn;": false, "2.5..4": false, "01.2": false, "cn;a b": false,
	} {
		if got := validAttrName(s); got != want {
			t.Errorf("validAttrName(%q) = %v", s, got)
		}
	}
}
