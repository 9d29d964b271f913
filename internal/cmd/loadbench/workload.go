package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// method is one Electrum request shape: how often the mix sends it, its
// params, and what the upstream answers.
type method struct {
	name   string
	weight int
	params func(rng *rand.Rand) string // the JSON params array, or "" to omit
	result string                      // the JSON result the upstream sends
}

// hexString returns n pseudo-random lowercase hex digits.
func hexString(rng *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[rng.IntN(16)]
	}
	return string(b)
}

// quotedHex returns a JSON string of n hex digits.
func quotedHex(rng *rand.Rand, n int) string { return `"` + hexString(rng, n) + `"` }

// mix returns the request mix: the requests of the measured Electrum 4.3.4
// session of a wallet with 101 transactions (248 requests: 11 at connect,
// 31 scripthash.subscribe, 1 get_history, 101 transaction.get, 101
// get_merkle, 2 block.header and 1 block.headers chunk), with the chunk
// replaced by a block.header to keep responses small. Responses have the
// sizes ElectrumX 1.20 gives them, without its padding.
func mix() []method {
	seed := rand.New(rand.NewPCG(1, 1))
	history := make([]string, 101)
	for i := range history {
		history[i] = `{"tx_hash":` + quotedHex(seed, 64) + `,"height":` + strconv.Itoa(800000+i) + `}`
	}
	merkle := make([]string, 12)
	for i := range merkle {
		merkle[i] = quotedHex(seed, 64)
	}
	header := quotedHex(seed, 160)
	none := func(*rand.Rand) string { return "" }
	return []method{
		{"server.version", 1, func(*rand.Rand) string { return `["electrum/4.3.4","1.4"]` }, `["ElectrumX 1.20.0","1.4"]`},
		{"blockchain.headers.subscribe", 1, none, `{"hex":` + header + `,"height":800000}`},
		{"blockchain.estimatefee", 4, func(r *rand.Rand) string { return "[" + []string{"25", "10", "5", "2"}[r.IntN(4)] + "]" }, `0.0001`},
		{"server.banner", 1, none, `"You are connected to an ElectrumX 1.20.0 server."`},
		{"server.donation_address", 1, none, `""`},
		{"server.peers.subscribe", 1, none, `[]`},
		{"blockchain.relayfee", 1, none, `1e-05`},
		{"mempool.get_fee_histogram", 1, none, `[]`},
		{"blockchain.scripthash.subscribe", 31, func(r *rand.Rand) string { return "[" + quotedHex(r, 64) + "]" }, quotedHex(seed, 64)},
		{"blockchain.scripthash.get_history", 1, func(r *rand.Rand) string { return "[" + quotedHex(r, 64) + "]" }, "[" + strings.Join(history, ",") + "]"},
		{"blockchain.transaction.get", 101, func(r *rand.Rand) string { return "[" + quotedHex(r, 64) + "]" }, quotedHex(seed, 2*250)},
		{"blockchain.transaction.get_merkle", 101, func(r *rand.Rand) string {
			return "[" + quotedHex(r, 64) + "," + strconv.Itoa(700000+r.IntN(100000)) + "]"
		}, `{"block_height":800000,"merkle":[` + strings.Join(merkle, ",") + `],"pos":5}`},
		{"blockchain.block.header", 3, func(r *rand.Rand) string { return "[" + strconv.Itoa(r.IntN(800000)) + "]" }, header},
	}
}

// picker draws methods by weight.
type picker struct {
	methods []method
	total   int
}

func newPicker(ms []method) *picker {
	p := &picker{methods: ms}
	for _, m := range ms {
		p.total += m.weight
	}
	return p
}

func (p *picker) pick(rng *rand.Rand) *method {
	n := rng.IntN(p.total)
	for i := range p.methods {
		if n < p.methods[i].weight {
			return &p.methods[i]
		}
		n -= p.methods[i].weight
	}
	return &p.methods[len(p.methods)-1]
}

// pool holds one connection's request lines, each ending in a line feed, in
// one buffer: line i is buf[off[i]:off[i+1]] and has id i. Consecutive lines
// go out in one write without copying.
type pool struct {
	buf []byte
	off []int
}

func (p *pool) lines() int { return len(p.off) - 1 }

// body appends the request with the given id, as Electrum 4.3.4 writes it:
// "params" last, and left out when empty.
func body(dst []byte, m *method, id int, params string) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","method":"`...)
	dst = append(dst, m.name...)
	dst = append(dst, `","id":`...)
	dst = strconv.AppendInt(dst, int64(id), 10)
	if params != "" {
		dst = append(dst, `,"params":`...)
		dst = append(dst, params...)
	}
	return append(dst, '}')
}

// minter stamps request bodies for one resource at one work.
type minter struct {
	resource string
	work     uint64
	// when returns the time to mint line i of connection conn's pool for:
	// when it is planned to be sent.
	when func(conn, i int) int64
}

// appendStamped appends b with a stamp minted for when.
func (mt *minter) appendStamped(dst, b []byte, when int64) ([]byte, error) {
	return stamp.AppendStamped(context.Background(), dst, b, stamp.Stamp{Work: mt.work, Time: when, Resource: mt.resource}, 1)
}

// buildPools makes one pool of n lines per connection, ids 0 to n-1, with
// stamps if mt is not nil, using every core.
func buildPools(conns, n int, mt *minter, methods *picker, seed uint64) ([]*pool, error) {
	const chunk = 4096
	type part struct {
		conn, first int
		buf         []byte
		off         []int
	}
	var parts []*part
	for c := range conns {
		for first := 0; first < n; first += chunk {
			parts = append(parts, &part{conn: c, first: first})
		}
	}
	var (
		wg      sync.WaitGroup
		next    = make(chan *part)
		errOnce sync.Once
		failure error
		failed  atomic.Bool
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var b []byte
			for p := range next {
				if failed.Load() {
					continue
				}
				rng := rand.New(rand.NewPCG(seed^uint64(p.conn)<<32, uint64(p.first)))
				for id := p.first; id < min(p.first+chunk, n); id++ {
					m := methods.pick(rng)
					b = body(b[:0], m, id, m.params(rng))
					p.off = append(p.off, len(p.buf))
					if mt == nil {
						p.buf = append(p.buf, b...)
					} else {
						var err error
						if p.buf, err = mt.appendStamped(p.buf, b, mt.when(p.conn, id)); err != nil {
							errOnce.Do(func() { failure = err })
							failed.Store(true)
							break
						}
					}
					p.buf = append(p.buf, '\n')
				}
			}
		})
	}
	for _, p := range parts {
		next <- p
	}
	close(next)
	wg.Wait()
	if failure != nil {
		return nil, fmt.Errorf("minting: %w", failure)
	}
	pools := make([]*pool, conns)
	for c := range pools {
		pools[c] = &pool{}
	}
	for _, p := range parts {
		pl := pools[p.conn]
		base := len(pl.buf)
		for _, o := range p.off {
			pl.off = append(pl.off, base+o)
		}
		pl.buf = append(pl.buf, p.buf...)
	}
	for _, pl := range pools {
		pl.off = append(pl.off, len(pl.buf))
	}
	return pools, nil
}

// mintRate measures how many stamps per second buildPools mints.
func mintRate(work uint64, methods *picker) (float64, error) {
	const n = 8192
	mt := &minter{resource: resource, work: work, when: func(int, int) int64 { return time.Now().Unix() }}
	start := time.Now()
	if _, err := buildPools(2, n/2, mt, methods, 0); err != nil {
		return 0, err
	}
	return n / time.Since(start).Seconds(), nil
}
