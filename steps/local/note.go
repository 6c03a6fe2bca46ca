package local

import (
	"context"
	"fmt"

	"runbook/engine"
)

// noteParams are the params of note.
type noteParams struct {
	Message string `yaml:"message" required:"true" doc:"The text to show the operator; it may interpolate earlier outputs."`
}

// noteOutputs are the outputs of note.
type noteOutputs struct {
	// Message is the text shown, with secrets redacted.
	Message string `json:"message" expr:"message"`
}

var noteStep = engine.Read[noteParams, noteOutputs]{
	Spec: engine.Spec{
		ID:      "note",
		Summary: "Show the operator a message.",
		Doc: "The message is printed in runs and dry-runs alike, with secrets redacted, " +
			"and is also the step's `message` output.",
	},
	Run: runNote,
}

func runNote(_ context.Context, env *engine.Env, p *noteParams) (noteOutputs, error) {
	msg := redact(env, p.Message)
	if env.Out != nil {
		fmt.Fprintln(env.Out, msg)
	}
	return noteOutputs{Message: msg}, nil
}
