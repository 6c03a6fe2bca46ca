package conn

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"runbook/target"
)

// EachNode reads every node side by side with read and returns the results
// in node order. With tolerate (a step given `node: all`), a node that
// cannot be reached over the network (target.Unreachable) gets down(node,
// err) instead of failing the step, so that a check can report it; the
// step still fails when no node could be reached at all, and on any other
// error (a pin that does not match, a tool that fails). what names the
// reading in errors, e.g. "read VECS".
func EachNode[T any](ctx context.Context, nodes []*target.Node, tolerate bool, what string,
	read func(ctx context.Context, n *target.Node) (T, error),
	down func(n *target.Node, err error) T) ([]T, error) {
	results := make([]T, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { results[i], errs[i] = read(ctx, n) })
	}
	wg.Wait()
	var fatal []error
	answered := 0
	for i, err := range errs {
		switch {
		case err == nil:
			answered++
		case tolerate && ctx.Err() == nil && target.Unreachable(err):
			results[i] = down(nodes[i], err)
		default:
			fatal = append(fatal, err)
		}
	}
	if err := errors.Join(fatal...); err != nil {
		return nil, err
	}
	if answered == 0 && len(nodes) > 0 {
		return nil, fmt.Errorf("%s: no node of the target could be reached: %w", what, errors.Join(errs...))
	}
	return results, nil
}
