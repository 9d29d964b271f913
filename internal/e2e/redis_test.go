//go:build systemtest

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/e2e/harness"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

const sharedResource = "electrum.test:50002"

// TestTwoCaddyInstancesShareOneRedis runs two caddy processes built with
// xcaddy (one configured from a Caddyfile, one from JSON) in front of one
// Electrum server, with their stamps in one password-protected Redis whose
// password each reads from an environment placeholder. Each stamp is
// accepted once across both: copies sent concurrently over connections
// spread over both instances forward exactly one; a stamp accepted by one
// instance is refused as replayed by the other; and one accepted before an
// instance restarts is refused by it after the restart.
func TestTwoCaddyInstancesShareOneRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const password = "e2e shared secret"
	r := testsupport.StartRedis(t, testsupport.RedisOptions{Password: password})
	t.Setenv("HASHCASH_E2E_REDIS_PASSWORD", password)
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})

	config := func(listen string) harness.CaddyConfig {
		return harness.CaddyConfig{
			Listen: listen, Upstream: up.Addr, Resource: sharedResource, Price: "16",
			Store: map[string]any{"module": "redis", "address": r.Addr, "password": "{env.HASHCASH_E2E_REDIS_PASSWORD}"},
		}
	}
	start := func(dir string, c harness.CaddyConfig, useJSON bool) *harness.Caddy {
		t.Helper()
		p, err := harness.StartCaddy(ctx, caddyBin, dir, c, useJSON)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop(10 * time.Second) })
		return p
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	cfgA, cfgB := config(testsupport.FreeAddr(t, "127.0.0.1")), config(testsupport.FreeAddr(t, "127.0.0.1"))
	a := start(dirA, cfgA, false)
	b := start(dirB, cfgB, true)

	// Concurrent copies of one stamp over eight connections, four to each
	// instance: one is accepted, seven are refused as replayed.
	forwarded := 0
	for round := range 10 {
		line := stampedHeaders(t, 100+round)
		type verdict struct {
			accepted bool
			reason   stamp.Reason
		}
		verdicts := make(chan verdict, 8)
		var ready, wg sync.WaitGroup
		ready.Add(8)
		for i := range 8 {
			addr := a.Addr
			if i%2 == 1 {
				addr = b.Addr
			}
			c := dialShared(t, addr)
			wg.Go(func() {
				defer c.Close()
				ready.Done()
				ready.Wait()
				resp := c.call(t, line)
				verdicts <- verdict{resp.Error == nil, reasonOf(resp)}
			})
		}
		wg.Wait()
		close(verdicts)
		accepted := 0
		for v := range verdicts {
			switch {
			case v.accepted:
				accepted++
			case v.reason != stamp.ReasonReplayed:
				t.Errorf("round %d: a copy was refused as %q, want replayed", round, v.reason)
			}
		}
		if accepted != 1 {
			t.Fatalf("round %d: %d of 8 concurrent copies over two instances were accepted, want 1", round, accepted)
		}
		forwarded++
	}
	waitForwarded(t, up, forwarded)

	// A stamp accepted by A is replayed at B, and the other way round.
	for i, pair := range [][2]*harness.Caddy{{a, b}, {b, a}} {
		line := stampedHeaders(t, 200+i)
		if resp := dialShared(t, pair[0].Addr).call(t, line); resp.Error != nil {
			t.Fatalf("first use refused: %s", resp.Error.Message)
		}
		forwarded++
		if resp := dialShared(t, pair[1].Addr).call(t, line); reasonOf(resp) != stamp.ReasonReplayed {
			t.Fatalf("the other instance answered %+v to a stamp the first accepted, want replayed", resp)
		}
	}

	// Restarting A does not forget what it accepted.
	line := stampedHeaders(t, 300)
	if resp := dialShared(t, a.Addr).call(t, line); resp.Error != nil {
		t.Fatalf("refused before the restart: %s", resp.Error.Message)
	}
	forwarded++
	a.Stop(10 * time.Second)
	a = start(dirA, cfgA, false)
	if resp := dialShared(t, a.Addr).call(t, line); reasonOf(resp) != stamp.ReasonReplayed {
		t.Fatalf("after a restart, the instance answered %+v to a stamp it had accepted, want replayed", resp)
	}
	waitForwarded(t, up, forwarded)
}

// stampedHeaders returns a headers.subscribe request with the given id and
// a stamp for sharedResource at the price the test's instances ask.
func stampedHeaders(t testing.TB, id int) string {
	t.Helper()
	line, err := stamp.AppendStamped(context.Background(), nil,
		fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"blockchain.headers.subscribe","params":[],"id":%d}`+"\n", id),
		stamp.Stamp{Work: 16, Time: time.Now().Unix(), Resource: sharedResource}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return string(line)
}

// waitForwarded waits until the upstream has received n request lines,
// then checks that it receives no more.
func waitForwarded(t testing.TB, up *testsupport.Upstream, n int) {
	t.Helper()
	lines := func() int { return bytes.Count(up.Received(), []byte("\n")) }
	testsupport.WaitFor(t, fmt.Sprintf("the upstream to receive %d requests", n), func() bool { return lines() >= n })
	if got := lines(); got != n {
		t.Fatalf("the upstream received %d requests, want %d: each stamp forwarded once", got, n)
	}
}

// sharedConn is a client connection to one of the instances.
type sharedConn struct {
	net.Conn
	r *bufio.Reader
}

func dialShared(t testing.TB, addr string) *sharedConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &sharedConn{Conn: c, r: bufio.NewReader(c)}
}

// response is a JSON-RPC answer as the client reads it.
type response struct {
	Error *struct {
		Message string          `json:"message"`
		Data    stamp.Rejection `json:"data"`
	} `json:"error"`
	Result json.RawMessage `json:"result"`
}

// call sends line and returns the answer. It may run on any goroutine:
// it reports failures with Errorf and returns an error response.
func (c *sharedConn) call(t testing.TB, line string) response {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var resp response
	if _, err := c.Write([]byte(line)); err != nil {
		t.Errorf("send: %v", err)
		return resp
	}
	answer, err := c.r.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(answer, &resp)
	}
	if err != nil {
		t.Errorf("reading the answer: %v (%q)", err, answer)
	}
	return resp
}

// reasonOf returns why a response refused its request, or "" for a result.
func reasonOf(r response) stamp.Reason {
	if r.Error == nil {
		return ""
	}
	return r.Error.Data.Reason
}

// TestTwoCaddyInstancesPriceANetworkByItsTotal: with moving prices, free
// while calm, and a network budget of 20 cost units a second, a network
// that sends 6 requests a second to each of two instances sharing one
// Redis (12 in all) stays free, and one that sends 14 a second to each
// (within the budget at either, 28 in all) is priced at both: unstamped
// requests are refused as missing a stamp.
func TestTwoCaddyInstancesPriceANetworkByItsTotal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	var instances [2]*harness.Caddy
	for i := range instances {
		c := harness.CaddyConfig{
			Listen: testsupport.FreeAddr(t, "127.0.0.1"), Upstream: up.Addr, Resource: sharedResource,
			Price: "0", NetworkBudget: 20,
			Options: map[string]any{"network_burst": 20, "price_tick": "200ms", "refusal_rate": -1, "max_rejections": -1},
			Store:   map[string]any{"module": "redis", "address": r.Addr},
		}
		p, err := harness.StartCaddy(ctx, caddyBin, t.TempDir(), c, i == 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop(10 * time.Second) })
		instances[i] = p
	}
	conns := [2]*sharedConn{dialShared(t, instances[0].Addr), dialShared(t, instances[1].Addr)}
	// flood sends perSecond unstamped cost-1.0 requests a second to each
	// instance for at most d, and returns how many each refused, stopping
	// once both have refused some if stopWhenPriced.
	id := 0
	flood := func(perSecond int, d time.Duration, stopWhenPriced bool) (refused [2]int) {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
			for i, c := range conns {
				id++
				resp := c.call(t, fmt.Sprintf(`{"jsonrpc":"2.0","method":"test.flood","params":[],"id":%d}`+"\n", id))
				switch reasonOf(resp) {
				case "":
				case stamp.ReasonMissing:
					refused[i]++
				default:
					t.Fatalf("instance %d refused request %d as %q", i, id, reasonOf(resp))
				}
			}
			if stopWhenPriced && refused[0] > 0 && refused[1] > 0 {
				return refused
			}
		}
		return refused
	}
	if refused := flood(6, 3*time.Second, false); refused != [2]int{} {
		t.Fatalf("12 requests a second in all, within the budget of 20: refused %v", refused)
	}
	if refused := flood(14, 10*time.Second, true); refused[0] == 0 || refused[1] == 0 {
		t.Fatalf("14 requests a second at each instance, 28 in all over the budget of 20: refused %v, want some at both", refused)
	}
}
