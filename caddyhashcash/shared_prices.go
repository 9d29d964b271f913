package caddyhashcash

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/electrum-hashcash/electrum-hashcash/internal/pricing"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay/redisstore"
)

// Spending exchanges: how far behind the current slot an instance reads
// the others' spending, and the most networks one exchange adds.
const (
	// readLag is how many slots (price ticks) an instance waits before it
	// reads a slot's spending: the other instances add theirs at their own
	// ticks, anywhere in the slot, so a slot is complete one slot after it
	// ends when the instances' clocks agree within a tick.
	readLag = 2
	// maxSharedNetworks bounds the networks one instance adds to one
	// exchange (the highest spenders), and so the exchange's size.
	maxSharedNetworks = 10_000
)

// spendingSharer shares the networks' spending of one resource with the
// other caddy instances that use the same Redis store, so that each
// instance prices a network by what it spent at all of them: at each price
// tick, before the levels move, it adds what each network spent here since
// the last tick to Redis, and takes what the others added readLag slots
// ago from the networks' buckets (pricing.Networks.SpendElsewhere).
//
// Only tickPrices calls it, from one goroutine. When Redis cannot be used,
// each instance prices by its own meters, never at calm.
type spendingSharer struct {
	store *redisstore.Store
	scope string // the resource

	// own is what this instance added, by slot and network, until the
	// slot is read: the others' spending is the slot's sum less it.
	own      map[int64]map[string]float64
	lastRead int64 // the latest slot read; 0 before the first exchange
	buf      []pricing.Spending
	failing  bool // the latest exchange failed
}

// sharerFor returns the sharer for store, keeping cur if it shares
// through the same store (so what it added stays known), or nil when
// store is nil.
func sharerFor(cur *spendingSharer, store *redisstore.Store, resource string) *spendingSharer {
	switch {
	case store == nil:
		return nil
	case cur != nil && cur.store == store:
		return cur
	}
	return &spendingSharer{store: store, scope: resource, own: make(map[int64]map[string]float64)}
}

// exchange adds this instance's spending since the last exchange to Redis
// and takes the others' from n's buckets, for the tick at now.
func (sh *spendingSharer) exchange(n *pricing.Networks, now time.Time, logger *zap.Logger) {
	tick := n.Config().Tick
	slot := now.UnixNano() / int64(tick)
	sh.buf = n.DrainLocal(sh.buf[:0])
	if len(sh.buf) > maxSharedNetworks {
		slices.SortFunc(sh.buf, func(a, b pricing.Spending) int { return cmp.Compare(b.Cost, a.Cost) })
		sh.buf = sh.buf[:maxSharedNetworks]
	}
	mine := make(map[string]float64, len(sh.buf))
	for _, sp := range sh.buf {
		if sp.Prefix.IsValid() {
			mine[sp.Prefix.String()] += sp.Cost
		}
	}
	upTo := slot - readLag
	from := upTo
	if sh.lastRead != 0 {
		from = max(sh.lastRead+1, upTo-readLag) // slots skipped by a late tick, a few at most
	}
	var read []int64
	for r := from; r <= upTo; r++ {
		read = append(read, r)
	}
	sums, err := sh.store.ExchangeSpending(context.Background(), sh.scope, slot, tick, mine, read)
	if err != nil {
		if !sh.failing && logger != nil {
			logger.Warn("price meters not shared: pricing by this instance's own meters until Redis answers",
				zap.String("resource", sh.scope), zap.Error(err))
		}
		sh.failing = true
		return
	}
	if sh.failing && logger != nil {
		logger.Info("price meters shared again", zap.String("resource", sh.scope))
	}
	sh.failing = false
	if len(mine) > 0 {
		if sh.own[slot] == nil {
			sh.own[slot] = make(map[string]float64, len(mine))
		}
		for network, cost := range mine {
			sh.own[slot][network] += cost
		}
	}
	for i, r := range read {
		for network, sum := range sums[i] {
			others := sum - sh.own[r][network]
			if others <= 1e-9 {
				continue
			}
			if p, err := netip.ParsePrefix(network); err == nil {
				n.SpendElsewhere(p, others, now)
			}
		}
	}
	if len(read) > 0 {
		sh.lastRead = upTo
	}
	for s := range sh.own {
		if s <= upTo {
			delete(sh.own, s)
		}
	}
}
