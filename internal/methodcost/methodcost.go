// Package methodcost is the table of what Electrum methods cost a server,
// relative to each other, that the hashcash handler prices requests by and
// that clientproxy predicts prices from: a method's price is its cost times
// the price of a cost-1.0 request (the unit price), rounded up. It has no
// dependencies, so that clientproxy does not link Caddy to share it.
package methodcost

// costs are after ElectrumX 1.20's own per-request costs (its
// session.bump_cost calls).
var costs = map[string]float64{
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

// Table returns a copy of the table: the relative cost of each listed
// method. Methods not listed cost 1.0.
func Table() map[string]float64 {
	t := make(map[string]float64, len(costs))
	for m, c := range costs {
		t[m] = c
	}
	return t
}

// Of returns the relative cost of method: its entry in the table, else 1.0.
func Of(method string) float64 {
	if c, ok := costs[method]; ok {
		return c
	}
	return 1
}
