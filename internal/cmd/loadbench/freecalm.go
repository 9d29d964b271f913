package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// Free while calm (-free-calm): scenario 3 of moving prices. The same
// honest workload through (b) caddy with the proxy handler only and (c)
// caddy with hashcash at calm price 0 (network_budget set), then proxy:
// at price 0 a request within its network's budget needs no stamp, so what
// the handler costs is the scan of each line and the meter. Three parts,
// each run through (b) and then (c) in every round:
//
//   - saturated: -free-conns connections of the Electrum mix, unstamped as
//     an unmodified wallet sends it, each connection from its own network,
//     every window full, for the most requests a second and caddy's CPU
//     time per request. Their hashcash server has a network_budget no
//     network reaches (its meters run, its levels never rise) and a
//     max_in_flight never reached (its in-flight count runs);
//   - paced: the same connections offering -free-pace requests a second
//     in all, for latency when caddy is not overloaded;
//   - wallets: -free-wallets honest wallets, each behind its own
//     clientproxy (package client, started free) on its own network, as in
//     -many-networks, through a hashcash server configured as
//     Caddyfile.example recommends (network_budget 20, max_in_flight 200);
//     no request may get anything but a result, and clientproxy must mint
//     nothing.

// freeConfig is what a free-while-calm run measures.
type freeConfig struct {
	caddyBin       string
	conns          int
	window         int
	warmup         time.Duration
	duration       time.Duration
	pace           float64
	wallets        int
	walletRate     float64
	walletDuration time.Duration
	rounds         int
}

// The resources of the free-while-calm servers.
const (
	freeResource       = "free.loadbench.example:50002"
	freeWalletResource = "wallets.loadbench.example:50002"
)

// freeCaddyConfig returns the Caddy JSON config: (b) at plainAddr; (c) for
// the saturated and paced parts at calmAddr, and for the wallets at
// walletAddr.
func freeCaddyConfig(plainAddr, calmAddr, walletAddr, upstream string) map[string]any {
	proxy := map[string]any{"handler": "proxy", "upstreams": []any{map[string]any{"dial": []string{upstream}}}}
	calm := map[string]any{
		"handler": "hashcash", "resource": freeResource, "price": 0, "ipv4_prefix": 32,
		"network_budget": 1e9, "max_in_flight": 1 << 30, "max_conns_per_prefix": -1,
	}
	wallets := map[string]any{
		"handler": "hashcash", "resource": freeWalletResource, "price": 0, "ipv4_prefix": 32,
		"network_budget": 20, "network_burst": 500, "max_in_flight": 200,
	}
	server := func(listen string, handlers ...any) map[string]any {
		return map[string]any{"listen": []string{listen}, "routes": []any{map[string]any{"handle": handlers}}}
	}
	return map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{"layer4": map[string]any{"servers": map[string]any{
			"plain":   server(plainAddr, proxy),
			"calm":    server(calmAddr, calm, proxy),
			"wallets": server(walletAddr, wallets, proxy),
		}}},
	}
}

// freeConnIP is the address connection i of the saturated and paced parts
// dials from: a network of its own (ipv4_prefix 32).
func freeConnIP(i int) net.IP { return net.IPv4(127, 0, 3, byte(1+i%250)) }

// freePart names the parts of a free-while-calm run.
const (
	partSaturated = "saturated"
	partPaced     = "paced"
	partWallets   = "wallets"
)

// freeRun is one part through one path in one round.
type freeRun struct {
	round    int
	part     string
	path     byte // 'b' or 'c'
	rate     float64
	p50, p99 time.Duration
	caddyCPU float64 // µs per request, or -1 if caddy runs in this process
	refused  int     // answers that are not results
	mints    uint64  // stamps the wallets' clientproxies minted
	failure  string  // the first wallet failure
}

// freeCalmBench runs the scenario and returns its report, a failure (an
// answer that is not a result, or a stamp minted) and an error.
func freeCalmBench(fc freeConfig, log io.Writer) (string, error, error) {
	up, err := newUpstream(mix())
	if err != nil {
		return "", nil, err
	}
	defer up.close()
	var addrs [3]string
	for i := range addrs {
		if addrs[i], err = testsupport.FindFreeAddr("127.0.0.1"); err != nil {
			return "", nil, err
		}
	}
	plainAddr, calmAddr, walletAddr := addrs[0], addrs[1], addrs[2]
	machineLine := machine()
	srv, err := startCaddy(fc.caddyBin, freeCaddyConfig(plainAddr, calmAddr, walletAddr, up.addr()))
	if err != nil {
		return "", nil, err
	}
	defer srv.stop()
	fmt.Fprintf(log, "loadbench: %s\nloadbench: caddy %s\n", machineLine, srv.describe())

	pools, err := buildPools(fc.conns, 4096, nil, newPicker(mix()), 3)
	if err != nil {
		return "", nil, err
	}
	cfg := config{window: fc.window, batch: 1, warmup: fc.warmup, duration: fc.duration, localIP: freeConnIP}
	var runs []freeRun
	record := func(r freeRun) {
		runs = append(runs, r)
		fmt.Fprintf(log, "loadbench: round %d %-9s %-26s %7.0f req/s  p50 %7.0f µs  p99 %7.0f µs  caddy %5.1f µs CPU/req  refused %d  minted %d  load %s\n",
			r.round, r.part, pathNames[r.path], r.rate, micros(r.p50), micros(r.p99), r.caddyCPU, r.refused, r.mints, loadAverage())
	}
	caddyPerReq := func(cpu time.Duration, n int) float64 {
		if cpu < 0 || n == 0 {
			return -1
		}
		return micros(cpu) / float64(n)
	}
	for round := 1; round <= fc.rounds; round++ {
		for _, paced := range []bool{false, true} {
			var interval time.Duration
			part := partSaturated
			if paced {
				interval = time.Duration(float64(fc.conns) / fc.pace * float64(time.Second))
				part = partPaced
			}
			for _, path := range []byte("bc") {
				addr := plainAddr
				if path == 'c' {
					addr = calmAddr
				}
				m, err := measure(path, addr, pools, true, interval, cfg, fc.conns, srv)
				if err != nil {
					return "", nil, fmt.Errorf("%s, %s: %w", part, pathNames[path], err)
				}
				record(freeRun{round: round, part: part, path: path, rate: m.summary.rate(), p50: m.summary.p50, p99: m.summary.p99,
					caddyCPU: caddyPerReq(m.caddyCPU, m.summary.requests), refused: m.summary.errors, failure: m.summary.firstError})
			}
		}
		for _, path := range []byte("bc") {
			addr := plainAddr
			if path == 'c' {
				addr = walletAddr
			}
			r, err := freeWallets(fc, addr, srv, round)
			if err != nil {
				return "", nil, err
			}
			r.path = path
			record(r)
		}
	}
	var failure error
	for _, r := range runs {
		if r.refused > 0 || r.mints > 0 {
			failure = fmt.Errorf("round %d, %s, %s: %d answers not results, %d stamps minted; first: %s", r.round, r.part, pathNames[r.path], r.refused, r.mints, r.failure)
			break
		}
	}
	return formatFreeReport(fc, machineLine, srv.describe(), runs), failure, nil
}

// freeWallets runs the honest wallets through addr for fc.walletDuration.
func freeWallets(fc freeConfig, addr string, srv caddyServer, round int) (freeRun, error) {
	r := freeRun{round: round, part: partWallets}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), fc.warmup+fc.walletDuration)
	defer cancel()
	wallets := make([]*walletResult, fc.wallets)
	var wg sync.WaitGroup
	for i := range wallets {
		wc := walletConfig{server: addr, ip: honestWalletIP(i), resource: freeWalletResource, rate: fc.walletRate,
			seed: uint64(round*1000 + i), grace: 10 * time.Second}
		wg.Go(func() { wallets[i] = runWallet(ctx, wc, start) })
	}
	// Caddy's CPU over the measured part only.
	time.Sleep(fc.warmup)
	cpu0 := srv.cpu()
	<-ctx.Done()
	cpu1 := srv.cpu()
	wg.Wait()
	p := phaseOf(partWallets, wallets, fc.warmup, fc.warmup+fc.walletDuration)
	r.rate = float64(p.results) / fc.walletDuration.Seconds()
	r.p50, r.p99 = p.p50, p.p99
	r.caddyCPU = -1
	if cpu0 >= 0 && cpu1 >= 0 && p.results > 0 {
		r.caddyCPU = micros(cpu1-cpu0) / float64(p.results)
	}
	for _, w := range wallets {
		r.refused += w.failures()
		r.mints += w.proxy.Mints
		if w.failures() > 0 && r.failure == "" {
			r.failure = fmt.Sprintf("wallet %s: %d errors, %d unanswered, connection: %v; first error: %s", w.ip, w.errors, w.unanswered, w.err, w.firstError)
		}
	}
	return r, nil
}

// formatFreeReport writes a free-while-calm run as Markdown: per part, the
// medians over the rounds of each path's figures and of the per-round
// ratios (c)/(b), with the range of those ratios.
func formatFreeReport(fc freeConfig, machineLine, caddyLine string, runs []freeRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s\n\n", machineLine)
	fmt.Fprintf(&b, "Caddy: %s. (b): proxy only. (c): hashcash at price 0 with network_budget set, then proxy. "+
		"Saturated and paced: %d connections, each from its own network (127.0.3.x, ipv4_prefix 32), the Electrum mix unstamped, "+
		"at most %d unanswered per connection, %s warm-up then %s measured; the hashcash server has network_budget 1e9 and max_in_flight 2^30, "+
		"so its meters and in-flight count run but no level rises; paced runs offer %.0f requests a second in all. "+
		"Wallets: %d honest wallets, each behind its own clientproxy (package client, started free) on its own network, %g requests a second each, "+
		"%s warm-up then %s measured, through hashcash at price 0, network_budget 20, network_burst 500, max_in_flight 200, ipv4_prefix 32. "+
		"Each round runs every part through (b), then (c); medians of %d rounds, and of the ratios within each round (range in brackets).\n\n",
		caddyLine, fc.conns, fc.window, fc.warmup, fc.duration, fc.pace, fc.wallets, fc.walletRate, fc.warmup, fc.walletDuration, fc.rounds)
	type fig struct {
		name string
		f    func(r *freeRun) float64
	}
	figs := []fig{
		{"req/s", func(r *freeRun) float64 { return r.rate }},
		{"p50 µs", func(r *freeRun) float64 { return micros(r.p50) }},
		{"p99 µs", func(r *freeRun) float64 { return micros(r.p99) }},
		{"caddy CPU µs/req", func(r *freeRun) float64 { return r.caddyCPU }},
	}
	b.WriteString("| part | figure | (b) proxy | (c) hashcash, price 0 | (c)/(b) | (c)−(b) |\n|---|---|---:|---:|---:|---:|\n")
	for _, part := range []string{partSaturated, partPaced, partWallets} {
		byRound := map[int][2]*freeRun{}
		for i := range runs {
			r := &runs[i]
			if r.part != part {
				continue
			}
			pair := byRound[r.round]
			pair[r.path-'b'] = r
			byRound[r.round] = pair
		}
		for _, f := range figs {
			var bs, cs, ratios, diffs []float64
			for _, pair := range byRound {
				if pair[0] == nil || pair[1] == nil {
					continue
				}
				vb, vc := f.f(pair[0]), f.f(pair[1])
				if vb < 0 || vc < 0 {
					continue
				}
				bs, cs = append(bs, vb), append(cs, vc)
				if vb > 0 {
					ratios = append(ratios, vc/vb)
				}
				diffs = append(diffs, vc-vb)
			}
			if len(bs) == 0 {
				continue
			}
			lo, hi := spreadOf(ratios)
			fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %.2f [%.2f–%.2f] | %+.1f |\n", part, f.name, median(bs), median(cs), median(ratios), lo, hi, median(diffs))
		}
	}
	var refused int
	var mints uint64
	for _, r := range runs {
		refused += r.refused
		mints += r.mints
	}
	fmt.Fprintf(&b, "\nAnswers that were not results, all parts and paths: %d (goal 0: %s). Stamps the wallets' clientproxies minted: %d (goal 0: %s).\n",
		refused, verdict(refused == 0), mints, verdict(mints == 0))
	for _, r := range runs {
		if r.failure != "" {
			fmt.Fprintf(&b, "\nFirst failure (round %d, %s, %s): %s\n", r.round, r.part, pathNames[r.path], r.failure)
			break
		}
	}
	b.WriteString("\nEvery run:\n\n| round | part | path | req/s | p50 µs | p99 µs | caddy CPU µs/req |\n|---:|---|---|---:|---:|---:|---:|\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| %d | %s | %s | %.0f | %.0f | %.0f | %.1f |\n", r.round, r.part, pathNames[r.path], r.rate, micros(r.p50), micros(r.p99), r.caddyCPU)
	}
	return b.String()
}

// spreadOf returns the least and greatest of xs, or 0, 0 for none.
func spreadOf(xs []float64) (lo, hi float64) {
	for i, x := range xs {
		if i == 0 || x < lo {
			lo = x
		}
		if i == 0 || x > hi {
			hi = x
		}
	}
	return lo, hi
}

// addFreeCalmFlags defines the flags of -free-calm.
func addFreeCalmFlags(fc *freeConfig) {
	flag.IntVar(&fc.conns, "free-conns", 16, "free while calm: connections of the saturated and paced parts, each from its own network")
	flag.IntVar(&fc.window, "free-window", 32, "free while calm: most unanswered requests per connection")
	flag.DurationVar(&fc.warmup, "free-warmup", time.Second, "free while calm: time before each part is measured")
	flag.DurationVar(&fc.duration, "free-duration", 3*time.Second, "free while calm: measuring time of the saturated and paced parts")
	flag.Float64Var(&fc.pace, "free-pace", 2000, "free while calm: requests/s the paced part offers in all")
	flag.IntVar(&fc.wallets, "free-wallets", 8, "free while calm: honest wallets, each behind its own clientproxy on its own network")
	flag.Float64Var(&fc.walletRate, "free-wallet-rate", 10, "free while calm: requests/s per wallet (within network_budget 20)")
	flag.DurationVar(&fc.walletDuration, "free-wallet-duration", 15*time.Second, "free while calm: measuring time of the wallets")
	flag.IntVar(&fc.rounds, "free-rounds", 3, "free while calm: rounds; the report gives medians")
}

// runFreeCalmMain checks the free-while-calm flags, runs it, prints its
// report and returns the exit status.
func runFreeCalmMain(fc freeConfig, out string) int {
	if fc.conns < 1 || fc.conns > 250 || fc.window < 1 || fc.window > 1024 || fc.warmup <= 0 || fc.duration <= 0 || fc.pace <= 0 ||
		fc.wallets < 1 || fc.wallets > 250 || fc.walletRate <= 0 || fc.walletDuration <= 0 || fc.rounds < 1 {
		fmt.Fprintln(os.Stderr, "loadbench: -free-conns and -free-wallets must be 1 to 250, -free-window 1 to 1024, "+
			"-free-pace, -free-wallet-rate, -free-rounds and the durations positive")
		return 2
	}
	report, failure, err := freeCalmBench(fc, os.Stderr)
	return finishReport(report, failure, err, out)
}
