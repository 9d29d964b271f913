package caddyhashcash_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// TestReloadReconfiguresTheSharedState: the replay store survives a config
// reload with every stamp it holds, and takes the reloaded
// replay_capacity, larger or smaller.
func TestReloadReconfiguresTheSharedState(t *testing.T) {
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	config := func(capacity int) string {
		return caddytest.Layer4Config(addr, []string{
			hashcashHandler(fmt.Sprintf(`"price":16,"max_rejections":-1,"replay_capacity":%d`, capacity)),
			caddytest.ProxyHandler(up.Addr)}, "")
	}
	caddytest.Start(t, config(2), addr)

	id := 0
	send := func(c *client) (string, stamp.Reason) {
		t.Helper()
		id++
		line := mintLine(t, fmt.Sprintf(`{"jsonrpc":"2.0","method":"server.banner","id":%d}`, id), resource, 16, time.Now())
		c.send(line + "\n")
		r := parseResponse(t, c.readLine())
		if r.Error != nil {
			return line, r.Error.Data.Reason
		}
		return line, ""
	}
	expect := func(c *client, want stamp.Reason, what string) string {
		t.Helper()
		line, got := send(c)
		if got != want {
			t.Fatalf("%s: verdict %q, want %q", what, got, want)
		}
		return line
	}

	c := dial(t, addr)
	first := expect(c, "", "1st stamp at capacity 2")
	expect(c, "", "2nd stamp at capacity 2")
	expect(c, stamp.ReasonBusy, "3rd stamp at capacity 2")

	if err := caddy.Load([]byte(config(4)), true); err != nil {
		t.Fatalf("reloading with replay_capacity 4: %v", err)
	}
	testsupport.WaitListening(t, addr)
	c = dial(t, addr)
	// The stamps from before the reload are still remembered...
	c.send(first + "\n")
	if r := parseResponse(t, c.readLine()); r.Error == nil || r.Error.Data.Reason != stamp.ReasonReplayed {
		t.Fatalf("a stamp used before the reload was not refused as replayed after it: %+v", r)
	}
	// ...and the new capacity holds two more.
	expect(c, "", "3rd stamp at capacity 4")
	expect(c, "", "4th stamp at capacity 4")
	expect(c, stamp.ReasonBusy, "5th stamp at capacity 4")

	if err := caddy.Load([]byte(config(1)), true); err != nil {
		t.Fatalf("reloading with replay_capacity 1: %v", err)
	}
	testsupport.WaitListening(t, addr)
	c = dial(t, addr)
	expect(c, stamp.ReasonBusy, "a stamp at capacity 1 with 4 held")
}
