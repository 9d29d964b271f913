//go:build systemtest

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/e2e/harness"
	"github.com/electrum-hashcash/electrum-hashcash/internal/regtest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// realWalletTxs is how many transactions the benchmark wallet has (one
// coinbase each, all to its first address): like the 101-coinbase wallet
// measured in electrum-facts.md and BenchmarkWalletSync in
// internal/client, each costs a transaction.get and a get_merkle at sync.
const realWalletTxs = 100

// BenchmarkRealWalletSync measures the sync of Debian's Electrum 4.3.4
// wallet, a fresh data directory each time (a new user: no headers, no
// transactions cached), against the regtest server holding answers back
// as ElectrumX does (regtest.Config.Hold = regtest.ElectrumXHold), directly
// and through a fresh clientproxy and the xcaddy-built caddy, one after the
// other in each iteration, alternating which goes first:
//
//	CADDY_BIN=$PWD/bin/caddy go test -tags systemtest -run '^$' \
//		-bench RealWalletSync -benchtime 3x ./internal/e2e
//
// free:   price 0 with network_budget (free while calm), clientproxy
// --work 0; goal x-direct ≤ 1.1.
// priced: the default fixed price (2^17 per cost 1.0), clientproxy at its
// default guess; goal proxied ≤ direct + minting time, over-mint-ms ≤ 0.
//
// A sync is timed on the wire, at a recording relay in front of the wallet
// (the same in both paths): from the wallet's first request line to the
// answer that completes it, when every request sent has its answer and
// all realWalletTxs get_merkle proofs are in; then the wallet is asked
// (is_synchronized, getbalance) to confirm it synced. The daemon's start
// and the CLI's polling (Python, a second or more on a loaded machine) are
// left out of the figures, and no CLI runs while a sync is timed.
//
// Metrics per sync: direct-ms and proxied-ms, x-direct (the ratio of their
// sums), mint-ms (the wall time clientproxy spent minting: the union of
// its stamps' minting intervals), mint-sum-ms (their sum; more than mint-ms
// where stamps were minted side by side), over-mint-ms (proxied − direct −
// mint-ms), resends (stamps minted again after a refusal), requests (per
// sync, as the wallet sent them) and the median request latency at the
// wallet, p50-direct-ms and p50-proxied-ms.
func BenchmarkRealWalletSync(b *testing.B) {
	for _, bc := range []struct {
		name  string
		caddy func(*harness.CaddyConfig)
		work  string
	}{
		{"free", func(c *harness.CaddyConfig) {
			c.Price, c.NetworkBudget = "0", 100000
			c.Options = map[string]any{"network_burst": 1000000}
		}, "0"},
		{"priced", func(c *harness.CaddyConfig) { c.Price = "131072" }, ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchRealWalletSync(b, bc.caddy, bc.work)
		})
	}
}

// walletSync is what one timed sync measured.
type walletSync struct {
	wire     time.Duration // first request line to the answer completing the sync
	p50      time.Duration // median request latency at the wallet
	requests int
	start    time.Time // the first request line
	end      time.Time // the answer completing the sync
}

func benchRealWalletSync(b *testing.B, caddyCfg func(*harness.CaddyConfig), work string) {
	ctx := context.Background()
	dir := b.TempDir()

	// The wallet, created once; each sync copies it into a fresh data
	// directory.
	template := filepath.Join(dir, "template")
	if err := os.MkdirAll(template, 0o755); err != nil {
		b.Fatal(err)
	}
	tw := harness.NewElectrum(template)
	if _, err := tw.Create(ctx); err != nil {
		b.Fatalf("creating wallet: %v", err)
	}
	addrs, err := tw.Addresses(ctx)
	if err != nil || len(addrs) == 0 {
		b.Fatalf("listing wallet addresses: %v (%d)", err, len(addrs))
	}

	srv, err := regtest.New(regtest.Config{
		Addresses:     []string{addrs[0]},
		InitialBlocks: realWalletTxs,
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

	caddyAddr, err := testsupport.FindFreeAddr("127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	cc := harness.CaddyConfig{Listen: caddyAddr, Upstream: ln.Addr().String(), Resource: testResource}
	caddyCfg(&cc)
	caddy, err := harness.StartCaddy(ctx, caddyBin, dir, cc, false)
	if err != nil {
		b.Fatalf("starting caddy: %v", err)
	}
	b.Cleanup(func() { caddy.Stop(5 * time.Second) })

	want := int64(realWalletTxs) * regtest.DefaultCoinbaseValue
	syncs := 0
	// sync runs one wallet sync through a recording relay to upstream.
	sync := func(upstream string) walletSync {
		b.Helper()
		syncs++
		wdir := filepath.Join(dir, fmt.Sprintf("wallet-%d", syncs))
		if err := copyDir(template, wdir); err != nil {
			b.Fatal(err)
		}
		w := harness.NewElectrum(wdir)
		relay, err := harness.NewRelay(upstream)
		if err != nil {
			b.Fatal(err)
		}
		defer relay.Close()
		defer w.StopDaemon(ctx)
		if err := w.StartDaemon(ctx, relay.Addr()); err != nil {
			b.Fatalf("starting electrum daemon: %v", err)
		}
		if err := w.LoadWallet(ctx); err != nil {
			b.Fatalf("load_wallet: %v", err)
		}
		var ws walletSync
		err = testsupport.Poll(ctx, "the wallet's sync traffic complete", 2*time.Minute, 50*time.Millisecond, func() (bool, error) {
			var done bool
			ws, done = syncTraffic(relay, realWalletTxs)
			return done && time.Since(ws.end) > 300*time.Millisecond, nil
		})
		if err != nil {
			b.Fatalf("%v: %d lines sent, %d received; daemon log:\n%s", err, len(relay.Sent()), len(relay.Received()), harness.TailFile(w.DaemonLog(), 30))
		}
		var bal harness.Balance
		err = testsupport.Poll(ctx, "the wallet synchronized", 30*time.Second, 200*time.Millisecond, func() (bool, error) {
			ok, err := w.IsSynchronized(ctx)
			if err != nil || !ok {
				return false, err
			}
			if bal, err = w.GetBalance(ctx); err != nil {
				return false, err
			}
			got, err := harness.Sats(bal.Confirmed)
			return err == nil && got == want && bal.Unconfirmed == "" && bal.Unmatured == "", nil
		})
		if err != nil {
			b.Fatalf("%v: balance %+v, want %d sat confirmed", err, bal, want)
		}
		if err := w.StopDaemon(ctx); err != nil {
			b.Fatalf("stopping electrum daemon: %v", err)
		}
		return ws
	}

	var direct, proxied, mint, mintSum, p50d, p50p time.Duration
	var resends, reqd, reqp int
	b.ResetTimer()
	for i := range b.N {
		// A fresh clientproxy each time: it knows nothing, as for a new
		// user.
		pdir := filepath.Join(dir, fmt.Sprintf("clientproxy-%d", i))
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			b.Fatal(err)
		}
		proxy, err := harness.StartClientProxy(ctx, clientproxyBin, pdir, harness.ClientProxyConfig{
			Server:   caddyAddr,
			Resource: testResource,
			Work:     work,
		})
		if err != nil {
			b.Fatalf("starting clientproxy: %v", err)
		}
		var ps walletSync
		run := func(viaProxy bool) {
			if viaProxy {
				ps = sync(proxy.Addr)
				proxied, p50p, reqp = proxied+ps.wire, p50p+ps.p50, reqp+ps.requests
			} else {
				ds := sync(ln.Addr().String())
				direct, p50d, reqd = direct+ds.wire, p50d+ds.p50, reqd+ds.requests
			}
		}
		run(i%2 == 1)
		run(i%2 == 0)
		proxy.Stop(5 * time.Second)
		mints, err := proxy.Mints()
		if err != nil {
			b.Fatal(err)
		}
		u, sum, again := mintTime(mints, ps.start, ps.end)
		mint, mintSum, resends = mint+u, mintSum+sum, resends+again
		if log := harness.TailFile(proxy.LogPath, 100000); containsGaveUp(log) {
			b.Fatalf("clientproxy gave up on a request: a refusal reached the wallet")
		}
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
	b.ReportMetric(ms(direct), "direct-ms")
	b.ReportMetric(ms(proxied), "proxied-ms")
	b.ReportMetric(float64(proxied)/float64(direct), "x-direct")
	b.ReportMetric(ms(mint), "mint-ms")
	b.ReportMetric(ms(mintSum), "mint-sum-ms")
	b.ReportMetric(ms(proxied-direct-mint), "over-mint-ms")
	b.ReportMetric(float64(resends)/n, "resends")
	b.ReportMetric(float64(reqd)/n, "requests-direct")
	b.ReportMetric(float64(reqp)/n, "requests-proxied")
	b.ReportMetric(ms(p50d), "p50-direct-ms")
	b.ReportMetric(ms(p50p), "p50-proxied-ms")
}

// syncTraffic reads a relay's record of a wallet's session: it is done
// when every request sent has been answered and at least txs get_merkle
// requests were sent. It returns the time from the first request to the
// last answer so far, and the median latency.
func syncTraffic(r *harness.Relay, txs int) (walletSync, bool) {
	type key struct {
		conn int
		id   string
	}
	sentAt := map[key]time.Time{}
	var ws walletSync
	merkles := 0
	for _, l := range r.Sent() {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if json.Unmarshal(l.Data, &m) != nil || m.ID == nil {
			continue
		}
		if ws.start.IsZero() {
			ws.start = l.At
		}
		sentAt[key{l.Conn, string(m.ID)}] = l.At
		if m.Method == "blockchain.transaction.get_merkle" {
			merkles++
		}
	}
	ws.requests = len(sentAt)
	var lat []time.Duration
	for _, l := range r.Received() {
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(l.Data, &m) != nil || m.ID == nil || string(m.ID) == "null" {
			continue // a notification
		}
		k := key{l.Conn, string(m.ID)}
		at, ok := sentAt[k]
		if !ok {
			continue
		}
		lat = append(lat, l.At.Sub(at))
		delete(sentAt, k)
		ws.end = l.At
	}
	if len(lat) == 0 {
		return ws, false
	}
	slices.Sort(lat)
	ws.p50 = lat[len(lat)/2]
	ws.wire = ws.end.Sub(ws.start)
	return ws, len(sentAt) == 0 && merkles >= txs
}

// mintTime returns, for the stamps minted in [from, to] (by their end
// time): the union of their minting intervals, the sum of their minting
// times, and how many were minted again after a refusal.
func mintTime(mints []harness.Mint, from, to time.Time) (union, sum time.Duration, again int) {
	type iv struct{ a, b time.Time }
	var ivs []iv
	for _, m := range mints {
		// The log's time is to the millisecond.
		if m.At.Before(from.Truncate(time.Millisecond)) || m.At.After(to.Add(time.Millisecond)) {
			continue
		}
		ivs = append(ivs, iv{m.At.Add(-m.Duration), m.At})
		sum += m.Duration
		if m.Attempt > 1 {
			again++
		}
	}
	slices.SortFunc(ivs, func(x, y iv) int { return x.a.Compare(y.a) })
	var cur iv
	for i, v := range ivs {
		if i == 0 || v.a.After(cur.b) {
			union += cur.b.Sub(cur.a)
			cur = v
			continue
		}
		if v.b.After(cur.b) {
			cur.b = v.b
		}
	}
	union += cur.b.Sub(cur.a)
	return union, sum, again
}

func containsGaveUp(log string) bool {
	return len(log) > 0 && (contains(log, `msg="gave up"`) || contains(log, "msg=gave up"))
}

func contains(s, sub string) bool {
	return len(sub) <= len(s) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

// copyDir copies the regular files and directories under src to dst.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, info.Mode().Perm())
	})
}
