package caddyhashcash

import (
	"math"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// DefaultPrice is the work a request of cost 1.0 requires unless configured:
// 2^17 SHA-256 attempts, about 10 ms on one core of a current x86-64 CPU.
const DefaultPrice = stamp.Work(1 << 17)

// MethodCosts returns the relative costs of Electrum methods, after
// ElectrumX's own per-request costs (its session.bump_cost calls). A method's
// default price is its cost times the handler's price; methods not listed
// cost 1.0. Entries in the handler's method_prices override these.
func MethodCosts() map[string]float64 {
	return map[string]float64{
		"server.version":                           0.5,
		"server.ping":                              0.1,
		"server.features":                          0.2,
		"server.banner":                            0.5,
		"server.donation_address":                  0.1,
		"server.peers.subscribe":                   1.0,
		"server.add_peer":                          100,
		"blockchain.headers.subscribe":             0.25,
		"blockchain.block.header":                  0.25,
		"blockchain.block.headers":                 1.0,
		"blockchain.estimatefee":                   0.1,
		"blockchain.relayfee":                      1.0,
		"mempool.get_fee_histogram":                1.0,
		"blockchain.transaction.get":               1.0,
		"blockchain.transaction.get_merkle":        1.0,
		"blockchain.transaction.id_from_pos":       1.0,
		"blockchain.transaction.broadcast":         1.0,
		"blockchain.scripthash.subscribe":          1.0,
		"blockchain.scripthash.unsubscribe":        0.1,
		"blockchain.scripthash.get_history":        1.0,
		"blockchain.scripthash.get_mempool":        1.0,
		"blockchain.scripthash.get_balance":        1.0,
		"blockchain.scripthash.listunspent":        1.0,
		"blockchain.scriptpubkey.subscribe":        1.0,
		"blockchain.scriptpubkey.get_history":      1.0,
		"blockchain.scriptpubkey.get_balance":      1.0,
		"blockchain.scriptpubkey.listunspent":      1.0,
		"blockchain.outpoint.subscribe":            1.0,
		"mempool.get_info":                         1.0,
		"blockchain.transaction.broadcast_package": 2.0,
	}
}

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
