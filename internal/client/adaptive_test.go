package client

import (
	"bufio"
	"fmt"
	"net"
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
