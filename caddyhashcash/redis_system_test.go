//go:build systemtest

package caddyhashcash_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/common/expfmt"

	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// redisOptions returns the handler's options for a cheap price with the
// stamps in the Redis at address, with further store options (JSON
// members) and no pacing or closing, so that busy answers are all a test
// sees while Redis is away.
func redisOptions(address, store string) string {
	if store != "" {
		store = "," + store
	}
	return `"price":16,"max_rejections":-1,"refusal_rate":-1,"store":{"module":"redis","address":"` + address + `"` + store + `}`
}

// headersLine returns a stamped request with the given id, minted now.
func headersLine(t testing.TB, id int) string {
	return mintLine(t, fmt.Sprintf(`{"jsonrpc":"2.0","method":"blockchain.headers.subscribe","params":[],"id":%d}`+"\n", id), resource, 16, time.Now())
}

// strippedLine returns what the upstream receives for headersLine(id).
func strippedLine(id int) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","method":"blockchain.headers.subscribe","params":[],"id":%d}`+"\n", id)
}

// TestRedisStoreRecordsStampsInRedis: an accepted stamp's key is in Redis,
// with the stamp's expiry, and the same stamp on another connection is
// refused as replayed; over TCP and over the Unix socket alike.
func TestRedisStoreRecordsStampsInRedis(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	for _, address := range []string{r.Addr, r.Socket} {
		t.Run(filepath.Base(address), func(t *testing.T) {
			r.MustDo(t, "FLUSHALL")
			addr, up := setup(t, redisOptions(address, `"key_prefix":"test:"`))
			line := headersLine(t, 1)
			a := dial(t, addr)
			a.send(line)
			if resp := parseResponse(t, a.readLine()); resp.Error != nil {
				t.Fatalf("refused: %+v", resp.Error)
			}
			keys := r.MustDo(t, "KEYS", "test:*").([]any)
			if len(keys) != 1 {
				t.Fatalf("Redis holds %d keys under the prefix, want the one stamp's: %v", len(keys), keys)
			}
			ttl := r.MustDo(t, "PTTL", keys[0].(string)).(int64)
			if window := (5 * time.Minute).Milliseconds(); ttl <= window-5000 || ttl > window+1000 {
				t.Errorf("the stamp's key expires in %d ms, want about the window, %d ms", ttl, window)
			}
			b := dial(t, addr)
			b.send(line)
			b.expectError("1", stamp.ReasonReplayed)
			waitReceived(t, up, []byte(strippedLine(1)))
		})
	}
}

// TestRedisStoreSurvivesCaddyRestart: a stamp accepted before caddy stops
// is refused after it starts again, since the store was Redis, not the
// process.
func TestRedisStoreSurvivesCaddyRestart(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	config := caddytest.Layer4Config(addr, []string{hashcashHandler(redisOptions(r.Addr, "")), caddytest.ProxyHandler(up.Addr)}, "")
	line := headersLine(t, 7)

	start := func() {
		if err := caddy.Load([]byte(config), true); err != nil {
			t.Fatal(err)
		}
		testsupport.WaitBound(t, addr)
	}
	start()
	c := dial(t, addr)
	c.send(line)
	if resp := parseResponse(t, c.readLine()); resp.Error != nil {
		t.Fatalf("refused: %+v", resp.Error)
	}
	c.Close()
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	start()
	defer caddy.Stop()
	c = dial(t, addr)
	c.send(line)
	c.expectError("7", stamp.ReasonReplayed)
	waitReceived(t, up, []byte(strippedLine(7)))
}

// TestRedisOutageFailsClosed: Redis killed with SIGKILL during a load of
// valid requests on several connections. Every request sent after Redis
// died and answered before it was back gets busy, and nothing the upstream
// receives went unanswered by Redis; when Redis is back (empty, as after a
// crash without persistence), requests are accepted again without caddy
// being restarted or reloaded. The outage is logged once when it starts
// and once when it ends, and counted in the metrics.
func TestRedisOutageFailsClosed(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	config := strings.Replace(
		caddytest.Layer4Config(addr, []string{hashcashHandler(redisOptions(r.Addr, `"timeout":"200ms"`)), caddytest.ProxyHandler(up.Addr)}, ""),
		`"logging":{"logs":{"default":{"level":"ERROR"}}}`,
		`"logging":{"logs":{"default":{"level":"INFO","writer":{"output":"file","filename":"`+logPath+`"}}}}`, 1)
	caddytest.Start(t, config, addr)

	type outcome struct {
		id       int
		sent     time.Time
		accepted bool
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	count := func(since time.Time, accepted bool) (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range outcomes {
			if o.sent.After(since) && o.accepted == accepted {
				n++
			}
		}
		return n
	}
	const conns = 4
	for i := range conns {
		c := dial(t, addr)
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := i*1_000_000 + n
				sent := time.Now()
				c.send(headersLine(t, id))
				resp := parseResponse(t, c.readLine())
				if resp.Error != nil && resp.Error.Data.Reason != stamp.ReasonBusy {
					t.Errorf("request %d: refused as %s, want accepted or busy", id, resp.Error.Data.Reason)
				}
				mu.Lock()
				outcomes = append(outcomes, outcome{id, sent, resp.Error == nil})
				mu.Unlock()
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	began := time.Now()
	testsupport.WaitFor(t, "requests to be accepted", func() bool { return count(began, true) >= 20 })
	r.Kill(t)
	killed := time.Now()
	testsupport.WaitFor(t, "requests to get busy while Redis is away", func() bool { return count(killed, false) >= 50 })
	restarting := time.Now()
	if n := count(killed, true); n != 0 {
		t.Errorf("%d requests sent after Redis died were accepted", n)
	}
	if v := gatheredMetric(t, "caddy_layer4_hashcash_redis_up"); v != 0 {
		t.Errorf("redis_up is %v during the outage, want 0", v)
	}
	r.Restart(t)
	testsupport.WaitFor(t, "requests to be accepted again", func() bool { return count(restarting, true) >= 20 })
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close

	// The upstream got exactly the accepted requests, in each connection's
	// order, and nothing else.
	mu.Lock()
	want := make(map[string]bool)
	for _, o := range outcomes {
		if o.accepted {
			want[strippedLine(o.id)] = true
		}
	}
	mu.Unlock()
	err := testsupport.Poll(t.Context(), "the upstream to receive every accepted request", testsupport.WaitTimeout, 5*time.Millisecond, func() (bool, error) {
		return bytes.Count(up.Received(), []byte("\n")) >= len(want), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := bytes.SplitAfter(up.Received(), []byte("\n"))
	got = got[:len(got)-1]
	if len(got) != len(want) {
		t.Errorf("the upstream received %d requests, %d were accepted", len(got), len(want))
	}
	for _, line := range got {
		if !want[string(line)] {
			t.Errorf("the upstream received a request that was not accepted: %q", line)
		}
	}

	if v := gatheredMetric(t, "caddy_layer4_hashcash_redis_outages_total"); v != 1 {
		t.Errorf("redis_outages_total is %v, want 1", v)
	}
	if v := gatheredMetric(t, "caddy_layer4_hashcash_redis_up"); v != 1 {
		t.Errorf("redis_up is %v after the outage, want 1", v)
	}
	logged, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	down := bytes.Count(logged, []byte("replay store unavailable"))
	back := bytes.Count(logged, []byte("replay store available again"))
	if down != 1 || back != 1 {
		t.Errorf("logged the outage's start %d times and its end %d times, want once each:\n%s", down, back, logged)
	}
}

// gatheredMetric returns the value of the one sample of a counter or gauge
// in the running config's metrics registry.
func gatheredMetric(t testing.TB, name string) float64 {
	t.Helper()
	ctx := caddy.ActiveContext()
	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		if len(f.GetMetric()) != 1 {
			var b strings.Builder
			expfmt.MetricFamilyToText(&b, f)
			t.Fatalf("metric %s has %d samples, want 1:\n%s", name, len(f.GetMetric()), b.String())
		}
		m := f.GetMetric()[0]
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestRedisStoreCredentials: the password can come from an environment
// placeholder; a wrong one fails the config load with an error that names
// the option and does not show the password.
func TestRedisStoreCredentials(t *testing.T) {
	const password = "correct horse battery"
	r := testsupport.StartRedis(t, testsupport.RedisOptions{Password: password})
	t.Setenv("HASHCASH_TEST_REDIS_PASSWORD", password)
	addr, up := setup(t, redisOptions(r.Addr, `"password":"{env.HASHCASH_TEST_REDIS_PASSWORD}"`))
	c := dial(t, addr)
	c.send(headersLine(t, 3))
	if resp := parseResponse(t, c.readLine()); resp.Error != nil {
		t.Fatalf("refused: %+v", resp.Error)
	}
	waitReceived(t, up, []byte(strippedLine(3)))
	if n := r.MustDo(t, "DBSIZE").(int64); n != 1 {
		t.Errorf("Redis holds %d keys, want the stamp's", n)
	}
	caddy.Stop()

	for _, tc := range []struct{ store, want string }{
		{`"password":"battery staple"`, "WRONGPASS"},
		{`"password":"{env.HASHCASH_TEST_NO_SUCH_VARIABLE}"`, "NOAUTH"},
	} {
		other := testsupport.FreeAddr(t, "127.0.0.1")
		err := caddy.Load([]byte(caddytest.Layer4Config(other, []string{hashcashHandler(redisOptions(r.Addr, tc.store)), caddytest.ProxyHandler(up.Addr)}, "")), true)
		if err == nil {
			caddy.Stop()
			t.Fatalf("%s: loaded", tc.store)
		}
		if msg := err.Error(); !strings.Contains(msg, "store redis: option password") || !strings.Contains(msg, tc.want) ||
			strings.Contains(msg, "battery") {
			t.Errorf("%s: %v; want an error naming option password, saying %s, without the password", tc.store, err, tc.want)
		}
	}
}

// TestRedisStoreRefusesEvictingRedis: a Redis that may evict keys would
// forget live stamps, so the config does not load, and the error names the
// setting to change.
func TestRedisStoreRefusesEvictingRedis(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{Args: []string{"--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru"}})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	err := caddy.Load([]byte(caddytest.Layer4Config(addr, []string{hashcashHandler(redisOptions(r.Addr, "")), caddytest.ProxyHandler("127.0.0.1:1")}, "")), true)
	if err == nil {
		caddy.Stop()
		t.Fatal("loaded with maxmemory-policy volatile-lru")
	}
	if msg := err.Error(); !strings.Contains(msg, "maxmemory-policy volatile-lru") || !strings.Contains(msg, "noeviction") {
		t.Errorf("error %q does not name maxmemory-policy, its value and the one needed", err)
	}
}

// TestRedisStoreFullAnswersBusy: a Redis out of memory under noeviction
// refuses new stamps; the requests get busy and nothing is forwarded.
func TestRedisStoreFullAnswersBusy(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{Args: []string{"--maxmemory", "1mb", "--maxmemory-policy", "noeviction"}})
	// Fill Redis with other data until it refuses even small writes: big
	// values first, then smaller ones, since a write is refused only while
	// Redis uses more than maxmemory, its request included.
	size, writes := 64<<10, 0
	for size >= 16 {
		reply, err := r.Do(t.Context(), "SET", fmt.Sprintf("filler:%d", writes), strings.Repeat("x", size))
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := reply.(testsupport.RedisError); ok {
			if !strings.Contains(string(e), "OOM") {
				t.Fatal(e)
			}
			size /= 4
		}
		if writes++; writes > 10_000 {
			t.Fatal("Redis never filled up")
		}
	}
	addr, up := setup(t, redisOptions(r.Addr, ""))
	c := dial(t, addr)
	c.send(headersLine(t, 9))
	resp := c.expectError("9", stamp.ReasonBusy)
	if !strings.Contains(resp.Error.Data.Detail, "full") {
		t.Errorf("busy detail %q does not say the store is full", resp.Error.Data.Detail)
	}
	if n := len(up.Received()); n != 0 {
		t.Errorf("the upstream received %d bytes", n)
	}
}

// TestRedisConnectionIsKeptAcrossReloads: a reload with the same store
// options keeps the connections to Redis (no reconnect, no lost claims in
// between); when caddy stops, they are closed.
func TestRedisConnectionIsKeptAcrossReloads(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	clients := func() string {
		var ids []string
		for _, line := range strings.Split(r.MustDo(t, "CLIENT", "LIST").(string), "\n") {
			if strings.Contains(line, "name=electrum-hashcash") {
				ids = append(ids, strings.Fields(line)[0]) // id=N
			}
		}
		return strings.Join(ids, " ")
	}
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	load := func(window string) {
		t.Helper()
		cfg := caddytest.Layer4Config(addr, []string{hashcashHandler(redisOptions(r.Addr, "") + `,"window":"` + window + `"`), caddytest.ProxyHandler("127.0.0.1:1")}, "")
		if err := caddy.Load([]byte(cfg), true); err != nil {
			t.Fatal(err)
		}
	}
	load("5m")
	before := clients()
	if before == "" {
		t.Fatal("no connection to Redis named electrum-hashcash")
	}
	load("4m")
	if after := clients(); after != before {
		t.Errorf("the reload reconnected: clients %q, then %q", before, after)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "the connections to Redis to close", func() bool { return clients() == "" })
}

// TestRedisStorePipelinedLines: lines a client pipelines in one write are
// claimed together (in one Redis round trip) and each still gets its own
// verdict, in order: a stamp sent twice in the batch is refused the second
// time as replayed, a line without a stamp as missing, a stamp already
// spent on another connection as replayed; the upstream receives exactly
// the accepted lines, in the client's order.
func TestRedisStorePipelinedLines(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	addr, up := setup(t, redisOptions(r.Addr, ""))
	spent := headersLine(t, 1000)
	first := dial(t, addr)
	first.send(spent)
	if resp := parseResponse(t, first.readLine()); resp.Error != nil {
		t.Fatalf("refused: %+v", resp.Error)
	}
	waitReceived(t, up, []byte(strippedLine(1000)))

	var batch strings.Builder
	want := []byte(strippedLine(1000))
	refused := map[string]stamp.Reason{}
	lines := map[int]string{}
	for i := 1; i <= 40; i++ {
		lines[i] = headersLine(t, i)
		batch.WriteString(lines[i])
		want = append(want, strippedLine(i)...)
		if i == 20 {
			batch.WriteString(lines[5]) // again: replayed
			refused["5"] = stamp.ReasonReplayed
			batch.WriteString(`{"jsonrpc":"2.0","method":"blockchain.headers.subscribe","params":[],"id":2000}` + "\n")
			refused["2000"] = stamp.ReasonMissing
			batch.WriteString(spent) // spent on the first connection
			refused["1000"] = stamp.ReasonReplayed
		}
	}
	c := dial(t, addr)
	c.send(batch.String())
	for range 40 + len(refused) {
		resp := parseResponse(t, c.readLine())
		if resp.Error == nil {
			continue
		}
		id := string(resp.ID)
		if reason, ok := refused[id]; !ok || resp.Error.Data.Reason != reason {
			t.Fatalf("request %s refused as %s; want %v", id, resp.Error.Data.Reason, refused[id])
		}
		delete(refused, id)
	}
	if len(refused) != 0 {
		t.Fatalf("not refused: %v", refused)
	}
	waitReceived(t, up, want)
}
