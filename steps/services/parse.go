package services

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Status is what `service-control --status` printed: the services in the
// Running group, and every other listed service.
type Status struct {
	// Running are the services listed under "Running:", in printed order.
	Running []string `json:"running"`
	// Stopped are the services listed under "Stopped:" or under any other
	// group (such as StartPending), in printed order.
	Stopped []string `json:"stopped"`
}

// groupLine matches a group header such as "Running:" or "Stopped:".
var groupLine = regexp.MustCompile(`^([A-Za-z][A-Za-z _-]*):$`)

// ParseStatus parses the output of `service-control --status [--all]`
// (vcenter-procedures.md §7): group headers ("Stopped:", "Running:", in any
// order, others counted as not running) each followed by indented lines
// of space-separated service names. Line endings may be LF or CRLF. A name
// outside a group, a line that is neither, or a service listed twice is an
// error.
func ParseStatus(out string) (Status, error) {
	st := Status{Running: []string{}, Stopped: []string{}}
	group := ""
	seen := map[string]string{}
	for i, raw := range strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n") {
		line := strings.TrimRight(raw, " \t\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if m := groupLine.FindStringSubmatch(line); m != nil {
			group = m[1]
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			return Status{}, fmt.Errorf("line %d: unexpected %q", i+1, line)
		}
		if group == "" {
			return Status{}, fmt.Errorf("line %d: service names before a Running: or Stopped: line", i+1)
		}
		for _, name := range strings.Fields(line) {
			if g, dup := seen[name]; dup {
				return Status{}, fmt.Errorf("line %d: service %s is listed both as %s and as %s", i+1, name, g, group)
			}
			seen[name] = group
			if strings.EqualFold(group, "Running") {
				st.Running = append(st.Running, name)
			} else {
				st.Stopped = append(st.Stopped, name)
			}
		}
	}
	return st, nil
}

// IsRunning reports whether service name is running.
func (s Status) IsRunning(name string) bool { return slices.Contains(s.Running, name) }

// startErrorLine matches the lines of a failed `service-control --start`
// worth quoting.
var startErrorLine = regexp.MustCompile(`(?i)\berror\b|\bfailed\b|exception|not valid|expired|^reason:`)

// StartErrors picks from what a failed `service-control --start` printed
// the lines that say what failed and why: "Error executing start on
// service X", vMon's localized message, "Service-control failed. Error:
// …" when it is not only JSON, "Reason: …" and other lines naming an
// error. JSON keys and braces are left out; at most eight lines, each cut
// to 300 bytes, without repeats.
func StartErrors(output string) []string {
	var out []string
	add := func(s string) {
		s = strings.TrimSpace(s)
		for len(s) > 300 {
			_, size := utf8.DecodeLastRuneInString(s)
			s = s[:len(s)-size]
		}
		if s != "" && !slices.Contains(out, s) && len(out) < 8 {
			out = append(out, s)
		}
	}
	for l := range strings.Lines(strings.ReplaceAll(output, "\r\n", "\n")) {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, `"localized":`):
			add(strings.Trim(strings.TrimSpace(strings.TrimPrefix(l, `"localized":`)), `",`))
		case strings.HasPrefix(l, `"`), strings.HasPrefix(l, "{"), strings.HasPrefix(l, "}"), strings.HasPrefix(l, "]"):
			// JSON problem details: only their localized text is quoted.
		case strings.HasPrefix(l, "Error executing start on service"):
			head, _, _ := strings.Cut(l, ". Details")
			add(head)
		case strings.HasPrefix(l, "Service-control failed. Error:"):
			if rest := strings.TrimSpace(strings.TrimPrefix(l, "Service-control failed. Error:")); !strings.HasPrefix(rest, "{") {
				add(l)
			}
		case startErrorLine.MatchString(l):
			add(l)
		}
	}
	return out
}
