package runbooks_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"runbook/runbooks"
)

// targetCases is, for every built-in runbook that needs a target, a
// scenario it applies to and the exit code of a dry-run there: 0 for a
// repair's plan, 6 for a check that finds the scenario's problem.
var targetCases = []struct {
	runbook  string
	scenario string
	code     int
}{
	{"sts-check", "sts-expired", 6},
	{"sts-regenerate", "sts-expired", 0},
	{"lookup-ssltrust-check", "stale-ssltrust", 6},
	{"lookup-ssltrust-update", "stale-ssltrust", 0},
	{"vecs-expiry", "machine-ssl-expired", 6},
	{"pre-upgrade-checks", "healthy", 0},
	{"certmgr-machine-ssl", "machine-ssl-expired", 0},
	{"certmgr-solution-users", "solution-users-expired", 0},
	{"certmgr-reset-all", "healthy", 0},
	{"expired-certs-recovery", "all-expired", 0},
}

// localRunbooks need no target.
var localRunbooks = map[string]bool{"cert-thumbprint": true}

// TestEveryRunbookOnBothTargets runs each runbook's dry-run twice, the same
// command line with `--target lab:SCENARIO` (the lab started inside the run)
// and with `--target PROFILE` (a served lab reached like a real appliance),
// and requires the same exit code from both.
func TestEveryRunbookOnBothTargets(t *testing.T) {
	all, err := runbooks.NewCatalog(nil, "").All()
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, c := range targetCases {
		covered[c.runbook] = true
	}
	for _, src := range all {
		if !covered[src.Name] && !localRunbooks[src.Name] {
			t.Errorf("runbook %s has no case in targetCases", src.Name)
		}
	}
	for _, c := range targetCases {
		t.Run(c.runbook, func(t *testing.T) {
			args := []string{"run", c.runbook, "--dry-run", "--yes"}

			cmd := exec.Command(cli, append(args, "--target", "lab:"+c.scenario)...)
			cmd.Env = append(os.Environ(), "RUNBOOK_STATE_DIR="+filepath.Join(t.TempDir(), "state"), "NO_COLOR=1")
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.code {
				t.Fatalf("--target lab:%s exited %d, want %d:\n%s", c.scenario, code, c.code, out)
			}

			r := startLab(t, c.scenario)
			r.dryRunChangesNothing(c.runbook, c.code)
		})
	}
}
