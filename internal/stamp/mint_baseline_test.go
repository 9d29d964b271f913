package stamp

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// baselineMint is Mint as it was before the kernels, kept as the benchmarks'
// baseline: per attempt it restores a crypto/sha256 hash from the marshalled
// midstate, writes the counter and calls Sum.
func baselineMint(ctx context.Context, s *Stamp, bodyHash *[32]byte, workers int) (attempts uint64, err error) {
	h := sha256.New()
	h.Write(s.AppendPrefix(make([]byte, 0, PrefixLen(len(s.Resource))), bodyHash))
	midstate, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return 0, fmt.Errorf("mint: saving SHA-256 state: %w", err)
	}
	var (
		next  atomic.Uint64
		found atomic.Bool
		total atomic.Uint64
		wg    sync.WaitGroup
		once  sync.Once
	)
	for range max(workers, 1) {
		wg.Go(func() {
			n, counter, ok := baselineSearchChunks(ctx, midstate, s.Work, &next, &found)
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

// baselineSearchChunks is baselineMint's worker.
func baselineSearchChunks(ctx context.Context, midstate []byte, work uint64, next *atomic.Uint64, found *atomic.Bool) (attempts, counter uint64, ok bool) {
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

// TestBaselineMintAgrees checks that the baseline finds what Mint finds
// with one worker: the first counter that proves the work.
func TestBaselineMintAgrees(t *testing.T) {
	var bodyHash [32]byte
	a := Stamp{Work: 1 << 12, Time: 1700000000, Resource: "electrum.example.org:50002"}
	b := a
	na, err := Mint(context.Background(), &a, &bodyHash, 1)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := baselineMint(context.Background(), &b, &bodyHash, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Counter != b.Counter || na != nb {
		t.Fatalf("Mint found counter %d in %d attempts, the baseline %d in %d", a.Counter, na, b.Counter, nb)
	}
}
