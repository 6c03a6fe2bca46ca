package local

import (
	"context"

	"runbook/engine"
)

// assertParams are the params of assert.
type assertParams struct {
	That    bool   `yaml:"that" required:"true" doc:"The condition that must hold, usually an expression: that: \"${{ len(steps.creds.entries) > 0 }}\"."`
	Message string `yaml:"message" doc:"The error when the condition is false; \"assertion failed\" when empty."`
}

// assertOutputs are empty: assert only passes or fails.
type assertOutputs struct{}

var assertStep = engine.Read[assertParams, assertOutputs]{
	Spec: engine.Spec{
		ID:      "assert",
		Summary: "Fail the run with a message unless a condition holds.",
		Doc: "Use `assert` between steps to stop when what an earlier step read is not what the " +
			"procedure expects:\n\n" +
			"```yaml\n- id: one_credential\n  uses: assert\n  with:\n" +
			"    that: \"${{ len(steps.creds.entries) == 1 }}\"\n" +
			"    message: expected exactly one TenantCredential (KB 76719)\n```\n\n" +
			"The step's error is the message itself.",
	},
	Run: runAssert,
}

// runAssert fails with an *engine.AssertionError, so that a check runbook
// whose assert step finds a problem exits with ExitAssertionFailed.
func runAssert(_ context.Context, env *engine.Env, p *assertParams) (assertOutputs, error) {
	if p.That {
		return assertOutputs{}, nil
	}
	msg := redact(env, p.Message)
	if msg == "" {
		msg = "the condition is false"
	}
	return assertOutputs{}, &engine.AssertionError{Step: env.StepID, Message: msg}
}
