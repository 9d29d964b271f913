package pricing

import (
	"math"
	"net/netip"
	"testing"
	"time"
)

// t0 is the simulated clock's start: any fixed time works.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// flooder is a simulated client that spends all of its hash rate on stamps
// for cost-1 requests, each paid at the price quoted when it starts minting.
type flooder struct {
	prefix   netip.Prefix
	hashRate float64 // SHA-256 attempts per second
	freeRate float64 // requests per second it sends while they are free
	junkRate float64 // unstamped requests per second, always refused
	payMin   bool    // pay MinUnit instead of Unit

	mintUnit uint64  // the unit its stamps in progress are minted for
	carry    float64 // fractional requests carried between steps
}

// step simulates dt of the flooder from now: the stamps minted during dt
// arrive at now+dt and are accepted if they still pay MinUnit. It returns
// the accepted and refused request counts.
func (f *flooder) step(n *Networks, now time.Time, dt time.Duration) (accepted, refused float64) {
	sec := dt.Seconds()
	var made float64
	if f.mintUnit == 0 {
		made = f.freeRate * sec
	} else {
		made = f.hashRate * sec / float64(f.mintUnit)
	}
	made += f.carry
	whole := math.Floor(made)
	f.carry = made - whole
	arrive := now.Add(dt)
	q := n.Quote(f.prefix, arrive)
	if whole > 0 {
		if f.mintUnit >= q.MinUnit {
			accepted = whole
			n.Spend(f.prefix, whole, true, arrive)
		} else {
			refused = whole
			n.Spend(f.prefix, whole, false, arrive)
		}
	}
	if junk := f.junkRate * sec; junk > 0 {
		refused += junk
		n.Spend(f.prefix, junk, false, arrive)
	}
	// It mints its next stamps for the price quoted now.
	f.mintUnit = q.Unit
	if f.payMin {
		f.mintUnit = q.MinUnit
	}
	return accepted, refused
}

type simTick struct {
	level    int
	unit     uint64
	accepted float64 // requests accepted during the tick
	refused  float64
}

// simulate runs f for ticks ticks of c.Tick, steps steps per tick, with an
// honest network sending one cost-1 request per second alongside. It fails
// the test if the honest network ever quotes above calm.
func simulate(tb testing.TB, c Config, f *flooder, ticks, steps int) []simTick {
	tb.Helper()
	n := NewNetworks(c)
	honest := netip.MustParsePrefix("192.0.2.0/24")
	dt := c.Tick / time.Duration(steps)
	now := t0
	out := make([]simTick, 0, ticks)
	for range ticks {
		var tk simTick
		for s := range steps {
			a, r := f.step(n, now, dt)
			tk.accepted += a
			tk.refused += r
			now = now.Add(dt)
			if s == 0 {
				if q := n.Quote(honest, now); q.Level != 0 {
					tb.Fatalf("honest network at level %d", q.Level)
				}
				n.Spend(honest, 1, true, now)
			}
		}
		n.Tick(now)
		q := n.Quote(f.prefix, now)
		tk.level, tk.unit = q.Level, q.Unit
		out = append(out, tk)
	}
	return out
}

// steady returns the first tick from which the accepted count of every tick
// stays at or below limit.
func steady(trace []simTick, limit float64) int {
	last := -1
	for i, tk := range trace {
		if tk.accepted > limit {
			last = i
		}
	}
	return last + 1
}

// maxWindow returns the highest average accepted count over window
// consecutive ticks.
func maxWindow(trace []simTick, window int) float64 {
	var best float64
	for i := 0; i+window <= len(trace); i++ {
		var sum float64
		for _, tk := range trace[i : i+window] {
			sum += tk.accepted
		}
		best = max(best, sum/float64(window))
	}
	return best
}

// TestFlooderConverges: a network with 1000 times an honest client's hash
// rate, paying every quote, is held to about its budget of accepted
// requests, while an honest network next to it stays at calm.
func TestFlooderConverges(t *testing.T) {
	const honestRate = 12e6 // SHA-256 attempts per second: one x86-64 core
	cases := []struct {
		name   string
		c      Config
		f      flooder
		window int
	}{
		// max_price raised so that 1000 cores can be priced down to the budget:
		// at the default 2^26 they would still get 12e9/2^26 = 179 requests/s.
		{"pays Unit", Config{MaxUnit: 1 << 32}, flooder{hashRate: 1000 * honestRate, freeRate: 1e5, junkRate: 10}, 30},
		{"pays MinUnit", Config{MaxUnit: 1 << 32}, flooder{hashRate: 1000 * honestRate, freeRate: 1e5, payMin: true}, 30},
		{"factor 1.5", Config{MaxUnit: 1 << 32, Factor: 1.5}, flooder{hashRate: 1000 * honestRate, freeRate: 1e5, junkRate: 10}, 30},
		{"calm_ticks 1", Config{MaxUnit: 1 << 32, CalmTicks: 1}, flooder{hashRate: 1000 * honestRate, freeRate: 1e5}, 30},
		{"defaults, 2^30/s", Config{}, flooder{hashRate: 1 << 30, freeRate: 1e5}, 30},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c.WithDefaults()
			f := tc.f
			f.prefix = netip.MustParsePrefix("2001:db8:1::/48")
			const ticks = 600
			trace := simulate(t, c, &f, ticks, 20)
			// Steady: no tick above Factor×Budget, the rate one level below
			// the level that holds it to its budget.
			perTick := c.Budget * c.Tick.Seconds()
			start := steady(trace, c.Factor*perTick)
			if start >= ticks-100 {
				t.Fatalf("no steady state: tick %d accepted more than %v×budget", start, c.Factor)
			}
			var sum, refused float64
			maxLevel, minLevel := 0, math.MaxInt
			for _, tk := range trace[start:] {
				sum += tk.accepted
				refused += tk.refused
				maxLevel, minLevel = max(maxLevel, tk.level), min(minLevel, tk.level)
			}
			avg := sum / float64(ticks-start) / c.Tick.Seconds()
			worst := maxWindow(trace[start:], tc.window) / c.Tick.Seconds()
			// Rise from calm: one level per tick until H/unit ≤ budget.
			want := int(math.Ceil(math.Log2(f.hashRate/float64(c.StepUnit)/c.Budget)/math.Log2(c.Factor))) + 1
			t.Logf("steady from tick %d (%v; log_F(H/price_step/budget)+1 = %d); then accepted %.1f/s on average, %.1f/s at most over %d ticks (budget %.0f), refused %.1f/s, levels %d..%d (unit %d..%d)",
				start, time.Duration(start)*c.Tick, want, avg, worst, tc.window, c.Budget, refused/float64(ticks-start)/c.Tick.Seconds(),
				minLevel, maxLevel, c.Unit(minLevel), c.Unit(maxLevel))
			if avg > 1.5*c.Budget || avg < c.Budget/1.5/c.Factor || worst > 1.5*c.Budget {
				t.Errorf("accepted %.1f/s on average, %.1f/s at most over %d ticks in steady state, want within 1.5× of budget %.0f",
					avg, worst, tc.window, c.Budget)
			}
		})
	}
}

// TestFlooderMaxPrice: a flooder whose hash rate max_price cannot price down
// to the budget sits at the top level, where its accepted rate is
// hashRate/max_price.
func TestFlooderMaxPrice(t *testing.T) {
	c := Config{}.WithDefaults()
	f := flooder{prefix: netip.MustParsePrefix("203.0.113.0/24"), hashRate: 12e9, freeRate: 1e5}
	trace := simulate(t, c, &f, 60, 10)
	last := trace[len(trace)-1]
	if last.level != c.MaxLevel() {
		t.Fatalf("level %d, want the max %d", last.level, c.MaxLevel())
	}
	if want := f.hashRate / float64(c.MaxUnit); math.Abs(last.accepted-want) > 1 {
		t.Fatalf("accepted %.1f per tick, want %.1f", last.accepted, want)
	}
}
