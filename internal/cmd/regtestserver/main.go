// Command regtestserver runs the regtest Electrum test server of package
// internal/regtest on a TCP address.
//
// Usage:
//
//	regtestserver -listen 127.0.0.1:0 -addresses bcrt1q…,bcrt1q… [-blocks 1]
//	    [-maturity-blocks 100] [-mine-every 2s] [-hold 1s] [-log-requests FILE] [-v]
//
// -hold 1s makes the server hold small answers back as ElectrumX does
// (regtest.Config.Hold): once a connection has been sent 1 KiB, answers
// wait until 1 KiB is buffered or the hold since the last write ends, and
// every write is padded to a power of two of at least 1 KiB.
//
// The first line on stdout is "listening on <host:port>". Each mined block
// is reported on stdout as "mined block <height> <hash>". SIGUSR1 mines one
// block; SIGINT and SIGTERM stop the server.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/regtest"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "regtestserver:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("regtestserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "TCP address to listen on")
	addrList := fs.String("addresses", "", "comma-separated bcrt1 addresses the initial coinbases pay to, in turn")
	addrFile := fs.String("addresses-file", "", "file with bcrt1 addresses (one per line or comma-separated; # starts a comment)")
	blocks := fs.Int("blocks", 1, "number of initial coinbase blocks paying to the addresses")
	maturity := fs.Int("maturity-blocks", regtest.DefaultMaturityBlocks, "blocks mined after the initial ones so their coinbases mature")
	value := fs.Int64("coinbase-value", regtest.DefaultCoinbaseValue, "coinbase value in satoshis")
	logRequests := fs.String("log-requests", "", "append every received request line to this file")
	mineEvery := fs.Duration("mine-every", 0, "mine a block (with the mempool) at this interval; 0 disables")
	hold := fs.Duration("hold", 0, "hold small answers back as ElectrumX does for up to this long (ElectrumX: 1s) once a connection has been sent 1 KiB, and pad writes; 0 writes at once")
	verbose := fs.Bool("v", false, "log diagnostics to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	addrs := splitAddresses(*addrList)
	if *addrFile != "" {
		b, err := os.ReadFile(*addrFile)
		if err != nil {
			return fmt.Errorf("read addresses file: %w", err)
		}
		addrs = append(addrs, splitAddresses(string(b))...)
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg := regtest.Config{
		Addresses:      addrs,
		InitialBlocks:  noneIfZero(*blocks),
		MaturityBlocks: noneIfZero(*maturity),
		CoinbaseValue:  *value,
		Hold:           *hold,
		Logger:         slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	if *logRequests != "" {
		f, err := os.OpenFile(*logRequests, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open request log: %w", err)
		}
		defer f.Close()
		cfg.RequestLog = f
	}

	srv, err := regtest.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "listening on %s\n", ln.Addr()); err != nil {
		_ = ln.Close()
		return fmt.Errorf("write stdout: %w", err)
	}
	var outMu sync.Mutex
	mine := func() {
		srv.Mine(1)
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(stdout, "mined block %d %s\n", srv.Height(), srv.TipHash())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)

	var ticks <-chan time.Time
	if *mineEvery > 0 {
		t := time.NewTicker(*mineEvery)
		defer t.Stop()
		ticks = t.C
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	for {
		select {
		case <-ticks:
			mine()
		case <-usr1:
			mine()
		case err := <-serveErr:
			cerr := srv.Close()
			return errors.Join(err, cerr)
		case <-ctx.Done():
			cerr := srv.Close()
			return errors.Join(<-serveErr, cerr)
		}
	}
}

// noneIfZero maps a flag value of 0 to the Config convention for "none"
// (negative), since 0 in Config means "default".
func noneIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// splitAddresses splits on commas and whitespace, dropping '#' comments.
func splitAddresses(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		out = append(out, strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' })...)
	}
	return out
}
