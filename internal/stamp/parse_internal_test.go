package stamp

import (
	"math/rand/v2"
	"testing"
)

// checkParseAgrees: parseWellFormed accepts text exactly when the field by
// field parse does, with the same stamp.
func checkParseAgrees(t *testing.T, text []byte, known string) {
	t.Helper()
	fast, ok := parseWellFormed(text, known)
	slow, err := parseOrExplain(text, known)
	if ok != (err == nil) {
		t.Fatalf("%q: parseWellFormed ok=%v, parseOrExplain error %v", text, ok, err)
	}
	if ok && fast != slow {
		t.Fatalf("%q: parseWellFormed %+v, parseOrExplain %+v", text, fast, slow)
	}
}

// TestParseWellFormedAgrees runs checkParseAgrees on valid stamps and on
// random edits of them: bytes replaced, inserted and deleted, with the
// bytes that matter most (digits, colons, hex letters, signs).
func TestParseWellFormedAgrees(t *testing.T) {
	const known = "electrum.example.org:50002"
	seeds := []string{
		"1:131072:1800000000:00112233445566778899aabbccddeeff:123456:" + known,
		"1:1:0:00000000000000000000000000000000:0:a",
		"1:18446744073709551615:9223372036854775807:ffffffffffffffffffffffffffffffff:18446744073709551615:[::1]:50001",
		"1:18446744073709551616:1:00000000000000000000000000000000:0:a",
		"1:1:9223372036854775808:00000000000000000000000000000000:0:a",
	}
	alphabet := []byte("0123456789:abcdefABCDEF-+ .[]_\"\\\x00\xff")
	rng := rand.New(rand.NewPCG(5, 6))
	for _, seed := range seeds {
		checkParseAgrees(t, []byte(seed), known)
		for range 20000 {
			b := []byte(seed)
			for range 1 + rng.IntN(3) {
				c := alphabet[rng.IntN(len(alphabet))]
				switch i := rng.IntN(len(b) + 1); rng.IntN(3) {
				case 0:
					if i < len(b) {
						b[i] = c
					}
				case 1:
					b = append(b[:i], append([]byte{c}, b[i:]...)...)
				default:
					if i < len(b) {
						b = append(b[:i], b[i+1:]...)
					}
				}
			}
			checkParseAgrees(t, b, known)
		}
	}
}

// FuzzParseWellFormedAgrees is TestParseWellFormedAgrees on fuzzed text.
func FuzzParseWellFormedAgrees(f *testing.F) {
	f.Add([]byte("1:131072:1800000000:00112233445566778899aabbccddeeff:123456:electrum.example.org:50002"))
	f.Add([]byte("1:01:1:00000000000000000000000000000000:0:a"))
	f.Fuzz(func(t *testing.T, text []byte) {
		checkParseAgrees(t, text, "electrum.example.org:50002")
	})
}
