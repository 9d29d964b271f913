package client

import (
	"bytes"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// promptly bounds how long closing one side may take to reach the other.
const promptly = 5 * time.Second

// TestIPv6 runs wallet, proxy, server and upstream on [::1], with the
// resource defaulting to the server address as given.
func TestIPv6(t *testing.T) {
	leakCheck(t)
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	up := newFakeUpstream(t, "::1", 0)
	srv := newFakeServer(t, "tcp6", "[::1]:0", up.Addr, newPolicy("x", 64, nil), nil)
	if !strings.HasPrefix(srv.addr(), "[::1]:") {
		t.Fatalf("server address %q", srv.addr())
	}
	srv.setPolicy(newPolicy(srv.addr(), 64, nil))
	px := startProxy(t, Config{Server: srv.addr(), Network: "tcp6", Work: 64}, "[::1]:0")
	if !strings.HasPrefix(px.addr, "[::1]:") {
		t.Fatalf("proxy address %q", px.addr)
	}
	w := dialWallet(t, px.addr)
	w.send(versionReq, req("server.banner", 1, ""))
	for _, want := range []string{expectedAnswer("server.version", "0", 0), expectedAnswer("server.banner", "1", 0)} {
		if got := w.readLine(); got != want {
			t.Fatalf("wallet got %q, want %q", got, want)
		}
	}
	if st := px.Stats(); st.Retried != 0 {
		t.Errorf("retries with the default resource: %+v", st)
	}
}

func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(promptly):
		t.Fatalf("%s not closed within %v", what, promptly)
	}
}

// waitMinting waits until a goroutine is searching for a stamp's counter:
// the proxy has read a request and is minting its stamp (the tests that
// call it mint nothing else meanwhile).
func waitMinting(t *testing.T) {
	t.Helper()
	testsupport.WaitFor(t, "the proxy to be minting", func() bool {
		buf := make([]byte, 64<<10)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				return bytes.Contains(buf[:n], []byte("/internal/stamp.searchChunks("))
			}
			buf = make([]byte, 2*len(buf))
		}
	})
}

// TestWalletClose: when the wallet hangs up, the server connection is
// closed promptly, even in the middle of minting an expensive stamp.
func TestWalletClose(t *testing.T) {
	for _, minting := range []bool{false, true} {
		name := "idle"
		if minting {
			name = "while minting"
		}
		t.Run(name, func(t *testing.T) {
			leakCheck(t)
			e := newEnv(t, newPolicy(testResource, 64, nil), Config{Work: 64, MaxWork: 1 << 62}, 0)
			teachPrice(e.px.Knowledge(), "blockchain.transaction.broadcast", 1<<50) // days of work
			w := dialWallet(t, e.px.addr)
			w.send(versionReq)
			w.readLine()
			if minting {
				w.send(req("blockchain.transaction.broadcast", 1, `["00"]`))
				waitMinting(t)
			}
			w.c.Close()
			waitClosed(t, "the server's connection", e.srv.closed)
			waitClosed(t, "the upstream's connection", e.up.Conn(t, 0).Done())
			testsupport.WaitFor(t, "the close log line", func() bool {
				return strings.Contains(e.px.logs.String(), "connection closed")
			})
			if !strings.Contains(e.px.logs.String(), ErrWalletClosed.Error()) {
				t.Errorf("log does not say why:\n%s", e.px.logs)
			}
		})
	}
}

// TestServerClose: when the server hangs up, the wallet first receives
// everything the server sent, then sees the connection close promptly.
func TestServerClose(t *testing.T) {
	leakCheck(t)
	e := newEnv(t, newPolicy(testResource, 64, nil), Config{Work: 64}, 0)
	w := dialWallet(t, e.px.addr)
	// A first request other than server.version: the upstream answers with
	// an error and hangs up, as ElectrumX does.
	w.send(req("server.banner", 0, ""))
	got, err := w.readEOF()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"jsonrpc":"2.0","error":{"code":1,"message":"use server.version to identify client"},"id":0}` + "\n"; got != want {
		t.Fatalf("wallet got %q, want %q then EOF", got, want)
	}

	w = dialWallet(t, e.px.addr)
	w.send(versionReq)
	w.readLine()
	start := time.Now()
	e.srv.srv.Close()
	w.expectClosed()
	if d := time.Since(start); d > promptly {
		t.Errorf("the wallet saw the close after %v", d)
	}
}

// TestShutdown: stopping the proxy closes its listener and every
// connection, minting or not, and Serve returns.
func TestShutdown(t *testing.T) {
	leakCheck(t)
	e := newEnv(t, newPolicy(testResource, 64, nil), Config{Work: 64, MaxWork: 1 << 62}, 0)
	teachPrice(e.px.Knowledge(), "blockchain.transaction.broadcast", 1<<50)
	idle := dialWallet(t, e.px.addr)
	idle.send(versionReq)
	idle.readLine()
	busy := dialWallet(t, e.px.addr)
	busy.send(versionReq, req("blockchain.transaction.broadcast", 1, `["00"]`))
	busy.readLine()
	waitMinting(t)
	start := time.Now()
	e.px.stop()
	if d := time.Since(start); d > promptly {
		t.Errorf("Serve took %v to return", d)
	}
	for _, w := range []*wallet{idle, busy} {
		w.expectClosed()
	}
	if _, err := net.DialTimeout("tcp", e.px.addr, time.Second); err == nil {
		t.Error("the listener still accepts")
	}
}

// teachPrice makes k believe, as a refusal would tell it, that method
// costs work.
func teachPrice(k *Knowledge, method string, work uint64) {
	k.Learn(&stamp.Rejection{Reason: stamp.ReasonInsufficient, Method: method, Price: work}, time.Now())
}
