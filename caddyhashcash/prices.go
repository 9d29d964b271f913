package caddyhashcash

import (
	"math"

	"github.com/electrum-hashcash/electrum-hashcash/internal/methodcost"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// DefaultPrice is the work a request of cost 1.0 requires unless configured:
// 2^17 SHA-256 attempts, about 10 ms on one core of a current x86-64 CPU.
const DefaultPrice = stamp.Work(1 << 17)

// MethodCosts returns the relative costs of Electrum methods, after
// ElectrumX's own per-request costs (its session.bump_cost calls). A method's
// default price is its cost times the handler's price; methods not listed
// cost 1.0. Entries in the handler's method_prices override these.
// clientproxy predicts prices from the same table (package methodcost).
func MethodCosts() map[string]float64 { return methodcost.Table() }

// overridePrices returns the method_prices option as a price table.
func overridePrices(overrides map[string]stamp.Work) map[string]uint64 {
	prices := make(map[string]uint64, len(overrides))
	for method, w := range overrides {
		prices[method] = uint64(w)
	}
	return prices
}

// methodPrices builds the per-method price table from MethodCosts scaled by
// price, with overrides taking precedence.
func methodPrices(price stamp.Work, overrides map[string]stamp.Work) map[string]uint64 {
	prices := make(map[string]uint64, len(overrides)+32)
	for method, cost := range MethodCosts() {
		// Round up, so that a priced method never becomes free.
		prices[method] = uint64(math.Ceil(cost * float64(price)))
	}
	for method, w := range overrides {
		prices[method] = uint64(w)
	}
	return prices
}
