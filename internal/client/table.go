package client

import (
	"sync"

	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
)

// request is one stamped wallet line: a single request object or a batch.
type request struct {
	// Set before the request is shared, then read-only.
	seq     uint64       // position in the wallet's stream
	line    []byte       // the line as the wallet wrote it, without '\n'
	scan    rpcline.Line // its objects; slices alias line
	methods []string     // method of each object
	ids     []string     // raw JSON id of each object that has one

	// Guarded by the table's mutex.
	live bool

	// What the last stamps were minted with, and how often the request was
	// sent; guarded by mu (minter, writer and server reader all look).
	mu       sync.Mutex
	works    []uint64 // work claimed by each object's stamp
	times    []int64  // time of each object's stamp
	resource string
	attempts int
}

// minted records the stamps just minted for r.
func (r *request) minted(resource string, works []uint64, times []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resource, r.works, r.times = resource, works, times
}

// unstamped reports whether r was last sent without stamps, as free.
func (r *request) unstamped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.works {
		if w != 0 {
			return false
		}
	}
	return len(r.works) > 0
}

// guessed reports whether r was last sent on the proxy's guess that the
// price is nothing or has fallen: without stamps, as free, or with token
// stamps (work 1) that ask whether the price fell. Its refusal is the
// server's answer to the guess, not a failed try.
func (r *request) guessed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.works {
		if w > 1 {
			return false
		}
	}
	return len(r.works) > 0
}

// attempt returns how many times r was sent or scheduled for sending.
func (r *request) attempt() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

// nextAttempt counts one more sending of r and returns the count.
func (r *request) nextAttempt() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	return r.attempts
}

func (r *request) size() int { return len(r.line) + 64*len(r.scan.Objects) }

// table tracks the stamped requests that still await their answer, keyed
// by the raw JSON bytes of their ids, in the order they were sent. It
// forgets the oldest requests beyond its bounds: an answer that is never
// matched (an id the server re-encoded, a notification) cannot make it
// grow without limit.
type table struct {
	mu       sync.Mutex
	byID     map[string][]*request
	fifo     []*request
	head     int
	live     int
	bytes    int
	maxLive  int
	maxBytes int
}

func newTable(maxLive, maxBytes int) *table {
	return &table{byID: map[string][]*request{}, maxLive: maxLive, maxBytes: maxBytes}
}

// add registers r under each of its ids.
func (t *table) add(r *request) {
	if len(r.ids) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r.live = true
	for _, id := range r.ids {
		t.byID[id] = append(t.byID[id], r)
	}
	if len(t.fifo)-t.head >= 2*t.maxLive+64 {
		t.dropDead()
	}
	t.fifo = append(t.fifo, r)
	t.live++
	t.bytes += r.size()
	for t.live > t.maxLive || (t.bytes > t.maxBytes && t.live > 1) {
		t.evictOldest()
	}
}

func (t *table) evictOldest() {
	for t.head < len(t.fifo) {
		r := t.fifo[t.head]
		t.fifo[t.head] = nil
		t.head++
		if r.live {
			t.removeLocked(r)
			break
		}
	}
	t.compact()
}

// compact drops the consumed front of the FIFO once it dominates.
func (t *table) compact() {
	if t.head > 64 && t.head*2 > len(t.fifo) {
		n := copy(t.fifo, t.fifo[t.head:])
		clear(t.fifo[n:])
		t.fifo = t.fifo[:n]
		t.head = 0
	}
}

// dropDead removes answered requests from the whole FIFO: they pile up
// behind an old request that is never answered.
func (t *table) dropDead() {
	n := 0
	for _, r := range t.fifo[t.head:] {
		if r.live {
			t.fifo[n] = r
			n++
		}
	}
	clear(t.fifo[n:])
	t.fifo = t.fifo[:n]
	t.head = 0
}

// lookup returns the oldest live request with raw id, or nil.
func (t *table) lookup(id []byte) *request {
	if id == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rs := t.byID[string(id)]; len(rs) > 0 {
		return rs[0]
	}
	return nil
}

// empty reports whether no request awaits an answer.
func (t *table) empty() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live == 0
}

// remove forgets r: its answer has arrived.
func (t *table) remove(r *request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.live {
		t.removeLocked(r)
	}
	// Drop answered requests from the front of the FIFO.
	for t.head < len(t.fifo) && !t.fifo[t.head].live {
		t.fifo[t.head] = nil
		t.head++
	}
	t.compact()
}

func (t *table) removeLocked(r *request) {
	r.live = false
	t.live--
	t.bytes -= r.size()
	for _, id := range r.ids {
		rs := t.byID[id]
		for i, x := range rs {
			if x == r {
				rs = append(rs[:i], rs[i+1:]...)
				break
			}
		}
		if len(rs) == 0 {
			delete(t.byID, id)
		} else {
			t.byID[id] = rs
		}
	}
}

// len returns the number of requests awaiting an answer.
func (t *table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live
}
