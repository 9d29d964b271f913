package pricing

import (
	"math"
	"testing"
)

// TestSpendingElsewhereCounts: a network that spends within its budget at
// each of two instances, but over it in all, stays calm while each
// instance sees only its own spending, and rises at both once they
// exchange what DrainLocal reports through SpendElsewhere. DrainLocal
// reports only local spending, once.
func TestSpendingElsewhereCounts(t *testing.T) {
	c := Config{Budget: 10, Burst: 10}.WithDefaults()
	spread := pfx(7)
	for _, exchange := range []bool{false, true} {
		a, b := NewNetworks(c), NewNetworks(c)
		var buf []Spending
		for tick := 1; tick <= 10; tick++ {
			// 7 units a second at each instance: 14 in all, over the budget of 10.
			for i := range 7 {
				now := sec(float64(tick-1) + float64(i)/7)
				a.Spend(spread, 1, true, now)
				b.Spend(spread, 1, true, now)
			}
			now := sec(float64(tick))
			if exchange {
				fromA := a.DrainLocal(buf[:0])
				fromB := b.DrainLocal(nil)
				if len(fromA) != 1 || fromA[0].Prefix != spread || fromA[0].Cost != 7 {
					t.Fatalf("tick %d: DrainLocal = %+v, want 7 units of %s", tick, fromA, spread)
				}
				for _, sp := range fromA {
					b.SpendElsewhere(sp.Prefix, sp.Cost, now)
				}
				for _, sp := range fromB {
					a.SpendElsewhere(sp.Prefix, sp.Cost, now)
				}
				if again := a.DrainLocal(nil); len(again) != 0 {
					t.Fatalf("tick %d: DrainLocal after a drain and SpendElsewhere = %+v, want nothing", tick, again)
				}
				buf = fromA
			}
			a.Tick(now)
			b.Tick(now)
		}
		la, lb := level(a, spread, sec(10)), level(b, spread, sec(10))
		switch {
		case !exchange && (la != 0 || lb != 0):
			t.Errorf("each instance alone: levels %d and %d, want calm: 7 units/s is within the budget of 10", la, lb)
		case exchange && (la == 0 || lb == 0):
			t.Errorf("sharing spending: levels %d and %d, want both above calm: 14 units/s in all is over the budget of 10", la, lb)
		}
	}
	// SpendElsewhere ignores what is not a positive cost.
	n := NewNetworks(c)
	for _, bad := range []float64{0, -1, math.NaN()} {
		n.SpendElsewhere(spread, bad, sec(0))
	}
	if tracked(n, spread) {
		t.Error("SpendElsewhere of nothing added the network")
	}
}
