package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"runbook/engine"
	"runbook/runbooks"
)

// exactArgs is cobra.ExactArgs with a usage exit code.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// load finds and loads the runbook called name (or at path name).
func (a *app) load(name string) (*engine.Runbook, error) {
	src, err := a.catalog().Find(name)
	if err != nil {
		if errors.Is(err, runbooks.ErrNotFound) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return a.loadSource(src)
}

func (a *app) loadSource(src runbooks.Source) (*engine.Runbook, error) {
	rb, err := engine.Load(a.registry, src.Path, src.Data)
	if err != nil {
		return nil, usageError{err}
	}
	return rb, nil
}

// effectOf sums up what a runbook can do to the target.
func effectOf(rb *engine.Runbook) string {
	writes := 0
	for _, s := range rb.Steps {
		if s.Effect == engine.EffectWrite {
			writes++
		}
	}
	if writes == 0 {
		return "check (changes nothing)"
	}
	if writes == 1 {
		return "repair (1 write step)"
	}
	return fmt.Sprintf("repair (%d write steps)", writes)
}

func (a *app) listCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the runbooks: built-in, in --dir and in $RUNBOOK_PATH",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := a.catalog().All()
			if err != nil {
				return err
			}
			type row struct {
				Name   string   `json:"name"`
				Title  string   `json:"title"`
				KB     []string `json:"kb"`
				Kind   string   `json:"kind"`
				Path   string   `json:"path"`
				Broken string   `json:"error,omitempty"`
			}
			var rows []row
			for _, src := range all {
				rb, err := engine.Load(a.registry, src.Path, src.Data)
				if err != nil {
					rows = append(rows, row{Name: src.Name, Path: src.Path, Broken: "invalid: run `runbook lint " + src.Path + "`"})
					continue
				}
				rows = append(rows, row{Name: rb.Name, Title: rb.Title, KB: rb.KB, Kind: effectOf(rb), Path: src.Path})
			}
			if a.output == "json" {
				enc := json.NewEncoder(a.stdout)
				for _, r := range rows {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKB\tKIND\tTITLE")
			for _, r := range rows {
				if r.Broken != "" {
					fmt.Fprintf(tw, "%s\t\t%s\t\n", r.Name, r.Broken)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, strings.Join(r.KB, ","), r.Kind, r.Title)
			}
			return tw.Flush()
		},
	}
}

func (a *app) showCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME|PATH",
		Short: "Show a runbook's params and steps with their effects",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rb, err := a.load(args[0])
			if err != nil {
				return err
			}
			w := a.stdout
			fmt.Fprintf(w, "%s — %s\n", rb.Name, rb.Title)
			fmt.Fprintf(w, "source: %s\n", rb.Path)
			if len(rb.KB) > 0 {
				fmt.Fprintf(w, "kb: %s\n", strings.Join(rb.KB, ", "))
			}
			fmt.Fprintf(w, "kind: %s\n", effectOf(rb))
			if rb.Lock != nil {
				fmt.Fprintf(w, "lock: %s\n", rb.Lock.Raw)
			}
			if len(rb.Params) > 0 {
				fmt.Fprintln(w, "params:")
				for _, p := range rb.Params {
					req := ""
					if p.Required {
						req = " (required)"
					} else if p.Default != nil {
						req = fmt.Sprintf(" (default %v)", p.Default)
					}
					fmt.Fprintf(w, "  %-20s %-8s %s%s\n", p.Name, p.Type, p.Description, req)
				}
			}
			if len(rb.Guards) > 0 {
				fmt.Fprintln(w, "guards:")
				for _, g := range rb.Guards {
					fmt.Fprintf(w, "  %s\n    refuses with: %s\n", g.Expr, g.Message)
				}
			}
			fmt.Fprintln(w, "steps:")
			for i, s := range rb.Steps {
				kb := ""
				if s.KB != "" {
					kb = "  [KB " + s.KB + "]"
				}
				fmt.Fprintf(w, "  %2d. %-11s %-24s %s%s\n", i+1, s.Effect, s.ID, s.Uses, kb)
			}
			return nil
		},
	}
}

func (a *app) lintCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lint [PATH…]",
		Short: "Check runbooks; without paths, every known runbook",
		RunE: func(cmd *cobra.Command, args []string) error {
			var srcs []runbooks.Source
			if len(args) == 0 {
				all, err := a.catalog().All()
				if err != nil {
					return err
				}
				srcs = all
			}
			for _, p := range args {
				data, err := os.ReadFile(p)
				if err != nil {
					return usageError{fmt.Errorf("read runbook: %w", err)}
				}
				srcs = append(srcs, runbooks.Source{Name: p, Path: p, Data: data})
			}
			bad := 0
			for _, src := range srcs {
				if _, err := engine.Load(a.registry, src.Path, src.Data); err != nil {
					bad++
					fmt.Fprintln(a.stderr, err)
					continue
				}
				fmt.Fprintf(a.stdout, "ok  %s\n", src.Path)
			}
			if bad > 0 {
				return silentError{usageError{fmt.Errorf("%d of %d runbooks are invalid", bad, len(srcs))}}
			}
			return nil
		},
	}
}

func (a *app) schemaCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the runbook format, generated from the step types",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := engine.Schema(a.registry)
			if err != nil {
				return err
			}
			if out != "" {
				return os.WriteFile(out, data, 0o644)
			}
			_, err = a.stdout.Write(data)
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "file", "f", "", "write the schema to this file instead of stdout")
	return cmd
}

func (a *app) docsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "docs NAME|PATH",
		Short: "Render a runbook as an operator's procedure page (Markdown)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rb, err := a.load(args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(a.stdout, engine.Docs(rb))
			return err
		},
	}
}
