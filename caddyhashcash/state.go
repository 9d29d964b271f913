package caddyhashcash

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"

	"go.uber.org/zap"

	"github.com/electrum-hashcash/electrum-hashcash/internal/admission"
	"github.com/electrum-hashcash/electrum-hashcash/internal/connlimit"
	"github.com/electrum-hashcash/electrum-hashcash/internal/pricing"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay/redisstore"
)

// resourceStates holds the state of each resource, shared by every handler
// for that resource and kept across config reloads for as long as any
// handler uses it, the way Caddy's own modules keep state between loads.
var resourceStates = caddy.NewUsagePool()

// resourceState is what the handlers of one resource share across reloads:
// the replay store, with a janitor that sweeps its expired stamps, the
// per-prefix connection counts, which must carry over a reload as the
// connections they count do, the price level of each client network, and
// the gate that holds requests beyond max_in_flight.
// A reload re-configures it (see loadResourceState).
type resourceState struct {
	stamps   *replay.Memory
	conns    *connlimit.Limiter
	resource string

	// prices holds the networks' price levels while prices move (nil while
	// they are fixed); tickPrices moves them and keeps snapshot for the
	// metrics, logging with the newest handler's logger.
	prices   atomic.Pointer[pricing.Networks]
	snapshot atomic.Pointer[priceSnapshot]
	logger   atomic.Pointer[zap.Logger]
	retick   chan struct{} // prices were configured: tick at their pace
	// sharer, if not nil, shares the networks' spending with the other
	// instances that use the same Redis store, at each tick.
	sharer atomic.Pointer[spendingSharer]

	// gate lets at most max_in_flight accepted requests be forwarded and
	// unanswered at once (no cap while max_in_flight is 0 or prices are
	// fixed); connections wait there until alive ends.
	gate  *admission.Gate[netip.Prefix]
	open  atomic.Int64 // connections being served
	alive context.Context
	die   context.CancelFunc

	sweepEvery chan time.Duration // a new sweep interval for the janitor
	stop       chan struct{}
	done       sync.WaitGroup
}

// loadResourceState returns the state of resource, creating it if no
// handler holds one, and configures it for the handler being provisioned:
// the replay store's capacity and the janitor's interval follow the newest
// config, so that a reload that changes replay_capacity or window takes
// effect on the state the connections already share.
func loadResourceState(resource string, capacity int, window time.Duration) (*resourceState, error) {
	interval := max(window/4, time.Second)
	v, loaded, err := resourceStates.LoadOrNew(resource, func() (caddy.Destructor, error) {
		s := &resourceState{
			stamps:     replay.NewMemory(capacity),
			conns:      connlimit.New(),
			resource:   resource,
			sweepEvery: make(chan time.Duration, 1),
			retick:     make(chan struct{}, 1),
			stop:       make(chan struct{}),
			gate:       admission.New[netip.Prefix](0),
		}
		s.alive, s.die = context.WithCancel(context.Background())
		s.done.Go(func() { s.sweep(interval) })
		s.done.Go(s.tickPrices)
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	s := v.(*resourceState)
	if loaded {
		s.stamps.SetCapacity(capacity)
		select {
		case <-s.sweepEvery: // an interval not yet taken up: replace it
		default:
		}
		s.sweepEvery <- interval
	}
	return s, nil
}

// priceSnapshot is the state of the prices at a price tick.
type priceSnapshot struct {
	pricing.Snapshot
	at time.Time
}

// configurePrices makes the state's prices move by c, keeping the levels
// its networks have reached, or, with c nil, fixes them (levels are
// dropped). logger is the newest handler's.
func (s *resourceState) configurePrices(c *pricing.Config, logger *zap.Logger) {
	s.logger.Store(logger)
	if c == nil {
		s.gate.SetLimit(0)
	} else {
		s.gate.SetLimit(c.PressureTarget)
	}
	defer func() {
		select {
		case s.retick <- struct{}{}:
		default: // a retick is pending already
		}
	}()
	if c == nil {
		s.prices.Store(nil)
		return
	}
	if n := s.prices.Load(); n != nil {
		n.Configure(*c)
		return
	}
	if !s.prices.CompareAndSwap(nil, pricing.NewNetworks(*c)) {
		s.prices.Load().Configure(*c) // another handler got there first
	}
}

// shareSpending makes the state's price ticks share the networks'
// spending through store, or stop sharing it when store is nil (the memory
// store, or prices that do not move).
func (s *resourceState) shareSpending(store *redisstore.Store) {
	for {
		cur := s.sharer.Load()
		if s.sharer.CompareAndSwap(cur, sharerFor(cur, store, s.resource)) {
			return
		}
	}
}

// sweep drops expired stamps every interval until the state is destroyed.
func (s *resourceState) sweep(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case d := <-s.sweepEvery:
			t.Reset(d)
		case now := <-t.C:
			s.stamps.Sweep(now.Unix())
		}
	}
}

// release gives up one handler's use of the state.
func (s *resourceState) release() error {
	_, err := resourceStates.Delete(s.resource)
	return err
}

// Destruct stops the janitor and the connection counts' pending releases
// when the last handler lets go of the state.
func (s *resourceState) Destruct() error {
	s.die()
	close(s.stop)
	s.done.Wait()
	s.conns.Stop()
	return nil
}
