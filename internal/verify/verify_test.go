package verify_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

func TestRepliesStayShort(t *testing.T) {
	p := &verify.Policy{Resource: "electrum.test:50002", DefaultPrice: 64, Window: time.Minute, Skew: time.Second,
		Store: replay.NewMemory(64), MaxBatch: 3}
	strikes := 0
	ver := p.NewVerifier(func(v verify.Verdict) {
		if v.Strike {
			strikes++
		}
	})

	// A long method name is echoed cut short, at a character boundary.
	method := strings.Repeat("é", 5000)
	_, reply := ver.Check(nil, []byte(`{"id":1,"method":"`+method+`"}`))
	var resp struct {
		Error struct{ Data stamp.Rejection } `json:"error"`
	}
	if err := json.Unmarshal(reply, &resp); err != nil || len(reply) > 1024 {
		t.Fatalf("reply of %d bytes (%v): %.200s", len(reply), err, reply)
	}
	if got := resp.Error.Data.Method; !strings.HasPrefix(method, strings.TrimSuffix(got, "…")) || !strings.HasSuffix(got, "…") {
		t.Fatalf("method echoed as %q", got)
	}

	// A batch over MaxBatch gets one error, not one per element.
	_, reply = ver.Check(nil, []byte(`[1,2,3,4]`))
	if !strings.HasPrefix(string(reply), `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,`) ||
		!strings.Contains(string(reply), "at most 3 requests") {
		t.Fatalf("oversized batch: %s", reply)
	}
	if strikes != 2 {
		t.Fatalf("strikes %d, want 2", strikes)
	}
}

// TestVerdictsNameMethodAndWork: each request's Verdict names its method,
// and an accepted stamped request the work its stamp carried; a refused
// one, or one accepted free (whose stamp is not checked), reports no work.
func TestVerdictsNameMethodAndWork(t *testing.T) {
	now := time.Now()
	p := &verify.Policy{Resource: "electrum.test:50002", DefaultPrice: 64, MethodPrices: map[string]uint64{"server.ping": 0},
		Window: time.Minute, Skew: time.Second, Store: replay.NewMemory(64), MaxBatch: 3}
	type seen struct {
		method string
		reason stamp.Reason
		work   uint64
	}
	var got []seen
	ver := p.NewVerifier(func(v verify.Verdict) { got = append(got, seen{string(v.Method), v.Reason, v.Work}) })
	stamped := func(line string, work uint64) []byte {
		out, err := stamp.AppendStamped(t.Context(), nil, []byte(line), stamp.Stamp{Work: work, Time: now.Unix(), Resource: p.Resource}, 1)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	banner := stamped(`{"id":1,"method":"server.banner"}`, 128)
	ver.Check(nil, banner)
	ver.Check(nil, banner) // replayed
	ver.Check(nil, []byte(`{"id":2,"method":"server.ping"}`))
	ver.Check(nil, stamped(`[{"id":3,"method":"blockchain.headers.subscribe"},{"id":4,"method":"server.ping"}]`, 64))
	ver.Check(nil, []byte(`not json`))
	want := []seen{
		{"server.banner", "", 128},
		{"server.banner", stamp.ReasonReplayed, 0},
		{"server.ping", "", 0},
		{"blockchain.headers.subscribe", "", 64},
		{"server.ping", "", 0}, // free: its stamp is removed unchecked
		{"", stamp.ReasonParse, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("verdicts %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("verdict %d: %+v, want %+v (all: %+v)", i, got[i], want[i], got)
		}
	}
}
