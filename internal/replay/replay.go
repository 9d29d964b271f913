// Package replay remembers which proof-of-work stamps have been used, so that
// each is accepted at most once while it is valid.
package replay

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"slices"
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

// Claim is one claim of a batch: a key and the Unix time it expires.
type Claim struct {
	Key     Key
	Expires int64
}

// BatchClaimer is a Store that can make many claims in one exchange, such
// as one pipelined round trip to a server, for a caller that knows several
// keys it will claim. ClaimBatch sets errs[i] to what Claim(claims[i].Key,
// now, claims[i].Expires) would have returned; the claims are independent
// (one failing does not undo another) and each is atomic as Claim is.
// len(errs) must be at least len(claims). The in-process Memory store does
// not implement it: its claims cost no more one at a time.
type BatchClaimer interface {
	Store
	ClaimBatch(now int64, claims []Claim, errs []error)
}

// shards is the number of independently locked parts of a Memory store.
const shards = 64

// tableKeys is about the most keys one table of a shard holds when the
// store is full (and its keys spread evenly over the shards): a shard is
// split into as many tables as that takes, so that growing a table (which
// moves all its keys) stays short, and the shard's lock is never held for
// long. (A variable for tests.)
var tableKeys = 2048

// Memory is an in-process Store: a hash table split into shards, each with
// its own lock, so concurrent claims of different keys rarely contend.
//
// Capacity is enforced over the whole store: Memory never holds more than
// its capacity of keys, and a claim of a new key fails with ErrFull only
// when the store holds capacity keys live at that claim's now (counting
// claims in progress on other goroutines). Before it refuses a claim, a
// full store drops the expired keys of all its shards, unless it was swept
// at that now or a later one already: claims sweep a full store at most
// once a second (of a clock that goes forward), so that a store full of
// live keys refuses claims cheaply. The one tolerance: a key recorded after
// that sweep began, already expired at the refused claim's now, still
// takes room until the next sweep; only a Claim whose expires is not after
// its own now, or one made with a clock behind, records one.
//
// A shard is a few open-addressing tables with linear probing, each grown by
// half when it is three quarters full: a slot (a key and its expiry) takes
// 24 bytes, and a one-byte tag beside it (see table), so the tables take 33
// to 50 bytes per key held (with the allocator's rounding, up to 52 as
// measured while a store of the default capacity, 1,000,000, fills up, and
// 39 once it is full). Tables and home slots come from a hash of the key
// keyed with a random seed, so that nobody can choose stamps that pile up
// on one slot. Tables do not shrink: they keep the size the busiest moment
// needed, as a Go map does.
//
// A claim of a new key (every accepted stamp) reads tags, from the key's
// home to the first empty one, and no slot unless a tag matches: at the
// default capacity the tags take 1.6 MB, of which the CPU's caches keep
// much, and the slots 38 MB, of which they keep little. It then sets the
// key's tag and leaves the slot's write to the shard's next lock (see
// shard.pending), prefetching the slot's cache line meanwhile, so that the
// claim does not wait for memory.
type Memory struct {
	shards [shards]shard
	seed   uint64

	// sweepMu serializes sweeps of the whole store and changes of its
	// capacity; lastSweep is the now of the latest sweep. A shard's lock is
	// never held while sweepMu is taken.
	sweepMu   sync.Mutex
	lastSweep atomic.Int64

	capacity atomic.Int64
	_        [56]byte     // keeps held, written by every new claim, apart
	held     atomic.Int64 // keys held, expired ones until swept, and claims in progress
	_        [56]byte
}

type shard struct {
	mu     sync.Mutex
	tables []table // a power of two of them

	// pending is the slot write of the last new key claimed, done by the
	// next holder of mu (see lock): the key's tag is set at once, and its
	// slot, whose cache line is prefetched when the claim returns, is
	// written by then. Writing it before mu's release instead would make
	// that release, a locked instruction, wait for the line to come from
	// memory. It also makes a shard exactly one cache line.
	pending pendingWrite
}

// pendingWrite is a slot write put off until the next lock of its shard.
type pendingWrite struct {
	slot *entry // nil if none
	e    entry
}

// lock locks s and completes its pending slot write.
func (s *shard) lock() {
	s.mu.Lock()
	if p := &s.pending; p.slot != nil {
		*p.slot = p.e
		p.slot = nil
	}
}

// table is an open-addressing hash table with linear probing. Beside each
// slot it keeps a tag: 0 for an empty slot, else 8 bits of the hash of the
// slot's key (tagOf). Probes read the tags and only the slots whose tag is
// the key's, so that a claim of a new key reads slots only for the one in
// 255 keys of its run whose tag happens to match.
type table struct {
	slots []entry // empty until the first key
	tags  []uint8 // as long as slots
	n     int     // slots in use
}

// entry is one slot of a table: a key and when it expires. A slot whose
// tag is 0 is empty, whatever it holds.
type entry struct {
	key     Key
	expires int64
}

// vacant is the expiry that marked an empty slot before tags did. A claim
// that expires at vacant is still recorded as expiring one second later, as
// it always was: both are in the past of any meaningful clock.
const vacant = math.MinInt64

// tagOf returns the tag of a key with hash h: bits that neither choose its
// table (the low bits) nor its home slot (the high bits), never 0.
func tagOf(h uint64) uint8 {
	if t := uint8(h >> 32); t != 0 {
		return t
	}
	return 1
}

// minSlots is the size of a table at its first key.
const minSlots = 16

// minCapacity is the capacity a store is given for a capacity below 1: the
// 64 keys (one per shard) that NewMemory(0) has always held.
const minCapacity = shards

// NewMemory returns a store for up to capacity live keys; a capacity below
// 1 is taken as 64.
func NewMemory(capacity int) *Memory {
	capacity = capacityOrMin(capacity)
	var seed [8]byte
	_, _ = rand.Read(seed[:]) // crypto/rand.Read does not fail
	m := &Memory{seed: binary.LittleEndian.Uint64(seed[:])}
	m.capacity.Store(int64(capacity))
	m.lastSweep.Store(math.MinInt64) // no sweep yet
	n := tablesFor(capacity)
	for i := range m.shards {
		m.shards[i].tables = make([]table, n)
	}
	return m
}

// capacityOrMin returns n, or minCapacity if n is below 1.
func capacityOrMin(n int) int {
	if n < 1 {
		return minCapacity
	}
	return n
}

// tablesFor returns how many tables a shard is split into for a store of
// the given capacity: enough for its share of the capacity, tableKeys each.
func tablesFor(capacity int) int {
	per := (capacity + shards - 1) / shards
	n := 1
	for n*tableKeys < per {
		n *= 2
	}
	return n
}

// Capacity returns the most keys the store holds.
func (m *Memory) Capacity() int { return int(m.capacity.Load()) }

// SetCapacity changes the most keys the store holds, as for a config reload;
// a capacity below 1 is taken as 64. It is safe to call concurrently with
// every other method. Lowering the capacity below the keys held evicts none
// of them: claims of new keys fail with ErrFull until enough have expired
// or been released. Raising it splits each shard's keys into more tables if
// the new capacity needs them, a shard at a time, so that growing a table
// stays as short as in a store made with that capacity.
func (m *Memory) SetCapacity(n int) {
	n = capacityOrMin(n)
	m.sweepMu.Lock()
	defer m.sweepMu.Unlock()
	tables := tablesFor(n)
	for i := range m.shards {
		s := &m.shards[i]
		s.lock()
		if len(s.tables) < tables {
			m.split(s, tables)
		}
		s.mu.Unlock()
	}
	m.capacity.Store(int64(n))
}

// split moves s's keys into n tables; s.mu must be held.
func (m *Memory) split(s *shard, n int) {
	old := s.tables
	s.tables = make([]table, n)
	for i := range old {
		for j, tag := range old[i].tags {
			if tag != 0 {
				e := &old[i].slots[j]
				h := m.hash(&e.key)
				t := s.table(h)
				if (t.n+1)*4 > len(t.slots)*3 {
					m.grow(t)
				}
				k, _ := t.find(&e.key, h)
				t.slots[k], t.tags[k] = *e, tag
				t.n++
			}
		}
	}
}

// table returns the table of s for a key with hash h; s.mu must be held.
func (s *shard) table(h uint64) *table { return &s.tables[h&uint64(len(s.tables)-1)] }

// Len returns the number of keys currently held, expired ones included
// until they are swept (and claims in progress on other goroutines).
func (m *Memory) Len() int { return int(m.held.Load()) }

// reserve counts a new key in held unless the store is at its capacity.
func (m *Memory) reserve() bool {
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
// where its probe ends and false. t.slots must not be empty, and the
// shard's pending write must be done.
func (t *table) find(key *Key, h uint64) (int, bool) {
	slots, tags := t.slots, t.tags[:len(t.slots)]
	tag := tagOf(h)
	for i := t.home(h); ; {
		switch c := tags[i]; {
		case c == 0:
			return i, false
		case c == tag && slots[i].key == *key:
			return i, true
		}
		if i++; i == len(tags) {
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
	for swept := false; ; swept = true {
		s.lock()
		err := m.claim(s, &key, h, now, expires)
		s.mu.Unlock()
		if err != ErrFull || swept || !m.sweepFull(now) {
			return err
		}
	}
}

// claim claims key, whose hash is h, in s; s.mu must be held.
func (m *Memory) claim(s *shard, key *Key, h uint64, now, expires int64) error {
	t := s.table(h)
	i := -1
	if len(t.slots) > 0 {
		j, found := t.find(key, h)
		if found {
			e := &t.slots[j]
			if e.expires > now {
				return ErrReplayed
			}
			e.expires = expires
			return nil
		}
		i = j
	}
	if !m.reserve() {
		return ErrFull
	}
	if (t.n+1)*4 > len(t.slots)*3 {
		m.grow(t)
		i, _ = t.find(key, h)
	}
	t.tags[i] = tagOf(h)
	t.n++
	slot := &t.slots[i]
	s.pending = pendingWrite{slot, entry{*key, expires}}
	prefetch(slot)
	return nil
}

// sweepFull sweeps the whole store for a claim that found it full at now,
// unless it was swept at now or later already, and reports whether it did
// (or waited for another goroutine's sweep), so that the claim is worth
// trying again. A store full of live keys thus refuses claims cheaply: a
// claim sweeps it at most once a second of a clock that goes forward. (If
// the clock goes back, the next Sweep, whose now marks the latest sweep
// whatever it was, lets claims sweep again.)
func (m *Memory) sweepFull(now int64) bool {
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

// Release implements Store.
func (m *Memory) Release(key Key) {
	h := m.hash(&key)
	s := m.shardOf(key)
	s.lock()
	defer s.mu.Unlock()
	t := s.table(h)
	if len(t.slots) == 0 {
		return
	}
	i, found := t.find(&key, h)
	if !found {
		return
	}
	// Move back every key after i in its run that may not be probed past
	// an empty slot at i, so that no lookup stops short (no tombstones).
	slots, tags := t.slots, t.tags
	for j := i; ; {
		if j++; j == len(slots) {
			j = 0
		}
		if tags[j] == 0 {
			break
		}
		k := t.home(m.hash(&slots[j].key))
		// The key at j may move to i unless its home lies cyclically in
		// (i, j].
		if i <= j && (k <= i || k > j) || i > j && k <= i && k > j {
			slots[i], tags[i] = slots[j], tags[j]
			i = j
		}
	}
	tags[i] = 0
	t.n--
	m.held.Add(-1)
}

// Sweep drops every expired key, and marks the store swept at now (see
// Memory). Claim sweeps a full store itself; calling Sweep periodically
// makes room before claims have to.
func (m *Memory) Sweep(now int64) {
	m.sweepMu.Lock()
	defer m.sweepMu.Unlock()
	m.sweepAll(now)
}

// sweepAll drops the expired keys of every shard, locking one at a time;
// m.sweepMu must be held.
func (m *Memory) sweepAll(now int64) {
	for i := range m.shards {
		s := &m.shards[i]
		s.lock()
		for j := range s.tables {
			m.held.Add(-int64(m.sweepTable(&s.tables[j], now)))
		}
		s.mu.Unlock()
	}
	m.lastSweep.Store(now)
}

// sweepTable drops t's expired keys and returns how many. It rebuilds the
// table in place if it holds any: from just after an empty slot, it takes
// every key out and puts the live ones back, each landing at or before
// where it was.
func (m *Memory) sweepTable(t *table, now int64) int {
	slots, tags := t.slots, t.tags[:len(t.slots)]
	i := 0
	for i < len(slots) && (tags[i] == 0 || slots[i].expires > now) {
		i++
	}
	if i == len(slots) {
		return 0 // nothing expired
	}
	start := 0
	for tags[start] != 0 {
		start++
	}
	expired := 0
	for j, k := start, 0; k < len(slots); k++ {
		if j++; j == len(slots) {
			j = 0
		}
		tag := tags[j]
		if tag == 0 {
			continue
		}
		tags[j] = 0
		e := slots[j]
		if e.expires <= now {
			expired++
			continue
		}
		at, _ := t.find(&e.key, m.hash(&e.key))
		slots[at], tags[at] = e, tag
	}
	t.n -= expired
	return expired
}

// grow moves t's keys to a table about half as large again.
func (m *Memory) grow(t *table) {
	old, oldTags := t.slots, t.tags
	// Take every slot of the block the allocator gives, which is rounded up
	// to its size class (to whole pages for tables over 32 KiB, which would
	// otherwise leave up to a fifth of the block unused).
	slots := slices.Grow([]entry(nil), max(minSlots, len(old)+len(old)/2))
	t.slots = slots[:cap(slots)]
	t.tags = make([]uint8, len(t.slots))
	for i, tag := range oldTags {
		if tag != 0 {
			e := &old[i]
			j, _ := t.find(&e.key, m.hash(&e.key))
			t.slots[j], t.tags[j] = *e, tag
		}
	}
}

// Interface guard
var _ Store = (*Memory)(nil)
