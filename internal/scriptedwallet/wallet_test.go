package scriptedwallet

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/regtest"
)

func TestAddressRoundTrip(t *testing.T) {
	w, err := NewWallet(regtest.RegtestHRP, "test", 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range w.All() {
		script, err := regtest.AddressScript(a.Address)
		if err != nil {
			t.Fatalf("%s: %v", a.Address, err)
		}
		if !bytes.Equal(script, a.Script) {
			t.Fatalf("%s: script %x, want %x", a.Address, script, a.Script)
		}
		if regtest.ScriptHash(script) != a.ScriptHash {
			t.Fatalf("%s: script hash mismatch", a.Address)
		}
	}
}

func TestRequestShape(t *testing.T) {
	for _, c := range []struct {
		method string
		params []any
		want   string
	}{
		{"server.version", []any{"electrum/4.3.4", "1.4"}, `{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}`},
		{"server.banner", nil, `{"jsonrpc":"2.0","method":"server.banner","id":0}`},
		{"blockchain.estimatefee", []any{25}, `{"jsonrpc":"2.0","method":"blockchain.estimatefee","id":0,"params":[25]}`},
	} {
		got, err := Request(c.method, 0, c.params...)
		if err != nil || string(got) != c.want {
			t.Errorf("Request(%s) = %s, %v; want %s", c.method, got, err, c.want)
		}
	}
}

func TestSyncAgainstRegtest(t *testing.T) {
	w, err := NewWallet(regtest.RegtestHRP, "sync", 20, 10)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := regtest.New(regtest.Config{Addresses: []string{w.Receiving[0].Address, w.Change[3].Address}, InitialBlocks: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, c := serveAndDial(t, srv)
	rep, err := w.Sync(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Confirmed != 3*regtest.DefaultCoinbaseValue || rep.Txs != 3 || rep.Height != 103 {
		t.Fatalf("report %+v: want 150 BTC in 3 txs at height 103", rep)
	}
	reqs := srv.Requests()
	if len(reqs) != rep.Requests {
		t.Fatalf("server got %d requests, client sent %d", len(reqs), rep.Requests)
	}
	// version + headers.subscribe + 4 estimatefee + 2 block.header +
	// 1 chunk + 5 server info + 30 subscribe + 1 more subscribe (receiving
	// address 0 is used, so the gap limit needs a 21st) + 2 get_history +
	// 3 tx.get + 3 get_merkle.
	if want := 2 + 4 + 2 + 1 + 5 + 30 + 1 + 2 + 3 + 3; rep.Requests != want {
		t.Fatalf("%d requests, want %d", rep.Requests, want)
	}
	calls := c.Calls()
	for i, call := range calls {
		if !bytes.Equal(call.Line, reqs[i]) {
			t.Fatalf("request %d: server got %s, client sent %s", i, reqs[i], call.Line)
		}
	}
}

// TestConnectSequence compares the connect sequence with what a real
// Electrum 4.3.4 (--regtest --oneserver, fresh data directory) sent to the
// regtest server at tip 101, captured with regtestserver -log-requests.
func TestConnectSequence(t *testing.T) {
	electrum := `{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}
{"jsonrpc":"2.0","method":"blockchain.headers.subscribe","id":1}
{"jsonrpc":"2.0","method":"blockchain.estimatefee","id":2,"params":[25]}
{"jsonrpc":"2.0","method":"blockchain.estimatefee","id":3,"params":[10]}
{"jsonrpc":"2.0","method":"blockchain.estimatefee","id":4,"params":[5]}
{"jsonrpc":"2.0","method":"blockchain.estimatefee","id":5,"params":[2]}
{"jsonrpc":"2.0","method":"blockchain.block.header","id":6,"params":[1]}
{"jsonrpc":"2.0","method":"server.banner","id":7}
{"jsonrpc":"2.0","method":"server.donation_address","id":8}
{"jsonrpc":"2.0","method":"server.peers.subscribe","id":9}
{"jsonrpc":"2.0","method":"blockchain.relayfee","id":10}
{"jsonrpc":"2.0","method":"mempool.get_fee_histogram","id":11}
{"jsonrpc":"2.0","method":"blockchain.block.header","id":12,"params":[0]}
{"jsonrpc":"2.0","method":"blockchain.block.headers","id":13,"params":[0,102]}`
	w, err := NewWallet(regtest.RegtestHRP, "seq", 20, 10)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := regtest.New(regtest.Config{Addresses: []string{w.Receiving[0].Address}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, c := serveAndDial(t, srv)
	if _, err := w.Sync(ctx, c); err != nil {
		t.Fatal(err)
	}
	want := strings.Split(electrum, "\n")
	got := srv.Requests()
	for i, l := range want {
		if string(got[i]) != l {
			t.Fatalf("request %d: %s, Electrum 4.3.4 sent %s", i, got[i], l)
		}
	}
	// Then 31 subscribes, get_history, transaction.get, get_merkle, as
	// Electrum 4.3.4 (its 48th line was the extra subscribe).
	methods := map[string]int{}
	for _, l := range got[len(want):] {
		var r struct{ Method string }
		json.Unmarshal(l, &r)
		methods[r.Method]++
	}
	if methods["blockchain.scripthash.subscribe"] != 31 || methods["blockchain.scripthash.get_history"] != 1 ||
		methods["blockchain.transaction.get"] != 1 || methods["blockchain.transaction.get_merkle"] != 1 || len(got) != 48 {
		t.Fatalf("sync requests %v (%d in all); Electrum 4.3.4 sent 31 subscribe, 1 each of get_history, transaction.get, get_merkle, 48 in all", methods, len(got))
	}
}

// serveAndDial serves srv on a loopback port and connects a Client to it;
// everything is closed, and ctx cancelled, when the test ends.
func serveAndDial(t *testing.T, srv *regtest.Server) (context.Context, *Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ctx, c
}
