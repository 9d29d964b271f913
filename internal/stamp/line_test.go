package stamp_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

const (
	lineResource = "electrum.test:50002"
	lineNow      = 1_800_000_000
	lineWork     = 64
)

// lineTemplate is the template the line tests mint with.
var lineTemplate = stamp.Stamp{Work: lineWork, Time: lineNow, Resource: lineResource}

// linePolicy is a server that charges lineWork for every method at lineNow.
func linePolicy() *verify.Policy {
	return &verify.Policy{
		Resource:     lineResource,
		DefaultPrice: lineWork,
		Window:       5 * time.Minute,
		Skew:         time.Minute,
		Store:        replay.NewMemory(1 << 10),
		Now:          func() time.Time { return time.Unix(lineNow, 0) },
	}
}

// stampsOf returns the stamps of a stamped line, in line order, checking
// that each proves its work for its object's body and sits in the object's
// last member.
func stampsOf(t *testing.T, line []byte) []stamp.Stamp {
	t.Helper()
	var l rpcline.Line
	if err := rpcline.Scan(line, stamp.Member, &l); err != nil {
		t.Fatalf("stamped line %s: %v", line, err)
	}
	var out []stamp.Stamp
	for i := range l.Objects {
		o := &l.Objects[i]
		text, ok := rpcline.RawStringValue(o.Stamp)
		if o.StampCount != 1 || !ok {
			t.Fatalf("object %d of %s: %d stamps, %s", i, line, o.StampCount, o.Stamp)
		}
		if o.CutEnd != o.End-1 {
			t.Errorf("object %d of %s: the stamp is not the last member", i, line)
		}
		st, err := stamp.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		bodyHash := stamp.BodyHash(rpcline.AppendObjectStripped(nil, line, o))
		if d := st.Digest(&bodyHash, nil); !stamp.Meets(&d, st.Work) {
			t.Errorf("object %d of %s: the stamp does not prove its work", i, line)
		}
		out = append(out, st)
	}
	return out
}

func TestAppendStampedInsertsAStampThatVerifies(t *testing.T) {
	for _, line := range []string{
		`{"jsonrpc":"2.0","method":"server.ping","id":1}`,
		`{"id":"}\"{","method":"blockchain.transaction.get","params":["caf\u00e9 \\\"}"]}`,
		` { "method" : "server.banner" , "id" : 2 } ` + "\r",
		`[{"jsonrpc":"2.0","method":"server.ping","id":1},{"method":"server.banner","id":"b}"}]`,
		`[ {"method":"server.ping","id":3} ]`,
	} {
		t.Run(line, func(t *testing.T) {
			got, err := stamp.AppendStamped(context.Background(), []byte("before "), []byte(line), lineTemplate, 2)
			if err != nil {
				t.Fatal(err)
			}
			stamped, ok := bytes.CutPrefix(got, []byte("before "))
			if !ok {
				t.Fatalf("dst's bytes are gone: %s", got)
			}
			stamps := stampsOf(t, stamped)
			for i, st := range stamps {
				if st.Work != lineWork || st.Time != lineNow || st.Resource != lineResource {
					t.Errorf("stamp %d is %v, not minted from the template", i, st)
				}
				for _, other := range stamps[:i] {
					if other.Salt == st.Salt {
						t.Errorf("two stamps share the salt %x", st.Salt)
					}
				}
			}
			v := linePolicy().NewVerifier(nil)
			forward, reply := v.Check(nil, stamped)
			if reply != nil {
				t.Fatalf("refused: %s", reply)
			}
			if string(forward) != line {
				t.Errorf("forwarded\n %s\nwant the line as it was\n %s", forward, line)
			}
		})
	}
}

func TestAppendStampedEmptyObject(t *testing.T) {
	got, err := stamp.AppendStamped(context.Background(), nil, []byte("{}"), lineTemplate, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), `{"pow":"1:64:1800000000:`) || !strings.HasSuffix(string(got), `:electrum.test:50002"}`) {
		t.Fatalf("stamped {} is %s", got)
	}
	if st := stampsOf(t, got); len(st) != 1 {
		t.Fatalf("%d stamps", len(st))
	}
	var l rpcline.Line
	if err := rpcline.Scan(got, stamp.Member, &l); err != nil {
		t.Fatal(err)
	}
	if stripped := rpcline.AppendStripped(nil, got, &l); string(stripped) != "{}" {
		t.Errorf("stripped back to %s", stripped)
	}
}

func TestAppendStampedKeepsALineFeed(t *testing.T) {
	got, err := stamp.AppendStamped(context.Background(), nil, []byte(`{"id":1}`+"\n"), lineTemplate, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(got, []byte("\"}\n")) || bytes.Count(got, []byte("\n")) != 1 {
		t.Fatalf("stamped line %q", got)
	}
}

func TestAppendStampedRefusesWhatItCannotStamp(t *testing.T) {
	for _, line := range []string{
		``, `{`, `{"a":1}{"b":2}`, `"string"`, `17`, `null`, `[]`, `[1]`, `[{"id":1},"x"]`,
		`{"id":1,"pow":"1:1:1:00000000000000000000000000000000:0:r"}`,
		`[{"id":1},{"id":2,"pow":"x"}]`,
		`{"pow":17}`,
	} {
		dst := []byte("kept")
		got, err := stamp.AppendStamped(context.Background(), dst, []byte(line), lineTemplate, 1)
		if !errors.Is(err, stamp.ErrNotStampable) {
			t.Errorf("%q: error %v, want one wrapping ErrNotStampable", line, err)
		}
		if string(got) != "kept" {
			t.Errorf("%q: dst became %q", line, got)
		}
	}
	_, err := stamp.AppendStamped(context.Background(), nil, []byte(`{"a":`), lineTemplate, 1)
	if !errors.Is(err, rpcline.ErrSyntax) {
		t.Errorf("invalid JSON: error %v, want one wrapping rpcline.ErrSyntax", err)
	}
}

func TestAppendStampedFailsWhenMintingFails(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	hard := stamp.Stamp{Work: 1 << 62, Time: lineNow, Resource: lineResource}
	got, err := stamp.AppendStamped(ctx, []byte("kept"), []byte(`{"id":1}`), hard, 1)
	if !errors.Is(err, context.Canceled) || errors.Is(err, stamp.ErrNotStampable) || string(got) != "kept" {
		t.Errorf("ended context: %q, %v", got, err)
	}
	for _, bad := range []stamp.Stamp{
		{Work: 0, Time: lineNow, Resource: lineResource},
		{Work: 1, Time: lineNow, Resource: "no spaces"},
	} {
		if _, err := stamp.AppendStamped(context.Background(), nil, []byte(`{"id":1}`), bad, 1); err == nil {
			t.Errorf("template %+v accepted", bad)
		}
	}
}

func TestAppendStampedFuncMintsWhatItIsGiven(t *testing.T) {
	line := `[{"method":"server.ping","id":1},{"method":"server.banner","id":2},{"method":"server.version","id":3}]`
	var calls []int
	got, minted, err := stamp.AppendStampedFunc(context.Background(), nil, []byte(line), func(i int) stamp.Stamp {
		calls = append(calls, i)
		st := stamp.Stamp{Work: uint64(8 << i), Time: lineNow + int64(i), Resource: lineResource, Counter: 99}
		st.Salt[0] = byte(i + 1)
		return st
	}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || calls[0] != 0 || calls[1] != 1 || calls[2] != 2 {
		t.Errorf("stampFor called for %v, want 0, 1, 2", calls)
	}
	stamps := stampsOf(t, got)
	if len(stamps) != 3 || len(minted.Stamps) != 3 {
		t.Fatalf("%d stamps in the line, %d reported", len(stamps), len(minted.Stamps))
	}
	for i, st := range stamps {
		if st != minted.Stamps[i] {
			t.Errorf("stamp %d in the line %v, reported %v", i, st, minted.Stamps[i])
		}
		if st.Work != 8<<i || st.Time != lineNow+int64(i) || st.Salt[0] != byte(i+1) {
			t.Errorf("stamp %d is %v, not what stampFor gave", i, st)
		}
	}
	// One worker searches the counters from 0 in order.
	want := stamps[0].Counter + stamps[1].Counter + stamps[2].Counter + 3
	if minted.Attempts != want {
		t.Errorf("%d attempts reported, want %d", minted.Attempts, want)
	}
}
