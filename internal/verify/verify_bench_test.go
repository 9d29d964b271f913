package verify_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/caddyhashcash"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// Verification benchmarks.
//
// Every iteration verifies a distinct stamp on the accepted path: the
// member is found and cut, the body and the stamp are hashed, and the stamp
// is inserted into a real replay.Memory. Stamps are minted before the timer
// starts, at work 1 with price 1: a work-1 stamp is proven by every digest,
// and the cost of verifying a stamp does not depend on its work. A runner
// takes its lines from a pool; each time it starts a new pass over the pool
// it writes a new time into every stamp (a 10-digit overwrite) and advances
// its clock past the previous pass's window, so every pass brings new replay
// keys and the old ones have expired. The replay store has the handler's
// default capacity and is filled to capacity with expired stamps before the
// first benchmark, so it runs in the steady state of a busy server: maps at
// full size, and expired stamps swept by Claim as shards fill.

const (
	benchResource = "electrum.example.org:50002"
	benchT0       = 1_800_000_000
	benchWindow   = caddyhashcash.DefaultWindow
	benchSkew     = caddyhashcash.DefaultMaxSkew
	// benchPoolBytes bounds the bytes of lines a runner keeps in its pool.
	benchPoolBytes = 1 << 20
	// benchPoolLines is the most lines in a runner's pool: 512 lines of
	// 150-byte requests take about 120 KB, so that a line is in the CPU's
	// cache when it is checked, as a line just read from a socket is.
	benchPoolLines = 512
)

// benchRounds hands out pass numbers to runners, so that every pass of every
// runner uses its own stamp time.
var benchRounds atomic.Int64

var (
	benchStoreOnce sync.Once
	benchStore     *replay.Memory
)

// sharedStore returns the replay store all verification benchmarks share:
// the handler's default capacity, filled with stamps that have expired
// before the first pass of any runner.
func sharedStore() *replay.Memory {
	benchStoreOnce.Do(func() {
		benchStore = replay.NewMemory(caddyhashcash.DefaultReplayCapacity)
		var k replay.Key
		for i := range benchStore.Capacity() {
			binary.LittleEndian.PutUint64(k[:], uint64(i)*0x9e3779b97f4a7c15)
			binary.LittleEndian.PutUint64(k[8:], ^uint64(i))
			if err := benchStore.Claim(k, 0, benchT0-1); err != nil {
				panic(err)
			}
		}
	})
	return benchStore
}

// benchShape is a request of a realistic size.
type benchShape struct {
	name string
	body func(id int) string
}

func hexOf(n int, seed int) string {
	var sb strings.Builder
	sb.Grow(n)
	for i := range n {
		sb.WriteByte("0123456789abcdef"[(i*7+seed*13+i/16)%16])
	}
	return sb.String()
}

// broadcastOf returns a transaction.broadcast request of about size bytes.
func broadcastOf(size int) func(id int) string {
	return func(id int) string {
		head := `{"jsonrpc":"2.0","method":"blockchain.transaction.broadcast","id":` + strconv.Itoa(id) + `,"params":["`
		tail := `"]}`
		n := (size - len(head) - len(tail)) &^ 1
		return head + hexOf(n, id) + tail
	}
}

var benchShapes = []benchShape{
	// The largest request of a normal Electrum 4.3.4 sync is 154 bytes.
	{"req=150B", func(id int) string {
		return `{"jsonrpc":"2.0","method":"blockchain.scripthash.get_history","id":` + strconv.Itoa(1000+id%9000) +
			`,"params":["` + hexOf(64, id) + `"]}`
	}},
	{"req=2KB", broadcastOf(2 << 10)},
	{"req=900KB", broadcastOf(900_000)},
}

// stampedLine is a request line carrying a stamp whose time can be changed.
type stampedLine struct {
	line     []byte
	timeAt   int // offset of the stamp's 10-digit time in line
	stamp    stamp.Stamp
	attempts uint64 // what minting the stamp took
}

// mintLine stamps body for benchResource at the given work and time, with a
// salt derived from salt.
func mintLine(tb testing.TB, body string, work uint64, when int64, salt uint64) stampedLine {
	line, minted, err := stamp.AppendStampedFunc(context.Background(), nil, []byte(body), func(int) stamp.Stamp {
		st := stamp.Stamp{Work: work, Time: when, Resource: benchResource}
		binary.BigEndian.PutUint64(st.Salt[:], salt)
		binary.BigEndian.PutUint64(st.Salt[8:], 0x5a17)
		return st
	}, 1)
	if err != nil {
		tb.Fatal(err)
	}
	st := minted.Stamps[0]
	// The line ends with the stamp text, its closing quote and the brace.
	timeAt := len(line) - len(st.String()) - 2 + len("1:") + len(strconv.FormatUint(work, 10)) + 1
	return stampedLine{line: line, timeAt: timeAt, stamp: st, attempts: minted.Attempts}
}

// runner verifies pooled lines with its own Verifier and clock.
type runner struct {
	tb     testing.TB
	pool   []stampedLine
	next   int
	clock  int64
	v      *verify.Verifier
	dst    []byte
	failed bool
}

var runnerSeq atomic.Uint64

// newRunner pre-mints a pool of distinct stamped lines of one shape.
func newRunner(tb testing.TB, shape benchShape) *runner {
	r := &runner{tb: tb}
	p := &verify.Policy{
		Resource:     benchResource,
		DefaultPrice: 1,
		Window:       benchWindow,
		Skew:         benchSkew,
		Store:        sharedStore(),
		Now:          func() time.Time { return time.Unix(r.clock, 0) },
	}
	r.v = p.NewVerifier(nil)
	seq := runnerSeq.Add(1)
	for i, bytes := 0, 0; i < benchPoolLines && (i < 4 || bytes < benchPoolBytes); i++ {
		sl := mintLine(tb, shape.body(i), 1, benchT0, seq<<32|uint64(i))
		r.pool = append(r.pool, sl)
		bytes += len(sl.line)
	}
	r.next = len(r.pool)
	r.dst = make([]byte, 0, len(r.pool[0].line))
	return r
}

// newPass gives every pooled stamp a time no earlier pass used and moves the
// clock to it: the previous pass's replay keys have expired by then.
func (r *runner) newPass() {
	step := int64((benchWindow+time.Second)/time.Second) + 1
	r.clock = benchT0 + benchRounds.Add(1)*step
	var digits [10]byte
	strconv.AppendInt(digits[:0], r.clock, 10)
	for i := range r.pool {
		copy(r.pool[i].line[r.pool[i].timeAt:], digits[:])
	}
	r.next = 0
}

// check verifies the next line and reports whether it was accepted.
func (r *runner) check() bool {
	if r.next == len(r.pool) {
		r.newPass()
	}
	sl := &r.pool[r.next]
	r.next++
	fwd, reply := r.v.Check(r.dst[:0], sl.line)
	if reply != nil {
		if !r.failed {
			r.tb.Errorf("line refused: %s", reply)
		}
		r.failed = true
		return false
	}
	r.dst = fwd
	return true
}

// BenchmarkCheck measures Verifier.Check on the accepted path, one line per
// operation, on one core.
func BenchmarkCheck(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.name, func(b *testing.B) {
			r := newRunner(b, shape)
			b.SetBytes(int64(len(r.pool[0].line)))
			b.ReportAllocs()
			// cpu-ns/op is the thread's CPU time per line: unlike ns/op it
			// does not count the time the thread waits for a core, so it
			// stays near the work done on a machine shared with other load.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0, cpuOK := testsupport.ThreadCPU()
			b.ResetTimer()
			for b.Loop() {
				if !r.check() {
					b.FailNow()
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
			if cpu1, ok := testsupport.ThreadCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// BenchmarkCheckCold is BenchmarkCheck as a paced server sees it: each
// line is checked after other work has taken the CPU's caches, here by
// writing to every cache line of an evict-sized buffer (1 MiB: about the
// private caches; 64 MiB: the shared one too, and the TLB). cold-ns/op is
// the time of that check alone, warm-ns/op that of the next line's check
// right after it (the baseline, from the same run), cold/warm their ratio.
func BenchmarkCheckCold(b *testing.B) {
	for _, evictMiB := range []int{1, 64} {
		b.Run(fmt.Sprintf("%s/evict=%dMiB", benchShapes[0].name, evictMiB), func(b *testing.B) {
			r := newRunner(b, benchShapes[0])
			evict := make([]byte, evictMiB<<20)
			var cold, warm time.Duration
			for b.Loop() {
				for i := 0; i < len(evict); i += 64 {
					evict[i]++
				}
				t0 := time.Now()
				ok := r.check()
				t1 := time.Now()
				ok = r.check() && ok
				t2 := time.Now()
				if !ok {
					b.FailNow()
				}
				cold += t1.Sub(t0)
				warm += t2.Sub(t1)
			}
			b.ReportMetric(float64(cold.Nanoseconds())/float64(b.N), "cold-ns/op")
			b.ReportMetric(float64(warm.Nanoseconds())/float64(b.N), "warm-ns/op")
			b.ReportMetric(float64(cold)/float64(warm), "cold/warm")
		})
	}
}

// BenchmarkCheckParallel is BenchmarkCheck on every core: one Verifier per
// goroutine (as per connection in the handler), one shared replay store.
func BenchmarkCheckParallel(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.name, func(b *testing.B) {
			var (
				mu      sync.Mutex
				runners []*runner
			)
			// Mint the pools before the timer starts: one per goroutine
			// that RunParallel starts (GOMAXPROCS at the default
			// parallelism of 1).
			for range runtime.GOMAXPROCS(0) {
				runners = append(runners, newRunner(b, shape))
			}
			b.SetBytes(int64(len(runners[0].pool[0].line)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				r := runners[0]
				runners = runners[1:]
				mu.Unlock()
				for pb.Next() {
					if !r.check() {
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkMintVerify compares what a request costs the wallet and the
// server at the handler's default price: ns/op is the time to mint one stamp
// for a 150-byte request with stamp.Mint on one core, verify-ns is the time
// to verify that line once (Check, replay insert included), and mint/verify
// is their ratio. Minting time varies as the geometric distribution of the
// attempts needed; use -benchtime 500x or more for a tight mean.
func BenchmarkMintVerify(b *testing.B) {
	price := uint64(caddyhashcash.DefaultPrice)
	store := sharedStore() // full-size tables, as in BenchmarkCheck
	p := &verify.Policy{
		Resource:     benchResource,
		DefaultPrice: price,
		Window:       benchWindow,
		Skew:         benchSkew,
		Store:        store,
		Now:          func() time.Time { return time.Unix(benchT0, 0) },
	}
	v := p.NewVerifier(nil)
	var (
		lines    [][]byte
		keys     []replay.Key
		attempts uint64
	)
	for i := 0; b.Loop(); i++ {
		body := benchShapes[0].body(i)
		sl := mintLine(b, body, price, benchT0, uint64(i))
		lines = append(lines, sl.line)
		bodyHash := stamp.BodyHash([]byte(body))
		digest := sl.stamp.Digest(&bodyHash, nil)
		keys = append(keys, replay.Key(digest[16:]))
		attempts += sl.attempts
	}
	mint := b.Elapsed().Seconds() / float64(b.N)

	// Verify every minted line, repeatedly until the total time is long
	// enough to measure; between passes the replay keys are released with
	// the clock stopped.
	var verifyTime time.Duration
	verified := 0
	var dst []byte
	for verifyTime < 100*time.Millisecond && verified < 10_000_000 {
		start := time.Now()
		for _, line := range lines {
			var reply []byte
			dst, reply = v.Check(dst[:0], line)
			if reply != nil {
				b.Fatalf("minted line refused: %s", reply)
			}
		}
		verifyTime += time.Since(start)
		verified += len(lines)
		for _, k := range keys {
			store.Release(k)
		}
	}
	verifyNs := float64(verifyTime.Nanoseconds()) / float64(verified)
	b.ReportMetric(verifyNs, "verify-ns")
	b.ReportMetric(mint*1e9/verifyNs, "mint/verify")
	b.ReportMetric(float64(attempts)/float64(b.N), "attempts/op")
	b.ReportMetric(float64(attempts)/(mint*float64(b.N)), "hashes/s")
	// The ratio for exactly the expected number of attempts (the price),
	// less noisy than the measured mean.
	b.ReportMetric(float64(price)*mint*1e9*float64(b.N)/float64(attempts)/verifyNs, "expected-mint/verify")
}

// TestBenchShapes checks the benchmark's request shapes and that a stamp's
// time can be rewritten in place.
func TestBenchShapes(t *testing.T) {
	for _, shape := range benchShapes {
		body := shape.body(3)
		sl := mintLine(t, body, 1, benchT0, 1)
		if got := string(sl.line[sl.timeAt : sl.timeAt+10]); got != strconv.Itoa(benchT0) {
			t.Fatalf("%s: time at %d is %q", shape.name, sl.timeAt, got)
		}
		t.Logf("%s: body %d bytes, stamped line %d bytes", shape.name, len(body), len(sl.line))
	}
	r := newRunner(t, benchShapes[0])
	for range 2*len(r.pool) + 3 {
		if !r.check() {
			t.Fatal("refused")
		}
	}
	if len(r.pool) != benchPoolLines {
		t.Fatalf("pool of %d lines, want %d", len(r.pool), benchPoolLines)
	}
}
