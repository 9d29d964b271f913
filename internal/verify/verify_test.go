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
