package engine

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// kbURL returns the address of a Broadcom knowledge-base article.
func kbURL(kb string) string {
	return "https://knowledge.broadcom.com/external/article/" + kb
}

// Docs returns the operator's procedure page for a loaded runbook, in
// Markdown: what it is for, its KB articles, its params, its lock and
// guards, then each step in order with its effect, its KB reference, its
// conditions in words and its `with:` params.
func Docs(rb *Runbook) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("# %s\n\n", oneLine(rb.Title))
	steps := "steps"
	if len(rb.Steps) == 1 {
		steps = "step"
	}
	w("Runbook %s (%s), %d %s.\n\n", code(rb.Name), APIVersion, len(rb.Steps), steps)
	if d := strings.TrimSpace(rb.Description); d != "" {
		w("%s\n\n", d)
	}
	if len(rb.KB) > 0 {
		links := make([]string, len(rb.KB))
		for i, kb := range rb.KB {
			links[i] = fmt.Sprintf("[KB %s](%s)", kb, kbURL(kb))
		}
		w("Transcribes %s.\n\n", strings.Join(links, ", "))
	}

	w("## Parameters\n\n")
	if len(rb.Params) == 0 {
		w("None.\n\n")
	} else {
		w("| Name | Type | Required | Default | Description |\n")
		w("|------|------|----------|---------|-------------|\n")
		for _, p := range rb.Params {
			typ := string(p.Type)
			if p.Type == ParamEnum {
				typ += ": " + strings.Join(p.Values, ", ")
			}
			req := "no"
			if p.Required {
				req = "yes"
			}
			def := ""
			if p.Default != nil {
				def = code(formatParam(p.Default))
			}
			w("| %s | %s | %s | %s | %s |\n", code(p.Name), cell(typ), req, cell(def), cell(p.Description))
		}
		w("\n")
		if hasSecret(rb) {
			w("Secrets are never taken from the command line: set `RUNBOOK_PARAM_<NAME>` or `RUNBOOK_PARAM_<NAME>_FILE`, give `<name>_file` in the params file, or answer the prompt.\n\n")
		}
	}

	if rb.Lock != nil || len(rb.Guards) > 0 {
		w("## Before it starts\n\n")
		if rb.Lock != nil {
			w("The run takes the lock %s: no other run holding the same key can start until it ends.\n\n", code(rb.Lock.Raw))
		}
		if len(rb.Guards) > 0 {
			w("The run is refused, before any step and in a dry-run too, unless:\n\n")
			for _, g := range rb.Guards {
				w("- %s%s\n", code(g.Expr), because(g.Message, "otherwise"))
			}
			w("\n")
		}
	}

	w("## Steps\n\n")
	for i, st := range rb.Steps {
		title := st.Name
		if title == "" {
			title = st.ID
		}
		w("### %d. %s\n\n", i+1, oneLine(title))
		summary := ""
		if st.Type != nil {
			summary = " — " + st.Type.Describe().Summary
		}
		w("- Step %s uses %s%s\n", code(st.ID), code(st.Uses), summary)
		w("- Effect: %s\n", effectWords(st.Effect))
		if st.KB != "" {
			w("- KB: %s\n", st.KB)
		}
		if st.When != nil {
			w("- Runs only when %s; otherwise it is skipped.\n", code(st.When.Expr))
		}
		if len(st.Require) > 0 {
			w("- Refused, and the run stops, unless:\n")
			for _, c := range st.Require {
				w("  - %s%s\n", code(c.Expr), because(c.Message, "otherwise"))
			}
		}
		if len(st.Assert) > 0 {
			w("- Fails unless, after it ran:\n")
			for _, c := range st.Assert {
				w("  - %s%s\n", code(c.Expr), because(c.Message, "otherwise"))
			}
		}
		if st.Retry.Attempts > 1 {
			w("- Tried up to %d times, %s apart.\n", st.Retry.Attempts, formatDuration(st.Retry.Delay))
		}
		if st.Timeout > 0 {
			w("- Times out after %s.\n", formatDuration(st.Timeout))
		}
		if st.OnFailure == Continue {
			w("- When it fails, the run goes on.\n")
		}
		if st.With != nil && len(st.With.Content) > 0 {
			w("\n```yaml\n%s```\n", withYAML(st.With))
		}
		w("\n")
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func hasSecret(rb *Runbook) bool {
	for _, p := range rb.Params {
		if p.Type == ParamSecret {
			return true
		}
	}
	return false
}

func effectWords(e Effect) string {
	switch e {
	case EffectRead:
		return "read — only reads the target; it runs in a dry-run too."
	case EffectWrite:
		return "write — changes the target; a dry-run shows its plan, and what it changes is backed up first."
	case EffectInteractive:
		return "interactive — asks the operator; without a terminal it refuses unless --yes."
	}
	return string(e)
}

func because(msg, word string) string {
	if msg == "" {
		return ""
	}
	return fmt.Sprintf(" — %s: %s", word, oneLine(msg))
}

// code formats s as inline code, whatever backticks it holds.
func code(s string) string {
	s = oneLine(s)
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cell escapes text for a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(oneLine(s), "|", `\|`) }

func formatParam(v any) string {
	switch v := v.(type) {
	case []string:
		return strings.Join(v, ",")
	case time.Duration:
		return formatDuration(v)
	}
	return fmt.Sprint(v)
}

// formatDuration prints 5m rather than 5m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// withYAML prints a `with:` mapping as block YAML.
func withYAML(n *yaml.Node) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(blockStyle(n)); err != nil {
		return fmt.Sprintf("# cannot print: %v\n", err)
	}
	_ = enc.Close()
	return buf.String()
}

// blockStyle returns a copy of n with mappings in block style.
func blockStyle(n *yaml.Node) *yaml.Node {
	c := *n
	if c.Kind == yaml.MappingNode {
		c.Style &^= yaml.FlowStyle
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, child := range n.Content {
		c.Content[i] = blockStyle(child)
	}
	return &c
}
