package runfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		data string
		perm os.FileMode
	}{
		{"new file in a new folder", filepath.Join(dir, "a", "b", "key.pem"), "secret", 0o600},
		{"replace", filepath.Join(dir, "a", "b", "key.pem"), "second", 0o600},
		{"readable", filepath.Join(dir, "cert.pem"), "cert", 0o644},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Write(tc.path, []byte(tc.data), tc.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(tc.path)
			if err != nil || string(got) != tc.data {
				t.Fatalf("read back %q, %v", got, err)
			}
			fi, _ := os.Stat(tc.path)
			if fi.Mode().Perm() != tc.perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.perm)
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(tc.path), ".*"))
			if len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestWriteFailsWhole(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "is-a-folder")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, []byte("x"), 0o600); err == nil {
		t.Fatal("writing over a folder succeeded")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left after a failure: %v", left)
	}
}
