package admission

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// acquired runs Acquire in a goroutine and returns a channel that gets its
// result.
func acquired(g *Gate[string], ctx context.Context, key string, n int) <-chan error {
	done := make(chan error, 1)
	go func() { done <- g.Acquire(ctx, key, n) }()
	return done
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func mustNotReturn(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned (%v) while the cap was reached", what, err)
	case <-time.After(20 * time.Millisecond):
	}
}

func mustReturn(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s still waits", what)
	}
}

func TestCapHoldsBeyondLimit(t *testing.T) {
	g := New[string](3)
	ctx := context.Background()
	for i := range 3 {
		if err := g.Acquire(ctx, "a", 1); err != nil {
			t.Fatalf("acquire %d under the cap: %v", i, err)
		}
	}
	if g.InUse() != 3 {
		t.Fatalf("in use %d, want 3", g.InUse())
	}
	fourth := acquired(g, ctx, "a", 1)
	mustNotReturn(t, fourth, "a fourth slot")
	waitFor(t, "the fourth to wait", func() bool { return g.Waiting() == 1 })
	g.Release(1)
	mustReturn(t, fourth, "the fourth slot after a release")
	if g.InUse() != 3 || g.Waiting() != 0 {
		t.Fatalf("in use %d, waiting %d; want 3, 0", g.InUse(), g.Waiting())
	}
}

func TestGroupsFitUnderTheCap(t *testing.T) {
	g := New[string](10)
	ctx := context.Background()
	if err := g.Acquire(ctx, "a", 8); err != nil {
		t.Fatal(err)
	}
	group := acquired(g, ctx, "b", 4)
	mustNotReturn(t, group, "a group of 4 with 8 of 10 held")
	g.Release(1)
	mustNotReturn(t, group, "a group of 4 with 7 of 10 held")
	g.Release(1)
	mustReturn(t, group, "a group of 4 with 6 of 10 held")
	if g.InUse() != 10 {
		t.Fatalf("in use %d, want 10", g.InUse())
	}
}

func TestGroupLargerThanCapPassesAlone(t *testing.T) {
	g := New[string](4)
	ctx := context.Background()
	if err := g.Acquire(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	big := acquired(g, ctx, "b", 9)
	mustNotReturn(t, big, "a group of 9 with a slot held")
	g.Release(1)
	mustReturn(t, big, "a group of 9 with nothing held")
	if g.InUse() != 9 {
		t.Fatalf("in use %d, want 9", g.InUse())
	}
}

// TestNetworksServedInTurn: a network with one request waiting behind
// another network's long queue is served second, not last.
func TestNetworksServedInTurn(t *testing.T) {
	g := New[string](1)
	ctx := context.Background()
	if err := g.Acquire(ctx, "flood", 1); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enqueue := func(key string, waiting int) {
		wg.Go(func() {
			if err := g.Acquire(ctx, key, 1); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, key)
			mu.Unlock()
		})
		waitFor(t, key+" to wait", func() bool { return g.Waiting() == waiting })
	}
	for i := range 5 {
		enqueue("flood", i+1)
	}
	enqueue("honest", 6)
	for served := 0; served < 6; served++ {
		g.Release(1)
		waitFor(t, "a grant", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(order) == served+1
		})
	}
	wg.Wait()
	want := []string{"flood", "honest", "flood", "flood", "flood", "flood"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("served %v, want %v", order, want)
		}
	}
}

func TestGiveUpTakesNothing(t *testing.T) {
	g := New[string](1)
	if err := g.Acquire(context.Background(), "a", 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := acquired(g, ctx, "b", 1)
	later := acquired(g, context.Background(), "c", 1)
	waitFor(t, "two waiters", func() bool { return g.Waiting() == 2 })
	cancel()
	select {
	case err := <-gaveUp:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("gave up with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled Acquire still waits")
	}
	if g.Waiting() != 1 {
		t.Fatalf("waiting %d after one gave up, want 1", g.Waiting())
	}
	g.Release(1)
	mustReturn(t, later, "the waiter after the one that gave up")
	if g.InUse() != 1 {
		t.Fatalf("in use %d, want 1", g.InUse())
	}
}

func TestSetLimit(t *testing.T) {
	g := New[string](1)
	ctx := context.Background()
	if err := g.Acquire(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	second := acquired(g, ctx, "b", 1)
	mustNotReturn(t, second, "a second slot under a cap of 1")
	waitFor(t, "the second to wait", func() bool { return g.Waiting() == 1 })
	g.SetLimit(2)
	mustReturn(t, second, "the second slot once the cap is 2")
	g.SetLimit(0)
	for i := range 100 {
		if err := g.Acquire(ctx, "a", 1); err != nil {
			t.Fatalf("acquire %d with no cap: %v", i, err)
		}
	}
	if g.InUse() != 102 {
		t.Fatalf("in use %d, want 102", g.InUse())
	}
}

func TestReleaseNeverBelowZero(t *testing.T) {
	g := New[string](2)
	g.Release(5)
	if g.InUse() != 0 {
		t.Fatalf("in use %d after releasing what was not held, want 0", g.InUse())
	}
	ctx := context.Background()
	_ = g.Acquire(ctx, "a", 2)
	third := acquired(g, ctx, "a", 1)
	mustNotReturn(t, third, "a third slot under a cap of 2")
	g.Release(1)
	mustReturn(t, third, "the third slot")
}

// TestConcurrentHoldersStayUnderCap: many networks acquiring and releasing
// at once never hold more than the cap, and every request is served.
func TestConcurrentHoldersStayUnderCap(t *testing.T) {
	const limit, networks, perNetwork = 8, 20, 200
	g := New[int](limit)
	var held, most atomic.Int64
	var wg sync.WaitGroup
	for net := range networks {
		wg.Go(func() {
			for i := range perNetwork {
				n := 1 + (net+i)%3
				if err := g.Acquire(context.Background(), net, n); err != nil {
					t.Error(err)
					return
				}
				now := held.Add(int64(n))
				for {
					m := most.Load()
					if now <= m || most.CompareAndSwap(m, now) {
						break
					}
				}
				if i%7 == 0 {
					time.Sleep(10 * time.Microsecond)
				}
				held.Add(-int64(n))
				g.Release(n)
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > limit {
		t.Fatalf("held %d slots at once, cap %d", m, limit)
	}
	if g.InUse() != 0 || g.Waiting() != 0 {
		t.Fatalf("in use %d, waiting %d after all released; want 0, 0", g.InUse(), g.Waiting())
	}
}
