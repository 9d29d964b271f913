// Package pricing sets the price of each client network's requests from how
// much that network spends, so that a flooder pays more and more until its
// accepted requests fit its budget, while every other network keeps paying
// the calm price. It is pure: no I/O, no goroutines, no clock of its own; the
// caller passes the time to every call and calls Tick on a timer.
//
// # Prices
//
// A request's price, in expected SHA-256 attempts, is its method's cost (in
// ElectrumX cost units: server.ping 0.1, blockchain.scripthash.subscribe 1.0,
// server.add_peer 100) times the unit price of its network's level:
//
//	Unit(0) = CalmUnit                       calm; may be 0 (free)
//	Unit(1) = StepUnit                       the first level above calm
//	Unit(l) = StepUnit × Factor^(l−1)        capped at MaxUnit
//
// and Price(cost, l) = ⌈cost × Unit(l)⌉. MaxLevel is the first level whose
// unit is MaxUnit. With the defaults (calm_price 0, price_step 2^14,
// price_factor 2, max_price 2^26) the ladder is 0, 2^14, 2^15, … 2^26 at
// level 13: from free to about 1.4 ms of one core (at 12 M SHA-256/s) at
// level 1, and to about 5.6 s at level 13.
//
// The level a request pays is its network's own level plus the global level,
// capped at MaxLevel (Quote). Networks are grouped as connlimit does: /24 for
// IPv4, /48 for IPv6.
//
// # The meter
//
// Each network has a token bucket in cost units: it refills at Budget per
// second (network_budget, default 20) up to Burst (network_burst, default
// 200), and starts full. Spend takes a request's cost when it was accepted,
// and RefusedWeight × its cost (refused_weight, default 0.25) when it was
// refused. A bucket may go into debt, down to −Burst.
//
// Every Tick (price_tick, default 1 s), each network is judged on the tick
// that ended:
//
//   - in debt at the tick and it spent more than Budget × the tick's length
//     during it: it rises one level (the unit price is multiplied by Factor),
//     up to MaxLevel;
//   - not in debt and it spent at most Budget × the tick's length: the tick
//     is within budget, and after CalmTicks (calm_ticks, default 5)
//     consecutive ticks within budget it falls one level;
//   - otherwise (paying a debt back, or spending saved tokens) its level
//     stays and its run of ticks within budget starts again;
//   - a network at level 0 with a full bucket is forgotten: it is the same as
//     a network never seen.
//
// Debt is never forgiven, only capped at −Burst, so over any time T in which
// its bucket does not hit that floor a network's accepted requests cost at
// most Budget × T + 2 × Burst. (A network at the floor is so far over its
// budget that it rises every tick, unless it is at MaxLevel already.)
//
// The table holds at most MaxNetworks (max_networks, default 100000). When
// it is full, a new network makes room by dropping the coldest: networks at
// calm before networks above it, and among them those whose latest Spend is
// oldest first (max_networks/64 at once). A dropped network starts again at
// calm with a full bucket, and Tick reports it (Change.Dropped).
//
// # Tolerance
//
// A client mints for the price it was quoted, which may rise while it mints.
// For Tolerance (price_tolerance, default 10 s) after a rise, stamps minted
// for the unit of the effective level before that rise are still accepted:
// Quote.MinUnit is that unit within Tolerance of the latest rise, and Unit
// after. A refusal asks for Quote.Price(cost); a stamp passes with at least
// Quote.MinPrice(cost).
//
// # The global level
//
// The global level is added to every network's level. It follows the
// Electrum server's load as the proxy sees it: the number of accepted
// requests not yet answered (AddInFlight), forwarded or, where the proxy
// caps what it forwards at PressureTarget (caddyhashcash does), waiting to
// be. When that number stayed above
// PressureTarget (max_in_flight) throughout a tick, the global level rises by
// one, unless the backlog above the target shrank over that tick by at least
// a tenth of what is left of it: then the level reached already holds the
// load under what the server serves, the backlog will be gone within about
// ten ticks, and the level holds (a slow server works off a long queue over
// many ticks, and rising all that time would overshoot). After CalmTicks
// consecutive ticks throughout which it was at most PressureTarget/2, it
// falls by one. PressureTarget 0 (the default) turns it
// off. Nothing else moves it: one network's flood moves only that network's
// level, unless the flood's accepted requests (at most its budget, see below)
// are enough to load the server.
//
// # Worked example
//
// The defaults, and two networks. 2001:db8:1::/48 mints as fast as 2^30
// SHA-256 attempts per second allow (about 90 cores at 12 M/s) and sends
// every request as soon as its stamp is ready, each of cost 1.0 and paid at
// the unit quoted when it started minting; while requests are free it sends
// 1000 a second. 192.0.2.0/24 sends one request a second. At level l its
// accepted rate is H/Unit(l) = 2^30/2^(13+l) = 2^(17−l) requests per second:
// 65 536 at level 1, halving with each level, 32 at level 12 and 16 at level
// 13. Level, unit and bucket after each tick, accepted requests during it
// (from Example, which runs this):
//
//	tick  level      unit  accepted/s   bucket  honest
//	   1      1     16384      1000.0  -200.00       0
//	   2      2     32768     64890.6  -200.00       0
//	   3      3     65536     33095.7  -200.00       0
//	 …
//	  12     12  33554432        64.6  -200.00       0
//	  13     13  67108864        32.3  -200.00       0
//	  14     13  67108864        16.2  -196.04       0
//	 …
//	  63     13  67108864        16.0    -0.04       0
//	  64     13  67108864        16.0     3.96       0
//	 …
//	  68     12  33554432        16.0    19.96       0
//	  69     12  33554432        31.8     8.12       0
//	  70     13  67108864        32.0    -3.88       0
//	  71     13  67108864        16.2    -0.04       0
//	  72     13  67108864        16.0     3.96       0
//	ticks 65-120: 20.0 accepted/s
//
// The rise: 1000 free requests in the first second empty the bucket (200)
// and leave it in debt, so the network rises to level 1. From then on, as
// long as H/Unit > Budget, it spends more than its budget every tick while
// in debt, and rises one level per tick: the price doubles each tick, so
// within about log2(H/(price_step × Budget)) + 1 = log2(2^30/(2^14 × 20)) + 1
// ≈ 13 ticks its rate H/Unit is at or below the budget. Here that is level
// 13, 16 requests a second.
//
// The steady state: at level 13 it pays its debt back at 20 − 16 = 4 cost
// units a second (ticks 14 to 63), then stays within budget for calm_ticks
// = 5 ticks (64 to 68) and falls to level 12, where it spends 32 a second.
// That probe is paid from the 20 tokens it saved: two ticks later it is in
// debt and over budget again and rises back to 13. The cycle (8 ticks: 6 at
// 16/s, 2 at 32/s) averages exactly 20 requests a second, its budget: the
// bucket forgives no debt, so whatever the level does, the accepted rate
// over a long time cannot exceed the budget. The CalmTicks hysteresis makes
// the probes rare (one every CalmTicks + 3 ticks here, and none at all
// while a debt is being paid), so the price moves between two levels instead
// of falling back towards calm, and a client in that network sees a stable
// price.
//
// The other network: 192.0.2.0/24's level stays 0 (the honest column)
// throughout. Its meter is its own; Tick judges each network only on its own
// Spends; the only term shared between networks is the global level, which
// moves only on the server's load.
//
// The limit: the ladder stops at max_price. A network with more than
// Budget × max_price attempts per second (20 × 2^26 ≈ 1.3 G/s, about 110
// cores) still gets H/max_price requests a second at the top level; raise
// max_price (or lower network_budget) to hold larger ones to their budget.
//
// An honest wallet that subscribes to 300 scripthashes on connecting (300
// cost units at once, free while calm) leaves its bucket 100 in debt: it
// rises to level 1 at the next tick (2^14 attempts, about 1.4 ms of one core
// per request), pays the debt back within 5 s if it then idles, and is back
// at calm about 10 s after the burst (TestHonestBurst).
package pricing
