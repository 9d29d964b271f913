package replay_test

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
)

// store is what the tests and the comparison benchmarks use of a replay
// store: Memory, or mapStore, the baseline it is measured against.
type store interface {
	replay.Store
	Sweep(now int64)
	Len() int
	Capacity() int
	SetCapacity(n int)
}

// impl is a store implementation under test.
type impl struct {
	name string
	new  func(capacity int) store
}

// memoryImpl is Memory, the hand-written table.
func memoryImpl() impl {
	return impl{"table", func(n int) store { return replay.NewMemory(n) }}
}

// impls returns the implementations the model test and the comparison
// benchmarks run: Memory and the map baseline.
func impls() []impl {
	return []impl{memoryImpl(), {"map", func(n int) store { return newMapStore(n) }}}
}

// mapStore is the baseline Memory is measured against (BenchmarkCompare),
// and held to the same model (TestMemoryMatchesModel): the same 64 shards
// chosen by the key's first byte, the same capacity over the whole store
// and the same sweeps, with each shard a mutex and a Go map instead of
// open-addressing tables.
type mapStore struct {
	shards [64]mapShard

	sweepMu   sync.Mutex
	lastSweep atomic.Int64

	capacity atomic.Int64
	_        [56]byte
	held     atomic.Int64
	_        [56]byte
}

type mapShard struct {
	mu     sync.Mutex
	expiry map[replay.Key]int64
	_      [48]byte // keeps shards on separate cache lines
}

// newMapStore returns a mapStore for capacity keys; a capacity below 1 is
// taken as 64, as by NewMemory.
func newMapStore(capacity int) *mapStore {
	m := &mapStore{}
	m.SetCapacity(capacity)
	m.lastSweep.Store(math.MinInt64)
	for i := range m.shards {
		m.shards[i].expiry = map[replay.Key]int64{}
	}
	return m
}

func (m *mapStore) Capacity() int { return int(m.capacity.Load()) }

func (m *mapStore) SetCapacity(n int) {
	if n < 1 {
		n = 64
	}
	m.capacity.Store(int64(n))
}

func (m *mapStore) Len() int { return int(m.held.Load()) }

func (m *mapStore) reserve() bool {
	for {
		n := m.held.Load()
		if n >= m.capacity.Load() {
			return false
		}
		if m.held.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (m *mapStore) Claim(key replay.Key, now, expires int64) error {
	s := &m.shards[key[0]%64]
	for swept := false; ; swept = true {
		s.mu.Lock()
		err := m.claim(s, key, now, expires)
		s.mu.Unlock()
		if err != replay.ErrFull || swept || !m.sweepFull(now) {
			return err
		}
	}
}

func (m *mapStore) claim(s *mapShard, key replay.Key, now, expires int64) error {
	if exp, ok := s.expiry[key]; ok {
		if exp > now {
			return replay.ErrReplayed
		}
		s.expiry[key] = expires
		return nil
	}
	if !m.reserve() {
		return replay.ErrFull
	}
	s.expiry[key] = expires
	return nil
}

func (m *mapStore) sweepFull(now int64) bool {
	if m.lastSweep.Load() >= now {
		return false
	}
	m.sweepMu.Lock()
	defer m.sweepMu.Unlock()
	if m.lastSweep.Load() < now {
		m.sweepAll(now)
	}
	return true
}

func (m *mapStore) Release(key replay.Key) {
	s := &m.shards[key[0]%64]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.expiry[key]; ok {
		delete(s.expiry, key)
		m.held.Add(-1)
	}
}

func (m *mapStore) Sweep(now int64) {
	m.sweepMu.Lock()
	defer m.sweepMu.Unlock()
	m.sweepAll(now)
}

func (m *mapStore) sweepAll(now int64) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		dropped := 0
		for k, exp := range s.expiry {
			if exp <= now {
				delete(s.expiry, k)
				dropped++
			}
		}
		m.held.Add(-int64(dropped))
		s.mu.Unlock()
	}
	m.lastSweep.Store(now)
}
