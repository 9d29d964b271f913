// Command clientproxy is the wallet side of electrum-hashcash: a local proxy
// that an unmodified Electrum wallet connects to instead of its server. It
// mints a proof-of-work stamp into every request and forwards it to the
// server protected by the hashcash handler; answers come back unchanged.
//
//	clientproxy --server electrum.example.org:50002 --tls
//	electrum --oneserver --server 127.0.0.1:50001:t
//
// The original Perl prototype's flags still work:
//
//	clientproxy --listen_port=50001 --target_host=my.personal.server --target_port=30001
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/client"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr, nil))
}

// workFlag is a flag taking stamp.ParseWork text; 0 only if zero is set,
// which it then sets.
type workFlag struct {
	w    *uint64
	zero *bool
}

func (f workFlag) String() string {
	if f.w == nil {
		return ""
	}
	return fmtWork(*f.w)
}

// fmtWork formats work as ParseWork reads it, powers of two as 2^n.
func fmtWork(w uint64) string {
	if w >= 1024 && w&(w-1) == 0 {
		return "2^" + strconv.Itoa(bits.TrailingZeros64(w))
	}
	return stamp.Work(w).String()
}

func (f workFlag) Set(s string) error {
	w, err := stamp.ParseWork(s)
	if err != nil {
		return err
	}
	if w == 0 && f.zero == nil {
		return errors.New("work must be at least 1")
	}
	if f.zero != nil {
		*f.zero = w == 0
	}
	if w == 0 {
		return nil
	}
	*f.w = uint64(w)
	return nil
}

// options are the parsed command line.
type options struct {
	listen    string
	listenAny bool
	verbose   bool
	selfTest  bool
	cfg       client.Config
	tls       client.TLSOptions
	useTLS    bool
}

const defaultListen = "127.0.0.1:50001"

const usageHeader = `Usage: clientproxy --server HOST:PORT [flags]

clientproxy listens for Electrum wallet connections on the local machine and,
for each one, connects to the protected server (plain TCP, or TLS with --tls).
Every request the wallet sends gets a hashcash proof-of-work stamp, minted on
all cores; answers come back unchanged. Prices, the server's resource name and
its clock are learned from the server's refusals, and refused requests are
minted again and resent, so the wallet only sees real answers.

Point the wallet at it, for example:
  electrum --oneserver --server 127.0.0.1:50001:t

Flags (one or two dashes; work amounts take 65536, 64k, 1M, 2^16 or 16bits):
`

// parseOptions parses the command line. It returns flag.ErrHelp after
// printing the help for --help.
func parseOptions(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("clientproxy", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, usageHeader)
		fs.PrintDefaults()
	}
	var (
		listenPort, targetPort int
		listenIPv6, targetIPv6 bool
		targetHost             string
		work                   = uint64(client.DefaultWork)
		maxWork                = uint64(client.DefaultMaxWork)
	)
	fs.StringVar(&o.listen, "listen", defaultListen, "`host:port` to listen on for wallets; must be a loopback address unless --listen-any")
	fs.BoolVar(&o.listenAny, "listen-any", false, "allow --listen on a non-loopback address: anyone who can connect can then spend your CPU")
	fs.IntVar(&listenPort, "listen_port", 0, "`port` to listen on (prototype flag; replaces the port of --listen)")
	fs.BoolVar(&listenIPv6, "listen_ipv6", false, "listen on the IPv6 loopback [::1] instead of 127.0.0.1 (prototype flag)")
	fs.StringVar(&o.cfg.Server, "server", "", "protected server `host:port`, e.g. electrum.example.org:50002 or [2001:db8::1]:50002")
	fs.StringVar(&targetHost, "target_host", "", "protected server `host` (prototype flag; with --target_port, instead of --server)")
	fs.IntVar(&targetPort, "target_port", 0, "protected server `port` (prototype flag)")
	fs.BoolVar(&targetIPv6, "target_ipv6", false, "connect to the server over IPv6 only (prototype flag)")
	fs.BoolVar(&o.useTLS, "tls", false, "connect to the server with TLS, verifying its certificate against the system roots")
	fs.StringVar(&o.tls.Fingerprint, "tls-fingerprint", "", "pin the server's certificate by the SHA-256 `hex` of its DER encoding (colons optional) instead of verifying its chain, for self-signed certificates; implies --tls")
	fs.BoolVar(&o.tls.Insecure, "tls-insecure", false, "do not verify the server's certificate at all (for tests only); implies --tls")
	fs.StringVar(&o.tls.ServerName, "tls-server-name", "", "`name` to verify the server's certificate against and send in SNI (default: the server host); implies --tls")
	fs.StringVar(&o.cfg.Resource, "resource", "", "first guess of the server's resource `name` stamps must carry (default: the server address as given); corrected from the server's refusals")
	fs.Var(workFlag{&work, &o.cfg.StartFree}, "work", "first guess of the server's unit price, the `work` of a request of cost 1.0 (each method's guess is its cost in the handler's table times it); corrected from the server's refusals; 0: send requests without stamps until the server names a price (for a server free while calm)")
	fs.Var(workFlag{&maxWork, nil}, "max-work", "most `work` to spend on one stamp; requests priced higher get the server's refusal")
	fs.IntVar(&o.cfg.MaxTries, "max-tries", client.DefaultMaxTries, "how many times to send a request at most, counting the first")
	fs.IntVar(&o.cfg.Workers, "workers", runtime.NumCPU(), "requests minted at once, each as soon as the wallet sends it (a request minted alone uses all of them)")
	fs.DurationVar(&o.cfg.DialTimeout, "dial-timeout", client.DefaultDialTimeout, "bound on connecting to the server, TLS handshake included")
	fs.BoolVar(&o.verbose, "v", false, "log every stamp: method, work, attempt, minting time")
	fs.BoolVar(&o.selfTest, "self-test", false, "mint and check one stamp of --work with this machine's minting kernel, print the rate and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.selfTest {
		o.cfg.Work = work
		return o, nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// Listen address.
	if set["listen_ipv6"] && listenIPv6 {
		if set["listen"] {
			return nil, errors.New("--listen_ipv6 and --listen exclude each other")
		}
		_, port, _ := net.SplitHostPort(defaultListen)
		o.listen = net.JoinHostPort("::1", port)
	}
	host, port, err := net.SplitHostPort(o.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %v", o.listen, err)
	}
	if set["listen_port"] {
		if listenPort < 0 || listenPort > 65535 {
			return nil, fmt.Errorf("--listen_port %d: out of range", listenPort)
		}
		port = strconv.Itoa(listenPort)
	}
	o.listen = net.JoinHostPort(host, port)
	if !isLoopback(host) && !o.listenAny {
		return nil, fmt.Errorf("--listen %s is not a loopback address: anyone who can reach it could make this proxy mint for them; add --listen-any if that is what you want", o.listen)
	}

	// Server address.
	switch {
	case o.cfg.Server != "" && (targetHost != "" || set["target_port"]):
		return nil, errors.New("give either --server or --target_host/--target_port, not both")
	case o.cfg.Server == "" && targetHost == "":
		return nil, errors.New("no server: give --server host:port (or --target_host and --target_port)")
	case o.cfg.Server == "":
		if targetPort <= 0 || targetPort > 65535 {
			return nil, errors.New("--target_host needs --target_port")
		}
		o.cfg.Server = net.JoinHostPort(strings.Trim(targetHost, "[]"), strconv.Itoa(targetPort))
	}
	if _, _, err := net.SplitHostPort(o.cfg.Server); err != nil {
		return nil, fmt.Errorf("--server %q: %v", o.cfg.Server, err)
	}
	if targetIPv6 {
		o.cfg.Network = "tcp6"
	}

	// TLS.
	if o.tls.Fingerprint != "" || o.tls.Insecure || o.tls.ServerName != "" {
		o.useTLS = true
	}
	if o.useTLS {
		if o.cfg.TLS, err = client.NewTLSConfig(o.tls); err != nil {
			return nil, err
		}
	}

	// Work.
	if work > maxWork {
		return nil, fmt.Errorf("--work %s is above --max-work %s", fmtWork(work), fmtWork(maxWork))
	}
	o.cfg.Work, o.cfg.MaxWork = work, maxWork
	if o.cfg.MaxTries < 1 {
		return nil, errors.New("--max-tries must be at least 1")
	}
	if o.cfg.Workers < 1 {
		return nil, errors.New("--workers must be at least 1")
	}
	if o.cfg.Resource != "" {
		if err := stamp.ValidateResource(o.cfg.Resource); err != nil {
			return nil, fmt.Errorf("--resource: %v", err)
		}
	}
	return o, nil
}

// isLoopback reports whether a listen host only accepts local connections.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// run is main without the exit: it returns the exit status. ready, if not
// nil, is called with the listening address once wallets can connect.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr)) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "clientproxy: %v\n", err)
		return 2
	}
	if o.selfTest {
		return selfTest(ctx, o.cfg.Work, o.cfg.Workers, stderr)
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	o.cfg.Logger = log
	p, err := client.New(o.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "clientproxy: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.listen)
	if err != nil {
		log.Error("cannot listen", "err", err)
		return 1
	}
	if o.listenAny {
		log.Warn("listening beyond loopback: anyone who can connect can make this proxy mint for them", "listen", ln.Addr().String())
	}
	log.Info("listening", "listen", ln.Addr().String(), "server", o.cfg.Server, "tls", o.cfg.TLS != nil,
		"pinned", o.tls.Fingerprint != "", "resource", p.Knowledge().Resource(),
		"work", fmtWork(o.cfg.Work), "max_work", fmtWork(o.cfg.MaxWork), "workers", o.cfg.Workers)
	if ready != nil {
		ready(ln.Addr())
	}
	start := time.Now()
	if err := p.Serve(ctx, ln); err != nil {
		log.Error("serving failed", "err", err)
		return 1
	}
	s := p.Stats()
	log.Info("stopped", "uptime", time.Since(start).Round(time.Second), "connections", s.Connections,
		"stamped", s.Stamped, "retried", s.Retried, "gave_up", s.GaveUp, "mint_total", s.MintTime.Round(time.Millisecond))
	return 0
}

// selfTest mints a stamp of work for a fixed request with the machine's
// minting kernel, checks it as a server would, and reports the rate: a
// check that the binary mints correctly where it runs.
func selfTest(ctx context.Context, work uint64, workers int, out io.Writer) int {
	line := []byte(`{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}`)
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	start := time.Now()
	st := stamp.Stamp{Work: work, Time: start.Unix(), Resource: "self-test.invalid:1"}
	stamped, err := stamp.AppendStamped(ctx, nil, line, st, workers)
	if err != nil {
		fmt.Fprintf(out, "clientproxy: self-test: minting: %v\n", err)
		return 1
	}
	elapsed := time.Since(start)
	// Checked as the server checks it: accepted, and forwarded as it was.
	policy := &verify.Policy{Resource: st.Resource, DefaultPrice: work, Window: time.Minute, Skew: time.Minute, Store: replay.NewMemory(1)}
	if fwd, reply := policy.NewVerifier(nil).Check(nil, stamped); reply != nil || string(fwd) != string(line) {
		fmt.Fprintf(out, "clientproxy: self-test: FAIL: the stamped line was refused (%s) or changed (%s)\n", reply, fwd)
		return 1
	}
	fmt.Fprintf(out, "clientproxy self-test: ok: kernel %s, %s/%s, a stamp of work %s minted and verified in %s with %d workers\n",
		stamp.KernelName(), runtime.GOOS, runtime.GOARCH, fmtWork(work), elapsed.Round(time.Microsecond), workers)
	return 0
}
