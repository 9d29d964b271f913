package client

import (
	"sync"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// maxLearnedMethods bounds how many per-method prices Knowledge remembers.
const maxLearnedMethods = 1024

// Knowledge is what the proxy believes about one server: the work each
// method costs, the resource name stamps must carry and how far the
// server's clock is from ours. It starts from guesses and is corrected by
// the data of the server's refusals. It is safe for concurrent use and is
// shared by every connection to the server.
type Knowledge struct {
	mu          sync.RWMutex
	resource    string
	offset      time.Duration
	window      int64 // seconds a stamp stays valid; 0 while unknown
	skew        int64 // seconds a stamp may be dated ahead
	defaultWork uint64
	prices      map[string]uint64 // confirmed prices: told or accepted
	now         func() time.Time
}

// NewKnowledge returns Knowledge that guesses resource and defaultWork for
// every method until the server says otherwise.
func NewKnowledge(resource string, defaultWork uint64) *Knowledge {
	return &Knowledge{resource: resource, defaultWork: defaultWork, prices: map[string]uint64{}, now: time.Now}
}

// Confirmed reports whether the price of method is known: the server
// stated it in a refusal, or accepted a stamp at it.
func (k *Knowledge) Confirmed(method string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	_, ok := k.prices[method]
	return ok
}

// Confirm records that the server accepted a stamp of work for method,
// unless its price is already known.
func (k *Knowledge) Confirm(method string, work uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.prices[method]; !ok {
		k.setPrice(method, work)
	}
}

// Limits returns how long the server accepts a stamp after its time and how
// far ahead it may be dated, in seconds, once a refusal has told them.
func (k *Knowledge) Limits() (window, skew int64, ok bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.window, k.skew, k.window > 0
}

// Price returns the work a stamp for method should claim.
func (k *Knowledge) Price(method string) uint64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if w, ok := k.prices[method]; ok {
		return w
	}
	return k.defaultWork
}

func (k *Knowledge) setPrice(method string, work uint64) {
	if _, ok := k.prices[method]; !ok && len(k.prices) >= maxLearnedMethods {
		return
	}
	k.prices[method] = work
}

// Resource returns the resource name stamps are minted for.
func (k *Knowledge) Resource() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.resource
}

// ServerTime returns the current time on the server's clock, as far as
// we know it, in Unix seconds: the time to date a stamp with.
func (k *Knowledge) ServerTime() int64 {
	k.mu.RLock()
	off := k.offset
	k.mu.RUnlock()
	return k.now().Add(off).Unix()
}

// Learn updates k from a refusal's data received at local time at.
// It reports whether anything changed.
func (k *Knowledge) Learn(r *stamp.Rejection, at time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	changed := false
	if r.Resource != "" && r.Resource != k.resource && stamp.ValidateResource(r.Resource) == nil {
		k.resource = r.Resource
		changed = true
	}
	if r.Time > 0 {
		off := time.Duration(r.Time-at.Unix()) * time.Second
		if off != k.offset {
			k.offset = off
			changed = true
		}
	}
	if r.Window > 0 && (r.Window != k.window || r.Skew != k.skew) {
		k.window, k.skew = r.Window, max(r.Skew, 0)
		changed = true
	}
	if r.Method != "" && r.Reason.Priced() {
		if old, ok := k.prices[r.Method]; !ok || old != r.Price {
			k.setPrice(r.Method, r.Price)
			changed = true
		}
	}
	return changed
}
