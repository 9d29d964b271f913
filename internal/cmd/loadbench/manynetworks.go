package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// The many-network flood (-many-networks N): scenario 2 of moving prices.
// N flooder networks (127.0.1.1, .2, …; ipv4_prefix 32) each send at most
// -many-share of their network_budget, paying the price the latest refusal
// named as in -paying-flood, so that no network's own level ever rises;
// together they offer more than the upstream serves. The upstream is slow:
// -many-upstream-workers workers each hold a request -many-upstream-delay,
// first come first served, so it serves workers/delay requests a second and
// a queue grows behind it. Caddy runs with max_in_flight, the global level
// from requests forwarded and not yet answered. Honest wallets, each behind
// its own clientproxy (package client, started free) and on its own
// network, pipeline the Electrum mix at a modest rate: alone, then through
// the flood, then after it. The run fails if an honest request ever gets
// anything but a result.

// manyConfig is what a many-network run measures.
type manyConfig struct {
	caddyBin    string
	networks    int     // flooder networks, one connection each
	share       float64 // of network_budget each flooder network spends
	budget      float64 // network_budget
	maxInFlight int     // max_in_flight
	workers     int     // the upstream's workers
	delay       time.Duration
	window      int // most unanswered lines per flooder connection
	honest      int // honest wallets
	honestRate  float64
	warmup      time.Duration
	baseline    time.Duration // honest wallets alone
	duration    time.Duration // the flood
	after       time.Duration // honest wallets after the flood
	nice        int
}

// manyResource is the resource of the many-network server.
const manyResource = "many.loadbench.example:50002"

// The addresses of a many-network run: flooder network i is 127.0.1.(1+i),
// honest wallet i 127.0.0.(firstHonestIP+i).
func manyFlooderIP(i int) string { return fmt.Sprintf("127.0.1.%d", 1+i) }
func honestWalletIP(i int) string {
	return fmt.Sprintf("127.0.0.%d", firstHonestIP+i)
}

// manyCaddyConfig returns the Caddy JSON config: the admin endpoint at
// admin (for GET /hashcash/prices), and one layer-4 server at listen,
// hashcash free while calm with max_in_flight, then proxy to upstream.
func manyCaddyConfig(listen, admin, upstream string, mc manyConfig) map[string]any {
	proxy := map[string]any{"handler": "proxy", "upstreams": []any{map[string]any{"dial": []string{upstream}}}}
	hashcash := map[string]any{
		"handler": "hashcash", "resource": manyResource, "price": 0,
		"network_budget": mc.budget, "max_in_flight": mc.maxInFlight, "ipv4_prefix": 32,
	}
	return map[string]any{
		"admin":   map[string]any{"listen": admin, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{"layer4": map[string]any{"servers": map[string]any{
			"many": map[string]any{"listen": []string{listen}, "routes": []any{map[string]any{"handle": []any{hashcash, proxy}}}},
		}}},
	}
}

// adminPrices is the part of GET /hashcash/prices a run reads, per resource.
type adminPrices struct {
	GlobalLevel int `json:"global_level"`
	InFlight    int `json:"in_flight"`
	Tracked     int `json:"networks_tracked"`
	Networks    []struct {
		Prefix    string `json:"prefix"`
		Level     int    `json:"level"`
		Effective int    `json:"effective_level"`
	} `json:"networks_above_calm"`
}

// pollPrices asks caddy's admin endpoint for resource's prices.
func pollPrices(hc *http.Client, admin, resource string) (adminPrices, error) {
	resp, err := hc.Get("http://" + admin + "/hashcash/prices")
	if err != nil {
		return adminPrices{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return adminPrices{}, fmt.Errorf("GET /hashcash/prices: %s: %s", resp.Status, b)
	}
	var all map[string]adminPrices
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return adminPrices{}, fmt.Errorf("GET /hashcash/prices: %w", err)
	}
	return all[resource], nil // the zero value until the first tick
}

// manySecond is one second of a many-network run, from the honest
// wallets' start.
type manySecond struct {
	GlobalLevel   int     // from the admin endpoint, at the latest price tick
	CaddyInFlight int     // the pressure signal caddy saw at that tick
	NetworksAbove int     // networks whose own level is above calm
	UpPeak        int64   // the most requests in flight at the upstream
	UpMean        float64 // the mean of samples every 10 ms
	UpAnswered    int64   // answers the upstream wrote
	UpReceived    int64   // requests the upstream read: what caddy forwarded
	adminErr      string
}

// upstreamSampler samples a slow upstream's in-flight count every 10 ms.
type upstreamSampler struct {
	mu      sync.Mutex
	samples []int64 // every sample, in order
	sum     int64
	n       int64
}

func (s *upstreamSampler) add(v int64) {
	s.mu.Lock()
	s.samples = append(s.samples, v)
	s.sum += v
	s.n++
	s.mu.Unlock()
}

// take returns the mean since the last take.
func (s *upstreamSampler) take() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := 0.0
	if s.n > 0 {
		m = float64(s.sum) / float64(s.n)
	}
	s.sum, s.n = 0, 0
	return m
}

// manySummary is the figures of a many-network run.
type manySummary struct {
	capacity      float64 // the upstream's requests a second: workers/delay
	offered       float64 // the flood's requests a second at most
	floodFirst    float64 // flood accepted/s over its first 3 s
	floodLast     float64 // mean over the flood's last half
	maxGlobal     int
	firstRise     int // seconds into the flood of the first global level above 0; -1: none
	backToCalm    int // seconds after the flood's end when the global level was 0 again; -1: not within the run
	networksAbove int // the most networks whose own level was above calm at one tick
	upMedian      int64
	upP95         int64
	upMax         int64   // over the flood's last half
	upAbove       float64 // share of the last half's samples above max_in_flight
	upMaxWhole    int64   // over the whole flood
	phases        [3]walletPhase
	wallets       []*walletResult
}

// walletPhase is the honest wallets' figures over one phase.
type walletPhase struct {
	name               string
	sent, results      int
	p50, p99           time.Duration
	errors, unanswered int // of the requests sent in the phase
}

// phaseOf summarizes the wallets' requests sent in [from, to).
func phaseOf(name string, ws []*walletResult, from, to time.Duration) walletPhase {
	p := walletPhase{name: name}
	var ds []time.Duration
	for _, w := range ws {
		for _, s := range w.samples {
			if s.at >= from && s.at < to {
				ds = append(ds, s.latency)
			}
		}
		for _, at := range w.errorsAt {
			if at >= from && at < to {
				p.errors++
			}
		}
		for _, at := range w.unansweredAt {
			if at >= from && at < to {
				p.unanswered++
			}
		}
	}
	p.results = len(ds)
	p.sent = p.results + p.errors + p.unanswered
	p.p50, p.p99 = percentile(ds, 0.5), percentile(ds, 0.99)
	return p
}

// quantile returns the q-quantile of xs by nearest rank, or 0 for none.
func quantile(xs []int64, q float64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// manyNetworksBench runs the scenario and returns its report, a failure
// (an honest request that got no result, or a flooder network whose own
// level rose) and an error (the run could not be made).
func manyNetworksBench(mc manyConfig, log io.Writer) (string, error, error) {
	runtime.GOMAXPROCS(max(16, 4*runtime.NumCPU()))
	up, err := newSlowUpstream(mix(), mc.workers, mc.delay)
	if err != nil {
		return "", nil, err
	}
	defer up.close()
	addr, err := testsupport.FindFreeAddr("127.0.0.1")
	if err != nil {
		return "", nil, err
	}
	admin, err := testsupport.FindFreeAddr("127.0.0.1")
	if err != nil {
		return "", nil, err
	}
	machineLine := machine()
	srv, err := startCaddy(mc.caddyBin, manyCaddyConfig(addr, admin, up.addr(), mc))
	if err != nil {
		return "", nil, err
	}
	defer srv.stop()
	fmt.Fprintf(log, "loadbench: %s\nloadbench: caddy %s\n", machineLine, srv.describe())
	hc := &http.Client{Timeout: 2 * time.Second}
	if err := testsupport.AwaitListening(context.Background(), admin, 10*time.Second, nil); err != nil {
		return "", nil, fmt.Errorf("caddy's admin endpoint: %w", err)
	}

	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wallets := make([]*walletResult, mc.honest)
	var hwg sync.WaitGroup
	for i := range wallets {
		wc := walletConfig{server: addr, ip: honestWalletIP(i), resource: manyResource, rate: mc.honestRate,
			seed: uint64(i + 1), grace: 30 * time.Second}
		hwg.Go(func() { wallets[i] = runWallet(ctx, wc, start) })
	}

	// The sampler: every 10 ms the upstream's in-flight count; every
	// second the admin endpoint.
	var (
		secMu   sync.Mutex
		seconds []manySecond
		sampler upstreamSampler
	)
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	var swg sync.WaitGroup
	swg.Go(func() {
		t10 := time.NewTicker(10 * time.Millisecond)
		defer t10.Stop()
		nextSecond := start.Add(time.Second)
		var answered, received int64
		for {
			select {
			case <-sctx.Done():
				return
			case now := <-t10.C:
				sampler.add(up.inFlight.Load())
				if now.Before(nextSecond) {
					continue
				}
				nextSecond = nextSecond.Add(time.Second)
				s := manySecond{UpPeak: up.takePeak(), UpMean: sampler.take()}
				a := up.answered.Load()
				s.UpAnswered, answered = a-answered, a
				rc := up.received.Load()
				s.UpReceived, received = rc-received, rc
				if p, err := pollPrices(hc, admin, manyResource); err != nil {
					s.adminErr = err.Error()
				} else {
					s.GlobalLevel, s.CaddyInFlight = p.GlobalLevel, p.InFlight
					for _, n := range p.Networks {
						if n.Level > 0 {
							s.NetworksAbove++
						}
					}
				}
				secMu.Lock()
				seconds = append(seconds, s)
				i := len(seconds)
				secMu.Unlock()
				fmt.Fprintf(log, "loadbench: second %3d: global level %2d, caddy in flight %4d, upstream in flight peak %4d mean %6.1f, received %4d, answered %4d, networks above calm %d\n",
					i, s.GlobalLevel, s.CaddyInFlight, s.UpPeak, s.UpMean, s.UpReceived, s.UpAnswered, s.NetworksAbove)
			}
		}
	})

	aloneFrom, floodFrom := mc.warmup, mc.warmup+mc.baseline
	fmt.Fprintf(log, "loadbench: %d honest wallets alone for %s (after %s warm-up)\n", mc.honest, mc.baseline, mc.warmup)
	time.Sleep(time.Until(start.Add(floodFrom)))

	fmt.Fprintf(log, "loadbench: flooding from %d networks for %s\n", mc.networks, mc.duration)
	interval := time.Duration(float64(time.Second) / (mc.share * mc.budget / payingCost))
	plan := &manyFloodPlan{Addr: addr, Resource: manyResource, Interval: interval, Window: mc.window, Duration: mc.duration}
	for i := range mc.networks {
		plan.IPs = append(plan.IPs, manyFlooderIP(i))
	}
	floodStart := time.Now()
	child, err := startManyFlooders(plan, mc.nice, func(l manyFloodLine) {
		fmt.Fprintf(log, "loadbench: flood second %3d: accepted %4d refused %4d\n", l.Second, l.Accepted, l.Refused)
	})
	if err != nil {
		return "", nil, err
	}
	final, ferr := child.wait(mc.duration + 10*time.Second)
	floodEnd := time.Since(start)
	fmt.Fprintf(log, "loadbench: flood over; honest wallets for %s more\n", mc.after)
	time.Sleep(time.Until(start.Add(floodEnd + mc.after)))
	cancel()
	hwg.Wait()
	scancel()
	swg.Wait()
	if ferr != nil {
		return "", nil, ferr
	}

	floodFromSec := int(floodStart.Sub(start) / time.Second)
	sum := manySummary{capacity: float64(mc.workers) / mc.delay.Seconds(), offered: float64(mc.networks) / interval.Seconds(),
		firstRise: -1, backToCalm: -1, wallets: wallets}
	// Flood accepted per second of the flood, over every network.
	secs := int(mc.duration / time.Second)
	per := make([]float64, secs)
	for k := 0; k < secs && k < len(final.Seconds); k++ {
		per[k] = float64(final.Seconds[k].Accepted)
	}
	reasons := final.Reasons
	if secs >= 3 {
		sum.floodFirst = (per[0] + per[1] + per[2]) / 3
	}
	sum.floodLast = meanLastHalf(per)
	for i, s := range seconds {
		sum.maxGlobal = max(sum.maxGlobal, s.GlobalLevel)
		if i >= floodFromSec && s.GlobalLevel > 0 && sum.firstRise < 0 {
			sum.firstRise = i - floodFromSec
		}
		sum.networksAbove = max(sum.networksAbove, s.NetworksAbove)
	}
	floodEndSec := int(math.Ceil(floodEnd.Seconds()))
	for i := floodEndSec; i < len(seconds); i++ {
		if seconds[i].GlobalLevel == 0 {
			sum.backToCalm = i - floodEndSec
			break
		}
	}
	// The upstream's in flight: 10 ms samples over the flood's last half.
	sampler.mu.Lock()
	all := slices.Clone(sampler.samples)
	sampler.mu.Unlock()
	from10 := int((floodStart.Sub(start) + mc.duration/2) / (10 * time.Millisecond))
	to10 := int(floodEnd / (10 * time.Millisecond))
	whole10 := int(floodStart.Sub(start) / (10 * time.Millisecond))
	if to10 > len(all) {
		to10 = len(all)
	}
	if from10 < to10 {
		last := all[from10:to10]
		sum.upMedian, sum.upP95, sum.upMax = quantile(last, 0.5), quantile(last, 0.95), quantile(last, 1)
		above := 0
		for _, v := range last {
			if v > int64(mc.maxInFlight) {
				above++
			}
		}
		sum.upAbove = float64(above) / float64(len(last))
	}
	if whole10 < to10 {
		sum.upMaxWhole = quantile(all[whole10:to10], 1)
	}
	floodAt := floodStart.Sub(start)
	sum.phases = [3]walletPhase{
		phaseOf("alone", wallets, aloneFrom, floodAt),
		phaseOf("flood", wallets, floodAt, floodEnd),
		phaseOf("after", wallets, floodEnd, floodEnd+mc.after),
	}
	var failure error
	for _, w := range wallets {
		if w.failures() > 0 && failure == nil {
			failure = fmt.Errorf("honest wallet %s: %d errors, %d unanswered, connection: %v; first error: %s", w.ip, w.errors, w.unanswered, w.err, w.firstError)
		}
	}
	if failure == nil && sum.networksAbove > 0 {
		failure = errors.New("a network's own level rose above calm: a flooder network spent more than its budget")
	}
	return formatManyReport(mc, machineLine, srv.describe(), sum, seconds, per, reasons, floodFromSec), failure, nil
}

// formatManyReport writes a many-network run as Markdown.
func formatManyReport(mc manyConfig, machineLine, caddyLine string, s manySummary, seconds []manySecond, per []float64, reasons map[string]int64, floodFromSec int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s\n\n", machineLine)
	fmt.Fprintf(&b, "Caddy: %s. Hashcash: price 0, network_budget %g, max_in_flight %d, ipv4_prefix 32, other options at their defaults "+
		"(price_step 2^14, max_price 2^26, price_tick 1s, calm_ticks 5, price_tolerance 10s). "+
		"Upstream: %d workers, each holding a request %s, first come first served: %.0f requests a second. "+
		"Flood: %d networks (127.0.1.1 and up), one connection each, each sending %s (cost %.1f) at most %.0f%% of its budget "+
		"(%.1f a second, %.0f in all), minting at the price the latest refusal named on a thread at niceness %d. "+
		"Honest: %d wallets (127.0.0.%d and up), each behind its own clientproxy (package client, started free), pipelining the Electrum mix at %g requests a second: "+
		"%s warm-up, %s alone, %s with the flood, %s after.\n\n",
		caddyLine, mc.budget, mc.maxInFlight, mc.workers, mc.delay, s.capacity, mc.networks, payingMethod, payingCost, 100*mc.share,
		s.offered/float64(mc.networks), s.offered, mc.nice, mc.honest, firstHonestIP, mc.honestRate, mc.warmup, mc.baseline, mc.duration, mc.after)
	never := func(v int, what string) string {
		if v < 0 {
			return what
		}
		return fmt.Sprintf("%d s", v)
	}
	b.WriteString("| figure | value | goal |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| flood offered, requests/s | %.0f | – |\n", s.offered)
	fmt.Fprintf(&b, "| … ÷ upstream capacity (%.0f/s) | %.2f | > 1 (saturating) |\n", s.capacity, s.offered/s.capacity)
	fmt.Fprintf(&b, "| flood answers/s, first 3 s | %.0f | – |\n", s.floodFirst)
	fmt.Fprintf(&b, "| flood answers/s, mean of the flood's last half | %.1f | – |\n", s.floodLast)
	fmt.Fprintf(&b, "| highest global level | %d | – |\n", s.maxGlobal)
	fmt.Fprintf(&b, "| first global rise, from the flood's start | %s | – |\n", never(s.firstRise, "none"))
	fmt.Fprintf(&b, "| global level back to 0, from the flood's end | %s | – |\n", never(s.backToCalm, "not within the run"))
	fmt.Fprintf(&b, "| upstream in flight, flood's last half: median / p95 / max (10 ms samples) | %d / %d / %d | – |\n", s.upMedian, s.upP95, s.upMax)
	fmt.Fprintf(&b, "| … share of samples above max_in_flight (%d) | %.1f%% | held under: %s |\n", mc.maxInFlight, 100*s.upAbove, verdict(s.upP95 <= int64(mc.maxInFlight)))
	fmt.Fprintf(&b, "| upstream in flight, whole flood: max | %d | – |\n", s.upMaxWhole)
	fmt.Fprintf(&b, "| most networks above calm by their own level, at one tick | %d | 0: %s |\n", s.networksAbove, verdict(s.networksAbove == 0))
	var sent, failed int
	for _, w := range s.wallets {
		sent += w.sent
		failed += w.failures()
	}
	rate := 100.0
	if sent > 0 {
		rate = 100 * float64(sent-failed) / float64(sent)
	}
	fmt.Fprintf(&b, "| honest requests answered with a result | %d of %d (%.2f%%) | 100%%: %s |\n", sent-failed, sent, rate, verdict(failed == 0))
	for _, p := range s.phases {
		fmt.Fprintf(&b, "| honest p50 / p99, %s (%d results, %d errors, %d unanswered) | %.1f / %.1f ms | – |\n", p.name, p.results, p.errors, p.unanswered, ms(p.p50), ms(p.p99))
	}
	if a := s.phases[0]; a.p99 > 0 {
		fmt.Fprintf(&b, "| honest p99 under flood ÷ alone | %.1f | – |\n", float64(s.phases[1].p99)/float64(a.p99))
	}
	var ps struct{ mints, retried, gaveUp, hashes uint64 }
	var mint time.Duration
	for _, w := range s.wallets {
		ps.mints += w.proxy.Mints
		ps.retried += w.proxy.Retried
		ps.gaveUp += w.proxy.GaveUp
		ps.hashes += w.proxy.Hashes
		mint += w.proxy.MintTime
	}
	mean := time.Duration(0)
	if ps.mints > 0 {
		mean = mint / time.Duration(ps.mints)
	}
	fmt.Fprintf(&b, "| honest clientproxies: stamps minted, resends, gave up | %d, %d, %d | gave up 0 |\n", ps.mints, ps.retried, ps.gaveUp)
	fmt.Fprintf(&b, "| … mean minting time | %.1f ms | – |\n", ms(mean))
	if len(reasons) > 0 {
		b.WriteString("\nThe flood's refusals by reason:")
		for i, k := range slices.Sorted(maps.Keys(reasons)) {
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(&b, "%s %s %d", sep, k, reasons[k])
		}
		b.WriteString(".\n")
	}
	for _, w := range s.wallets {
		if w.failures() > 0 {
			fmt.Fprintf(&b, "\nHonest wallet %s: %d errors, %d unanswered, connection: %v; first error: %s; errors for requests sent at %v\n",
				w.ip, w.errors, w.unanswered, w.err, w.firstError, w.errorsAt)
		}
	}
	b.WriteString("\nPer second from the honest wallets' start (flood: the seconds marked *). Global level and caddy in flight: the admin endpoint's, as of the latest price tick. " +
		"Upstream: the most requests in flight and the mean of 10 ms samples, requests received (what caddy forwarded) and answered. " +
		"Flood answers: accepted requests whose answer reached the flooders that second (late while the upstream's queue is long). " +
		"Honest: the wallets' requests sent that second, with results and errors, and the p99 of their latency.\n\n")
	b.WriteString("| second | global level | caddy in flight | upstream in flight peak | mean | upstream received | answered | flood answers | honest sent | errors | honest p99 ms |\n" +
		"|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, sec := range seconds {
		mark := ""
		k := i - floodFromSec
		acc := "–"
		if k >= 0 && k < len(per) {
			mark = "*"
			acc = fmt.Sprintf("%.0f", per[k])
		}
		h := phaseOf("", s.wallets, time.Duration(i)*time.Second, time.Duration(i+1)*time.Second)
		fmt.Fprintf(&b, "| %d%s | %d | %d | %d | %.0f | %d | %d | %s | %d | %d | %.0f |\n", i+1, mark, sec.GlobalLevel, sec.CaddyInFlight,
			sec.UpPeak, sec.UpMean, sec.UpReceived, sec.UpAnswered, acc, h.sent, h.errors+h.unanswered, ms(h.p99))
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// addManyNetworksFlags defines the flags of -many-networks.
func addManyNetworksFlags(mc *manyConfig) {
	flag.Float64Var(&mc.share, "many-share", 0.8, "many networks: the share of network_budget each flooder network spends")
	flag.Float64Var(&mc.budget, "many-budget", 20, "many networks: the handler's network_budget")
	flag.IntVar(&mc.maxInFlight, "many-max-in-flight", 40, "many networks: the handler's max_in_flight")
	flag.IntVar(&mc.workers, "many-upstream-workers", 4, "many networks: requests the upstream serves at once")
	flag.DurationVar(&mc.delay, "many-upstream-delay", 20*time.Millisecond, "many networks: how long the upstream holds each request")
	flag.IntVar(&mc.window, "many-window", 64, "many networks: most unanswered lines per flooder connection")
	flag.IntVar(&mc.honest, "many-honest", 4, "many networks: honest wallets, each behind its own clientproxy on its own network")
	flag.Float64Var(&mc.honestRate, "many-honest-rate", 5, "many networks: requests/s per honest wallet")
	flag.DurationVar(&mc.warmup, "many-warmup", 2*time.Second, "many networks: time before the honest wallets are measured")
	flag.DurationVar(&mc.baseline, "many-baseline", 10*time.Second, "many networks: time the honest wallets are measured alone")
	flag.DurationVar(&mc.duration, "many-duration", 60*time.Second, "many networks: time of the flood")
	flag.DurationVar(&mc.after, "many-after", 30*time.Second, "many networks: time the honest wallets go on after the flood")
	flag.IntVar(&mc.nice, "many-nice", 19, "many networks: niceness of the flooders' minting threads")
}

// runManyNetworksMain checks the many-network flags, runs it, prints its
// report and returns the exit status.
func runManyNetworksMain(mc manyConfig, out string) int {
	if mc.networks < 1 || mc.networks > 254 || mc.share <= 0 || mc.budget <= 0 || mc.maxInFlight < 1 || mc.workers < 1 || mc.delay <= 0 ||
		mc.window < 1 || mc.honest < 1 || mc.honest > 250 || mc.honestRate <= 0 || mc.warmup <= 0 || mc.baseline <= 0 ||
		mc.duration < 6*time.Second || mc.after < 0 || mc.nice < 0 || mc.nice > 19 {
		fmt.Fprintln(os.Stderr, "loadbench: -many-networks must be 1 to 254, -many-honest 1 to 250, -many-share, -many-budget, -many-max-in-flight, "+
			"-many-upstream-workers, -many-upstream-delay, -many-window, -many-honest-rate and the durations positive, -many-duration at least 6s, -many-nice 0 to 19")
		return 2
	}
	report, failure, err := manyNetworksBench(mc, os.Stderr)
	return finishReport(report, failure, err, out)
}
