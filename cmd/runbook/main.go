// Command runbook checks, previews, runs and resumes vCenter certificate
// runbooks.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"runbook/engine"
	"runbook/runbooks"
	"runbook/steps"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// app holds what every command shares: streams, global flags, the registry.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	env            []string

	stateDir string
	dirs     []string
	output   string

	registry *engine.Registry
}

// Main runs the CLI with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, env: os.Environ(), registry: steps.Registry()}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var silent silentError
	if !errors.As(err, &silent) {
		fmt.Fprintf(stderr, "runbook: %s\n", a.redactError(err))
	}
	var ue usageError
	if errors.As(err, &ue) {
		return engine.ExitInvalid
	}
	if ctx.Err() != nil {
		return engine.ExitInterrupted
	}
	return engine.ExitCode(err)
}

// usageError marks a bad command line; it exits with ExitUsage.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// silentError carries an exit code for an error the command already printed.
type silentError struct{ error }

func (e silentError) Unwrap() error { return e.error }

func (a *app) redactError(err error) string { return err.Error() }

func (a *app) getenv(key string) string {
	for i := len(a.env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(a.env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// defaultStateDir is $RUNBOOK_STATE_DIR, else $XDG_STATE_HOME/runbook, else
// ~/.local/state/runbook.
func (a *app) defaultStateDir() string {
	if d := a.getenv("RUNBOOK_STATE_DIR"); d != "" {
		return d
	}
	if d := a.getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "runbook")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "runbook-state")
	}
	return filepath.Join(home, ".local", "state", "runbook")
}

func (a *app) catalog() *runbooks.Catalog {
	return runbooks.NewCatalog(a.dirs, a.getenv("RUNBOOK_PATH"))
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "runbook",
		Short: "Check, preview, run and resume vCenter certificate runbooks",
		Long: `runbook runs declarative runbooks that transcribe VMware KB procedures for
vCenter certificates (STS signing certificate, Machine SSL, solution users,
Lookup Service sslTrust). Dry-run first, then run; a killed run resumes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.stateDir, "state-dir", "", "where runs, journals, backups and locks live (default $RUNBOOK_STATE_DIR or $XDG_STATE_HOME/runbook)")
	root.PersistentFlags().StringSliceVar(&a.dirs, "dir", nil, "extra directory of runbooks, searched before the built-ins (repeatable; also $RUNBOOK_PATH)")
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "text", "output format: text, or json (NDJSON events on stdout)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if a.stateDir == "" {
			a.stateDir = a.defaultStateDir()
		}
		if a.output != "text" && a.output != "json" {
			return usageError{fmt.Errorf("unknown --output %q: use text or json", a.output)}
		}
		return nil
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		a.listCmd(), a.showCmd(), a.lintCmd(), a.runCmd(), a.resumeCmd(), a.runsCmd(),
		a.schemaCmd(), a.docsCmd(), a.versionCmd(),
		a.labCmd(),
	)
	return root
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.stdout, "runbook %s\n", version)
			return nil
		},
	}
}
