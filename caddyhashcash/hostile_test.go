package caddyhashcash_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// dialFrom connects to addr from the loopback address src (any of
// 127.0.0.0/8 works on Linux), to act as a client from another network. Its
// reader is small: it is for short responses only.
func dialFrom(t testing.TB, addr, src string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, Conn: c, r: bufio.NewReader(c)}
}

// expectClosed reads until the connection ends, failing the test if any
// byte arrives or if it is still open after 10 seconds.
func (c *client) expectClosed() {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.r.ReadByte()
	switch {
	case err == nil:
		rest, _ := c.r.Peek(c.r.Buffered())
		c.t.Fatalf("want the connection closed, got %q", append([]byte{b}, rest...))
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.t.Fatal("connection still open after 10 s")
	case err != io.EOF && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset"):
		c.t.Fatalf("want EOF, got %v", err)
	}
}

// roundTrip sends a stamped request and checks the upstream answers it.
func (c *client) roundTrip(id string) {
	c.t.Helper()
	c.send(mintLine(c.t, `{"jsonrpc":"2.0","method":"server.ping","id":`+id+`}`, resource, 64, time.Now()) + "\n")
	if r := parseResponse(c.t, c.readLine()); r.Error != nil || string(r.ID) != id {
		c.t.Fatalf("request %s was not answered by the upstream: %+v", id, r)
	}
}

func TestReadTimeoutDropsPartialLine(t *testing.T) {
	addr, up := setup(t, `"price":64,"read_timeout":"400ms"`)

	// A line that arrives in pieces within the timeout is fine.
	slow := dial(t, addr)
	line := mintLine(t, `{"jsonrpc":"2.0","method":"server.ping","id":1}`, resource, 64, time.Now()) + "\n"
	slow.send(line[:10])
	time.Sleep(100 * time.Millisecond)
	slow.send(line[10:])
	if r := parseResponse(t, slow.readLine()); r.Error != nil {
		t.Fatalf("slow but timely line refused: %+v", r.Error)
	}

	// A partial line that is never finished: answered, dropped, closed.
	stuck := dial(t, addr)
	stuck.send(`{"jsonrpc":"2.0","method":"server.ping","id":2,"pow":"1:64:`)
	start := time.Now()
	stuck.expectError("null", stamp.ReasonReadTimeout)
	stuck.expectClosed()
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("closed after %s, before read_timeout", d)
	}
	if n := closedConnections(t, "read_timeout"); n != 1 {
		t.Fatalf("connections_closed_total{reason=read_timeout} = %v, want 1", n)
	}

	// A slowloris that keeps sending bytes never finishes a line either:
	// read_timeout counts from the line's first byte, not the last.
	loris := dial(t, addr)
	loris.send(`{"jsonrpc":"2.0","method":"server.ping","params":["`)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for range 100 { // 5 s at most
			loris.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := loris.Write([]byte("a")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	loris.expectError("null", stamp.ReasonReadTimeout)
	loris.expectClosed()
	<-closed

	// Only the timely line reached the upstream.
	waitReceived(t, up, []byte(`{"jsonrpc":"2.0","method":"server.ping","id":1}`+"\n"))
}

func TestIdleTimeoutClosesBothSides(t *testing.T) {
	addr, up := setup(t, `"price":64,"idle_timeout":"1s"`)

	// Before any request: closed, and the upstream was never dialed.
	silent := dial(t, addr)
	silent.expectClosed()
	if n := up.Accepted(); n != 0 {
		t.Fatalf("upstream dialed %d times for a client that sent nothing", n)
	}

	// After a request: the client connection and the upstream one close.
	c := dial(t, addr)
	c.roundTrip("7")
	if up.Accepted() != 1 {
		t.Fatalf("upstream accepted %d connections, want 1", up.Accepted())
	}
	c.expectClosed()
	testsupport.WaitFor(t, "the upstream connection to close", func() bool { return up.Open() == 0 })
}

func TestWriteTimeoutDisconnectsClientThatDoesNotRead(t *testing.T) {
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{Pad: 8 << 20}) // each response is 8 MB: more than socket buffers hold
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	caddytest.Start(t, caddytest.Layer4Config(addr, []string{
		hashcashHandler(`"price":64,"write_timeout":"300ms"`), caddytest.ProxyHandler(up.Addr),
	}, ""), addr)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	for i := range 3 {
		line := mintLine(t, `{"jsonrpc":"2.0","method":"server.ping","id":`+strconv.Itoa(i)+`}`, resource, 64, time.Now())
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	// The client reads nothing; caddy must give up on it, and on the
	// upstream connection that serves it.
	testsupport.WaitFor(t, "the upstream connection to be accepted", func() bool { return up.Accepted() == 1 })
	testsupport.WaitFor(t, "the upstream connection to close", func() bool { return up.Open() == 0 })
	if n := closedConnections(t, "write_timeout"); n != 1 {
		t.Fatalf("connections_closed_total{reason=write_timeout} = %v, want 1", n)
	}
}

// closedConnections returns caddy_layer4_hashcash_connections_closed_total
// for the test resource and reason, from the running config's registry.
func closedConnections(t testing.TB, reason string) float64 {
	t.Helper()
	return counters(t, "caddy_layer4_hashcash_connections_closed_total", "reason")[reason]
}

// counters returns the values of the metric family name for the test
// resource, from the running config's registry, keyed by their label key.
func counters(t testing.TB, name, key string) map[string]float64 {
	t.Helper()
	ctx := caddy.ActiveContext()
	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["resource"] == resource {
				got[labels[key]] = m.GetCounter().GetValue()
			}
		}
	}
	return got
}

func TestConnectionLimitPerPrefix(t *testing.T) {
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	addr6 := testsupport.FreeAddr(t, "::1")
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	cfg := caddytest.Layer4Config(addr, []string{
		hashcashHandler(`"price":64,"max_conns_per_prefix":2`), caddytest.ProxyHandler(up.Addr),
	}, "")
	cfg = strings.Replace(cfg, `"listen":["`+addr+`"]`, `"listen":["`+addr+`","`+addr6+`"]`, 1)
	cfg = strings.Replace(cfg, `"level":"ERROR"`, `"level":"INFO","writer":{"output":"file","filename":"`+logFile+`"}`, 1)
	caddytest.Start(t, cfg, addr, addr6)

	// Two from 127.0.0.0/24 are admitted, whether or not they sent a
	// request yet; a third is refused before any upstream connection.
	first := dialFrom(t, addr, "127.0.0.1")
	first.roundTrip("1")
	second := dialFrom(t, addr, "127.0.0.2")
	second.roundTrip("2")
	third := dialFrom(t, addr, "127.0.0.3")
	r := third.expectError("null", stamp.ReasonConnectionLimit)
	if !strings.Contains(r.Error.Data.Detail, "127.0.0.0/24") {
		t.Errorf("detail does not name the prefix: %q", r.Error.Data.Detail)
	}
	third.expectClosed()
	if n := closedConnections(t, "connection_limit"); n != 1 {
		t.Fatalf("connections_closed_total{reason=connection_limit} = %v, want 1", n)
	}

	// Another /24 and IPv6 are counted apart.
	dialFrom(t, addr, "127.0.1.1").roundTrip("3")
	dial(t, addr6).roundTrip("4")

	// Closing one frees its place.
	first.Close()
	err := testsupport.Poll(context.Background(), "the closed connection's place", testsupport.WaitTimeout, 10*time.Millisecond, func() (bool, error) {
		c := dialFrom(t, addr, "127.0.0.4")
		c.send(mintLine(t, `{"jsonrpc":"2.0","method":"server.ping","id":5}`, resource, 64, time.Now()) + "\n")
		resp := parseResponse(t, c.readLine())
		if resp.Error != nil && resp.Error.Data.Reason != stamp.ReasonConnectionLimit {
			return false, fmt.Errorf("after a close: %+v", resp.Error)
		}
		return resp.Error == nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Refusals are logged with their reason and the prefix, and the
	// upstream never saw the refused connection.
	if up.Accepted() != 5 {
		t.Errorf("upstream accepted %d connections, want the 5 admitted ones", up.Accepted())
	}
	testsupport.WaitFor(t, "the refusal in the log", func() bool {
		log, _ := os.ReadFile(logFile)
		return strings.Contains(string(log), "too many open from its network") &&
			strings.Contains(string(log), `"prefix":"127.0.0.0/24"`)
	})
}

func TestRefusalsArePaced(t *testing.T) {
	addr, up := setup(t, `"price":64,"refusal_rate":20,"refusal_burst":4`)
	c := dial(t, addr)
	c.roundTrip("1")
	used := mintLine(t, `{"jsonrpc":"2.0","method":"server.ping","id":2}`, resource, 64, time.Now())
	c.send(used + "\n")
	c.readLine()

	// 4 replays are answered at once, the burst; the next 6 at 20/s.
	start := time.Now()
	c.send(strings.Repeat(used+"\n", 10))
	for range 4 {
		c.expectError("2", stamp.ReasonReplayed)
	}
	burst := time.Since(start)
	for range 6 {
		c.expectError("2", stamp.ReasonReplayed)
	}
	if paced := time.Since(start); paced < 250*time.Millisecond {
		t.Fatalf("6 refusals past the burst took %s (burst %s); at 20/s they take at least 300ms", paced, burst)
	}
	// The connection is still served, and an accepted request is not held
	// back by the refusals before it once the budget allows reading.
	c.roundTrip("3")
	waitReceived(t, up, []byte(`{"jsonrpc":"2.0","method":"server.ping","id":1}`+"\n"+
		`{"jsonrpc":"2.0","method":"server.ping","id":2}`+"\n"+`{"jsonrpc":"2.0","method":"server.ping","id":3}`+"\n"))
}
