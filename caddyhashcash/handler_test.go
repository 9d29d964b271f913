package caddyhashcash_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mholt/caddy-l4/modules/l4proxy"
	_ "github.com/mholt/caddy-l4/modules/l4regexp"
	_ "github.com/mholt/caddy-l4/modules/l4tls"

	"github.com/electrum-hashcash/electrum-hashcash/caddyhashcash"
	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

const resource = "electrum.test:50002"

// mintLine returns line with a stamp for resource inserted into every
// request object, each minted for the given work and time.
func mintLine(t testing.TB, line, res string, work uint64, when time.Time) string {
	t.Helper()
	stamped, err := stamp.AppendStamped(context.Background(), nil, []byte(line), stamp.Stamp{Work: work, Time: when.Unix(), Resource: res}, 2)
	if err != nil {
		t.Fatalf("mintLine: %v", err)
	}
	return string(stamped)
}

// mintMoved returns the stamp minted by mintLine for line, moved by move onto
// other bytes (move gets the stamped line and returns the line to send). A
// stamp proves its work for another body by chance, with probability
// 1/work, so it is minted again until the moved stamp's digest misses.
func mintMoved(t testing.TB, line, res string, work uint64, when time.Time, move func(string) string) string {
	t.Helper()
	for range 100 {
		moved := move(mintLine(t, line, res, work, when))
		var l rpcline.Line
		if err := rpcline.Scan([]byte(moved), stamp.Member, &l); err != nil || l.Kind != rpcline.KindObject {
			t.Fatalf("mintMoved: %q is not one request object: %v", moved, err)
		}
		text, _ := rpcline.RawStringValue(l.Objects[0].Stamp)
		st, err := stamp.Parse(text)
		if err != nil {
			t.Fatalf("mintMoved: %v", err)
		}
		bodyHash := stamp.BodyHash(rpcline.AppendObjectStripped(nil, []byte(moved), &l.Objects[0]))
		if d := st.Digest(&bodyHash, nil); !stamp.Meets(&d, st.Work) {
			return moved
		}
	}
	t.Fatalf("mintMoved: every moved stamp still proved work %d", work)
	return ""
}

// hashcashHandler returns the handler's JSON with the test resource and
// extra options (JSON members without braces).
func hashcashHandler(options string) string {
	h := `{"handler":"hashcash","resource":"` + resource + `"`
	if options != "" {
		h += "," + options
	}
	return h + "}"
}

// setup starts caddy with hashcash (with options) and proxy in front of a
// fresh upstream and returns caddy's address and the upstream.
func setup(t *testing.T, options string) (string, *testsupport.Upstream) {
	t.Helper()
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	caddytest.Start(t, caddytest.Layer4Config(addr, []string{hashcashHandler(options), caddytest.ProxyHandler(up.Addr)}, ""), addr)
	return addr, up
}

// client is a scripted wallet connection.
type client struct {
	t testing.TB
	net.Conn
	r *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, Conn: c, r: bufio.NewReaderSize(c, 1<<20)}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(s)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// readLine reads one line, failing the test after 10 seconds.
func (c *client) readLine() string {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading a line: %v (got %q)", err, line)
	}
	return line
}

// rpcError is a JSON-RPC response as the client reads it.
type rpcError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    stamp.Rejection `json:"data"`
	} `json:"error"`
	Result json.RawMessage `json:"result"`
}

func parseResponse(t testing.TB, line string) rpcError {
	t.Helper()
	var r rpcError
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("response is not JSON: %v: %q", err, line)
	}
	return r
}

// expectError reads one line and checks it is an error with the reason.
func (c *client) expectError(id string, reason stamp.Reason) rpcError {
	c.t.Helper()
	line := c.readLine()
	r := parseResponse(c.t, line)
	if r.Error == nil {
		c.t.Fatalf("want error %s, got %s", reason, line)
	}
	if r.Error.Data.Reason != reason || r.Error.Code != reason.Code() || string(r.ID) != id {
		c.t.Fatalf("want id %s reason %s code %d, got %s", id, reason, reason.Code(), line)
	}
	if r.Error.Data.Resource != resource || r.Error.Data.Version != stamp.Version {
		c.t.Fatalf("error data lacks resource or version: %s", line)
	}
	if d := time.Since(time.Unix(r.Error.Data.Time, 0)); d < -2*time.Second || d > 2*time.Second {
		c.t.Fatalf("error data time is %s off the clock", d)
	}
	return r
}

// waitReceived waits until the upstream has received exactly want.
func waitReceived(t testing.TB, up *testsupport.Upstream, want []byte) {
	t.Helper()
	err := testsupport.Poll(context.Background(), "the upstream to receive what was forwarded", testsupport.WaitTimeout, 5*time.Millisecond, func() (bool, error) {
		return bytes.Equal(up.Received(), want), nil
	})
	if err != nil {
		got := up.Received()
		t.Fatalf("%v: received %d bytes, want %d\n got: %.300q\nwant: %.300q", err, len(got), len(want), got, want)
	}
}

func TestForwardsExactBytes(t *testing.T) {
	addr, up := setup(t, `"price":64`)
	big := `{"jsonrpc":"2.0","method":"blockchain.transaction.broadcast","id":4,"params":["` + strings.Repeat("ab", 450_000) + `"]}`
	lines := []string{
		`{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}`,
		`{"jsonrpc":"2.0","method":"server.banner","id":1}`,
		`{ "jsonrpc" : "2.0" , "method":"blockchain.scripthash.subscribe",  "id" : 2, "params":[ "caf\u00e9", "ünïcödé ✓", {"pow":"not a stamp"} ] }`,
		`{"id":3,"method":"server.ping","params":[],"note":"\"pow\":\"x\""}`,
		big,
	}
	c := dial(t, addr)
	var want []byte
	for i, l := range lines {
		c.send(mintLine(t, l, resource, 64, time.Now()) + "\n")
		want = append(want, l+"\n"...)
		if r := parseResponse(t, c.readLine()); r.Error != nil || string(r.ID) != fmt.Sprint(i) {
			t.Fatalf("line %d: unexpected response %+v", i, r)
		}
	}
	if len(big) < 900_000 {
		t.Fatalf("big line is only %d bytes", len(big))
	}
	waitReceived(t, up, want)
}

func TestCoalescedAndSplitWrites(t *testing.T) {
	addr, up := setup(t, `"price":16`)
	var wire, want strings.Builder
	for i := range 20 {
		l := fmt.Sprintf(`{"jsonrpc":"2.0","method":"blockchain.block.header","id":%d,"params":[%d]}`, i, i)
		wire.WriteString(mintLine(t, l, resource, 16, time.Now()) + "\n")
		want.WriteString(l + "\n")
	}
	// All twenty lines in one write.
	c := dial(t, addr)
	c.send(wire.String())
	for i := range 20 {
		if r := parseResponse(t, c.readLine()); string(r.ID) != fmt.Sprint(i) || r.Error != nil {
			t.Fatalf("coalesced: response %d: %+v", i, r)
		}
	}
	waitReceived(t, up, []byte(want.String()))

	// The same requests re-minted, written one byte at a time.
	var wire2 strings.Builder
	for i := range 3 {
		l := fmt.Sprintf(`{"jsonrpc":"2.0","method":"server.ping","id":%d}`, 100+i)
		wire2.WriteString(mintLine(t, l, resource, 16, time.Now()) + "\n")
		want.WriteString(l + "\n")
	}
	c2 := dial(t, addr)
	for _, b := range []byte(wire2.String()) {
		c2.send(string([]byte{b}))
	}
	for i := range 3 {
		if r := parseResponse(t, c2.readLine()); string(r.ID) != fmt.Sprint(100+i) || r.Error != nil {
			t.Fatalf("split: response %d: %+v", i, r)
		}
	}
	waitReceived(t, up, []byte(want.String()))
}

func TestPipelinedThousand(t *testing.T) {
	addr, up := setup(t, `"price":8`)
	var wire, want bytes.Buffer
	for i := range 1000 {
		l := fmt.Sprintf(`{"jsonrpc":"2.0","method":"blockchain.scripthash.subscribe","id":%d,"params":["%064x"]}`, i, i)
		wire.WriteString(mintLine(t, l, resource, 8, time.Now()) + "\n")
		want.WriteString(l + "\n")
	}
	c := dial(t, addr)
	go c.Write(wire.Bytes())
	for i := range 1000 {
		if r := parseResponse(t, c.readLine()); string(r.ID) != fmt.Sprint(i) || r.Error != nil {
			t.Fatalf("response %d: %+v", i, r)
		}
	}
	waitReceived(t, up, want.Bytes())
}

func TestRefusals(t *testing.T) {
	addr, up := setup(t, `"price":4096,"method_prices":{"server.ping":0,"server.add_peer":"1M"},"max_line_bytes":4096,"max_rejections":-1`)
	c := dial(t, addr)
	now := time.Now()
	ping := `{"jsonrpc":"2.0","method":"blockchain.transaction.get","id":1,"params":[5]}`
	valid := mintLine(t, ping, resource, 4096, now)

	c.send(ping + "\n")
	r := c.expectError("1", stamp.ReasonMissing)
	if r.Error.Data.Price != 4096 || r.Error.Data.Method != "blockchain.transaction.get" {
		t.Fatalf("missing: price %d method %q", r.Error.Data.Price, r.Error.Data.Method)
	}
	c.send(strings.Replace(valid, `"pow":"1:`, `"pow":"9:`, 1) + "\n")
	c.expectError("1", stamp.ReasonMalformed)
	c.send(strings.TrimSuffix(valid, "}") + `,"pow":"x"}` + "\n")
	c.expectError("1", stamp.ReasonMalformed)
	c.send(strings.TrimSuffix(ping, "}") + `,"pow":17}` + "\n")
	c.expectError("1", stamp.ReasonMalformed)
	c.send(mintLine(t, ping, resource, 16, now) + "\n") // claims less than the price
	r = c.expectError("1", stamp.ReasonInsufficient)
	if r.Error.Data.Price != 4096 {
		t.Fatalf("insufficient: price %d", r.Error.Data.Price)
	}
	// A stamp for other bytes: the request was changed after minting.
	c.send(mintMoved(t, ping, resource, 4096, now, func(s string) string {
		return strings.Replace(s, `"params":[5]`, `"params":[6]`, 1)
	}) + "\n")
	c.expectError("1", stamp.ReasonInsufficient)
	c.send(mintLine(t, ping, resource, 4096, now.Add(-6*time.Minute)) + "\n")
	c.expectError("1", stamp.ReasonExpired)
	c.send(mintLine(t, ping, resource, 4096, now.Add(2*time.Minute)) + "\n")
	c.expectError("1", stamp.ReasonFuture)
	c.send(mintLine(t, ping, "other.test:50002", 4096, now) + "\n")
	c.expectError("1", stamp.ReasonWrongResource)
	c.send(mintLine(t, `{"jsonrpc":"2.0","method":"server.add_peer","id":"a","params":[{}]}`, resource, 4096, now) + "\n")
	r = c.expectError(`"a"`, stamp.ReasonInsufficient)
	if r.Error.Data.Price != 1_000_000 {
		t.Fatalf("method price: %d", r.Error.Data.Price)
	}
	c.send(`{"jsonrpc":"2.0","method":"x","id":2` + "\n")
	c.expectError("null", stamp.ReasonParse)
	c.send("\n")
	c.expectError("null", stamp.ReasonParse)
	c.send(`[1,2]` + "\n")
	if line := c.readLine(); !strings.HasPrefix(line, "[") || strings.Count(line, `"invalid_request"`) != 2 {
		t.Fatalf("batch of non-objects: %s", line)
	}
	c.send(`"hello"` + "\n")
	c.expectError("null", stamp.ReasonInvalidRequest)
	c.send(`{"method":"server.ping","method":"blockchain.transaction.get","id":3}` + "\n")
	c.expectError("3", stamp.ReasonInvalidRequest)
	c.send(`{"jsonrpc":"2.0","method":"x","id":4,"params":["` + strings.Repeat("a", 5000) + `"]}` + "\n")
	c.expectError("null", stamp.ReasonTooLarge)
	if got := up.Received(); len(got) != 0 {
		t.Fatalf("refused requests reached the upstream: %q", got)
	}

	// The valid request passes once; its replay is refused.
	c.send(valid + "\n")
	if r := parseResponse(t, c.readLine()); r.Error != nil {
		t.Fatalf("valid request refused: %+v", r.Error)
	}
	c.send(valid + "\n")
	c.expectError("1", stamp.ReasonReplayed)
	// A free method needs no stamp, and a stamp on it is removed.
	c.send(`{"jsonrpc":"2.0","method":"server.ping","id":5}` + "\n")
	c.readLine()
	c.send(mintLine(t, `{"jsonrpc":"2.0","method":"server.ping","id":6}`, resource, 1, now) + "\n")
	c.readLine()
	waitReceived(t, up, []byte(ping+"\n"+`{"jsonrpc":"2.0","method":"server.ping","id":5}`+"\n"+`{"jsonrpc":"2.0","method":"server.ping","id":6}`+"\n"))
}

func TestBusyWhenReplayStoreIsFull(t *testing.T) {
	addr, up := setup(t, `"price":4,"replay_capacity":1,"max_rejections":-1`)
	c := dial(t, addr)
	busy := false
	for i := 0; i < 300 && !busy; i++ {
		c.send(mintLine(t, fmt.Sprintf(`{"method":"blockchain.transaction.get","id":%d}`, i), resource, 4, time.Now()) + "\n")
		r := parseResponse(t, c.readLine())
		if r.Error != nil {
			if r.Error.Data.Reason != stamp.ReasonBusy {
				t.Fatalf("want busy, got %+v", r.Error)
			}
			busy = true
		}
	}
	if !busy {
		t.Fatal("replay store of capacity 1 per shard never reported busy in 300 stamps")
	}
	if n := bytes.Count(up.Received(), []byte("\n")); n > 64 {
		t.Fatalf("%d stamps were accepted by a store with room for 64", n)
	}
}

func TestClosesAfterTooManyRefusals(t *testing.T) {
	addr, up := setup(t, `"price":16,"max_rejections":3`)
	c := dial(t, addr)
	// Refusals that re-minting cures do not count against the connection.
	line := `{"method":"server.banner","id":2}`
	for range 5 {
		c.send(mintLine(t, line, resource, 16, time.Now().Add(-time.Hour)) + "\n")
		c.expectError("2", stamp.ReasonExpired)
		c.send(mintLine(t, line, resource, 1, time.Now()) + "\n")
		c.expectError("2", stamp.ReasonInsufficient)
	}
	c.send(mintLine(t, line, resource, 16, time.Now()) + "\n")
	if r := parseResponse(t, c.readLine()); r.Error != nil {
		t.Fatalf("refused after curable refusals: %+v", r.Error)
	}
	want := line + "\n"
	c.send(strings.Repeat(`{"method":"server.banner","id":1}`+"\n", 5))
	for range 3 {
		c.expectError("1", stamp.ReasonMissing)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, err := c.r.ReadString('\n'); err == nil {
		t.Fatalf("connection still open after 3 refusals, got %q", rest)
	}
	waitReceived(t, up, []byte(want))
}

func TestConcurrentDuplicatesForwardOnce(t *testing.T) {
	addr, up := setup(t, `"price":64`)
	line := mintLine(t, `{"jsonrpc":"2.0","method":"blockchain.transaction.get","id":7,"params":["ff"]}`, resource, 64, time.Now())
	const n = 16
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, addr)
	}
	var wg sync.WaitGroup
	results := make([]string, n)
	start := make(chan struct{})
	for i, c := range clients {
		wg.Go(func() {
			<-start
			c.Write([]byte(line + "\n"))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			results[i], _ = c.r.ReadString('\n')
		})
	}
	close(start)
	wg.Wait()
	accepted, replayed := 0, 0
	for _, res := range results {
		r := parseResponse(t, res)
		switch {
		case r.Error == nil:
			accepted++
		case r.Error.Data.Reason == stamp.ReasonReplayed:
			replayed++
		}
	}
	if accepted != 1 || replayed != n-1 {
		t.Fatalf("accepted %d, replayed %d of %d copies", accepted, replayed, n)
	}
	if got := bytes.Count(up.Received(), []byte("\n")); got != 1 {
		t.Fatalf("upstream received %d copies", got)
	}
}

func TestBatches(t *testing.T) {
	addr, up := setup(t, `"price":32`)
	c := dial(t, addr)
	batch := `[{"jsonrpc":"2.0","method":"server.ping","id":1},{"jsonrpc":"2.0","method":"blockchain.block.header","id":2,"params":[1]}]`
	c.send(mintLine(t, batch, resource, 32, time.Now()) + "\n")
	c.readLine()
	waitReceived(t, up, []byte(batch+"\n"))

	// One bad element: an array of errors, nothing forwarded, and the good
	// element's stamp is still unused.
	good := mintLine(t, `{"jsonrpc":"2.0","method":"server.ping","id":3}`, resource, 32, time.Now())
	bad := `{"jsonrpc":"2.0","method":"server.ping","id":4}`
	c.send("[" + good + "," + bad + "]\n")
	line := c.readLine()
	var errs []rpcError
	if err := json.Unmarshal([]byte(line), &errs); err != nil || len(errs) != 2 {
		t.Fatalf("want an array of 2 errors, got %s", line)
	}
	if errs[0].Error.Data.Reason != stamp.ReasonBatch || errs[1].Error.Data.Reason != stamp.ReasonMissing || string(errs[1].ID) != "4" {
		t.Fatalf("batch errors: %s", line)
	}
	c.send(good + "\n")
	if r := parseResponse(t, c.readLine()); r.Error != nil {
		t.Fatalf("good element's stamp was consumed by the refused batch: %+v", r.Error)
	}
	waitReceived(t, up, []byte(batch+"\n"+`{"jsonrpc":"2.0","method":"server.ping","id":3}`+"\n"))
}

// TestErrorsOnlyAtLineBoundaries interleaves refused requests with accepted
// ones while the upstream dribbles long padded responses in small chunks:
// every line the client receives must be one whole JSON value.
func TestErrorsOnlyAtLineBoundaries(t *testing.T) {
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{Pad: 16384, Chunk: 700})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	caddytest.Start(t, caddytest.Layer4Config(addr, []string{hashcashHandler(`"price":8,"max_rejections":-1`), caddytest.ProxyHandler(up.Addr)}, ""), addr)
	c := dial(t, addr)
	const rounds = 40
	go func() {
		for i := range rounds {
			c.Write([]byte(mintLine(t, fmt.Sprintf(`{"method":"mempool.get_fee_histogram","id":%d}`, i), resource, 8, time.Now()) + "\n"))
			c.Write([]byte(fmt.Sprintf(`{"method":"mempool.get_fee_histogram","id":"bad%d"}`, i) + "\n"))
			time.Sleep(time.Millisecond)
		}
	}()
	results, refusals := 0, 0
	for results+refusals < 2*rounds {
		line := c.readLine()
		r := parseResponse(t, line)
		if r.Error != nil {
			refusals++
		} else {
			if len(line) != 16384+1 { // the line feed is not padded
				t.Fatalf("response of %d bytes, want 16384 and a line feed", len(line))
			}
			results++
		}
	}
	if results != rounds || refusals != rounds {
		t.Fatalf("results %d, refusals %d", results, refusals)
	}
}

func TestTLSAndIPv6(t *testing.T) {
	cert := caddytest.SelfSigned(t, "electrum.test", "::1", "127.0.0.1")
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			up := testsupport.NewUpstream(t, host, testsupport.UpstreamOptions{})
			addr := testsupport.FreeAddr(t, host)
			caddytest.Start(t, caddytest.Layer4Config(addr,
				[]string{caddytest.TLSHandler("test"), hashcashHandler(`"price":16`), caddytest.ProxyHandler(up.Addr)},
				cert.TLSApp("test")), addr)
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
				ServerName:         "electrum.test",
				InsecureSkipVerify: true, // pinned below
				VerifyConnection: func(cs tls.ConnectionState) error {
					if got := caddytest.FingerprintOf(cs.PeerCertificates[0]); got != cert.Fingerprint {
						return fmt.Errorf("certificate %s, want %s", got, cert.Fingerprint)
					}
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			c := &client{t: t, Conn: conn, r: bufio.NewReader(conn)}
			t.Cleanup(func() { conn.Close() })
			l := `{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}`
			c.send(mintLine(t, l, resource, 16, time.Now()) + "\n")
			if r := parseResponse(t, c.readLine()); r.Error != nil {
				t.Fatalf("refused: %+v", r.Error)
			}
			c.send(`{"jsonrpc":"2.0","method":"server.banner","id":1}` + "\n")
			c.expectError("1", stamp.ReasonMissing)
			waitReceived(t, up, []byte(l+"\n"))
		})
	}
}

// TestPrefetchedBytesAreFiltered puts a matcher that reads ahead in front of
// the handler: the bytes it prefetched must be filtered like the rest.
func TestPrefetchedBytesAreFiltered(t *testing.T) {
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	cfg := `{"admin":{"disabled":true},"logging":{"logs":{"default":{"level":"ERROR"}}},"apps":{"layer4":{"servers":{"s":{"listen":["` + addr + `"],"routes":[{"match":[{"regexp":{"pattern":"^\\{","count":1}}],"handle":[` +
		hashcashHandler(`"price":16`) + "," + caddytest.ProxyHandler(up.Addr) + `]}]}}}}}`
	caddytest.Start(t, cfg, addr)
	c := dial(t, addr)
	good := `{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}`
	// Both lines in the first packet, which the matcher prefetches whole.
	c.send(`{"jsonrpc":"2.0","method":"server.banner","id":9}` + "\n" + mintLine(t, good, resource, 16, time.Now()) + "\n")
	c.expectError("9", stamp.ReasonMissing)
	if r := parseResponse(t, c.readLine()); r.Error != nil {
		t.Fatalf("refused: %+v", r.Error)
	}
	waitReceived(t, up, []byte(good+"\n"))
}

// TestMetricsCountVerdicts reads the handler's counters from the metrics
// registry of the running config.
func TestMetricsCountVerdicts(t *testing.T) {
	addr, _ := setup(t, `"price":16`)
	c := dial(t, addr)
	c.send(mintLine(t, `{"method":"server.banner","id":1}`, resource, 16, time.Now()) + "\n")
	c.readLine()
	c.send(`{"method":"server.banner","id":2}` + "\n")
	c.expectError("2", stamp.ReasonMissing)
	c.send(`{"method":"server.banner","id":3}` + "\n")
	c.expectError("3", stamp.ReasonMissing)

	c.send("[1]\n")
	c.readLine()

	got := counters(t, "caddy_layer4_hashcash_requests_total", "verdict")
	if got["accepted"] != 1 || got["missing"] != 2 || got["invalid_request"] != 1 {
		t.Fatalf("requests_total by verdict = %v, want accepted 1, missing 2, invalid_request 1", got)
	}
	byMethod := counters(t, "caddy_layer4_hashcash_requests_by_method_total", "method")
	if byMethod["server.banner"] != 3 || byMethod["other"] != 1 || byMethod["server.ping"] != 0 {
		t.Fatalf("requests_by_method_total = %v, want server.banner 3, other 1 (the line that is no request)", byMethod)
	}
	if w := counters(t, "caddy_layer4_hashcash_work_accepted_total", "resource")[resource]; w != 16 {
		t.Fatalf("work_accepted_total = %v, want 16 (one accepted stamp of work 16)", w)
	}
	// The connection timed its first line, at least.
	if n := histogramCount(t, "caddy_layer4_hashcash_verify_seconds"); n < 1 {
		t.Fatalf("verify_seconds counts %d lines, want at least 1", n)
	}
	if open := gauge(t, "caddy_layer4_hashcash_connections_open"); open != 1 {
		t.Fatalf("connections_open = %v with one connection open, want 1", open)
	}
	if held, capacity := gauge(t, "caddy_layer4_hashcash_replay_entries"), gauge(t, "caddy_layer4_hashcash_replay_capacity"); held != 1 || capacity != caddyhashcash.DefaultReplayCapacity {
		t.Fatalf("replay_entries %v, replay_capacity %v; want 1 and %d", held, capacity, caddyhashcash.DefaultReplayCapacity)
	}
	c.Close()
	testsupport.WaitFor(t, "connections_open to fall to 0", func() bool {
		return gauge(t, "caddy_layer4_hashcash_connections_open") == 0
	})
}
