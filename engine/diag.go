package engine

import (
	"fmt"
	"sort"
	"strings"
)

// Diagnostic is one problem found in a runbook file, at a position.
type Diagnostic struct {
	Pos     Pos
	Message string
}

func (d Diagnostic) String() string { return d.Pos.String() + ": " + d.Message }

// Diagnostics are every problem Load found in a runbook file. Load returns
// them as its error, sorted by position.
type Diagnostics []Diagnostic

// Error prints one "path:line:col: message" per line.
func (ds Diagnostics) Error() string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.String())
	}
	return b.String()
}

// sortDiagnostics orders diagnostics by file, line and column, keeping the
// order of discovery for diagnostics at the same position, and drops exact
// duplicates.
func sortDiagnostics(ds Diagnostics) Diagnostics {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Pos, ds[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := ds[:0]
	for i, d := range ds {
		if i > 0 && d == ds[i-1] {
			continue
		}
		out = append(out, d)
	}
	return out
}

// didYouMean returns ` (did you mean "x"?)` for the candidate nearest to
// name, or "" when none is near enough.
func didYouMean(name string, candidates []string) string {
	if s := nearest(name, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// nearest returns the candidate with the smallest edit distance to name, if
// that distance is small for the length of name; ties go to the candidate
// that sorts first.
func nearest(name string, candidates []string) string {
	if name == "" {
		return ""
	}
	best, bestDist := "", 0
	lname := strings.ToLower(name)
	for _, c := range candidates {
		if c == name {
			continue
		}
		d := levenshtein(lname, strings.ToLower(c))
		if best == "" || d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	limit := 2
	if n := len([]rune(name)); n <= 3 {
		limit = 1
	}
	if best != "" && bestDist <= limit {
		return best
	}
	// A cut-short key, such as on_fail for on_failure.
	best = ""
	for _, c := range candidates {
		if len(name) >= 3 && strings.HasPrefix(strings.ToLower(c), lname) && (best == "" || len(c) < len(best)) {
			best = c
		}
	}
	return best
}

// levenshtein is the edit distance between a and b, counted in runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
