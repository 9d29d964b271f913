package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// connRateLimit is an nftables ruleset that limits how fast each client
// network (/24 for IPv4, /48 for IPv6, the handler's default prefixes) may
// open connections to caddy's port. Proof of work prices requests, not
// connections: a flooder that redials as soon as caddy closes it makes
// caddy accept, refuse and close thousands of connections a second. Over
// the rate the kernel drops the connection's SYN, so caddy never sees it
// and the flooder's own dial waits for its retransmission.
//
// docs/security.md ("Limit new connections per network in the firewall")
// gives operators the ruleset for port 50002 (documentedConnRateLimit);
// loadbench -flood-conn-rate installs the same ruleset, on its own table,
// around a flood run.
type connRateLimit struct {
	table string // nftables table, family inet
	port  int    // caddy's listening port
	rate  int    // new connections a second per client network
	burst int    // new connections a client network may open at once
}

// documentedConnRateLimit is the ruleset docs/security.md shows.
var documentedConnRateLimit = connRateLimit{table: "electrum_hashcash", port: 50002, rate: 2, burst: 16}

// ruleset returns l as an nftables script for `nft -f`.
func (l connRateLimit) ruleset() string {
	return fmt.Sprintf(`table inet %[1]s {
	# One entry per client network that opened a connection in the last minute.
	set new_conns_v4 { type ipv4_addr; flags dynamic, timeout; timeout 1m; size 65536; }
	set new_conns_v6 { type ipv6_addr; flags dynamic, timeout; timeout 1m; size 65536; }
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport %[2]d ct state new update @new_conns_v4 { ip saddr & 255.255.255.0 limit rate over %[3]d/second burst %[4]d packets } counter drop
		tcp dport %[2]d ct state new update @new_conns_v6 { ip6 saddr & ffff:ffff:ffff:: limit rate over %[3]d/second burst %[4]d packets } counter drop
	}
}
`, l.table, l.port, l.rate, l.burst)
}

// install loads l's ruleset into the kernel (it needs root and the nft
// command) and returns a function that deletes its table again.
func (l connRateLimit) install() (remove func() error, err error) {
	if _, err := nft(nil, "list", "table", "inet", l.table); err == nil {
		return nil, fmt.Errorf("nftables table inet %[1]s already exists (left by an interrupted run?): delete it with nft delete table inet %[1]s", l.table)
	}
	if _, err := nft([]byte(l.ruleset()), "-f", "-"); err != nil {
		return nil, fmt.Errorf("installing the connection rate limit: %w", err)
	}
	return func() error {
		if _, err := nft(nil, "delete", "table", "inet", l.table); err != nil {
			return fmt.Errorf("removing the connection rate limit: %w", err)
		}
		return nil
	}, nil
}

// counterPackets matches the packet count of an nftables counter.
var counterPackets = regexp.MustCompile(`counter packets (\d+)`)

// dropped returns how many SYNs l's rules have dropped so far.
func (l connRateLimit) dropped() (int64, error) {
	out, err := nft(nil, "list", "table", "inet", l.table)
	if err != nil {
		return 0, err
	}
	return sumCounterPackets(out)
}

// sumCounterPackets adds up the packet counts of the counters in an
// `nft list` listing.
func sumCounterPackets(listing []byte) (int64, error) {
	var n int64
	for _, m := range counterPackets.FindAllSubmatch(listing, -1) {
		v, err := strconv.ParseInt(string(m[1]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("nftables counter %q: %w", m[1], err)
		}
		n += v
	}
	return n, nil
}

// nft runs the nft command with args and stdin, for at most 10 seconds.
func nft(stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nft", args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nft %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
