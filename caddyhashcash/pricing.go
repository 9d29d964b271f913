package caddyhashcash

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/electrum-hashcash/electrum-hashcash/internal/pricing"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// adaptive reports whether the handler's prices move (network_budget set).
func (h *Handler) adaptive() bool { return h.NetworkBudget > 0 }

// pricingConfig turns the handler's price options, defaults applied, into
// the pricing engine's settings: the calm price is Price, and prices rise
// from PriceStep by PriceFactor a level.
func (h *Handler) pricingConfig() (pricing.Config, error) {
	c := pricing.Config{
		CalmUnit:       uint64(*h.Price),
		Factor:         h.PriceFactor,
		Budget:         h.NetworkBudget,
		Burst:          h.NetworkBurst,
		RefusedWeight:  h.RefusedWeight,
		Tick:           time.Duration(h.PriceTick),
		CalmTicks:      h.CalmTicks,
		Tolerance:      time.Duration(h.PriceTolerance),
		MaxNetworks:    h.MaxNetworks,
		PressureTarget: h.MaxInFlight,
	}
	switch {
	case h.PriceStep != nil:
		c.StepUnit = uint64(*h.PriceStep)
	case c.CalmUnit > 0:
		c.StepUnit = 2 * c.CalmUnit
	}
	if h.MaxPrice != nil {
		c.MaxUnit = uint64(*h.MaxPrice)
	}
	if c.Burst == 0 {
		c.Burst = 25 * c.Budget
	}
	c = c.WithDefaults()
	if c.MaxUnit < c.StepUnit && h.MaxPrice == nil {
		c.MaxUnit = max(c.StepUnit, c.CalmUnit) << 9
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("hashcash: option %w", err)
	}
	return c, nil
}

// connPricing is what one connection needs to price its requests by its
// network's level and to report its spending and the requests it has
// outstanding. It reads the resource's price levels on each use, so that
// a reload that makes prices move, or fixes them, applies to it at once.
type connPricing struct {
	state    *resourceState
	calm     uint64 // the unit price while prices are fixed
	prefix   netip.Prefix
	pressure bool // count requests in flight (max_in_flight set)

	inFlight atomic.Int64 // forwarded requests not yet answered, counted in counted
	counted  atomic.Pointer[pricing.Networks]
}

// quote is the connection's verify.Quoter.
func (p *connPricing) quote(now time.Time) verify.Quote {
	n := p.state.prices.Load()
	if n == nil {
		return verify.Quote{Unit: p.calm, LeastUnit: p.calm}
	}
	q := n.Quote(p.prefix, now)
	vq := verify.Quote{Unit: q.Unit, LeastUnit: q.MinUnit, Level: q.Level}
	if !q.NextFall.IsZero() {
		vq.NextFall = q.NextFall.Unix()
	}
	return vq
}

// spent records a verdict on one request in the network's meter and, for
// an accepted request, counts it as in flight.
func (p *connPricing) spent(v verify.Verdict) {
	n := p.state.prices.Load()
	if n == nil {
		return
	}
	accepted := v.Reason == ""
	n.Spend(p.prefix, v.Cost, accepted, time.Now())
	if accepted && p.pressure {
		if p.counted.CompareAndSwap(nil, n) || p.counted.Load() == n {
			p.inFlight.Add(1)
			n.AddInFlight(1)
		}
	}
}

// answered counts lines from the server as answers to requests in flight;
// lines beyond those (notifications) count for nothing.
func (p *connPricing) answered(lines int) {
	n := p.counted.Load()
	if n == nil || lines == 0 {
		return
	}
	for {
		was := p.inFlight.Load()
		done := min(was, int64(lines))
		if done == 0 {
			return
		}
		if p.inFlight.CompareAndSwap(was, was-done) {
			n.AddInFlight(-int(done))
			return
		}
	}
}

// ended forgets the connection's requests still in flight.
func (p *connPricing) ended() {
	if n := p.counted.Load(); n != nil {
		if left := p.inFlight.Swap(0); left > 0 {
			n.AddInFlight(-int(left))
		}
	}
}

// tickPrices moves the price levels of s's networks every price_tick until
// s is destroyed, logs each network once when it rises above calm and once
// when it returns, and keeps a snapshot for the metrics.
func (s *resourceState) tickPrices() {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.retick:
			if n := s.prices.Load(); n != nil {
				t.Reset(n.Config().Tick)
			}
		case now := <-t.C:
			n := s.prices.Load()
			if n == nil {
				s.snapshot.Store(nil)
				t.Reset(time.Second)
				continue
			}
			if sh := s.sharer.Load(); sh != nil {
				sh.exchange(n, now, s.logger.Load())
			}
			logChanges(s.logger.Load(), n.Tick(now))
			s.snapshot.Store(&priceSnapshot{Snapshot: n.Snapshot(now), at: now})
			t.Reset(n.Config().Tick)
		}
	}
}

// logChanges logs networks crossing between calm and above calm.
func logChanges(logger *zap.Logger, changes []pricing.Change) {
	if logger == nil {
		return
	}
	for _, c := range changes {
		what := []zap.Field{zap.Int("level", c.To)}
		if c.Global {
			what = append(what, zap.String("network", "all (server load)"))
		} else {
			what = append(what, zap.Stringer("prefix", c.Prefix))
		}
		switch {
		case c.To > 0:
			logger.Warn("price rose above calm", append(what, zap.Float64("spending_per_second", c.Rate))...)
		case c.Dropped:
			logger.Info("price back to calm: network dropped to make room", append(what, zap.Int("peak_level", c.Peak))...)
		default:
			logger.Info("price back to calm", append(what, zap.Int("peak_level", c.Peak), zap.Duration("above_calm_for", time.Since(c.Since).Round(time.Second)))...)
		}
	}
}
