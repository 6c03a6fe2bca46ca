package certmgr

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	for _, tt := range []struct {
		line string
		want Status
		ok   bool
	}{
		{"Status : 0% Completed [Replacing Machine SSL Cert...]", Status{Percent: 0, Message: "Replacing Machine SSL Cert..."}, true},
		{"  Status : 100% Completed [All tasks completed successfully]\r", Status{Percent: 100, Message: "All tasks completed successfully"}, true},
		{"Rollback Status : 25% Completed [Rollback Machine SSL Cert...]", Status{Rollback: true, Percent: 25, Message: "Rollback Machine SSL Cert..."}, true},
		{"Status:85%Completed[starting services...]", Status{Percent: 85, Message: "starting services..."}, true},
		{"Status : 0% Completed []", Status{}, true},
		{"Status : 101% Completed [x]", Status{}, false},
		{"Status : 1000% Completed [x]", Status{}, false},
		{"Status : -1% Completed [x]", Status{}, false},
		{"Status : 5% Completed [a] trailing", Status{}, false},
		{"Status : 5% Completed [a]b]", Status{}, false},
		{"Error while starting services, please see log for more details", Status{}, false},
		{"Get service 0542b0b9-7a64-5746-a561-ec835a03ee61", Status{}, false},
		{"", Status{}, false},
	} {
		got, ok := ParseStatus(tt.line)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseStatus(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParseStatus checks that a parsed progress line is well formed and
// prints back to a line that parses the same.
func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{
		"Status : 0% Completed [Replacing Machine SSL Cert...]",
		"Rollback Status : 100% Completed [Rollback completed successfully]",
		"Status : 70% Completed [stopping services...]\r",
		"Status:1%Completed[]", "Status : 999% Completed [x]", "Rollback Status",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, ok := ParseStatus(line)
		if !ok {
			if s != (Status{}) {
				t.Fatalf("ParseStatus(%q) = %+v but not ok", line, s)
			}
			return
		}
		if s.Percent < 0 || s.Percent > 100 || strings.ContainsAny(s.Message, "]\n") {
			t.Fatalf("ParseStatus(%q) = %+v", line, s)
		}
		again, ok := ParseStatus(s.String())
		if !ok || again != s {
			t.Fatalf("%+v prints as %q, which parses as %+v, %v", s, s.String(), again, ok)
		}
		// A progress line is found in a transcript, whatever its line ends.
		if p := ParseTranscript("x\r\n" + s.String() + "\r\n"); len(p.Statuses) != 1 || p.Statuses[0] != s {
			t.Fatalf("transcript with %q parses as %+v", s.String(), p.Statuses)
		}
	})
}

// TestParseTranscript parses transcripts the lab's certificate-manager
// printed (success, rollback, options 3, 6 and 8) into golden files, and
// checks that the line ends a terminal sends do not matter.
func TestParseTranscript(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.transcript"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".transcript")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			p := ParseTranscript(string(data))
			js, err := json.MarshalIndent(struct {
				Progress
				Last Status `json:"last"`
			}{p, p.Last()}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".golden", string(js)+"\n")
			crlf := strings.ReplaceAll(string(data), "\n", "\r\n")
			if q := ParseTranscript(crlf); !equalProgress(p, q) {
				t.Errorf("with CR LF line ends: %+v, want %+v", q, p)
			}
			// A terminal may rewrite progress lines in place.
			rewritten := strings.ReplaceAll(crlf, "\r\nStatus : ", "\rStatus : ")
			if q := ParseTranscript(rewritten); !equalProgress(p, q) {
				t.Errorf("with progress lines rewritten in place: %+v, want %+v", q, p)
			}
		})
	}
}

func equalProgress(a, b Progress) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
