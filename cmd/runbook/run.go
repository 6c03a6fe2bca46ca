package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"gopkg.in/yaml.v3"

	"runbook/engine"
)

// runFlags are the flags run and resume share.
type runFlags struct {
	params          []string
	paramsFile      string
	target          string
	yes             bool
	trustOnFirstUse bool
}

func (f *runFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&f.params, "param", "p", nil, "set a param: name=value (repeatable; never for secrets)")
	cmd.Flags().StringVar(&f.paramsFile, "params-file", "", "YAML file of params (secrets as <name>_file: path)")
	cmd.Flags().StringVarP(&f.target, "target", "t", "", "target: lab:SCENARIO (in-process lab) or a profile file")
	cmd.Flags().BoolVarP(&f.yes, "yes", "y", false, "answer yes to confirmations (for unattended runs)")
	cmd.Flags().BoolVar(&f.trustOnFirstUse, "trust-on-first-use", false, "accept the TLS certificate and SSH host key a node presents when the profile pins none (prints them; pin them in the profile)")
}

// terminal reports whether stdin is a terminal a person can answer on.
func (a *app) terminal() bool {
	f, ok := a.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// prompter returns a prompter on the terminal, or one that fails closed.
func (a *app) prompter() engine.Prompter {
	if a.terminal() {
		return engine.NewTerminalPrompter(a.stdin.(*os.File), a.stderr)
	}
	return engine.NoTerminal{}
}

// bindParams binds params from flags, the params file and the environment,
// asking for secrets on the terminal when there is one.
func (a *app) bindParams(rb *engine.Runbook, f *runFlags) (map[string]any, error) {
	flags := map[string]string{}
	for _, kv := range f.params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--param %q: want name=value", kv)}
		}
		flags[k] = v
	}
	in := engine.ParamInput{Flags: flags, File: f.paramsFile, Env: a.env}
	if a.terminal() {
		p := a.prompter()
		in.SecretPrompt = func(name, description string) (string, error) {
			q := name
			if description != "" {
				q = description + " (" + name + ")"
			}
			return p.Secret(context.Background(), q)
		}
	}
	values, err := rb.BindParams(in)
	if err != nil {
		return nil, usageError{err}
	}
	return values, nil
}

// runner builds an engine runner for the shared flags.
func (a *app) runner(t engine.Target, f *runFlags) *engine.Runner {
	r := &engine.Runner{
		StateDir: a.stateDir,
		Target:   t,
		Prompter: a.prompter(),
		Yes:      f.yes,
		Progress: a.stderr,
		Color:    a.color(),
	}
	if a.output == "json" {
		r.Output = a.stdout
	}
	r.Failpoint = failpoint(a.getenv("RUNBOOK_FAILPOINT"))
	return r
}

// failpoint returns, for RUNBOOK_FAILPOINT=POINT:STEP (POINT is intent,
// applied or done), a hook that kills this process with SIGKILL when the run
// reaches that point of that step. It exists so that tests can crash a real
// run at an exact point and resume it; it is nil when the variable is unset.
func failpoint(spec string) func(engine.Failpoint, string) {
	point, step, ok := strings.Cut(spec, ":")
	if !ok || step == "" {
		return nil
	}
	return func(p engine.Failpoint, id string) {
		if string(p) == point && id == step {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}

// color is on when stderr is a terminal and NO_COLOR is unset.
func (a *app) color() bool {
	if _, set := os.LookupEnv("NO_COLOR"); set || a.getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := a.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (a *app) runCmd() *cobra.Command {
	var f runFlags
	var dryRun bool
	var savePlan, planFile string
	cmd := &cobra.Command{
		Use:   "run NAME|PATH",
		Short: "Run a runbook (or preview it with --dry-run)",
		Long: `Run a runbook by name or path.

--dry-run runs the read steps for real, checks every guard and prints what each
write step would change, and changes nothing. --save-plan F records that plan;
run --plan F later re-reads the facts and refuses the plan if anything changed.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if savePlan != "" && !dryRun {
				return usageError{fmt.Errorf("--save-plan needs --dry-run")}
			}
			if planFile != "" && dryRun {
				return usageError{fmt.Errorf("--plan and --dry-run do not go together")}
			}
			rb, err := a.load(args[0])
			if err != nil {
				return err
			}
			values, err := a.bindParams(rb, &f)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, closeTarget, err := a.openTarget(ctx, f.target, f.trustOnFirstUse)
			if err != nil {
				return err
			}
			defer closeTarget()
			r := a.runner(t, &f)
			r.DryRun = dryRun
			r.SavePlan = savePlan
			r.PlanFile = planFile
			_, err = r.Run(ctx, rb, values)
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "run read steps, check guards, print the plan; change nothing")
	cmd.Flags().StringVar(&savePlan, "save-plan", "", "with --dry-run: write the plan to this file")
	cmd.Flags().StringVar(&planFile, "plan", "", "run a saved plan; refused when it is stale")
	return cmd
}

func (a *app) resumeCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "resume RUN_ID",
		Short: "Resume an interrupted run: skip what is done, check what was in flight",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, start, err := a.findRun(args[0])
			if err != nil {
				return usageError{err}
			}
			name := info.Path
			if strings.HasPrefix(name, "embedded:") {
				name = info.Runbook
			}
			src, err := a.catalog().Find(name)
			if err != nil {
				return usageError{fmt.Errorf("find the run's runbook: %w", err)}
			}
			rb, err := a.loadSource(src)
			if err != nil {
				return err
			}
			if f.paramsFile == "" {
				// The run's own params, typed as they were journaled; secrets
				// were never journaled and are read again.
				file, cleanup, err := journaledParamsFile(rb, start.Params)
				if err != nil {
					return err
				}
				defer cleanup()
				f.paramsFile = file
			}
			values, err := a.bindParams(rb, &f)
			if err != nil {
				return err
			}
			target := f.target
			if target == "" {
				target = info.Target
			}
			ctx := cmd.Context()
			t, closeTarget, err := a.openTarget(ctx, target, f.trustOnFirstUse)
			if err != nil {
				return err
			}
			defer closeTarget()
			_, err = a.runner(t, &f).Resume(ctx, info.ID, rb, values)
			return err
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) runsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "runs",
		Short: "List runs in the state dir, newest last",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			runs, err := engine.Runs(a.stateDir)
			if err != nil {
				return err
			}
			if a.output == "json" {
				enc := json.NewEncoder(a.stdout)
				for _, r := range runs {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			return printRuns(a.stdout, runs)
		},
	}
}

// findRun returns the run with the given id and its run-start record.
func (a *app) findRun(id string) (engine.RunInfo, engine.Record, error) {
	runs, err := engine.Runs(a.stateDir)
	if err != nil {
		return engine.RunInfo{}, engine.Record{}, err
	}
	for _, r := range runs {
		if r.ID != id {
			continue
		}
		recs, err := engine.ReadJournal(filepath.Join(a.stateDir, "runs", id, engine.JournalFile))
		if err != nil {
			return r, engine.Record{}, err
		}
		for _, rec := range recs {
			if rec.Type == engine.RecRunStart {
				return r, rec, nil
			}
		}
		return r, engine.Record{}, fmt.Errorf("run %s: journal has no run-start record", id)
	}
	return engine.RunInfo{}, engine.Record{}, fmt.Errorf("no run %q in %s (see `runbook runs`)", id, a.stateDir)
}

// journaledParamsFile writes the params a run journaled (JSON values,
// secrets left out) to a private YAML params file, so that resume binds them
// with their types: a list stays a list, even an empty one or one whose
// items hold commas. It returns the file and a func that removes it.
func journaledParamsFile(rb *engine.Runbook, journaled map[string]any) (string, func(), error) {
	values := map[string]any{}
	for _, p := range rb.Params {
		v, ok := journaled[p.Name]
		if !ok || p.Type == engine.ParamSecret {
			continue
		}
		if ns, isNum := v.(float64); isNum && p.Type == engine.ParamDuration {
			v = time.Duration(ns).String()
		}
		values[p.Name] = v
	}
	data, err := yaml.Marshal(values)
	if err != nil {
		return "", nil, fmt.Errorf("write the run's params: %w", err)
	}
	dir, err := os.MkdirTemp("", "runbook-resume-")
	if err != nil {
		return "", nil, fmt.Errorf("write the run's params: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	file := filepath.Join(dir, "params.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("write the run's params: %w", err)
	}
	return file, cleanup, nil
}

func printRuns(w io.Writer, runs []engine.RunInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRUNBOOK\tSTATUS\tTARGET\tSTARTED")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Runbook, r.Status, r.Target, r.Started.Local().Format(time.DateTime))
	}
	return tw.Flush()
}
