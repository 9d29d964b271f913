package redisstore

import (
	"sync"
	"sync/atomic"
)

// health tracks whether commands succeed, and calls the hook on each
// transition.
//
// Commands finish out of the order they were sent in (a claim answered
// just before Redis died may be seen after one that failed), so an outcome
// decides only if its command began after the latest transition: a reply
// that was on its way when claims started failing does not announce a
// recovery, nor does a failure sent before Redis came back announce an
// outage. Each transition thus follows at least one command that began
// after the previous one.
type health struct {
	up      atomic.Bool
	seq     atomic.Uint64 // commands begun
	since   atomic.Uint64 // seq at the latest transition
	outages atomic.Uint64

	mu   sync.Mutex // serializes transitions and the hook's calls
	hook func(up bool, err error)
}

// init starts up, with hook to call on transitions (nil for none).
func (h *health) init(hook func(up bool, err error)) {
	h.hook = hook
	h.up.Store(true)
}

// begin numbers a command about to be sent.
func (h *health) begin() uint64 { return h.seq.Add(1) }

// report records the outcome of command seq: err is nil if Redis answered
// as it should.
func (h *health) report(seq uint64, err error) {
	ok := err == nil
	if h.up.Load() == ok || seq <= h.since.Load() {
		return // the common case: no change
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.up.Load() == ok || seq <= h.since.Load() {
		return
	}
	h.since.Store(h.seq.Load())
	h.up.Store(ok)
	if !ok {
		h.outages.Add(1)
	}
	if h.hook != nil {
		h.hook(ok, err)
	}
}
