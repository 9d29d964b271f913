//go:build systemtest && linux

package redisstore_test

// The comparison of client libraries that chose rueidis (see README.md):
//
//	go test -tags systemtest -run '^$' -bench ClaimClients -count 3 ./internal/replay/redisstore
//
// go-redis is used only here.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay/redisstore"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// claimFunc claims a key as a Store does.
type claimFunc func(key replay.Key, now, expires int64) error

// claimClient is one way to claim keys: open returns its claim function
// and what closes it.
type claimClient struct {
	name string
	open func(b *testing.B, addr string) (claimFunc, func())
}

var claimClients = []claimClient{
	{"rueidis-store", func(b *testing.B, addr string) (claimFunc, func()) {
		s := openStore(b, redisstore.Options{Addr: addr})
		return s.Claim, func() { s.Close() }
	}},
	{"go-redis-pool20", func(b *testing.B, addr string) (claimFunc, func()) {
		c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 20})
		return goRedisClaim(c.Do), func() { c.Close() }
	}},
	{"go-redis-pool256", func(b *testing.B, addr string) (claimFunc, func()) {
		c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 256})
		return goRedisClaim(c.Do), func() { c.Close() }
	}},
	{"go-redis-autopipeline", func(b *testing.B, addr string) (claimFunc, func()) {
		c := redis.NewClient(&redis.Options{Addr: addr})
		ap, err := c.AutoPipeline()
		if err != nil {
			b.Fatal(err)
		}
		return goRedisClaim(ap.Do), func() { ap.Close(); c.Close() }
	}},
}

// goRedisClaim claims as the Store does, with go-redis: the same key,
// value and command.
func goRedisClaim(do func(ctx context.Context, args ...any) *redis.Cmd) claimFunc {
	var token [16]byte
	rand.Read(token[:])
	var counter atomic.Uint64
	return func(key replay.Key, now, expires int64) error {
		var v [24]byte
		copy(v[:], token[:])
		binary.BigEndian.PutUint64(v[16:], counter.Add(1))
		ctx, cancel := context.WithTimeout(context.Background(), redisstore.DefaultTimeout)
		defer cancel()
		err := do(ctx, "SET", redisstore.DefaultKeyPrefix+string(key[:]), string(v[:]), "NX", "PX", (expires-now)*1000).Err()
		if err == redis.Nil {
			return replay.ErrReplayed
		}
		return err
	}
}

// BenchmarkClaimClients claims fresh keys from 1, 16 and 256 goroutines
// at once, each claiming one key at a time, with each client library, and
// reports claims/s and the latency percentiles of a claim.
func BenchmarkClaimClients(b *testing.B) {
	r := testsupport.StartRedis(b, testsupport.RedisOptions{})
	for _, c := range claimClients {
		for _, g := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("client=%s/goroutines=%d", c.name, g), func(b *testing.B) {
				claim, closeClient := c.open(b, r.Addr)
				defer closeClient()
				benchClaims(b, r, g, claim)
			})
		}
	}
}

// benchClaims makes b.N claims of fresh keys from goroutines goroutines.
func benchClaims(b *testing.B, r *testsupport.Redis, goroutines int, claim claimFunc) {
	r.MustDo(b, "FLUSHALL")
	var base [8]byte
	rand.Read(base[:])
	now := time.Now().Unix()
	var next, failed atomic.Int64
	lat := make([][]time.Duration, goroutines)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := range goroutines {
		wg.Go(func() {
			var key replay.Key
			copy(key[:], base[:])
			own := make([]time.Duration, 0, b.N/goroutines+1)
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					break
				}
				binary.LittleEndian.PutUint64(key[8:], uint64(i))
				t := time.Now()
				if err := claim(key, now, now+300); err != nil {
					failed.Add(1)
				}
				own = append(own, time.Since(t))
			}
			lat[g] = own
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d claims failed", n, b.N)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / 1e3 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "claims/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
