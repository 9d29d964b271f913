package verify_test

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// wireVector is one entry of internal/stamp/testdata/vectors.json, made by
// the independent implementation in gen_vectors.py: a request line, the
// policy of the verifier that reads it, and what that verifier must do.
type wireVector struct {
	Name   string `json:"name"`
	Wire   string `json:"wire"`
	Policy struct {
		Resource     string            `json:"resource"`
		Price        uint64            `json:"price"`
		MethodPrices map[string]uint64 `json:"method_prices"`
		Now          int64             `json:"now"`
		Window       int64             `json:"window"`
		Skew         int64             `json:"skew"`
		MaxBatch     int               `json:"max_batch"`
	} `json:"policy"`
	// Forward is the bytes forwarded; nil when the line is refused.
	Forward *string `json:"forward"`
	// Verdict holds one reason per request ("accepted" when the line is
	// forwarded), or one reason for the whole line.
	Verdict []string `json:"verdict"`
	// BatchReply: the refusal is an array with one error per element.
	BatchReply bool `json:"batch_reply"`
	Replies    []struct {
		ID     string  `json:"id"` // the raw JSON text the reply's id must be
		Reason string  `json:"reason"`
		Method *string `json:"method"` // nil: data has no method
		Price  uint64  `json:"price"`
	} `json:"replies"`
	// Again is the verdict on the same line sent again at once, if given.
	Again  []string `json:"again"`
	Stamps []struct {
		Element int    `json:"element"`
		Parses  bool   `json:"parses"`
		Work    uint64 `json:"work"`
	} `json:"stamps"`
}

// detailGiven lists the reasons whose error data carry a detail.
var detailGiven = map[stamp.Reason]bool{
	stamp.ReasonParse: true, stamp.ReasonInvalidRequest: true, stamp.ReasonMalformed: true,
	stamp.ReasonWrongResource: true, stamp.ReasonInsufficient: true, stamp.ReasonBusy: true,
	stamp.ReasonTooLarge: true,
}

// TestVectorsVerdicts checks the verifier against every vector: the verdict
// on each request, the bytes forwarded, the exact shape of each error (id
// copied byte for byte, code, data with or without method and detail,
// price, the server's resource, its clock in whole seconds, window, skew,
// version), the strikes counted, and the verdict on the line sent again.
func TestVectorsVerdicts(t *testing.T) {
	raw, err := os.ReadFile("../stamp/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []wireVector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 50 {
		t.Fatalf("only %d vectors", len(vectors))
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) { checkVector(t, &v) })
	}
}

func checkVector(t *testing.T, v *wireVector) {
	var verdicts []string
	pv := &v.Policy
	p := &verify.Policy{
		Resource: pv.Resource, DefaultPrice: pv.Price, MethodPrices: pv.MethodPrices,
		Window: time.Duration(pv.Window) * time.Second, Skew: time.Duration(pv.Skew) * time.Second,
		Store: replay.NewMemory(1024), MaxBatch: pv.MaxBatch,
		// The clock just before the next second: the verifier's "now" is
		// the whole seconds, truncated.
		Now: func() time.Time { return time.Unix(pv.Now, 999_999_999) },
	}
	strikes := 0
	ver := p.NewVerifier(func(vd verify.Verdict) {
		r := vd.Reason
		if r == "" {
			r = "accepted"
		}
		verdicts = append(verdicts, string(r))
		if vd.Strike {
			strikes++
		}
	})
	fwd, reply := ver.Check(nil, []byte(v.Wire))
	if !slices.Equal(verdicts, v.Verdict) {
		t.Fatalf("verdict %q, want %q; reply %s", verdicts, v.Verdict, reply)
	}
	if v.Forward != nil {
		if reply != nil || string(fwd) != *v.Forward {
			t.Fatalf("forwarded %q (reply %s), want %q", fwd, reply, *v.Forward)
		}
	} else {
		if reply == nil || len(fwd) != 0 {
			t.Fatalf("refused line: forwarded %q, reply %s", fwd, reply)
		}
		checkReplies(t, v, reply)
	}
	if want := wantStrikes(v); strikes != want {
		t.Errorf("%d strikes, want %d", strikes, want)
	}
	if v.Again != nil {
		verdicts = verdicts[:0]
		ver.Check(nil, []byte(v.Wire))
		if !slices.Equal(verdicts, v.Again) {
			t.Errorf("sent again: verdict %q, want %q", verdicts, v.Again)
		}
	}
}

// checkReplies checks a refusal against the vector's replies.
func checkReplies(t *testing.T, v *wireVector, reply []byte) {
	t.Helper()
	var raws []json.RawMessage
	if v.BatchReply {
		if err := json.Unmarshal(reply, &raws); err != nil {
			t.Fatalf("batch reply %s: %v", reply, err)
		}
	} else {
		raws = []json.RawMessage{reply}
	}
	if len(raws) != len(v.Replies) {
		t.Fatalf("%d errors, want %d: %s", len(raws), len(v.Replies), reply)
	}
	for i, want := range v.Replies {
		var got struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   struct {
				Code    int                        `json:"code"`
				Message string                     `json:"message"`
				Data    map[string]json.RawMessage `json:"data"`
			} `json:"error"`
		}
		dec := json.NewDecoder(bytes.NewReader(raws[i]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("error %d: %s: %v", i, raws[i], err)
		}
		r := stamp.Reason(want.Reason)
		if got.JSONRPC != "2.0" || string(got.ID) != want.ID || got.Error.Code != r.Code() || got.Error.Message == "" {
			t.Errorf("error %d: %s; want id %s, code %d", i, raws[i], want.ID, r.Code())
		}
		var whole struct {
			Error struct{ Data stamp.Rejection } `json:"error"`
		}
		if err := json.Unmarshal(raws[i], &whole); err != nil {
			t.Fatal(err)
		}
		data := whole.Error.Data
		_, hasMethod := got.Error.Data["method"]
		_, hasDetail := got.Error.Data["detail"]
		switch {
		case data.Reason != r:
			t.Errorf("error %d: data.reason %q, want %q", i, data.Reason, r)
		case hasMethod != (want.Method != nil) || want.Method != nil && data.Method != *want.Method:
			wantMethod := "none"
			if want.Method != nil {
				wantMethod = strconv.Quote(*want.Method)
			}
			t.Errorf("error %d: data.method %q (given: %v), want %s", i, data.Method, hasMethod, wantMethod)
		case data.Price != want.Price:
			t.Errorf("error %d: data.price %d, want %d", i, data.Price, want.Price)
		case data.Resource != v.Policy.Resource || data.Time != v.Policy.Now || data.Window != v.Policy.Window ||
			data.Skew != v.Policy.Skew || data.Version != 1:
			t.Errorf("error %d: data %+v does not describe the policy %+v", i, data, v.Policy)
		case hasDetail != detailGiven[r]:
			t.Errorf("error %d: data.detail given: %v, want %v", i, hasDetail, detailGiven[r])
		}
		if n := len(got.Error.Data) - btoi(hasMethod) - btoi(hasDetail); n != 7 {
			t.Errorf("error %d: data has %d members besides method and detail, want 7: %s", i, n, raws[i])
		}
	}
}

// wantStrikes is how many refusals of v's line re-minting cannot cure:
// parse, invalid_request, missing, malformed, and insufficient where the
// stamp's claim is at least the price (its digest does not prove it). An
// insufficient stamp that claims less than data.price is cured by minting
// again at that price.
func wantStrikes(v *wireVector) int {
	n := 0
	for i, r := range v.Replies {
		switch stamp.Reason(r.Reason) {
		case stamp.ReasonParse, stamp.ReasonInvalidRequest, stamp.ReasonMissing, stamp.ReasonMalformed:
			n++
		case stamp.ReasonInsufficient:
			element := i
			if !v.BatchReply {
				element = 0
			}
			for _, s := range v.Stamps {
				if s.Element == element && s.Parses && s.Work >= r.Price {
					n++
				}
			}
		}
	}
	return n
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestConnectionRefusalsData checks the refusals that are not about one
// request's JSON, as docs/wire-format.md describes them: id null, price 0,
// no method, and a detail exactly when one is given.
func TestConnectionRefusalsData(t *testing.T) {
	const now = 1763937600
	p := &verify.Policy{Resource: "h:1", DefaultPrice: 16, Window: 300 * time.Second, Skew: 30 * time.Second,
		Store: replay.NewMemory(64), Now: func() time.Time { return time.Unix(now, 500_000_000) }}
	for _, tc := range []struct {
		reply  []byte
		reason stamp.Reason
		detail bool
	}{
		{p.NewVerifier(nil).RefuseTooLarge(100), stamp.ReasonTooLarge, true},
		{p.ConnectionError(stamp.ReasonReadTimeout, "a request line must arrive whole within 30s"), stamp.ReasonReadTimeout, true},
		{p.ConnectionError(stamp.ReasonConnectionLimit, "32 connections are open"), stamp.ReasonConnectionLimit, true},
		{p.ConnectionError(stamp.ReasonInternal, ""), stamp.ReasonInternal, false},
	} {
		var got struct {
			ID    json.RawMessage `json:"id"`
			Error struct {
				Code int                        `json:"code"`
				Data map[string]json.RawMessage `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal(tc.reply, &got); err != nil {
			t.Fatalf("%s: %v", tc.reply, err)
		}
		_, hasMethod := got.Error.Data["method"]
		_, hasDetail := got.Error.Data["detail"]
		if string(got.ID) != "null" || got.Error.Code != tc.reason.Code() || hasMethod || hasDetail != tc.detail ||
			string(got.Error.Data["price"]) != "0" || string(got.Error.Data["time"]) != "1763937600" ||
			string(got.Error.Data["reason"]) != `"`+string(tc.reason)+`"` {
			t.Errorf("%s", tc.reply)
		}
	}
}
