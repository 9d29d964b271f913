package client

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// adaptiveCaddy: free while calm, 5 cost units a second per /32 with a
// burst of 5, levels moving every 100ms from 64 up to 4096.
const adaptiveCaddy = `,"price":0,"network_budget":5,"network_burst":5,"price_step":64,"max_price":4096,` +
	`"price_tick":"100ms","calm_ticks":2,"price_tolerance":"300ms","ipv4_prefix":32,"max_rejections":-1,"refusal_rate":-1`

// TestFollowsAdaptivePrices: a proxy that starts free sends no stamps to a
// calm server; when its network floods the server (another client on the
// same address), the proxy follows the rising price with no error reaching
// the wallet; when the flood stops, it notices the fall and stops minting.
func TestFollowsAdaptivePrices(t *testing.T) {
	leakCheck(t)
	e := startCaddy(t, "127.0.0.1", adaptiveCaddy, 0)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 64, StartFree: true, MaxWork: 1 << 20}, "")
	w := dialWallet(t, px.addr)
	next := 0
	request := func() {
		t.Helper()
		next++
		w.send(req("blockchain.scripthash.get_history", next, fmt.Sprintf(`["%064x"]`, next)))
		readAnswers(t, w, 1) // fails the test on any error
	}
	w.send(versionReq)
	readAnswers(t, w, 1)
	request()
	if st := px.Stats(); st.Mints != 0 {
		t.Fatalf("minted %d stamps for a calm, free server", st.Mints)
	}

	// A flooder on the same network sends unstamped requests as fast as
	// it is answered, while the wallet goes on at 4 requests a second.
	stopFlood := flood(e.addr)
	for range 8 {
		time.Sleep(250 * time.Millisecond)
		request()
	}
	t.Logf("flooder sent %d requests", stopFlood())
	during := px.Stats()
	if during.Mints == 0 || during.GaveUp != 0 {
		t.Fatalf("stats during the flood %+v: want stamps minted and nothing given up", during)
	}

	// The flood is over: after the level falls the proxy probes, learns
	// that requests are free again and stops minting.
	testsupport.WaitFor(t, "the proxy to stop minting", func() bool {
		before := px.Stats().Mints
		for range 3 {
			time.Sleep(250 * time.Millisecond)
			request()
		}
		return px.Stats().Mints == before
	})
	if st := px.Stats(); st.GaveUp != 0 {
		t.Fatalf("stats %+v: a refusal reached the wallet", st)
	}
}

// TestRefusedGuessIsNotATry: with one try per request (MaxTries 1), a
// request the proxy sent on a guess, without a stamp while free or with a
// token stamp once next_fall has passed, is refused and then paid for,
// never given up: the refusal of a guess is the server's answer to it, not
// a failed try.
func TestRefusedGuessIsNotATry(t *testing.T) {
	leakCheck(t)
	e := startCaddy(t, "127.0.0.1", adaptiveCaddy, 0)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 64, StartFree: true, MaxWork: 1 << 20, MaxTries: 1}, "")
	w := dialWallet(t, px.addr)
	w.send(versionReq)
	readAnswers(t, w, 1)

	// A flooder on the same network keeps its price at max_price.
	stopFlood := flood(e.addr)
	defer stopFlood()
	time.Sleep(1500 * time.Millisecond) // 64 → 4096: six ticks of 100ms

	// Sent free, refused as missing, paid: one try.
	w.send(req("blockchain.scripthash.get_history", 1, `["01"]`))
	readAnswers(t, w, 1)
	// After next_fall (at least a second after that refusal), requests go
	// with a token stamp, are refused as insufficient and paid for: the
	// proxy's retries count one more when that happens, and no refusal
	// reaches the wallet (readAnswers fails the test on one).
	retried := px.Stats().Retried
	id := 2
	testsupport.WaitFor(t, "a token stamp refused, then paid for", func() bool {
		time.Sleep(100 * time.Millisecond)
		w.send(req("blockchain.scripthash.get_history", id, fmt.Sprintf(`["%02x"]`, id)))
		readAnswers(t, w, 1)
		id++
		return px.Stats().Retried > retried
	})
	if st := px.Stats(); st.GaveUp != 0 {
		t.Fatalf("stats %+v: a refusal reached the wallet", st)
	}
}

// TestOtherNetworkStaysCalm: while another network floods and its price
// rises, a wallet on a calm network keeps working through the proxy, which
// is never asked for a stamp.
func TestOtherNetworkStaysCalm(t *testing.T) {
	leakCheck(t)
	e := startCaddy(t, "127.0.0.1", adaptiveCaddy, 0)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 64, StartFree: true, MaxWork: 1 << 20}, "")
	w := dialWallet(t, px.addr)
	w.send(versionReq)
	readAnswers(t, w, 1)

	// 4 requests a second: within the budget of 5 cost units.
	accepted, refused := requestsDuringFlood(t, w, 12, 250*time.Millisecond, pipelineFlood(e.addr, "127.0.0.2", 2))
	st := px.Stats()
	t.Logf("flood from 127.0.0.2: %d accepted, %d refused; proxy on 127.0.0.1: %+v", accepted, refused, st)
	if refused == 0 {
		t.Fatalf("the flooding network was never refused: its price did not rise")
	}
	if st.Mints != 0 || st.Retried != 0 || st.GaveUp != 0 {
		t.Fatalf("proxy stats %+v: the calm network was asked to pay for another's flood", st)
	}
}

// TestFollowsGlobalPrice: a flood from another network loads a slow
// server past max_in_flight, so the global level rises for every network;
// the proxy, which starts free, pays it with no error reaching the wallet,
// while the level rises and falls as the flood comes and goes.
func TestFollowsGlobalPrice(t *testing.T) {
	leakCheck(t)
	slow := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{Answer: func(line []byte, n int) ([]byte, error) {
		time.Sleep(20 * time.Millisecond)
		return electrumAnswer(line, n)
	}})
	// Budgets no network reaches: only the server's load moves prices.
	e := startCaddyBefore(t, slow, "127.0.0.1", `,"price":0,"network_budget":100000,"network_burst":100000,"price_step":64,"max_price":4096,`+
		`"price_tick":"100ms","calm_ticks":2,"price_tolerance":"-1s","ipv4_prefix":32,"max_in_flight":2,"max_rejections":-1,"refusal_rate":-1`)
	px := startProxy(t, Config{Server: e.addr, Resource: testResource, Work: 64, StartFree: true, MaxWork: 1 << 20}, "")
	w := dialWallet(t, px.addr)
	w.send(versionReq)
	readAnswers(t, w, 1)

	accepted, refused := requestsDuringFlood(t, w, 40, 50*time.Millisecond, pipelineFlood(e.addr, "127.0.0.2", 4))
	st := px.Stats()
	t.Logf("flood: %d accepted, %d refused; proxy: %+v", accepted, refused, st)
	if refused == 0 {
		t.Fatalf("no flood request was refused: the global level never rose")
	}
	if st.Mints == 0 || st.GaveUp != 0 {
		t.Fatalf("proxy stats %+v: want stamps minted for the global level and nothing given up", st)
	}
}

// requestsDuringFlood sends n requests through w, one every gap, each
// answered without an error (readAnswers fails the test on one), then stops
// the flood and returns how many of its requests were accepted and refused.
func requestsDuringFlood(t *testing.T, w *wallet, n int, gap time.Duration, stopFlood func() (accepted, refused int)) (accepted, refused int) {
	t.Helper()
	for id := 1; id <= n; id++ {
		time.Sleep(gap)
		w.send(req("blockchain.scripthash.get_history", id, fmt.Sprintf(`["%064x"]`, id)))
		readAnswers(t, w, 1)
	}
	return stopFlood()
}

// pipelineFlood starts conns connections from src to addr, each sending
// unstamped server.banner requests 20 at a time, the next 20 once the
// last is answered, until the returned function is called; that function
// waits for them and returns how many requests were accepted and refused.
func pipelineFlood(addr, src string, conns int) (stop func() (accepted, refused int)) {
	quit := make(chan struct{})
	type count struct{ accepted, refused int }
	counts := make(chan count, conns)
	for range conns {
		go func() {
			var n count
			defer func() { counts <- n }()
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			var burst []byte
			burst = append(burst, `{"jsonrpc":"2.0","method":"server.version","id":0}`+"\n"...)
			for id := 1; ; {
				for range 20 {
					burst = fmt.Appendf(burst, `{"jsonrpc":"2.0","method":"server.banner","id":%d}`+"\n", id)
					id++
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(burst); err != nil {
					return
				}
				for range bytes.Count(burst, []byte{'\n'}) {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.Contains(line, `"error"`) {
						n.refused++
					} else {
						n.accepted++
					}
				}
				burst = burst[:0]
				select {
				case <-quit:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
	}
	return func() (accepted, refused int) {
		close(quit)
		for range conns {
			n := <-counts
			accepted += n.accepted
			refused += n.refused
		}
		return accepted, refused
	}
}

// flood starts a client on this host's address that sends unstamped
// requests to addr as fast as they are answered, until the returned
// function is called; that function waits for it to stop and returns how
// many requests were answered.
func flood(addr string) (stop func() int) {
	quit := make(chan struct{})
	flooded := make(chan int)
	go func() {
		n := 0
		defer func() { flooded <- n }()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			select {
			case <-quit:
				return
			default:
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			method := "server.banner"
			if n == 0 {
				method = "server.version" // what the upstream wants first
			}
			if _, err := fmt.Fprintf(c, `{"jsonrpc":"2.0","method":"%s","id":%d}`+"\n", method, n); err != nil {
				return
			}
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			n++
		}
	}()
	return func() int {
		close(quit)
		return <-flooded
	}
}
