package rpcline

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// specialByte reports whether a string does not take c as it is.
func specialByte(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }

// TestSpecialMasks checks specialMasks (the AVX2 version where the CPU has
// it) and specialMasksGo against specialByte: every byte value at every
// position of a block among plain and special neighbours, and random runs
// of blocks. The AVX2 version marks exactly the special bytes; the portable
// one marks them all, and a plain byte only above a special byte of its
// 8-byte word (special8's borrows).
func TestSpecialMasks(t *testing.T) {
	check := func(p []byte) {
		t.Helper()
		want := make([]uint64, len(p)/64)
		for k, c := range p {
			if specialByte(c) {
				want[k/64] |= 1 << (k % 64)
			}
		}
		got := make([]uint64, len(want))
		specialMasks(p, got)
		for k := range want {
			if haveMaskAVX2 && got[k] != want[k] {
				t.Fatalf("specialMasks(%q): block %d = %#x, want %#x", p, k, got[k], want[k])
			}
		}
		specialMasksGo(p, got)
		for k := range want {
			extra := got[k] &^ want[k]
			if got[k]&want[k] != want[k] {
				t.Fatalf("specialMasksGo(%q): block %d = %#x, misses %#x", p, k, got[k], want[k]&^got[k])
			}
			for j := range 64 {
				// A borrow runs up from the lowest special byte of the word.
				word := want[k] >> (j &^ 7) & 0xff
				if extra>>j&1 != 0 && (word == 0 || j&7 <= bits.TrailingZeros64(word)) {
					t.Fatalf("specialMasksGo(%q): block %d = %#x marks plain byte %d", p, k, got[k], j)
				}
			}
		}
	}
	p := make([]byte, 64)
	for _, fill := range []byte{'a', '"', 0x00, 0xff, '#', ']', ' ', 0x7f} {
		for k := range p {
			p[k] = fill
		}
		for pos := range 64 {
			for c := range 256 {
				p[pos] = byte(c)
				check(p)
			}
			p[pos] = fill
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20_000 {
		p := make([]byte, 64*rng.IntN(9))
		for k := range p {
			p[k] = byte(rng.Uint32())
			if rng.IntN(2) == 0 {
				p[k] = "0123456789abcdef\"\\\x00\x1f\x20\x21\x7f\x80"[rng.IntN(24)]
			}
		}
		check(p)
	}
}

// BenchmarkSpecialMasks compares the AVX2 and the portable versions on the
// four 64-byte blocks of a request line of about 256 bytes, which the
// scanner finds the special bytes of in one call.
func BenchmarkSpecialMasks(b *testing.B) {
	p := make([]byte, 256)
	for k := range p {
		p[k] = "0123456789abcdef"[k%16]
	}
	var masks [4]uint64
	b.Run("impl=asm", func(b *testing.B) {
		if !haveMaskAVX2 {
			b.Skip("no AVX2")
		}
		for b.Loop() {
			specialMasks(p, masks[:])
		}
	})
	b.Run("impl=go", func(b *testing.B) {
		for b.Loop() {
			specialMasksGo(p, masks[:])
		}
	})
}

// TestScanWithoutAVX2 checks that Scan gives the same result, error text
// included, with the portable specialMasks as with the AVX2 one, on random
// lines of JSON pieces, special bytes and long strings at every alignment.
func TestScanWithoutAVX2(t *testing.T) {
	if !haveMaskAVX2 {
		t.Skip("no AVX2: only the portable version runs here")
	}
	pieces := []string{
		`{`, `}`, `[`, `]`, `,`, `:`, ` `, "\t", `"`, `\`, `\"`, `\\`, `\u00e9`, `\x`,
		`"pow"`, `"method"`, `"id"`, `"a"`, `1`, `-2.5e3`, `true`, `null`,
		"\x00", "\x1f", "é", "😀", "\xff", "#", "]", strings.Repeat("0123456789abcdef", 5),
		`"` + strings.Repeat("ab", 40) + `"`,
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var withAVX2, without Line
	valid := 0
	for range 50_000 {
		var sb strings.Builder
		sb.WriteString(`{"pow":"`)
		for range rng.IntN(60) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		line := []byte(sb.String())
		if rng.IntN(2) == 0 {
			line = append(line, `"}`...)
		}
		err1 := Scan(line, "pow", &withAVX2)
		haveMaskAVX2 = false
		err2 := Scan(line, "pow", &without)
		haveMaskAVX2 = true
		if fmt.Sprint(err1) != fmt.Sprint(err2) || !reflect.DeepEqual(withAVX2, without) {
			t.Fatalf("Scan(%q): AVX2 %v %+v, portable %v %+v", line, err1, withAVX2, err2, without)
		}
		if err1 == nil {
			valid++
		}
	}
	t.Logf("%d of the lines were valid", valid)
}

// BenchmarkScanMasks is BenchmarkScan's request lines with the AVX2
// specialMasks (impl=asm) and the portable one (impl=go), in one run.
func BenchmarkScanMasks(b *testing.B) {
	for _, hexLen := range []int{64, 2000} {
		line := []byte(`{"jsonrpc":"2.0","method":"blockchain.transaction.broadcast","id":1,"params":["` +
			strings.Repeat("0123456789abcdef", hexLen/16) +
			`"],"pow":"1:131072:1800000000:00112233445566778899aabbccddeeff:123456:electrum.example.org:50002"}`)
		for _, asm := range []bool{true, false} {
			name := fmt.Sprintf("param=%dB/impl=go", hexLen)
			if asm {
				name = fmt.Sprintf("param=%dB/impl=asm", hexLen)
			}
			b.Run(name, func(b *testing.B) {
				if asm && !haveMaskAVX2 {
					b.Skip("no AVX2")
				}
				saved := haveMaskAVX2
				haveMaskAVX2 = asm
				defer func() { haveMaskAVX2 = saved }()
				var l Line
				b.SetBytes(int64(len(line)))
				for b.Loop() {
					if err := Scan(line, "pow", &l); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
