package services

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"runbook/internal/golden"
)

// TestParseStatusGolden parses service-control --status outputs in the
// format of vcenter-procedures.md §7 (either group first, wrapped name
// lines, other states, CRLF) and compares them with testdata/*.golden.
func TestParseStatusGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "status-*.txt"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			st, err := ParseStatus(string(data))
			if err != nil {
				t.Fatal(err)
			}
			golden.JSON(t, strings.TrimSuffix(in, ".txt")+".golden", st)
		})
	}
}

func TestParseStatusErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{" vmafdd\nRunning:\n vmdird\n", "line 1: service names before a Running: or Stopped: line"},
		{"Running:\n vmafdd\nStopped:\n vmafdd\n", "line 4: service vmafdd is listed both as Running and as Stopped"},
		{"Running:\nvmafdd\n", `line 2: unexpected "vmafdd"`},
		{"Service-control failed. Error: boom\n", `line 1: unexpected "Service-control failed. Error: boom"`},
	} {
		if _, err := ParseStatus(tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("ParseStatus(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestStartErrors(t *testing.T) {
	// As service-control prints a failed start: the problem details twice,
	// then the lab's reason line.
	out := "Operation not cancellable. Please wait for it to finish...\n" +
		"Performing start operation on service vmware-stsd...\n" +
		"Error executing start on service vmware-stsd. Details {\n" +
		"    \"detail\": [\n        {\n            \"id\": \"install.ciscommon.service.failstart\",\n" +
		"            \"translatable\": \"An error occurred while starting service '%(0)s'\",\n" +
		"            \"args\": [\n                \"vmware-stsd\"\n            ],\n" +
		"            \"localized\": \"An error occurred while starting service 'vmware-stsd'\"\n        }\n    ],\n" +
		"    \"componentKey\": null,\n    \"problemId\": null,\n    \"resolution\": null\n}\n" +
		"Service-control failed. Error: {\n    \"detail\": [\n        {\n" +
		"            \"localized\": \"An error occurred while starting service 'vmware-stsd'\"\n        }\n    ]\n}\n" +
		"Reason: InvalidTimeRange: Signing certificate is not valid at Sun Jun 01 12:30:00 UTC 2025\n"
	want := []string{
		"Error executing start on service vmware-stsd",
		"An error occurred while starting service 'vmware-stsd'",
		"Reason: InvalidTimeRange: Signing certificate is not valid at Sun Jun 01 12:30:00 UTC 2025",
	}
	if got := StartErrors(out); !slices.Equal(got, want) {
		t.Errorf("StartErrors = %q", got)
	}
	if got := StartErrors("Service-control failed. Error: Service vmware-vmon does not seems to be registered with vMon\n"); !reflect.DeepEqual(got,
		[]string{"Service-control failed. Error: Service vmware-vmon does not seems to be registered with vMon"}) {
		t.Errorf("plain error: %q", got)
	}
	if got := StartErrors(strings.Repeat("error "+strings.Repeat("x", 400)+"\n", 20)); len(got) != 1 || len(got[0]) != 300 {
		t.Errorf("long lines: %d lines", len(got))
	}
}

func FuzzParseStatus(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "status-*.txt"))
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, out string) {
		st, err := ParseStatus(out)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, name := range slices.Concat(st.Running, st.Stopped) {
			if name == "" || strings.ContainsAny(name, " \t\r\n") || seen[name] {
				t.Fatalf("name %q in %+v", name, st)
			}
			seen[name] = true
		}
		// Printing the groups back in the real format gives the same status.
		var b strings.Builder
		if len(st.Stopped) > 0 {
			b.WriteString("Stopped:\n " + strings.Join(st.Stopped, " ") + "\n")
		}
		if len(st.Running) > 0 {
			b.WriteString("Running:\n " + strings.Join(st.Running, " ") + "\n")
		}
		again, err := ParseStatus(b.String())
		if err != nil || !reflect.DeepEqual(again, st) {
			t.Fatalf("round trip %q: %+v, %v; was %+v", b.String(), again, err, st)
		}
		_ = StartErrors(out)
	})
}

func BenchmarkParseStatus(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "status-all.txt"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseStatus(string(data)); err != nil {
			b.Fatal(err)
		}
	}
}
