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
// network's level, to report its spending and the requests it has
// outstanding, and to wait at the resource's gate (max_in_flight) before
// forwarding. It reads the resource's price levels and the gate's cap on
// each use, so that a reload that makes prices move, fixes them or changes
// max_in_flight applies to it at once.
type connPricing struct {
	state  *resourceState
	calm   uint64 // the unit price while prices are fixed
	prefix netip.Prefix

	// Accepted lines that the server answers (one line each, a batch
	// included) are counted from acceptance to answer while max_in_flight
	// is set: inFlight toward the pressure signal (in counted), held as
	// the gate's slots once through it. unadmitted are those accepted
	// and not yet through the gate, used only by the reading goroutine.
	inFlight   atomic.Int64
	counted    atomic.Pointer[pricing.Networks]
	held       atomic.Int64
	unadmitted int
	lines      answerLines // the server's lines, for answered
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

// spent records a verdict on one request in the network's meter.
func (p *connPricing) spent(v verify.Verdict) {
	if n := p.state.prices.Load(); n != nil {
		n.Spend(p.prefix, v.Cost, v.Reason == "", time.Now())
	}
}

// forwarding counts an accepted line that the server will answer, while
// max_in_flight is set, as in flight and as waiting for the gate.
func (p *connPricing) forwarding() {
	n := p.state.prices.Load()
	if n == nil || p.state.gate.Limit() == 0 {
		return
	}
	p.unadmitted++
	if p.counted.CompareAndSwap(nil, n) || p.counted.Load() == n {
		p.inFlight.Add(1)
		n.AddInFlight(1)
	}
}

// group is how many accepted lines a connection takes through the gate at
// once while no one waits there: an eighth of max_in_flight, at least 1;
// 0 without a gate (configurePrices sets its cap, 0 while prices are
// fixed).
func (p *connPricing) group() int {
	if limit := p.state.gate.Limit(); limit > 0 {
		return max(1, limit/8)
	}
	return 0
}

// groupFull reports whether the lines accepted since the last admit are as
// many as the gate takes at once: group, or one line while others wait, so
// that under load every waiting network gets one request through a turn
// and a connection's pipeline waits its turn line by line.
func (p *connPricing) groupFull() bool {
	if p.unadmitted == 0 {
		return false
	}
	if p.state.gate.Waiting() > 0 {
		return true
	}
	return p.unadmitted >= p.group()
}

// admit takes the gate's slots for the requests accepted since the last
// call, waiting while max_in_flight requests are forwarded and not yet
// answered. It returns an error, having taken nothing, only if the
// resource's state is destroyed meanwhile.
func (p *connPricing) admit() error {
	if p.unadmitted == 0 {
		return nil
	}
	if err := p.state.gate.Acquire(p.state.alive, p.prefix, p.unadmitted); err != nil {
		return fmt.Errorf("hashcash: waiting for the server to answer earlier requests: %w", err)
	}
	p.held.Add(int64(p.unadmitted))
	p.unadmitted = 0
	return nil
}

// answered counts the answers that end in b, bytes from the server, as
// answers to the connection's requests through the gate. Notifications,
// and lines beyond the requests held, count for nothing. The server's
// bytes come from one goroutine, the only one that calls it.
func (p *connPricing) answered(b []byte) {
	if p.held.Load() == 0 {
		p.lines.skip(b)
		return
	}
	lines := int64(p.lines.count(b))
	for lines > 0 {
		was := p.held.Load()
		done := min(was, lines)
		if done == 0 {
			return
		}
		if p.held.CompareAndSwap(was, was-done) {
			p.state.gate.Release(int(done))
			p.forget(done)
			return
		}
	}
}

// forget takes up to done requests out of the pressure signal.
func (p *connPricing) forget(done int64) {
	n := p.counted.Load()
	if n == nil {
		return
	}
	for {
		was := p.inFlight.Load()
		d := min(was, done)
		if d == 0 {
			return
		}
		if p.inFlight.CompareAndSwap(was, was-d) {
			n.AddInFlight(-int(d))
			return
		}
	}
}

// ended gives back the connection's slots and forgets its requests still
// in flight.
func (p *connPricing) ended() {
	if held := p.held.Swap(0); held > 0 {
		p.state.gate.Release(int(held))
	}
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
