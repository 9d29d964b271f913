package replay_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
)

// model is the reference for Memory's behaviour: one map, with the
// capacity enforced over all its keys, and swept whole when a claim finds
// it full, unless a sweep at that claim's time or later was done.
type model struct {
	capacity  int
	expiry    map[replay.Key]int64
	lastSweep int64
}

func newModel(capacity int) *model {
	if capacity < 1 {
		capacity = 64
	}
	return &model{capacity: capacity, expiry: map[replay.Key]int64{}, lastSweep: math.MinInt64}
}

func (m *model) claim(key replay.Key, now, expires int64) error {
	if exp, ok := m.expiry[key]; ok {
		if exp > now {
			return replay.ErrReplayed
		}
		m.expiry[key] = expires
		return nil
	}
	if len(m.expiry) >= m.capacity {
		if m.lastSweep < now {
			m.sweep(now)
		}
		if len(m.expiry) >= m.capacity {
			return replay.ErrFull
		}
	}
	m.expiry[key] = expires
	return nil
}

func (m *model) sweep(now int64) {
	for k, exp := range m.expiry {
		if exp <= now {
			delete(m.expiry, k)
		}
	}
	m.lastSweep = now
}

func (m *model) len() int { return len(m.expiry) }

func (m *model) setCapacity(n int) {
	if n < 1 {
		n = 64
	}
	m.capacity = n
}

// TestMemoryMatchesModel runs random claims, releases, sweeps and capacity
// changes against Memory and the model. Most keys fall in a few shards and
// live long enough to fill the store, so that tables grow, wrap around,
// fill up, and lose keys from the middle of their runs, and the store
// refuses claims at its capacity however the keys are spread.
func TestMemoryMatchesModel(t *testing.T) {
	// Tables of at most 64 keys: capacities above 64 per shard split each
	// shard into several tables.
	defer replay.SetTableKeys(64)()
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) { testMatchesModel(t, im) })
	}
}

func testMatchesModel(t *testing.T, im impl) {
	for _, capacity := range []int{0, 1, 3, 64, 64 * 5, 1000, 64 * 40, 64 * 300} {
		outcomes := map[error]int{}
		rng := rand.New(rand.NewPCG(uint64(capacity), 7))
		mem, ref := im.new(capacity), newModel(capacity)
		if got, want := mem.Capacity(), ref.capacity; got != want {
			t.Fatalf("capacity %d: Capacity() = %d, model %d", capacity, got, want)
		}
		keys := make([]replay.Key, 2*ref.capacity+8)
		for i := range keys {
			keys[i][0] = byte(rng.IntN(3) * 64) // shard 0 only
			if rng.IntN(4) == 0 {
				keys[i][0] = byte(rng.IntN(256))
			}
			for j := 1; j < len(keys[i]); j++ {
				keys[i][j] = byte(rng.Uint32())
			}
		}
		now := int64(1000)
		for op := range 120_000 {
			if rng.IntN(4) == 0 {
				now++
			}
			if rng.IntN(50) == 0 {
				now -= int64(rng.IntN(4)) // and sometimes back
			}
			k := keys[rng.IntN(len(keys))]
			switch r := rng.IntN(1000); {
			case r < 850:
				// About 3 claims a second, living half the capacity's
				// seconds on average: more than the store holds.
				expires := now + int64(rng.IntN(ref.capacity+20)) - 2
				if rng.IntN(1000) == 0 {
					expires = math.MinInt64
				}
				got, want := mem.Claim(k, now, expires), ref.claim(k, now, expires)
				outcomes[got]++
				if got != want {
					t.Fatalf("capacity %d, op %d: Claim(%x, %d, %d) = %v, model %v", capacity, op, k[:4], now, expires, got, want)
				}
			case r < 990:
				mem.Release(k)
				delete(ref.expiry, k)
			case r < 998:
				mem.Sweep(now)
				ref.sweep(now)
			default:
				// Between half and twice the first capacity, and back.
				n := max(1, ref.capacity/2) + rng.IntN(max(1, 3*ref.capacity/2))
				if rng.IntN(2) == 0 {
					n = capacity
				}
				mem.SetCapacity(n)
				ref.setCapacity(n)
				if got, want := mem.Capacity(), ref.capacity; got != want {
					t.Fatalf("capacity %d, op %d: SetCapacity(%d) gives Capacity %d, model %d", capacity, op, n, got, want)
				}
			}
			if got, want := mem.Len(), ref.len(); got != want {
				t.Fatalf("capacity %d, op %d: Len %d, model %d", capacity, op, got, want)
			}
		}
		t.Logf("capacity %d: %d accepted, %d replayed, %d full", capacity, outcomes[nil], outcomes[replay.ErrReplayed], outcomes[replay.ErrFull])
		if outcomes[nil] == 0 || outcomes[replay.ErrReplayed] == 0 || outcomes[replay.ErrFull] == 0 {
			t.Fatalf("capacity %d: the test did not reach every outcome", capacity)
		}
	}
}
