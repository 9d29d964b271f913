package main

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// TestStampedPoolsVerify checks that the minted request lines are what the
// handler accepts, and that the line with id i is line i of its pool.
func TestStampedPoolsVerify(t *testing.T) {
	now := time.Now().Unix()
	mt := &minter{resource: resource, work: 16, when: func(conn, i int) int64 { return now + int64(i%3) }}
	pools, err := buildPools(2, 300, mt, newPicker(mix()), 1)
	if err != nil {
		t.Fatal(err)
	}
	p := &verify.Policy{Resource: resource, DefaultPrice: 16, Window: time.Minute, Skew: time.Minute, Store: replay.NewMemory(100_000)}
	v := p.NewVerifier(nil)
	for c, pl := range pools {
		if pl.lines() != 300 {
			t.Fatalf("pool %d has %d lines", c, pl.lines())
		}
		for i := range pl.lines() {
			line := pl.buf[pl.off[i]:pl.off[i+1]]
			if line[len(line)-1] != '\n' || bytes.Count(line, []byte{'\n'}) != 1 {
				t.Fatalf("pool %d line %d is not one line: %q", c, i, line)
			}
			fwd, reply := v.Check(nil, line[:len(line)-1])
			if reply != nil {
				t.Fatalf("pool %d line %d refused: %s\n%s", c, i, reply, line)
			}
			if id, ok := responseID(fwd); !ok || id != i || bytes.Contains(fwd, []byte(`"pow"`)) {
				t.Fatalf("pool %d line %d forwarded as %s", c, i, fwd)
			}
		}
	}
}

// TestDrive runs connections against the upstream for a moment, saturated
// and paced, and checks that every request is answered.
func TestDrive(t *testing.T) {
	methods := mix()
	up, err := newUpstream(methods)
	if err != nil {
		t.Fatal(err)
	}
	defer up.close()
	pools, err := buildPools(3, 128, nil, newPicker(methods), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, interval := range []time.Duration{0, time.Millisecond} {
		t.Run("interval="+strconv.Itoa(int(interval/time.Microsecond))+"µs", func(t *testing.T) {
			r := &run{window: 8, batch: 4, interval: interval, base: time.Now(),
				stop: make(chan struct{}), exhausted: make(chan struct{})}
			r.phase.Store(phaseMeasure)
			results := make([]*connResult, len(pools))
			var wg sync.WaitGroup
			for i := range pools {
				c, err := net.Dial("tcp", up.addr())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				wg.Go(func() { results[i] = drive(c, pools[i], true, 0, r) })
			}
			time.Sleep(300 * time.Millisecond) // how long the run lasts, not a synchronisation
			r.phase.Store(phaseDone)
			close(r.stop)
			wg.Wait()
			elapsed := time.Since(r.base) // longer than 300 ms on a loaded machine
			s, err := summarize(results, elapsed)
			if err != nil {
				t.Fatal(err)
			}
			if s.errors > 0 || s.requests < 100 {
				t.Fatalf("%d requests answered, %d errors (%s)", s.requests, s.errors, s.firstError)
			}
			if most := len(pools) * 4 * int(elapsed/time.Millisecond) / 3; interval > 0 && s.requests > most {
				t.Fatalf("paced at one request per ms per connection, but %d answered in %v (at most %d)", s.requests, elapsed, most)
			}
		})
	}
}
