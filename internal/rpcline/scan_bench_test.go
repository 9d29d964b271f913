package rpcline_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
)

// BenchmarkScan measures Scan on stamped request lines of a 64-hex-digit
// parameter (a script hash), a 2 KB and a 900 KB transaction.
func BenchmarkScan(b *testing.B) {
	for _, size := range []struct {
		name string
		hex  int
	}{{"param=64B", 64}, {"param=2KB", 2000}, {"param=900KB", 900_000}} {
		line := []byte(`{"jsonrpc":"2.0","method":"blockchain.transaction.broadcast","id":1,"params":["` +
			strings.Repeat("0123456789abcdef", size.hex/16) +
			`"],"pow":"1:131072:1800000000:00112233445566778899aabbccddeeff:123456:electrum.example.org:50002"}`)
		b.Run(size.name, func(b *testing.B) {
			var l rpcline.Line
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				if err := rpcline.Scan(line, "pow", &l); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestScanStringsLikeEncodingJSON checks the scanner's word-at-a-time string
// path against encoding/json (plus UTF-8 validity, which Scan requires) on
// random strings of plain, special and multi-byte characters, at every
// alignment.
func TestScanStringsLikeEncodingJSON(t *testing.T) {
	pieces := []string{
		"a", "0", "f", " ", "~", "\x7f", `"`, `\`, `\"`, `\\`, `\n`, `\u0041`, `\u00e9`, `\x`, `\u12`,
		"\x00", "\x01", "\x1f", "\t", "\n", "é", "€", "😀", "\xff", "\xc3", "\xe2\x82",
		"0123456789abcdef", "pow", `"pow"`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var l rpcline.Line
	for n := range 20000 {
		var sb strings.Builder
		for range rng.IntN(40) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		line := `{"k":"` + sb.String() + `","pow":"s"}`
		if n%2 == 1 {
			line = `{"a":1,"` + sb.String() + `":2,"pow":"s"}`
		}
		want := json.Valid([]byte(line)) && utf8.ValidString(line)
		err := rpcline.Scan([]byte(line), "pow", &l)
		if (err == nil) != want {
			t.Fatalf("Scan(%q): %v, want valid=%v", line, err, want)
		}
		if err != nil {
			continue
		}
		stamps := 1
		var key string
		if n%2 == 1 && json.Unmarshal([]byte(`"`+sb.String()+`"`), &key) == nil && key == "pow" {
			stamps = 2
		}
		if o := l.Objects[0]; o.StampCount != stamps || string(o.Stamp) != `"s"` {
			t.Fatalf("Scan(%q): stamp %q count %d, want %d", line, o.Stamp, o.StampCount, stamps)
		}
	}
}
