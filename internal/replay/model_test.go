package replay_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
)

// model is the reference for Memory's behaviour: a map per shard, as
// Memory was first written.
type model struct {
	perShard int
	shards   [64]struct {
		expiry    map[replay.Key]int64
		lastSweep int64
	}
}

func newModel(capacity int) *model {
	m := &model{perShard: max(1, (capacity+63)/64)}
	for i := range m.shards {
		m.shards[i].expiry = map[replay.Key]int64{}
	}
	return m
}

func (m *model) claim(key replay.Key, now, expires int64) error {
	s := &m.shards[key[0]%64]
	if exp, ok := s.expiry[key]; ok {
		if exp > now {
			return replay.ErrReplayed
		}
		s.expiry[key] = expires
		return nil
	}
	if len(s.expiry) >= m.perShard {
		if s.lastSweep != now {
			m.sweepShard(key[0]%64, now)
		}
		if len(s.expiry) >= m.perShard {
			return replay.ErrFull
		}
	}
	s.expiry[key] = expires
	return nil
}

func (m *model) sweepShard(i byte, now int64) {
	s := &m.shards[i]
	for k, exp := range s.expiry {
		if exp <= now {
			delete(s.expiry, k)
		}
	}
	s.lastSweep = now
}

func (m *model) len() int {
	n := 0
	for i := range m.shards {
		n += len(m.shards[i].expiry)
	}
	return n
}

// TestMemoryMatchesModel runs random claims, releases and sweeps against
// Memory and the model, with few shards in use and few distinct keys, so
// that tables grow, wrap around, fill up, and lose keys from the middle of
// their runs.
func TestMemoryMatchesModel(t *testing.T) {
	outcomes := map[error]int{}
	// Tables of at most 64 keys: capacities above 64 per shard split each
	// shard into several tables.
	defer replay.SetTableKeys(64)()
	for _, capacity := range []int{64, 64 * 5, 64 * 40, 64 * 300} {
		rng := rand.New(rand.NewPCG(uint64(capacity), 7))
		mem, ref := replay.NewMemory(capacity), newModel(capacity)
		keys := make([]replay.Key, 4*capacity/64+8)
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
			switch r := rng.IntN(100); {
			case r < 80:
				expires := now + int64(rng.IntN(20+capacity/32)) - 2
				if rng.IntN(1000) == 0 {
					expires = math.MinInt64
				}
				got, want := mem.Claim(k, now, expires), ref.claim(k, now, expires)
				outcomes[got]++
				if got != want {
					t.Fatalf("capacity %d, op %d: Claim(%x, %d, %d) = %v, model %v", capacity, op, k[:4], now, expires, got, want)
				}
			case r < 95:
				mem.Release(k)
				delete(ref.shards[k[0]%64].expiry, k)
			default:
				mem.Sweep(now)
				for i := range ref.shards {
					ref.sweepShard(byte(i), now)
				}
			}
			if op%16 != 0 {
				continue // Len locks every shard: check it now and then
			}
			if got, want := mem.Len(), ref.len(); got != want {
				t.Fatalf("capacity %d, op %d: Len %d, model %d", capacity, op, got, want)
			}
		}
		t.Logf("capacity %d: %d accepted, %d replayed, %d full so far", capacity, outcomes[nil], outcomes[replay.ErrReplayed], outcomes[replay.ErrFull])
	}
	t.Logf("claims: %d accepted, %d replayed, %d full", outcomes[nil], outcomes[replay.ErrReplayed], outcomes[replay.ErrFull])
	if outcomes[nil] == 0 || outcomes[replay.ErrReplayed] == 0 || outcomes[replay.ErrFull] == 0 {
		t.Fatal("the test did not reach every outcome")
	}
}
