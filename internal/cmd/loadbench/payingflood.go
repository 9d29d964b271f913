package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// The paying flood (-paying-flood): scenario 1 of moving prices. One
// network (127.0.0.2, ipv4_prefix 32) mints valid stamps as fast as it can
// at the price it last learned from a refusal, starting free; honest
// clients on other networks (127.0.0.3, .4, …) send one request at a time
// at a modest rate, unstamped while requests are free. The honest clients
// run alone first, then with the flood. The run fails if an honest request
// is ever refused (which is also how an honest network's price rising above
// calm would show).

// payingFloodConfig is what a paying-flood run measures.
type payingFloodConfig struct {
	caddyBin   string
	budget     float64       // network_budget, cost units/s
	burst      float64       // network_burst
	step       uint64        // price_step
	tick       time.Duration // price_tick
	conns      int           // flooder connections
	window     int           // most unanswered lines per flooder connection
	honest     int           // honest clients, one network each
	honestRate float64       // requests/s per honest client
	warmup     time.Duration
	baseline   time.Duration // honest clients alone
	duration   time.Duration // honest clients and the flood
	nice       int           // niceness of the flooder's minting threads
	idle       bool          // SCHED_IDLE minting threads instead
}

// payingResource is the resource of the paying-flood server.
const payingResource = "paying.loadbench.example:50002"

// payingMethod is the one method every request of the run calls, of cost 1.0.
const (
	payingMethod = "blockchain.scripthash.get_history"
	payingCost   = 1.0
)

// The loopback addresses the networks dial from (ipv4_prefix 32: each its
// own network).
const (
	flooderIP     = "127.0.0.2"
	firstHonestIP = 3 // 127.0.0.3, .4, …
)

// payingCaddyConfig returns the Caddy JSON config: one layer-4 server at
// listen, hashcash with moving prices, then proxy to upstream.
func payingCaddyConfig(listen, upstream string, pc payingFloodConfig) map[string]any {
	proxy := map[string]any{"handler": "proxy", "upstreams": []any{map[string]any{"dial": []string{upstream}}}}
	hashcash := map[string]any{
		"handler": "hashcash", "resource": payingResource, "price": 0,
		"network_budget": pc.budget, "network_burst": pc.burst, "price_step": pc.step,
		"price_tick": pc.tick.String(), "ipv4_prefix": 32, "max_rejections": -1, "max_conns_per_prefix": -1,
	}
	return map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{"layer4": map[string]any{"servers": map[string]any{
			"paying": map[string]any{"listen": []string{listen}, "routes": []any{map[string]any{"handle": []any{hashcash, proxy}}}},
		}}},
	}
}

// reply is the part of a JSON-RPC answer the run looks at.
type reply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    stamp.Rejection `json:"data"`
	} `json:"error"`
}

// priceFromRefusal returns the work a request of cost cost needs after
// refusal r: cost × r.Unit rounded up when the server names a unit (its
// prices move), else r.Price, the price of the refused method.
func priceFromRefusal(r *stamp.Rejection, cost float64) uint64 {
	if r.Unit > 0 {
		return uint64(math.Ceil(cost * float64(r.Unit)))
	}
	return r.Price
}

// quote is what the flooder knows of its price.
type quote struct {
	mu       sync.Mutex
	work     uint64    // work of the next stamps; 0: send none
	level    int       // level of the latest refusal
	nextFall time.Time // when a probe may find a lower price; zero: none
	probing  bool      // a probe is in flight
}

// next returns the work to mint the next request for, and whether it is a
// probe: after next_fall, one token stamp (work 1) whose refusal says the
// price now, or whose acceptance says the level fell to a free calm.
func (q *quote) next(now time.Time) (work uint64, probe bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.probing && !q.nextFall.IsZero() && !now.Before(q.nextFall) && q.work > 0 {
		q.probing, q.nextFall = true, time.Time{}
		return 1, true
	}
	return q.work, false
}

// peek returns the work of the next stamps, without probing.
func (q *quote) peek() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.work
}

// learn takes a refusal's data: a refusal for a missing or insufficient
// stamp names the price now.
func (q *quote) learn(r *stamp.Rejection, probe bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if probe {
		q.probing = false
	}
	switch r.Reason {
	case stamp.ReasonMissing, stamp.ReasonInsufficient:
	default:
		return
	}
	q.work, q.level = priceFromRefusal(r, payingCost), r.Level
	q.nextFall = time.Time{}
	if r.NextFall > 0 && r.Time > 0 {
		q.nextFall = time.Now().Add(time.Duration(r.NextFall-r.Time) * time.Second)
	}
}

// accepted notes that a probe was accepted: requests are free again.
func (q *quote) acceptedProbe() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.probing, q.work, q.level, q.nextFall = false, 0, 0, time.Time{}
}

// floodSecond is what the flooder got in one second of the flood.
type floodSecond struct {
	Accepted int64
	Refused  int64
	Level    int    // highest level a refusal named in the second, or the one before
	Work     uint64 // work of the stamps it was minting at the end of the second
}

// payingFlooder mints and sends the flood, counting per second.
type payingFlooder struct {
	addr string
	ip   string // the address it dials from; flooderIP if empty
	// resource is what its stamps name; payingResource if empty.
	resource string
	start    time.Time
	q        quote
	id       atomic.Int64
	// interval, if positive, is the least time between two requests on
	// one connection: the flooder then sends at most 1/interval a second
	// (a flooder keeping within its network's budget), and never catches
	// up on requests that minting delayed.
	interval time.Duration

	mu              sync.Mutex
	reasons         map[string]int64 // refusals by reason
	seconds         []floodSecond
	firstEscalation time.Duration // since start; 0: none yet
	acceptedBefore  int64         // accepted before the first escalation
	err             error
}

func (f *payingFlooder) second(now time.Time) *floodSecond {
	i := int(now.Sub(f.start) / time.Second)
	for len(f.seconds) <= i {
		f.seconds = append(f.seconds, floodSecond{})
	}
	return &f.seconds[i]
}

func (f *payingFlooder) fail(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

// run floods on one connection until ctx ends. Its minting runs on a
// thread of its own at the priority lower sets (see lowerThread), so that
// the honest clients and caddy, which share the machine's cores with it,
// are scheduled first: the flooder mints with whatever CPU they leave, as
// fast as it can.
func (f *payingFlooder) run(ctx context.Context, window int, lower func() error) {
	m, err := startLowMinter(ctx, lower)
	if err != nil {
		f.fail(fmt.Errorf("flooder: lowering the minting thread's priority: %w", err))
		return
	}
	ip := f.ip
	if ip == "" {
		ip = flooderIP
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.DialContext(ctx, "tcp", f.addr)
	if err != nil {
		f.fail(fmt.Errorf("flooder: %w", err))
		return
	}
	defer c.Close()
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	slots := make(chan struct{}, window)
	var probes sync.Map // id → true for probes in flight
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReaderSize(c, 64<<10)
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return
			}
			var rep reply
			if err := json.Unmarshal(line, &rep); err != nil {
				f.fail(fmt.Errorf("flooder: bad answer %q: %w", line, err))
				return
			}
			_, probe := probes.LoadAndDelete(string(rep.ID))
			now := time.Now()
			f.mu.Lock()
			s := f.second(now)
			if rep.Error == nil {
				s.Accepted++
				if f.firstEscalation == 0 {
					f.acceptedBefore++
				}
			} else {
				s.Refused++
				f.reasons[string(rep.Error.Data.Reason)]++
				s.Level = max(s.Level, rep.Error.Data.Level)
				if rep.Error.Data.Level > 0 && f.firstEscalation == 0 {
					f.firstEscalation = now.Sub(f.start)
				}
			}
			f.mu.Unlock()
			if rep.Error == nil {
				if probe {
					f.q.acceptedProbe()
				}
			} else {
				f.q.learn(&rep.Error.Data, probe)
			}
			<-slots
		}
	}()
	resource := f.resource
	if resource == "" {
		resource = payingResource
	}
	var buf, line []byte
	next := time.Now()
	for ctx.Err() == nil {
		if f.interval > 0 {
			if wait := time.Until(next); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
				}
			}
			next = maxTime(next.Add(f.interval), time.Now())
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		case <-done:
			// At the end of the flood, closing the connection ends the
			// reader too, and this select may see that first.
			if ctx.Err() == nil {
				f.fail(errors.New("flooder: caddy ended the connection"))
			}
			return
		}
		if ctx.Err() != nil {
			break
		}
		id := f.id.Add(1)
		line = appendPayingRequest(line[:0], id)
		work, probe := f.q.next(time.Now())
		if probe {
			probes.Store(strconv.FormatInt(id, 10), true)
		}
		buf = buf[:0]
		if work == 0 {
			buf = append(buf, line...)
		} else {
			buf, err = m.stamp(buf, line, stamp.Stamp{Resource: resource, Time: time.Now().Unix(), Work: work})
			if err != nil {
				if ctx.Err() == nil {
					f.fail(fmt.Errorf("flooder: minting: %w", err))
				}
				break
			}
		}
		if _, err := c.Write(buf); err != nil {
			if ctx.Err() == nil {
				f.fail(fmt.Errorf("flooder: %w", err))
			}
			break
		}
	}
	c.Close()
	<-done
}

// lowMinter mints stamps on an OS thread of its own, at the priority its
// lower function set, until its context ends; the flooder's I/O stays at
// the normal priority.
type lowMinter struct {
	ctx  context.Context
	jobs chan mintJob
}

// mintJob is one line to stamp; it comes back on done with dst holding the
// stamped line, or err.
type mintJob struct {
	dst, line []byte
	tmpl      stamp.Stamp
	err       error
	done      chan mintJob
}

// startLowMinter starts a lowMinter whose thread lower (if not nil) has set
// the priority of, or returns lower's error.
func startLowMinter(ctx context.Context, lower func() error) (*lowMinter, error) {
	m := &lowMinter{ctx: ctx, jobs: make(chan mintJob)}
	ready := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, lowered, ends with the goroutine.
		runtime.LockOSThread()
		if lower != nil {
			if err := lower(); err != nil {
				ready <- err
				return
			}
		}
		ready <- nil
		for {
			select {
			case j := <-m.jobs:
				j.dst, j.err = stamp.AppendStamped(ctx, j.dst, j.line, j.tmpl, 1)
				j.done <- j
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return m, nil
}

// stamp appends line, with a stamp minted from tmpl, to dst.
func (m *lowMinter) stamp(dst, line []byte, tmpl stamp.Stamp) ([]byte, error) {
	done := make(chan mintJob, 1)
	select {
	case m.jobs <- mintJob{dst: dst, line: line, tmpl: tmpl, done: done}:
	case <-m.ctx.Done():
		return dst, m.ctx.Err()
	}
	j := <-done
	return j.dst, j.err
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// appendPayingRequest appends a request line of payingMethod with id.
func appendPayingRequest(dst []byte, id int64) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","method":"`+payingMethod+`","params":["`...)
	dst = fmt.Appendf(dst, "%064x", uint64(id)*0x9e3779b97f4a7c15)
	dst = append(dst, `"],"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	return append(dst, "}\n"...)
}

// honestSample is one honest request's latency and the phase it was sent in.
type honestSample struct {
	at      time.Duration // since the run's start
	latency time.Duration
}

// honestResult is what one honest client saw.
type honestResult struct {
	samples   []honestSample
	refused   int
	maxLevel  int
	firstRefs string
	err       error
}

// runHonest sends one request at a time from 127.0.0.(firstHonestIP+i),
// one every 1/rate seconds, until ctx ends.
func runHonest(ctx context.Context, addr string, i int, rate float64, start time.Time) *honestResult {
	res := &honestResult{}
	ip := fmt.Sprintf("127.0.0.%d", firstHonestIP+i)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		res.err = fmt.Errorf("honest client %s: %w", ip, err)
		return res
	}
	defer c.Close()
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now().Add(interval * time.Duration(i) / 8)
	var line []byte
	for id := int64(1); ; id++ {
		select {
		case <-ctx.Done():
			return res
		case <-time.After(time.Until(next)):
		}
		next = next.Add(interval)
		line = appendPayingRequest(line[:0], id)
		t0 := time.Now()
		if _, err := c.Write(line); err != nil {
			if ctx.Err() == nil {
				res.err = fmt.Errorf("honest client %s: %w", ip, err)
			}
			return res
		}
		ans, err := r.ReadSlice('\n')
		if err != nil {
			if ctx.Err() == nil {
				res.err = fmt.Errorf("honest client %s: %w", ip, err)
			}
			return res
		}
		lat := time.Since(t0)
		var rep reply
		if err := json.Unmarshal(ans, &rep); err != nil {
			res.err = fmt.Errorf("honest client %s: bad answer %q", ip, ans)
			return res
		}
		if rep.Error != nil {
			res.refused++
			res.maxLevel = max(res.maxLevel, rep.Error.Data.Level)
			if res.firstRefs == "" {
				res.firstRefs = strings.TrimSpace(string(ans))
			}
			continue
		}
		res.samples = append(res.samples, honestSample{at: t0.Sub(start), latency: lat})
	}
}

// payingSummary is the figures of a paying-flood run.
type payingSummary struct {
	beforeRate   float64 // flooder accepted/s before its first escalation
	steadyRate   float64 // mean accepted/s over the last half of the flood
	steadyStart  int     // seconds into the flood when steady state began; -1: never
	maxLevel     int     // the flooder's highest level seen
	honestAlone  time.Duration
	honestFlood  time.Duration // p99 over the whole flood
	honestSteady time.Duration // p99 over the last half of the flood
	// honestPerSecond is the p99 of the honest requests sent in each
	// second of the flood.
	honestPerSecond []time.Duration
	honestAloneN    int
	honestFloodN    int
	honestRefused   int
	honestLevel     int
	reasons         map[string]int64 // the flooder's refusals by reason
}

// steadyWindow is the length in seconds of the window steadyStart
// judges: a window whose mean is within the budget has seen the escalation
// end. (After it the level moves between two, probing the lower one every
// calm_ticks + 3 ticks or so, which is why the steady-state rate is the
// mean over the flood's last half rather than any one second.)
const steadyWindow = 3

// steadyStart returns the first second s such that the mean of perSec over
// [s, s+win) is at most limit: when the escalation has brought the
// flooder's accepted rate within limit. It returns -1 if there is none.
func steadyStart(perSec []float64, limit float64, win int) int {
	if win < 1 {
		return -1
	}
	for j := 0; j+win <= len(perSec); j++ {
		sum := 0.0
		for _, v := range perSec[j : j+win] {
			sum += v
		}
		if sum/float64(win) <= limit {
			return j
		}
	}
	return -1
}

// meanLastHalf returns the mean of the last half of xs (its last ⌈n/2⌉).
func meanLastHalf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	h := xs[len(xs)/2:]
	sum := 0.0
	for _, x := range h {
		sum += x
	}
	return sum / float64(len(h))
}

// percentile returns the q-quantile (0 < q ≤ 1) of ds by nearest rank, or 0
// for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// honestP99 returns the p99 latency and count of the samples sent in [from, to).
func honestP99(samples []honestSample, from, to time.Duration) (time.Duration, int) {
	var ds []time.Duration
	for _, s := range samples {
		if s.at >= from && s.at < to {
			ds = append(ds, s.latency)
		}
	}
	return percentile(ds, 0.99), len(ds)
}

// payingFloodBench runs the scenario and returns its report, a failure (an
// honest request refused) and an error (the run could not be made).
func payingFloodBench(pc payingFloodConfig, log io.Writer) (string, error, error) {
	// Minting goroutines must not hold every P while honest clients wait
	// to be scheduled: let the OS share the cores between threads.
	runtime.GOMAXPROCS(max(16, 4*runtime.NumCPU()))
	up, err := newUpstream(mix())
	if err != nil {
		return "", nil, err
	}
	defer up.close()
	addr, err := testsupport.FindFreeAddr("127.0.0.1")
	if err != nil {
		return "", nil, err
	}
	machineLine := machine()
	srv, err := startCaddy(pc.caddyBin, payingCaddyConfig(addr, up.addr(), pc))
	if err != nil {
		return "", nil, err
	}
	defer srv.stop()
	fmt.Fprintf(log, "loadbench: %s\nloadbench: caddy %s\n", machineLine, srv.describe())

	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	honest := make([]*honestResult, pc.honest)
	var hwg sync.WaitGroup
	for i := range honest {
		hwg.Go(func() { honest[i] = runHonest(ctx, addr, i, pc.honestRate, start) })
	}
	aloneFrom, floodFrom := pc.warmup, pc.warmup+pc.baseline
	fmt.Fprintf(log, "loadbench: honest clients alone for %s (after %s warm-up)\n", pc.baseline, pc.warmup)
	time.Sleep(floodFrom)

	fmt.Fprintf(log, "loadbench: flooding from %s for %s\n", flooderIP, pc.duration)
	f := &payingFlooder{addr: addr, start: time.Now(), reasons: map[string]int64{}}
	floodStart := f.start.Sub(start)
	fctx, fcancel := context.WithTimeout(ctx, pc.duration)
	var fwg sync.WaitGroup
	for range pc.conns {
		fwg.Go(func() { f.run(fctx, pc.window, func() error { return lowerThread(pc.idle, pc.nice) }) })
	}
	ticker := time.NewTicker(time.Second)
	for s := 0; fctx.Err() == nil; {
		select {
		case <-ticker.C:
			f.mu.Lock()
			if len(f.seconds) > s {
				fs := f.seconds[s]
				work := f.q.peek()
				fmt.Fprintf(log, "loadbench: flood second %2d: accepted %6d refused %5d level %2d minting at %d\n", s+1, fs.Accepted, fs.Refused, fs.Level, work)
			}
			f.mu.Unlock()
			s++
		case <-fctx.Done():
		}
	}
	ticker.Stop()
	fwg.Wait()
	fcancel()
	floodEnd := time.Since(start)
	cancel()
	hwg.Wait()
	if f.err != nil {
		return "", nil, f.err
	}
	var samples []honestSample
	var failure error
	sum := payingSummary{steadyStart: -1}
	for i, h := range honest {
		if h.err != nil {
			return "", nil, h.err
		}
		samples = append(samples, h.samples...)
		sum.honestRefused += h.refused
		sum.honestLevel = max(sum.honestLevel, h.maxLevel)
		if h.refused > 0 && failure == nil {
			failure = fmt.Errorf("honest client 127.0.0.%d was refused %d times; first: %s", firstHonestIP+i, h.refused, h.firstRefs)
		}
	}
	secs := int(pc.duration / time.Second)
	per := make([]float64, secs)
	levels := make([]int, secs)
	for i := 0; i < secs && i < len(f.seconds); i++ {
		per[i] = float64(f.seconds[i].Accepted)
		levels[i] = f.seconds[i].Level
	}
	// A second without refusals keeps the level seen before it.
	for i := 1; i < secs; i++ {
		if levels[i] == 0 && i < len(f.seconds) && f.seconds[i].Refused == 0 {
			levels[i] = levels[i-1]
		}
	}
	for _, l := range levels {
		sum.maxLevel = max(sum.maxLevel, l)
	}
	if f.firstEscalation > 0 {
		sum.beforeRate = float64(f.acceptedBefore) / f.firstEscalation.Seconds()
	}
	sum.steadyRate = meanLastHalf(per)
	sum.steadyStart = steadyStart(per, pc.budget, steadyWindow)
	sum.honestAlone, sum.honestAloneN = honestP99(samples, aloneFrom, floodStart)
	sum.honestFlood, sum.honestFloodN = honestP99(samples, floodStart, floodEnd)
	sum.honestSteady, _ = honestP99(samples, floodStart+pc.duration/2, floodEnd)
	if failure == nil && sum.honestLevel > 0 {
		failure = fmt.Errorf("an honest network's level rose to %d", sum.honestLevel)
	}
	sum.reasons = f.reasons
	sum.honestPerSecond = make([]time.Duration, secs)
	for i := range secs {
		from := floodStart + time.Duration(i)*time.Second
		sum.honestPerSecond[i], _ = honestP99(samples, from, from+time.Second)
	}
	return formatPayingReport(pc, machineLine, srv.describe(), sum, per, levels, f.seconds), failure, nil
}

// formatPayingReport writes the run's summary and timeline as Markdown.
func formatPayingReport(pc payingFloodConfig, machineLine, caddyLine string, s payingSummary, per []float64, levels []int, seconds []floodSecond) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s\n\n", machineLine)
	fmt.Fprintf(&b, "Caddy: %s. Hashcash: price 0, network_budget %g, network_burst %g, price_step %d, price_tick %s, "+
		"ipv4_prefix 32, max_rejections -1, other options at their defaults. Every request is %s (cost %.1f). "+
		"The flooder (%d connections from %s, at most %d unanswered each, each minting on one thread of this process at %s) "+
		"mints each request at the price it last learned from a refusal (unit × cost), unstamped while free, and sends a token stamp after next_fall. "+
		"%d honest clients (127.0.0.%d and up, each its own network) send one unstamped request at a time, %g a second each: "+
		"%s warm-up, %s alone, then %s with the flood.\n\n",
		caddyLine, pc.budget, pc.burst, pc.step, pc.tick, payingMethod, payingCost,
		pc.conns, flooderIP, pc.window, pc.priority(), pc.honest, firstHonestIP, pc.honestRate, pc.warmup, pc.baseline, pc.duration)
	ratio := math.NaN()
	if s.honestAlone > 0 {
		ratio = float64(s.honestFlood) / float64(s.honestAlone)
	}
	steadyRatio := math.NaN()
	if s.honestAlone > 0 {
		steadyRatio = float64(s.honestSteady) / float64(s.honestAlone)
	}
	steady := "never"
	if s.steadyStart >= 0 {
		steady = fmt.Sprintf("%d s", s.steadyStart)
	}
	b.WriteString("| figure | value | goal |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| flooder accepted/s before escalation (free) | %.0f | – |\n", s.beforeRate)
	fmt.Fprintf(&b, "| flooder accepted/s in steady state (mean of the flood's last half) | %.1f | – |\n", s.steadyRate)
	fmt.Fprintf(&b, "| … ÷ network_budget (%g) | %.2f | ≤ 1.5: %s |\n", pc.budget, s.steadyRate/pc.budget, verdict(s.steadyRate <= 1.5*pc.budget))
	fmt.Fprintf(&b, "| time to steady state (first %d s within the budget, from the flood's start) | %s | – |\n", steadyWindow, steady)
	fmt.Fprintf(&b, "| flooder's highest level | %d | – |\n", s.maxLevel)
	fmt.Fprintf(&b, "| honest p99 alone (%d requests) | %.0f µs | – |\n", s.honestAloneN, micros(s.honestAlone))
	fmt.Fprintf(&b, "| honest p99 under flood, whole flood (%d requests) | %.0f µs | – |\n", s.honestFloodN, micros(s.honestFlood))
	fmt.Fprintf(&b, "| … ÷ alone | %.2f | ≤ 2: %s |\n", ratio, verdict(ratio <= 2))
	fmt.Fprintf(&b, "| honest p99 under flood, last half (steady state) | %.0f µs | – |\n", micros(s.honestSteady))
	fmt.Fprintf(&b, "| … ÷ alone | %.2f | ≤ 2: %s |\n", steadyRatio, verdict(steadyRatio <= 2))
	fmt.Fprintf(&b, "| honest requests refused | %d | 0: %s |\n", s.honestRefused, verdict(s.honestRefused == 0))
	fmt.Fprintf(&b, "| honest networks' highest level | %d | 0: %s |\n", s.honestLevel, verdict(s.honestLevel == 0))
	if len(s.reasons) > 0 {
		keys := slices.Sorted(maps.Keys(s.reasons))
		b.WriteString("\nThe flooder's refusals by reason:")
		for i, k := range keys {
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(&b, "%s %s %d", sep, k, s.reasons[k])
		}
		b.WriteString(".\n")
	}
	b.WriteString("\nPer second of the flood: the flooder's accepted and refused requests and its level (the highest a refusal named in that second, else the one before), " +
		"and the p99 latency of the honest requests sent in that second:\n\n")
	b.WriteString("| second | accepted | refused | level | honest p99 µs |\n|---:|---:|---:|---:|---:|\n")
	for i := range per {
		var refused int64
		if i < len(seconds) {
			refused = seconds[i].Refused
		}
		var p99 time.Duration
		if i < len(s.honestPerSecond) {
			p99 = s.honestPerSecond[i]
		}
		fmt.Fprintf(&b, "| %d | %.0f | %d | %d | %.0f |\n", i+1, per[i], refused, levels[i], micros(p99))
	}
	return b.String()
}

// priority says at what priority the flooder mints.
func (pc payingFloodConfig) priority() string {
	if pc.idle {
		return "SCHED_IDLE"
	}
	return fmt.Sprintf("niceness %d", pc.nice)
}

// addPayingFloodFlags defines the flags of -paying-flood.
func addPayingFloodFlags(pc *payingFloodConfig) {
	flag.Float64Var(&pc.budget, "paying-budget", 20, "paying flood: the handler's network_budget")
	flag.Float64Var(&pc.burst, "paying-burst", 100, "paying flood: the handler's network_burst")
	flag.Uint64Var(&pc.step, "paying-price-step", 256, "paying flood: the handler's price_step")
	flag.DurationVar(&pc.tick, "paying-price-tick", time.Second, "paying flood: the handler's price_tick")
	flag.IntVar(&pc.conns, "paying-conns", 2, "paying flood: flooder connections (each mints on one goroutine)")
	flag.IntVar(&pc.window, "paying-window", 16, "paying flood: most unanswered lines per flooder connection")
	flag.IntVar(&pc.honest, "paying-honest", 3, "paying flood: honest clients, each on its own network")
	flag.Float64Var(&pc.honestRate, "paying-honest-rate", 10, "paying flood: requests/s per honest client")
	flag.DurationVar(&pc.warmup, "paying-warmup", 2*time.Second, "paying flood: time before the honest clients are measured")
	flag.DurationVar(&pc.baseline, "paying-baseline", 10*time.Second, "paying flood: time the honest clients are measured alone")
	flag.DurationVar(&pc.duration, "paying-duration", 45*time.Second, "paying flood: time of the flood")
	flag.BoolVar(&pc.idle, "paying-idle", true, "paying flood: the flooder's minting threads are SCHED_IDLE (Linux): they mint only on a core no other thread wants, as if on the attacker's own machines")
	flag.IntVar(&pc.nice, "paying-nice", 19, "paying flood, with -paying-idle=false: niceness of the flooder's minting threads (0: as caddy's)")
}

// runPayingFloodMain checks the paying-flood flags, runs it, prints its
// report and returns the exit status.
func runPayingFloodMain(pc payingFloodConfig, out string) int {
	if pc.budget <= 0 || pc.burst <= 0 || pc.step < 1 || pc.tick < 10*time.Millisecond || pc.conns < 1 || pc.window < 1 ||
		pc.honest < 1 || pc.honest > 250 || pc.honestRate <= 0 || pc.nice < 0 || pc.nice > 19 || pc.warmup <= 0 || pc.baseline <= 0 || pc.duration < 2*time.Second {
		fmt.Fprintln(os.Stderr, "loadbench: -paying-budget, -paying-burst, -paying-price-step, -paying-conns, -paying-window, "+
			"-paying-honest-rate and the durations must be positive, -paying-price-tick at least 10ms, -paying-honest 1 to 250, -paying-nice 0 to 19, -paying-duration at least 2s")
		return 2
	}
	report, failure, err := payingFloodBench(pc, os.Stderr)
	return finishReport(report, failure, err, out)
}
