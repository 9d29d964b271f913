package pricing_test

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/pricing"
)

// The worked example of the package documentation: with the defaults, a
// network with 2^30 SHA-256 attempts per second (about 90 cores) sends
// cost-1 requests as fast as it can mint them at the quoted price, and a
// network next to it sends one request a second.
func Example() {
	c := pricing.Config{}.WithDefaults()
	n := pricing.NewNetworks(c)
	flooder := netip.MustParsePrefix("2001:db8:1::/48")
	honest := netip.MustParsePrefix("192.0.2.0/24")
	const hashRate = 1 << 30 // SHA-256 attempts per second
	const steps = 100        // simulated steps per tick
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dt := c.Tick / steps

	fmt.Println("tick  level      unit  accepted/s   bucket  honest")
	unit := n.Quote(flooder, now).Unit // the price its stamps are minted for
	var later float64                  // accepted from tick 65 on
	for tick := 1; tick <= 120; tick++ {
		var accepted float64
		for range steps {
			now = now.Add(dt)
			k := 1000 * dt.Seconds() // while free: 1000 requests a second
			if unit > 0 {
				k = hashRate * dt.Seconds() / float64(unit)
			}
			n.Spend(flooder, k, true, now)
			accepted += k
			unit = n.Quote(flooder, now).Unit
		}
		n.Spend(honest, 1, true, now)
		for _, ch := range n.Tick(now) {
			fmt.Printf("      %s\n", ch)
		}
		var bucket float64
		for _, ns := range n.Snapshot(now).Networks {
			if ns.Prefix == flooder {
				bucket = ns.Tokens
			}
		}
		if tick > 64 {
			later += accepted
		}
		if tick <= 14 || tick >= 62 && tick <= 72 {
			q := n.Quote(flooder, now)
			fmt.Printf("%4d  %5d  %8d  %10.1f  %7.2f  %6d\n", tick, q.Level, q.Unit,
				accepted/c.Tick.Seconds(), math.Round(bucket*100)/100+0, n.Quote(honest, now).Level)
		}
	}
	fmt.Printf("ticks 65-120: %.1f accepted/s\n", later/56/c.Tick.Seconds())
	// Output:
	// tick  level      unit  accepted/s   bucket  honest
	//       2001:db8:1::/48 rose above calm (1000.0 cost units/s)
	//    1      1     16384      1000.0  -200.00       0
	//    2      2     32768     64890.6  -200.00       0
	//    3      3     65536     33095.7  -200.00       0
	//    4      4    131072     16547.8  -200.00       0
	//    5      5    262144      8273.9  -200.00       0
	//    6      6    524288      4137.0  -200.00       0
	//    7      7   1048576      2068.5  -200.00       0
	//    8      8   2097152      1034.2  -200.00       0
	//    9      9   4194304       517.1  -200.00       0
	//   10     10   8388608       258.6  -200.00       0
	//   11     11  16777216       129.3  -200.00       0
	//   12     12  33554432        64.6  -200.00       0
	//   13     13  67108864        32.3  -200.00       0
	//   14     13  67108864        16.2  -196.04       0
	//   62     13  67108864        16.0    -4.04       0
	//   63     13  67108864        16.0    -0.04       0
	//   64     13  67108864        16.0     3.96       0
	//   65     13  67108864        16.0     7.96       0
	//   66     13  67108864        16.0    11.96       0
	//   67     13  67108864        16.0    15.96       0
	//   68     12  33554432        16.0    19.96       0
	//   69     12  33554432        31.8     8.12       0
	//   70     13  67108864        32.0    -3.88       0
	//   71     13  67108864        16.2    -0.04       0
	//   72     13  67108864        16.0     3.96       0
	// ticks 65-120: 20.0 accepted/s
}
