// Package admission caps the requests a proxy has forwarded to its server
// and not yet seen answered. Beyond the cap, requests wait, and the slots
// that answers free are granted round robin across the clients' networks,
// so that the networks that flood wait behind their own backlog while a
// network with one request waiting is served within one round.
//
// A Gate is the cap. Acquire takes slots for a group of requests about to
// be forwarded, waiting if the cap is reached; Release gives slots back as
// answers arrive. A limit of 0 lets everything through at once.
//
// The fast path, with nobody waiting, is one atomic compare-and-swap to
// acquire and one atomic add to release; the waiters' queues are kept
// under a mutex only while someone waits.
package admission

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Gate caps the slots held at once, and queues the requests beyond it by
// network (the key K), granting freed slots to the networks in turn.
type Gate[K comparable] struct {
	limit   atomic.Int64 // the cap; 0: none
	inUse   atomic.Int64 // slots held
	waiting atomic.Int64 // requests (not waiters) queued

	mu     sync.Mutex
	queues map[K]*queue // networks with waiters
	ring   []K          // those networks, in the order they are served
	next   int          // the ring position served next
}

// queue is one network's waiters, first come first served.
type queue struct {
	waiters []*waiter
}

// waiter is one Acquire waiting for n slots; ready is closed when they are
// granted (granted is then true, under the gate's mutex).
type waiter struct {
	n       int64
	ready   chan struct{}
	granted bool
}

// New returns a gate that lets at most limit slots be held at once (0: no
// cap).
func New[K comparable](limit int) *Gate[K] {
	g := &Gate[K]{queues: make(map[K]*queue)}
	g.limit.Store(int64(max(limit, 0)))
	return g
}

// SetLimit changes the cap (0: none) and grants what it frees to the
// waiters.
func (g *Gate[K]) SetLimit(limit int) {
	g.limit.Store(int64(max(limit, 0)))
	g.grantWaiting()
}

// Limit returns the cap (0: none).
func (g *Gate[K]) Limit() int { return int(g.limit.Load()) }

// InUse returns the slots held now.
func (g *Gate[K]) InUse() int { return int(g.inUse.Load()) }

// Waiting returns the slots asked for by the Acquires waiting now.
func (g *Gate[K]) Waiting() int { return int(g.waiting.Load()) }

// Acquire takes n slots for network key, waiting while they would take the
// slots held above the cap. A group of n larger than the cap is let
// through when no slot is held, so that it cannot wait forever. It returns
// ctx's error, having taken nothing, if ctx ends first.
func (g *Gate[K]) Acquire(ctx context.Context, key K, n int) error {
	if n <= 0 {
		return nil
	}
	need := int64(n)
	if g.waiting.Load() == 0 && g.tryTake(need) {
		return nil
	}
	w := &waiter{n: need, ready: make(chan struct{})}
	g.mu.Lock()
	q := g.queues[key]
	if q == nil {
		q = &queue{}
		g.queues[key] = q
		g.ring = append(g.ring, key)
	}
	q.waiters = append(q.waiters, w)
	// Counted before the slots are looked at again, so that a Release
	// that frees them either is seen here or sees this waiter.
	g.waiting.Add(need)
	g.grantLocked()
	g.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.granted {
		// Granted while ctx ended: give the slots to the next in turn.
		g.inUse.Add(-need)
		g.grantLocked()
	} else {
		g.remove(key, w)
		g.grantLocked() // it may have stood in the way of smaller ones
	}
	return fmt.Errorf("admission: gave up waiting for %d slots: %w", n, ctx.Err())
}

// Release gives back n slots and grants them to the waiters.
func (g *Gate[K]) Release(n int) {
	if n <= 0 {
		return
	}
	for {
		used := g.inUse.Load()
		// Never below 0: a caller that releases more than it took must
		// not make room for more than the cap.
		if g.inUse.CompareAndSwap(used, max(used-int64(n), 0)) {
			break
		}
	}
	if g.waiting.Load() > 0 {
		g.grantWaiting()
	}
}

// tryTake takes n slots if they fit under the cap, or if none are held.
func (g *Gate[K]) tryTake(n int64) bool {
	for {
		used := g.inUse.Load()
		limit := g.limit.Load()
		if limit > 0 && used > 0 && used+n > limit {
			return false
		}
		if g.inUse.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (g *Gate[K]) grantWaiting() {
	g.mu.Lock()
	g.grantLocked()
	g.mu.Unlock()
}

// grantLocked grants slots to the networks in turn, one waiter each, for as
// long as the next one's fit.
func (g *Gate[K]) grantLocked() {
	for len(g.ring) > 0 {
		if g.next >= len(g.ring) {
			g.next = 0
		}
		key := g.ring[g.next]
		q := g.queues[key]
		w := q.waiters[0]
		if !g.tryTake(w.n) {
			return
		}
		w.granted = true
		close(w.ready)
		g.waiting.Add(-w.n)
		q.waiters[0] = nil
		q.waiters = q.waiters[1:]
		if len(q.waiters) == 0 {
			g.dropNetwork(g.next)
		} else {
			g.next++
		}
	}
}

// remove takes a waiter that gave up out of its network's queue.
func (g *Gate[K]) remove(key K, w *waiter) {
	q := g.queues[key]
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			g.waiting.Add(-w.n)
			break
		}
	}
	if len(q.waiters) > 0 {
		return
	}
	for i, k := range g.ring {
		if k == key {
			g.dropNetwork(i)
			return
		}
	}
}

// dropNetwork takes the network at ring position i, whose queue is empty,
// out of the ring; the network after it is served next.
func (g *Gate[K]) dropNetwork(i int) {
	delete(g.queues, g.ring[i])
	g.ring = append(g.ring[:i], g.ring[i+1:]...)
	if i < g.next {
		g.next--
	}
}
