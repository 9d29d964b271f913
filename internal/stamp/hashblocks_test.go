package stamp

import (
	"crypto/sha256"
	"math/rand/v2"
	"strings"
	"testing"
)

// withoutBlocks runs f with haveBlocks cleared: the crypto/sha256 fallback.
func withoutBlocks(t *testing.T, f func()) {
	t.Helper()
	saved := haveBlocks
	haveBlocks = false
	defer func() { haveBlocks = saved }()
	f()
}

// TestBodyHasherMatchesSHA256: BodyHasher.Sum and BodyHash agree with
// crypto/sha256 on random inputs of every length up to three blocks and
// beyond, split at every point, with and without the block function.
func TestBodyHasherMatchesSHA256(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1100)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	check := func(name string) {
		var bh BodyHasher
		lengths := []int{1000, 1023, 1024, 1025, 1100}
		for n := range 300 {
			lengths = append(lengths, n)
		}
		for _, n := range lengths {
			msg := buf[:n]
			want := sha256.Sum256(msg)
			if got := BodyHash(msg); got != want {
				t.Fatalf("%s: BodyHash of %d bytes: got %x, want %x", name, n, got, want)
			}
			cuts := []int{0, n / 2, n}
			if n < 200 {
				cuts = cuts[:0]
				for c := 0; c <= n; c++ {
					cuts = append(cuts, c)
				}
			}
			for _, c := range cuts {
				if got := bh.Sum(msg[:c], msg[c:]); got != want {
					t.Fatalf("%s: Sum of %d+%d bytes: got %x, want %x", name, c, n-c, got, want)
				}
			}
		}
	}
	if !haveBlocks {
		t.Log("no block function on this CPU: only the fallback is checked")
	}
	check("default")
	withoutBlocks(t, func() { check("fallback") })
}

// TestDigestBlocksMatchesSHA256: Digest agrees with SHA-256 of AppendPrefix
// and the counter, for random stamps with resources of every allowed length
// (and a longer one, which takes the general path), with and without the
// block function.
func TestDigestBlocksMatchesSHA256(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(name string) {
		for n := 0; n <= MaxResourceLen+10; n++ {
			for range 4 {
				s := Stamp{Work: rng.Uint64(), Time: int64(rng.Uint64() >> 1), Counter: rng.Uint64()}
				for i := range s.Salt {
					s.Salt[i] = byte(rng.Uint32())
				}
				res := make([]byte, n)
				for i := range res {
					res[i] = "abcdefghijklmnopqrstuvwxyz0123456789.-:"[rng.IntN(39)]
				}
				s.Resource = string(res)
				var body [32]byte
				for i := range body {
					body[i] = byte(rng.Uint32())
				}
				in := s.AppendPrefix(nil, &body)
				in = append(in, byte(s.Counter>>56), byte(s.Counter>>48), byte(s.Counter>>40), byte(s.Counter>>32),
					byte(s.Counter>>24), byte(s.Counter>>16), byte(s.Counter>>8), byte(s.Counter))
				want := sha256.Sum256(in)
				if got := s.Digest(&body, nil); got != want {
					t.Fatalf("%s: resource of %d bytes: got %x, want %x", name, n, got, want)
				}
			}
		}
	}
	check("default")
	withoutBlocks(t, func() { check("fallback") })
}

// TestDigesterMatchesDigest: a Digester used for one resource after
// another, as a verifier would, gives Digest's result every time, with and
// without the block function.
func TestDigesterMatchesDigest(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	resources := []string{"electrum.example.org:50002", "a:1", strings.Repeat("r", MaxResourceLen), strings.Repeat("s", 100), strings.Repeat("t", MaxResourceLen+1)}
	check := func(name string) {
		var d Digester
		for i := range 2000 {
			s := Stamp{Work: rng.Uint64(), Time: int64(rng.Uint64() >> 1), Counter: rng.Uint64()}
			for j := range s.Salt {
				s.Salt[j] = byte(rng.Uint32())
			}
			// Mostly one resource, sometimes another, as stamps for other
			// resources reach a verifier.
			s.Resource = resources[0]
			if rng.IntN(4) == 0 {
				s.Resource = resources[rng.IntN(len(resources))]
			}
			var body [32]byte
			for j := range body {
				body[j] = byte(rng.Uint32())
			}
			if got, want := d.Sum(&s, &body), s.Digest(&body, nil); got != want {
				t.Fatalf("%s: stamp %d, resource of %d bytes: got %x, want %x", name, i, len(s.Resource), got, want)
			}
		}
	}
	check("default")
	withoutBlocks(t, func() { check("fallback") })
}

// TestBodyHasherAllocs: the verifier's hashes allocate nothing once a
// BodyHasher has been used.
func TestBodyHasherAllocs(t *testing.T) {
	var bh BodyHasher
	body := make([]byte, 150)
	s := Stamp{Work: 1, Resource: "electrum.example.org:50002"}
	var d Digester
	bh.Sum(body[:100], body[100:])
	if n := testing.AllocsPerRun(100, func() {
		h := bh.Sum(body[:100], body[100:])
		_ = s.Digest(&h, nil)
		_ = d.Sum(&s, &h)
	}); n != 0 && haveBlocks {
		t.Fatalf("%v allocations per run", n)
	}
}

// BenchmarkVerifyHashes measures the two hashes a verifier computes for a
// 150-byte request body (three blocks each): the body hash, then the
// stamp's digest.
func BenchmarkVerifyHashes(b *testing.B) {
	run := func(b *testing.B) {
		var bh BodyHasher
		body := make([]byte, 150)
		s := Stamp{Work: 1, Time: 1800000000, Resource: "electrum.example.org:50002"}
		var dg Digester
		b.ReportAllocs()
		for b.Loop() {
			h := bh.Sum(body[:149], body[149:])
			d := dg.Sum(&s, &h)
			body[0] = d[0]
		}
	}
	b.Run("path=default", run)
	b.Run("path=stamp-digest", func(b *testing.B) { // Digest without a Digester: the input laid out afresh each time
		var bh BodyHasher
		body := make([]byte, 150)
		s := Stamp{Work: 1, Time: 1800000000, Resource: "electrum.example.org:50002"}
		b.ReportAllocs()
		for b.Loop() {
			h := bh.Sum(body[:149], body[149:])
			d := s.Digest(&h, nil)
			body[0] = d[0]
		}
	})
	b.Run("path=crypto-sha256", func(b *testing.B) {
		saved := haveBlocks
		haveBlocks = false
		defer func() { haveBlocks = saved }()
		run(b)
	})
}
