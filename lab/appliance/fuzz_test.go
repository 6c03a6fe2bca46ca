package appliance

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzCertoolConfig: the certool.cfg parser never panics, and what it
// accepts survives a Marshal/Parse round trip unchanged.
func FuzzCertoolConfig(f *testing.F) {
	f.Add([]byte(certoolCfg))
	f.Add([]byte("Country = US\nName = CA\n#IPAddress = \nHostname = a.example.com, b.example.com\n"))
	f.Add([]byte("[section]\nName = x\n"))
	f.Add([]byte("Name = a=b # comment\r\nEmail=\n"))
	f.Add([]byte("Country\n"))
	f.Add([]byte("Name = x\nName = y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCertoolConfig(data)
		if err != nil {
			return
		}
		again, err := ParseCertoolConfig(c.Marshal())
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v\n%s", err, c.Marshal())
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip changed the config:\n%#v\n%#v\n%s", c, again, c.Marshal())
		}
		if _, err := c.Request(); err != nil && !strings.Contains(err.Error(), "invalid IP address") {
			t.Fatalf("Request: %v", err)
		}
	})
}

// FuzzCommandArgs: vecs-cli's argument parser never panics, and either
// accepts a request with a known object or reports ErrUsage.
func FuzzCommandArgs(f *testing.F) {
	for _, s := range []string{
		"store list", "store create --name X", "store delete --name X -y",
		"entry list --store S --text", "entry list --store S --aliases",
		"entry getcert --store S --alias A --output f --text", "entry getkey --store S --alias A",
		"entry create --store S --alias A --cert f --key k", "entry delete --store S --alias A -y",
		"entry", "store list --server", "help", "force-refresh --upn u",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, " ")
		r, err := ParseVecsArgs(args)
		if err != nil {
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		switch r.Object {
		case "store", "entry", "help", "force-refresh":
		default:
			t.Fatalf("accepted object %q", r.Object)
		}
		_, _ = ParseCertoolArgs(args)
	})
}
