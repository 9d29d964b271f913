package client

// End-to-end tests against the real hashcash handler, running in-process in
// Caddy with caddy-l4's proxy in front of the fake ElectrumX upstream.

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddytls"
	_ "github.com/mholt/caddy-l4/layer4"
	_ "github.com/mholt/caddy-l4/modules/l4proxy"
	_ "github.com/mholt/caddy-l4/modules/l4tls"

	_ "github.com/electrum-hashcash/electrum-hashcash/caddyhashcash"
	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// caddyEnv is the fake upstream behind Caddy running the hashcash handler.
type caddyEnv struct {
	up     *testsupport.Upstream
	addr   string // Caddy's listen address
	host   string
	tlsApp string
	pre    []string // handlers before hashcash (tls)
}

func hashcashJSON(options string) string {
	return `{"handler":"hashcash","resource":"` + testResource + `"` + options + `}`
}

// startCaddy starts the upstream on host and Caddy in front of it with the
// hashcash handler configured by options (JSON members, each with a leading
// comma).
func startCaddy(t *testing.T, host string, options string, pad int) *caddyEnv {
	t.Helper()
	return startCaddyBefore(t, newFakeUpstream(t, host, pad), host, options)
}

// startCaddyBefore starts Caddy on host in front of up.
func startCaddyBefore(t *testing.T, up *testsupport.Upstream, host string, options string) *caddyEnv {
	t.Helper()
	e := &caddyEnv{host: host, up: up}
	e.addr = testsupport.FreeAddr(t, host)
	caddytest.Start(t, e.config(options), e.addr)
	return e
}

func (e *caddyEnv) config(options string) string {
	handlers := append(append([]string(nil), e.pre...), hashcashJSON(options), caddytest.ProxyHandler(e.up.Addr))
	return caddytest.Layer4Config(e.addr, handlers, e.tlsApp)
}

// reload replaces Caddy's config with new handler options.
func (e *caddyEnv) reload(t *testing.T, options string) {
	t.Helper()
	if err := caddy.Load([]byte(e.config(options)), true); err != nil {
		t.Fatalf("reloading caddy: %v", err)
	}
	testsupport.WaitBound(t, e.addr)
}

func readAnswers(t *testing.T, w *wallet, n int) []string {
	t.Helper()
	var got []string
	for range n {
		line := w.readLine()
		if strings.Contains(line, `"error"`) {
			t.Fatalf("wallet got an error: %s", line)
		}
		got = append(got, line)
	}
	return got
}

func TestCaddyByteExact(t *testing.T) {
	leakCheck(t)
	e := startCaddy(t, "127.0.0.1", `,"price":"4k","method_prices":{"server.version":"1k","server.ping":0}`, 1024)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 1 << 12}, "")
	teachPrice(px.Knowledge(), "server.version", 1000)
	forwarded := []string{
		versionReq,
		`{"jsonrpc":"2.0","method":"server.banner","id":1}` + "\n",
		`{ "jsonrpc" : "2.0" ,  "method" : "blockchain.scripthash.subscribe" , "params" : [ "ab" ] , "id" : 2 }` + "\n",
		`{"jsonrpc":"2.0","method":"blockchain.estimatefee","id":"s\u00e9 \"q\"","params":["caf\u00e9 ü", 1.5e3, null, {"a":[]}]}` + "\n",
		`[{"jsonrpc":"2.0","method":"server.ping","id":10},{"jsonrpc":"2.0","method":"blockchain.estimatefee","id":11,"params":[2]}]` + "\n",
		`{"jsonrpc":"2.0","method":"server.ping"}` + "\n",
		`{"method":"server.ping","id":6,"jsonrpc":"2.0"}` + "\r\n",
		`{"jsonrpc":"2.0","method":"blockchain.transaction.broadcast","id":5,"params":["` + strings.Repeat("ab", 60000) + `"]}` + "\n",
	}
	w := dialWallet(t, px.addr)
	w.send(forwarded...)
	w.send("not json\n")
	want := map[string]bool{
		expectedAnswer("server.version", "0", 1024):                                                                                    true,
		expectedAnswer("server.banner", "1", 1024):                                                                                     true,
		expectedAnswer("blockchain.scripthash.subscribe", "2", 1024):                                                                   true,
		expectedAnswer("blockchain.estimatefee", `"s\u00e9 \"q\""`, 1024):                                                              true,
		padded(`[{"jsonrpc":"2.0","result":"server.ping","id":10},{"jsonrpc":"2.0","result":"blockchain.estimatefee","id":11}]`, 1024): true,
		expectedAnswer("server.ping", "6", 1024):                                                                                       true,
		expectedAnswer("blockchain.transaction.broadcast", "5", 1024):                                                                  true,
	}
	parseErrors := 0
	for range len(want) + 1 {
		line := w.readLine()
		switch {
		case want[line]:
			delete(want, line)
		case strings.Contains(line, `"reason":"parse"`):
			parseErrors++
		default:
			t.Fatalf("wallet got unexpected %.300q", line)
		}
	}
	if len(want) != 0 || parseErrors != 1 {
		t.Fatalf("answers missing: %v; parse errors %d", want, parseErrors)
	}
	recv, _, violation := e.up.Active(t, 0).Snapshot()
	if violation != nil {
		t.Fatal(violation)
	}
	if string(recv) != strings.Join(forwarded, "") {
		t.Errorf("upstream received:\n%.400q\nwant:\n%.400q", recv, strings.Join(forwarded, ""))
	}
	if st := px.Stats(); st.GaveUp != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestCaddyPipelined1000(t *testing.T) {
	leakCheck(t)
	const n = 1000
	e := startCaddy(t, "127.0.0.1", `,"price":64`, 0)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 64}, "")
	lines := []string{versionReq}
	for i := 1; i < n; i++ {
		lines = append(lines, req("blockchain.scripthash.subscribe", i, fmt.Sprintf(`["%064x"]`, i)))
	}
	w := dialWallet(t, px.addr)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { w.send(lines...) })
	readAnswers(t, w, n)
	up := e.up.Active(t, 0)
	recv, got, violation := up.Snapshot()
	if violation != nil {
		t.Fatal(violation)
	}
	if string(recv) != strings.Join(lines, "") {
		for i := range min(len(got), n) {
			if string(got[i]) != lines[i] {
				t.Fatalf("upstream line %d is %q, want %q", i, got[i], lines[i])
			}
		}
		t.Fatalf("upstream received %d lines, want %d", len(got), n)
	}
}

// TestCaddyFirstNotOvertaken: server.version priced above the guess is
// refused by the handler and resent, while cheap requests wait behind it.
func TestCaddyFirstNotOvertaken(t *testing.T) {
	leakCheck(t)
	const n = 50
	e := startCaddy(t, "127.0.0.1", `,"price":16,"method_prices":{"server.version":"2^14"}`, 0)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 16}, "")
	teachPrice(px.Knowledge(), "blockchain.estimatefee", 16)
	lines := []string{versionReq}
	for i := 1; i < n; i++ {
		lines = append(lines, req("blockchain.estimatefee", i, "[2]"))
	}
	w := dialWallet(t, px.addr)
	w.send(lines...)
	readAnswers(t, w, n)
	_, got, violation := e.up.Active(t, 0).Snapshot()
	if violation != nil {
		t.Fatal(violation)
	}
	if string(got[0]) != versionReq || len(got) != n {
		t.Fatalf("upstream got %d lines, first %q", len(got), got[0])
	}
	if st := px.Stats(); st.Retried != 1 {
		t.Errorf("stats %+v, want 1 retry", st)
	}
}

// TestCaddyPriceRaised: the server's prices are raised by a config reload;
// the refusals are absorbed and the wallet sees only real answers.
func TestCaddyPriceRaised(t *testing.T) {
	leakCheck(t)
	const n = 10
	e := startCaddy(t, "127.0.0.1", `,"price":64`, 0)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 64}, "")
	next := 0
	session := func(w *wallet, withVersion bool) {
		var lines []string
		if withVersion {
			lines = append(lines, versionReq)
		}
		for len(lines) < n {
			next++
			lines = append(lines, req("blockchain.scripthash.get_history", next, fmt.Sprintf(`["%064x"]`, next)))
		}
		w.send(lines...)
		readAnswers(t, w, n)
	}
	a := dialWallet(t, px.addr)
	session(a, true)
	if st := px.Stats(); st.Retried != 0 {
		t.Fatalf("retries before the reload: %+v", st)
	}
	e.reload(t, `,"price":"2^12"`)
	session(a, false) // the open connection, whichever policy serves it now
	t.Logf("open connection after the reload: %d retries", px.Stats().Retried)
	b := dialWallet(t, px.addr)
	session(b, true) // a new connection: the new price
	session(b, false)
	st := px.Stats()
	if st.Retried == 0 || st.GaveUp != 0 {
		t.Errorf("stats %+v: want refusals absorbed", st)
	}
	if p := px.Knowledge().Price("blockchain.scripthash.get_history"); p != 1<<12 {
		t.Errorf("learned price %d, want %d", p, 1<<12)
	}
	t.Logf("stats %+v", st)
}

// TestCaddyCeiling: a price above --max-work reaches the wallet as the
// handler's refusal.
func TestCaddyCeiling(t *testing.T) {
	leakCheck(t)
	e := startCaddy(t, "127.0.0.1", `,"price":"2^22","method_prices":{"server.version":16}`, 0)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 32, MaxWork: 1 << 12}, "")
	w := dialWallet(t, px.addr)
	w.send(versionReq)
	readAnswers(t, w, 1)
	w.send(req("blockchain.transaction.get", 1, `["00"]`))
	line := w.readLine()
	if !strings.HasPrefix(line, `{"jsonrpc":"2.0","id":1,"error":{"code":-32003,`) ||
		!strings.Contains(line, `"reason":"insufficient"`) || !strings.Contains(line, `"price":4194304`) {
		t.Fatalf("wallet got %q, want the handler's insufficient refusal", line)
	}
	if st := px.Stats(); st.GaveUp != 1 || st.Retried != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestCaddyWrongGuess: a fresh proxy whose guess is below a method's
// price, which nothing it learned predicts (here server.version is priced
// apart from the rest), survives 50 pipelined requests with the handler's
// default max_rejections (20): the handler does not count underpriced
// refusals, and each refused request is resent once, none waiting for
// another.
func TestCaddyWrongGuess(t *testing.T) {
	leakCheck(t)
	const n = 50
	e := startCaddy(t, "127.0.0.1", `,"price":"2^12","method_prices":{"server.version":16}`, 0)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 32}, "")
	lines := []string{versionReq}
	for i := 1; i < n; i++ {
		lines = append(lines, req("blockchain.scripthash.subscribe", i, fmt.Sprintf(`["%064x"]`, i)))
	}
	w := dialWallet(t, px.addr)
	w.send(lines...)
	readAnswers(t, w, n)
	// How many are refused depends on how many were sent before the
	// first refusal came back: after it, the price is known.
	if st := px.Stats(); st.Retried < 1 || st.Retried > n-1 || st.GaveUp != 0 || st.Connections != 1 {
		t.Errorf("stats %+v, want 1 to %d retries on one connection", st, n-1)
	}
	if c := e.up.Accepted(); c != 1 {
		t.Errorf("upstream saw %d connections, want 1", c)
	}
}

// TestCaddyTLS: caddy-l4's tls handler in front of hashcash, with a
// self-signed certificate: a pinned proxy works, a wrong pin is refused.
func TestCaddyTLS(t *testing.T) {
	leakCheck(t)
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			if host == "::1" {
				ln, err := net.Listen("tcp", "[::1]:0")
				if err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				ln.Close()
			}
			cert := caddytest.SelfSigned(t, "electrum.test", host)
			other := caddytest.SelfSigned(t, "electrum.test", host)
			e := &caddyEnv{host: host, tlsApp: cert.TLSApp("test"), pre: []string{caddytest.TLSHandler("test")}}
			e.up = newFakeUpstream(t, host, 0)
			e.addr = testsupport.FreeAddr(t, host)
			caddytest.Start(t, e.config(`,"price":64`), e.addr)

			good, err := NewTLSConfig(TLSOptions{Fingerprint: colons(cert.Fingerprint)})
			if err != nil {
				t.Fatal(err)
			}
			px := startProxy(t, Config{Server: e.addr, TLS: good, Resource: testResource, Work: 64}, net.JoinHostPort(host, "0"))
			w := dialWallet(t, px.addr)
			w.send(versionReq, req("server.banner", 1, ""))
			if got := readAnswers(t, w, 2); got[0] != expectedAnswer("server.version", "0", 0) {
				t.Fatalf("wallet got %q", got)
			}

			bad, err := NewTLSConfig(TLSOptions{Fingerprint: other.Fingerprint})
			if err != nil {
				t.Fatal(err)
			}
			px2 := startProxy(t, Config{Server: e.addr, TLS: bad, Resource: testResource, Work: 64}, net.JoinHostPort(host, "0"))
			w2 := dialWallet(t, px2.addr)
			w2.send(versionReq)
			w2.expectClosed()
			testsupport.WaitFor(t, "the pin failure in the log", func() bool {
				return strings.Contains(px2.logs.String(), "does not match the pinned fingerprint")
			})
		})
	}
}

// TestCaddyIPv6: everything on [::1], resource defaulting to the address.
func TestCaddyIPv6(t *testing.T) {
	leakCheck(t)
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	e := &caddyEnv{host: "::1"}
	e.up = newFakeUpstream(t, "::1", 0)
	e.addr = testsupport.FreeAddr(t, "::1")
	cfg := caddytest.Layer4Config(e.addr, []string{
		`{"handler":"hashcash","resource":"` + e.addr + `","price":64}`, caddytest.ProxyHandler(e.up.Addr)}, "")
	caddytest.Start(t, cfg, e.addr)
	px := startProxy(t, Config{Server: e.addr, Network: "tcp6", Work: 64}, "[::1]:0")
	w := dialWallet(t, px.addr)
	w.send(versionReq, req("server.banner", 1, ""))
	readAnswers(t, w, 2)
	if st := px.Stats(); st.Retried != 0 {
		t.Errorf("stats %+v: the default resource was not the address", st)
	}
}

// TestCaddyConnectionLimit: a server that refuses the connection for its
// network's connection cap says so once, with id null; the proxy logs why
// and passes the line on, and the server closes the connection.
func TestCaddyConnectionLimit(t *testing.T) {
	leakCheck(t)
	e := startCaddy(t, "127.0.0.1", `,"price":16,"max_conns_per_prefix":1`, 0)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 16}, "")
	first := dialWallet(t, px.addr)
	first.send(versionReq)
	readAnswers(t, first, 1)

	second := dialWallet(t, px.addr)
	second.send(versionReq)
	line := second.readLine()
	if !strings.HasPrefix(line, `{"jsonrpc":"2.0","id":null,"error":{"code":-32012,`) || !strings.Contains(line, `"reason":"connection_limit"`) {
		t.Fatalf("second wallet got %q, want the connection_limit refusal", line)
	}
	if _, err := second.br.ReadByte(); err == nil {
		t.Fatal("the refused connection stayed open")
	}
	if logs := px.logs.String(); !strings.Contains(logs, "server is closing the connection") || !strings.Contains(logs, "reason=connection_limit") {
		t.Fatalf("proxy did not log the refusal:\n%s", logs)
	}
}
