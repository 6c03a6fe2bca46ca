// Package runbooks holds the built-in runbooks, the KB transcriptions, and
// finds runbooks by name among them and in extra directories.
package runbooks

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed *.yaml
var builtin embed.FS

// Source is one runbook file found by the catalogue.
type Source struct {
	// Name is the file name without .yaml; runbooks are run by it.
	Name string
	// Path is the file path, or "embedded:<file>" for built-ins.
	Path string
	// Data is the file's bytes.
	Data []byte
}

// Catalog finds runbooks in extra directories first and then among the
// built-ins, so a local copy can shadow a built-in while it is being edited.
type Catalog struct {
	// Dirs are searched in order before the built-ins.
	Dirs []string
}

// NewCatalog returns a catalogue over dirs plus the directories listed in
// the RUNBOOK_PATH environment value (colon separated).
func NewCatalog(dirs []string, runbookPath string) *Catalog {
	c := &Catalog{Dirs: append([]string(nil), dirs...)}
	for _, d := range filepath.SplitList(runbookPath) {
		if d != "" {
			c.Dirs = append(c.Dirs, d)
		}
	}
	return c
}

// ErrNotFound is returned when no runbook has the requested name.
var ErrNotFound = errors.New("runbook not found")

// Find returns the runbook named name, or reads it as a file when name is a
// path (contains a slash or ends in .yaml / .yml).
func (c *Catalog) Find(name string) (Source, error) {
	if strings.ContainsRune(name, filepath.Separator) || strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		data, err := os.ReadFile(name)
		if err != nil {
			return Source{}, fmt.Errorf("read runbook: %w", err)
		}
		return Source{Name: strings.TrimSuffix(strings.TrimSuffix(filepath.Base(name), ".yaml"), ".yml"), Path: name, Data: data}, nil
	}
	for _, d := range c.Dirs {
		for _, ext := range []string{".yaml", ".yml"} {
			p := filepath.Join(d, name+ext)
			data, err := os.ReadFile(p)
			if err == nil {
				return Source{Name: name, Path: p, Data: data}, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return Source{}, fmt.Errorf("read runbook: %w", err)
			}
		}
	}
	data, err := builtin.ReadFile(name + ".yaml")
	if err == nil {
		return Source{Name: name, Path: "embedded:" + name + ".yaml", Data: data}, nil
	}
	return Source{}, fmt.Errorf("%w: %q (see `runbook list`)", ErrNotFound, name)
}

// All returns every runbook the catalogue knows, sorted by name; a runbook
// in a directory shadows a built-in of the same name.
func (c *Catalog) All() ([]Source, error) {
	seen := map[string]bool{}
	var out []Source
	for _, d := range c.Dirs {
		matches, err := filepath.Glob(filepath.Join(d, "*.y*ml"))
		if err != nil {
			return nil, fmt.Errorf("list runbooks in %s: %w", d, err)
		}
		for _, p := range matches {
			name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(p), ".yaml"), ".yml")
			if seen[name] {
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("read runbook: %w", err)
			}
			seen[name] = true
			out = append(out, Source{Name: name, Path: p, Data: data})
		}
	}
	entries, err := builtin.ReadDir(".")
	if err != nil {
		return nil, fmt.Errorf("list built-in runbooks: %w", err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".yaml")
		if seen[name] {
			continue
		}
		data, err := builtin.ReadFile(e.Name())
		if err != nil {
			return nil, fmt.Errorf("read built-in runbook: %w", err)
		}
		seen[name] = true
		out = append(out, Source{Name: name, Path: "embedded:" + e.Name(), Data: data})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
