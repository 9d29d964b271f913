package caddyhashcash_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// slowServer is an Electrum-shaped upstream that reads every line as soon
// as it arrives and answers each hold later, one at a time per connection,
// keeping count of the requests it has received and not yet answered
// across all connections: the load caddy puts on it.
type slowServer struct {
	srv    *testsupport.Server
	hold   time.Duration
	notify bool // send a notification before each answer

	mu      sync.Mutex
	pending int      // received, not yet answered
	peak    int      // the most pending at once
	order   []string // the ids received, in order
}

func newSlowServer(t *testing.T, hold time.Duration, notify bool) *slowServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &slowServer{hold: hold, notify: notify}
	s.srv = testsupport.Serve(ln, s.serve)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *slowServer) serve(c net.Conn) {
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			var req struct {
				ID json.RawMessage `json:"id"`
			}
			_ = json.Unmarshal([]byte(line), &req)
			s.mu.Lock()
			s.pending++
			s.peak = max(s.peak, s.pending)
			s.order = append(s.order, string(req.ID))
			s.mu.Unlock()
			lines <- string(req.ID)
		}
	}()
	for id := range lines {
		time.Sleep(s.hold)
		if s.notify {
			// A notification while the request is pending, as an
			// Electrum server sends for a subscription: no answer.
			if _, err := fmt.Fprintf(c, `{"jsonrpc": "2.0", "method": "blockchain.headers.subscribe", "params": [{"height": 1}]}`+"\n"); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
		// Answered from here on: caddy sees the answer only after this.
		s.mu.Lock()
		s.pending--
		s.mu.Unlock()
		if _, err := fmt.Fprintf(c, `{"jsonrpc":"2.0","result":"ok","id":%s}`+"\n", id); err != nil {
			return
		}
	}
}

// received returns how many lines the server has received and the peak of
// requests pending at once.
func (s *slowServer) received() (n, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order), s.peak
}

// position returns where id is in the order of receipt, or -1.
func (s *slowServer) position(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.order {
		if x == id {
			return i
		}
	}
	return -1
}

// pipeline opens a connection from src that sends n unstamped
// server.banner requests (ids first, first+1, …) in one write and reads as
// many answers, past any notifications; the returned channel gets how many
// were refused, or an error if the connection failed.
func pipeline(addr, src string, first, n int) <-chan pipelined {
	done := make(chan pipelined, 1)
	go func() {
		var p pipelined
		defer func() { done <- p }()
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			p.err = err
			return
		}
		defer c.Close()
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":"server.banner","id":%d}`+"\n", first+i)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, p.err = c.Write([]byte(b.String())); p.err != nil {
			return
		}
		r := bufio.NewReader(c)
		for got := 0; got < n; {
			line, err := r.ReadString('\n')
			if err != nil {
				p.err = err
				return
			}
			if !strings.Contains(line, `"id"`) {
				continue // a notification: no id
			}
			got++
			if strings.Contains(line, `"error"`) {
				p.refused++
			}
		}
	}()
	return done
}

// pipelined is what a pipeline got: how many requests were refused, or why
// it did not get every answer.
type pipelined struct {
	refused int
	err     error
}

// TestGateHoldsServerLoadAndServesNetworksInTurn: with max_in_flight 4,
// caddy never has more than 4 requests forwarded and unanswered, however
// many one network pipelines; the rest wait at caddy, and a request from
// another network is forwarded within a few turns, not behind the backlog
// (the order of turns between networks is internal/admission's
// TestNetworksServedInTurn). Every request is answered in the end.
func TestGateHoldsServerLoadAndServesNetworksInTurn(t *testing.T) {
	up := newSlowServer(t, 20*time.Millisecond, false)
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	// A budget no network reaches and a tick longer than the test: no
	// level moves, only the gate acts.
	options := `"price":0,"network_budget":100000,"price_tick":"1m","ipv4_prefix":32,"max_in_flight":4,"max_rejections":-1,"refusal_rate":-1`
	caddytest.Start(t, caddytest.Layer4Config(addr, []string{hashcashHandler(options), caddytest.ProxyHandler(up.srv.Addr())}, ""), addr)

	const conns, perConn = 4, 30
	var floods []<-chan pipelined
	for i := range conns {
		floods = append(floods, pipeline(addr, "127.0.0.2", 1000*(i+1), perConn))
	}
	// Each flood connection waits at the gate with one line (an eighth of
	// max_in_flight, at least 1) while the rest of its pipeline waits
	// behind it, unread.
	testsupport.WaitFor(t, "the flood to wait at the gate", func() bool {
		return gauge(t, "caddy_layer4_hashcash_requests_waiting") >= 3
	})
	before, _ := up.received()
	if before > conns*perConn/2 {
		t.Fatalf("the server received %d of %d flood lines before the other network's request: no backlog to test", before, conns*perConn)
	}
	honest := dialFrom(t, addr, "127.0.0.3")
	honest.send(`{"jsonrpc":"2.0","method":"server.banner","id":7}` + "\n")
	if r := parseResponse(t, honest.readLine()); r.Error != nil {
		t.Fatalf("the other network's request was refused: %+v", r.Error)
	}
	at := up.position("7")
	for i, f := range floods {
		if p := <-f; p.err != nil || p.refused != 0 {
			t.Fatalf("flood connection %d: %d refused, %v", i, p.refused, p.err)
		}
	}
	total, peak := up.received()
	t.Logf("peak %d in flight at the server; the other network's request was received %d lines after it was sent, of %d flood lines",
		peak, at-before, conns*perConn)
	if peak > 4 {
		t.Fatalf("the server had %d requests in flight at once, max_in_flight 4", peak)
	}
	if total != conns*perConn+1 {
		t.Fatalf("the server received %d lines, want %d", total, conns*perConn+1)
	}
	// Each flood connection waits at the gate with one line at a time, so
	// the request waits a few turns, not behind the flood's backlog (60
	// lines or more were still to come when it was sent); the margin
	// covers the turns that pass while its connection is set up.
	if at < 0 || at-before > 24 {
		t.Fatalf("the other network's request was forwarded %d lines after it was sent, behind the flood's backlog", at-before)
	}
	if w := gauge(t, "caddy_layer4_hashcash_requests_waiting"); w != 0 {
		t.Fatalf("%v requests still waiting after every answer", w)
	}
}

// TestServerLoadRaisesGlobalLevel: a backlog above max_in_flight for whole
// ticks raises every network's price, the other networks' included, and
// it falls back to calm once the backlog is gone.
func TestServerLoadRaisesGlobalLevel(t *testing.T) {
	up := newSlowServer(t, 30*time.Millisecond, false)
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	admin := testsupport.FreeAddr(t, "127.0.0.1")
	options := `"price":0,"network_budget":100000,"network_burst":100000,"price_step":16,"max_price":4096,"price_tick":"100ms","calm_ticks":10,"price_tolerance":"-1s",` +
		`"ipv4_prefix":32,"max_in_flight":2,"max_rejections":-1,"refusal_rate":-1`
	config := strings.Replace(caddytest.Layer4Config(addr, []string{hashcashHandler(options), caddytest.ProxyHandler(up.srv.Addr())}, ""),
		`"admin":{"disabled":true}`, `"admin":{"listen":"`+admin+`"}`, 1)
	caddytest.Start(t, config, addr)

	var floods []<-chan pipelined
	for i := range 4 {
		floods = append(floods, pipeline(addr, "127.0.0.2", 1000*(i+1), 20))
	}
	testsupport.WaitFor(t, "the global level to rise", func() bool {
		return adminPrices(t, admin)[resource].GlobalLevel >= 1
	})
	logPriceMetrics(t)
	if g := gauge(t, "caddy_layer4_hashcash_price_global_level"); g < 1 {
		t.Fatalf("metric price_global_level %v while the admin API shows a rise", g)
	}
	other := dialFrom(t, addr, "127.0.0.3")
	if r := other.call(1); r == nil || r.Reason != stamp.ReasonMissing || r.Level < 1 || r.Price == 0 {
		t.Fatalf("another network's unstamped request during the backlog got %+v, want refused as missing at level 1 or more", r)
	}
	refused := 0
	for i, f := range floods {
		p := <-f
		if p.err != nil {
			t.Fatalf("flood connection %d: %v", i, p.err)
		}
		refused += p.refused
	}
	total, peak := up.received()
	t.Logf("the flood: %d requests forwarded, %d refused as the level rose", total-1, refused)
	if refused == 0 {
		t.Fatalf("no flood request was refused while the global level was up")
	}
	if peak > 2 {
		t.Fatalf("the server had %d requests in flight at once, max_in_flight 2", peak)
	}
	testsupport.WaitFor(t, "the global level to fall back to calm", func() bool {
		return adminPrices(t, admin)[resource].GlobalLevel == 0
	})
	if r := other.call(2); r != nil {
		t.Fatalf("once calm, an unstamped request was refused: %+v", r)
	}
}

// TestGateDoesNotCountNotifications: a notification the server sends while
// a request is pending frees no slot: with one before every answer, the
// server still never has more than max_in_flight requests.
func TestGateDoesNotCountNotifications(t *testing.T) {
	up := newSlowServer(t, 10*time.Millisecond, true)
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	options := `"price":0,"network_budget":100000,"price_tick":"1m","ipv4_prefix":32,"max_in_flight":4,"max_rejections":-1,"refusal_rate":-1`
	caddytest.Start(t, caddytest.Layer4Config(addr, []string{hashcashHandler(options), caddytest.ProxyHandler(up.srv.Addr())}, ""), addr)
	var floods []<-chan pipelined
	for i := range 4 {
		floods = append(floods, pipeline(addr, "127.0.0.2", 1000*(i+1), 20))
	}
	for i, f := range floods {
		if p := <-f; p.err != nil || p.refused != 0 {
			t.Fatalf("flood connection %d: %d refused, %v", i, p.refused, p.err)
		}
	}
	n, peak := up.received()
	t.Logf("%d requests, peak %d in flight at the server", n, peak)
	if n != 80 {
		t.Fatalf("the server received %d requests, want 80", n)
	}
	if peak > 4 {
		t.Fatalf("the server had %d requests in flight at once, max_in_flight 4: notifications freed slots", peak)
	}
}
