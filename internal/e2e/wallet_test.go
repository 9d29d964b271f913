//go:build systemtest

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/client"
	"github.com/electrum-hashcash/electrum-hashcash/internal/e2e/harness"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// TestRealWalletRealChain: a real Electrum 4.3.4 wallet syncs through
// clientproxy and the hashcash handler, sees the balance the chain paid it,
// pays itself and sees the payment confirmed; the server received exactly
// the wallet's bytes, each line carried a valid stamp on the wire; then the
// same wallet pointed at caddy directly never syncs and reaches nothing.
func TestRealWalletRealChain(t *testing.T) {
	s := newStack(t, stackOptions{})

	s.startWallet(s.walletSide.Addr())
	s.waitSynced("50")
	if info, err := s.wallet.GetInfo(s.ctx); err != nil || !info.Connected || info.BlockchainH != s.srv.Height() {
		t.Fatalf("getinfo: %+v, %v; want connected at height %d", info, err, s.srv.Height())
	}

	// Pay ourselves and get it confirmed.
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
	t.Logf("broadcast %s accepted by the server", txid)
	s.srv.Mine(1)
	height := s.srv.Height()
	var last []harness.HistoryTx
	var paid harness.HistoryTx
	err = testsupport.Poll(s.ctx, "payment confirmed in onchain_history", 30*time.Second, 300*time.Millisecond, func() (bool, error) {
		last, err = s.wallet.OnchainHistory(s.ctx)
		if err != nil {
			return false, err
		}
		for _, tx := range last {
			if tx.TxID == txid {
				paid = tx
				return tx.Height == height && tx.Confirmations >= 1, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%v; last history %+v", err, last)
	}
	if paid.FeeSat == nil || *paid.FeeSat <= 0 {
		t.Fatalf("confirmed payment has no fee: %+v", paid)
	}
	// Paid to itself: only the fee is gone.
	bal, err := s.wallet.GetBalance(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := harness.Sats(bal.Confirmed); err != nil || got != 50*100_000_000-*paid.FeeSat || bal.Unconfirmed != "" {
		t.Fatalf("balance after the confirmed self-payment: %+v (%v); want confirmed 50 BTC - fee %d sat", bal, err, *paid.FeeSat)
	}
	t.Logf("payment %s confirmed at height %d; balance %s BTC (fee %d sat)", txid, height, bal.Confirmed, *paid.FeeSat)

	// Both sides of the stack.
	s.waitQuiet()
	if err := s.wallet.StopDaemon(s.ctx); err != nil {
		t.Errorf("stopping electrum daemon: %v", err)
	}
	server := s.checkServerSawWalletBytes()
	checkWire(t, s, server)

	// The same wallet straight to caddy, no clientproxy.
	t.Run("direct to caddy", func(t *testing.T) {
		s.t = t
		before := len(s.srv.Requests())
		direct, err := harness.NewRelay(s.caddy.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { direct.Close() })
		s.startWallet(direct.Addr())
		const wait = 20 * time.Second
		deadline := time.Now().Add(wait)
		polls := 0
		for time.Now().Before(deadline) {
			synced, err := s.wallet.IsSynchronized(s.ctx)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.wallet.GetInfo(s.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if synced || info.Connected {
				t.Fatalf("wallet without clientproxy: is_synchronized=%v connected=%v after %d polls", synced, info.Connected, polls)
			}
			polls++
			time.Sleep(500 * time.Millisecond)
		}
		if err := s.wallet.StopDaemon(s.ctx); err != nil {
			t.Errorf("stopping electrum daemon: %v", err)
		}
		if n := len(s.srv.Requests()); n != before {
			t.Errorf("the server received %d requests from the unstamped wallet", n-before)
		}
		sent, answers := direct.Sent(), direct.Received()
		if len(direct.Conns()) == 0 || len(sent) == 0 {
			t.Fatalf("the wallet did not try caddy: %d connections, %d lines", len(direct.Conns()), len(sent))
		}
		missing := 0
		for _, a := range answers {
			if bytes.Contains(a.Data, []byte(`"reason":"missing"`)) {
				missing++
			}
		}
		if missing == 0 {
			t.Errorf("caddy's answers carry no \"missing\" refusal: %v", quoteLines(answers, 3))
		}
		t.Logf("without clientproxy: not connected, not synchronized for %v (%d polls); %d connection attempts, %d lines sent, %d refused as missing, server received nothing; first answer %s",
			wait, polls, len(direct.Conns()), len(sent), missing, quoteLines(answers, 1))
	})
}

// checkWire checks every line clientproxy sent to caddy: it carries valid
// stamps for the resource, no stamp is used twice, each line was either
// forwarded (without its stamps, byte for byte the wallet's line) or refused
// with an answer from caddy.
func checkWire(t *testing.T, s *stack, server [][]byte) {
	t.Helper()
	seen := map[string]bool{}
	var stripped [][]byte
	works := map[uint64]int{}
	for _, c := range s.wireSide.Conns() {
		for i, line := range c.Sent() {
			body, stamps, err := harness.CheckStampedLine(line, testResource)
			if err != nil {
				t.Errorf("wire conn %d line %d %s: %v", c.ID, i, harness.Quote(line, 200), err)
				continue
			}
			for _, st := range stamps {
				if seen[st.String()] {
					t.Errorf("stamp %s used twice on the wire", st)
				}
				seen[st.String()] = true
				works[st.Work]++
			}
			stripped = append(stripped, body)
		}
	}
	refused := 0
	for _, l := range s.wireSide.Received() {
		if bytes.Contains(l.Data, []byte(`"reason":"`)) && bytes.Contains(l.Data, []byte(`"error"`)) {
			refused++
		}
	}
	// Forwarded lines are the wire's lines without stamps; resends of
	// refused lines repeat a body, so compare as sets and count.
	if len(stripped) != len(server)+refused {
		t.Errorf("wire carried %d lines, server received %d and caddy refused %d", len(stripped), len(server), refused)
	}
	wire := map[string]bool{}
	for _, b := range stripped {
		wire[string(b)] = true
	}
	for _, l := range server {
		if !wire[string(l)] {
			t.Errorf("server line %s is no wire line without its stamp", harness.Quote(l, 200))
		}
	}
	t.Logf("wire: %d stamped lines, every stamp valid for %s and distinct (work: %v), %d refused and resent", len(stripped), testResource, works, refused)
}

// TestRealWalletTLS: caddy terminates TLS with a self-signed certificate
// that clientproxy pins by fingerprint; the wallet syncs through it and
// the server receives exactly the wallet's bytes. A clientproxy pinning
// another fingerprint gets nothing through.
func TestRealWalletTLS(t *testing.T) {
	s := newStack(t, stackOptions{tls: true})

	s.startWallet(s.walletSide.Addr())
	s.waitSynced("50")
	s.waitQuiet()
	if err := s.wallet.StopDaemon(s.ctx); err != nil {
		t.Errorf("stopping electrum daemon: %v", err)
	}
	s.checkServerSawWalletBytes()

	// The wire between clientproxy and caddy is TLS.
	conns := s.wireSide.Conns()
	if len(conns) == 0 {
		t.Fatal("no connection from clientproxy to caddy")
	}
	for _, c := range conns {
		first := c.FirstBytes()
		up, _ := c.Bytes()
		if up == 0 {
			continue // readiness probe or idle connection
		}
		if len(first) < 3 || first[0] != 0x16 || first[1] != 0x03 {
			t.Errorf("wire conn %d does not start with a TLS handshake record: % x", c.ID, first)
		}
	}
	for _, l := range s.wireSide.Sent() {
		if bytes.Contains(l.Data, []byte("server.version")) {
			t.Errorf("plaintext request on the TLS wire: %s", harness.Quote(l.Data, 100))
		}
	}
	up, down := conns[0].Bytes()
	t.Logf("wire clientproxy → caddy: %d connection(s), TLS only (first: %d bytes up, %d down)", len(conns), up, down)

	// A clientproxy pinning a wrong fingerprint: no request gets through.
	before := len(s.srv.Requests())
	wrong, err := harness.StartClientProxy(s.ctx, clientproxyBin, t.TempDir(), harness.ClientProxyConfig{
		Server:      s.caddy.Addr,
		Resource:    testResource,
		Work:        testPrice,
		Fingerprint: strings.Repeat("ab", 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wrong.Stop(5 * time.Second) })
	reply, err := oneRequest(wrong.Addr, `{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}`, 10*time.Second)
	if err == nil {
		t.Errorf("clientproxy with a wrong pin relayed an answer: %s", reply)
	}
	if n := len(s.srv.Requests()); n != before {
		t.Errorf("server received %d requests through a clientproxy with a wrong pin", n-before)
	}
	// The refusal is logged as the connection closes, maybe just after.
	if testsupport.Poll(s.ctx, "pin mismatch logged", 5*time.Second, 50*time.Millisecond, func() (bool, error) {
		return strings.Contains(wrong.Tail(20), client.ErrPinMismatch.Error()), nil
	}) != nil {
		t.Errorf("clientproxy with a wrong pin does not log %q:\n%s", client.ErrPinMismatch, wrong.Tail(20))
	}
	t.Logf("clientproxy with a wrong pin: wallet got %v; server received nothing", err)
}

// oneRequest sends one line and reads one line back.
func oneRequest(addr, line string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	r, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no answer: %w", err)
	}
	return r, nil
}

func quoteLines(ls []harness.Line, n int) string {
	var out []string
	for i, l := range ls {
		if i == n {
			break
		}
		out = append(out, harness.Quote(l.Data, 300))
	}
	return strings.Join(out, ", ")
}

// TestRealWalletWithoutClientproxyWhileCalm: on a server free while calm
// (price 0, prices moving per network), the real Electrum 4.3.4 wallet,
// unmodified and without clientproxy, syncs through caddy straight away
// and the server receives exactly its bytes.
func TestRealWalletWithoutClientproxyWhileCalm(t *testing.T) {
	s := newStack(t, stackOptions{freeWhileCalm: true})
	direct, err := harness.NewRelay(s.caddy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })
	s.startWallet(direct.Addr())
	s.waitSynced("50")
	if err := s.wallet.StopDaemon(s.ctx); err != nil {
		t.Errorf("stopping electrum daemon: %v", err)
	}
	var sent []harness.Line
	var server [][]byte
	err = testsupport.Poll(s.ctx, "every request of the wallet to reach the server", 20*time.Second, 100*time.Millisecond, func() (bool, error) {
		sent, server = direct.Sent(), s.srv.Requests()
		return len(sent) > 0 && len(server) == len(sent), nil
	})
	if err != nil {
		t.Fatalf("%v: the wallet sent %d lines to caddy, the server received %d", err, len(sent), len(server))
	}
	// Byte for byte, as multisets (the wallet may use more than one
	// connection).
	count := map[string]int{}
	for _, l := range sent {
		count[string(bytes.TrimSuffix(l.Data, []byte("\n")))]++
	}
	for _, l := range server {
		k := string(bytes.TrimSuffix(l, []byte("\n")))
		if count[k] == 0 {
			t.Fatalf("the server received %s, which the wallet did not send", harness.Quote(l, 200))
		}
		count[k]--
	}
	for _, a := range direct.Received() {
		if bytes.Contains(a.Data, []byte(`"reason":"`)) {
			t.Fatalf("caddy refused a request of the unmodified wallet: %s", harness.Quote(a.Data, 300))
		}
	}
	t.Logf("unmodified wallet synced through caddy while calm: %d requests, all forwarded byte for byte", len(sent))
}
