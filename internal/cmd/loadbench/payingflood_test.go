package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

func TestPriceFromRefusal(t *testing.T) {
	for _, c := range []struct {
		r    stamp.Rejection
		cost float64
		want uint64
	}{
		{stamp.Rejection{Reason: stamp.ReasonMissing, Price: 300, Unit: 256, Level: 1}, 1.0, 256},
		{stamp.Rejection{Reason: stamp.ReasonMissing, Unit: 257, Level: 1}, 0.5, 129}, // rounds up
		{stamp.Rejection{Reason: stamp.ReasonInsufficient, Price: 1000}, 1.0, 1000},   // fixed prices: no unit
	} {
		if got := priceFromRefusal(&c.r, c.cost); got != c.want {
			t.Errorf("priceFromRefusal(%+v, %g) = %d, want %d", c.r, c.cost, got, c.want)
		}
	}
}

func TestQuoteLearnsAndProbes(t *testing.T) {
	var q quote
	if w, probe := q.next(time.Now()); w != 0 || probe {
		t.Fatalf("fresh quote: work %d probe %v, want 0 false", w, probe)
	}
	// A refusal the price does not cure teaches nothing.
	q.learn(&stamp.Rejection{Reason: stamp.ReasonReplayed, Unit: 1 << 20, Level: 13}, false)
	if w := q.peek(); w != 0 {
		t.Fatalf("after replayed: work %d, want 0", w)
	}
	var r stamp.Rejection
	if err := json.Unmarshal([]byte(`{"reason":"missing","price":512,"resource":"r","time":100,"window":300,"skew":30,"version":1,"unit":512,"level":2,"next_fall":105}`), &r); err != nil {
		t.Fatal(err)
	}
	q.learn(&r, false)
	if w, probe := q.next(time.Now()); w != 512 || probe {
		t.Fatalf("after refusal: work %d probe %v, want 512 false", w, probe)
	}
	// After next_fall (5 s after the refusal), one token probe.
	later := time.Now().Add(6 * time.Second)
	if w, probe := q.next(later); w != 1 || !probe {
		t.Fatalf("after next_fall: work %d probe %v, want 1 true", w, probe)
	}
	if w, probe := q.next(later); w != 512 || probe {
		t.Fatalf("probe in flight: work %d probe %v, want 512 false", w, probe)
	}
	q.acceptedProbe()
	if w, probe := q.next(later); w != 0 || probe {
		t.Fatalf("after an accepted probe: work %d probe %v, want 0 false", w, probe)
	}
}

func TestSteadyStart(t *testing.T) {
	for _, c := range []struct {
		per  []float64
		want int
	}{
		// The window from 2 (100, 20, 20) has mean 46.7 > 20; from 3, 18.7.
		{[]float64{1000, 500, 100, 20, 20, 16, 32, 16, 50, 50, 50}, 3},
		{[]float64{1000, 20, 20, 20, 20, 20}, 1},
		{[]float64{20, 20, 20, 20, 20}, 0},
		{[]float64{1000, 1000, 1000, 1000, 1000, 1000}, -1},
		{[]float64{20, 20}, -1},                 // shorter than a window
		{[]float64{500, 5, 500, 20, 20, 20}, 3}, // one slow second is not the end
	} {
		if got := steadyStart(c.per, 20, 3); got != c.want {
			t.Errorf("steadyStart(%v, 20, 3) = %d, want %d", c.per, got, c.want)
		}
	}
}

func TestMeanLastHalfAndPercentile(t *testing.T) {
	if got := meanLastHalf([]float64{1000, 1000, 10, 30}); got != 20 {
		t.Errorf("meanLastHalf = %g, want 20", got)
	}
	if got := meanLastHalf([]float64{1000, 10, 20, 30}[:3]); got != 15 {
		t.Errorf("meanLastHalf of 3 = %g, want 15", got)
	}
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i)*time.Microsecond)
	}
	if got := percentile(ds, 0.99); got != 198*time.Microsecond {
		t.Errorf("p99 of 1..200 µs = %s, want 198µs", got)
	}
	samples := []honestSample{{at: time.Second, latency: 5}, {at: 2 * time.Second, latency: 7}, {at: 3 * time.Second, latency: 9}}
	if got, n := honestP99(samples, time.Second, 3*time.Second); got != 7 || n != 2 {
		t.Errorf("honestP99 = %d over %d, want 7 over 2", got, n)
	}
}

func TestAppendPayingRequest(t *testing.T) {
	line := appendPayingRequest(nil, 42)
	var req struct {
		Method string   `json:"method"`
		Params []string `json:"params"`
		ID     int64    `json:"id"`
	}
	if err := json.Unmarshal(line, &req); err != nil || !strings.HasSuffix(string(line), "}\n") {
		t.Fatalf("line %q: %v", line, err)
	}
	if req.Method != payingMethod || req.ID != 42 || len(req.Params) != 1 || len(req.Params[0]) != 64 {
		t.Errorf("request %+v", req)
	}
}

func TestPayingReportFlagsFailures(t *testing.T) {
	pc := payingFloodConfig{budget: 20, burst: 100, step: 256, tick: time.Second, conns: 2, window: 16, honest: 3, honestRate: 10,
		warmup: time.Second, baseline: time.Second, duration: 4 * time.Second}
	s := payingSummary{beforeRate: 10000, steadyRate: 45, steadyStart: -1, honestAlone: 100 * time.Microsecond,
		honestFlood: 150 * time.Microsecond, honestSteady: 300 * time.Microsecond, honestRefused: 1, honestLevel: 1}
	rep := formatPayingReport(pc, "m", "c", s, []float64{1, 2, 3, 4}, []int{0, 1, 2, 2}, nil)
	for _, want := range []string{"| … ÷ network_budget (20) | 2.25 | ≤ 1.5: missed |", "| … ÷ alone | 1.50 | ≤ 2: met |",
		"| … ÷ alone | 3.00 | ≤ 2: missed |", "| honest networks' highest level | 1 | 0: missed |", "| 4 | 4 | 0 | 2 |"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
}
