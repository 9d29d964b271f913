package pricing

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pfx returns the i-th of distinct /24 networks.
func pfx(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
}

// sec returns t0 plus s seconds.
func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// tracked reports whether p is in the table.
func tracked(n *Networks, p netip.Prefix) bool {
	s := n.shardOf(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.index[p]
	return ok
}

func level(n *Networks, p netip.Prefix, now time.Time) int { return n.Quote(p, now).Level }

// TestFloodRises: a flooding network rises one level per tick up to the
// max, while a network next to it stays at calm; each crosses calm once.
func TestFloodRises(t *testing.T) {
	c := Config{}.WithDefaults()
	n := NewNetworks(c)
	flood, quiet := pfx(1), netip.MustParsePrefix("2001:db8::/48")
	var rises []Change
	for tick := 1; tick <= 20; tick++ {
		now := sec(float64(tick))
		n.Spend(flood, 1000, true, now.Add(-time.Second/2))
		n.Spend(quiet, 1, true, now.Add(-time.Second/2))
		rises = append(rises, n.Tick(now)...)
		if got, want := level(n, flood, now), min(tick, c.MaxLevel()); got != want {
			t.Fatalf("tick %d: flooder at level %d, want %d", tick, got, want)
		}
		q := n.Quote(quiet, now)
		if q.Level != 0 || q.Unit != 0 || q.MinUnit != 0 || !q.NextFall.IsZero() {
			t.Fatalf("tick %d: quiet network quotes %+v, want calm", tick, q)
		}
	}
	if len(rises) != 1 || rises[0].Prefix != flood || rises[0].From != 0 || rises[0].To != 1 ||
		rises[0].Rate != 1000 || !rises[0].Since.Equal(sec(1)) || rises[0].Dropped || rises[0].Global {
		t.Fatalf("changes %+v, want one rise of %v", rises, flood)
	}
	snap := n.Snapshot(sec(20))
	// The quiet network's bucket is full at each tick: it is not kept.
	if snap.Tracked != 1 || snap.Highest != c.MaxLevel() || len(snap.Networks) != 1 ||
		snap.Networks[0].Prefix != flood || snap.Networks[0].Unit != c.MaxUnit || snap.Networks[0].Rate != 1000 {
		t.Fatalf("snapshot %+v", snap)
	}
}

// TestDecay: after a flood stops, the network pays its debt back, then
// falls one level every CalmTicks ticks, returns to calm once, and is
// forgotten.
func TestDecay(t *testing.T) {
	c := Config{}.WithDefaults()
	n := NewNetworks(c)
	p := pfx(7)
	for tick := 1; tick <= 20; tick++ {
		n.Spend(p, 1000, true, sec(float64(tick)-0.5))
		n.Tick(sec(float64(tick)))
	}
	if l := level(n, p, sec(20)); l != 13 {
		t.Fatalf("level %d after the flood, want 13", l)
	}
	// The bucket is at −Burst: paid back after Burst/Budget = 10 ticks (tick
	// 30, the first within budget), then a fall every 5 ticks: 12 at 34, 0 at
	// 34 + 12×5 = 94.
	var returns []Change
	for tick := 21; tick <= 100; tick++ {
		now := sec(float64(tick))
		returns = append(returns, n.Tick(now)...)
		want := 13
		if tick >= 34 {
			want = max(12-(tick-34)/5, 0)
		}
		q := n.Quote(p, now)
		if q.Level != want {
			t.Fatalf("tick %d: level %d, want %d", tick, q.Level, want)
		}
		if want > 0 {
			// NextFall is the tick of the next fall.
			next := 34 + 5*((tick-34)/5+1)
			if tick < 34 {
				next = 34
			}
			if !q.NextFall.Equal(sec(float64(next))) {
				t.Fatalf("tick %d: NextFall %v, want tick %d", tick, q.NextFall.Sub(t0), next)
			}
		}
		if tracked := n.Snapshot(now).Tracked; tracked != 1 && tick < 94 || tracked != 0 && tick >= 94 {
			t.Fatalf("tick %d: %d tracked", tick, tracked)
		}
	}
	if len(returns) != 1 || returns[0].Prefix != p || returns[0].From != 1 || returns[0].To != 0 ||
		returns[0].Peak != 13 || !returns[0].Since.Equal(sec(1)) || returns[0].Dropped {
		t.Fatalf("changes %+v, want one return of %v to calm", returns, p)
	}
}

// TestHonestBurst is the package documentation's wallet: 300 cost units at
// once while free.
func TestHonestBurst(t *testing.T) {
	n := NewNetworks(Config{}.WithDefaults())
	p := pfx(3)
	n.Spend(p, 300, true, sec(0.5))
	for tick := 1; tick <= 12; tick++ {
		n.Tick(sec(float64(tick)))
		want := 0
		if tick < 10 {
			want = 1
		}
		if l := level(n, p, sec(float64(tick))); l != want {
			t.Fatalf("tick %d: level %d, want %d", tick, l, want)
		}
	}
}

// TestRefused: refused requests count RefusedWeight of their cost.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		weight float64
		rises  bool
	}{{0, true}, {0.1, false}, {-1, false}, {1, true}} {
		n := NewNetworks(Config{RefusedWeight: tc.weight, Burst: 20}.WithDefaults())
		n.Spend(pfx(1), 100, false, sec(1)) // 25 at the default 0.25, 10 at 0.1
		n.Tick(sec(1))
		if got := level(n, pfx(1), sec(1)) == 1; got != tc.rises {
			t.Errorf("refused_weight %v: rose %v, want %v", tc.weight, got, tc.rises)
		}
	}
	n := NewNetworks(Config{RefusedWeight: -1}.WithDefaults())
	for _, cost := range []float64{0, -1, math.NaN(), math.Inf(-1)} {
		n.Spend(pfx(1), cost, true, sec(0))
	}
	n.Spend(pfx(1), 5, false, sec(0))
	if tracked := n.Snapshot(sec(0)).Tracked; tracked != 0 {
		t.Fatalf("%d networks tracked after spending nothing", tracked)
	}
	n.Spend(pfx(1), math.Inf(1), true, sec(0)) // clamped, not poisoning the bucket
	n.Tick(sec(1))
	for tick := 2; tick <= 30; tick++ {
		n.Tick(sec(float64(tick)))
	}
	if l := level(n, pfx(1), sec(30)); l != 0 {
		t.Fatalf("level %d 29 s after an infinite cost, want 0", l)
	}
}

// TestTolerance: after a rise, the previous level's unit is accepted for
// Tolerance, and not after.
func TestTolerance(t *testing.T) {
	for _, calm := range []uint64{0, 1000} {
		c := Config{CalmUnit: calm}.WithDefaults()
		n := NewNetworks(c)
		p := pfx(9)
		n.Spend(p, 1000, true, sec(0.5))
		n.Tick(sec(1)) // level 1
		if q := n.Quote(p, sec(1)); q.Level != 1 || q.Unit != c.Unit(1) || q.MinUnit != calm {
			t.Fatalf("calm %d, after the rise from calm: %+v", calm, q)
		}
		n.Spend(p, 1000, true, sec(1.5))
		n.Tick(sec(2)) // level 2, rose at 2 s
		for _, tc := range []struct {
			at      time.Time
			minUnit uint64
		}{
			{sec(2), c.Unit(1)},
			{sec(7), c.Unit(1)},
			{sec(12), c.Unit(1)}, // Tolerance inclusive
			{sec(12).Add(time.Nanosecond), c.Unit(2)},
			{sec(13), c.Unit(2)},
		} {
			if tc.at.After(sec(3)) {
				n.Tick(tc.at) // in debt but not spending: the level stays
			}
			q := n.Quote(p, tc.at)
			if q.Level != 2 || q.Unit != c.Unit(2) || q.MinUnit != tc.minUnit {
				t.Fatalf("calm %d, %v after the rise: %+v, want level 2 and MinUnit %d", calm, tc.at.Sub(sec(2)), q, tc.minUnit)
			}
		}
	}
	// No tolerance.
	c := Config{Tolerance: -1}.WithDefaults()
	n := NewNetworks(c)
	n.Spend(pfx(1), 1000, true, sec(0.5))
	n.Tick(sec(1))
	if q := n.Quote(pfx(1), sec(1)); q.MinUnit != q.Unit || q.Unit != c.Unit(1) {
		t.Fatalf("price_tolerance off: %+v", q)
	}
}

// TestTableCap: a full table drops the coldest network, which quotes calm
// again; networks at calm go before those above it.
func TestTableCap(t *testing.T) {
	c := Config{MaxNetworks: 8}.WithDefaults()
	n := NewNetworks(c)
	for i := range 8 {
		n.Spend(pfx(i), 1000, true, sec(0.5))
	}
	n.Tick(sec(1))
	// Spend again in an order that leaves network 3 the coldest.
	for k, i := range []int{3, 0, 1, 2, 4, 5, 6, 7} {
		n.Spend(pfx(i), 1, true, sec(1).Add(time.Duration(k+1)*time.Millisecond))
	}
	n.Spend(pfx(3), 1, true, sec(1)) // an older time does not warm it
	n.Spend(pfx(100), 1, true, sec(1.5))
	if l := level(n, pfx(3), sec(1.5)); l != 0 {
		t.Fatalf("the coldest network quotes level %d after being dropped, want 0", l)
	}
	for _, i := range []int{0, 1, 2, 4, 5, 6, 7} {
		if l := level(n, pfx(i), sec(1.5)); l != 1 {
			t.Fatalf("network %d at level %d, want 1 (kept)", i, l)
		}
	}
	snap := n.Snapshot(sec(1.5))
	if snap.Tracked != 8 || snap.Evicted != 1 {
		t.Fatalf("tracked %d, evicted %d; want 8, 1", snap.Tracked, snap.Evicted)
	}
	changes := n.Tick(sec(2))
	if len(changes) != 1 || changes[0].Prefix != pfx(3) || !changes[0].Dropped || changes[0].From != 1 || changes[0].To != 0 {
		t.Fatalf("changes %+v, want network 3 dropped", changes)
	}

	// Calm first. Network 100's bucket was full at that tick, so it was
	// forgotten; it comes back at calm, and spends enough to be kept. It is
	// the warmest, yet it goes before the colder networks above calm.
	n.Spend(pfx(100), 50, true, sec(2.9))
	n.Spend(pfx(200), 1, true, sec(2.95))
	if snap := n.Snapshot(sec(2.95)); snap.Tracked != 8 || snap.Evicted != 2 {
		t.Fatalf("tracked %d, evicted %d; want 8, 2", snap.Tracked, snap.Evicted)
	}
	if tracked(n, pfx(100)) || !tracked(n, pfx(200)) {
		t.Fatal("network 100 kept, or 200 not added")
	}
	for _, i := range []int{0, 1, 2, 4, 5, 6, 7} {
		if l := level(n, pfx(i), sec(2.95)); l != 1 {
			t.Fatalf("network %d at level %d, want 1 (calm ones go first)", i, l)
		}
	}
	if changes := n.Tick(sec(3)); len(changes) != 0 {
		t.Fatalf("changes %+v after dropping a calm network", changes)
	}
}

// TestTableCapBatch: a large full table drops max_networks/64 at once, the
// coldest ones.
func TestTableCapBatch(t *testing.T) {
	n := NewNetworks(Config{MaxNetworks: 640}.WithDefaults())
	for i := range 640 {
		n.Spend(pfx(i), 1, true, sec(float64(i)/1000))
	}
	n.Spend(pfx(1000), 1, true, sec(1))
	if snap := n.Snapshot(sec(1)); snap.Tracked != 631 || snap.Evicted != 10 {
		t.Fatalf("tracked %d, evicted %d; want 631, 10", snap.Tracked, snap.Evicted)
	}
	for i := range 640 {
		if kept := tracked(n, pfx(i)); kept != (i >= 10) {
			t.Fatalf("network %d kept %v", i, kept)
		}
	}
}

// TestConfigure: a reload keeps levels, and a lowered max clamps them.
func TestConfigure(t *testing.T) {
	c := Config{}.WithDefaults()
	n := NewNetworks(c)
	a, b := pfx(1), pfx(2)
	for tick := 1; tick <= 5; tick++ {
		n.Spend(a, 1000, true, sec(float64(tick)-0.5))
		if tick <= 2 {
			n.Spend(b, 1000, true, sec(float64(tick)-0.5))
		}
		n.Tick(sec(float64(tick)))
	}
	if level(n, a, sec(5)) != 5 || level(n, b, sec(5)) != 2 {
		t.Fatal("setup")
	}
	c2 := c
	c2.Budget = 30
	n.Configure(c2)
	if level(n, a, sec(5)) != 5 || level(n, b, sec(5)) != 2 || n.Config().Budget != 30 {
		t.Fatal("a reload lost levels")
	}
	c3 := c
	c3.MaxUnit = 1 << 17 // MaxLevel 4
	n.Configure(c3)
	if q := n.Quote(a, sec(5)); q.Level != 4 || q.Unit != 1<<17 || q.MinUnit > q.Unit {
		t.Fatalf("after lowering max_price: %+v, want level 4", q)
	}
	if level(n, b, sec(5)) != 2 {
		t.Fatal("network b moved")
	}
	if snap := n.Snapshot(sec(5)); snap.Highest != 4 || snap.MaxLevel != 4 {
		t.Fatalf("snapshot %+v", snap)
	}
	// Fixed pricing: no levels left; both return to calm, reported once.
	fixed := c
	fixed.CalmUnit, fixed.StepUnit, fixed.MaxUnit = 1<<17, 1<<17, 1<<17
	n.Configure(fixed)
	if q := n.Quote(a, sec(5)); q.Level != 0 || q.Unit != 1<<17 || q.MinUnit != 1<<17 {
		t.Fatalf("fixed pricing: %+v", q)
	}
	changes := n.Tick(sec(6))
	if len(changes) != 2 || changes[0].To != 0 || changes[1].To != 0 || changes[0].From+changes[1].From != 6 {
		t.Fatalf("changes %+v, want a (from 4) and b (from 2) back to calm", changes)
	}
	// A lowered max_networks cuts the table.
	small := c
	small.MaxNetworks = 1
	n.Configure(small)
	if snap := n.Snapshot(sec(6)); snap.Tracked > 1 {
		t.Fatalf("%d networks tracked, max_networks 1", snap.Tracked)
	}
}

// TestPressure: the global level rises while the in-flight count stays
// above max_in_flight, for every network, and falls after CalmTicks ticks at
// or below half of it.
func TestPressure(t *testing.T) {
	c := Config{PressureTarget: 10}.WithDefaults()
	n := NewNetworks(c)
	quiet := netip.MustParsePrefix("2001:db8:5::/48")
	n.Spend(quiet, 1, true, sec(0)) // tracked, at calm
	// A spike within a tick raises nothing.
	n.AddInFlight(100)
	n.AddInFlight(-100)
	n.Tick(sec(1))
	if n.GlobalLevel() != 0 {
		t.Fatal("a spike raised the global level")
	}
	n.AddInFlight(20)
	if got := n.Tick(sec(2)); len(got) != 0 { // 0 at the start of the tick
		t.Fatalf("changes %+v", got)
	}
	got := n.Tick(sec(3))
	if n.GlobalLevel() != 1 || len(got) != 1 || !got[0].Global || got[0].To != 1 {
		t.Fatalf("global level %d, changes %+v; want 1 and one global rise", n.GlobalLevel(), got)
	}
	n.Tick(sec(4))
	for _, p := range []netip.Prefix{quiet, pfx(1), netip.MustParsePrefix("198.51.100.0/24")} {
		q := n.Quote(p, sec(4))
		if q.Level != 2 || q.Unit != c.Unit(2) || q.MinUnit != c.Unit(1) || !q.NextFall.Equal(sec(9)) {
			t.Fatalf("%v under pressure: %+v", p, q)
		}
	}
	// The global level adds to a network's own.
	n.Spend(pfx(1), 1000, true, sec(4.5))
	n.AddInFlight(-15) // 5: at most half of 10
	n.Tick(sec(5))
	// Network 1 rose from 0 to 1; the global level rose from 1 to 2 at 4 s.
	if q := n.Quote(pfx(1), sec(5)); q.Level != 3 || q.MinUnit != c.Unit(1) {
		t.Fatalf("network and global levels: %+v, want 1+2 and MinUnit of 0+1", q)
	}
	// The tick at 5 s saw 20 in flight, so it does not count; 6..10 do.
	for tick := 6; tick <= 10; tick++ {
		n.Tick(sec(float64(tick)))
	}
	if n.GlobalLevel() != 1 {
		t.Fatalf("global level %d after 5 calm ticks, want 1", n.GlobalLevel())
	}
	var returns []Change
	for tick := 11; tick <= 20; tick++ {
		for _, ch := range n.Tick(sec(float64(tick))) {
			if ch.Global {
				returns = append(returns, ch)
			}
		}
	}
	if n.GlobalLevel() != 0 || len(returns) != 1 || returns[0].From != 1 || returns[0].To != 0 || returns[0].Peak != 2 {
		t.Fatalf("global level %d, changes %+v; want 0 and one return", n.GlobalLevel(), returns)
	}
	n.AddInFlight(-1000)
	if n.InFlight() != 0 {
		t.Fatalf("in flight %d, want 0", n.InFlight())
	}
	// Between half and the target: neither rises nor counts as calm.
	n.AddInFlight(8)
	for tick := 21; tick <= 30; tick++ {
		n.Tick(sec(float64(tick)))
	}
	if n.GlobalLevel() != 0 {
		t.Fatal("8 in flight raised the global level")
	}
	// Disabled: it decays.
	n.AddInFlight(50)
	n.Tick(sec(31))
	n.Tick(sec(32))
	if n.GlobalLevel() != 1 {
		t.Fatal("setup")
	}
	c.PressureTarget = 0
	n.Configure(c)
	for tick := 33; tick <= 37; tick++ {
		n.Tick(sec(float64(tick)))
	}
	if n.GlobalLevel() != 0 {
		t.Fatalf("global level %d with max_in_flight off", n.GlobalLevel())
	}
}

// TestConcurrent runs Quote and Spend from many goroutines while Tick,
// Snapshot, Configure and AddInFlight run; meant for go test -race.
func TestConcurrent(t *testing.T) {
	c := Config{MaxNetworks: 200, PressureTarget: 50}.WithDefaults()
	n := NewNetworks(c)
	var clock atomic.Int64 // nanoseconds since t0
	nowf := func() time.Time { return t0.Add(time.Duration(clock.Load())) }
	var stop atomic.Bool // the workers are done
	var maxGlobal atomic.Int64
	var workers, ticker sync.WaitGroup
	for w := range 8 {
		workers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 20000 {
				var p netip.Prefix
				cost := r.Float64() * 3
				switch r.IntN(20) {
				case 0: // a flooder
					p, cost = pfx(0), 100
				case 1, 2, 3, 4:
					p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(r.IntN(64))}), 48)
				default:
					p = pfx(r.IntN(400))
				}
				now := nowf()
				q := n.Quote(p, now)
				if q.MinUnit > q.Unit || q.Level > c.MaxLevel() {
					t.Errorf("bad quote %+v", q)
					return
				}
				n.Spend(p, cost, r.IntN(5) != 0, now)
				n.AddInFlight(1)
				n.AddInFlight(-1)
			}
		})
	}
	ticker.Go(func() {
		high := false // 100 more in flight, half of the time
		defer func() {
			if high {
				n.AddInFlight(-100)
			}
		}()
		for i := 0; !stop.Load(); i++ {
			switch i % 40 {
			case 0:
				n.AddInFlight(100)
				high = true
			case 20:
				n.AddInFlight(-100)
				high = false
			}
			clock.Add(int64(100 * time.Millisecond))
			n.Tick(nowf())
			if i%10 == 0 {
				if snap := n.Snapshot(nowf()); snap.InFlight < 0 || snap.Highest > c.MaxLevel() {
					t.Errorf("bad snapshot %+v", snap)
				}
				maxGlobal.Store(max(maxGlobal.Load(), int64(n.GlobalLevel())))
			}
			if i%25 == 0 {
				c2 := c
				c2.MaxNetworks = 100 + i%200
				c2.MaxUnit = 1 << (20 + i%6)
				n.Configure(c2)
			}
		}
	})
	workers.Wait()
	stop.Store(true)
	ticker.Wait()
	n.Configure(c)
	snap := n.Snapshot(nowf())
	if snap.InFlight != 0 || snap.Tracked > c.MaxNetworks+8 {
		t.Fatalf("after the run: %d in flight, %d tracked", snap.InFlight, snap.Tracked)
	}
	t.Logf("%d networks tracked, %d evicted, highest level %d; global level up to %d", snap.Tracked, snap.Evicted, snap.Highest, maxGlobal.Load())
}

// TestForgetShrinks: networks back at calm with a full bucket are forgotten,
// and the table gives their memory back.
func TestForgetShrinks(t *testing.T) {
	n := NewNetworks(Config{}.WithDefaults())
	for i := range 40000 {
		n.Spend(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32), 1, true, sec(0))
	}
	if snap := n.Snapshot(sec(0)); snap.Tracked != 40000 {
		t.Fatalf("%d tracked", snap.Tracked)
	}
	n.Tick(sec(1)) // 1 s of refill fills a bucket that lost 1
	var cp int
	for i := range n.shards {
		cp += cap(n.shards[i].meters)
	}
	if snap := n.Snapshot(sec(1)); snap.Tracked != 0 || cp != 0 {
		t.Fatalf("%d tracked, capacity %d left", snap.Tracked, cp)
	}
}

func TestNewNetworksPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "price_factor") {
			t.Fatalf("recovered %v, want a panic naming price_factor", r)
		}
	}()
	NewNetworks(Config{Factor: 0.5})
}

func TestConfigureGlobal(t *testing.T) {
	c := Config{PressureTarget: 1}.WithDefaults()
	n := NewNetworks(c)
	n.AddInFlight(5)
	for tick := 1; tick <= 7; tick++ {
		n.Tick(sec(float64(tick)))
	}
	if n.GlobalLevel() != 6 {
		t.Fatalf("global level %d", n.GlobalLevel())
	}
	c.MaxUnit = 1 << 16 // MaxLevel 3
	n.Configure(c)
	if n.GlobalLevel() != 3 || level(n, pfx(1), sec(7)) != 3 {
		t.Fatalf("global level %d after lowering max_price", n.GlobalLevel())
	}
	c.CalmUnit, c.StepUnit = 1<<16, 1<<16 // no levels
	n.Configure(c)
	got := n.Tick(sec(8))
	if n.GlobalLevel() != 0 || len(got) != 1 || !got[0].Global || got[0].From != 3 || got[0].To != 0 {
		t.Fatalf("global level %d, changes %+v", n.GlobalLevel(), got)
	}
}

func TestChangeString(t *testing.T) {
	p := netip.MustParsePrefix("2001:db8:1::/48")
	for _, tc := range []struct {
		c    Change
		want string
	}{
		{Change{Prefix: p, From: 0, To: 1, Peak: 1, Since: sec(0), Rate: 1234.5}, "2001:db8:1::/48 rose above calm (1234.5 cost units/s)"},
		{Change{Prefix: p, From: 1, To: 0, Peak: 13, Since: sec(0)}, "2001:db8:1::/48 back to calm (peak level 13, above calm since 2026-01-01T00:00:00Z)"},
		{Change{Prefix: p, From: 4, To: 0, Peak: 5, Since: sec(0), Dropped: true}, "2001:db8:1::/48 dropped at level 4 (peak 5, above calm since 2026-01-01T00:00:00Z)"},
		{Change{Global: true, From: 0, To: 1, Peak: 1, Since: sec(0)}, "global level rose above calm: the server's load passed max_in_flight"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

// TestPressureHoldsWhileDraining: above the target, the global level rises
// while the backlog grows, stays or drains slowly, and holds while it
// drains by a tenth or more of what is left above the target each tick.
func TestPressureHoldsWhileDraining(t *testing.T) {
	c := Config{PressureTarget: 10}.WithDefaults()
	n := NewNetworks(c)
	n.AddInFlight(1000)
	n.Tick(sec(1)) // the tick the backlog appeared in: 0 at its start
	levels := []int{}
	for i, inFlight := range []int{1000, 1000, 950, 800, 700, 640, 600, 600, 700} {
		if i > 0 {
			n.AddInFlight(inFlight - n.InFlight())
		}
		n.Tick(sec(float64(2 + i)))
		levels = append(levels, n.GlobalLevel())
	}
	// 1000 (rise), 1000 (stays: rise), 950 (50 < 94: rise), 800 (150 ≥
	// 79: hold), 700 (100 ≥ 69: hold), 640 (60 < 63: rise), 600 (40 < 59:
	// rise), 600 (rise), 700 (rise).
	if want := []int{1, 2, 3, 3, 3, 4, 5, 6, 7}; !slices.Equal(levels, want) {
		t.Fatalf("global levels %v, want %v", levels, want)
	}
}
