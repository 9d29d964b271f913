//go:build systemtest

package e2e

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/e2e/harness"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// Moving prices in TestRealWalletKeepsSyncingWhilePriced: free while
// calm, each loopback address its own network, a level a tick, up to
// 2^20 for a request of cost 1.0 (level 7: 2^14, 2^15, … 2^20), which the
// wallet's clientproxy pays in about 10 ms a request.
var pricedCaddyOptions = map[string]any{
	"ipv4_prefix":   32,
	"price_tick":    "250ms",
	"network_burst": 100,
	"max_price":     1 << 20,
	// The flooder's refusals are not paced, so that they keep its network
	// over budget (each costs refused_weight, 0.25, of a relayfee).
	"refusal_rate": -1,
}

const (
	pricedBudget = 20 // network_budget, cost units a second
	// The flood: 5 unstamped blockchain.relayfee (cost 1.0) every 10 ms,
	// 500 a second: 500 units a second while forwarded at calm, 125 once
	// refused, both far over the budget of 20.
	floodMethod  = "blockchain.relayfee"
	floodPerTick = 5
	floodTick    = 10 * time.Millisecond
)

// TestRealWalletKeepsSyncingWhilePriced: on a server free while calm, a
// flood from the wallet's own network (127.0.0.1) raises that network's
// price level; the real Electrum 4.3.4 wallet, through clientproxy started
// free (--work 0), then syncs, sees the balance the chain paid it, pays
// itself and sees the payment confirmed while the flood keeps its price
// above calm and rising: clientproxy mints at the prices the refusals name,
// no refusal reaches the wallet, the wallet keeps its one connection, and
// the server receives exactly the wallet's bytes.
func TestRealWalletKeepsSyncingWhilePriced(t *testing.T) {
	s := newPricedStack(t)

	fl, err := harness.StartFlooder(s.caddy.Addr, floodMethod, floodPerTick, floodTick)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Stop() })
	start := time.Now()
	err = testsupport.Poll(s.ctx, "the flood raising its network's price above calm", 20*time.Second, 20*time.Millisecond, func() (bool, error) {
		return fl.Level() >= 1, fl.Err()
	})
	if err != nil {
		t.Fatalf("%v; flood so far: %d sent, %v", err, fl.Sent(), fl.Summary(start, time.Now()))
	}
	raised := time.Now()
	t.Logf("flood from 127.0.0.1 raised its price to level %d in %v", fl.Level(), raised.Sub(start).Round(time.Millisecond))

	// The wallet syncs, from the same network, while the flood goes on.
	s.startWallet(s.walletSide.Addr())
	s.waitSynced("50")
	synced := time.Now()
	t.Logf("while priced: %v", fl.Summary(raised, synced))

	// Pay ourselves and get it confirmed, still under the flood.
	to, err := s.wallet.UnusedAddress(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	txHex, err := s.wallet.PayTo(s.ctx, to, "1.5")
	if err != nil {
		t.Fatalf("payto: %v", err)
	}
	txid, err := s.wallet.Broadcast(s.ctx, txHex)
	if err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	if mp := s.srv.Mempool(); !slices.Contains(mp, txid) {
		t.Fatalf("broadcast returned %s but the server's mempool is %v", txid, mp)
	}
	s.srv.Mine(1)
	height := s.srv.Height()
	var last []harness.HistoryTx
	err = testsupport.Poll(s.ctx, "payment confirmed in onchain_history", 30*time.Second, 300*time.Millisecond, func() (bool, error) {
		last, err = s.wallet.OnchainHistory(s.ctx)
		if err != nil {
			return false, err
		}
		for _, tx := range last {
			if tx.TxID == txid {
				return tx.Height == height && tx.Confirmations >= 1, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%v; last history %+v", err, last)
	}
	t.Logf("payment %s broadcast and confirmed at height %d while priced", txid, height)
	s.waitQuietPriced()
	if err := s.wallet.StopDaemon(s.ctx); err != nil {
		t.Errorf("stopping electrum daemon: %v", err)
	}
	stopped := time.Now()

	// The flood: its network's price stayed above calm from before the
	// wallet started until it stopped.
	if err := fl.Stop(); err != nil {
		t.Errorf("the flood ended early: %v", err)
	}
	during := fl.Summary(raised, stopped)
	refused := 0
	for _, n := range during.Refused {
		refused += n
	}
	if refused == 0 || during.Forwarded != 0 || during.MinLevel < 1 {
		t.Errorf("while the wallet synced and paid, the flood from its network got %v: want only refusals, every one at a level above calm", during)
	}
	if during.Refused["missing"] == 0 {
		t.Errorf("the flood's unstamped requests were not refused as missing: %v", during)
	}

	// clientproxy followed the price: it minted, at prices above calm, and
	// no refusal reached the wallet.
	mints, err := s.proxy.Mints()
	if err != nil {
		t.Fatal(err)
	}
	works := map[uint64]int{}
	for _, m := range mints {
		works[m.Work]++
	}
	if len(mints) == 0 {
		t.Errorf("clientproxy minted nothing while its network's price was level %d–%d", during.MinLevel, during.MaxLevel)
	}
	for _, a := range s.walletSide.Received() {
		if bytes.Contains(a.Data, []byte(`"error"`)) {
			t.Errorf("the wallet received an error: %s", harness.Quote(a.Data, 300))
		}
	}
	if tail := harness.TailFile(s.proxy.LogPath, 1000); strings.Contains(tail, "msg=\"gave up\"") {
		t.Errorf("clientproxy gave up on a request")
	}
	// A refusal on the sync path would make Electrum drop the connection
	// and reconnect.
	if n := len(s.walletSide.Conns()); n != 1 {
		t.Errorf("the wallet opened %d connections to clientproxy; want 1 (no error, no reconnect)", n)
	}
	server := s.checkServerSawWalletBytesPriced()
	// Every request of the wallet that reached the server was paid for
	// on the wire with a stamp above a token's work (clientproxy probes a
	// fall with work 1).
	paid := map[string]int{}
	for _, l := range s.wireSide.Sent() {
		body, stamps, err := harness.CheckStampedLine(l.Data, testResource)
		if err != nil {
			continue // unstamped: refused as missing, as the flood's
		}
		if slices.ContainsFunc(stamps, func(st stamp.Stamp) bool { return st.Work > 1 }) {
			paid[string(bytes.TrimSuffix(body, []byte("\n")))]++
		}
	}
	var unpaid []string
	for _, l := range server {
		k := string(bytes.TrimSuffix(l, []byte("\n")))
		if paid[k] == 0 {
			unpaid = append(unpaid, harness.Quote(l, 200))
			continue
		}
		paid[k]--
	}
	if len(unpaid) > 0 {
		t.Errorf("the server received %d of the wallet's %d requests without a stamp above a token's work on the wire, such as %s",
			len(unpaid), len(server), strings.Join(unpaid[:min(3, len(unpaid))], ", "))
	}
	t.Logf("flood while the wallet synced and paid: %v; clientproxy minted %d stamps (work: %v)", during, len(mints), works)
}

// newPricedStack is newStack for a server free while calm with moving
// prices (pricedCaddyOptions) and a clientproxy started free (--work 0).
func newPricedStack(t *testing.T) *stack {
	t.Helper()
	return newStack(t, stackOptions{
		caddy: func(cc *harness.CaddyConfig) {
			cc.Price, cc.NetworkBudget, cc.Options = "0", pricedBudget, pricedCaddyOptions
		},
		proxyWork: "0",
	})
}

// walletRequests returns the lines the regtest server received, without
// the flooder's.
func (s *stack) walletRequests() [][]byte {
	var out [][]byte
	for _, l := range s.srv.Requests() {
		if !harness.IsFloodLine(l) {
			out = append(out, l)
		}
	}
	return out
}

// waitQuietPriced is waitQuiet, not counting the flooder's lines.
func (s *stack) waitQuietPriced() {
	s.t.Helper()
	stableSince, lastN := time.Now(), -1
	err := testsupport.Poll(s.ctx, "every wallet request reaching the server", 20*time.Second, 100*time.Millisecond, func() (bool, error) {
		sent := len(s.walletSide.Sent())
		got := len(s.walletRequests())
		if got != lastN {
			lastN, stableSince = got, time.Now()
		}
		return sent == got && time.Since(stableSince) > 500*time.Millisecond, nil
	})
	if err != nil {
		s.t.Fatalf("%v: wallet sent %d lines, server received %d", err, len(s.walletSide.Sent()), len(s.walletRequests()))
	}
}

// checkServerSawWalletBytesPriced is checkServerSawWalletBytes, not
// counting the flooder's lines, and as multisets only: a request refused
// because the price rose while it was in flight is resent after requests
// the wallet sent later, so the server may receive them in another order
// (harmless: Electrum waits for an answer before any request that depends
// on it, and ElectrumX answers pipelined requests concurrently anyway).
func (s *stack) checkServerSawWalletBytesPriced() [][]byte {
	s.t.Helper()
	server := s.walletRequests()
	conns := harness.ConnLines(s.walletSide)
	var all [][]byte
	for _, c := range conns {
		all = append(all, c...)
	}
	if d := harness.MultisetDiff("server", server, "wallet", all); d != "" {
		s.t.Errorf("server's request lines differ from the wallet's: %s", d)
	}
	if len(server) == 0 {
		s.t.Errorf("the server received nothing from the wallet")
	}
	s.t.Logf("server received %d request lines from the wallet, each equal byte for byte to a line the wallet sent", len(server))
	return server
}
