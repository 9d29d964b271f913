package stamp

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
)

// chunk is how many counters a mint worker takes at a time.
const chunk = 1 << 12

// Mint searches for a counter that makes s prove s.Work for a body with the
// given hash and stores it in s.Counter. It hashes the input prefix once and
// then, per attempt, only the final SHA-256 block. workers goroutines search
// disjoint counter ranges (at least one). It returns the number of attempts
// made, and ctx's error if ctx ends first.
func Mint(ctx context.Context, s *Stamp, bodyHash *[32]byte, workers int) (attempts uint64, err error) {
	if s.Work == 0 {
		return 0, fmt.Errorf("mint: work must be at least 1")
	}
	if err := ValidateResource(s.Resource); err != nil {
		return 0, fmt.Errorf("mint: %w", err)
	}
	midstate, err := midstateOf(s, bodyHash)
	if err != nil {
		return 0, err
	}
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
	for range workers {
		wg.Go(func() {
			n, counter, ok := searchChunks(ctx, midstate, s.Work, &next, &found)
			total.Add(n)
			if ok {
				once.Do(func() { s.Counter = counter })
			}
		})
	}
	wg.Wait()
	if !found.Load() {
		return total.Load(), fmt.Errorf("mint: %w", ctx.Err())
	}
	return total.Load(), nil
}

// midstateOf returns the marshalled SHA-256 state after the input prefix.
func midstateOf(s *Stamp, bodyHash *[32]byte) ([]byte, error) {
	h := sha256.New()
	h.Write(s.AppendPrefix(make([]byte, 0, PrefixLen(len(s.Resource))), bodyHash))
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("mint: saving SHA-256 state: %w", err)
	}
	return state, nil
}

// searchChunks is one mint worker: it takes chunks of counters until one
// proves work or another worker has found one or ctx ends. The loop does
// not allocate.
func searchChunks(ctx context.Context, midstate []byte, work uint64, next *atomic.Uint64, found *atomic.Bool) (attempts, counter uint64, ok bool) {
	h := sha256.New()
	restore := h.(encoding.BinaryUnmarshaler)
	var ctr [8]byte
	digest := new([32]byte)
	for !found.Load() && ctx.Err() == nil {
		first := next.Add(chunk) - chunk
		for c := first; c < first+chunk; c++ {
			if err := restore.UnmarshalBinary(midstate); err != nil {
				return attempts, 0, false
			}
			binary.BigEndian.PutUint64(ctr[:], c)
			h.Write(ctr[:])
			h.Sum(digest[:0])
			attempts++
			if Meets(digest, work) {
				if found.CompareAndSwap(false, true) {
					return attempts, c, true
				}
				return attempts, 0, false
			}
		}
	}
	return attempts, 0, false
}
