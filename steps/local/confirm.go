package local

import (
	"context"
	"fmt"
	"strings"

	"runbook/engine"
)

// confirmParams are the params of confirm.
type confirmParams struct {
	Prompt string `yaml:"prompt" required:"true" doc:"The yes/no question, phrased so that yes means go on."`
	Answer *bool  `yaml:"answer" doc:"The answer given in advance, usually from a runbook param, so that the question is not asked; false stops the run."`
}

// confirmOutputs are the outputs of confirm.
type confirmOutputs struct {
	// Confirmed is true: a step that is not confirmed fails.
	Confirmed bool `json:"confirmed" expr:"confirmed"`
}

var confirmStep = engine.Interactive[confirmParams, confirmOutputs]{
	Spec: engine.Spec{
		ID:      "confirm",
		Summary: "Ask the operator a yes/no question and stop the run on no.",
		Doc: "The answer comes from, in order: the `answer` param when given (false stops the " +
			"run even with --yes), --yes, or the person at the terminal. Without a terminal the " +
			"step fails closed and says to pass --yes.",
	},
	Ask: askConfirm,
}

func askConfirm(ctx context.Context, env *engine.Env, p *confirmParams) (confirmOutputs, error) {
	prompt := redact(env, p.Prompt)
	if p.Answer != nil {
		if !*p.Answer {
			return confirmOutputs{}, fmt.Errorf("operator declined: %s (answer: false)", prompt)
		}
		env.Logf("%s yes (answer: true)", prompt)
		return confirmOutputs{Confirmed: true}, nil
	}
	if env.Yes {
		env.Logf("%s yes (--yes)", prompt)
		return confirmOutputs{Confirmed: true}, nil
	}
	if env.Prompter == nil {
		return confirmOutputs{}, fmt.Errorf("no terminal to ask %q; pass --yes or set answer", prompt)
	}
	ok, err := env.Prompter.Confirm(ctx, prompt)
	if err != nil {
		if ctx.Err() != nil {
			return confirmOutputs{}, fmt.Errorf("ask %q: %w", prompt, context.Cause(ctx))
		}
		if !strings.Contains(err.Error(), "--yes") {
			err = fmt.Errorf("%w; pass --yes to answer yes without a terminal", err)
		}
		return confirmOutputs{}, fmt.Errorf("ask %q: %w", prompt, err)
	}
	if !ok {
		return confirmOutputs{}, fmt.Errorf("operator declined: %s", prompt)
	}
	return confirmOutputs{Confirmed: true}, nil
}
