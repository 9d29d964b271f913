package pricing

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults that (Config).WithDefaults applies to fields left at zero.
const (
	DefaultCalmUnit      = 0                // calm_price: free while calm
	DefaultStepUnit      = 1 << 14          // price_step: about 1.4 ms of one core at 12 M SHA-256/s
	DefaultFactor        = 2.0              // price_factor
	DefaultMaxUnit       = 1 << 26          // max_price: about 5.6 s of one core
	DefaultBudget        = 20.0             // network_budget, cost units per second
	DefaultBurst         = 200.0            // network_burst, cost units
	DefaultRefusedWeight = 0.25             // refused_weight
	DefaultTick          = time.Second      // price_tick
	DefaultCalmTicks     = 5                // calm_ticks
	DefaultTolerance     = 10 * time.Second // price_tolerance
	DefaultMaxNetworks   = 100000           // max_networks
	DefaultPressure      = 0                // max_in_flight: the global level is off
)

// Limits that Validate enforces.
const (
	MinTick   = 10 * time.Millisecond // the shortest price_tick
	MaxLevels = 256                   // the most levels from calm to max_price
)

const (
	maxTolerance = 365 * 24 * time.Hour // keeps nanosecond arithmetic far from overflow
	maxTick      = 24 * time.Hour       // likewise
	maxCost      = 1e15                 // a single Spend is clamped to this many cost units
	evictDivisor = 64                   // a full table drops max_networks/64 networks at once
	maxPending   = 1024                 // changes kept between ticks for networks dropped or clamped
)

// Config sets the pricing engine up. The zero value of a field means its
// default (the Default constants); WithDefaults fills them in. Each field's
// comment starts with the Caddyfile option that sets it.
type Config struct {
	// CalmUnit (calm_price) is the price, in expected SHA-256 attempts, of a
	// request of cost 1.0 from a network at level 0 (calm) while the global
	// level is 0. It may be 0: requests are free while calm. Default 0.
	CalmUnit uint64
	// StepUnit (price_step) is the price of a cost-1.0 request at level 1,
	// the first level above calm. Default 1<<14.
	StepUnit uint64
	// Factor (price_factor) multiplies the unit price at each level above 1.
	// It must be greater than 1. Default 2.
	Factor float64
	// MaxUnit (max_price) caps the unit price. Default 1<<26.
	MaxUnit uint64
	// Budget (network_budget) is how many cost units per second a network may
	// spend at the calm price: its bucket's refill rate. Default 20.
	Budget float64
	// Burst (network_burst) is how many cost units a network may spend at
	// once: its bucket's size. Default 200.
	Burst float64
	// RefusedWeight (refused_weight) is the fraction of a refused request's
	// cost taken from its network's bucket, in 0..1. Zero means the default,
	// 0.25; a negative value means refused requests take nothing (so a
	// Caddyfile's "refused_weight 0" is stored as -1).
	RefusedWeight float64
	// Tick (price_tick) is how often levels move: the caller calls
	// (*Networks).Tick this often. At least MinTick. Default 1s.
	Tick time.Duration
	// CalmTicks (calm_ticks) is how many consecutive ticks a network must
	// stay within budget before its level falls by one. Default 5.
	CalmTicks int
	// Tolerance (price_tolerance) is how long after a rise stamps minted for
	// the previous level's price are still accepted (Quote.MinUnit). Zero
	// means the default, 10s; a negative value means no tolerance.
	Tolerance time.Duration
	// MaxNetworks (max_networks) is how many networks are tracked at once.
	// Beyond it the coldest are dropped first; a dropped network starts again
	// at calm. Default 100000.
	MaxNetworks int
	// PressureTarget (max_in_flight) drives the global level from the
	// Electrum server's load as the proxy sees it: the number of requests
	// forwarded and not yet answered, across all connections. When it stays
	// above PressureTarget for a whole tick, the global level rises by one
	// (it holds while the backlog above the target drains by a tenth or
	// more a tick); after CalmTicks consecutive ticks at or below PressureTarget/2
	// throughout, it falls by one. 0 disables the global level (it decays to
	// 0). Default 0.
	PressureTarget int
}

// WithDefaults returns c with every zero field set to its default. It is
// idempotent.
func (c Config) WithDefaults() Config {
	if c.StepUnit == 0 {
		c.StepUnit = DefaultStepUnit
	}
	if c.Factor == 0 {
		c.Factor = DefaultFactor
	}
	if c.MaxUnit == 0 {
		c.MaxUnit = DefaultMaxUnit
	}
	if c.Budget == 0 {
		c.Budget = DefaultBudget
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.RefusedWeight == 0 {
		c.RefusedWeight = DefaultRefusedWeight
	}
	if c.Tick == 0 {
		c.Tick = DefaultTick
	}
	if c.CalmTicks == 0 {
		c.CalmTicks = DefaultCalmTicks
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.MaxNetworks == 0 {
		c.MaxNetworks = DefaultMaxNetworks
	}
	return c
}

// Validate reports the first setting that cannot work, naming its Caddyfile
// option. Call it on the result of WithDefaults: a zero field left in place
// is reported as invalid where zero is not a valid setting.
func (c Config) Validate() error {
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	switch {
	case c.StepUnit == 0:
		return errors.New("price_step must be greater than 0")
	case c.MaxUnit == 0:
		return errors.New("max_price must be greater than 0")
	case c.CalmUnit > c.MaxUnit:
		return fmt.Errorf("calm_price %d exceeds max_price %d", c.CalmUnit, c.MaxUnit)
	case c.StepUnit > c.MaxUnit:
		return fmt.Errorf("price_step %d exceeds max_price %d", c.StepUnit, c.MaxUnit)
	case !finite(c.Factor) || c.Factor <= 1:
		return fmt.Errorf("price_factor %v must be a number greater than 1", c.Factor)
	case !finite(c.Budget) || c.Budget <= 0:
		return fmt.Errorf("network_budget %v must be a number greater than 0", c.Budget)
	case !finite(c.Burst) || c.Burst <= 0:
		return fmt.Errorf("network_burst %v must be a number greater than 0", c.Burst)
	case math.IsNaN(c.RefusedWeight) || c.RefusedWeight > 1:
		return fmt.Errorf("refused_weight %v must be in 0..1", c.RefusedWeight)
	case c.Tick < MinTick || c.Tick > maxTick:
		return fmt.Errorf("price_tick %v must be in %v..%v", c.Tick, MinTick, maxTick)
	case c.CalmTicks <= 0:
		return fmt.Errorf("calm_ticks %d must be at least 1", c.CalmTicks)
	case c.Tolerance > maxTolerance:
		return fmt.Errorf("price_tolerance %v exceeds %v", c.Tolerance, maxTolerance)
	case c.MaxNetworks <= 0:
		return fmt.Errorf("max_networks %d must be at least 1", c.MaxNetworks)
	case c.PressureTarget < 0:
		return fmt.Errorf("max_in_flight %d must not be negative (0 disables it)", c.PressureTarget)
	}
	if l := c.MaxLevel(); l > MaxLevels {
		return fmt.Errorf("price_factor %v is too small: more than %d levels from price_step %d to max_price %d",
			c.Factor, MaxLevels, c.StepUnit, c.MaxUnit)
	}
	return nil
}

// Unit returns the price of a cost-1.0 request at level (0 = calm):
// CalmUnit at 0, StepUnit at 1 and StepUnit×Factor^(level−1) above, rounded
// to the nearest integer, never below CalmUnit and never above MaxUnit. A
// negative level counts as 0; levels above MaxLevel cost MaxUnit.
func (c Config) Unit(level int) uint64 {
	if level <= 0 {
		return min(c.CalmUnit, c.MaxUnit)
	}
	u := float64(c.StepUnit)
	if level > 1 {
		u *= math.Pow(c.Factor, float64(level-1))
	}
	if math.IsNaN(u) || u >= float64(c.MaxUnit) {
		return c.MaxUnit
	}
	return min(max(uint64(math.Round(u)), c.CalmUnit), c.MaxUnit)
}

// MaxLevel returns the first level whose unit price reaches MaxUnit: the
// highest level a network or the global level can take. It is 0 when
// CalmUnit is already MaxUnit (fixed pricing), and MaxLevels+1 for a
// configuration that Validate refuses for having too many levels.
func (c Config) MaxLevel() int {
	if c.CalmUnit >= c.MaxUnit {
		return 0
	}
	for l := 1; l <= MaxLevels; l++ {
		if c.Unit(l) >= c.MaxUnit {
			return l
		}
	}
	return MaxLevels + 1
}

// Price returns the price of a request of the given cost at level:
// ceil(cost×Unit(level)), at least 1 when both cost and Unit(level) are
// greater than 0, and 0 for a cost that is not greater than 0.
func (c Config) Price(cost float64, level int) uint64 {
	return PriceOf(cost, c.Unit(level))
}

// PriceOf returns the price of a request of the given cost at a unit price:
// ceil(cost×unit), at least 1 when both are greater than 0, 0 for a cost
// that is not greater than 0 (or NaN), and the largest uint64 when the
// product does not fit.
func PriceOf(cost float64, unit uint64) uint64 {
	if !(cost > 0) || unit == 0 {
		return 0
	}
	if cost == 1 {
		return unit
	}
	p := math.Ceil(cost * float64(unit))
	if p >= 1<<64 {
		return math.MaxUint64
	}
	return max(uint64(p), 1)
}
