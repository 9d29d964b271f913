package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSlowUpstream checks that the slow upstream answers every request,
// serves at most workers/delay a second, and counts what is in flight.
func TestSlowUpstream(t *testing.T) {
	u, err := newSlowUpstream(mix(), 2, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	c, err := net.Dial("tcp", u.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 10
	var req strings.Builder
	for i := range n {
		fmt.Fprintf(&req, `{"jsonrpc":"2.0","method":"blockchain.block.header","id":%d,"params":[5]}`+"\n", i)
	}
	start := time.Now()
	if _, err := c.Write([]byte(req.String())); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	seen := map[int]bool{}
	for range n {
		line, err := r.ReadSlice('\n')
		if err != nil {
			t.Fatal(err)
		}
		id, ok := responseID(line)
		if !ok || !strings.HasPrefix(string(line), string(resultPrefix)) {
			t.Fatalf("answer %q", line)
		}
		seen[id] = true
	}
	// 10 requests, 2 at a time, 20 ms each: at least 100 ms.
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("10 requests took %s, want at least 100ms", d)
	}
	if len(seen) != n {
		t.Errorf("answers to %d ids, want %d", len(seen), n)
	}
	if got := u.takePeak(); got < 2 || got > n {
		t.Errorf("peak in flight %d, want 2 to %d", got, n)
	}
	if got := u.inFlight.Load(); got != 0 {
		t.Errorf("in flight after every answer: %d", got)
	}
	if got := u.takePeak(); got != 0 {
		t.Errorf("peak of an idle period: %d", got)
	}
	if u.received.Load() != n || u.answered.Load() != n {
		t.Errorf("received %d, answered %d, want %d", u.received.Load(), u.answered.Load(), n)
	}
}

// TestWalletThroughRelay runs an honest wallet, with its clientproxy and
// relay, straight against the fast upstream: every request gets a result,
// and the proxy, started free, mints nothing.
func TestWalletThroughRelay(t *testing.T) {
	up, err := newUpstream(mix())
	if err != nil {
		t.Fatal(err)
	}
	defer up.close()
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	res := runWallet(ctx, walletConfig{server: up.addr(), ip: "127.0.0.3", resource: "test.example:1", rate: 50, seed: 1, grace: 5 * time.Second}, time.Now())
	if res.err != nil || res.failures() > 0 {
		t.Fatalf("wallet: %v, %d errors, %d unanswered; first %s", res.err, res.errors, res.unanswered, res.firstError)
	}
	if res.sent < 10 || res.results != res.sent {
		t.Errorf("sent %d, results %d", res.sent, res.results)
	}
	if res.proxy.Mints != 0 {
		t.Errorf("the proxy minted %d stamps for a free server", res.proxy.Mints)
	}
}

func TestPhaseOfAndQuantile(t *testing.T) {
	ws := []*walletResult{
		{samples: []walletSample{{at: time.Second, latency: 5}, {at: 2 * time.Second, latency: 7}}, errorsAt: []time.Duration{2 * time.Second}},
		{samples: []walletSample{{at: 3 * time.Second, latency: 9}}, unansweredAt: []time.Duration{time.Second}},
	}
	p := phaseOf("x", ws, time.Second, 3*time.Second)
	if p.results != 2 || p.errors != 1 || p.unanswered != 1 || p.sent != 4 || p.p99 != 7 || p.p50 != 5 {
		t.Errorf("phase %+v", p)
	}
	if got := quantile([]int64{5, 1, 4, 2, 3}, 0.5); got != 3 {
		t.Errorf("median of 1..5 = %d", got)
	}
	if got := quantile([]int64{5, 1, 4, 2, 3}, 1); got != 5 {
		t.Errorf("max of 1..5 = %d", got)
	}
	if lo, hi := spreadOf([]float64{1.2, 0.9, 1.0}); lo != 0.9 || hi != 1.2 {
		t.Errorf("spread %g–%g", lo, hi)
	}
}

func TestManyReportFlagsFailures(t *testing.T) {
	mc := manyConfig{networks: 30, share: 0.8, budget: 20, maxInFlight: 40, workers: 4, delay: 20 * time.Millisecond, window: 64,
		honest: 1, honestRate: 5, warmup: time.Second, baseline: time.Second, duration: 6 * time.Second, after: time.Second, nice: 19}
	w := &walletResult{ip: "127.0.0.3", sent: 10, errors: 2, firstError: "refused", errorsAt: []time.Duration{3 * time.Second, 4 * time.Second}}
	s := manySummary{capacity: 200, offered: 480, upP95: 80, upAbove: 0.2, networksAbove: 1, wallets: []*walletResult{w}}
	rep := formatManyReport(mc, "m", "c", s, []manySecond{{GlobalLevel: 3}}, nil, map[string]int64{"insufficient": 4}, 0)
	for _, want := range []string{"| … ÷ upstream capacity (200/s) | 2.40 |", "held under: missed", "| 1 | 0: missed |",
		"| honest requests answered with a result | 8 of 10 (80.00%) | 100%: missed |", "insufficient 4", "Honest wallet 127.0.0.3: 2 errors"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
}

func TestFreeReportRatios(t *testing.T) {
	var runs []freeRun
	for round, rb := range []float64{100, 200, 300} {
		runs = append(runs,
			freeRun{round: round + 1, part: partSaturated, path: 'b', rate: rb, p50: time.Millisecond, p99: 2 * time.Millisecond, caddyCPU: 4},
			freeRun{round: round + 1, part: partSaturated, path: 'c', rate: rb * (0.8 + 0.1*float64(round)), p50: time.Millisecond, p99: 2 * time.Millisecond, caddyCPU: 5})
	}
	rep := formatFreeReport(freeConfig{conns: 16, rounds: 3}, "m", "c", runs)
	for _, want := range []string{"| saturated | req/s | 200.0 | 180.0 | 0.90 [0.80–1.00] |", "| saturated | caddy CPU µs/req | 4.0 | 5.0 | 1.25 [1.25–1.25] | +1.0 |",
		"(goal 0: met)"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
}
