//go:build systemtest

package e2e

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/e2e/harness"
	"github.com/electrum-hashcash/electrum-hashcash/internal/regtest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// Test prices are low so that the whole package runs in about a minute.
const (
	testPrice    = "1k"
	testResource = "electrum.e2e.test:50002"
)

// stack is one deployment: regtest server, caddy, clientproxy, the relays
// between them and a wallet.
type stack struct {
	t   *testing.T
	ctx context.Context
	dir string

	wallet  *harness.Electrum
	address string // the wallet's first receiving address, paid at height 1

	srv   *regtest.Server
	caddy *harness.Caddy
	proxy *harness.ClientProxy

	// walletSide records wallet → clientproxy; wireSide records
	// clientproxy → caddy.
	walletSide, wireSide *harness.Relay
}

type stackOptions struct {
	tls bool
	// freeWhileCalm makes caddy free while calm: price 0, prices moving
	// with a network budget.
	freeWhileCalm bool
	// caddy, if set, changes caddy's config last.
	caddy func(*harness.CaddyConfig)
	// proxyWork is clientproxy's --work; testPrice if empty.
	proxyWork string
}

// newStack creates a wallet, starts the regtest server paying the wallet's
// first address, caddy, clientproxy and the relays, and registers cleanups
// that stop all of them (also when the test fails) and print the logs'
// tails on failure.
func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	s := &stack{t: t, ctx: testContext(t), dir: t.TempDir()}

	// Wallet first: the chain pays its first address.
	s.wallet = harness.NewElectrum(filepath.Join(s.dir, "electrum"))
	if err := os.MkdirAll(s.wallet.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.wallet.StopDaemon(context.Background()); err != nil {
			t.Errorf("stopping electrum daemon: %v", err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("electrum daemon log tail (%s):\n%s", s.wallet.DaemonLog(), harness.TailFile(s.wallet.DaemonLog(), 40))
		}
	})
	if _, err := s.wallet.Create(s.ctx); err != nil {
		t.Fatalf("creating wallet: %v", err)
	}
	addrs, err := s.wallet.Addresses(s.ctx)
	if err != nil || len(addrs) == 0 {
		t.Fatalf("listing wallet addresses: %v (%d)", err, len(addrs))
	}
	s.address = addrs[0]

	// Regtest server, in process.
	logf, err := os.Create(filepath.Join(s.dir, "regtest.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	s.srv, err = regtest.New(regtest.Config{
		Addresses: []string{s.address},
		Logger:    slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })

	// Caddy: [tls,] hashcash, proxy → regtest server.
	caddyAddr, err := testsupport.FindFreeAddr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cc := harness.CaddyConfig{
		Listen:   caddyAddr,
		Upstream: ln.Addr().String(),
		Resource: testResource,
		Price:    testPrice,
	}
	if o.freeWhileCalm {
		cc.Price, cc.NetworkBudget = "0", 20
	}
	if o.caddy != nil {
		o.caddy(&cc)
	}
	var fingerprint string
	if o.tls {
		cc.CertFile, cc.KeyFile, fingerprint, err = harness.SelfSignedCert(s.dir)
		if err != nil {
			t.Fatal(err)
		}
	}
	s.caddy, err = harness.StartCaddy(s.ctx, caddyBin, s.dir, cc, false)
	if err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	t.Cleanup(func() {
		s.caddy.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("caddy log tail:\n%s", s.caddy.Tail(30))
		}
	})

	// clientproxy → relay → caddy.
	s.wireSide, err = harness.NewRelay(caddyAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.wireSide.Close() })
	work := o.proxyWork
	if work == "" {
		work = testPrice
	}
	s.proxy, err = harness.StartClientProxy(s.ctx, clientproxyBin, s.dir, harness.ClientProxyConfig{
		Server:      s.wireSide.Addr(),
		Resource:    testResource,
		Work:        work,
		Fingerprint: fingerprint,
	})
	if err != nil {
		t.Fatalf("starting clientproxy: %v", err)
	}
	t.Cleanup(func() {
		s.proxy.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("clientproxy log tail:\n%s", s.proxy.Tail(30))
		}
	})

	// wallet → relay → clientproxy.
	s.walletSide, err = harness.NewRelay(s.proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.walletSide.Close() })
	return s
}

// startWallet starts the Electrum daemon against server and loads the
// wallet.
func (s *stack) startWallet(server string) {
	s.t.Helper()
	start := time.Now()
	if err := s.wallet.StartDaemon(s.ctx, server); err != nil {
		s.t.Fatalf("starting electrum daemon: %v", err)
	}
	if err := s.wallet.LoadWallet(s.ctx); err != nil {
		s.t.Fatalf("load_wallet: %v", err)
	}
	s.t.Logf("electrum daemon up and wallet loaded in %v (server %s)", time.Since(start).Round(time.Millisecond), server)
}

// waitSynced waits until the wallet is synchronized and its confirmed
// balance is want (BTC as Electrum prints it).
func (s *stack) waitSynced(want string) {
	s.t.Helper()
	start := time.Now()
	var last harness.Balance
	err := testsupport.Poll(s.ctx, "wallet synchronized with confirmed balance "+want, 60*time.Second, 300*time.Millisecond, func() (bool, error) {
		ok, err := s.wallet.IsSynchronized(s.ctx)
		if err != nil || !ok {
			return false, err
		}
		last, err = s.wallet.GetBalance(s.ctx)
		if err != nil {
			return false, err
		}
		return last.Confirmed == want && last.Unconfirmed == "" && last.Unmatured == "", nil
	})
	if err != nil {
		s.t.Fatalf("%v (last balance %+v; server got %d requests)", err, last, len(s.srv.Requests()))
	}
	s.t.Logf("wallet synchronized, confirmed balance %s BTC, after %v", want, time.Since(start).Round(time.Millisecond))
}

// waitQuiet waits until every line the wallet sent has reached the regtest
// server and nothing new arrived for a moment.
func (s *stack) waitQuiet() {
	s.t.Helper()
	stableSince, lastN := time.Now(), -1
	err := testsupport.Poll(s.ctx, "every wallet request reaching the server", 20*time.Second, 100*time.Millisecond, func() (bool, error) {
		sent := len(s.walletSide.Sent())
		got := len(s.srv.Requests())
		if got != lastN {
			lastN, stableSince = got, time.Now()
		}
		return sent == got && time.Since(stableSince) > 500*time.Millisecond, nil
	})
	if err != nil {
		s.t.Fatalf("%v: wallet sent %d lines, server received %d", err, len(s.walletSide.Sent()), len(s.srv.Requests()))
	}
}

// checkServerSawWalletBytes checks that the lines the regtest server
// received are exactly the lines the wallet sent, byte for byte, in each
// connection's order, and nothing else.
func (s *stack) checkServerSawWalletBytes() (server [][]byte) {
	s.t.Helper()
	server = s.srv.Requests()
	conns := harness.ConnLines(s.walletSide)
	var all [][]byte
	for _, c := range conns {
		all = append(all, c...)
	}
	if d := harness.MultisetDiff("server", server, "wallet", all); d != "" {
		s.t.Errorf("server's request lines differ from the wallet's: %s", d)
	}
	matched, err := harness.Interleaving(server, conns)
	if err != nil {
		s.t.Errorf("server's request lines are not the wallet's, in order: %v", err)
	}
	for i, n := range matched {
		if n != len(conns[i]) {
			s.t.Errorf("wallet connection %d: only %d of its %d lines reached the server", i+1, n, len(conns[i]))
		}
	}
	if len(server) == 0 {
		s.t.Errorf("the server received nothing")
	}
	s.t.Logf("server received %d request lines, each equal byte for byte to a line the wallet sent (%d wallet connections)", len(server), len(conns))
	return server
}
