package ldap

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// errURLScheme is returned for a "name:< URL" value that is not a file.
var errURLScheme = errors.New("only file: URLs are supported")

// maxURLValue bounds a value read from a "name:< file:" URL.
const maxURLValue = 16 << 20

// openFile opens a file for reading.
func openFile(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open ldif: %w", err)
	}
	return f, nil
}

// fileURLReader reads the values of "name:< URL" lines: file: URLs only,
// absolute (file:///path) or relative to dir (file:name, as fixsts writes
// them).
func fileURLReader(dir string) func(u *url.URL) ([]byte, error) {
	return func(u *url.URL) ([]byte, error) {
		if !strings.EqualFold(u.Scheme, "file") {
			return nil, fmt.Errorf("%s: %w", u.Scheme, errURLScheme)
		}
		if u.Host != "" && !strings.EqualFold(u.Host, "localhost") {
			return nil, fmt.Errorf("file URL on host %s: only local files are read", u.Host)
		}
		p := u.Path
		if u.Opaque != "" {
			p = u.Opaque
		}
		if p == "" {
			return nil, errors.New("file URL without a path")
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, filepath.FromSlash(p))
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxURLValue+1))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if len(b) > maxURLValue {
			return nil, fmt.Errorf("%s is larger than %d MiB", p, maxURLValue>>20)
		}
		return b, nil
	}
}
