//go:build systemtest

// The tests in this file hold thousands of sockets open at once, more than
// a default open-file limit allows (.ci/run raises it with ulimit -n), so
// they are system tests: built only with -tags systemtest, as make test
// does.

package caddyhashcash_test

import (
	"fmt"
	"net"
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// Memory the handler may use per open connection, on top of the replay
// store, as documented in docs/security.md ("Memory"): the measured figure
// for an idle connection (caddy's connection and handler goroutine, the
// filter's buffers, the test client's socket) with headroom.
const maxBytesPerIdleConn = 32 << 10

// Memory per connection that has been proxied to the upstream: an idle
// connection's, plus caddy-l4 proxy's copy buffers and the upstream
// connection (here with the test upstream's 64 KiB reader).
const maxBytesPerProxiedConn = 192 << 10

// liveMemory returns the bytes of heap objects marked live by a fresh GC
// (the second empties sync.Pool's victim caches) and of goroutine stacks.
// Unlike MemStats.HeapAlloc it leaves out what other goroutines allocate
// while the collector runs, which under a flood is much of the heap.
func liveMemory() uint64 {
	runtime.GC()
	runtime.GC()
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(samples)
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return samples[0].Value.Uint64() + m.StackInuse
}

// needFiles fails the test if the process may not open n more files.
func needFiles(t *testing.T, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < n+256 {
		t.Fatalf("RLIMIT_NOFILE is %d; this test needs %d open files (raise it with ulimit -n)", lim.Cur, n+256)
	}
}

func TestThousandsOfIdleConnectionsLeaveNothingBehind(t *testing.T) {
	const idle, proxied = 2000, 200
	needFiles(t, 2*idle+4*proxied)
	addr, up := setup(t, `"price":64,"max_conns_per_prefix":-1`)

	// Warm caddy up, then take the baseline once every goroutine of the
	// warm-up connection has ended.
	before := runtime.NumGoroutine()
	warm := dial(t, addr)
	warm.roundTrip("0")
	warm.Close()
	testsupport.WaitFor(t, "the warm-up connection to close", func() bool {
		return up.Open() == 0 && runtime.NumGoroutine() <= before
	})
	baseline := liveMemory()
	ignore := goleak.IgnoreCurrent()

	conns := make([]net.Conn, 0, idle+proxied)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range proxied {
		c := dial(t, addr)
		c.roundTrip(fmt.Sprint(i + 1))
		conns = append(conns, c.Conn)
	}
	proxiedMemory := liveMemory()
	for range idle {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	// Every connection has reached the handler once this last one is
	// answered: caddy accepts in order.
	last := dial(t, addr)
	last.roundTrip("99999")
	conns = append(conns, last.Conn)
	perIdle := (int64(liveMemory()) - int64(proxiedMemory)) / idle
	perProxied := (int64(proxiedMemory) - int64(baseline)) / proxied
	t.Logf("memory per idle connection %d B, per proxied connection %d B (both ends in this process)", perIdle, perProxied)
	if perIdle > maxBytesPerIdleConn {
		t.Errorf("an idle connection costs %d B, more than the documented %d", perIdle, maxBytesPerIdleConn)
	}
	if perProxied > maxBytesPerProxiedConn {
		t.Errorf("a proxied connection costs %d B, more than the documented %d", perProxied, maxBytesPerProxiedConn)
	}
	if up.Accepted() != proxied+2 {
		t.Errorf("upstream accepted %d connections, want %d: idle connections must not reach it", up.Accepted(), proxied+2)
	}

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	testsupport.WaitFor(t, "every upstream connection to close", func() bool { return up.Open() == 0 })
	var leaked error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if leaked = goleak.Find(ignore); leaked == nil {
			break
		}
	}
	if leaked != nil {
		t.Fatalf("goroutines left behind after closing every connection: %v", leaked)
	}
	if after := liveMemory(); after > baseline+4<<20 {
		t.Fatalf("memory in use %d B after closing every connection, baseline %d B", after, baseline)
	}
}
