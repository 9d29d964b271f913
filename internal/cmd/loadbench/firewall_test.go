package main

import (
	"os"
	"strings"
	"testing"
)

// TestSecurityDocShowsTheMeasuredRuleset checks that docs/security.md ("Limit
// new connections per network in the firewall") gives operators exactly the
// nftables ruleset loadbench -flood-conn-rate measures, for port 50002.
func TestSecurityDocShowsTheMeasuredRuleset(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "```\n" + documentedConnRateLimit.ruleset() + "```\n"
	if !strings.Contains(string(doc), want) {
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
