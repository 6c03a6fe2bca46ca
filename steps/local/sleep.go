package local

import (
	"context"
	"fmt"
	"time"

	"runbook/engine"
)

// sleepParams are the params of sleep.
type sleepParams struct {
	Duration time.Duration `yaml:"duration" required:"true" doc:"How long to wait, such as 30s or 5m."`
}

// sleepOutputs are empty.
type sleepOutputs struct{}

var sleepStep = engine.Read[sleepParams, sleepOutputs]{
	Spec: engine.Spec{
		ID:      "sleep",
		Summary: "Wait for a while, for example for services to settle after a restart.",
		Doc: "The wait ends early, with an error, when the run is interrupted or the step's " +
			"`timeout:` passes. A dry-run does not wait: nothing it waits for has happened.",
	},
	Run: runSleep,
}

func runSleep(ctx context.Context, env *engine.Env, p *sleepParams) (sleepOutputs, error) {
	if p.Duration < 0 {
		return sleepOutputs{}, fmt.Errorf("sleep: negative duration %s", p.Duration)
	}
	if env.DryRun {
		env.Logf("would wait %s", p.Duration)
		return sleepOutputs{}, nil
	}
	t := time.NewTimer(p.Duration)
	defer t.Stop()
	select {
	case <-t.C:
		return sleepOutputs{}, nil
	case <-ctx.Done():
		return sleepOutputs{}, fmt.Errorf("sleep %s: %w", p.Duration, context.Cause(ctx))
	}
}
