package verify_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// batchStore is a replay.BatchClaimer over a Memory store that counts how
// it is used, and fails every claim while down.
type batchStore struct {
	*replay.Memory
	batches, batchedKeys, claims, releases int
	down                                   bool
}

func (s *batchStore) ClaimBatch(now int64, claims []replay.Claim, errs []error) {
	s.batches++
	s.batchedKeys += len(claims)
	for i, c := range claims {
		if s.down {
			errs[i] = errors.New("store unreachable")
			continue
		}
		errs[i] = s.Memory.Claim(c.Key, now, c.Expires)
	}
}

func (s *batchStore) Claim(key replay.Key, now, expires int64) error {
	s.claims++
	if s.down {
		return errors.New("store unreachable")
	}
	return s.Memory.Claim(key, now, expires)
}

func (s *batchStore) Release(key replay.Key) {
	s.releases++
	s.Memory.Release(key)
}

// preclaimSetup returns a Verifier over a batchStore at a settable clock.
func preclaimSetup(t *testing.T) (*verify.Verifier, *batchStore, *time.Time) {
	clock := time.Unix(1_800_000_000, 0)
	p := quotedPolicy(clock)
	p.DefaultPrice = 16
	st := &batchStore{Memory: replay.NewMemory(64)}
	p.Store = st
	p.Now = func() time.Time { return clock }
	v := p.NewVerifier(nil)
	if !v.BatchesClaims() {
		t.Fatal("BatchesClaims is false over a BatchClaimer")
	}
	return v, st, &clock
}

// checkAll checks lines in order and returns the reason of each (""
// for forwarded), failing if a forwarded line is not its stamp-less body.
func checkAll(t *testing.T, v *verify.Verifier, lines [][]byte) []stamp.Reason {
	t.Helper()
	var got []stamp.Reason
	for _, l := range lines {
		fwd, reply := v.Check(nil, l)
		if reply == nil {
			if bytes.Contains(fwd, []byte(`"pow"`)) {
				t.Fatalf("forwarded %s with its stamp", fwd)
			}
			got = append(got, "")
			continue
		}
		got = append(got, refusalReason(t, reply))
	}
	return got
}

func refusalReason(t *testing.T, reply []byte) stamp.Reason {
	t.Helper()
	if bytes.HasPrefix(reply, []byte("[")) {
		return stamp.ReasonBatch // a refused batch line
	}
	i := bytes.Index(reply, []byte(`"reason":"`))
	if i < 0 {
		t.Fatalf("reply without a reason: %s", reply)
	}
	rest := reply[i+len(`"reason":"`):]
	return stamp.Reason(rest[:bytes.IndexByte(rest, '"')])
}

func TestPreclaimClaimsBufferedLinesInOneBatch(t *testing.T) {
	v, st, clock := preclaimSetup(t)
	a := mintAt(t, `{"id":1,"method":"blockchain.scripthash.subscribe","params":["a"]}`, 16, *clock)
	b := mintAt(t, `{"id":2,"method":"blockchain.scripthash.subscribe","params":["b"]}`, 16, *clock)
	batch := append(append(append([]byte(`[`), mintAt(t, `{"id":3,"method":"server.banner"}`, 16, *clock)...), ','),
		append(mintAt(t, `{"id":4,"method":"server.banner"}`, 16, *clock), ']')...)
	free := []byte(`{"id":5,"method":"server.version"}`) // priced 7, unstamped: missing
	lines := [][]byte{a, b, batch, free, a}              // a again: a replay within the buffer

	v.Preclaim(lines)
	if st.batches != 1 || st.batchedKeys != 4 {
		t.Fatalf("Preclaim made %d batches of %d keys in all; want 1 of 4 (a, b, the batch's two; a once)", st.batches, st.batchedKeys)
	}
	got := checkAll(t, v, lines)
	want := []stamp.Reason{"", "", "", stamp.ReasonMissing, stamp.ReasonReplayed}
	if !slices.Equal(got, want) {
		t.Fatalf("verdicts %v, want %v", got, want)
	}
	if st.claims != 1 {
		t.Fatalf("%d claims one at a time; want 1 (the second a, which finds it replayed)", st.claims)
	}
	v.ReleasePreclaimed()
	if st.releases != 0 {
		t.Fatalf("%d releases after every preclaim was used; want 0", st.releases)
	}
}

func TestPreclaimGivesBackWhatNoCheckUsed(t *testing.T) {
	v, st, clock := preclaimSetup(t)
	a := mintAt(t, `{"id":1,"method":"blockchain.scripthash.subscribe","params":["a"]}`, 16, *clock)
	b := mintAt(t, `{"id":2,"method":"blockchain.scripthash.subscribe","params":["b"]}`, 16, *clock)
	v.Preclaim([][]byte{a, b})
	// Only a is checked (b waits, say, for the refusal budget).
	if got := checkAll(t, v, [][]byte{a}); !slices.Equal(got, []stamp.Reason{""}) {
		t.Fatalf("a: %v", got)
	}
	v.ReleasePreclaimed()
	if st.releases != 1 {
		t.Fatalf("%d releases; want 1, b's", st.releases)
	}
	// b's stamp is unused: it is accepted later; a's is spent.
	if got := checkAll(t, v, [][]byte{b, a}); !slices.Equal(got, []stamp.Reason{"", stamp.ReasonReplayed}) {
		t.Fatalf("b then a again: %v, want accepted then replayed", got)
	}
}

func TestPreclaimedLineRefusedAfterAllIsGivenBack(t *testing.T) {
	v, st, clock := preclaimSetup(t)
	a := mintAt(t, `{"id":1,"method":"blockchain.scripthash.subscribe","params":["a"]}`, 16, *clock)
	b := mintAt(t, `{"id":2,"method":"blockchain.scripthash.subscribe","params":["b"]}`, 16, *clock)
	v.Preclaim([][]byte{a, b})
	// The window passes between the batch and the checks: both expire.
	later := clock.Add(2 * time.Minute)
	*clock = later
	if got := checkAll(t, v, [][]byte{a, b}); !slices.Equal(got, []stamp.Reason{stamp.ReasonExpired, stamp.ReasonExpired}) {
		t.Fatalf("%v, want both expired", got)
	}
	v.ReleasePreclaimed()
	if st.releases != 2 {
		t.Fatalf("%d releases; want 2", st.releases)
	}

	// A batch line whose second request is refused claims nothing.
	*clock = time.Unix(1_800_000_000, 0)
	st.batches, st.batchedKeys = 0, 0
	bad := append(append(append([]byte(`[`), mintAt(t, `{"id":3,"method":"server.banner"}`, 16, *clock)...), ','),
		[]byte(`{"id":4,"method":"server.banner"}]`)...)
	c := mintAt(t, `{"id":5,"method":"blockchain.scripthash.subscribe","params":["c"]}`, 16, *clock)
	v.Preclaim([][]byte{bad, c})
	if st.batchedKeys != 1 {
		t.Fatalf("Preclaim sent %d keys; want 1 (c's: the refused batch claims none)", st.batchedKeys)
	}
	if got := checkAll(t, v, [][]byte{bad, c}); !slices.Equal(got, []stamp.Reason{stamp.ReasonBatch, ""}) {
		t.Fatalf("%v, want the batch refused and c accepted", got)
	}
	v.ReleasePreclaimed()
	// The batch's good stamp was never claimed: it is accepted alone.
	good := mintAt(t, `{"id":3,"method":"server.banner"}`, 16, *clock)
	if got := checkAll(t, v, [][]byte{good}); !slices.Equal(got, []stamp.Reason{""}) {
		t.Fatalf("the refused batch's good stamp, alone: %v", got)
	}
}

func TestPreclaimFailingStoreRefusesBusy(t *testing.T) {
	v, st, clock := preclaimSetup(t)
	a := mintAt(t, `{"id":1,"method":"blockchain.scripthash.subscribe","params":["a"]}`, 16, *clock)
	b := mintAt(t, `{"id":2,"method":"blockchain.scripthash.subscribe","params":["b"]}`, 16, *clock)
	st.down = true
	v.Preclaim([][]byte{a, b})
	if got := checkAll(t, v, [][]byte{a, b}); !slices.Equal(got, []stamp.Reason{stamp.ReasonBusy, stamp.ReasonBusy}) {
		t.Fatalf("%v, want busy for both while the store fails", got)
	}
	v.ReleasePreclaimed()
	if st.releases != 0 {
		t.Fatalf("%d releases of claims that failed; want 0", st.releases)
	}
	st.down = false
	if got := checkAll(t, v, [][]byte{a, b}); !slices.Equal(got, []stamp.Reason{"", ""}) {
		t.Fatalf("after the store is back: %v, want both accepted", got)
	}
}

func TestPreclaimWithoutBatchStoreDoesNothing(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	p := quotedPolicy(clock)
	p.DefaultPrice = 16
	v := p.NewVerifier(nil)
	if v.BatchesClaims() {
		t.Fatal("BatchesClaims over the Memory store")
	}
	a := mintAt(t, `{"id":1,"method":"blockchain.scripthash.subscribe","params":["a"]}`, 16, clock)
	v.Preclaim([][]byte{a, a})
	// Nothing was claimed: a is accepted once, then replayed.
	if got := checkAll(t, v, [][]byte{a, a}); !slices.Equal(got, []stamp.Reason{"", stamp.ReasonReplayed}) {
		t.Fatalf("%v", got)
	}
	v.ReleasePreclaimed()
}
