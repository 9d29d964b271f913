package client

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// BenchmarkRawSHA256Block measures the machine's single-core SHA-256 rate on
// one-block inputs: the ceiling a minter can approach per core.
func BenchmarkRawSHA256Block(b *testing.B) {
	var in [55]byte // 55 bytes plus padding fill exactly one block
	var sink byte
	for i := 0; b.Loop(); i++ {
		in[0] = byte(i)
		d := sha256.Sum256(in[:])
		sink ^= d[0]
	}
	_ = sink
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// BenchmarkMint measures stamping a request line as the proxy does
// (stamp.AppendStampedFunc, whose time is nearly all stamp.Mint's) at a
// fixed work with one worker and with one per CPU, in hashes per second, to
// compare with BenchmarkRawSHA256Block.
func BenchmarkMint(b *testing.B) {
	const work = 1 << 16
	line := []byte(`{"jsonrpc":"2.0","method":"blockchain.scripthash.subscribe","id":7,"params":["15ce6896"]}`)
	for _, workers := range []int{1, runtime.NumCPU()} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var hashes uint64
			var out []byte
			for i := 0; b.Loop(); i++ {
				var m stamp.Minted
				var err error
				out, m, err = stamp.AppendStampedFunc(context.Background(), out[:0], line, func(int) stamp.Stamp {
					st := stamp.Stamp{Work: work, Time: 1700000000, Resource: "electrum.example.org:50002"}
					st.Salt[0], st.Salt[1] = byte(i), byte(i>>8)
					return st
				}, workers)
				if err != nil {
					b.Fatal(err)
				}
				hashes += m.Attempts
			}
			b.ReportMetric(float64(hashes)/b.Elapsed().Seconds(), "hashes/s")
			b.ReportMetric(float64(hashes)/float64(b.N), "hashes/op")
		})
	}
}

// BenchmarkScanPaddedAnswer measures what the proxy spends per byte of an
// answer while requests are outstanding: one rpcline.Scan of the line to
// find its id (answers without "error" are not decoded further). The line
// is a 1 MiB ElectrumX-style padded answer.
func BenchmarkScanPaddedAnswer(b *testing.B) {
	line := []byte(padded(`{"jsonrpc":"2.0","result":{"hex":"`+strings.Repeat("00", 160_000)+`","count":2000,"max":2016},"id":12}`, 1<<20))
	line = line[:len(line)-1]
	var scan rpcline.Line
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if err := rpcline.Scan(line, stamp.Member, &scan); err != nil || string(scan.Objects[0].ID) != "12" {
			b.Fatal(err)
		}
	}
}
