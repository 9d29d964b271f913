package verify_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// quotedPolicy prices server.ping at 0.1 and everything else at 1.0 times
// the quoted unit, with server.version fixed at 7 whatever the quote.
func quotedPolicy(clock time.Time) *verify.Policy {
	return &verify.Policy{
		Resource:     "electrum.test:50002",
		MethodPrices: map[string]uint64{"server.version": 7},
		Costs:        map[string]float64{"server.ping": 0.1, "blockchain.scripthash.subscribe": 1, "server.add_peer": 100},
		Window:       time.Minute, Skew: time.Second,
		Store: replay.NewMemory(64),
		Now:   func() time.Time { return clock },
	}
}

// mintAt returns line stamped for work at clock.
func mintAt(t *testing.T, line string, work uint64, clock time.Time) []byte {
	t.Helper()
	out, err := stamp.AppendStamped(context.Background(), nil, []byte(line),
		stamp.Stamp{Work: work, Time: clock.Unix(), Resource: "electrum.test:50002"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestQuotedPrices(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	q := verify.Quote{Unit: 1000, LeastUnit: 500, Level: 3, NextFall: clock.Unix() + 7}
	var verdicts []verify.Verdict
	v := quotedPolicy(clock).NewVerifier(func(vd verify.Verdict) { verdicts = append(verdicts, vd) })
	v.QuoteBy(func(now time.Time) verify.Quote {
		if !now.Equal(clock) {
			t.Errorf("quoted for %v, want the policy's clock %v", now, clock)
		}
		return q
	})
	refusal := func(reply []byte) stamp.Rejection {
		t.Helper()
		var resp struct {
			Error struct{ Data stamp.Rejection } `json:"error"`
		}
		if err := json.Unmarshal(reply, &resp); err != nil {
			t.Fatalf("reply %s: %v", reply, err)
		}
		return resp.Error.Data
	}

	// Unstamped: missing, and the data say what to pay and why.
	_, reply := v.Check(nil, []byte(`{"id":1,"method":"server.add_peer"}`))
	if d := refusal(reply); d.Reason != stamp.ReasonMissing || d.Price != 100_000 || d.Unit != 1000 || d.Level != 3 || d.NextFall != clock.Unix()+7 {
		t.Fatalf("unstamped add_peer: %+v, want missing at 100×1000 with unit 1000, level 3, next_fall +7", d)
	}
	if last := verdicts[len(verdicts)-1]; last.Cost != 100 {
		t.Fatalf("verdict cost %v, want add_peer's 100", last.Cost)
	}

	// A stamp minted for the unit before the rise is still accepted...
	if _, reply := v.Check(nil, mintAt(t, `{"id":2,"method":"blockchain.scripthash.subscribe"}`, 500, clock)); reply != nil {
		t.Fatalf("a stamp for the previous unit 500 was refused: %s", reply)
	}
	// ...but not one below it; its refusal says the current price.
	_, reply = v.Check(nil, mintAt(t, `{"id":3,"method":"blockchain.scripthash.subscribe"}`, 499, clock))
	if d := refusal(reply); d.Reason != stamp.ReasonInsufficient || d.Price != 1000 {
		t.Fatalf("a stamp for 499 got %+v, want insufficient at price 1000", d)
	}
	// Costs below 1 round up; fixed prices ignore the quote.
	_, reply = v.Check(nil, []byte(`{"id":4,"method":"server.ping"}`))
	if d := refusal(reply); d.Price != 100 {
		t.Fatalf("server.ping at unit 1000: price %d, want 100", d.Price)
	}
	_, reply = v.Check(nil, []byte(`{"id":5,"method":"server.version"}`))
	if d := refusal(reply); d.Price != 7 {
		t.Fatalf("server.version fixed at 7: price %d", d.Price)
	}

	// Free a moment ago: within the tolerance an unstamped request passes,
	// and a stamp on it is removed unchecked.
	q = verify.Quote{Unit: 1000, LeastUnit: 0, Level: 1, NextFall: clock.Unix() + 5}
	for _, line := range []string{`{"id":6,"method":"server.ping"}`, `{"id":7,"method":"server.ping","pow":"junk"}`} {
		if fwd, reply := v.Check(nil, []byte(line)); reply != nil || string(fwd) != `{"id":`+line[6:7]+`,"method":"server.ping"}` {
			t.Fatalf("%s just after a rise from free: forwarded %s, reply %s", line, fwd, reply)
		}
	}

	// Calm and free: nothing to pay, and a refusal for another reason does
	// not carry a unit or level.
	q = verify.Quote{}
	if _, reply := v.Check(nil, []byte(`{"id":8,"method":"blockchain.scripthash.subscribe"}`)); reply != nil {
		t.Fatalf("a free request was refused: %s", reply)
	}
	_, reply = v.Check(nil, []byte(`not json`))
	if d := refusal(reply); d.Unit != 0 || d.Level != 0 || d.NextFall != 0 {
		t.Fatalf("a calm refusal carries %+v", d)
	}
}
