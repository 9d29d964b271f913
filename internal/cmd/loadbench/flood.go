package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// floodConfig is what a flood run measures (loadbench -flood N).
type floodConfig struct {
	flooders          int      // flooder connections open at a time
	kinds             []string // the kinds they send, in turn
	perPrefix         int      // most flooders of one kind per /24
	honest            int      // honest connections
	honestRate        float64  // requests/s per honest connection
	warmup            time.Duration
	baseline          time.Duration // honest clients measured alone
	duration          time.Duration // honest clients measured under flood
	maxRejections     int
	maxConnsPerPrefix int
	capacity          int // replay_capacity
	price             uint64
	window            int // most unanswered requests per honest connection
	floodWindow       int // most unanswered lines per flooder connection
	redialWait        time.Duration
	seeds             int    // accepted lines the replay flooders replay
	nice              int    // niceness of the flooder process
	listen            string // caddy's address; empty: a free loopback port
	connRate          int    // with connBurst, an nftables limit on new connections per client network; 0: none
	connBurst         int
	caddyBin          string
}

// floodResource is the resource of the server under flood, which has its
// own replay store.
const floodResource = "flood.loadbench.example:50002"

// The handler's memory bound that docs/security.md ("Memory") documents:
// the replay store at most replayBytesPerKey per stamp held (the document
// gives 38 bytes, 51 while the store fills; 64 leaves room), and per open
// connection at most connBytes before its first accepted request
// (every flooder's) and proxiedBytes after (every honest client's), the
// limits TestThousandsOfIdleConnectionsLeaveNothingBehind checks.
const (
	replayBytesPerKey = 64
	connBytes         = 32 << 10
	proxiedBytes      = 192 << 10
)

// floodCaddyConfig returns the Caddy JSON config of the server under
// flood: hashcash with the handler's defaults but for the price, replay
// capacity, max_rejections and max_conns_per_prefix, then proxy.
func floodCaddyConfig(addr, upstream string, fc *floodConfig) map[string]any {
	proxy := map[string]any{"handler": "proxy", "upstreams": []any{map[string]any{"dial": []string{upstream}}}}
	hashcash := map[string]any{
		"handler": "hashcash", "resource": floodResource, "price": fc.price,
		"replay_capacity": fc.capacity, "max_rejections": fc.maxRejections,
		"max_conns_per_prefix": fc.maxConnsPerPrefix,
	}
	return map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{"layer4": map[string]any{"servers": map[string]any{
			"flood": map[string]any{"listen": []string{addr}, "routes": []any{map[string]any{"handle": []any{hashcash, proxy}}}},
		}}},
	}
}

// phaseResult is what the honest clients measured in one phase, with
// caddy's CPU time and memory over its measuring part.
type phaseResult struct {
	summary  summary
	caddyCPU time.Duration // -1 if caddy runs in this process
	rssStart int64
	rssPeak  int64
	upOpened int64 // connections the upstream accepted during the phase
}

// floodResult is everything a flood run measured.
type floodResult struct {
	unloaded, flooded phaseResult
	flood             *floodReport
	floodWall         time.Duration // from starting the flooders to stopping them
	floodCaddyCPU     time.Duration // caddy's over floodWall, or -1
	rssBefore         int64         // caddy's, as the flood starts
	rssPeak           int64         // caddy's, the most while flooded
	rssAfter          int64         // caddy's, a second after the flood
	upOpened          int64         // connections the upstream accepted while flooded
	seeds             int
	before, after     tallySnapshot // the upstream's, before and after the flood
	synsDropped       int64         // by the connection rate limit over the whole run, or -1 without one
}

// floodBench runs a flood scenario and returns its report. failure is not
// nil if a flooder's line reached the upstream or a flooder was answered
// with a result; err is not nil if the run could not be made.
func floodBench(fc floodConfig, log io.Writer) (report string, failure, err error) {
	methods := mix()
	pick := newPicker(methods)
	tally := &lineTally{}
	up, err := newCountingUpstream(methods, tally)
	if err != nil {
		return "", nil, err
	}
	defer up.close()
	addr := fc.listen
	if addr == "" {
		if addr, err = testsupport.FindFreeAddr("127.0.0.1"); err != nil {
			return "", nil, err
		}
	}
	var limit *connRateLimit
	if fc.connRate > 0 {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", nil, err
		}
		limit = &connRateLimit{table: "electrum_hashcash_loadbench", rate: fc.connRate, burst: fc.connBurst}
		if limit.port, err = strconv.Atoi(port); err != nil {
			return "", nil, fmt.Errorf("caddy's port %q: %w", port, err)
		}
		remove, err := limit.install()
		if err != nil {
			return "", nil, err
		}
		defer func() {
			if err := remove(); err != nil {
				fmt.Fprintln(log, "loadbench:", err)
			}
		}()
	}
	machineLine := machine()
	srv, err := startCaddy(fc.caddyBin, floodCaddyConfig(addr, up.addr(), &fc))
	if err != nil {
		return "", nil, err
	}
	defer srv.stop()
	fmt.Fprintf(log, "loadbench: %s\nloadbench: caddy %s\n", machineLine, srv.describe())

	// Every stamp is minted now: the window (the default, 5 minutes)
	// outlasts the run.
	now := time.Now().Unix()
	mt := &minter{resource: floodResource, work: fc.price, when: func(int, int) int64 { return now }}
	perConn := int(fc.honestRate*(fc.warmup+max(fc.baseline, fc.duration)).Seconds()*1.2) + 2*fc.window
	unloadedPools, err := buildPools(fc.honest, perConn, mt, pick, 1)
	if err != nil {
		return "", nil, err
	}
	floodedPools, err := buildPools(fc.honest, perConn, mt, pick, 2)
	if err != nil {
		return "", nil, err
	}
	seeds, err := seedLines(fc.seeds, mt, pick)
	if err != nil {
		return "", nil, err
	}
	if err := sendSeeds(addr, seeds); err != nil {
		return "", nil, fmt.Errorf("seeding the replay flooders: %w", err)
	}
	res := floodResult{seeds: len(seeds)}

	fmt.Fprintf(log, "loadbench: flood: %d honest connections at %.0f req/s each, unloaded\n", fc.honest, fc.honestRate)
	if res.unloaded, err = honestPhase(addr, unloadedPools, fc, fc.baseline, srv, up); err != nil {
		return "", nil, fmt.Errorf("honest clients, unloaded: %w", err)
	}
	logPhase(log, "unloaded", &res.unloaded)
	runtime.GC()
	debug.FreeOSMemory()
	res.before = tally.snapshot()

	plan := &floodPlan{
		Addr: addr, Flooders: fc.flooders, Kinds: fc.kinds, PerPrefix: fc.perPrefix,
		Resource: floodResource, Price: fc.price, Seeds: seeds, Lines: 4096, Window: fc.floodWindow, Redial: fc.redialWait,
		Max: fc.warmup + fc.duration + time.Minute, Seed: uint64(now),
	}
	fmt.Fprintf(log, "loadbench: flood: starting %d flooders (%s)\n", fc.flooders, strings.Join(fc.kinds, ", "))
	res.rssBefore = srv.rss()
	stopSampling := sampleRSS(srv, 50*time.Millisecond)
	opened0 := up.opened()
	floodCPU0, floodStart := srv.cpu(), time.Now()
	child, err := startFlooders(plan, fc.nice)
	if err != nil {
		stopSampling()
		return "", nil, err
	}
	res.flooded, err = honestPhase(addr, floodedPools, fc, fc.duration, srv, up)
	if err != nil {
		child.kill()
		stopSampling()
		return "", nil, fmt.Errorf("honest clients, under flood: %w", err)
	}
	logPhase(log, "flood", &res.flooded)
	res.flood, err = child.stop()
	res.floodWall = time.Since(floodStart)
	res.rssPeak = stopSampling()
	res.upOpened = up.opened() - opened0
	res.floodCaddyCPU = -1
	if c := srv.cpu(); c >= 0 && floodCPU0 >= 0 {
		res.floodCaddyCPU = c - floodCPU0
	}
	if err != nil {
		return "", nil, fmt.Errorf("flooders: %w", err)
	}
	res.synsDropped = -1
	if limit != nil {
		if res.synsDropped, err = limit.dropped(); err != nil {
			return "", nil, err
		}
	}
	time.Sleep(time.Second)
	res.rssAfter = srv.rss()
	res.after = tally.snapshot()

	report = formatFloodReport(&fc, machineLine, srv.describe(), &res)
	return report, res.failure(), nil
}

func logPhase(log io.Writer, name string, p *phaseResult) {
	fmt.Fprintf(log, "loadbench: flood: %-8s honest %6.0f req/s  p50 %6.0f µs  p99 %6.0f µs  refused %d  caddy RSS %.0f → %.0f MiB  load %s\n",
		name, p.summary.rate(), micros(p.summary.p50), micros(p.summary.p99), p.summary.errors,
		mib(p.rssStart), mib(p.rssPeak), loadAverage())
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// failure says what went wrong that must not: a flooder line that reached
// the upstream, or a flooder answered with a result.
func (r *floodResult) failure() error {
	var msgs []string
	if n := r.after.lines[lineFlood]; n > 0 {
		msgs = append(msgs, fmt.Sprintf("the upstream received %d flooder lines (%d bytes); the first: %s",
			n, r.after.bytes[lineFlood], r.after.firstFlood))
	}
	if n := r.after.lines[lineSeed] - int64(r.seeds); n != 0 {
		msgs = append(msgs, fmt.Sprintf("the upstream received %d replayed seed lines (%d bytes)",
			n, r.after.bytes[lineSeed]-r.before.bytes[lineSeed]))
	}
	for _, k := range r.flood.Kinds {
		if n := k.Replies["result"]; n > 0 {
			msgs = append(msgs, fmt.Sprintf("%s flooders received %d results", k.Kind, n))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New("FLOODER REQUESTS GOT THROUGH: " + strings.Join(msgs, "; "))
}

// seedLines mints n request lines with ids from seedIDBase, without line
// feeds: sent once, they are the stamps replay flooders replay.
func seedLines(n int, mt *minter, pick *picker) ([]string, error) {
	rng := rand.New(rand.NewPCG(3, 3))
	lines := make([]string, n)
	var b, line []byte
	for i := range lines {
		m := pick.pick(rng)
		b = body(b[:0], m, seedIDBase+i, m.params(rng))
		var err error
		if line, err = mt.appendStamped(line[:0], b, mt.when(0, i)); err != nil {
			return nil, fmt.Errorf("minting seed lines: %w", err)
		}
		lines[i] = string(line)
	}
	return lines, nil
}

// sendSeeds sends the seed lines on one honest connection and checks that
// every one is answered with a result.
func sendSeeds(addr string, seeds []string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: honestAddr(249)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	errc := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(c)
		for _, s := range seeds {
			w.WriteString(s)
			w.WriteByte('\n')
		}
		errc <- w.Flush()
	}()
	br := bufio.NewReaderSize(c, 64<<10)
	for i := range seeds {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("reading the answer to seed %d of %d: %w", i+1, len(seeds), err)
		}
		if !strings.HasPrefix(string(line), string(resultPrefix)) {
			return fmt.Errorf("seed %d refused: %s", i+1, line)
		}
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("writing seeds: %w", err)
	}
	return nil
}

// honestPhase runs the honest clients, each paced at fc.honestRate from its
// own address in the honest /24: a warm-up, then measuring for d. It
// samples caddy's memory while measuring.
func honestPhase(addr string, pools []*pool, fc floodConfig, d time.Duration, srv caddyServer, up *upstream) (phaseResult, error) {
	res := phaseResult{caddyCPU: -1}
	opened0 := up.opened()
	conns := make([]net.Conn, len(pools))
	closeAll := func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	for i := range conns {
		dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: honestAddr(i)}, Timeout: 5 * time.Second}
		c, err := dialer.Dial("tcp", addr)
		if err != nil {
			closeAll()
			return res, err
		}
		conns[i] = c
	}
	interval := time.Duration(float64(time.Second) / fc.honestRate)
	r := &run{window: fc.window, batch: 1, interval: interval, base: time.Now(),
		stop: make(chan struct{}), exhausted: make(chan struct{})}
	results := make([]*connResult, len(conns))
	var wg sync.WaitGroup
	for i := range conns {
		offset := interval * time.Duration(i) / time.Duration(len(conns))
		wg.Go(func() { results[i] = drive(conns[i], pools[i], false, offset, r) })
	}
	finish := func() {
		close(r.stop)
		wg.Wait()
		closeAll()
	}
	select {
	case <-time.After(fc.warmup):
	case <-r.exhausted:
		finish()
		return res, errors.New("ran out of stamped requests during the warm-up")
	}
	res.rssStart = srv.rss()
	stopSampling := sampleRSS(srv, 50*time.Millisecond)
	cpu0 := srv.cpu()
	t0 := time.Now()
	r.phase.Store(phaseMeasure)
	select {
	case <-time.After(d):
	case <-r.exhausted:
	}
	r.phase.Store(phaseDone)
	elapsed := time.Since(t0)
	if cpu1 := srv.cpu(); cpu0 >= 0 && cpu1 >= 0 {
		res.caddyCPU = cpu1 - cpu0
	}
	res.rssPeak = max(stopSampling(), res.rssStart)
	finish()
	res.upOpened = up.opened() - opened0
	s, err := summarize(results, elapsed)
	res.summary = s
	return res, err
}

// sampleRSS samples caddy's resident memory every interval until the
// returned function is called, which returns the largest sample.
func sampleRSS(srv caddyServer, interval time.Duration) (stop func() int64) {
	done := make(chan struct{})
	peak := make(chan int64)
	go func() {
		var m int64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			m = max(m, srv.rss())
			select {
			case <-t.C:
			case <-done:
				peak <- max(m, srv.rss())
				return
			}
		}
	}()
	return func() int64 {
		close(done)
		return <-peak
	}
}

// floodChild is the flooder process: this program run with -flood-worker,
// so that the flooders do not share the honest clients' Go scheduler.
type floodChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

// startFlooders starts the flooder process with plan, at niceness nice,
// and waits until every flooder has dialed.
func startFlooders(plan *floodPlan, nice int) (*floodChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program to start the flooders: %w", err)
	}
	cmd := exec.Command(exe, "-flood-worker")
	if nice != 0 {
		cmd = exec.Command("nice", "-n", strconv.Itoa(nice), exe, "-flood-worker")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the flooder process: %w", err)
	}
	c := &floodChild{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
	if _, err := stdin.Write(append(raw, '\n')); err != nil {
		c.kill()
		return nil, fmt.Errorf("sending the flood plan: %w", err)
	}
	line, err := c.readLine(30 * time.Second)
	if err != nil || line != "ready" {
		c.kill()
		return nil, fmt.Errorf("the flooder process did not get ready (%q): %v", line, err)
	}
	return c, nil
}

// readLine reads a line from the child within timeout.
func (c *floodChild) readLine(timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := c.stdout.ReadString('\n')
		ch <- result{strings.TrimSuffix(line, "\n"), err}
	}()
	select {
	case r := <-ch:
		return r.line, r.err
	case <-time.After(timeout):
		// Killing the child ends the read.
		c.cmd.Process.Kill()
		<-ch
		return "", fmt.Errorf("no answer from the flooder process in %s", timeout)
	}
}

// stop tells the flooders to stop, and returns their report.
func (c *floodChild) stop() (*floodReport, error) {
	c.stdin.Close()
	line, err := c.readLine(30 * time.Second)
	waitErr := c.cmd.Wait()
	if err != nil {
		return nil, fmt.Errorf("reading the flood report: %w (exit: %v)", err, waitErr)
	}
	var r floodReport
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return nil, fmt.Errorf("decoding the flood report %.200q: %w", line, err)
	}
	if waitErr != nil {
		return nil, fmt.Errorf("the flooder process: %w", waitErr)
	}
	return &r, nil
}

// kill ends the flooder process at once.
func (c *floodChild) kill() {
	c.stdin.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// formatFloodReport writes a flood run's measurements as Markdown.
func formatFloodReport(fc *floodConfig, machineLine, caddyLine string, r *floodResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s\n\nCaddy: %s.\n\n", machineLine, caddyLine)
	counts := make([]string, 0, len(r.flood.Kinds))
	prefixes := 0
	for _, k := range r.flood.Kinds {
		counts = append(counts, fmt.Sprintf("%d %s", k.Flooders, k.Kind))
		prefixes += k.Prefixes
	}
	redial := "at once"
	if fc.redialWait > 0 {
		redial = "after " + fc.redialWait.String()
	}
	fmt.Fprintf(&b, "Flood: %d flooder connections (%s) from %d /24s, at most %d per /24, each with at most %d lines unanswered "+
		"and reconnecting %s when the server ends it; "+
		"%d honest connections from 127.0.2.0/24 at %.0f requests/s each, stamped at price %d. "+
		"hashcash: max_rejections %d, max_conns_per_prefix %d, replay_capacity %d, other options default. "+
		"Warm-up %s, then honest clients measured %s alone and %s under flood. The flooders run in a child process (nice %d).\n\n",
		fc.flooders, strings.Join(counts, ", "), prefixes, fc.perPrefix, fc.floodWindow, redial, fc.honest, fc.honestRate, fc.price,
		fc.maxRejections, fc.maxConnsPerPrefix, fc.capacity, fc.warmup, fc.baseline, fc.duration, fc.nice)
	if fc.connRate > 0 {
		fmt.Fprintf(&b, "Before caddy, an nftables connection rate limit (docs/security.md) let each /24 and /48 open %d connections "+
			"a second after a burst of %d, in both phases; it dropped %d SYNs.\n\n", fc.connRate, fc.connBurst, r.synsDropped)
	}

	cores := func(cpu, wall time.Duration) string {
		if cpu < 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", cpu.Seconds()/wall.Seconds())
	}
	b.WriteString("| honest clients | req/s | p50 µs | p99 µs | refused | caddy CPU (cores) | caddy RSS MiB (start → peak) | upstream connections opened |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---|---:|\n")
	for _, p := range []struct {
		name string
		r    *phaseResult
	}{{"unloaded", &r.unloaded}, {"under flood", &r.flooded}} {
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %d | %s | %.1f → %.1f | %d |\n", p.name, p.r.summary.rate(),
			micros(p.r.summary.p50), micros(p.r.summary.p99), p.r.summary.errors,
			cores(p.r.caddyCPU, p.r.summary.elapsed), mib(p.r.rssStart), mib(p.r.rssPeak), p.r.upOpened)
	}
	ratio99 := micros(r.flooded.summary.p99) / micros(r.unloaded.summary.p99)
	ratio50 := micros(r.flooded.summary.p50) / micros(r.unloaded.summary.p50)
	fmt.Fprintf(&b, "\n| ratio | figure | goal |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| honest p99 under flood ÷ unloaded | %.2f | ≤ 2 — %s |\n", ratio99, verdict(ratio99 <= 2))
	fmt.Fprintf(&b, "| honest p50 under flood ÷ unloaded | %.2f | — |\n", ratio50)
	fmt.Fprintf(&b, "| honest req/s under flood ÷ offered | %.2f | — |\n", r.flooded.summary.rate()/(fc.honestRate*float64(fc.honest)))

	secs := r.flood.Elapsed.Seconds()
	fmt.Fprintf(&b, "\nFlooders, over %.1f s (the flooder process used %.2f cores):\n\n", secs, r.flood.CPU.Seconds()/secs)
	b.WriteString("| kind | flooders | /24s | connections | refused: connection_limit | closed by caddy after refusals | replies per closed connection (min / mean / max) | lines sent | MB sent | replies | replies/s | replies by reason | dial errors |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|\n")
	var total floodStats
	total.Kind = "all"
	for _, k := range r.flood.Kinds {
		total.Flooders += k.Flooders
		total.Prefixes += k.Prefixes
		total.merge(k)
	}
	for _, k := range append(slices.Clone(r.flood.Kinds), &total) {
		conns := k.Dials - k.DialErrors
		at := "–"
		if k.RepliesAtClose.N > 0 {
			at = fmt.Sprintf("%d / %.1f / %d", k.RepliesAtClose.Min, k.RepliesAtClose.mean(), k.RepliesAtClose.Max)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %s | %d | %.1f | %d | %.0f | %s | %d |\n", k.Kind, k.Flooders, k.Prefixes,
			conns, k.LimitRefused, k.ServerClosed, at, k.Lines, float64(k.Bytes)/1e6, k.replies(), float64(k.replies())/secs,
			reasons(k.Replies), k.DialErrors)
	}

	if total.DialErrors > 0 {
		fmt.Fprintf(&b, "\nFirst dial error: %s\n", total.DialError)
	}

	var strikes floodStats
	var replayClosed, replayConns, replayReplies int64
	for _, k := range r.flood.Kinds {
		if k.Kind == kindReplay {
			replayClosed, replayConns, replayReplies = k.ServerClosed+k.LimitRefused, k.Dials-k.DialErrors, k.replies()
		} else {
			strikes.merge(k)
		}
	}
	if strikes.Dials > 0 {
		c := strikes.RepliesAtClose
		fmt.Fprintf(&b, "\n| flooders that send strikes (all but replay) | figure | goal |\n|---|---:|---|\n")
		fmt.Fprintf(&b, "| connections caddy refused (connection_limit) + closed after refusals, ÷ opened | (%d + %d) ÷ %d | all but those open at the end |\n",
			strikes.LimitRefused, strikes.ServerClosed, strikes.Dials-strikes.DialErrors)
		fmt.Fprintf(&b, "| most refusals one connection received before caddy closed it | %d | ≤ max_rejections (%d) — %s |\n",
			c.Max, fc.maxRejections, verdict(c.N > 0 && c.Max <= int64(fc.maxRejections)))
		fmt.Fprintf(&b, "| refusals received per closed connection, mean / least | %.2f / %d | %d: fewer means refusals lost when caddy closed the connection |\n",
			c.mean(), c.Min, fc.maxRejections)
	}
	if replayConns > 0 {
		fmt.Fprintf(&b, "\nReplay flooders: caddy closed %d of their %d connections (replays do not count toward max_rejections); "+
			"%.1f replies per connection per second.\n", replayClosed, replayConns, float64(replayReplies)/float64(replayConns)/secs)
	}

	floodLines := r.after.lines[lineFlood] + r.after.lines[lineSeed] - int64(r.seeds)
	floodBytes := r.after.bytes[lineFlood] + r.after.bytes[lineSeed] - r.before.bytes[lineSeed]
	fmt.Fprintf(&b, "\n| upstream received | lines | bytes | goal |\n|---|---:|---:|---|\n")
	fmt.Fprintf(&b, "| from honest clients | %d | %d | — |\n", r.after.lines[lineHonest], r.after.bytes[lineHonest])
	fmt.Fprintf(&b, "| seed lines, sent once before the flood for replay flooders to replay | %d | %d | %d lines |\n",
		r.before.lines[lineSeed], r.before.bytes[lineSeed], r.seeds)
	fmt.Fprintf(&b, "| from flooders (flooder ids, no id, or seeds again) | %d | %d | 0 — %s |\n", floodLines, floodBytes, verdict(floodLines == 0 && floodBytes == 0))
	extra := r.upOpened - int64(fc.honest)
	fmt.Fprintf(&b, "| connections opened during the flood, beyond the %d honest ones | %d | | 0 — %s |\n", fc.honest, extra, verdict(extra <= 0))

	growth := r.rssPeak - r.rssBefore
	open := int64(total.Flooders + fc.honest)
	replayCap := int64(fc.capacity) * replayBytesPerKey
	connCap := int64(total.Flooders)*connBytes + int64(fc.honest)*proxiedBytes
	bound := r.rssBefore + replayCap + connCap
	fmt.Fprintf(&b, "\n| caddy memory | MiB |\n|---|---:|\n")
	fmt.Fprintf(&b, "| RSS peak, honest clients alone | %.1f |\n", mib(r.unloaded.rssPeak))
	fmt.Fprintf(&b, "| RSS as the flood starts | %.1f |\n", mib(r.rssBefore))
	fmt.Fprintf(&b, "| RSS peak while flooded | %.1f |\n", mib(r.rssPeak))
	fmt.Fprintf(&b, "| RSS a second after the flood | %.1f |\n", mib(r.rssAfter))
	fmt.Fprintf(&b, "| growth under flood | %+.1f (%.1f KiB per open connection, %d open) |\n", mib(growth), float64(growth)/1024/float64(open), open)
	fmt.Fprintf(&b, "| documented bound: replay_capacity × %d B | %.1f |\n", replayBytesPerKey, mib(replayCap))
	fmt.Fprintf(&b, "| documented bound: %d flooders × %d KiB + %d honest × %d KiB | %.1f |\n",
		total.Flooders, connBytes>>10, fc.honest, proxiedBytes>>10, mib(connCap))
	fmt.Fprintf(&b, "| peak ≤ RSS as the flood starts + both bounds (%.1f) | %s |\n", mib(bound), verdict(r.rssPeak <= bound))
	if r.floodCaddyCPU >= 0 {
		w := r.floodWall.Seconds()
		fmt.Fprintf(&b, "\nCaddy used %.2f cores while flooded, for %.0f flooder connections/s and %.0f refusals/s (and the honest clients).\n",
			r.floodCaddyCPU.Seconds()/w, float64(total.Dials-total.DialErrors)/w, float64(total.replies())/w)
	}
	if err := r.failure(); err != nil {
		fmt.Fprintf(&b, "\n**%s**\n", err)
	}
	return b.String()
}

// reasons formats counts by reason, largest first.
func reasons(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, ", ")
}

// parseKinds parses a comma-separated list of flooder kinds.
func parseKinds(s string) ([]string, error) {
	var kinds []string
	for f := range strings.SplitSeq(s, ",") {
		k := strings.TrimSpace(f)
		if !slices.Contains(floodKinds, k) {
			return nil, fmt.Errorf("unknown flooder kind %q (known: %s)", k, strings.Join(floodKinds, ", "))
		}
		if slices.Contains(kinds, k) {
			return nil, fmt.Errorf("flooder kind %q given twice", k)
		}
		kinds = append(kinds, k)
	}
	return kinds, nil
}
