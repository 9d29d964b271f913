//go:build systemtest

package caddyhashcash

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/electrum-hashcash/electrum-hashcash/internal/pricing"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay/redisstore"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// TestSharedSpendingPricesTheTotal: a network spending 7 units a second at
// each of two instances, within the budget of 10 at each but over it in
// all, rises at both when they share their spending through one Redis, and
// at neither when they do not. When Redis goes away, each instance keeps
// its levels and prices by its own meters (never at calm), and says so
// once.
func TestSharedSpendingPricesTheTotal(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	const tick = 100 * time.Millisecond
	c := pricing.Config{Budget: 10, Burst: 10, Tick: tick}.WithDefaults()
	spread := netip.MustParsePrefix("192.0.2.0/24")
	open := func() *redisstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), testsupport.WaitTimeout)
		defer cancel()
		s, err := redisstore.Open(ctx, redisstore.Options{Addr: r.Addr, Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	core, logs := observer.New(zap.InfoLevel)
	logger := zap.New(core)
	// run spends 0.7 units a tick at each instance (7 a second) for ticks
	// ticks of synthetic time from start, exchanging before each tick when
	// the instances have sharers, and returns the levels at the end.
	run := func(a, b *pricing.Networks, sa, sb *spendingSharer, start time.Time, ticks int) (int, int) {
		var now time.Time
		for k := 1; k <= ticks; k++ {
			for i := range 7 {
				at := start.Add(time.Duration(k-1)*tick + time.Duration(i)*tick/7)
				a.Spend(spread, 0.1, true, at)
				b.Spend(spread, 0.1, true, at)
			}
			now = start.Add(time.Duration(k) * tick)
			if sa != nil {
				sa.exchange(a, now, logger)
				sb.exchange(b, now, logger)
			}
			a.Tick(now)
			b.Tick(now)
		}
		return a.Quote(spread, now).Level, b.Quote(spread, now).Level
	}
	start := time.Now().Truncate(tick)

	if la, lb := run(pricing.NewNetworks(c), pricing.NewNetworks(c), nil, nil, start, 30); la != 0 || lb != 0 {
		t.Fatalf("unshared: levels %d and %d, want calm: 7 units/s is within the budget at each", la, lb)
	}

	a, b := pricing.NewNetworks(c), pricing.NewNetworks(c)
	sa, sb := sharerFor(nil, open(), "electrum.test:1"), sharerFor(nil, open(), "electrum.test:1")
	start = start.Add(time.Hour) // slots of their own
	la, lb := run(a, b, sa, sb, start, 30)
	if la == 0 || lb == 0 {
		t.Fatalf("shared: levels %d and %d, want both above calm: 14 units/s in all is over the budget of 10", la, lb)
	}
	keys := r.MustDo(t, "KEYS", "hashcash:spend:electrum.test:1:*").([]any)
	if len(keys) == 0 {
		t.Fatal("no spending in Redis")
	}
	for _, k := range keys {
		if ttl := r.MustDo(t, "PTTL", k.(string)).(int64); ttl <= 0 || ttl > (redisstore.SpendingSlots*tick).Milliseconds() {
			t.Errorf("%s expires in %d ms, want within %d slots", k, ttl, redisstore.SpendingSlots)
		}
	}

	// Redis gone: the levels stay where they are (the network still
	// floods, each instance sees its part), and each instance logs the
	// failure once.
	r.Kill(t)
	ka, kb := run(a, b, sa, sb, start.Add(30*tick), 10)
	if ka == 0 || kb == 0 {
		t.Errorf("Redis gone: levels %d and %d fell to calm, want each instance's own meters to keep them", ka, kb)
	}
	if n := logs.FilterMessageSnippet("price meters not shared").Len(); n != 2 {
		t.Errorf("logged the failed exchange %d times, want once per instance", n)
	}
	r.Restart(t)
	run(a, b, sa, sb, start.Add(40*tick), 3)
	if n := logs.FilterMessageSnippet("price meters shared again").Len(); n != 2 {
		var all []string
		for _, e := range logs.All() {
			all = append(all, e.Message)
		}
		t.Errorf("logged the recovery %d times, want once per instance: %s", n, strings.Join(all, "; "))
	}
}
