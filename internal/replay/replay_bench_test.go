package replay_test

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
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
// Each goroutine has a clock that ticks every 1024 claims, and keys expire
// after enough ticks that about half the store's capacity is live; expired
// keys are swept by Claim as shards fill, so the store runs in a steady
// state at its default capacity.
//
// duplicate: every claim is of one of 4096 live keys and fails with
// ErrReplayed, as for replayed stamps.
func BenchmarkClaim(b *testing.B) {
	b.Run("distinct", func(b *testing.B) {
		m := replay.NewMemory(benchCapacity)
		const tick = 1024
		ttl := int64(max(1, benchCapacity/2/(runtime.GOMAXPROCS(0)*tick)))
		var failures atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			s := streams.Add(1)
			var i uint64
			for pb.Next() {
				now := int64(i / tick)
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
	})
	b.Run("duplicate", func(b *testing.B) {
		m := replay.NewMemory(benchCapacity)
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
	})
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
