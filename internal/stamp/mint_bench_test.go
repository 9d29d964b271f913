package stamp

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"
)

// The minting benchmarks report attempts/s: hash attempts per second, to
// compare with each other in one run and with the native SHA-256 limit that
// /work/shared/tools/shalimit.c measures (docs/performance.md).
//
//	go test -run '^$' -bench 'Kernel|Mint|SHA256Block' -count 3 ./internal/stamp

// benchWork is the work of the stamps BenchmarkMint mints: about 4.2
// million attempts each, 65 ms with the SHA-NI kernel on one core.
const benchWork = 1 << 22

// BenchmarkKernel measures each kernel alone on one goroutine, chunk by
// chunk as a mint worker calls it, with a threshold no digest meets.
func BenchmarkKernel(b *testing.B) {
	j := newJob(make([]byte, 128), 0)
	for _, k := range kernels() {
		b.Run("kernel="+k.name, func(b *testing.B) {
			var first uint64
			for b.Loop() {
				if i := k.search(j, first, chunk); i != chunk {
					b.Fatalf("counter %d proves the impossible", first+i)
				}
				first += chunk
			}
			b.ReportMetric(float64(b.N)*chunk/b.Elapsed().Seconds(), "attempts/s")
		})
	}
}

// BenchmarkMint measures Mint with each kernel and with the baseline (Mint
// as it was: crypto/sha256 restored from a marshalled midstate per attempt),
// with one worker and with one per CPU.
func BenchmarkMint(b *testing.B) {
	type minter struct {
		name string
		mint func(ctx context.Context, s *Stamp, bodyHash *[32]byte, workers int) (uint64, error)
	}
	var minters []minter
	for _, k := range kernels() {
		minters = append(minters, minter{"kernel=" + k.name, func(ctx context.Context, s *Stamp, bodyHash *[32]byte, workers int) (uint64, error) {
			return mint(ctx, s, bodyHash, workers, k)
		}})
	}
	minters = append(minters, minter{"baseline=restore-write-sum", baselineMint})
	bodyHash := BodyHash([]byte(`{"jsonrpc":"2.0","method":"blockchain.scripthash.subscribe","id":7,"params":["15ce6896"]}`))
	for _, m := range minters {
		for _, workers := range []int{1, runtime.NumCPU()} {
			b.Run(fmt.Sprintf("%s/workers=%d", m.name, workers), func(b *testing.B) {
				var attempts uint64
				for i := 0; b.Loop(); i++ {
					st := Stamp{Work: benchWork, Time: 1700000000, Resource: "electrum.example.org:50002"}
					st.Salt[0], st.Salt[1] = byte(i), byte(i>>8)
					n, err := m.mint(context.Background(), &st, &bodyHash, workers)
					if err != nil {
						b.Fatal(err)
					}
					attempts += n
				}
				b.ReportMetric(float64(attempts)/b.Elapsed().Seconds(), "attempts/s")
				b.ReportMetric(float64(attempts)/float64(b.N), "attempts/op")
			})
		}
	}
}

// BenchmarkSHA256Block measures crypto/sha256 hashing one 64-byte block
// (55 bytes and the padding) on one goroutine: the rate of the Go standard
// library's SHA-256 on this CPU, per core.
func BenchmarkSHA256Block(b *testing.B) {
	var in [55]byte
	var sink byte
	for i := 0; b.Loop(); i++ {
		in[0] = byte(i)
		d := sha256.Sum256(in[:])
		sink ^= d[0]
	}
	_ = sink
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "attempts/s")
}
