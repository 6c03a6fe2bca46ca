// Package conn gives appliance step types the nodes of the run's target and
// their connections.
package conn

import (
	"errors"
	"fmt"
	"strings"

	"runbook/engine"
	"runbook/target"
)

// ErrNoTarget is returned by a step that needs a target when the run has none.
var ErrNoTarget = errors.New("this step needs a target: pass --target lab:SCENARIO or --target PROFILE.yaml")

// All is the node selector that means every node of the target, in profile order.
const All = "all"

// Target returns the run's target.
func Target(env *engine.Env) (*target.Target, error) {
	if env == nil || env.Target == nil {
		return nil, ErrNoTarget
	}
	t, ok := env.Target.(*target.Target)
	if !ok {
		return nil, fmt.Errorf("target %s is not an appliance target", env.Target.Name())
	}
	return t, nil
}

// Node returns the node named pnid, or the first node when pnid is empty.
func Node(env *engine.Env, pnid string) (*target.Node, error) {
	t, err := Target(env)
	if err != nil {
		return nil, err
	}
	n, err := t.Node(pnid)
	if err != nil {
		return nil, fmt.Errorf("find node %q: %w", pnid, err)
	}
	return n, nil
}

// Nodes returns the nodes a selector names: "all" (every node), a PNID, or
// empty for the first node.
func Nodes(env *engine.Env, selector string) ([]*target.Node, error) {
	if strings.EqualFold(selector, All) {
		t, err := Target(env)
		if err != nil {
			return nil, err
		}
		return t.Nodes(), nil
	}
	n, err := Node(env, selector)
	if err != nil {
		return nil, err
	}
	return []*target.Node{n}, nil
}

// SSO returns the target's SSO user and password, for a step that must type
// them into an appliance tool (on stdin or at a prompt, never in argv). The
// engine masks the password wherever it writes.
func SSO(env *engine.Env) (user, password string, err error) {
	t, err := Target(env)
	if err != nil {
		return "", "", err
	}
	user, password, err = t.SSOCredentials()
	if err != nil {
		return "", "", fmt.Errorf("read the SSO password: %w", err)
	}
	return user, password, nil
}
