package caddyhashcash_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// BenchmarkRefusedConnection measures a connection refused for its
// network's connection cap, both ends in this process: dial, read the
// connection_limit line, close. It is what a flooder that redials at once
// costs; compare BenchmarkAcceptedConnection, the same with one request.
func BenchmarkRefusedConnection(b *testing.B) {
	up := testsupport.NewUpstream(b, "127.0.0.1", testsupport.UpstreamOptions{})
	addr := testsupport.FreeAddr(b, "127.0.0.1")
	caddytest.Start(b, caddytest.Layer4Config(addr, []string{
		hashcashHandler(`"price":64,"max_conns_per_prefix":1`), caddytest.ProxyHandler(up.Addr),
	}, ""), addr)
	holder := dial(b, addr)
	holder.roundTrip("1")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
