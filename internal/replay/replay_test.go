package replay_test

import (
	"sync"
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
)

func key(i int) replay.Key {
	var k replay.Key
	k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
	return k
}

func TestClaimOnceUntilExpiry(t *testing.T) {
	m := replay.NewMemory(1000)
	if err := m.Claim(key(1), 100, 200); err != nil {
		t.Fatal(err)
	}
	if err := m.Claim(key(1), 150, 250); err != replay.ErrReplayed {
		t.Fatalf("second claim: %v", err)
	}
	if err := m.Claim(key(1), 200, 300); err != nil {
		t.Fatalf("claim after expiry: %v", err)
	}
	m.Release(key(1))
	if err := m.Claim(key(1), 201, 300); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
}

func TestFullRefusesInsteadOfEvicting(t *testing.T) {
	m := replay.NewMemory(64) // one key per shard
	if err := m.Claim(key(0), 100, 200); err != nil {
		t.Fatal(err)
	}
	// key(64) lands in the same shard as key(0).
	if err := m.Claim(key(64), 100, 200); err != replay.ErrFull {
		t.Fatalf("claim into a full shard: %v", err)
	}
	if err := m.Claim(key(0), 150, 200); err != replay.ErrReplayed {
		t.Fatalf("live key was evicted: %v", err)
	}
	if err := m.Claim(key(64), 200, 300); err != nil {
		t.Fatalf("claim once the old key expired: %v", err)
	}
	m.Sweep(1000)
	if m.Len() != 0 {
		t.Fatalf("Len after sweeping everything: %d", m.Len())
	}
}

func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	m := replay.NewMemory(1 << 16)
	const goroutines, keys = 16, 500
	wins := make([]int, keys)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range keys {
				if m.Claim(key(i), 1, 100) == nil {
					mu.Lock()
					wins[i]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for i, w := range wins {
		if w != 1 {
			t.Fatalf("key %d claimed %d times", i, w)
		}
	}
}
