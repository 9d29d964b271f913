package client

import (
	"math"
	"sync"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/methodcost"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// maxLearnedMethods bounds how many per-method prices Knowledge remembers.
const maxLearnedMethods = 1024

// minProbeInterval is the least time between a refusal that names a unit
// price and the first token stamp that asks whether it has fallen.
const minProbeInterval = time.Second

// Knowledge is what the proxy believes about one server: the work each
// method costs, the resource name stamps must carry and how far the
// server's clock is from ours. It starts from guesses and is corrected by
// the data of the server's refusals. It is safe for concurrent use and is
// shared by every connection to the server.
type Knowledge struct {
	mu          sync.RWMutex
	resource    string
	offset      time.Duration
	window      int64             // seconds a stamp stays valid; 0 while unknown
	skew        int64             // seconds a stamp may be dated ahead
	defaultWork uint64            // the guess of the unit price, for methods whose price is not known
	prices      map[string]uint64 // confirmed prices: told or accepted
	now         func() time.Time

	// On a server whose prices move, each refusal says the unit price of
	// a cost-1.0 request for this client; a method's price is its cost
	// (learned as price over unit, else from the handler's cost table,
	// methodcost) times the unit, so one refusal predicts the price of
	// every method. After nextFall the unit
	// may have fallen: the proxy then sends token stamps (work 1), whose
	// refusals say the new unit, and whose acceptance says requests are
	// free: then it sends none until a refusal says a price again.
	unit     uint64             // 0 while no refusal said one
	ratios   map[string]float64 // each method's price over unit
	nextFall time.Time          // local time; zero if none
	free     bool               // requests are free now
}

// NewKnowledge returns Knowledge that guesses resource and defaultWork for
// every method until the server says otherwise.
// A defaultWork of 0 starts free: requests go without stamps until a
// refusal says a price, as to a server that is free while calm.
func NewKnowledge(resource string, defaultWork uint64) *Knowledge {
	return &Knowledge{resource: resource, defaultWork: defaultWork, prices: map[string]uint64{},
		ratios: map[string]float64{}, free: defaultWork == 0, now: time.Now}
}

// newFreeKnowledge is NewKnowledge that starts free, and guesses
// defaultWork for the methods whose price is not known once a refusal
// without a unit price (a server whose prices are fixed) ends that.
func newFreeKnowledge(resource string, defaultWork uint64) *Knowledge {
	k := NewKnowledge(resource, defaultWork)
	k.free = true
	return k
}

// Confirm records that the server accepted a stamp of work for method,
// unless its price is already known.
func (k *Knowledge) Confirm(method string, work uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if work == 1 && k.unit > 0 && k.probingLocked() {
		k.free = true // a token stamp passed: the price has fallen to nothing
	}
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

// Price returns the work a stamp for method should claim; 0 means none is
// needed.
func (k *Knowledge) Price(method string) uint64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	switch {
	case k.free:
		return 0
	case k.unit > 0 && k.probingLocked():
		return 1 // a token stamp: its refusal tells the new price
	case k.unit > 0:
		ratio, ok := k.ratios[method]
		if !ok {
			ratio = methodcost.Of(method) // the handler's cost table
		}
		return priceUp(ratio, k.unit)
	}
	if w, ok := k.prices[method]; ok {
		return w
	}
	return priceUp(methodcost.Of(method), k.defaultWork)
}

// priceUp returns cost × unit rounded up, as the handler computes a
// method's price.
func priceUp(cost float64, unit uint64) uint64 {
	w := math.Ceil(cost * float64(unit))
	if w >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(w)
}

// probingLocked reports whether the unit price may have fallen since the
// server last said it; k.mu must be held.
func (k *Knowledge) probingLocked() bool {
	return !k.nextFall.IsZero() && !k.now().Before(k.nextFall)
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
	if r.Unit > 0 {
		if r.Unit != k.unit || k.free {
			changed = true
		}
		k.unit, k.free, k.nextFall = r.Unit, false, time.Time{}
		if r.NextFall > 0 && r.Time > 0 {
			// Probe no sooner than minProbeInterval after a refusal: one
			// refusal per method per interval at most.
			k.nextFall = at.Add(max(time.Duration(r.NextFall-r.Time)*time.Second, minProbeInterval))
		}
		if _, ok := k.ratios[r.Method]; r.Method != "" && r.Reason.Priced() && (ok || len(k.ratios) < maxLearnedMethods) {
			k.ratios[r.Method] = float64(r.Price) / float64(r.Unit)
		}
	} else if r.Reason.Priced() && r.Price > 0 {
		if k.free {
			k.free, changed = false, true
		}
		// Fixed prices: a method's price is its cost times the server's
		// unit price, so the price of server.version (the first request,
		// which nothing overtakes) implies the unit. Raise the guess for
		// methods whose price is not known yet to it, never lower it: a
		// method_price override may make one method cheaper than the
		// table says. Other methods' prices teach only themselves, as an
		// override may make them dearer.
		if implied := priceUp(1/methodcost.Of(r.Method), r.Price); r.Method == "server.version" && implied > k.defaultWork {
			k.defaultWork, changed = implied, true
		}
	}
	if r.Method != "" && r.Reason.Priced() {
		if old, ok := k.prices[r.Method]; !ok || old != r.Price {
			k.setPrice(r.Method, r.Price)
			changed = true
		}
	}
	return changed
}
