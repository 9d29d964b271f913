package stamp

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// chunk is how many counters a mint worker takes at a time: a multiple of
// every kernel's lanes.
const chunk = 1 << 12

// Mint searches for a counter that makes s prove s.Work for a body with the
// given hash and stores it in s.Counter. It hashes the input prefix once and
// then, per attempt, only the final SHA-256 block, with the fastest kernel
// this CPU runs (the SHA instructions of x86-64 or ARMv8 where present).
// workers goroutines search disjoint counter ranges (at least one). It
// returns the number of attempts made, and ctx's error if ctx ends first.
func Mint(ctx context.Context, s *Stamp, bodyHash *[32]byte, workers int) (attempts uint64, err error) {
	return mint(ctx, s, bodyHash, workers, defaultKernel)
}

// mint is Mint with kernel k.
func mint(ctx context.Context, s *Stamp, bodyHash *[32]byte, workers int, k *kernel) (attempts uint64, err error) {
	if s.Work == 0 {
		return 0, fmt.Errorf("mint: work must be at least 1")
	}
	if err := ValidateResource(s.Resource); err != nil {
		return 0, fmt.Errorf("mint: %w", err)
	}
	j := newJob(s.AppendPrefix(make([]byte, 0, PrefixLen(len(s.Resource))), bodyHash), limitFor(s.Work))
	if workers < 1 {
		workers = 1
	}
	var (
		next  atomic.Uint64 // first counter of the next chunk to hand out
		found atomic.Bool
		total atomic.Uint64
		wg    sync.WaitGroup
		once  sync.Once
	)
	work := func() {
		n, counter, ok := searchChunks(ctx, j, k, &next, &found)
		total.Add(n)
		if ok {
			once.Do(func() { s.Counter = counter })
		}
	}
	for range workers - 1 {
		wg.Go(work)
	}
	// The last worker is the caller's goroutine: one worker mints on the
	// caller's thread, and so at its scheduling priority.
	work()
	wg.Wait()
	if !found.Load() {
		return total.Load(), fmt.Errorf("mint: %w", ctx.Err())
	}
	return total.Load(), nil
}

// searchChunks is one mint worker: it takes chunks of counters and runs
// kernel k on each until one proves work or another worker has found one or
// ctx ends. The loop does not allocate.
func searchChunks(ctx context.Context, j *job, k *kernel, next *atomic.Uint64, found *atomic.Bool) (attempts, counter uint64, ok bool) {
	for !found.Load() && ctx.Err() == nil {
		first := next.Add(chunk) - chunk
		i := k.search(j, first, chunk)
		if i == chunk {
			attempts += chunk
			continue
		}
		attempts += i + 1
		if found.CompareAndSwap(false, true) {
			return attempts, first + i, true
		}
		return attempts, 0, false
	}
	return attempts, 0, false
}
