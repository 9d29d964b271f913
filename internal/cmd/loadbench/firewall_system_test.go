//go:build systemtest

// Loading an nftables ruleset needs root and nft (.ci/run installs it), so
// this is a system test: built only with -tags systemtest, as make test
// does.

package main

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// TestRulesetLimitsNewConnectionsPerNetwork loads the ruleset into the
// kernel (CI runs as root, with nftables installed by .ci/run) for a
// loopback listener, and dials it from one /24 faster than the rate: the
// burst gets through, then SYNs are dropped and counted, while a dial from
// another /24 still connects at once.
func TestRulesetLimitsNewConnectionsPerNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := testsupport.Serve(ln, func(net.Conn) {}) // closes each connection at once
	defer srv.Close()
	const rate, burst = 1, 4
	limit := connRateLimit{table: "electrum_hashcash_test", port: ln.Addr().(*net.TCPAddr).Port, rate: rate, burst: burst}
	remove, err := limit.install()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := remove(); err != nil {
			t.Error(err)
		}
	}()

	dial := func(from string) error {
		d := net.Dialer{Timeout: 300 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}
	start := time.Now()
	connected := 0
	for i := range 20 {
		if dial(fmt.Sprintf("127.66.1.%d", 1+i)) == nil {
			connected++
		}
	}
	elapsed := time.Since(start)
	// The burst, plus what the rate refilled while dialing (a dropped SYN
	// waits out the dial timeout), plus one for the bucket's rounding.
	if most := burst + int(elapsed.Seconds()*rate) + 1; connected < burst || connected > most {
		t.Errorf("%d of 20 dials from one /24 in %v connected, want %d to %d", connected, elapsed, burst, most)
	}
	if err := dial("127.66.2.1"); err != nil {
		t.Errorf("a dial from another /24 failed: %v", err)
	}
	dropped, err := limit.dropped()
	if err != nil {
		t.Fatal(err)
	}
	if dropped < int64(20-connected) {
		t.Errorf("the ruleset counted %d dropped SYNs, want at least the %d dials that failed", dropped, 20-connected)
	}
}
