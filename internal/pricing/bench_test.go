package pricing

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchPrefixes returns n distinct networks, a quarter of them IPv6.
func benchPrefixes(n int) []netip.Prefix {
	ps := make([]netip.Prefix, n)
	for i := range ps {
		if i%4 == 3 {
			ps[i] = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i)}), 48)
		} else {
			ps[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(10 + i>>16), byte(i >> 8), byte(i), 0}), 24)
		}
	}
	return ps
}

// BenchmarkQuoteSpend is what each request line costs: one Quote and one
// Spend, on a table of 10000 networks.
func BenchmarkQuoteSpend(b *testing.B) {
	for _, bc := range []struct {
		name     string
		networks int
	}{{"one network", 1}, {"10000 networks", 10000}} {
		b.Run(bc.name, func(b *testing.B) {
			n := NewNetworks(Config{}.WithDefaults())
			ps := benchPrefixes(bc.networks)
			for _, p := range ps {
				n.Spend(p, 1, true, t0)
			}
			now := t0.Add(time.Millisecond)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := ps[i%len(ps)]
				q := n.Quote(p, now)
				n.Spend(p, 0.1, q.Level < 20, now)
				i++
			}
		})
	}
}

// BenchmarkQuoteSpendParallel runs Quote and Spend from GOMAXPROCS
// goroutines: all on one network (one shard's lock), or spread over 10000.
func BenchmarkQuoteSpendParallel(b *testing.B) {
	for _, bc := range []struct {
		name     string
		networks int
	}{{"one network", 1}, {"10000 networks", 10000}} {
		b.Run(bc.name, func(b *testing.B) {
			n := NewNetworks(Config{}.WithDefaults())
			ps := benchPrefixes(bc.networks)
			for _, p := range ps {
				n.Spend(p, 1, true, t0)
			}
			now := t0.Add(time.Millisecond)
			var seed atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(7919))
				for pb.Next() {
					p := ps[i%len(ps)]
					q := n.Quote(p, now)
					n.Spend(p, 0.1, q.Level < 20, now)
					i++
				}
			})
		})
	}
}

// BenchmarkAddInFlight is the pressure signal's cost per request: +1 and −1.
func BenchmarkAddInFlight(b *testing.B) {
	n := NewNetworks(Config{PressureTarget: 100}.WithDefaults())
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.AddInFlight(1)
			n.AddInFlight(-1)
		}
	})
}

// BenchmarkTick is one Tick over a full default table (100000 networks, all
// kept: each is in debt).
func BenchmarkTick(b *testing.B) {
	c := Config{}.WithDefaults()
	n := NewNetworks(c)
	ps := benchPrefixes(c.MaxNetworks)
	for _, p := range ps {
		n.Spend(p, 1e6, true, t0)
	}
	now := t0
	n.Tick(now) // every network rises to level 1 here, once
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond) // stays in debt: no network is forgotten
		n.Tick(now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ps)), "ns/network")
}

// BenchmarkBytesPerNetwork reports the heap a tracked network takes, at a
// full default table.
func BenchmarkBytesPerNetwork(b *testing.B) {
	c := Config{}.WithDefaults()
	ps := benchPrefixes(c.MaxNetworks)
	var perNetwork float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		n := NewNetworks(c)
		for _, p := range ps {
			n.Spend(p, 1, true, t0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perNetwork = float64(after.HeapAlloc-before.HeapAlloc) / float64(len(ps))
		runtime.KeepAlive(n)
	}
	b.ReportMetric(perNetwork, "bytes/network")
}
