// Package replay remembers which proof-of-work stamps have been used, so that
// each is accepted at most once while it is valid.
package replay

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"sync"
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

// tableKeys is about the most keys one table of a shard holds when the
// shard is full: a shard is split into as many tables as that takes, so
// that growing a table (which moves all its keys) stays short, and the
// shard's lock is never held for long. (A variable for tests.)
var tableKeys = 4096

// Memory is an in-process Store: a hash table split into shards, each with
// its own lock, so concurrent claims of different keys rarely contend. Each
// shard holds at most its share of the capacity; a full shard drops its
// expired keys before it refuses a claim.
//
// A shard is a few open-addressing tables with linear probing, each grown by
// half when it is three quarters full: a slot (a key and its expiry) takes
// 24 bytes, so the tables take 32 to 48 bytes per key held. A claim of a
// new key (every accepted stamp) reads the slots from the key's home to the
// first empty one, a few adjacent cache lines. Tables and home slots come
// from a hash of the key keyed with a random seed, so that nobody can choose
// stamps that pile up on one slot. Tables do not shrink: they keep the size
// the busiest moment needed, as a Go map does.
type Memory struct {
	shards   [shards]shard
	perShard int
	tables   uint64 // tables per shard, a power of two
	seed     uint64
}

type shard struct {
	mu        sync.Mutex
	tables    []table
	n         int      // keys held, expired ones included until swept
	lastSweep int64    // Unix time of the last sweep
	_         [16]byte // keeps shards on separate cache lines
}

// table is an open-addressing hash table with linear probing.
type table struct {
	slots []entry // empty until the first key
	n     int     // slots in use
}

// entry is one slot of a table: a key and when it expires.
type entry struct {
	key Key
	x   int64 // the expiry with its sign bit flipped: 0 marks an empty slot
}

// vacant is the expiry that marks an empty slot. A claim that expires at
// vacant is recorded as expiring one second later: both are in the past of
// any meaningful clock.
const vacant = math.MinInt64

func (e *entry) empty() bool   { return e.x == 0 }
func (e *entry) expiry() int64 { return e.x ^ vacant }

// minSlots is the size of a table at its first key.
const minSlots = 16

// NewMemory returns a store for up to capacity live keys (at least one per
// shard).
func NewMemory(capacity int) *Memory {
	per := (capacity + shards - 1) / shards
	if per < 1 {
		per = 1
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:]) // crypto/rand.Read does not fail
	m := &Memory{perShard: per, tables: 1, seed: binary.LittleEndian.Uint64(seed[:])}
	for m.tables*uint64(tableKeys) < uint64(per) {
		m.tables *= 2
	}
	for i := range m.shards {
		m.shards[i].tables = make([]table, m.tables)
	}
	return m
}

// Capacity returns the most live keys the store holds.
func (m *Memory) Capacity() int { return m.perShard * shards }

// Len returns the number of keys currently held, expired ones included
// until they are swept.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

func (m *Memory) shardOf(key Key) *shard { return &m.shards[key[0]%shards] }

// hash returns key's hash: its low bits choose the table of a shard, its
// high bits the home slot in the table.
func (m *Memory) hash(key *Key) uint64 {
	h := (binary.LittleEndian.Uint64(key[:8]) ^ m.seed) * 0x9e3779b97f4a7c15
	h = (h ^ h>>29 ^ binary.LittleEndian.Uint64(key[8:])) * 0xbf58476d1ce4e5b9
	return h ^ h>>32
}

// home returns the first slot of a key with hash h in t.
func (t *table) home(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(t.slots)))
	return int(hi)
}

// find returns the slot holding key, whose hash is h, or the empty slot
// where its probe ends and false. t.slots must not be empty.
func (t *table) find(key *Key, h uint64) (int, bool) {
	slots := t.slots
	for i := t.home(h); ; {
		e := &slots[i]
		if e.empty() {
			return i, false
		}
		if e.key == *key {
			return i, true
		}
		if i++; i == len(slots) {
			i = 0
		}
	}
}

// Claim implements Store.
func (m *Memory) Claim(key Key, now, expires int64) error {
	if expires == vacant {
		expires++
	}
	h := m.hash(&key)
	s := m.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &s.tables[h&(m.tables-1)]
	i := -1
	if len(t.slots) > 0 {
		j, found := t.find(&key, h)
		if found {
			e := &t.slots[j]
			if e.expiry() > now {
				return ErrReplayed
			}
			e.x = expires ^ vacant
			return nil
		}
		i = j
	}
	if s.n >= m.perShard {
		// Sweep a full shard at most once a second, so that a store full of
		// live keys refuses claims cheaply.
		if s.lastSweep != now {
			m.sweep(s, now)
			i = -1 // keys have moved
		}
		if s.n >= m.perShard {
			return ErrFull
		}
	}
	if (t.n+1)*4 > len(t.slots)*3 {
		m.grow(t)
		i = -1
	}
	if i < 0 {
		i, _ = t.find(&key, h)
	}
	t.slots[i] = entry{key, expires ^ vacant}
	t.n++
	s.n++
	return nil
}

// Release implements Store.
func (m *Memory) Release(key Key) {
	h := m.hash(&key)
	s := m.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &s.tables[h&(m.tables-1)]
	if len(t.slots) == 0 {
		return
	}
	i, found := t.find(&key, h)
	if !found {
		return
	}
	// Move back every key after i in its run that may not be probed past
	// an empty slot at i, so that no lookup stops short (no tombstones).
	slots := t.slots
	for j := i; ; {
		if j++; j == len(slots) {
			j = 0
		}
		if slots[j].empty() {
			break
		}
		k := t.home(m.hash(&slots[j].key))
		// The key at j may move to i unless its home lies cyclically in
		// (i, j].
		if i <= j && (k <= i || k > j) || i > j && k <= i && k > j {
			slots[i] = slots[j]
			i = j
		}
	}
	slots[i] = entry{}
	t.n--
	s.n--
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
	s.lastSweep = now
	for i := range s.tables {
		dropped := m.sweepTable(&s.tables[i], now)
		s.n -= dropped
	}
}

// sweepTable drops t's expired keys and returns how many. It rebuilds the
// table in place: from just after an empty slot, it takes every key out and
// puts the live ones back, each landing at or before where it was.
func (m *Memory) sweepTable(t *table, now int64) int {
	expired := 0
	for i := range t.slots {
		if e := &t.slots[i]; !e.empty() && e.expiry() <= now {
			expired++
		}
	}
	if expired == 0 {
		return 0
	}
	slots := t.slots
	start := 0
	for !slots[start].empty() {
		start++
	}
	for k := 1; k <= len(slots); k++ {
		j := (start + k) % len(slots)
		e := slots[j]
		if e.empty() {
			continue
		}
		slots[j] = entry{}
		if e.expiry() <= now {
			t.n--
			continue
		}
		i, _ := t.find(&e.key, m.hash(&e.key))
		slots[i] = e
	}
	return expired
}

// grow moves t's keys to a table half as large again.
func (m *Memory) grow(t *table) {
	old := t.slots
	t.slots = make([]entry, max(minSlots, len(old)+len(old)/2))
	for i := range old {
		if e := &old[i]; !e.empty() {
			j, _ := t.find(&e.key, m.hash(&e.key))
			t.slots[j] = *e
		}
	}
}
