// Command demo shows electrum-hashcash working end to end on one machine:
//
//	wallet → clientproxy → caddy (hashcash, proxy) → regtest Electrum server
//
// It starts an in-process regtest Electrum server whose chain pays the
// wallet 50 BTC, a Caddy with the hashcash handler in front of it, and
// clientproxy in front of Caddy, with recording relays between wallet and
// clientproxy and between clientproxy and Caddy. The wallet is Debian's
// Electrum 4.3.4 daemon when /usr/bin/electrum exists (it syncs, pays
// itself and sees the payment confirmed), otherwise a scripted client that
// sends what Electrum 4.3.4 sends on connect and sync. Then it sends probes
// straight to Caddy: a request without a stamp, a replayed stamp, a stamp for
// another server and an underpriced stamp. It prints a short report and exits
// 0 when every check passed, 1 otherwise.
//
// Usage:
//
//	demo -caddy ./bin/caddy -clientproxy ./bin/clientproxy [-price 64k]
//	     [-wallet auto|electrum|scripted] [-keep] [-v]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/e2e/harness"
	"github.com/electrum-hashcash/electrum-hashcash/internal/regtest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/scriptedwallet"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	caddy, clientproxy string
	price              stamp.Work
	wallet             string
	walletAuto         bool
	keep, verbose      bool
	timeout            time.Duration
}

// demo holds the running pieces and what the checks found.
type demo struct {
	o      options
	out    io.Writer
	dir    string
	failed []string

	srv        *regtest.Server
	caddy      *harness.Caddy
	proxy      *harness.ClientProxy
	walletSide *harness.Relay
	wireSide   *harness.Relay
	resource   string
	cleanups   []func()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.caddy, "caddy", "", "Caddy binary built with caddy-l4 and the hashcash module (required)")
	fs.StringVar(&o.clientproxy, "clientproxy", "", "clientproxy binary (required)")
	price := fs.String("price", "64k", "hashcash price of a request of cost 1.0")
	fs.StringVar(&o.wallet, "wallet", "auto", "wallet to drive: electrum (/usr/bin/electrum), scripted, or auto (electrum if installed)")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory with all logs")
	fs.BoolVar(&o.verbose, "v", false, "print progress and log locations")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	w, err := stamp.ParseWork(*price)
	if err != nil || w == 0 {
		fmt.Fprintf(stderr, "demo: -price %q: %v\n", *price, err)
		return 2
	}
	o.price = w
	if o.caddy == "" || o.clientproxy == "" {
		fmt.Fprintln(stderr, "demo: -caddy and -clientproxy are required")
		return 2
	}
	switch o.wallet {
	case "auto":
		o.wallet, o.walletAuto = "scripted", true
		if _, err := os.Stat(harness.ElectrumBin); err == nil {
			o.wallet = "electrum"
		}
	case "electrum", "scripted":
	default:
		fmt.Fprintf(stderr, "demo: -wallet %q: want auto, electrum or scripted\n", o.wallet)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "electrum-hashcash-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	d := &demo{o: o, out: stdout, dir: dir}
	err = d.run(ctx)
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	if ctx.Err() != nil {
		d.fail("interrupted or timed out (-timeout %v): %v", o.timeout, context.Cause(ctx))
	} else if err != nil {
		d.fail("%v", err)
	}
	if len(d.failed) > 0 {
		fmt.Fprintf(stdout, "\nFAIL (%d):\n", len(d.failed))
		for _, f := range d.failed {
			fmt.Fprintf(stdout, "  - %s\n", f)
		}
		fmt.Fprintf(stdout, "logs kept in %s\n", dir)
		return 1
	}
	if o.keep {
		fmt.Fprintf(stdout, "logs kept in %s\n", dir)
	} else {
		os.RemoveAll(dir)
	}
	fmt.Fprintln(stdout, "\nPASS")
	return 0
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func (d *demo) progress(format string, args ...any) {
	if d.o.verbose {
		fmt.Fprintf(os.Stderr, "demo: "+format+"\n", args...)
	}
}

func (d *demo) fail(format string, args ...any) {
	d.failed = append(d.failed, fmt.Sprintf(format, args...))
}

func (d *demo) check(ok bool, format string, args ...any) string {
	if ok {
		return "yes"
	}
	d.fail(format, args...)
	return "NO"
}

func (d *demo) defer_(f func()) { d.cleanups = append(d.cleanups, f) }

func (d *demo) run(ctx context.Context) error {
	if err := harness.CheckCaddyModule(ctx, d.o.caddy); err != nil {
		return fmt.Errorf("-caddy: %w", err)
	}
	// The wallet's address decides what the chain pays.
	var (
		el     *harness.Electrum
		sw     *scriptedwallet.Wallet
		payTo  string
		wallet string
	)
	if d.o.wallet == "electrum" {
		if err := harness.CheckElectrum(ctx); err != nil {
			return err
		}
		el = harness.NewElectrum(filepath.Join(d.dir, "electrum"))
		if err := os.MkdirAll(el.Dir, 0o755); err != nil {
			return err
		}
		d.defer_(func() { el.StopDaemon(context.Background()) })
		d.progress("creating an Electrum wallet in %s", el.Dir)
		if _, err := el.Create(ctx); err != nil {
			return fmt.Errorf("creating the wallet: %w", err)
		}
		addrs, err := el.Addresses(ctx)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("listing the wallet's addresses: %v", err)
		}
		payTo = addrs[0]
		wallet = "Electrum 4.3.4 daemon (--regtest --oneserver)"
	} else {
		var err error
		sw, err = scriptedwallet.NewWallet(regtest.RegtestHRP, "electrum-hashcash demo", 20, 10)
		if err != nil {
			return err
		}
		payTo = sw.Receiving[0].Address
		wallet = "scripted client sending Electrum 4.3.4's connect and sync requests"
		if d.o.walletAuto {
			wallet += " (" + harness.ElectrumBin + " not found)"
		}
	}

	if err := d.startStack(ctx, payTo); err != nil {
		return err
	}
	d.printf("electrum-hashcash demo\n")
	d.printf("  wallet   %s\n", wallet)
	d.printf("  path     wallet → clientproxy → caddy [hashcash %s, price %s] → regtest Electrum server\n", d.resource, d.o.price)
	d.printf("  chain    height %d, block 1 pays the wallet 50 BTC\n\n", d.srv.Height())

	var scripted *scriptedwallet.Client
	if el != nil {
		if err := d.electrumSession(ctx, el); err != nil {
			return err
		}
	} else {
		c, err := d.scriptedSession(ctx, sw)
		if err != nil {
			return err
		}
		scripted = c
	}
	if err := d.waitQuiet(ctx); err != nil {
		d.fail("%v", err)
	}
	if el != nil {
		if err := el.StopDaemon(ctx); err != nil {
			d.fail("stopping the electrum daemon: %v", err)
		}
	} else {
		scripted.Close()
	}
	d.reportStamping(scripted)
	return d.probes(ctx)
}

// startStack starts the regtest server, caddy, clientproxy and the relays.
func (d *demo) startStack(ctx context.Context, payTo string) error {
	logf, err := os.Create(filepath.Join(d.dir, "regtest.log"))
	if err != nil {
		return err
	}
	d.defer_(func() { logf.Close() })
	d.srv, err = regtest.New(regtest.Config{
		Addresses: []string{payTo},
		Logger:    slog.New(slog.NewTextHandler(logf, nil)),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go d.srv.Serve(ln)
	d.defer_(func() { d.srv.Close() })

	caddyAddr, err := testsupport.FindFreeAddr("127.0.0.1")
	if err != nil {
		return err
	}
	d.resource = caddyAddr
	d.progress("starting caddy on %s (config and log in %s)", caddyAddr, d.dir)
	d.caddy, err = harness.StartCaddy(ctx, d.o.caddy, d.dir, harness.CaddyConfig{
		Listen:   caddyAddr,
		Upstream: ln.Addr().String(),
		Resource: d.resource,
		Price:    d.o.price.String(),
	}, false)
	if err != nil {
		return fmt.Errorf("starting caddy: %w", err)
	}
	d.defer_(func() { d.caddy.Stop(5 * time.Second) })

	d.wireSide, err = harness.NewRelay(caddyAddr)
	if err != nil {
		return err
	}
	d.defer_(func() { d.wireSide.Close() })
	d.progress("starting clientproxy")
	d.proxy, err = harness.StartClientProxy(ctx, d.o.clientproxy, d.dir, harness.ClientProxyConfig{
		Server:   d.wireSide.Addr(),
		Resource: d.resource,
		Work:     d.o.price.String(),
	})
	if err != nil {
		return fmt.Errorf("starting clientproxy: %w", err)
	}
	d.defer_(func() { d.proxy.Stop(5 * time.Second) })
	d.walletSide, err = harness.NewRelay(d.proxy.Addr)
	if err != nil {
		return err
	}
	d.defer_(func() { d.walletSide.Close() })
	return nil
}

func (d *demo) electrumSession(ctx context.Context, el *harness.Electrum) error {
	start := time.Now()
	d.progress("starting the electrum daemon against %s", d.walletSide.Addr())
	if err := el.StartDaemon(ctx, d.walletSide.Addr()); err != nil {
		return fmt.Errorf("starting the electrum daemon: %w", err)
	}
	if err := el.LoadWallet(ctx); err != nil {
		return fmt.Errorf("load_wallet: %w", err)
	}
	var bal harness.Balance
	err := testsupport.Poll(ctx, "wallet synchronized with 50 BTC confirmed", 90*time.Second, 300*time.Millisecond, func() (bool, error) {
		ok, err := el.IsSynchronized(ctx)
		if err != nil || !ok {
			return false, err
		}
		bal, err = el.GetBalance(ctx)
		return err == nil && bal.Confirmed == "50" && bal.Unconfirmed == "", err
	})
	if err != nil {
		return fmt.Errorf("%w (last balance %+v; electrum log %s)", err, bal, el.DaemonLog())
	}
	d.printf("wallet session\n")
	d.printf("  synchronized %.1f s after the daemon started: confirmed balance %s BTC\n", time.Since(start).Seconds(), bal.Confirmed)

	to, err := el.UnusedAddress(ctx)
	if err != nil {
		return err
	}
	tx, err := el.PayTo(ctx, to, "1.5")
	if err != nil {
		return fmt.Errorf("payto: %w", err)
	}
	txid, err := el.Broadcast(ctx, tx)
	if err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	if !slices.Contains(d.srv.Mempool(), txid) {
		return fmt.Errorf("broadcast %s is not in the server's mempool", txid)
	}
	d.srv.Mine(1)
	height := d.srv.Height()
	err = testsupport.Poll(ctx, "payment confirmed", 60*time.Second, 300*time.Millisecond, func() (bool, error) {
		h, err := el.OnchainHistory(ctx)
		for _, t := range h {
			if t.TxID == txid && t.Height == height && t.Confirmations >= 1 {
				return true, nil
			}
		}
		return false, err
	})
	if err != nil {
		return err
	}
	d.printf("  paid 1.5 BTC to itself: broadcast accepted, confirmed in block %d (tx %s…)\n\n", height, txid[:16])
	return nil
}

func (d *demo) scriptedSession(ctx context.Context, w *scriptedwallet.Wallet) (*scriptedwallet.Client, error) {
	c, err := scriptedwallet.Dial(ctx, d.walletSide.Addr())
	if err != nil {
		return nil, err
	}
	rep, err := w.Sync(ctx, c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("scripted sync: %w", err)
	}
	d.printf("wallet session\n")
	d.printf("  synchronized in %.1f s: %d requests, %d transaction(s) SPV-verified, confirmed balance %s BTC\n\n",
		rep.Duration.Seconds(), rep.Requests, rep.Txs, btc(rep.Confirmed))
	if rep.Confirmed != regtest.DefaultCoinbaseValue {
		d.fail("scripted wallet saw %s BTC, want 50", btc(rep.Confirmed))
	}
	return c, nil
}

// waitQuiet waits until every wallet line has reached the server.
func (d *demo) waitQuiet(ctx context.Context) error {
	stable, last := time.Now(), -1
	return testsupport.Poll(ctx, "every wallet request reaching the server", 20*time.Second, 100*time.Millisecond, func() (bool, error) {
		n := len(d.srv.Requests())
		if n != last {
			last, stable = n, time.Now()
		}
		return n == len(d.walletSide.Sent()) && time.Since(stable) > 500*time.Millisecond, nil
	})
}

func (d *demo) reportStamping(scripted *scriptedwallet.Client) {
	server := d.srv.Requests()
	walletConns := harness.ConnLines(d.walletSide)
	var walletLines [][]byte
	for _, c := range walletConns {
		walletLines = append(walletLines, c...)
	}

	// The wire between clientproxy and caddy.
	stamped, badStamps := 0, 0
	var firstBad string
	for _, c := range d.wireSide.Conns() {
		for _, line := range c.Sent() {
			if _, _, err := harness.CheckStampedLine(line, d.resource); err != nil {
				badStamps++
				if firstBad == "" {
					firstBad = err.Error()
				}
				continue
			}
			stamped++
		}
	}
	refused := 0
	for _, l := range d.wireSide.Received() {
		if bytes.Contains(l.Data, []byte(`"error"`)) && bytes.Contains(l.Data, []byte(`"reason":"`)) {
			refused++
		}
	}

	mints, err := d.proxy.Mints()
	if err != nil {
		d.fail("reading clientproxy's log: %v", err)
	}
	var durs []time.Duration
	for _, m := range mints {
		durs = append(durs, m.Duration)
	}

	d.printf("stamping\n")
	d.printf("  %d requests sent by the wallet, %d stamped by clientproxy", len(walletLines), stamped)
	if badStamps > 0 {
		d.printf(", %d with an invalid stamp", badStamps)
	} else if stamped > 0 {
		d.printf(", every stamp valid on the wire")
	}
	d.printf("\n")
	if len(durs) > 0 {
		mean, p95, total := stats(durs)
		d.printf("  minting at %s work: mean %s, p95 %s per request (%s in all, %d cores)\n", d.o.price, ms(mean), ms(p95), ms(total), runtime.NumCPU())
	} else {
		d.fail("clientproxy logged no stamps")
	}
	if scripted != nil {
		var lat []time.Duration
		for _, c := range scripted.Calls() {
			if !c.Answered.IsZero() {
				lat = append(lat, c.Latency())
			}
		}
		if len(lat) > 0 {
			mean, p95, _ := stats(lat)
			d.printf("  round trip seen by the wallet (pipelined): mean %s, p95 %s\n", ms(mean), ms(p95))
		}
	}
	d.printf("  %d accepted by caddy and answered by the server, %d refused\n", len(server), refused)

	diff := harness.MultisetDiff("server", server, "wallet", walletLines)
	matched, ierr := harness.Interleaving(server, walletConns)
	complete := ierr == nil
	for i, n := range matched {
		if n != len(walletConns[i]) {
			complete = false
		}
	}
	ok := diff == "" && complete && len(server) > 0
	d.printf("  every forwarded line matched the wallet's bytes: %s\n", d.check(ok, "forwarded lines differ from the wallet's: %s %v", diff, ierr))
	d.check(badStamps == 0, "%d wire lines without a valid stamp, first: %s", badStamps, firstBad)
	d.check(stamped == len(server)+refused, "wire carried %d stamped lines; %d forwarded + %d refused", stamped, len(server), refused)
	d.check(refused == 0, "caddy refused %d of clientproxy's requests", refused)
	d.printf("\n")
}

// probe is one request sent straight to caddy.
type probe struct {
	name, want string
	lines      [][]byte // sent in order on one connection; the last answer is judged
}

func (d *demo) probes(ctx context.Context) error {
	before := len(d.srv.Requests())
	version := []byte(`{"jsonrpc":"2.0","method":"server.version","id":0,"params":["demo-probe","1.4"]}`)
	good, err := mintLine(ctx, version, d.o.price, d.resource)
	if err != nil {
		return err
	}
	wrong, err := mintLine(ctx, version, d.o.price, "electrum.example.org:50002")
	if err != nil {
		return err
	}
	cheap, err := mintLine(ctx, version, 1, d.resource)
	if err != nil {
		return err
	}
	probes := []probe{
		{"no stamp", "missing", [][]byte{version}},
		{"replayed stamp (2nd copy)", "replayed", [][]byte{good, good}},
		{"stamp for another server", "wrong_resource", [][]byte{wrong}},
		{"stamp with 1 unit of work", "insufficient", [][]byte{cheap}},
	}
	d.printf("probes sent straight to caddy (no clientproxy)\n")
	for _, p := range probes {
		answers, err := exchange(ctx, d.caddy.Addr, p.lines)
		if err != nil {
			d.fail("probe %q: %v", p.name, err)
			d.printf("  %-26s %v\n", p.name, err)
			continue
		}
		for i, a := range answers[:len(answers)-1] {
			if a.err != nil {
				d.fail("probe %q: copy %d refused: %s", p.name, i+1, a.line)
			}
		}
		last := answers[len(answers)-1]
		if last.err == nil {
			d.fail("probe %q was answered: %s", p.name, last.line)
			d.printf("  %-27s → NOT refused: %s\n", p.name, last.line)
			continue
		}
		d.printf("  %-27s → %d %-15s %s\n", p.name, last.err.Code, last.err.Data.Reason, last.err.Message)
		if last.err.Data.Reason != p.want {
			d.fail("probe %q: reason %q, want %q", p.name, last.err.Data.Reason, p.want)
		}
	}
	if n := len(d.srv.Requests()) - before; n != 1 {
		d.fail("the server received %d probe requests; want 1 (the first copy of the replayed stamp)", n)
	}
	return nil
}

// mintLine stamps a request line for resource, at work and now.
func mintLine(ctx context.Context, line []byte, work stamp.Work, resource string) ([]byte, error) {
	return stamp.AppendStamped(ctx, nil, line, stamp.Stamp{Work: uint64(work), Time: time.Now().Unix(), Resource: resource}, 1)
}

type answer struct {
	line string
	err  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Reason string `json:"reason"`
		} `json:"data"`
	}
}

// exchange sends lines one by one on a new connection to addr, reading one
// answer after each.
func exchange(ctx context.Context, addr string, lines [][]byte) ([]answer, error) {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var out []answer
	for _, l := range lines {
		if _, err := c.Write(append(append([]byte(nil), l...), '\n')); err != nil {
			return nil, err
		}
		s, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("no answer: %w", err)
		}
		var a answer
		a.line = strings.TrimSpace(s)
		var msg struct {
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal([]byte(a.line), &msg); err != nil {
			return nil, fmt.Errorf("answer %q: %v", a.line, err)
		}
		if len(msg.Error) > 0 && string(msg.Error) != "null" {
			if err := json.Unmarshal(msg.Error, &a.err); err != nil {
				return nil, fmt.Errorf("error %s: %v", msg.Error, err)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

func stats(ds []time.Duration) (mean, p95, total time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	for _, d := range s {
		total += d
	}
	mean = total / time.Duration(len(s))
	i := int(math.Ceil(0.95*float64(len(s)))) - 1
	return mean, s[max(i, 0)], total
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func btc(sats int64) string {
	s := fmt.Sprintf("%d.%08d", sats/100_000_000, sats%100_000_000)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
