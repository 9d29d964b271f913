package stamp

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
)

// testN is how many counters the kernel tests search at a time: a multiple
// of every kernel's lanes.
const testN = 16

// refValues returns, for counters first to first+n-1, the first 8 bytes of
// SHA-256(prefix || counter) read big-endian, computed by crypto/sha256.
func refValues(prefix []byte, first uint64, n int) []uint64 {
	in := make([]byte, len(prefix)+8)
	copy(in, prefix)
	vs := make([]uint64, n)
	for i := range vs {
		binary.BigEndian.PutUint64(in[len(prefix):], first+uint64(i))
		d := sha256.Sum256(in)
		vs[i] = binary.BigEndian.Uint64(d[:8])
	}
	return vs
}

// firstAtMost is what a kernel must return for values vs and limit.
func firstAtMost(vs []uint64, limit uint64) uint64 {
	for i, v := range vs {
		if v <= limit {
			return uint64(i)
		}
	}
	return uint64(len(vs))
}

// checkKernel runs k on counters first to first+len(vs)-1 of prefix, whose
// values are vs, with limits that pin every value: each value and one less,
// no limit at all and a limit no value meets. It also starts a search at
// each counter, so that each value is once the first lane's, where only the
// exact value gives the expected answer for both limits.
func checkKernel(t *testing.T, k *kernel, prefix []byte, first uint64, vs []uint64) {
	t.Helper()
	n := uint64(len(vs))
	limits := []uint64{^uint64(0)}
	minV := ^uint64(0)
	for _, v := range vs {
		limits = append(limits, v)
		if v > 0 {
			limits = append(limits, v-1)
		}
		minV = min(minV, v)
	}
	if minV > 0 {
		limits = append(limits, minV-1)
	}
	for _, limit := range limits {
		j := newJob(prefix, limit)
		if got, want := k.search(j, first, n), firstAtMost(vs, limit); got != want {
			t.Fatalf("%s, prefix %d bytes, counters %d+%d, limit %#x: got %d, want %d",
				k.name, len(prefix), first, n, limit, got, want)
		}
	}
	lanes := uint64(k.lanes)
	for i := uint64(0); i+lanes <= n; i++ {
		for _, limit := range []uint64{vs[i], vs[i] - 1} {
			if limit == ^uint64(0) { // vs[i] was 0
				continue
			}
			j := newJob(prefix, limit)
			if got, want := k.search(j, first+i, lanes), firstAtMost(vs[i:i+lanes], limit); got != want {
				t.Fatalf("%s, prefix %d bytes, counters %d+%d, limit %#x: got %d, want %d",
					k.name, len(prefix), first+i, lanes, limit, got, want)
			}
		}
	}
}

// testFirsts are counters to start searches at: small ones, ones whose
// high word changes within the search, and ones where the counter wraps.
var testFirsts = []uint64{0, 1, 1<<32 - 5, 1<<33 - 16, 0x0123456789abcdef, ^uint64(0) - 6}

// TestKernelsRandomPrefixes checks every kernel against crypto/sha256 for
// random prefixes of 1 to 8 blocks and of 64 blocks (the input length,
// word 15 of the final block, differs for each), and for random counters.
func TestKernelsRandomPrefixes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range kernels() {
		t.Run(k.name, func(t *testing.T) {
			for _, blocks := range []int{1, 2, 3, 4, 5, 6, 7, 8, 64} {
				for round := range 8 {
					prefix := make([]byte, 64*blocks)
					for i := range prefix {
						prefix[i] = byte(rng.Uint32())
					}
					first := rng.Uint64()
					if round < len(testFirsts) {
						first = testFirsts[round]
					}
					checkKernel(t, k, prefix, first, refValues(prefix, first, testN))
				}
			}
		})
	}
}

// TestKernelsEveryResourceLength checks every kernel for stamps with each
// resource length from 1 to MaxResourceLen: every length mod 64 of what
// precedes the zero padding, and every prefix length a stamp can have (2 to
// 6 blocks). The counter always starts a final block of its own: see
// PrefixLen.
func TestKernelsEveryResourceLength(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, k := range kernels() {
		t.Run(k.name, func(t *testing.T) {
			for n := 1; n <= MaxResourceLen; n++ {
				st := Stamp{Work: rng.Uint64N(1<<20) + 1, Time: rng.Int64N(1 << 40), Resource: strings.Repeat("a", n)}
				var bodyHash [32]byte
				for i := range bodyHash {
					bodyHash[i] = byte(rng.Uint32())
				}
				prefix := st.AppendPrefix(nil, &bodyHash)
				if len(prefix) != PrefixLen(n) || len(prefix)%64 != 0 {
					t.Fatalf("resource length %d: prefix %d bytes, PrefixLen %d", n, len(prefix), PrefixLen(n))
				}
				first := testFirsts[n%len(testFirsts)]
				checkKernel(t, k, prefix, first, refValues(prefix, first, testN))
			}
		})
	}
}

// TestKernelsVectors checks every kernel against the stamp test vectors:
// with the vector's counter in each lane, the kernel finds exactly the
// vector's digest value, and its verdict for the vector's work is the
// vector's.
func TestKernelsVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Name   string
		Stamps []struct {
			Text       string
			Parses     bool
			BodySHA256 string `json:"body_sha256"`
			Digest     string
			Proves     bool
		}
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, k := range kernels() {
		for _, v := range vectors {
			for _, vs := range v.Stamps {
				if !vs.Parses {
					continue
				}
				st, err := Parse([]byte(vs.Text))
				if err != nil {
					t.Fatalf("%s: %v", v.Name, err)
				}
				var bodyHash [32]byte
				if _, err := hex.Decode(bodyHash[:], []byte(vs.BodySHA256)); err != nil {
					t.Fatalf("%s: body hash: %v", v.Name, err)
				}
				digest, err := hex.DecodeString(vs.Digest)
				if err != nil || len(digest) != 32 {
					t.Fatalf("%s: digest %q", v.Name, vs.Digest)
				}
				want := binary.BigEndian.Uint64(digest)
				prefix := st.AppendPrefix(nil, &bodyHash)
				for lane := range uint64(k.lanes) {
					if st.Counter < lane {
						break
					}
					first := st.Counter - lane
					vals := refValues(prefix, first, k.lanes)
					if vals[lane] != want {
						t.Fatalf("%s: crypto/sha256 disagrees with the vector", v.Name)
					}
					for _, limit := range []uint64{want, want - 1, limitFor(st.Work)} {
						if limit == ^uint64(0) && want == 0 {
							continue
						}
						got := k.search(newJob(prefix, limit), first, uint64(k.lanes))
						if wantI := firstAtMost(vals, limit); got != wantI {
							t.Fatalf("%s, kernel %s, counter in lane %d, limit %#x: got %d, want %d", v.Name, k.name, lane, limit, got, wantI)
						}
					}
				}
				// The verdict, with the vector's counter in lane 0.
				got := k.search(newJob(prefix, limitFor(st.Work)), st.Counter, uint64(k.lanes))
				if (got == 0) != vs.Proves {
					t.Fatalf("%s, kernel %s: proves = %v, want %v", v.Name, k.name, got == 0, vs.Proves)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("no vector checked")
	}
}

// TestMintEveryKernel mints with each kernel and one worker, which searches
// counters in order and so must find the smallest counter that proves the
// work, and with more workers, which must find one that does.
func TestMintEveryKernel(t *testing.T) {
	bodyHash := BodyHash([]byte(`{"jsonrpc":"2.0","method":"server.ping","id":1}`))
	for _, k := range kernels() {
		for _, resource := range []string{"h:1", "electrum.example.org:50002", strings.Repeat("r", 45), strings.Repeat("x", MaxResourceLen)} {
			st := Stamp{Work: 1 << 10, Time: 1700000000, Resource: resource}
			st.Salt[0] = byte(len(resource))
			if _, err := mint(context.Background(), &st, &bodyHash, 1, k); err != nil {
				t.Fatal(err)
			}
			want := st
			for want.Counter = 0; ; want.Counter++ {
				d := want.Digest(&bodyHash, nil)
				if Meets(&d, want.Work) {
					break
				}
			}
			if st.Counter != want.Counter {
				t.Fatalf("kernel %s, resource length %d: minted counter %d, want the first that proves, %d", k.name, len(resource), st.Counter, want.Counter)
			}
			st.Counter = 0
			st.Salt[1] = 1
			if _, err := mint(context.Background(), &st, &bodyHash, 3, k); err != nil {
				t.Fatal(err)
			}
			if d := st.Digest(&bodyHash, nil); !Meets(&d, st.Work) {
				t.Fatalf("kernel %s, 3 workers: counter %d does not prove the work", k.name, st.Counter)
			}
		}
	}
}

// TestKernelSelection checks that Mint uses the first of kernels(), and,
// when STAMP_WANT_KERNEL names a kernel (as the Makefile's test-arm64 target
// does), that it is that one: so a run under an emulator is known to have
// run the assembly.
func TestKernelSelection(t *testing.T) {
	ks := kernels()
	if defaultKernel != ks[0] || ks[len(ks)-1] != genericKernel {
		t.Fatalf("default kernel %s, kernels %v", defaultKernel.name, ks)
	}
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.name
		if chunk%k.lanes != 0 || testN%k.lanes != 0 {
			t.Fatalf("kernel %s: %d lanes", k.name, k.lanes)
		}
	}
	t.Logf("%s/%s: kernels %v, Mint uses %s", runtime.GOOS, runtime.GOARCH, names, defaultKernel.name)
	if want := os.Getenv("STAMP_WANT_KERNEL"); want != "" && defaultKernel.name != want {
		t.Fatalf("Mint uses kernel %s, want %s (STAMP_WANT_KERNEL)", defaultKernel.name, want)
	}
}

// TestMintLoopDoesNotAllocate checks that the kernels allocate nothing, and
// that a mint that takes 21 chunks of attempts allocates no more than one
// that takes one attempt.
func TestMintLoopDoesNotAllocate(t *testing.T) {
	j := newJob(make([]byte, 128), 0)
	for _, k := range kernels() {
		if a := testing.AllocsPerRun(10, func() { k.search(j, 0, chunk) }); a != 0 {
			t.Errorf("kernel %s: %v allocations per search", k.name, a)
		}
	}
	var bodyHash [32]byte
	allocs := func(work, wantAttempts uint64) float64 {
		return testing.AllocsPerRun(5, func() {
			st := Stamp{Work: work, Time: 5, Resource: "h:1"}
			if n, err := Mint(context.Background(), &st, &bodyHash, 1); err != nil || n != wantAttempts {
				t.Fatalf("work %d: %d attempts, %v; want %d", work, n, err, wantAttempts)
			}
		})
	}
	if small, large := allocs(1, 1), allocs(1<<16, 86307); large != small {
		t.Fatalf("a mint of work 1 allocates %v times, of work 2^20 %v times", small, large)
	}
}

// TestNewJobMidstate checks the midstate newJob computes against
// crypto/sha256's, via the digest of a prefix followed by a counter.
func TestNewJobMidstate(t *testing.T) {
	prefix := []byte(strings.Repeat("electrum-hashcash", 12)[:192])
	j := newJob(prefix, 0)
	block := make([]byte, 64)
	binary.BigEndian.PutUint64(block, 42)
	block[8] = 0x80
	binary.BigEndian.PutUint64(block[56:], uint64(len(prefix)+8)*8)
	h := j.h
	compress(&h, block)
	var got [32]byte
	for i, w := range h {
		binary.BigEndian.PutUint32(got[4*i:], w)
	}
	want := sha256.Sum256(binary.BigEndian.AppendUint64(prefix, 42))
	if got != want {
		t.Fatalf("digest from midstate %x, want %x", got, want)
	}
}
