package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// SpendingSlots is how many slots a slot's spending is kept in Redis after
// it begins: long enough for every process to read it a few slots late.
const SpendingSlots = 8

// ExchangeSpending shares what client networks spent between the processes
// that use this Redis, so that each can price a network by what it spent
// at all of them. Spending is summed per scope (the resource whose prices
// it moves) and per slot (a price tick: the Unix time divided by slotLen,
// so processes whose clocks agree agree on slots) in one hash,
//
//	<prefix>spend:<scope>:<slot>   field: the network, value: cost units
//
// ExchangeSpending adds mine (this process's cost units by network) to
// slot's hash with HINCRBYFLOAT, makes the hash expire SpendingSlots slots
// after slot began, and returns the hash of each slot in read, summed over
// every process that added to it, this one included; all in one pipelined
// round trip, bounded by the store's Timeout and ctx. On an error, some of
// mine may have been added.
func (s *Store) ExchangeSpending(ctx context.Context, scope string, slot int64, slotLen time.Duration, mine map[string]float64, read []int64) ([]map[string]float64, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmds := make(rueidis.Commands, 0, len(mine)+1+len(read))
	if len(mine) > 0 {
		key := s.spendingKey(scope, slot)
		for network, cost := range mine {
			cmds = append(cmds, s.client.B().Hincrbyfloat().Key(key).Field(network).Increment(cost).Build())
		}
		ttl := (slotLen * SpendingSlots).Milliseconds()
		cmds = append(cmds, s.client.B().Pexpire().Key(key).Milliseconds(max(ttl, 1)).Build())
	}
	for _, r := range read {
		cmds = append(cmds, s.client.B().Hgetall().Key(s.spendingKey(scope, r)).Build())
	}
	results := s.client.DoMulti(ctx, cmds...)
	sums := make([]map[string]float64, len(read))
	first := len(results) - len(read)
	for i, res := range results {
		if err := res.Error(); err != nil {
			return nil, fmt.Errorf("redisstore: %s: exchanging spending: %w", s.addr, err)
		}
		if i < first {
			continue
		}
		fields, err := res.AsStrMap()
		if err != nil {
			return nil, fmt.Errorf("redisstore: %s: reading spending: %w", s.addr, err)
		}
		sum := make(map[string]float64, len(fields))
		for network, v := range fields {
			cost, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("redisstore: %s: spending of %q is %q, not a number", s.addr, network, v)
			}
			sum[network] = cost
		}
		sums[i-first] = sum
	}
	return sums, nil
}

// spendingKey is the key of scope's spending in slot.
func (s *Store) spendingKey(scope string, slot int64) string {
	return s.prefix + "spend:" + scope + ":" + strconv.FormatInt(slot, 10)
}
