package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"runbook/engine"
	"runbook/lab"
	"runbook/target"
)

// labTargetPrefix marks a --target that names a lab scenario rather than a
// profile file.
const labTargetPrefix = "lab:"

func (a *app) labCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Serve a simulated vCenter SSO domain to rehearse runbooks on",
		Long: `The lab simulates a vCenter SSO domain on loopback, speaking the protocols a
real appliance does (LDAP/LDAPS, HTTPS with the Lookup Service, SSH and SFTP),
set up healthy or broken by a scenario.

Rehearse a runbook against it with --target lab:SCENARIO (a lab for that run
only), or start one with "runbook lab serve" and use the profile it writes.`,
		Args: exactArgs(0),
	}
	cmd.AddCommand(a.labScenariosCmd(), a.labServeCmd())
	return cmd
}

func (a *app) labScenariosCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "scenarios",
		Short: "List the lab's scenarios",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			scenarios := lab.Scenarios()
			if a.output == "json" {
				enc := json.NewEncoder(a.stdout)
				for _, s := range scenarios {
					if err := enc.Encode(map[string]string{"name": s.Name, "description": s.Description}); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDESCRIPTION")
			for _, s := range scenarios {
				fmt.Fprintf(tw, "%s\t%s\n", s.Name, s.Description)
			}
			return tw.Flush()
		},
	}
}

func (a *app) labServeCmd() *cobra.Command {
	var scenario, profileOut string
	cmd := &cobra.Command{
		Use:   "serve --scenario NAME [--profile-out FILE]",
		Short: "Serve a lab until interrupted, with a target profile for it",
		Long: `serve starts the lab in the named scenario, writes a target profile for it
(and the password files it names, readable by you only) and serves until
interrupted (Ctrl-C, SIGTERM). It then stops the lab and removes the profile
and password files.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scenario == "" {
				return usageError{errors.New("--scenario is required (see `runbook lab scenarios`)")}
			}
			if !knownScenario(scenario) {
				return usageError{fmt.Errorf("unknown scenario %q (see `runbook lab scenarios`)", scenario)}
			}
			if profileOut == "" {
				profileOut = "lab-" + scenario + ".yaml"
			}
			ctx := cmd.Context()
			l, err := lab.Start(ctx, scenario)
			if err != nil {
				return err
			}
			defer l.Close()
			written, err := a.writeLabProfile(l, profileOut)
			defer removeFiles(written)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tHTTPS\tLDAP\tLDAPS\tSSH\tSTATE")
			for _, n := range l.Nodes() {
				state := "up"
				if !n.Online {
					state = "down (connections refused)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.PNID, n.HTTPSAddr, n.LDAPAddr, n.LDAPSAddr, n.SSHAddr, state)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "\nlab %s is serving; profile: %s\n", scenario, profileOut)
			fmt.Fprintf(a.stdout, "rehearse with: runbook run RUNBOOK --target %s\n", profileOut)
			fmt.Fprintln(a.stdout, "stop with Ctrl-C")
			<-ctx.Done()
			if err := l.Close(); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "lab %s stopped\n", scenario)
			return nil
		},
	}
	cmd.Flags().StringVar(&scenario, "scenario", "", "scenario to start (see `runbook lab scenarios`)")
	cmd.Flags().StringVar(&profileOut, "profile-out", "", "where to write the target profile (default ./lab-SCENARIO.yaml)")
	return cmd
}

// knownScenario reports whether name is a lab scenario.
func knownScenario(name string) bool {
	for _, s := range lab.Scenarios() {
		if s.Name == name {
			return true
		}
	}
	return false
}

// writeLabProfile writes the lab's profile to path and returns the files it
// wrote (the profile and its password files), for removal when the lab
// stops. Files that were already there are not listed.
func (a *app) writeLabProfile(l *lab.Lab, path string) ([]string, error) {
	dir := filepath.Dir(path)
	before := map[string]bool{}
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			before[e.Name()] = true
		}
	}
	err := l.WriteProfile(path)
	var written []string
	if entries, rerr := os.ReadDir(dir); rerr == nil {
		base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		for _, e := range entries {
			name := e.Name()
			if name == filepath.Base(path) || !before[name] && strings.HasPrefix(name, base+".") && strings.HasSuffix(name, ".password") {
				written = append(written, filepath.Join(dir, name))
			}
		}
	}
	return written, err
}

// removeFiles removes files, ignoring those already gone.
func removeFiles(files []string) {
	for _, f := range files {
		_ = os.Remove(f)
	}
}

// pinFile is where TLS pins that change during runs against the profile at
// path are kept (see target.Options.PinFile): in the state dir, one file per
// profile, so that resume trusts a certificate a run installed.
func (a *app) pinFile(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(a.stateDir, "pins", hex.EncodeToString(sum[:8])+".json")
}

// openTarget opens the target named by --target: nothing for "" or
// "local" (only local step types can run), a lab started for this run for
// lab:SCENARIO, and otherwise the profile file at spec, named by its path.
// The returned func closes what was opened.
//
// A lab lives in the process that started it, so resuming a rehearsal
// (whose journal names lab:SCENARIO) starts a fresh lab in that scenario:
// what the interrupted run changed died with its process. To rehearse a
// resume against the same state, use `runbook lab serve` and its profile.
func (a *app) openTarget(ctx context.Context, spec string, trustOnFirstUse bool) (engine.Target, func(), error) {
	if spec == "" || spec == "local" {
		return nil, func() {}, nil
	}
	if scenario, ok := strings.CutPrefix(spec, labTargetPrefix); ok {
		if !knownScenario(scenario) {
			return nil, nil, usageError{fmt.Errorf("--target %s: unknown lab scenario %q (see `runbook lab scenarios`)", spec, scenario)}
		}
		l, err := lab.Start(ctx, scenario)
		if err != nil {
			return nil, nil, err
		}
		t, err := l.Target(ctx)
		if err != nil {
			_ = l.Close()
			return nil, nil, err
		}
		fmt.Fprintf(a.stderr, "runbook: rehearsal against the simulated lab (scenario %s), not a real vCenter\n", scenario)
		return t, func() {
			_ = t.Close()
			_ = l.Close()
		}, nil
	}
	p, err := target.LoadProfile(spec)
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("--target: %w", err)}
	}
	t, err := target.Open(ctx, p, target.Options{
		Name:            spec,
		PinFile:         a.pinFile(spec),
		TrustOnFirstUse: trustOnFirstUse,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(a.stderr, "runbook: "+format+"\n", args...)
		},
	})
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("--target: %w", err)}
	}
	return t, func() { _ = t.Close() }, nil
}
