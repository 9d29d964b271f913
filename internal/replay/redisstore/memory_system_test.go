//go:build systemtest && linux

package redisstore_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay/redisstore"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

var memoryStamps = flag.Int("memory-stamps", 100_000, "how many stamps TestMemoryPerStamp stores")

// usedMemory returns Redis's used_memory (INFO memory).
func usedMemory(tb testing.TB, r *testsupport.Redis) int64 {
	tb.Helper()
	text, _ := r.MustDo(tb, "INFO", "memory").(string)
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatalf("no used_memory in INFO memory: %q", text)
	return 0
}

// TestMemoryPerStamp measures what a live stamp takes in Redis (used_memory
// before and after n of them, divided by n): the store's keys, with the
// default prefix and the 16 bytes raw, and the same keys in hex, which the
// store does not use because they take more. See README.md for figures:
//
//	go test -tags systemtest -run MemoryPerStamp -v ./internal/replay/redisstore -args -memory-stamps 1000000
func TestMemoryPerStamp(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	s := openStore(t, redisstore.Options{Addr: r.Addr})
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now().Unix()

	// perKey fills Redis with n keys with fill and returns the bytes each
	// took.
	perKey := func(n int, fill func(n int)) float64 {
		r.MustDo(t, "FLUSHALL")
		before := usedMemory(t, r)
		fill(n)
		if got := redisInt(t, r.MustDo(t, "DBSIZE")); got != int64(n) {
			t.Fatalf("%d keys; want %d", got, n)
		}
		return float64(usedMemory(t, r)-before) / float64(n)
	}
	key := func(i int) replay.Key {
		var k replay.Key
		binary.BigEndian.PutUint64(k[:8], uint64(i)*0x9e3779b97f4a7c15)
		binary.BigEndian.PutUint64(k[8:], uint64(i))
		return k
	}
	byStore := func(n int) {
		var wg sync.WaitGroup
		const goroutines = 64
		for g := range goroutines {
			wg.Go(func() {
				for i := g; i < n; i += goroutines {
					if err := s.Claim(key(i), now, now+300); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	// direct writes what the store writes, with keys spelt by name.
	direct := func(name func(replay.Key) string) func(int) {
		return func(n int) {
			value := strconv.FormatInt(0xfedcba98<<21|12345, 10) // as the store's
			for i := 0; i < n; i += 1000 {
				cmds := make(rueidis.Commands, 0, 1000)
				for j := i; j < min(n, i+1000); j++ {
					cmds = append(cmds, c.B().Set().Key(name(key(j))).Value(value).Nx().PxMilliseconds(300_000).Build())
				}
				ctx, cancel := context.WithTimeout(context.Background(), testsupport.WaitTimeout)
				for _, res := range c.DoMulti(ctx, cmds...) {
					if err := res.Error(); err != nil {
						t.Fatal(err)
					}
				}
				cancel()
			}
		}
	}
	binaryName := func(k replay.Key) string { return redisstore.DefaultKeyPrefix + string(k[:]) }
	hexName := func(k replay.Key) string { return redisstore.DefaultKeyPrefix + hex.EncodeToString(k[:]) }

	n := *memoryStamps
	store := perKey(n, byStore)
	bin := perKey(n, direct(binaryName))
	hx := perKey(n, direct(hexName))
	t.Logf("%d live stamps: %.1f bytes each by Claim (binary key); written directly: %.1f binary, %.1f hex", n, store, bin, hx)
	// With a 24-byte string for a value instead of an integer, a stamp
	// would take 32 bytes more: about 165 bytes at 100,000.
	if store > 140 || bin >= hx {
		t.Errorf("%d stamps: %.1f bytes each by Claim, %.1f binary, %.1f hex: want at most 140, binary below hex", n, store, bin, hx)
	}
}
