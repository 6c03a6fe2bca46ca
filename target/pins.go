package target

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"runbook/internal/runfile"
)

// pinFile records the TLS pins that changed during runs (Repin, after a
// step replaced a node's Machine SSL certificate), so that a later process
// against the same profile, such as `runbook resume`, trusts the new
// certificate and not the one the profile still names.
type pinFile struct {
	path string
	mu   sync.Mutex
}

// pinRecord is the file's content: the learned TLS pin of each node by PNID.
type pinRecord struct {
	TLS map[string]string `json:"tls"`
}

// load reads the recorded pins; a missing file records none.
func (f *pinFile) load() (pinRecord, error) {
	rec := pinRecord{TLS: map[string]string{}}
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, fmt.Errorf("read pins %s: %w", f.path, err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("read pins %s: %w", f.path, err)
	}
	if rec.TLS == nil {
		rec.TLS = map[string]string{}
	}
	return rec, nil
}

// save records pin as the TLS pin of node pnid.
func (f *pinFile) save(pnid, pin string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, err := f.load()
	if err != nil {
		return err
	}
	rec.TLS[pnid] = pin
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("record pins: %w", err)
	}
	return runfile.Write(f.path, append(data, '\n'), 0o600)
}

// applyLearnedPins replaces profile pins by the pins recorded for the
// target's nodes, and says so: the profile is out of date for those nodes.
func (t *Target) applyLearnedPins() error {
	if t.pins == nil {
		return nil
	}
	rec, err := t.pins.load()
	if err != nil {
		return err
	}
	for _, n := range t.nodes {
		learned, ok := rec.TLS[n.pnid]
		if !ok {
			continue
		}
		pin, err := parseThumbprint(learned)
		if err != nil {
			return fmt.Errorf("read pins %s: node %s: %w", t.pins.path, n.pnid, err)
		}
		if pin == n.tlsPin {
			continue
		}
		t.logf("node %s: using the TLS pin recorded when a run replaced its certificate, %s (the profile pins %s; update tls_thumbprint)",
			n.pnid, pin, orNone(n.tlsPin))
		n.tlsPin = pin
	}
	return nil
}
