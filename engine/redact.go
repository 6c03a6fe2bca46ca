package engine

import (
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Mask is what a secret value is replaced with wherever the engine writes.
const Mask = "***"

// Redactor replaces secret values by Mask. It matches each secret as given,
// in its JSON-escaped forms and as Go's %q quotes it, so that redacting
// encoded JSON or an error message that quoted the value catches a secret
// holding quotes, backslashes, control characters or <, > and &. The zero
// value and a nil *Redactor redact nothing.
type Redactor struct {
	r *strings.Replacer
}

// NewRedactor returns a Redactor for the given secret values. Empty values
// are ignored.
func NewRedactor(secrets []string) *Redactor {
	seen := map[string]bool{}
	var forms []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			forms = append(forms, s)
		}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		add(s)
		add(jsonInner(s, true))
		add(jsonInner(s, false))
		q := strconv.Quote(s)
		add(q[1 : len(q)-1])
	}
	if len(forms) == 0 {
		return &Redactor{}
	}
	// Longer forms first, so that a secret containing another is masked whole.
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, Mask)
	}
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// jsonInner returns s as encoding/json writes it inside a string, without the quotes.
func jsonInner(s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s) // a string always encodes
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return string(out[1 : len(out)-1])
}

// String returns s with every secret masked.
func (r *Redactor) String(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Bytes returns b with every secret masked. It returns b itself when there
// is nothing to mask.
func (r *Redactor) Bytes(b []byte) []byte {
	if r == nil || r.r == nil {
		return b
	}
	s := string(b)
	if out := r.r.Replace(s); out != s {
		return []byte(out)
	}
	return b
}

// Writer returns a writer that masks secrets in each Write before passing it
// to w. A secret split across two writes is not caught, so callers write
// whole lines. It returns io.Discard when w is nil.
func (r *Redactor) Writer(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return &redactWriter{r: r, w: w}
}

type redactWriter struct {
	mu sync.Mutex
	r  *Redactor
	w  io.Writer
}

func (rw *redactWriter) Write(p []byte) (int, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if _, err := rw.w.Write(rw.r.Bytes(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// marshal encodes v as JSON with every secret masked.
func (r *Redactor) marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return r.Bytes(b), nil
}
