package client

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/regtest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/scriptedwallet"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// BenchmarkWalletMinting measures what a wallet sync spends minting at the
// handler's default fixed price (2^17 per cost 1.0), through a fresh Proxy
// (clientproxy --workers 1, 2, 8) and the hashcash handler in Caddy, for
// two wallets replayed by package scriptedwallet:
//
//	go test -run '^$' -bench WalletMinting -benchtime 2x ./internal/client
//
// fresh:   40 addresses (gap limit 30 and 10 change addresses, as the
// measured fresh wallet of electrum-facts.md), no history: 54 requests.
// txs=100: the wallet of BenchmarkWalletSync (30 addresses, 100
// transactions): 248 requests.
//
// The regtest server does not hold answers back (regtest.Config.Hold 0):
// the hold adds about a second per round trip whatever the price, which
// BenchmarkWalletSync measures; without it the sync time is minting plus
// loopback round trips.
//
// Metrics per sync: sync-ms (through the pair) and direct-ms (the same
// wallet straight to the regtest server), mint-ms (the wall time during
// which at least one line was being minted: the union of the proxy's
// minting intervals, from its debug log), mint-sum-ms (Stats.MintTime,
// summed over lines minted side by side), stamps (requests stamped),
// requests (the wallet's), refusals (the proxy's resends), Mhashes, and
// cpus (runtime.NumCPU(): more workers than cpus share them).
func BenchmarkWalletMinting(b *testing.B) {
	for _, shape := range []struct {
		name               string
		receiving, change  int
		blocks, txs        int
		fundFirstReceiving bool
	}{
		{name: "fresh", receiving: 30, change: 10},
		{name: "txs=100", receiving: 20, change: 10, blocks: syncWalletTxs, txs: syncWalletTxs, fundFirstReceiving: true},
	} {
		b.Run(shape.name, func(b *testing.B) {
			newWallet := func() *scriptedwallet.Wallet {
				w, err := scriptedwallet.NewWallet(regtest.RegtestHRP, "bench", shape.receiving, shape.change)
				if err != nil {
					b.Fatal(err)
				}
				return w
			}
			cfg := regtest.Config{InitialBlocks: shape.blocks} // 0: one block, paying to BurnScript
			if shape.fundFirstReceiving {
				cfg.Addresses = []string{newWallet().Receiving[0].Address}
			}
			srv, err := regtest.New(cfg)
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
				[]string{hashcashJSON(``), caddytest.ProxyHandler(direct)}, ""), caddyAddr)

			syncVia := func(b *testing.B, addr string) *scriptedwallet.SyncReport {
				b.Helper()
				c, err := scriptedwallet.Dial(context.Background(), addr)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				rep, err := newWallet().Sync(ctx, c)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Txs != shape.txs {
					b.Fatalf("synced %d transactions, want %d", rep.Txs, shape.txs)
				}
				return rep
			}

			for _, workers := range []int{1, 2, 8} {
				b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
					var syncT, directT, mintWall, mintSum time.Duration
					var stamped, retried, hashes, requests uint64
					for i := range b.N {
						// A fresh proxy each time: it knows nothing, as for a new user.
						ml := &mintLog{}
						p, err := New(Config{Server: caddyAddr, Resource: testResource, Workers: workers, Logger: slog.New(ml)})
						if err != nil {
							b.Fatal(err)
						}
						pln, err := net.Listen("tcp", "127.0.0.1:0")
						if err != nil {
							b.Fatal(err)
						}
						pctx, stop := context.WithCancel(context.Background())
						done := make(chan error, 1)
						go func() { done <- p.Serve(pctx, pln) }()
						// Alternate which goes first, as BenchmarkWalletSync does.
						for _, proxied := range []bool{i%2 == 1, i%2 == 0} {
							if proxied {
								rep := syncVia(b, pln.Addr().String())
								syncT += rep.Duration
								requests += uint64(rep.Requests)
							} else {
								directT += syncVia(b, direct).Duration
							}
						}
						stop()
						if err := <-done; err != nil {
							b.Fatal(err)
						}
						st := p.Stats()
						if st.GaveUp != 0 {
							b.Fatalf("proxy stats %+v: a refusal reached the wallet", st)
						}
						mintWall += ml.union()
						mintSum += st.MintTime
						stamped += st.Stamped
						retried += st.Retried
						hashes += st.Hashes
					}
					n := float64(b.N)
					ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
					b.ReportMetric(ms(syncT), "sync-ms")
					b.ReportMetric(ms(directT), "direct-ms")
					b.ReportMetric(ms(mintWall), "mint-ms")
					b.ReportMetric(ms(mintSum), "mint-sum-ms")
					b.ReportMetric(float64(stamped)/n, "stamps")
					b.ReportMetric(float64(requests)/n, "requests")
					b.ReportMetric(float64(retried)/n, "refusals")
					b.ReportMetric(float64(hashes)/n/1e6, "Mhashes")
					b.ReportMetric(float64(runtime.NumCPU()), "cpus")
				})
			}
		})
	}
}

// mintLog is a slog.Handler that keeps the interval of every line the
// proxy minted, from its "stamped" debug records: the record's time is when
// minting ended, its "mint" attribute how long it took.
type mintLog struct {
	mu    sync.Mutex
	spans [][2]time.Time
}

func (*mintLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *mintLog) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h *mintLog) WithGroup(string) slog.Handler          { return h }

func (h *mintLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "stamped" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "mint" || a.Value.Kind() != slog.KindDuration {
			return true
		}
		h.mu.Lock()
		h.spans = append(h.spans, [2]time.Time{r.Time.Add(-a.Value.Duration()), r.Time})
		h.mu.Unlock()
		return false
	})
	return nil
}

// union returns the time covered by at least one minting interval.
func (h *mintLog) union() time.Duration {
	h.mu.Lock()
	spans := slices.Clone(h.spans)
	h.mu.Unlock()
	slices.SortFunc(spans, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	var total time.Duration
	var end time.Time
	for _, s := range spans {
		if s[0].After(end) {
			total += s[1].Sub(s[0])
		} else if s[1].After(end) {
			total += s[1].Sub(end)
		}
		if s[1].After(end) {
			end = s[1]
		}
	}
	return total
}
