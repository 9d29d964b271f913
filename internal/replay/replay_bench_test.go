package replay_test

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// benchCapacity is the handler's default replay capacity.
const benchCapacity = 1_000_000

// mix is SplitMix64's finalizer: it spreads counters over all 64 bits, as
// the digest bytes that make a real key are spread.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// randomKey returns the key for counter i of stream s.
func randomKey(s, i uint64) replay.Key {
	var k replay.Key
	binary.LittleEndian.PutUint64(k[:], mix(s<<40^i))
	binary.LittleEndian.PutUint64(k[8:], mix(^(s<<40 ^ i)))
	return k
}

var streams atomic.Uint64

// BenchmarkClaim measures Memory.Claim from every core at once (run with
// -cpu 1,2,... to see how it scales).
//
// distinct: every claim is a new key and succeeds, as for accepted stamps.
// A clock shared by all goroutines ticks every 1024 claims, and keys
// expire after enough ticks that about half the store's capacity is live;
// expired keys are swept by Claim as the store fills, so it runs in a
// steady state at its default capacity.
//
// duplicate: every claim is of one of 4096 live keys and fails with
// ErrReplayed, as for replayed stamps.
func BenchmarkClaim(b *testing.B) {
	b.Run("distinct", func(b *testing.B) { benchClaimDistinct(b, memoryImpl()) })
	b.Run("duplicate", func(b *testing.B) { benchClaimReplayed(b, memoryImpl()) })
}

// BenchmarkClaimPrefetch is BenchmarkClaim's distinct with the slot of
// each new key prefetched (prefetch=on: prefetch_amd64.s, where there is
// one) and without (prefetch=off: the portable path), in one run:
//
//	go test -run '^$' -bench ClaimPrefetch -cpu 1 -count 5 ./internal/replay
func BenchmarkClaimPrefetch(b *testing.B) {
	for _, on := range []bool{true, false} {
		b.Run(fmt.Sprintf("prefetch=%v", on), func(b *testing.B) {
			defer replay.SetPrefetch(on)()
			benchClaimDistinct(b, memoryImpl())
		})
	}
}

// BenchmarkMemoryPerEntry measures the heap a Memory store of the default
// capacity holds per live key, from runtime.MemStats.HeapAlloc before the
// store is made and after it holds the given number of live keys.
func BenchmarkMemoryPerEntry(b *testing.B) {
	for _, keys := range []int{100_000, 900_000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			var perEntry float64
			for b.Loop() {
				perEntry = heapPerEntry(b, keys)
			}
			b.ReportMetric(perEntry, "B/entry")
		})
	}
}

// heapPerEntry returns the heap growth per key of a store of the default
// capacity holding keys live keys.
func heapPerEntry(b *testing.B, keys int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := replay.NewMemory(benchCapacity)
	s := streams.Add(1)
	for i := range uint64(keys) {
		if err := m.Claim(randomKey(s, i), 0, 1<<62); err != nil {
			b.Fatalf("claim %d: %v", i, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if m.Len() != keys {
		b.Fatalf("store holds %d keys, want %d", m.Len(), keys)
	}
	runtime.KeepAlive(m)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(keys)
}

// BenchmarkCompare measures Memory (impl=table, the hand-written table)
// against mapStore (impl=map, the same store with a Go map per shard) on
// the same key streams, with capacity the handler's default, 1,000,000:
//
//	go test -run '^$' -bench Compare -benchmem -cpu 1,2 ./internal/replay
//
// bytes: B/key is the heap in use after a GC, less that before the store
// was made, divided by the keys held, when the store is full; max-B/key is
// the most of that at any multiple of 50,000 keys on the way (tables grow
// in steps, so the heap per key is a sawtooth).
//
// claim: ns/op is a claim of a new key from every goroutine at once, in a
// steady state with about half the capacity live, as BenchmarkClaim's
// distinct (sweeps included: the store fills up with expired keys and
// sweeps itself about every 500,000 claims); replayed is a claim of one of
// 4096 live keys, refused, as BenchmarkClaim's duplicate.
//
// sweep: sweep-ns/key is the time of a Sweep of a store holding 1,000,000
// keys, half of them expired, divided by the keys it holds (ns/op also
// counts the claims that refill the store).
//
// growth: the latency of each claim while a store fills from empty to
// 1,000,000 keys, timed one by one: p50-ns to p9999-ns (the 99.99th
// percentile) over all the claims of all fills, max-ns the median over
// fills of each fill's slowest claim. On a busy machine the slowest claims
// are those the scheduler interrupted; growth-cpu times each claim with
// the thread's CPU clock instead (Linux only), which stops while the
// thread waits for a core, so that its max-ns is the longest a claim works
// (a table growing, GC assists included), at the price of a system call
// around each claim (about 0.3 µs added to every figure).
func BenchmarkCompare(b *testing.B) {
	for _, im := range impls() {
		b.Run("bytes/impl="+im.name, func(b *testing.B) {
			var atCapacity, worst float64
			for b.Loop() {
				atCapacity, worst = heapPerKey(b, im)
			}
			b.ReportMetric(atCapacity, "B/key")
			b.ReportMetric(worst, "max-B/key")
		})
	}
	for _, im := range impls() {
		b.Run("claim/impl="+im.name, func(b *testing.B) { benchClaimDistinct(b, im) })
	}
	for _, im := range impls() {
		b.Run("replayed/impl="+im.name, func(b *testing.B) { benchClaimReplayed(b, im) })
	}
	for _, im := range impls() {
		b.Run("sweep/impl="+im.name, func(b *testing.B) { benchSweep(b, im) })
	}
	origin := time.Now()
	wallClock := func() int64 { return int64(time.Since(origin)) }
	for _, im := range impls() {
		b.Run("growth/impl="+im.name, func(b *testing.B) { benchGrowth(b, im, wallClock) })
	}
	for _, im := range impls() {
		b.Run("growth-cpu/impl="+im.name, func(b *testing.B) {
			if _, ok := testsupport.ThreadCPU(); !ok {
				b.Skip("no per-thread CPU clock here")
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			benchGrowth(b, im, func() int64 { t, _ := testsupport.ThreadCPU(); return t })
		})
	}
}

// heapPerKey fills a store of the default capacity and returns the heap in
// use per key once it is full, and the most per key at any multiple of
// 50,000 keys.
func heapPerKey(b *testing.B, im impl) (atCapacity, worst float64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := im.new(benchCapacity)
	s := streams.Add(1)
	const step = 50_000
	for i := range uint64(benchCapacity) {
		if err := m.Claim(randomKey(s, i), 0, 1<<62); err != nil {
			b.Fatalf("claim %d: %v", i, err)
		}
		if keys := i + 1; keys%step == 0 {
			runtime.GC()
			runtime.ReadMemStats(&after)
			if m.Len() != int(keys) {
				b.Fatalf("store holds %d keys, want %d", m.Len(), keys)
			}
			atCapacity = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(keys)
			worst = max(worst, atCapacity)
		}
	}
	runtime.KeepAlive(m)
	return atCapacity, worst
}

// benchClaimDistinct claims new keys from every goroutine. A clock shared
// by all ticks every 1024 claims, and keys live for about half the
// capacity's claims; the store sweeps itself whenever it fills up with
// them and the expired ones.
func benchClaimDistinct(b *testing.B, im impl) {
	m := im.new(benchCapacity)
	const tick = 1024
	ttl := int64(benchCapacity / 2 / tick)
	var clock, failures atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := streams.Add(1)
		var i uint64
		for pb.Next() {
			if i%tick == 0 {
				clock.Add(1)
			}
			now := clock.Load()
			if m.Claim(randomKey(s, i), now, now+ttl) != nil {
				failures.Add(1)
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
	if n := failures.Load(); n > 0 {
		b.Errorf("%d of %d claims of new keys failed", n, b.N)
	}
}

// benchClaimReplayed claims keys already claimed and live, from every
// goroutine.
func benchClaimReplayed(b *testing.B, im impl) {
	m := im.new(benchCapacity)
	const live = 4096
	s := streams.Add(1)
	for i := range uint64(live) {
		if err := m.Claim(randomKey(s, i), 0, 1<<62); err != nil {
			b.Fatal(err)
		}
	}
	var successes atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := streams.Add(1) * 7919
		for pb.Next() {
			if m.Claim(randomKey(s, i%live), 1, 2) == nil {
				successes.Add(1)
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
	if n := successes.Load(); n > 0 {
		b.Errorf("%d replays were accepted", n)
	}
}

// benchSweep times sweeps of a full store of which half the keys expired:
// each round claims as many new expired keys as the last sweep dropped.
func benchSweep(b *testing.B, im impl) {
	m := im.new(benchCapacity)
	s := streams.Add(1)
	var next uint64
	claim := func(n int, expires int64) {
		for range n {
			if err := m.Claim(randomKey(s, next), 0, expires); err != nil {
				b.Fatalf("claim %d: %v", next, err)
			}
			next++
		}
	}
	claim(benchCapacity/2, 1<<62)
	var swept time.Duration
	rounds := 0
	for b.Loop() {
		claim(benchCapacity-m.Len(), 50)
		t0 := time.Now()
		m.Sweep(100)
		swept += time.Since(t0)
		rounds++
		if m.Len() != benchCapacity/2 {
			b.Fatalf("%d keys after a sweep, want %d", m.Len(), benchCapacity/2)
		}
	}
	b.ReportMetric(float64(swept.Nanoseconds())/float64(rounds*benchCapacity), "sweep-ns/key")
}

// benchGrowth times each claim of a fill from empty to capacity with clock,
// in nanoseconds.
func benchGrowth(b *testing.B, im impl, clock func() int64) {
	var all []int64
	var maxima []int64
	lat := make([]int64, benchCapacity)
	for b.Loop() {
		m := im.new(benchCapacity)
		s := streams.Add(1)
		for i := range lat {
			k := randomKey(s, uint64(i))
			t0 := clock()
			err := m.Claim(k, 0, 1<<62)
			lat[i] = clock() - t0
			if err != nil {
				b.Fatalf("claim %d: %v", i, err)
			}
		}
		all = append(all, lat...)
		maxima = append(maxima, slices.Max(lat))
	}
	slices.Sort(all)
	slices.Sort(maxima)
	at := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) }
	b.ReportMetric(at(0.5), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
	b.ReportMetric(at(0.999), "p999-ns")
	b.ReportMetric(at(0.9999), "p9999-ns")
	b.ReportMetric(float64(maxima[len(maxima)/2]), "max-ns")
	b.ReportMetric(0, "ns/op") // a fill, not a claim: see the metrics above
}
