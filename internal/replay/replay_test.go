package replay_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
)

func key(i int) replay.Key {
	var k replay.Key
	k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
	return k
}

func TestClaimOnceUntilExpiry(t *testing.T) {
	m := replay.NewMemory(1000)
	if err := m.Claim(key(1), 100, 200); err != nil {
		t.Fatal(err)
	}
	if err := m.Claim(key(1), 150, 250); err != replay.ErrReplayed {
		t.Fatalf("second claim: %v", err)
	}
	if err := m.Claim(key(1), 200, 300); err != nil {
		t.Fatalf("claim after expiry: %v", err)
	}
	m.Release(key(1))
	if err := m.Claim(key(1), 201, 300); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
}

// fill claims keys first, first+1, ... until one is refused, up to
// limit claims, and returns how many were accepted and the first error.
func fill(m *replay.Memory, first, limit int, now, expires int64) (int, error) {
	for i := range limit {
		if err := m.Claim(key(first+i), now, expires); err != nil {
			return i, err
		}
	}
	return limit, nil
}

// TestFullAtCapacity fills stores with distinct keys, which land in every
// shard: the claim after capacity live keys is refused, none before, and
// releases and expiry make room again.
func TestFullAtCapacity(t *testing.T) {
	for _, capacity := range []int{1, 3, 63, 64, 65, 1000, 1_000_000} {
		m := replay.NewMemory(capacity)
		if m.Capacity() != capacity {
			t.Fatalf("NewMemory(%d).Capacity() = %d", capacity, m.Capacity())
		}
		n, err := fill(m, 0, capacity+1, 100, 200)
		if n != capacity || err != replay.ErrFull {
			t.Fatalf("capacity %d: %d claims accepted, then %v; want %d, then ErrFull", capacity, n, err, capacity)
		}
		if m.Len() != capacity {
			t.Fatalf("capacity %d: Len %d", capacity, m.Len())
		}
		// Still full at later times while the keys live, and none of them
		// was evicted.
		if err := m.Claim(key(capacity+1), 199, 300); err != replay.ErrFull {
			t.Fatalf("capacity %d: claim into a full store at 199: %v", capacity, err)
		}
		if err := m.Claim(key(0), 199, 300); err != replay.ErrReplayed {
			t.Fatalf("capacity %d: live key was evicted: %v", capacity, err)
		}
		// A release makes room for exactly one key.
		m.Release(key(capacity / 2))
		if n, err := fill(m, capacity+10, 2, 150, 200); n != 1 || err != replay.ErrFull {
			t.Fatalf("capacity %d: after one release, %d claims accepted, then %v", capacity, n, err)
		}
		// Once every key expired, the store holds capacity new ones, which
		// the claim that finds it full sweeps out.
		n, err = fill(m, 2*capacity+10, capacity+1, 200, 300)
		if n != capacity || err != replay.ErrFull {
			t.Fatalf("capacity %d: after expiry, %d claims accepted, then %v", capacity, n, err)
		}
		if m.Len() != capacity {
			t.Fatalf("capacity %d: Len after expiry %d", capacity, m.Len())
		}
	}
}

// TestFullSweepsExpiredKeysOfOtherShards fills a store with keys in other
// shards than the one claimed into, some expired: the full store drops them
// rather than refuse.
func TestFullSweepsExpiredKeysOfOtherShards(t *testing.T) {
	m := replay.NewMemory(10)
	for i := range 10 {
		expires := int64(200)
		if i < 3 {
			expires = 150
		}
		if err := m.Claim(key(1+i), 100, expires); err != nil {
			t.Fatal(err)
		}
	}
	// key(64*i) are in shard 0, which holds no key yet.
	for i := range 3 {
		if err := m.Claim(key(64*i), 160, 300); err != nil {
			t.Fatalf("claim %d once 3 keys expired: %v", i, err)
		}
	}
	if err := m.Claim(key(64*3), 160, 300); err != replay.ErrFull {
		t.Fatalf("claim of an eleventh live key: %v", err)
	}
	if m.Len() != 10 {
		t.Fatalf("Len %d", m.Len())
	}
}

// TestFullSweepsOnceForEachNow checks the tolerance of the capacity: a
// full store is swept by a claim at most once for each now (and not for a
// now behind the latest sweep's), so a key recorded since with an expiry
// at or before now takes room until the next sweep.
func TestFullSweepsOnceForEachNow(t *testing.T) {
	m := replay.NewMemory(2)
	if err := m.Claim(key(1), 100, 200); err != nil {
		t.Fatal(err)
	}
	m.Sweep(100)
	if err := m.Claim(key(2), 100, 100); err != nil { // expired already
		t.Fatal(err)
	}
	if err := m.Claim(key(3), 100, 200); err != replay.ErrFull {
		t.Fatalf("claim into a store swept at this now: %v", err)
	}
	if err := m.Claim(key(3), 99, 200); err != replay.ErrFull {
		t.Fatalf("claim into a store swept at a later now: %v", err)
	}
	if err := m.Claim(key(3), 101, 200); err != nil {
		t.Fatalf("claim at a new now, which sweeps the expired key: %v", err)
	}
	if err := m.Claim(key(4), 101, 200); err != replay.ErrFull {
		t.Fatalf("claim into a store full of live keys: %v", err)
	}
}

// TestCapacityBelowOne checks that a capacity below 1 is taken as 64, what
// NewMemory(0) has always held (one key per shard, when capacity was
// enforced per shard).
func TestCapacityBelowOne(t *testing.T) {
	for _, capacity := range []int{0, -1} {
		m := replay.NewMemory(capacity)
		if m.Capacity() != 64 {
			t.Fatalf("NewMemory(%d).Capacity() = %d", capacity, m.Capacity())
		}
		if n, err := fill(m, 0, 65, 100, 200); n != 64 || err != replay.ErrFull {
			t.Fatalf("NewMemory(%d): %d claims accepted, then %v", capacity, n, err)
		}
		m.SetCapacity(capacity)
		if m.Capacity() != 64 {
			t.Fatalf("SetCapacity(%d): Capacity() = %d", capacity, m.Capacity())
		}
	}
}

// TestSetCapacity raises and lowers the capacity of a store in use: a
// lower capacity evicts no live key, and refuses new ones until enough of
// the keys held expired or were released.
func TestSetCapacity(t *testing.T) {
	m := replay.NewMemory(100)
	if n, err := fill(m, 0, 101, 100, 200); n != 100 || err != replay.ErrFull {
		t.Fatalf("%d claims accepted, then %v", n, err)
	}
	m.SetCapacity(150)
	if m.Capacity() != 150 {
		t.Fatalf("Capacity() = %d after SetCapacity(150)", m.Capacity())
	}
	if n, err := fill(m, 100, 51, 100, 300); n != 50 || err != replay.ErrFull {
		t.Fatalf("raised to 150: %d more claims accepted, then %v", n, err)
	}
	m.SetCapacity(40)
	if m.Len() != 150 {
		t.Fatalf("lowering the capacity evicted keys: Len %d", m.Len())
	}
	for i := range 150 {
		if err := m.Claim(key(i), 150, 400); err != replay.ErrReplayed {
			t.Fatalf("key %d after lowering the capacity: %v", i, err)
		}
	}
	// 150 live keys, 110 of them releases away from the capacity of 40.
	for i := range 110 {
		if err := m.Claim(key(1000+i), 150, 400); err != replay.ErrFull {
			t.Fatalf("claim with %d keys held over a capacity of 40: %v", 150-i, err)
		}
		m.Release(key(i))
	}
	if n, err := fill(m, 1000, 2, 150, 400); n != 0 || err != replay.ErrFull {
		t.Fatalf("at capacity 40 with 40 keys: %d claims accepted, then %v", n, err)
	}
	// The 100 first keys expire at 200, the 50 others at 300: at 200, 40
	// remain, at 300 none.
	if n, err := fill(m, 2000, 1, 200, 400); n != 0 || err != replay.ErrFull {
		t.Fatalf("at 200, with 40 live keys: %d claims accepted, then %v", n, err)
	}
	if n, err := fill(m, 3000, 41, 300, 400); n != 40 || err != replay.ErrFull {
		t.Fatalf("at 300, every key expired: %d claims accepted, then %v", n, err)
	}
}

// TestSetCapacitySplitsTables raises the capacity of a store far enough
// that its shards are split into more tables: every key held is still
// there, and the store holds the new capacity.
func TestSetCapacitySplitsTables(t *testing.T) {
	defer replay.SetTableKeys(2)()
	m := replay.NewMemory(128) // one table of 2 keys a shard
	if n, err := fill(m, 0, 129, 100, 200); n != 128 || err != replay.ErrFull {
		t.Fatalf("%d claims accepted, then %v", n, err)
	}
	m.SetCapacity(128 * 8) // 8 tables a shard
	for i := range 128 {
		if err := m.Claim(key(i), 150, 300); err != replay.ErrReplayed {
			t.Fatalf("key %d after the split: %v", i, err)
		}
	}
	if n, err := fill(m, 128, 128*7+1, 150, 300); n != 128*7 || err != replay.ErrFull {
		t.Fatalf("after the split: %d more claims accepted, then %v", n, err)
	}
	for i := range 128 * 8 {
		m.Release(key(i))
	}
	if m.Len() != 0 {
		t.Fatalf("Len %d after releasing every key", m.Len())
	}
}

// TestConcurrentClaimsStopAtCapacity claims distinct keys from many
// goroutines, while others change the capacity and sweep: exactly the
// capacity is accepted, whatever the interleaving.
func TestConcurrentClaimsStopAtCapacity(t *testing.T) {
	const goroutines, perGoroutine, capacity = 8, 2000, 5000
	m := replay.NewMemory(capacity)
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				switch err := m.Claim(key(g*perGoroutine+i), 100, 200); err {
				case nil:
					accepted.Add(1)
				case replay.ErrFull:
				default:
					t.Errorf("claim: %v", err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			m.SetCapacity(capacity / 2)
			m.Sweep(100)
			m.SetCapacity(capacity)
		}
	})
	wg.Wait()
	// A claim may have been refused while the capacity was lowered: claim
	// the keys again until the store is full.
	for i := range goroutines * perGoroutine {
		if err := m.Claim(key(i), 100, 200); err == nil {
			accepted.Add(1)
		}
	}
	if n := accepted.Load(); n != capacity || m.Len() != capacity {
		t.Fatalf("%d claims accepted, Len %d; want %d", n, m.Len(), capacity)
	}
}

func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	m := replay.NewMemory(1 << 16)
	const goroutines, keys = 16, 500
	wins := make([]int, keys)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range keys {
				if m.Claim(key(i), 1, 100) == nil {
					mu.Lock()
					wins[i]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for i, w := range wins {
		if w != 1 {
			t.Fatalf("key %d claimed %d times", i, w)
		}
	}
}
