// Package testsupport holds what the tests of several packages share: free
// loopback addresses, waiting for a listener or a condition, a buffer safe
// for concurrent writers, a TCP server that tracks its connections, and a
// recording, Electrum-shaped upstream. It does not import Caddy, so tests
// that use it stay quick to build.
//
// Helpers that take a testing.TB fail the test; each has a variant that
// returns an error instead, for commands such as loadbench and the demo.
package testsupport

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// WaitTimeout bounds WaitFor and WaitListening: long enough for a loaded
// machine running tests under the race detector, and only ever reached when
// the awaited condition never comes.
const WaitTimeout = 60 * time.Second

// Poll calls cond until it returns true or an error, ctx ends or timeout
// passes; then it returns nil, the error, or an error naming what did not
// happen. It waits interval between calls.
func Poll(ctx context.Context, what string, timeout, interval time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		t.Reset(interval)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not reached after %v", what, time.Since(start).Round(time.Millisecond))
		case <-t.C:
		}
	}
}

// WaitFor polls cond every few milliseconds until it holds, and fails the
// test if it does not within WaitTimeout (or before the test's deadline).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if err := Poll(context.Background(), "waiting for "+what, waitBudget(t), 2*time.Millisecond, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatal(err)
	}
}

// waitBudget returns WaitTimeout, or less when the test's deadline comes
// sooner: a wait that cannot succeed then fails with its own message
// instead of the test binary being killed.
func waitBudget(t testing.TB) time.Duration {
	budget := WaitTimeout
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			budget = min(budget, time.Until(deadline)-5*time.Second)
		}
	}
	return max(budget, time.Second)
}
