// Package replay remembers which proof-of-work stamps have been used, so that
// each is accepted at most once while it is valid.
package replay

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Key identifies a stamp: 16 bytes of its digest.
type Key [16]byte

// Errors a Store's Claim returns.
var (
	// ErrReplayed means the key was claimed before and has not expired.
	ErrReplayed = errors.New("stamp already used")
	// ErrFull means the store holds as many live keys as it may; the key
	// was not recorded. Live keys are never evicted to make room, since
	// that would let their stamps be replayed.
	ErrFull = errors.New("replay store full")
)

// Store records claimed keys until they expire. Implementations must make
// Claim atomic: of several concurrent Claims of one key, exactly one
// succeeds.
type Store interface {
	// Claim records key as used until Unix time expires. It fails with
	// ErrReplayed if key is already recorded and live at Unix time now, and
	// with ErrFull if there is no room.
	Claim(key Key, now, expires int64) error
	// Release forgets key, undoing a Claim whose request was not forwarded.
	Release(key Key)
}

// shards is the number of independently locked parts of a Memory store.
const shards = 64

// Memory is an in-process Store: a map split into shards, each with its own
// lock, so concurrent claims of different keys rarely contend. Each shard
// holds at most its share of the capacity; a full shard drops its expired
// keys before it refuses a claim.
type Memory struct {
	shards   [shards]shard
	perShard int
	live     atomic.Int64
}

type shard struct {
	mu        sync.Mutex
	expiry    map[Key]int64
	lastSweep int64    // Unix time of the last sweep
	_         [40]byte // keeps shards on separate cache lines
}

// NewMemory returns a store for up to capacity live keys (at least one per
// shard).
func NewMemory(capacity int) *Memory {
	per := (capacity + shards - 1) / shards
	if per < 1 {
		per = 1
	}
	m := &Memory{perShard: per}
	for i := range m.shards {
		m.shards[i].expiry = make(map[Key]int64)
	}
	return m
}

// Capacity returns the most live keys the store holds.
func (m *Memory) Capacity() int { return m.perShard * shards }

// Len returns the number of keys currently held, expired ones included
// until they are swept.
func (m *Memory) Len() int { return int(m.live.Load()) }

func (m *Memory) shardOf(key Key) *shard { return &m.shards[key[0]%shards] }

// Claim implements Store.
func (m *Memory) Claim(key Key, now, expires int64) error {
	s := m.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.expiry[key]; ok {
		if exp > now {
			return ErrReplayed
		}
		s.expiry[key] = expires
		return nil
	}
	if len(s.expiry) >= m.perShard {
		// Sweep a full shard at most once a second, so that a store full of
		// live keys refuses claims cheaply.
		if s.lastSweep != now {
			m.sweep(s, now)
		}
		if len(s.expiry) >= m.perShard {
			return ErrFull
		}
	}
	s.expiry[key] = expires
	m.live.Add(1)
	return nil
}

// Release implements Store.
func (m *Memory) Release(key Key) {
	s := m.shardOf(key)
	s.mu.Lock()
	if _, ok := s.expiry[key]; ok {
		delete(s.expiry, key)
		m.live.Add(-1)
	}
	s.mu.Unlock()
}

// Sweep drops every expired key. Claim sweeps a shard when it is full;
// calling Sweep periodically returns memory sooner.
func (m *Memory) Sweep(now int64) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		m.sweep(s, now)
		s.mu.Unlock()
	}
}

// sweep drops s's expired keys; s.mu must be held.
func (m *Memory) sweep(s *shard, now int64) {
	for k, exp := range s.expiry {
		if exp <= now {
			delete(s.expiry, k)
			m.live.Add(-1)
		}
	}
	s.lastSweep = now
}
