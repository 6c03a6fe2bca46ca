package target

import (
	"context"
	"errors"
)

// ErrClosed is returned by connection methods after Target.Close.
var ErrClosed = errors.New("target is closed")

// slot holds one lazily opened, cached value, such as a connection. Callers
// wanting the value at the same time wait for one open; waiting honours their
// context.
type slot[T any] struct {
	lock   chan struct{} // a one-slot semaphore guarding the fields below
	val    T
	ok     bool
	closed bool
}

func newSlot[T any]() *slot[T] {
	return &slot[T]{lock: make(chan struct{}, 1)}
}

func (s *slot[T]) acquire(ctx context.Context) error {
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slot[T]) release() { <-s.lock }

// get returns the cached value when there is one and alive (nil means always)
// says it is usable; otherwise it discards it with drop (which may be nil),
// opens a new one and caches it.
func (s *slot[T]) get(ctx context.Context, alive func(T) bool, drop func(T), open func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := s.acquire(ctx); err != nil {
		return zero, err
	}
	defer s.release()
	if s.closed {
		return zero, ErrClosed
	}
	if s.ok {
		if alive == nil || alive(s.val) {
			return s.val, nil
		}
		if drop != nil {
			drop(s.val)
		}
		s.val, s.ok = zero, false
	}
	v, err := open(ctx)
	if err != nil {
		return zero, err
	}
	s.val, s.ok = v, true
	return v, nil
}

// reset forgets the cached value, passing it to drop (which may be nil).
func (s *slot[T]) reset(drop func(T)) {
	s.lock <- struct{}{}
	defer s.release()
	if s.ok && drop != nil {
		drop(s.val)
	}
	var zero T
	s.val, s.ok = zero, false
}

// close forgets the cached value, passing it to drop, and makes later gets
// fail with ErrClosed. It waits for an open in progress.
func (s *slot[T]) close(drop func(T)) {
	s.lock <- struct{}{}
	defer s.release()
	if s.ok && drop != nil {
		drop(s.val)
	}
	var zero T
	s.val, s.ok, s.closed = zero, false, true
}
