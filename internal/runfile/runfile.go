// Package runfile writes files into a run's folder (exports, backups,
// issued certificates) so that a crash leaves each file either as it was or
// whole, never half written.
package runfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write writes data to path with permissions perm: into a temporary file in
// the same folder (created, with its parents, mode 0700 when missing),
// synced to disk, then renamed over path. The temporary file is private
// (0600) until it has perm, so a key never sits readable by others.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
