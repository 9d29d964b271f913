// Command loadbench measures what the hashcash handler costs an Electrum
// server behind Caddy, as three paths measured in one run:
//
//	(a) straight to the upstream
//	(b) through caddy with caddy-l4's proxy handler only
//	(c) through caddy with the hashcash handler, then proxy
//
// and, with -paths abcr (or any set that has r), a fourth:
//
//	(r) (c) with the Redis store instead of the in-memory one, against a
//	    redis-server loadbench starts on a free loopback port (persistence
//	    off, maxmemory-policy noeviction), or the one -redis names
//
// The upstream is an in-process, Electrum-shaped server that answers every
// request line at once. For each number of connections (-conns), loadbench
// opens that many connections to each path in turn and pipelines requests
// on each, every request in its own write and at most -window unanswered
// at a time:
//
//   - saturated runs (a, b, c) keep every window full, for the most
//     requests per second each path sustains and its CPU time per request;
//   - paced runs (b, c) offer the same -pace requests per second in all,
//     spread over the connections, for the latency a request sees when the
//     server is not overloaded.
//
// Each run has a -warmup, then -duration measured; every run is repeated
// -rounds times, and the report (Markdown, on standard output) gives
// medians, and the medians of the ratios and differences between (c) and
// (b) run one after the other. Latency is from writing a request to reading
// its answer.
//
// Requests follow the mix of a measured Electrum 4.3.4 wallet sync (mostly
// scripthash.subscribe, transaction.get and get_merkle, with block.header,
// estimatefee and the connect-time requests). The requests of (c) carry
// stamps minted before the run starts, one per request, at -price work
// (the cost of verifying a stamp does not depend on its work); (a) and (b)
// send the same requests without stamps.
//
// By default caddy runs in this process (caddy.Load): CPU time and memory
// are then those of the whole process, load generator and upstream
// included, which are the same for every path, so the difference between
// (c) and (b) is the handler's. With -caddy (default $CADDY_BIN), caddy runs
// as a child process built with the module (make bin/caddy), and loadbench
// also reports the child's own CPU time per request and resident memory.
//
// With -flood N, loadbench instead measures the handler under a flood, in
// one run against one caddy server (hashcash, then proxy): first -honest
// connections (10) send validly stamped Electrum requests, each paced at
// -honest-rate (200/s), alone for -flood-baseline; then again for
// -flood-duration while N flooder connections send invalid requests as fast
// as caddy answers them, at most -flood-window (64) unanswered per
// connection: lines that are not JSON or not requests (garbage),
// requests without a stamp (missing), stamps whose digest does not prove
// their claimed work (forged), and stamps caddy has accepted before
// (replay, a refusal that does not count toward max_rejections). Flooders
// reconnect when caddy closes their connection, at once or after
// -flood-redial-wait. Honest clients dial from 127.0.2.0/24 and each kind
// of flooder from its own /24s, at most -flood-per-prefix per /24
// (max_conns_per_prefix applies per /24). The
// flooders run in a child process (this program with -flood-worker), so
// that they do not delay the honest clients' goroutines. The upstream
// tells senders apart by request id; loadbench exits with status 1 if any
// flooder line reaches it. The report gives the honest p50 and p99 alone
// and under flood and their ratio, what the flooders sent and were
// answered, how often caddy closed their connections, what the upstream
// received, and caddy's memory before, during and after the flood. With
// -flood-conn-rate R (as root, with the nft command), the nftables ruleset
// of docs/security.md ("Limit new connections per network in the
// firewall") limits new connections to caddy's port to R a second per /24
// and /48 after a burst of -flood-conn-burst (16), for the whole run; the
// report says how many SYNs it dropped.
//
// Usage:
//
//	loadbench [-conns 1,16,256] [-warmup 1s] [-duration 3s] [-rounds 3]
//	          [-window 32] [-pace 5000] [-price 16] [-caddy bin/caddy]
//	          [-out results.md] [-cpuprofile c.prof -profile-path c [-profile-paced]]
//	          [-paths abc] [-redis host:port]
//	loadbench -flood 300 [-flood-kinds garbage,missing,forged,replay]
//	          [-flood-per-prefix 24] [-flood-window 64] [-flood-redial-wait 0]
//	          [-honest 10] [-honest-rate 200]
//	          [-flood-warmup 2s] [-flood-baseline 10s] [-flood-duration 20s]
//	          [-max-rejections 20] [-max-conns-per-prefix 32]
//	          [-flood-replay-capacity 1000000] [-flood-nice 0]
//	          [-flood-conn-rate 0 -flood-conn-burst 16] [-flood-listen addr]
//	          [-price 16] [-caddy bin/caddy] [-out results.md]
//	loadbench -paying-flood [-paying-budget 20] [-paying-burst 100]
//	          [-paying-price-step 256] [-paying-price-tick 1s] [-paying-conns 2]
//	          [-paying-window 16] [-paying-honest 3] [-paying-honest-rate 10]
//	          [-paying-warmup 2s] [-paying-baseline 10s] [-paying-duration 45s] [-paying-idle] [-paying-nice 19]
//	          [-caddy bin/caddy] [-out results.md]
//	loadbench -many-networks 30 [-many-share 0.8] [-many-budget 20] [-many-max-in-flight 40]
//	          [-many-upstream-workers 4] [-many-upstream-delay 20ms] [-many-window 64]
//	          [-many-honest 4] [-many-honest-rate 5] [-many-warmup 2s] [-many-baseline 10s]
//	          [-many-duration 60s] [-many-after 30s] [-many-nice 19] [-caddy bin/caddy] [-out results.md]
//	loadbench -free-calm [-free-conns 16] [-free-window 32] [-free-warmup 1s] [-free-duration 3s]
//	          [-free-pace 2000] [-free-wallets 8] [-free-wallet-rate 10] [-free-wallet-duration 15s]
//	          [-free-rounds 3] [-caddy bin/caddy] [-out results.md]
//
// With -paying-flood, loadbench measures moving prices (network_budget)
// against one network paying for its flood: see payingflood.go. With
// -many-networks, against a flood from many networks, each within its
// budget, that saturates a slow upstream, with max_in_flight: see
// manynetworks.go. With -free-calm, what the handler costs at calm price 0,
// against the proxy alone: see freecalm.go.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// config is what a benchmark run measures.
type config struct {
	conns     []int
	duration  time.Duration
	warmup    time.Duration
	window    int
	batch     int
	maxStamps int
	price     uint64
	caddyBin  string
	capacity  int
	rateGuess float64 // requests/s to size (c)'s stamps when (b) is not run
	paths     string
	pace      float64   // paced runs offer this many requests/s; 0: none
	rounds    int       // times every measurement is made
	profile   *profiler // if not nil, profiles one run
	redis     string    // path r's Redis; empty: one of its own
	redisLine string    // path r's Redis, for the report
	// localIP, if not nil, returns the address connection i of a run dials
	// from; otherwise the system chooses.
	localIP func(i int) net.IP
}

// profiler writes a CPU profile of the measuring phase of the first
// saturated (or, with paced, the first paced) run of one path.
type profiler struct {
	w     io.Writer
	path  byte
	paced bool
	done  bool
}

func main() {
	var (
		cfg         config
		fc          floodConfig
		conns       string
		out         string
		cpuProfile  string
		profilePath string
		kinds       string
		worker      bool
		pc          payingFloodConfig
		paying      bool
		mc          manyConfig
		fr          freeConfig
		free        bool
	)
	flag.StringVar(&conns, "conns", "1,16,256", "numbers of connections to measure, comma-separated")
	flag.DurationVar(&cfg.duration, "duration", 3*time.Second, "measuring time per path and number of connections")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "time before measuring starts")
	flag.IntVar(&cfg.window, "window", 32, "most unanswered requests per connection")
	flag.IntVar(&cfg.batch, "batch", 1, "most requests per write: 1 writes each request on its own, as Electrum does")
	flag.IntVar(&cfg.maxStamps, "max-stamps", 3_000_000, "most stamps to mint for one run of (c); a run that uses them up ends early")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the measuring phase of the first saturated run of -profile-path to this file")
	flag.StringVar(&profilePath, "profile-path", "c", "the path -cpuprofile profiles: a, b, c or r")
	profilePaced := flag.Bool("profile-paced", false, "-cpuprofile profiles the path's first paced run instead of its first saturated one")
	flag.Float64Var(&cfg.pace, "pace", 5000, "after the saturated runs, run (b) and (c) paced at this many requests/s in all, for latency; 0: skip")
	flag.Uint64Var(&cfg.price, "price", 16, "hashcash price (work of a request of cost 1.0) and work of the stamps")
	flag.StringVar(&cfg.caddyBin, "caddy", os.Getenv("CADDY_BIN"), "run this caddy binary (built with the module) as a child process instead of in-process")
	flag.IntVar(&cfg.capacity, "replay-capacity", 20_000_000, "the handler's replay_capacity: enough for every stamp of the run")
	flag.Float64Var(&cfg.rateGuess, "rate-guess", 100_000, "requests/s of (c) to mint stamps for when (b) is not measured first")
	flag.StringVar(&cfg.paths, "paths", "abc", "paths to measure: a (upstream), b (caddy proxy), c (caddy hashcash and proxy), r (c with the Redis store)")
	flag.StringVar(&cfg.redis, "redis", "", "path r: the Redis server's address; empty: start a redis-server of its own (persistence off) on a free loopback port")
	flag.IntVar(&cfg.rounds, "rounds", 3, "times to make every measurement; the report gives medians")
	flag.StringVar(&out, "out", "", "also write the report to this file")
	flag.IntVar(&fc.flooders, "flood", 0, "run the flood scenario instead, with this many flooder connections")
	flag.StringVar(&kinds, "flood-kinds", strings.Join(floodKinds, ","), "flood: the kinds of flooder, taken in turn")
	flag.IntVar(&fc.perPrefix, "flood-per-prefix", 24, "flood: most flooders of one kind per /24")
	flag.IntVar(&fc.floodWindow, "flood-window", 64, "flood: most unanswered lines per flooder connection")
	flag.DurationVar(&fc.redialWait, "flood-redial-wait", 0, "flood: how long a flooder waits to connect again after caddy ends its connection (as a firewall's rate limit would make it)")
	flag.IntVar(&fc.honest, "honest", 10, "flood: honest connections")
	flag.Float64Var(&fc.honestRate, "honest-rate", 200, "flood: requests/s per honest connection")
	flag.DurationVar(&fc.warmup, "flood-warmup", 2*time.Second, "flood: time before the honest clients are measured, in each phase")
	flag.DurationVar(&fc.baseline, "flood-baseline", 10*time.Second, "flood: time the honest clients are measured alone")
	flag.DurationVar(&fc.duration, "flood-duration", 20*time.Second, "flood: time the honest clients are measured under flood")
	flag.IntVar(&fc.maxRejections, "max-rejections", 20, "flood: the handler's max_rejections")
	flag.IntVar(&fc.maxConnsPerPrefix, "max-conns-per-prefix", 32, "flood: the handler's max_conns_per_prefix")
	flag.IntVar(&fc.capacity, "flood-replay-capacity", 1_000_000, "flood: the handler's replay_capacity")
	flag.IntVar(&fc.seeds, "flood-seeds", 4096, "flood: accepted lines for replay flooders to replay")
	flag.IntVar(&fc.nice, "flood-nice", 0, "flood: run the flooder process under nice -n this")
	flag.IntVar(&fc.connRate, "flood-conn-rate", 0, "flood: install docs/security.md's nftables limit of new connections per /24 and /48 at this many a second (needs root and nft); 0: none")
	flag.IntVar(&fc.connBurst, "flood-conn-burst", documentedConnRateLimit.burst, "flood: the burst of -flood-conn-rate")
	flag.StringVar(&fc.listen, "flood-listen", "", "flood: caddy's listen address, for a firewall rule to match (default: a free loopback port)")
	flag.BoolVar(&paying, "paying-flood", false, "run the paying-flood scenario of moving prices instead (see payingflood.go)")
	addPayingFloodFlags(&pc)
	flag.IntVar(&mc.networks, "many-networks", 0, "run the many-network flood scenario of moving prices instead, with this many flooder networks (see manynetworks.go)")
	addManyNetworksFlags(&mc)
	flag.BoolVar(&free, "free-calm", false, "run the free-while-calm scenario of moving prices instead (see freecalm.go)")
	addFreeCalmFlags(&fr)
	flag.BoolVar(&worker, "flood-worker", false, "internal: be the flooder process of a flood run (plan on standard input)")
	manyWorker := flag.Bool("many-flood-worker", false, "internal: be the flooder process of a many-network run (plan on standard input)")
	flag.Parse()
	if *manyWorker {
		if err := manyFloodWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench: flooder process:", err)
			os.Exit(1)
		}
		return
	}
	if worker {
		if err := floodWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench: flooder process:", err)
			os.Exit(1)
		}
		return
	}
	if paying {
		pc.caddyBin = cfg.caddyBin
		os.Exit(runPayingFloodMain(pc, out))
	}
	if mc.networks > 0 {
		mc.caddyBin = cfg.caddyBin
		os.Exit(runManyNetworksMain(mc, out))
	}
	if free {
		fr.caddyBin = cfg.caddyBin
		os.Exit(runFreeCalmMain(fr, out))
	}
	if fc.flooders > 0 {
		os.Exit(runFloodMain(fc, kinds, cfg, out))
	}
	for f := range strings.SplitSeq(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "loadbench: -conns: bad number %q\n", f)
			os.Exit(2)
		}
		cfg.conns = append(cfg.conns, n)
	}
	if cfg.window < 1 || cfg.window > 1024 || cfg.batch < 1 || cfg.price < 1 || cfg.duration <= 0 || cfg.rounds < 1 {
		fmt.Fprintln(os.Stderr, "loadbench: -window must be 1 to 1024, -batch, -price and -rounds at least 1, -duration positive")
		os.Exit(2)
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
		defer f.Close()
		if len(profilePath) != 1 || !strings.Contains("abcr", profilePath) {
			fmt.Fprintln(os.Stderr, "loadbench: -profile-path must be a, b, c or r")
			os.Exit(2)
		}
		cfg.profile = &profiler{w: f, path: profilePath[0], paced: *profilePaced}
	}
	report, err := benchmark(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
	fmt.Print(report)
	if out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
	}
}

// runFloodMain checks the flood flags, runs the flood scenario, prints its
// report and returns the exit status.
func runFloodMain(fc floodConfig, kinds string, cfg config, out string) int {
	var err error
	if fc.kinds, err = parseKinds(kinds); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench: -flood-kinds:", err)
		return 2
	}
	fc.price, fc.caddyBin, fc.window = cfg.price, cfg.caddyBin, cfg.window
	if fc.flooders < len(fc.kinds) || fc.perPrefix < 1 || fc.perPrefix > 254 ||
		(fc.flooders/len(fc.kinds)+1)/fc.perPrefix > 250 || fc.honest < 1 || fc.honest > 200 || fc.honestRate <= 0 ||
		fc.warmup <= 0 || fc.baseline <= 0 || fc.duration <= 0 || fc.seeds < 1 || fc.price < 1 || fc.window < 1 || fc.floodWindow < 1 || fc.redialWait < 0 ||
		fc.connRate < 0 || fc.connBurst < 1 {
		fmt.Fprintln(os.Stderr, "loadbench: -flood must be at least the number of kinds, -flood-per-prefix 1 to 254 "+
			"(and at most 250 /24s per kind), -honest 1 to 200, -honest-rate, -flood-window, -flood-seeds, -flood-conn-burst, -price and the durations positive, -flood-conn-rate not negative")
		return 2
	}
	report, failure, err := floodBench(fc, os.Stderr)
	return finishReport(report, failure, err, out)
}

// finishReport prints a benchmark's report and writes it to out, if set,
// and returns the exit status: 1 if the run failed (err) or the report
// found a failure, else 0.
func finishReport(report string, failure, err error, out string) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		return 1
	}
	fmt.Print(report)
	if out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			return 1
		}
	}
	if failure != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", failure)
		return 1
	}
	return 0
}

// Path names.
var pathNames = map[byte]string{
	'a': "(a) upstream",
	'b': "(b) caddy: proxy",
	'c': "(c) caddy: hashcash, proxy",
	'r': "(r) caddy: hashcash (Redis store), proxy",
}

// measurement is the result of one path at one number of connections.
type measurement struct {
	round    int
	conns    int
	path     byte
	offered  float64 // requests/s offered, or 0 for a saturated run
	summary  summary
	cpu      time.Duration // of this process and caddy's, while measuring
	caddyCPU time.Duration // of the caddy child while measuring, or -1
	rss      int64         // caddy's (child) or this process's, after the run
}

func (m *measurement) cpuPerRequest() float64 {
	return micros(m.cpu) / float64(m.summary.requests)
}

// The resources stamps are minted for: of the server for saturated runs,
// and of the one for paced runs.
const (
	resource      = "loadbench.example:50002"
	pacedResource = "paced.loadbench.example:50002"
	// Path (r)'s, each a replay store of its own in the one Redis.
	redisResource      = "redis.loadbench.example:50002"
	redisPacedResource = "redis-paced.loadbench.example:50002"
)

// The window and max_skew of the server for saturated runs. Stamps are
// minted for the second they are planned to be sent in, and a short window
// lets the replay store forget them a few seconds after use, so that it
// reaches the size it keeps at the run's rate (rate × about 3 s) within the
// warm-up instead of growing through every run: at the default window of
// 5 minutes, a store taking 100,000 stamps a second would grow to 30
// million. Verifying a stamp costs the same whatever the window. The
// server for paced runs has the defaults.
const (
	stampWindow = 2 * time.Second
	stampSkew   = time.Minute
)

// benchmark runs every measurement of cfg, logging progress to log, and
// returns the report.
func benchmark(cfg config, log io.Writer) (string, error) {
	methods := mix()
	pick := newPicker(methods)
	up, err := newUpstream(methods)
	if err != nil {
		return "", err
	}
	defer up.close()
	plainAddr, err := testsupport.FindFreeAddr("127.0.0.1")
	if err != nil {
		return "", err
	}
	hashAddr, err := testsupport.FindFreeAddr("127.0.0.1")
	if err != nil {
		return "", err
	}
	pacedAddr, err := testsupport.FindFreeAddr("127.0.0.1")
	if err != nil {
		return "", err
	}
	var redis redisPaths
	if strings.Contains(cfg.paths, "r") {
		if redis.server = cfg.redis; redis.server == "" {
			addr, stop, line, err := startRedis()
			if err != nil {
				return "", fmt.Errorf("path (r): %w", err)
			}
			defer stop()
			redis.server, cfg.redisLine = addr, line
		} else {
			cfg.redisLine = "at " + redis.server + ", given with -redis"
		}
		for _, a := range []*string{&redis.saturated, &redis.paced} {
			if *a, err = testsupport.FindFreeAddr("127.0.0.1"); err != nil {
				return "", err
			}
		}
	}
	machineLine := machine()
	srv, err := startCaddy(cfg.caddyBin, caddyConfig(plainAddr, hashAddr, pacedAddr, up.addr(), cfg.price, cfg.capacity, redis))
	if err != nil {
		return "", err
	}
	defer srv.stop()
	fmt.Fprintf(log, "loadbench: %s\nloadbench: caddy %s\n", machineLine, srv.describe())
	if redis.server != "" {
		fmt.Fprintf(log, "loadbench: path (r): %s\n", cfg.redisLine)
	}
	mintSpeed, err := mintRate(cfg.price, pick)
	if err != nil {
		return "", err
	}

	var results []measurement
	record := func(m measurement) {
		results = append(results, m)
		mode := "saturated"
		if m.offered > 0 {
			mode = fmt.Sprintf("paced %.0f/s", m.offered)
		}
		caddyCPU := ""
		if m.caddyCPU >= 0 {
			caddyCPU = fmt.Sprintf(" (caddy %.1f)", micros(m.caddyCPU)/float64(m.summary.requests))
		}
		fmt.Fprintf(log, "loadbench: round %d %3d conns %-26s %-12s %7.0f req/s  p50 %6.0f µs  p99 %6.0f µs  %5.1f%s µs CPU/req  refused %d  load %s\n",
			m.round, m.conns, pathNames[m.path], mode, m.summary.rate(), micros(m.summary.p50), micros(m.summary.p99),
			m.cpuPerRequest(), caddyCPU, m.summary.errors, loadAverage())
	}
	// stamped mints pools for path (c): line i of connection conn is
	// minted for offset(conn) + i*interval after a planned start. The
	// start is planned after minting should have finished, and the run
	// starts when minting has finished: stamps go out early (which
	// max_skew allows) rather than late (which the window allows, less).
	stamped := func(res string, n, perConn int, offset func(conn int) time.Duration, interval time.Duration) ([]*pool, error) {
		total := n * perConn
		planned := time.Now().Add(time.Duration(float64(total)/mintSpeed*2*float64(time.Second)) + time.Second)
		mt := &minter{resource: res, work: cfg.price, when: func(conn, i int) int64 {
			return planned.Add(offset(conn) + time.Duration(i)*interval).Unix()
		}}
		pools, err := buildPools(n, perConn, mt, pick, uint64(time.Now().UnixNano()))
		if err != nil {
			return nil, err
		}
		if late := time.Since(planned); late > 0 {
			return nil, fmt.Errorf("minting %d stamps took %s longer than planned", total, late)
		}
		return pools, nil
	}
	runSecs := (cfg.warmup + cfg.duration).Seconds()
	noOffset := func(int) time.Duration { return 0 }
	plainPools := map[int][]*pool{}
	for _, n := range cfg.conns {
		if plainPools[n], err = buildPools(n, 4096, nil, pick, uint64(n)); err != nil {
			return "", err
		}
	}
	for round := 1; round <= cfg.rounds; round++ {
		for _, n := range cfg.conns {
			rateB := cfg.rateGuess
			for _, path := range []byte(cfg.paths) {
				var (
					addr   string
					pools  = plainPools[n]
					cyclic = true
				)
				switch path {
				case 'a':
					addr = up.addr()
				case 'b':
					addr = plainAddr
				case 'c', 'r':
					// Planned for 75% of (b)'s rate, so that stamps go
					// out early rather than late.
					perConn := min(int(rateB*1.3*runSecs), cfg.maxStamps)/n + 2*cfg.window
					interval := time.Duration(float64(n) / (0.75 * rateB) * float64(time.Second))
					addr, cyclic = hashAddr, false
					res := resource
					if path == 'r' {
						addr, res = redis.saturated, redisResource
					}
					if pools, err = stamped(res, n, perConn, noOffset, interval); err != nil {
						return "", err
					}
				default:
					return "", fmt.Errorf("-paths: unknown path %q", path)
				}
				m, err := measure(path, addr, pools, cyclic, 0, cfg, n, srv)
				if err != nil {
					return "", fmt.Errorf("%d connections, %s: %w", n, pathNames[path], err)
				}
				m.path, m.round = path, round
				if path == 'b' {
					rateB = m.summary.rate()
				}
				record(m)
			}
			if cfg.pace <= 0 || !strings.Contains(cfg.paths, "b") || !strings.Contains(cfg.paths, "c") {
				continue
			}
			// Paced: the same offered rate through (b) and (c).
			interval := time.Duration(float64(n) / cfg.pace * float64(time.Second))
			offset := func(conn int) time.Duration { return interval * time.Duration(conn) / time.Duration(n) }
			perConn := int(cfg.pace*runSecs)/n + 2*cfg.window
			pacedPaths := "bc"
			if redis.server != "" {
				pacedPaths += "r"
			}
			for _, path := range []byte(pacedPaths) {
				addr, pools, cyclic := plainAddr, plainPools[n], true
				if path != 'b' {
					addr, cyclic = pacedAddr, false
					res := pacedResource
					if path == 'r' {
						addr, res = redis.paced, redisPacedResource
					}
					if pools, err = stamped(res, n, perConn, offset, interval); err != nil {
						return "", err
					}
				}
				m, err := measure(path, addr, pools, cyclic, interval, cfg, n, srv)
				if err != nil {
					return "", fmt.Errorf("%d connections, %s, paced: %w", n, pathNames[path], err)
				}
				m.path, m.offered, m.round = path, cfg.pace, round
				record(m)
			}
		}
	}
	return formatReport(cfg, machineLine, srv.describe(), results), nil
}

// measure runs one path at n connections: a warm-up, then the measuring
// phase. If interval is positive, each connection sends a request every
// interval, staggered; otherwise as fast as its window allows.
func measure(path byte, addr string, pools []*pool, cyclic bool, interval time.Duration, cfg config, n int, srv caddyServer) (measurement, error) {
	m := measurement{conns: n, caddyCPU: -1}
	runtime.GC()
	debug.FreeOSMemory()
	conns := make([]net.Conn, n)
	for i := range conns {
		var d net.Dialer
		if cfg.localIP != nil {
			d.LocalAddr = &net.TCPAddr{IP: cfg.localIP(i)}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return m, err
		}
		conns[i] = c
	}
	r := &run{window: cfg.window, batch: cfg.batch, interval: interval, base: time.Now(),
		stop: make(chan struct{}), exhausted: make(chan struct{})}
	results := make([]*connResult, n)
	var wg sync.WaitGroup
	for i := range conns {
		offset := interval * time.Duration(i) / time.Duration(n)
		wg.Go(func() { results[i] = drive(conns[i], pools[i], cyclic, offset, r) })
	}
	finish := func() {
		close(r.stop)
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	}
	select {
	case <-time.After(cfg.warmup):
	case <-r.exhausted:
		finish()
		return m, errors.New("ran out of stamped requests during the warm-up: raise -rate-guess")
	}
	if p := cfg.profile; p != nil && !p.done && p.path == path && (interval > 0) == p.paced {
		if err := pprof.StartCPUProfile(p.w); err != nil {
			finish()
			return m, err
		}
		p.done = true
		defer pprof.StopCPUProfile()
	}
	self0, child0 := selfCPU(), srv.cpu()
	t0 := time.Now()
	r.phase.Store(phaseMeasure)
	select {
	case <-time.After(cfg.duration):
	case <-r.exhausted:
	}
	r.phase.Store(phaseDone)
	elapsed := time.Since(t0)
	self1, child1 := selfCPU(), srv.cpu()
	finish()
	m.cpu = self1 - self0
	if child0 >= 0 && child1 >= 0 {
		m.caddyCPU = child1 - child0
		m.cpu += m.caddyCPU
	}
	m.rss = srv.rss()
	s, err := summarize(results, elapsed)
	m.summary = s
	return m, err
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// formatReport writes the measurements as Markdown tables: for every
// number of connections and path, the medians over the rounds, and the
// medians over the rounds of the ratios and differences between (c) and (b)
// measured one after the other.
func formatReport(cfg config, machineLine, caddyLine string, results []measurement) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s\n\n", machineLine)
	fmt.Fprintf(&b, "Caddy: %s. Each run: %s warm-up, then %s measured; at most %d requests in flight per connection, "+
		"each request in its own write; hashcash price %d with stamps minted before the run; saturated runs with window %s "+
		"and max_skew %s, paced runs with the defaults. Medians of %d rounds.\n\n",
		caddyLine, cfg.warmup, cfg.duration, cfg.window, cfg.price, stampWindow, stampSkew, cfg.rounds)
	runs := func(n int, path byte, paced bool) []*measurement {
		var ms []*measurement
		for i := range results {
			if m := &results[i]; m.conns == n && m.path == path && (m.offered > 0) == paced {
				ms = append(ms, m)
			}
		}
		return ms
	}
	med := func(ms []*measurement, f func(*measurement) float64) float64 {
		xs := make([]float64, len(ms))
		for i, m := range ms {
			xs[i] = f(m)
		}
		return median(xs)
	}
	rate := func(m *measurement) float64 { return m.summary.rate() }
	p50 := func(m *measurement) float64 { return micros(m.summary.p50) }
	p99 := func(m *measurement) float64 { return micros(m.summary.p99) }
	cpu := func(m *measurement) float64 { return m.cpuPerRequest() }
	caddyCPU := func(m *measurement) float64 { return micros(m.caddyCPU) / float64(m.summary.requests) }
	rss := func(m *measurement) float64 { return float64(m.rss) / (1 << 20) }
	child := len(results) > 0 && results[0].caddyCPU >= 0
	caddyCol := func(ms []*measurement) string {
		if !child {
			return "–"
		}
		return fmt.Sprintf("%.1f", med(ms, caddyCPU))
	}
	refused := func(ms []*measurement) int {
		n := 0
		for _, m := range ms {
			n += m.summary.errors
		}
		return n
	}
	// pairsOf returns the median over the rounds of f of the runs of paths
	// x and y in each round.
	pairsOf := func(x, y byte, n int, paced bool, f func(bm, cm *measurement) float64) (float64, bool) {
		bs, cs := runs(n, x, paced), runs(n, y, paced)
		var xs []float64
		for _, bm := range bs {
			for _, cm := range cs {
				if bm.round == cm.round {
					xs = append(xs, f(bm, cm))
				}
			}
		}
		return median(xs), len(xs) > 0
	}
	// pairs is pairsOf for (b) and (c).
	pairs := func(n int, paced bool, f func(bm, cm *measurement) float64) (float64, bool) {
		return pairsOf('b', 'c', n, paced, f)
	}
	table := func(paced bool) {
		if paced {
			b.WriteString("| conns | path | offered req/s | req/s | p50 µs | p99 µs | CPU µs/req | caddy CPU µs/req | RSS MiB | refused |\n")
			b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		} else {
			b.WriteString("| conns | path | req/s | p50 µs | p99 µs | CPU µs/req | caddy CPU µs/req | RSS MiB | refused |\n")
			b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
		}
		for _, n := range cfg.conns {
			for _, path := range []byte("abcr") {
				ms := runs(n, path, paced)
				if len(ms) == 0 {
					continue
				}
				fmt.Fprintf(&b, "| %d | %s | ", n, pathNames[path])
				if paced {
					fmt.Fprintf(&b, "%.0f | ", cfg.pace)
				}
				fmt.Fprintf(&b, "%.0f | %.0f | %.0f | %.1f | %s | %.0f | %d |\n",
					med(ms, rate), med(ms, p50), med(ms, p99), med(ms, cpu), caddyCol(ms), med(ms, rss), refused(ms))
			}
		}
	}

	b.WriteString("Saturated: every connection keeps its window full.\n\n")
	table(false)
	b.WriteString("\n| conns | req/s (c)/(b) | CPU/req (c)−(b) µs | caddy CPU/req (c)−(b) µs | req/s (b)/(a) | goal (c) ≥ 0.92×(b) |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---|\n")
	for _, n := range cfg.conns {
		ratio, ok := pairs(n, false, func(bm, cm *measurement) float64 { return rate(cm) / rate(bm) })
		if !ok {
			continue
		}
		dcpu, _ := pairs(n, false, func(bm, cm *measurement) float64 { return cpu(cm) - cpu(bm) })
		dcaddy := "–"
		if child {
			d, _ := pairs(n, false, func(bm, cm *measurement) float64 { return caddyCPU(cm) - caddyCPU(bm) })
			dcaddy = fmt.Sprintf("%+.1f", d)
		}
		ba := "–"
		if as, bs := runs(n, 'a', false), runs(n, 'b', false); len(as) > 0 {
			ba = fmt.Sprintf("%.2f", med(bs, rate)/med(as, rate))
		}
		fmt.Fprintf(&b, "| %d | %.2f | %+.1f | %s | %s | %s |\n", n, ratio, dcpu, dcaddy, ba, verdict(ratio >= 0.92))
	}

	if cfg.pace > 0 {
		fmt.Fprintf(&b, "\nPaced: (b) and (c) offered %.0f requests/s in all, spread evenly over the connections.\n\n", cfg.pace)
		table(true)
		b.WriteString("\n| conns | p50 (c)−(b) µs | p99 (c)−(b) µs | CPU/req (c)−(b) µs | caddy CPU/req (c)−(b) µs | goal p99 ≤ +50 µs | goal caddy CPU ≤ +2 µs |\n")
		b.WriteString("|---:|---:|---:|---:|---:|---|---|\n")
		for _, n := range cfg.conns {
			d99, ok := pairs(n, true, func(bm, cm *measurement) float64 { return p99(cm) - p99(bm) })
			if !ok {
				continue
			}
			d50, _ := pairs(n, true, func(bm, cm *measurement) float64 { return p50(cm) - p50(bm) })
			dcpu, _ := pairs(n, true, func(bm, cm *measurement) float64 { return cpu(cm) - cpu(bm) })
			dcaddy, goalCPU := "–", "–"
			if child {
				d, _ := pairs(n, true, func(bm, cm *measurement) float64 { return caddyCPU(cm) - caddyCPU(bm) })
				dcaddy, goalCPU = fmt.Sprintf("%+.1f", d), verdict(d <= 2)
			}
			fmt.Fprintf(&b, "| %d | %+.0f | %+.0f | %+.1f | %s | %s | %s |\n", n, d50, d99, dcpu, dcaddy, verdict(d99 <= 50), goalCPU)
		}
	}
	if strings.Contains(cfg.paths, "r") {
		fmt.Fprintf(&b, "\nThe Redis store, (r), against the in-memory store, (c), run one after the other in each round; "+
			"Redis: %s; on the same machine, sharing its cores.\n\n", cfg.redisLine)
		b.WriteString("| conns | req/s (r)/(c) saturated | caddy CPU/req (r)−(c) µs saturated | p99 (r)−(c) µs paced | caddy CPU/req (r)−(c) µs paced | goal ≥ 0.8× | goal p99 ≤ +200 µs |\n")
		b.WriteString("|---:|---:|---:|---:|---:|---|---|\n")
		for _, n := range cfg.conns {
			ratio, ok := pairsOf('c', 'r', n, false, func(cm, rm *measurement) float64 { return rate(rm) / rate(cm) })
			if !ok {
				continue
			}
			dcaddy, dcaddyPaced, d99, goal99 := "–", "–", "–", "–"
			if child {
				d, _ := pairsOf('c', 'r', n, false, func(cm, rm *measurement) float64 { return caddyCPU(rm) - caddyCPU(cm) })
				dcaddy = fmt.Sprintf("%+.1f", d)
			}
			if v, ok := pairsOf('c', 'r', n, true, func(cm, rm *measurement) float64 { return p99(rm) - p99(cm) }); ok {
				d99, goal99 = fmt.Sprintf("%+.0f", v), verdict(v <= 200)
				if child {
					d, _ := pairsOf('c', 'r', n, true, func(cm, rm *measurement) float64 { return caddyCPU(rm) - caddyCPU(cm) })
					dcaddyPaced = fmt.Sprintf("%+.1f", d)
				}
			}
			fmt.Fprintf(&b, "| %d | %.2f | %s | %s | %s | %s | %s |\n", n, ratio, dcaddy, d99, dcaddyPaced, verdict(ratio >= 0.8), goal99)
		}
	}
	for _, m := range results {
		if m.summary.errors > 0 {
			fmt.Fprintf(&b, "\nFirst refusal (%d conns, %s): %s", m.conns, pathNames[m.path], m.summary.firstError)
			break
		}
	}
	return b.String()
}

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}
