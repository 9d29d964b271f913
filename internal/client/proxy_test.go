package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/methodcost"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"slices"
	"strings"
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

const testResource = "test.invalid:1"

type env struct {
	up  *testsupport.Upstream
	srv *fakeServer
	px  *testProxy
}

// newEnv starts upstream, verifying server and proxy on IPv4 loopback.
// cfg.Server is filled in; cfg.Resource defaults to testResource.
func newEnv(t *testing.T, pol *verify.Policy, cfg Config, pad int) *env {
	t.Helper()
	up := newFakeUpstream(t, "127.0.0.1", pad)
	srv := newFakeServer(t, "tcp", "127.0.0.1:0", up.Addr, pol, nil)
	cfg.Server = srv.addr()
	if cfg.Resource == "" {
		cfg.Resource = testResource
	}
	return &env{up: up, srv: srv, px: startProxy(t, cfg, "")}
}

// idOf returns the raw id of a response or request line.
func idOf(t testing.TB, line string) string {
	t.Helper()
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return string(m.ID)
}

func sortedLines(lines []string) []string {
	s := slices.Clone(lines)
	slices.Sort(s)
	return s
}

func splitLines(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}

// TestByteExact: every request the wallet writes reaches the upstream
// byte for byte once its stamp is removed; every byte the server sends
// (padded answers, the handler's refusals of lines that are not requests)
// reaches the wallet unchanged.
func TestByteExact(t *testing.T) {
	leakCheck(t)
	pol := newPolicy(testResource, 1<<10, map[string]uint64{"server.version": 1 << 8, "server.ping": 0})
	e := newEnv(t, pol, Config{Work: 1 << 10}, 1024)
	teachPrice(e.px.Knowledge(), "server.version", 1<<8)

	big := `{"jsonrpc":"2.0","method":"blockchain.transaction.broadcast","id":5,"params":["` + strings.Repeat("ab", 60000) + `"]}` + "\n"
	forwarded := []string{
		versionReq,
		`{"jsonrpc":"2.0","method":"server.banner","id":1}` + "\n",
		`{ "jsonrpc" : "2.0" ,  "method" : "blockchain.scripthash.subscribe" , "params" : [ "ab" ] , "id" : 2 }` + "\n",
		`{"jsonrpc":"2.0","method":"blockchain.estimatefee","id":"s\u00e9 \"q\"","params":["caf\u00e9 ü", 1.5e3, null, {"a":[]}]}` + "\n",
		`[{"jsonrpc":"2.0","method":"server.ping","id":10},{"jsonrpc":"2.0","method":"blockchain.estimatefee","id":11,"params":[2]}]` + "\n",
		`{"jsonrpc":"2.0","method":"server.ping"}` + "\n", // notification: no answer
		`{"method":"server.ping","id":6,"jsonrpc":"2.0"}` + "\r\n",
		big,
	}
	refusedLines := []string{
		"{}\n",       // no method: the handler refuses it (invalid_request)
		"not json\n", // parse
		"42\n",       // not an object (invalid_request)
		`{"jsonrpc":"2.0","method":"server.banner","id":9,"pow":"1:1:1:00000000000000000000000000000000:0:x"}` + "\n", // stamped already: untouched, refused
	}
	w := dialWallet(t, e.px.addr)
	w.send(forwarded[0])
	if got, want := w.readLine(), expectedAnswer("server.version", "0", 1024); got != want {
		t.Fatalf("answer to server.version:\n got %q\nwant %q", got, want)
	}
	w.send(append(append([]string(nil), forwarded[1:]...), refusedLines...)...)

	want := []string{
		expectedAnswer("server.banner", "1", 1024),
		expectedAnswer("blockchain.scripthash.subscribe", "2", 1024),
		expectedAnswer("blockchain.estimatefee", `"s\u00e9 \"q\""`, 1024),
		padded(`[{"jsonrpc":"2.0","result":"server.ping","id":10},{"jsonrpc":"2.0","result":"blockchain.estimatefee","id":11}]`, 1024),
		expectedAnswer("server.ping", "6", 1024),
		expectedAnswer("blockchain.transaction.broadcast", "5", 1024),
	}
	var got []string
	for range len(want) + len(refusedLines) {
		got = append(got, w.readLine())
	}
	testsupport.WaitFor(t, "the handler's refusals", func() bool { return len(e.srv.replyLines()) == len(refusedLines) })
	for _, r := range e.srv.replyLines() {
		want = append(want, string(r))
	}
	if g, w := sortedLines(got), sortedLines(want); !slices.Equal(g, w) {
		t.Errorf("wallet received:\n%q\nwant (any order):\n%q", g, w)
	}
	recv, _, violation := e.up.Conn(t, 0).Snapshot()
	if violation != nil {
		t.Errorf("upstream: %s", violation)
	}
	if wantRecv := strings.Join(forwarded, ""); string(recv) != wantRecv {
		t.Errorf("upstream received:\n%.400q\nwant:\n%.400q", recv, wantRecv)
	}
	st := e.px.Stats()
	if st.Retried != 0 || st.GaveUp != 0 {
		t.Errorf("stats %+v: want no retries, nothing given up", st)
	}
	// version, banner, subscribe, estimatefee, 2 in the batch, the
	// notification, ping, broadcast.
	if want := uint64(9); st.Stamped != want {
		t.Errorf("stamped %d requests, want %d", st.Stamped, want)
	}
}

// TestPipelined1000: a thousand requests written at once reach the upstream
// in the wallet's order and are all answered.
func TestPipelined1000(t *testing.T) {
	leakCheck(t)
	const n = 1000
	pol := newPolicy(testResource, 1<<6, nil)
	e := newEnv(t, pol, Config{Work: 1 << 6}, 0)
	lines := []string{versionReq}
	for i := 1; i < n; i++ {
		lines = append(lines, req("blockchain.scripthash.subscribe", i, fmt.Sprintf(`["%064x"]`, i)))
	}
	w := dialWallet(t, e.px.addr)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { w.send(lines...) }) // the wallet reads while it writes
	seen := map[string]bool{}
	for range n {
		line := w.readLine()
		id := idOf(t, line)
		if seen[id] {
			t.Fatalf("answer %s twice", id)
		}
		seen[id] = true
		if strings.Contains(line, `"error"`) {
			t.Fatalf("wallet got an error: %s", line)
		}
	}
	recv, got, violation := e.up.Conn(t, 0).Snapshot()
	if violation != nil {
		t.Fatalf("upstream: %s", violation)
	}
	if len(got) != n {
		t.Fatalf("upstream received %d lines, want %d", len(got), n)
	}
	if want := strings.Join(lines, ""); string(recv) != want {
		for i := range got {
			if string(got[i]) != lines[i] {
				t.Fatalf("upstream line %d is %q, want %q", i, got[i], lines[i])
			}
		}
		t.Fatalf("upstream received different bytes")
	}
	if st := e.px.Stats(); st.Stamped != n || st.Retried != 0 {
		t.Errorf("stats %+v: want %d stamped, no retries", st, n)
	}
}

// TestFirstNotOvertaken: the connection's first request reaches the
// upstream before any other, even when it is slow to mint or refused and
// resent while cheap requests are queued behind it. The fake upstream
// disconnects (like ElectrumX) if anything else comes first.
func TestFirstNotOvertaken(t *testing.T) {
	for _, tc := range []struct {
		name         string
		versionPrice uint64 // the server's price for server.version
		guess        uint64 // the proxy's for it
		wantRetries  bool
	}{
		{"slow first", 1 << 17, 1 << 17, false},
		{"refused first", 1 << 12, 16, true},
		{"refused first twice", 1 << 14, 16, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			const n = 50
			pol := newPolicy(testResource, 16, map[string]uint64{"server.version": tc.versionPrice})
			e := newEnv(t, pol, Config{Work: 16}, 0)
			teachPrice(e.px.Knowledge(), "server.version", tc.guess)
			if tc.name == "refused first twice" {
				// The first refusal asks for 1<<12, then the price rises.
				e.srv.setPolicy(newPolicy(testResource, 16, map[string]uint64{"server.version": 1 << 12}))
				var once sync.Once
				f := func() { once.Do(func() { e.srv.setPolicy(pol) }) }
				e.srv.onRefusal.Store(&f)
			}
			lines := []string{versionReq}
			for i := 1; i < n; i++ {
				lines = append(lines, req("blockchain.estimatefee", i, "[2]"))
			}
			w := dialWallet(t, e.px.addr)
			w.send(lines...)
			for range n {
				if line := w.readLine(); strings.Contains(line, `"error"`) {
					t.Fatalf("wallet got an error: %s", line)
				}
			}
			_, got, violation := e.up.Conn(t, 0).Snapshot()
			if violation != nil {
				t.Fatalf("upstream: %s", violation)
			}
			if string(got[0]) != versionReq {
				t.Fatalf("upstream's first line is %q", got[0])
			}
			st := e.px.Stats()
			if tc.wantRetries != (st.Retried > 0) {
				t.Errorf("stats %+v: want retries %v", st, tc.wantRetries)
			}
			if tc.name == "refused first twice" && e.srv.refusedCount(stamp.ReasonInsufficient) < 2 {
				t.Errorf("server.version was refused %d times, want 2", e.srv.refusedCount(stamp.ReasonInsufficient))
			}
			if p := e.px.Knowledge().Price("server.version"); p != tc.versionPrice {
				t.Errorf("learned price of server.version %d, want %d", p, tc.versionPrice)
			}
		})
	}
}

// TestPriceRaisedMidConnection: when the server raises its prices on an
// open connection, the refusals are absorbed by resends: the wallet only
// sees real answers and the upstream gets every request exactly once.
func TestPriceRaisedMidConnection(t *testing.T) {
	leakCheck(t)
	const n = 20
	store := replay.NewMemory(1 << 16)
	pol := newPolicy(testResource, 64, nil)
	pol.Store = store
	e := newEnv(t, pol, Config{Work: 64}, 512)
	w := dialWallet(t, e.px.addr)
	var sent []string
	batch := func(from int) {
		var lines []string
		for i := from; i < from+n; i++ {
			if i == 0 {
				lines = append(lines, versionReq)
				continue
			}
			lines = append(lines, req("blockchain.scripthash.get_history", i, fmt.Sprintf(`["%064x"]`, i)))
		}
		sent = append(sent, lines...)
		w.send(lines...)
		for range n {
			if line := w.readLine(); strings.Contains(line, `"error"`) {
				t.Fatalf("wallet got an error: %s", line)
			}
		}
	}
	batch(0)
	if st := e.px.Stats(); st.Retried != 0 {
		t.Fatalf("retries before the price changed: %+v", st)
	}
	raised := newPolicy(testResource, 1<<12, nil)
	raised.Store = store
	e.srv.setPolicy(raised)
	batch(n)
	batch(2 * n) // now at the learned price: no more refusals
	st := e.px.Stats()
	if st.Retried == 0 || st.GaveUp != 0 {
		t.Errorf("stats %+v: want retries and nothing given up", st)
	}
	if r := e.srv.refusedCount(stamp.ReasonInsufficient); r == 0 || uint64(r) != st.Retried {
		t.Errorf("server refused %d as insufficient, proxy retried %d", r, st.Retried)
	}
	if p := e.px.Knowledge().Price("blockchain.scripthash.get_history"); p != 1<<12 {
		t.Errorf("learned price %d, want %d", p, 1<<12)
	}
	recv, _, violation := e.up.Conn(t, 0).Snapshot()
	if violation != nil {
		t.Fatal(violation)
	}
	if g, w := sortedLines(splitLines(recv)), sortedLines(sent); !slices.Equal(g, w) {
		t.Errorf("upstream received %d lines, want the %d sent", len(g), len(w))
	}
}

// TestCeiling: a price above --max-work is not paid: the wallet receives
// the server's refusal line unchanged, and a later request for the same
// method costs a token stamp only.
func TestCeiling(t *testing.T) {
	leakCheck(t)
	pol := newPolicy(testResource, 1<<22, map[string]uint64{"server.version": 16})
	e := newEnv(t, pol, Config{Work: 32, MaxWork: 1 << 12}, 0)
	w := dialWallet(t, e.px.addr)
	w.send(versionReq)
	w.readLine()
	hashesBefore := e.px.Stats().Hashes
	for i := 1; i <= 2; i++ {
		w.send(req("blockchain.estimatefee", i, "[2]"))
		line := w.readLine()
		replies := e.srv.replyLines()
		if len(replies) != i || string(replies[i-1]) != line {
			t.Fatalf("wallet got %q, want the server's refusal %q", line, replies)
		}
		var resp struct {
			Error struct {
				Data stamp.Rejection `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &resp); err != nil || resp.Error.Data.Reason != stamp.ReasonInsufficient || resp.Error.Data.Price != pol.PriceOf("blockchain.estimatefee") {
			t.Fatalf("refusal %q: %v", line, err)
		}
	}
	st := e.px.Stats()
	if st.GaveUp != 2 || st.Retried != 0 {
		t.Errorf("stats %+v: want 2 given up, no retries", st)
	}
	// The first estimatefee was minted at the guess (4), the second with a
	// token stamp since the price is known to be above the ceiling.
	if h := st.Hashes - hashesBefore; h > 1<<12 {
		t.Errorf("spent %d hashes on requests above the ceiling", h)
	}
	if _, got, _ := e.up.Conn(t, 0).Snapshot(); len(got) != 1 {
		t.Errorf("upstream received %d lines, want only server.version", len(got))
	}
}

// TestLearnResourceAndClock: a wrong resource guess and a server clock an
// hour off are learned from the first refusal, and later connections use
// what was learned.
func TestLearnResourceAndClock(t *testing.T) {
	for _, off := range []time.Duration{time.Hour, -time.Hour} {
		t.Run(off.String(), func(t *testing.T) {
			leakCheck(t)
			pol := newPolicy("real.invalid:7", 64, nil)
			pol.Now = func() time.Time { return time.Now().Add(off) }
			e := newEnv(t, pol, Config{Work: 64, Resource: "guess.invalid:1"}, 0)
			// Hold the first refusal back until the request behind it
			// (the second of the proxy's mints) is minted at the wrong
			// resource and time. This runs on the server's goroutine,
			// which may not end the test: a timeout is reported with
			// t.Error.
			var once sync.Once
			slow := func() {
				once.Do(func() {
					err := testsupport.Poll(context.Background(), "the request behind the first to be minted", testsupport.WaitTimeout, time.Millisecond,
						func() (bool, error) { return e.px.Stats().Mints >= 2, nil })
					if err != nil {
						t.Error(err)
					}
				})
			}
			e.srv.onRefusal.Store(&slow)
			var retried uint64
			for conn := range 2 {
				w := dialWallet(t, e.px.addr)
				w.send(versionReq, req("server.banner", 1, ""), req("server.ping", 2, ""))
				for range 3 {
					if line := w.readLine(); strings.Contains(line, `"error"`) {
						t.Fatalf("wallet got an error: %s", line)
					}
				}
				w.c.Close()
				st := e.px.Stats()
				// Only the first request is refused: the requests minted
				// behind it at the wrong resource and time are minted
				// again before they are sent.
				if conn == 0 && (st.Retried != 1 || st.Restamped == 0) {
					t.Errorf("first connection: want 1 retry and restamps (%+v)", st)
				}
				if conn == 1 && st.Retried != retried {
					t.Errorf("second connection retried: %+v", st)
				}
				retried = st.Retried
				if e.up.Conn(t, conn).Err() != nil {
					t.Fatal(e.up.Conn(t, conn).Err())
				}
			}
			k := e.px.Knowledge()
			if k.Resource() != "real.invalid:7" {
				t.Errorf("learned resource %q", k.Resource())
			}
			learned := time.Duration(k.ServerTime()-time.Now().Unix()) * time.Second
			if d := learned - off; d < -2*time.Second || d > 2*time.Second {
				t.Errorf("learned offset %v, want about %v", learned, off)
			}
		})
	}
}

// TestBatch: batches are stamped per element, forwarded byte for byte, and
// a refused batch is resent whole.
func TestBatch(t *testing.T) {
	leakCheck(t)
	pol := newPolicy(testResource, 1<<10, map[string]uint64{"server.version": 16, "server.ping": 4})
	e := newEnv(t, pol, Config{Work: 32}, 0)
	w := dialWallet(t, e.px.addr)
	w.send(versionReq)
	w.readLine()
	b := `[{"jsonrpc":"2.0","method":"server.ping","id":1},{"jsonrpc":"2.0","method":"blockchain.block.header","id":2,"params":[5]}, {"jsonrpc":"2.0","method":"server.ping"} ,{}]` + "\n"
	b = strings.Replace(b, ",{}]", "]", 1)
	w.send(b)
	want := `[{"jsonrpc":"2.0","result":"server.ping","id":1},{"jsonrpc":"2.0","result":"blockchain.block.header","id":2}]` + "\n"
	if got := w.readLine(); got != want {
		t.Fatalf("wallet got %q, want %q", got, want)
	}
	_, got, _ := e.up.Conn(t, 0).Snapshot()
	if len(got) != 2 || string(got[1]) != b {
		t.Fatalf("upstream got %q, want %q", got, b)
	}
	st := e.px.Stats()
	if st.Retried != 1 || e.srv.refusedCount(stamp.ReasonBatch) != 2 || e.srv.refusedCount(stamp.ReasonInsufficient) != 1 {
		t.Errorf("stats %+v, refusals insufficient %d batch %d: want one resend of a batch refused for one element",
			st, e.srv.refusedCount(stamp.ReasonInsufficient), e.srv.refusedCount(stamp.ReasonBatch))
	}
}

// flakyStore refuses the first claims as if full.
type flakyStore struct {
	replay.Store
	mu    sync.Mutex
	fails int
}

func (s *flakyStore) Claim(k replay.Key, now, exp int64) error {
	s.mu.Lock()
	if s.fails > 0 {
		s.fails--
		s.mu.Unlock()
		return replay.ErrFull
	}
	s.mu.Unlock()
	return s.Store.Claim(k, now, exp)
}

// TestBusy: a busy server is retried after a delay; when it stays busy the
// proxy gives up after MaxTries and the wallet gets the refusal.
func TestBusy(t *testing.T) {
	leakCheck(t)
	store := &flakyStore{Store: replay.NewMemory(1 << 10)}
	pol := newPolicy(testResource, 16, nil)
	pol.Store = store
	e := newEnv(t, pol, Config{Work: 16, MaxTries: 3, BusyDelay: 20 * time.Millisecond}, 0)
	w := dialWallet(t, e.px.addr)
	store.mu.Lock()
	store.fails = 2
	store.mu.Unlock()
	start := time.Now()
	w.send(versionReq)
	if line := w.readLine(); line != expectedAnswer("server.version", "0", 0) {
		t.Fatalf("wallet got %q", line)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("two busy resends took %v, want the delays 20ms and 40ms", d)
	}
	if st := e.px.Stats(); st.Retried != 2 || st.GaveUp != 0 {
		t.Errorf("stats %+v, want 2 retries", st)
	}
	store.mu.Lock()
	store.fails = 3
	store.mu.Unlock()
	w.send(req("server.ping", 1, ""))
	line := w.readLine()
	if !strings.Contains(line, `"reason":"busy"`) {
		t.Fatalf("wallet got %q, want the busy refusal", line)
	}
	if st := e.px.Stats(); st.Retried != 4 || st.GaveUp != 1 {
		t.Errorf("stats %+v, want 4 retries and 1 given up", st)
	}
}

// TestLongLines: lines longer than MaxLine pass through unparsed: a long
// answer reaches the wallet byte for byte, and a long request reaches the
// server unstamped (which refuses it).
func TestLongLines(t *testing.T) {
	leakCheck(t)
	pol := newPolicy(testResource, 16, nil)
	e := newEnv(t, pol, Config{Work: 16, MaxLine: 4096, MaxRequest: 4096}, 100_000)
	w := dialWallet(t, e.px.addr)
	w.send(versionReq, req("server.banner", 1, ""))
	for _, want := range []string{expectedAnswer("server.version", "0", 100_000), expectedAnswer("server.banner", "1", 100_000)} {
		if got := w.readLine(); got != want {
			t.Fatalf("wallet got %d bytes %.100q, want %d bytes", len(got), got, len(want))
		}
	}
	long := req("blockchain.transaction.broadcast", 2, `["`+strings.Repeat("00", 5000)+`"]`)
	w.send(long)
	if line := w.readLine(); !strings.Contains(line, `"reason":"missing"`) {
		t.Fatalf("wallet got %.200q, want the server's refusal of an unstamped line", line)
	}
}

// TestDialFailure: when the server cannot be reached the wallet's
// connection is closed and nothing is left running.
func TestDialFailure(t *testing.T) {
	leakCheck(t)
	addr := testsupport.FreeAddr(t, "127.0.0.1") // nothing listens there
	px := startProxy(t, Config{Server: addr, DialTimeout: 5 * time.Second}, "")
	w := dialWallet(t, px.addr)
	w.expectClosed()
	testsupport.WaitFor(t, "the close log line", func() bool { return strings.Contains(px.logs.String(), "connection refused") })
}

// TestOneRefusalTeachesEveryPrice: the refusal of the connection's first
// request teaches the proxy the price of every method, on a server whose
// prices move (the refusal names the unit price) and on one whose prices
// are fixed (the price of server.version implies the unit): the requests
// the wallet pipelined behind it are minted again before they are sent,
// none is refused, and none waited for another's answer.
func TestOneRefusalTeachesEveryPrice(t *testing.T) {
	const unit = 1 << 12
	methods := []string{"blockchain.estimatefee", "blockchain.block.header", "server.banner",
		"blockchain.scripthash.subscribe", "blockchain.scripthash.get_history",
		"blockchain.transaction.get", "blockchain.transaction.get_merkle", "mempool.get_fee_histogram"}
	for _, moving := range []bool{true, false} {
		t.Run(fmt.Sprintf("moving=%v", moving), func(t *testing.T) {
			leakCheck(t)
			const n = 50
			pol := newPolicy(testResource, unit, nil)
			if moving {
				pol.Costs, pol.MethodPrices = methodcost.Table(), nil
			}
			up := newFakeUpstream(t, "127.0.0.1", 0)
			srv := newFakeServer(t, "tcp", "127.0.0.1:0", up.Addr, pol, nil)
			if moving {
				srv.quote.Store(&verify.Quote{Unit: unit, LeastUnit: unit, Level: 1})
			}
			px := startProxy(t, Config{Server: srv.addr(), Resource: testResource, Work: 16}, "")
			lines := []string{versionReq}
			for i := 1; i < n; i++ {
				lines = append(lines, req(methods[i%len(methods)], i, fmt.Sprintf(`["%064x"]`, i)))
			}
			w := dialWallet(t, px.addr)
			w.send(lines...)
			for range n {
				if line := w.readLine(); strings.Contains(line, `"error"`) {
					t.Fatalf("wallet got an error: %s", line)
				}
			}
			if r := srv.refusedCount(stamp.ReasonInsufficient); r != 1 {
				t.Errorf("server refused %d requests, want 1 (server.version's)", r)
			}
			if st := px.Stats(); st.Retried != 1 || st.GaveUp != 0 {
				t.Errorf("stats %+v: want 1 retry", st)
			}
			_, got, violation := up.Conn(t, 0).Snapshot()
			if violation != nil {
				t.Fatal(violation)
			}
			for i := range got {
				if string(got[i]) != lines[i] {
					t.Fatalf("upstream line %d is %q, want %q: not in the wallet's order", i, got[i], lines[i])
				}
			}
			for _, m := range methods {
				p := px.Knowledge().Price(m)
				if moving && p != priceUp(methodcost.Of(m), unit) {
					t.Errorf("price of %s predicted %d, want %d", m, p, priceUp(methodcost.Of(m), unit))
				}
				if p < pol.PriceOf(m) && !moving {
					t.Errorf("price of %s guessed %d, below the server's %d", m, p, pol.PriceOf(m))
				}
			}
		})
	}
}

// TestNoWaitBehindUnknownPrice: a request of a method whose price is not
// known, never answered, holds none of the requests behind it back.
func TestNoWaitBehindUnknownPrice(t *testing.T) {
	leakCheck(t)
	e := newEnv(t, newPolicy(testResource, 16, nil), Config{Work: 16}, 0)
	w := dialWallet(t, e.px.addr)
	w.send(versionReq)
	w.readLine()
	w.send(req("test.silent", 1, ""), req("server.banner", 2, ""))
	if got := w.readLine(); got != expectedAnswer("server.banner", "2", 0) {
		t.Fatalf("wallet got %q", got)
	}
}
