package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocs compares the procedure page of each valid runbook with the
// golden .md beside it.
func TestDocs(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid runbooks: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			got := Docs(ltLoad(t, path))
			golden := strings.TrimSuffix(path, ".yaml") + ".md"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Docs differ from %s\ngot:\n%s", golden, got)
			}
		})
	}
}
