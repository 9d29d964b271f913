package client

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/regtest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/scriptedwallet"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// syncWalletTxs is how many transactions the benchmark wallet has: like
// the measured 101-coinbase wallet of electrum-facts.md, every one costs a
// transaction.get and a get_merkle at sync.
const syncWalletTxs = 100

// BenchmarkWalletSync measures a wallet sync (Electrum 4.3.4's requests,
// replayed by package scriptedwallet, 30 addresses, 100 transactions)
// against the regtest server holding answers back as ElectrumX does
// (regtest.Config.Hold = 1 s), directly and through a fresh Proxy and the
// hashcash handler in Caddy, one after the other in each iteration:
//
//	go test -run '^$' -bench WalletSync -benchtime 5x ./internal/client
//
// free:   handler price 0 with network_budget (free while calm), the
// proxy started free (clientproxy --work 0); goal x-direct ≤ 1.1.
// priced: handler at the default fixed price (2^17 per cost 1.0), the
// proxy at its default guess; goal proxied ≤ direct + minting time, that
// is over-mint-ms ≤ 0.
//
// Metrics per sync: direct-ms and proxied-ms, x-direct (their ratio, the
// sums of all iterations), mint-ms (the proxy's minting time, summed over
// lines minted side by side), over-mint-ms (proxied − direct − mint),
// refusals (the proxy's resends) and the median request latency at the
// wallet, p50-direct-ms and p50-proxied-ms.
func BenchmarkWalletSync(b *testing.B) {
	for _, bc := range []struct {
		name    string
		handler string
		cfg     Config
	}{
		{"free", `,"price":0,"network_budget":100000,"network_burst":1000000`, Config{StartFree: true}},
		{"priced", ``, Config{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchWalletSync(b, bc.handler, bc.cfg)
		})
	}
}

func benchWalletSync(b *testing.B, handler string, cfg Config) {
	ctx := context.Background()
	w0, err := scriptedwallet.NewWallet(regtest.RegtestHRP, "bench", 20, 10)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := regtest.New(regtest.Config{
		Addresses:     []string{w0.Receiving[0].Address},
		InitialBlocks: syncWalletTxs,
		Hold:          regtest.ElectrumXHold,
	})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	direct := ln.Addr().String()

	caddyAddr := testsupport.FreeAddr(b, "127.0.0.1")
	caddytest.Start(b, caddytest.Layer4Config(caddyAddr,
		[]string{hashcashJSON(handler), caddytest.ProxyHandler(direct)}, ""), caddyAddr)

	// sync runs one wallet sync against addr and returns its duration and
	// the median request latency.
	sync := func(addr string) (time.Duration, time.Duration) {
		b.Helper()
		w, err := scriptedwallet.NewWallet(regtest.RegtestHRP, "bench", 20, 10)
		if err != nil {
			b.Fatal(err)
		}
		c, err := scriptedwallet.Dial(ctx, addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		rep, err := w.Sync(sctx, c)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Txs != syncWalletTxs {
			b.Fatalf("synced %d transactions, want %d", rep.Txs, syncWalletTxs)
		}
		var lat []time.Duration
		for _, call := range c.Calls() {
			lat = append(lat, call.Latency())
		}
		slices.Sort(lat)
		return rep.Duration, lat[len(lat)/2]
	}

	var direct_, proxied, mint, p50d, p50p time.Duration
	var retried uint64
	b.ResetTimer()
	for i := range b.N {
		// A fresh proxy each time: it knows nothing, as for a new user.
		cfg := cfg
		cfg.Server, cfg.Resource = caddyAddr, testResource
		p, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		pln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		pctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Serve(pctx, pln) }()

		// Alternate which goes first, so that neither always runs on a
		// warmer machine.
		run := func(proxy bool) {
			if proxy {
				d, l := sync(pln.Addr().String())
				proxied, p50p = proxied+d, p50p+l
			} else {
				d, l := sync(direct)
				direct_, p50d = direct_+d, p50d+l
			}
		}
		run(i%2 == 1)
		run(i%2 == 0)
		stop()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		st := p.Stats()
		mint += st.MintTime
		retried += st.Retried
		if st.GaveUp != 0 {
			b.Fatalf("proxy stats %+v: a refusal reached the wallet", st)
		}
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
	b.ReportMetric(ms(direct_), "direct-ms")
	b.ReportMetric(ms(proxied), "proxied-ms")
	b.ReportMetric(float64(proxied)/float64(direct_), "x-direct")
	b.ReportMetric(ms(mint), "mint-ms")
	b.ReportMetric(ms(proxied-direct_-mint), "over-mint-ms")
	b.ReportMetric(float64(retried)/n, "refusals")
	b.ReportMetric(ms(p50d), "p50-direct-ms")
	b.ReportMetric(ms(p50p), "p50-proxied-ms")
}
