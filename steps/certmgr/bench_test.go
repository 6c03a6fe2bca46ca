package certmgr

import (
	"os"
	"strings"
	"testing"
)

// BenchmarkParseTranscript parses option 3's transcript with the line
// ends a terminal sends.
func BenchmarkParseTranscript(b *testing.B) {
	data, err := os.ReadFile("testdata/option3.transcript")
	if err != nil {
		b.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\n", "\r\n")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if p := ParseTranscript(text); !p.Completed {
			b.Fatal("not completed")
		}
	}
}

// BenchmarkMatch is the prompt recognition the console runs on the
// screen after every chunk of output.
func BenchmarkMatch(b *testing.B) {
	screen := "\nEnter proper value for 'Hostname' (Provide comma separated values for multiple Hostname entries) [Enter valid Fully Qualified Domain Name(FQDN), For Example : example.domain.com] : "
	for b.Loop() {
		if _, key, ok := match(screen); !ok || key != "Hostname" {
			b.Fatal("no match")
		}
	}
}
