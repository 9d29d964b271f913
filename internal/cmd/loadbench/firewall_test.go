package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestReadmeShowsTheMeasuredRuleset checks that docs/security.md gives operators
// exactly the nftables ruleset loadbench -flood-conn-rate measures, for
// port 50002.
func TestReadmeShowsTheMeasuredRuleset(t *testing.T) {
	readme, err := os.ReadFile("../../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "```\n" + readmeConnRateLimit.ruleset() + "```\n"
	if !strings.Contains(string(readme), want) {
		t.Fatalf("docs/security.md does not hold the ruleset loadbench measures:\n%s", want)
	}
}

// TestRulesetCarriesItsSettings checks that the port, rate and burst end
// up in both rules, and each network's mask in its own.
func TestRulesetCarriesItsSettings(t *testing.T) {
	r := connRateLimit{table: "t1", port: 40123, rate: 7, burst: 11}.ruleset()
	if !strings.HasPrefix(r, "table inet t1 {\n") {
		t.Errorf("ruleset does not start with its table:\n%s", r)
	}
	for _, want := range []string{
		"tcp dport 40123 ct state new update @new_conns_v4 { ip saddr & 255.255.255.0 limit rate over 7/second burst 11 packets } counter drop",
		"tcp dport 40123 ct state new update @new_conns_v6 { ip6 saddr & ffff:ffff:ffff:: limit rate over 7/second burst 11 packets } counter drop",
	} {
		if !strings.Contains(r, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, r)
		}
	}
}

// TestCounterPacketsSumsBothRules reads the counters out of what
// `nft list table` prints.
func TestCounterPacketsSumsBothRules(t *testing.T) {
	listing := `table inet t1 {
	chain input {
		tcp dport 50555 ct state new update @new_conns_v4 { ip saddr & 255.255.255.0 limit rate over 2/second burst 16 packets } counter packets 5187 bytes 311220 drop
		tcp dport 50555 ct state new update @new_conns_v6 { ip6 saddr & ffff:ffff:ffff:: limit rate over 2/second burst 16 packets } counter packets 13 bytes 1040 drop
	}
}`
	if n, err := sumCounterPackets([]byte(listing)); err != nil || n != 5200 {
		t.Fatalf("sumCounterPackets = %d, %v; want 5200", n, err)
	}
}

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
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
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
