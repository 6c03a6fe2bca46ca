package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"runbook/engine"
	"runbook/steps/conn"
	"runbook/steps/shell"
	"runbook/target"
)

// restartParams are the params of services.restart.
type restartParams struct {
	Node       string   `yaml:"node" default:"all" doc:"The PNID of the node whose services to restart, or all (the default) for every node of the target, one after the other in profile order: KB 76719 restarts the services on every vCenter and PSC of the SSO domain."`
	StopIgnore bool     `yaml:"stop_ignore" default:"true" doc:"Stop with service-control --stop --ignore --all, as certificate-manager does, so that a service failing to stop does not stop the restart."`
	Required   []string `yaml:"required" doc:"The services that must run afterwards; those of the node's type when empty (see services.status)."`
}

// BackupFile is the file services.restart's backup writes into the step's
// backup folder: each node's running and stopped services before the
// restart, for the record (a restart cannot be undone).
const BackupFile = "services-before.json"

// progressFile is the file in the run folder where services.restart records
// the nodes it restarted, so that Check and a resumed Apply know.
func progressFile(env *engine.Env) string {
	if env.RunDir == "" || env.StepID == "" {
		return ""
	}
	return filepath.Join(env.RunDir, env.StepID+".restarted.json")
}

// progress is the content of the progress file.
type progress struct {
	// Restarted maps each PNID restarted to when its start finished.
	Restarted map[string]time.Time `json:"restarted"`
}

var restartStep = engine.Write[restartParams, statusOutputs]{
	Spec: engine.Spec{
		ID:      "services.restart",
		Summary: "Restart all services on appliance nodes (service-control --stop --all, then --start --all).",
		Doc: "On each node in turn (every node by default, in profile order, as KB 76719 asks after an STS " +
			"certificate change, and the certificate procedures after a replacement): " +
			"`service-control --stop --ignore --all`, then `service-control --start --all`. A node " +
			"whose start fails stops the step before the next node is touched; the error quotes " +
			"service-control's error lines and says what to check: a start fails when a " +
			"certificate the services need has expired — the STS signing certificate " +
			"(sts.certificates; KB 76719), the Machine SSL or a solution user's (vecs.entries; " +
			"certificate-manager option 3, 6 or 8).\n\n" +
			"The plan shows each node's services before and the state after (every required service " +
			"running). The backup records each node's running and stopped services in " +
			"`services-before.json`; a restart cannot be undone, only done again. Outputs are the " +
			"services afterwards, as services.status gives them. Check is applied when this run " +
			"has restarted every node (recorded in the run folder, so a resumed run restarts the " +
			"nodes it had not reached, and only those) and every required service runs on each.\n\n" +
			"```yaml\n- id: restart\n  uses: services.restart\n  kb: \"76719\"\n```",
	},
	Plan:   planRestart,
	Backup: backupRestart,
	Apply:  applyRestart,
	Check:  checkRestart,
}

func restartNodes(env *engine.Env, p *restartParams) ([]*target.Node, error) {
	sel := p.Node
	if sel == "" {
		sel = conn.All
	}
	return conn.Nodes(env, sel)
}

// summary says in a line which services run and which required ones do
// not.
func summary(ns NodeStatus) string {
	s := fmt.Sprintf("%d running, %d stopped", len(ns.Running), len(ns.Stopped))
	if len(ns.NotRunning) > 0 {
		s += "; not running: " + strings.Join(ns.NotRunning, ", ")
	} else {
		s += "; all required running"
	}
	return s
}

func planRestart(ctx context.Context, env *engine.Env, p *restartParams) (engine.Plan, error) {
	nodes, err := restartNodes(env, p)
	if err != nil {
		return engine.Plan{}, err
	}
	st, err := readAll(ctx, env, nodes, p.Required, false)
	if err != nil {
		return engine.Plan{}, err
	}
	pl := engine.Plan{}
	var names []string
	for _, ns := range st.Nodes {
		names = append(names, ns.PNID)
		pl.Changes = append(pl.Changes, engine.Change{
			Action: "restart",
			Object: ns.PNID + " services",
			Before: summary(ns),
			After:  "all required running (" + strings.Join(ns.Required, ", ") + ")",
		})
	}
	pl.Summary = fmt.Sprintf("stop and start all services on %s, one node after the other", strings.Join(names, ", "))
	return pl, nil
}

func backupRestart(ctx context.Context, env *engine.Env, p *restartParams) ([]string, error) {
	nodes, err := restartNodes(env, p)
	if err != nil {
		return nil, err
	}
	st, err := readAll(ctx, env, nodes, p.Required, false)
	if err != nil {
		return nil, err
	}
	rec := struct {
		Note  string       `json:"note"`
		Nodes []NodeStatus `json:"nodes"`
	}{"services before services.restart; a restart cannot be undone, only done again", st.Nodes}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode services: %w", err)
	}
	name := filepath.Join(env.BackupDir, BackupFile)
	if err := os.WriteFile(name, append(data, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write backup: %w", err)
	}
	return []string{name}, nil
}

func applyRestart(ctx context.Context, env *engine.Env, p *restartParams) (statusOutputs, error) {
	nodes, err := restartNodes(env, p)
	if err != nil {
		return statusOutputs{}, err
	}
	prog, err := readProgress(env)
	if err != nil {
		return statusOutputs{}, err
	}
	var done []string
	for i, n := range nodes {
		if _, ok := prog.Restarted[n.PNID()]; ok {
			env.Logf("%s: services already restarted by this run", n.PNID())
			done = append(done, n.PNID())
			continue
		}
		if err := restartNode(ctx, env, n, p); err != nil {
			var rest []string
			for _, m := range nodes[i+1:] {
				rest = append(rest, m.PNID())
			}
			return statusOutputs{}, withProgress(err, done, rest)
		}
		prog.Restarted[n.PNID()] = env.Time().UTC()
		if err := writeProgress(env, prog); err != nil {
			return statusOutputs{}, err
		}
		done = append(done, n.PNID())
	}
	st, err := readAll(ctx, env, nodes, p.Required, false)
	if err != nil {
		return statusOutputs{}, err
	}
	if !st.AllRunning {
		return st, fmt.Errorf("services restarted, but required services are not running: %s", strings.Join(st.NotRunning, "; "))
	}
	return st, nil
}

// withProgress adds to a node's failure which nodes were restarted and
// which were not touched.
func withProgress(err error, done, rest []string) error {
	var b strings.Builder
	if len(done) > 0 {
		fmt.Fprintf(&b, "; restarted before it: %s", strings.Join(done, ", "))
	}
	if len(rest) > 0 {
		fmt.Fprintf(&b, "; not touched: %s", strings.Join(rest, ", "))
	}
	if b.Len() == 0 {
		return err
	}
	return fmt.Errorf("%w%s", err, b.String())
}

// restartNode stops and starts every service of one node.
func restartNode(ctx context.Context, env *engine.Env, n *target.Node, p *restartParams) error {
	stop := ServiceControl + " --stop --all"
	name := "service-control --stop --all"
	if p.StopIgnore {
		stop = ServiceControl + " --stop --ignore --all"
		name = "service-control --stop --ignore --all"
	}
	env.Logf("%s: %s", n.PNID(), name)
	if _, err := shell.Must(ctx, env, n, name, stop, ""); err != nil {
		return err
	}
	env.Logf("%s: service-control --start --all", n.PNID())
	res, err := shell.Run(ctx, env, n, "service-control --start --all", ServiceControl+" --start --all", "")
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return &StartError{Node: n.PNID(), ExitCode: res.ExitCode, Lines: StartErrors(res.Stderr + "\n" + res.Stdout)}
	}
	ns, err := readNode(ctx, env, n, p.Required)
	if err != nil {
		return err
	}
	if !ns.AllRunning {
		return fmt.Errorf("%s: service-control --start --all succeeded but these services are not running: %s", n.PNID(), strings.Join(ns.NotRunning, ", "))
	}
	return nil
}

// StartError is a node whose services failed to start.
type StartError struct {
	// Node is the node's PNID.
	Node string
	// ExitCode is service-control's exit status.
	ExitCode int
	// Lines are service-control's error lines (see StartErrors), redacted.
	Lines []string
}

// Error quotes service-control and says what to check.
func (e *StartError) Error() string {
	quoted := "(it printed no error line)"
	if len(e.Lines) > 0 {
		quoted = strings.Join(e.Lines, " | ")
	}
	return fmt.Sprintf("%s: service-control --start --all failed (exit code %d): %s. Services fail to start when a "+
		"certificate they need has expired: check the STS signing certificate (sts.certificates; KB 76719 fixsts), "+
		"then the Machine SSL and solution-user certificates (vecs.entries; certificate-manager option 3, 6 or 8, "+
		"KB 2097936 / 2112283)", e.Node, e.ExitCode, quoted)
}

func checkRestart(ctx context.Context, env *engine.Env, p *restartParams) (engine.Verdict[statusOutputs], error) {
	nodes, err := restartNodes(env, p)
	if err != nil {
		return engine.Verdict[statusOutputs]{}, err
	}
	prog, err := readProgress(env)
	if err != nil {
		return engine.Verdict[statusOutputs]{}, err
	}
	basis := "by the services' state alone (no run folder to record progress in)"
	if progressFile(env) != "" {
		var missing []string
		for _, n := range nodes {
			if _, ok := prog.Restarted[n.PNID()]; !ok {
				missing = append(missing, n.PNID())
			}
		}
		if len(missing) > 0 {
			return engine.Verdict[statusOutputs]{State: engine.NotApplied,
				Detail: "this run has not restarted the services on " + strings.Join(missing, ", ")}, nil
		}
		basis = "this run restarted every node"
	}
	st, err := readAll(ctx, env, nodes, p.Required, false)
	if err != nil {
		return engine.Verdict[statusOutputs]{}, err
	}
	if !st.AllRunning {
		return engine.Verdict[statusOutputs]{State: engine.NotApplied, Outputs: st,
			Detail: "required services are not running: " + strings.Join(st.NotRunning, "; ")}, nil
	}
	return engine.Verdict[statusOutputs]{State: engine.Applied, Outputs: st,
		Detail: basis + ", and every required service runs"}, nil
}

// readProgress reads the progress file; none yet is no progress.
func readProgress(env *engine.Env) (progress, error) {
	prog := progress{Restarted: map[string]time.Time{}}
	name := progressFile(env)
	if name == "" {
		return prog, nil
	}
	data, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return prog, nil
	}
	if err != nil {
		return prog, fmt.Errorf("read restart progress: %w", err)
	}
	if err := json.Unmarshal(data, &prog); err != nil {
		return prog, fmt.Errorf("read restart progress %s: %w", name, err)
	}
	if prog.Restarted == nil {
		prog.Restarted = map[string]time.Time{}
	}
	return prog, nil
}

// writeProgress records the progress durably (written aside, synced,
// renamed over).
func writeProgress(env *engine.Env, prog progress) error {
	name := progressFile(env)
	if name == "" {
		return nil
	}
	data, err := json.MarshalIndent(prog, "", "  ")
	if err != nil {
		return fmt.Errorf("encode restart progress: %w", err)
	}
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write restart progress: %w", err)
	}
	if _, err = f.Write(append(data, '\n')); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write restart progress: %w", err)
	}
	return nil
}
