// Package client is the wallet side of electrum-hashcash: a local proxy
// that sits between an unmodified Electrum wallet and a server protected by
// the hashcash handler, and mints a proof-of-work stamp into every request
// the wallet sends.
//
// For each wallet connection the proxy opens one connection to the server,
// plain TCP or TLS. Every request line (an object or a batch) gets a stamp
// member per request object, inserted as package rpcline defines, and is
// forwarded in the wallet's order; lines that are not JSON requests are
// forwarded untouched. Everything the server sends reaches the wallet byte
// for byte, except the hashcash refusals of requests the proxy can cure:
// from their data the proxy learns the method's price, the server's resource
// name and clock, mints the request again and resends it. The wallet sees
// the server's refusal unchanged only when the proxy gives up. What is
// learned (Knowledge) is shared by all connections of a Proxy.
//
// # Ordering and minting
//
// Each request line starts minting as soon as it arrives: up to
// Config.Workers lines (of all connections) are minted side by side, a
// line minted alone on all Workers, and the lines go to the server in the
// wallet's order, each as soon as it and those before it are minted.
//
// The connection's first request (server.version for Electrum) is never
// overtaken: nothing else is sent to the server until the first reply to it
// has arrived, since ElectrumX disconnects a client whose first request is
// anything else, and a refused first request is not forwarded by the
// handler. No other request waits for another's answer. Prices are
// predicted rather than probed: a method's price is its cost in the
// handler's cost table times the server's unit price, which every refusal
// from a server whose prices move names, and which the refusal of
// server.version implies on one whose prices are fixed; so the first
// request's refusal, if any, teaches the price of every method. A request
// whose method turns out dearer than predicted (an operator's method_price)
// is refused and resent on its own; the handler does not count such
// refusals against the connection. A line whose stamps went stale while it
// waited (a higher price, another resource or clock learned meanwhile) is
// minted again before it is sent, in its place. Resends go out as soon as
// they are minted, so they may follow requests the wallet sent later. The
// proxy never sends anything of its own to the server.
//
// # Matching answers
//
// Requests are matched to answers by the raw JSON bytes of their ids, which
// the handler echoes. While stamped requests await answers, each line from
// the server is scanned (rpcline.Scan, about 1 GB/s) to find its ids; only
// lines containing "error" are decoded further. Lines longer than
// Config.MaxLine are passed through unparsed as they arrive. Requests
// without an id (notifications) are not tracked, so a refusal of one
// reaches the wallet as it is.
//
// # Closing
//
// When either side closes, the other is closed at once (the server's last
// bytes are delivered to the wallet first); requests not yet sent are
// dropped. Minting is cancelled with the connection.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// Defaults for the zero fields of Config.
const (
	DefaultWork         = 131072 // the handler's default price
	DefaultMaxWork      = 1 << 24
	DefaultMaxTries     = 4
	DefaultDialTimeout  = 10 * time.Second
	DefaultWriteTimeout = 60 * time.Second
	DefaultMaxLine      = 16 << 20
	DefaultMaxRequest   = 4 << 20
	DefaultBusyDelay    = 100 * time.Millisecond

	// Bounds of the table of requests awaiting an answer, per connection.
	maxOutstanding      = 4096
	maxOutstandingBytes = 64 << 20
)

// Config configures a Proxy.
type Config struct {
	// Server is the protected server's address, host:port. IPv6 hosts are
	// bracketed: "[::1]:50002".
	Server string
	// Network is the dial network: "tcp" (default), "tcp4" or "tcp6".
	Network string
	// TLS, if not nil, secures the connection to the server; see
	// NewTLSConfig.
	TLS *tls.Config
	// Resource is the first guess of the server's resource name; empty
	// means Server. Refusals correct it.
	Resource string
	// Work is the first guess of the server's unit price, the work a
	// request of relative cost 1.0 requires: a method's price is guessed
	// as its cost in the handler's cost table times it, rounded up, as
	// the handler prices it. 0 means DefaultWork, the handler's default.
	// A refusal that names a unit price (a server whose prices move)
	// replaces it; the refusal of server.version on a server whose prices
	// are fixed raises it to the unit that price implies. Refusals correct
	// it per method.
	Work uint64
	// StartFree sends requests without stamps until a refusal names a
	// price, for a server that is free while calm (its prices move, see
	// the handler's network_budget); Work is then the guess for a server
	// whose refusals name no unit price.
	StartFree bool
	// MaxWork is the most work the proxy spends on one stamp; 0 means
	// DefaultMaxWork. A request whose price is above it is answered with
	// the server's refusal.
	MaxWork uint64
	// MaxTries is how many times a request is sent at most, the first
	// included; 0 means DefaultMaxTries.
	MaxTries int
	// Workers is how many goroutines mint at once, for all connections
	// together: up to Workers request lines are minted side by side, each
	// as soon as the wallet sends it, and a line minted alone uses all of
	// them. 0 means runtime.NumCPU().
	Workers int
	// DialTimeout bounds connecting to the server, TLS handshake included.
	DialTimeout time.Duration
	// WriteTimeout bounds each write to either side.
	WriteTimeout time.Duration
	// MaxLine is the longest line from the server the proxy parses; longer
	// lines are passed to the wallet unparsed, as they arrive. 0 means
	// DefaultMaxLine.
	MaxLine int
	// MaxRequest is the longest wallet line the proxy stamps; longer lines
	// are forwarded unstamped, as they arrive, for the server to refuse
	// (the handler's default limit is 1,000,000 bytes). 0 means
	// DefaultMaxRequest.
	MaxRequest int
	// BusyDelay is how long the proxy waits before resending a request the
	// server refused as busy, multiplied by the attempt number.
	BusyDelay time.Duration
	// Knowledge, if not nil, is the shared state to learn into; otherwise
	// a new one is made from Resource and Work.
	Knowledge *Knowledge
	// Logger receives one line per connection at open and close, and per
	// stamp at debug level. nil discards.
	Logger *slog.Logger
}

// Stats counts what a Proxy has done.
type Stats struct {
	// Connections is the number of wallet connections served.
	Connections uint64
	// Stamped counts requests (batch elements included) stamped when first
	// sent.
	Stamped uint64
	// Retried counts resends of refused request lines.
	Retried uint64
	// GaveUp counts refused request lines passed to the wallet.
	GaveUp uint64
	// Restamped counts lines minted again before sending, because what the
	// proxy learned meanwhile made their stamps stale.
	Restamped uint64
	// Mints counts stamped lines, resends included.
	Mints uint64
	// MintTime is the total time spent minting.
	MintTime time.Duration
	// Hashes counts hash attempts.
	Hashes uint64
}

type counters struct {
	stamped, retried, gaveUp, restamped, mints, mintNanos, hashes atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Stamped:   c.stamped.Load(),
		Retried:   c.retried.Load(),
		GaveUp:    c.gaveUp.Load(),
		Restamped: c.restamped.Load(),
		Mints:     c.mints.Load(),
		MintTime:  time.Duration(c.mintNanos.Load()),
		Hashes:    c.hashes.Load(),
	}
}

// Proxy serves wallet connections for one server.
type Proxy struct {
	cfg   Config
	k     *Knowledge
	log   *slog.Logger
	conns atomic.Uint64
	total counters

	cores   chan struct{} // a token per line being minted, Workers at most
	waiting atomic.Int64  // lines waiting for a token
}

// New checks cfg, fills in its defaults and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Server == "" {
		return nil, errors.New("client: no server address")
	}
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		return nil, fmt.Errorf("client: server address %q: %v", cfg.Server, err)
	}
	switch cfg.Network {
	case "":
		cfg.Network = "tcp"
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("client: network %q: want tcp, tcp4 or tcp6", cfg.Network)
	}
	if cfg.Resource == "" {
		cfg.Resource = cfg.Server
	}
	if err := stamp.ValidateResource(cfg.Resource); err != nil {
		return nil, fmt.Errorf("client: %v", err)
	}
	if cfg.Work == 0 {
		cfg.Work = DefaultWork
	}
	if cfg.MaxWork == 0 {
		cfg.MaxWork = DefaultMaxWork
	}
	if cfg.Work > cfg.MaxWork {
		return nil, fmt.Errorf("client: work %d is above the ceiling %d", cfg.Work, cfg.MaxWork)
	}
	if cfg.MaxTries <= 0 {
		cfg.MaxTries = DefaultMaxTries
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = DefaultMaxLine
	}
	if cfg.MaxRequest <= 0 {
		cfg.MaxRequest = DefaultMaxRequest
	}
	if cfg.BusyDelay <= 0 {
		cfg.BusyDelay = DefaultBusyDelay
	}
	if cfg.Knowledge == nil {
		if cfg.StartFree {
			cfg.Knowledge = newFreeKnowledge(cfg.Resource, cfg.Work)
		} else {
			cfg.Knowledge = NewKnowledge(cfg.Resource, cfg.Work)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Proxy{cfg: cfg, k: cfg.Knowledge, log: log, cores: make(chan struct{}, cfg.Workers)}, nil
}

// acquireMint waits for a turn to mint, among all the lines of all
// connections of p: at most Workers lines are minted at once, in the order
// they asked. It returns the number of goroutines to mint the line with
// (all Workers when no other line is being minted or waiting, else one:
// several lines minted side by side keep the cores busy without the
// last-chunk waste of splitting each line's search) and the function that
// ends the turn.
func (p *Proxy) acquireMint(ctx context.Context) (release func(), workers int, err error) {
	p.waiting.Add(1)
	select {
	case p.cores <- struct{}{}:
		p.waiting.Add(-1)
	case <-ctx.Done():
		p.waiting.Add(-1)
		return nil, 0, ctx.Err()
	}
	workers = 1
	if len(p.cores) == 1 && p.waiting.Load() == 0 {
		workers = p.cfg.Workers
	}
	return func() { <-p.cores }, workers, nil
}

// Knowledge returns what the proxy has learned about the server.
func (p *Proxy) Knowledge() *Knowledge { return p.k }

// Stats returns the proxy's counters so far.
func (p *Proxy) Stats() Stats {
	s := p.total.snapshot()
	s.Connections = p.conns.Load()
	return s
}

// Serve accepts wallet connections on ln and serves each until ctx ends.
// Then it closes ln and every connection, waits for their goroutines and
// returns nil. It returns an error if ln fails otherwise.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and try again.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("accept failed", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		backoff = 0
		wg.Go(func() { p.ServeConn(ctx, c) })
	}
}

// ServeConn proxies one wallet connection until either side closes it or
// ctx ends, and closes it. It returns why the connection ended.
func (p *Proxy) ServeConn(ctx context.Context, wallet net.Conn) error {
	p.conns.Add(1)
	start := time.Now()
	log := p.log.With("wallet", wallet.RemoteAddr().String())
	log.Info("connection open", "server", p.cfg.Server, "tls", p.cfg.TLS != nil)
	server, err := p.dial(ctx)
	if err != nil {
		wallet.Close()
		log.Warn("connection closed", "err", fmt.Errorf("connecting to %s: %w", p.cfg.Server, err))
		return err
	}
	c := newConn(ctx, p, log, wallet, server)
	err = c.run()
	s := c.stats.snapshot()
	mean := time.Duration(0)
	if s.Mints > 0 {
		mean = s.MintTime / time.Duration(s.Mints)
	}
	log.Info("connection closed",
		"duration", time.Since(start).Round(time.Millisecond),
		"stamped", s.Stamped, "retried", s.Retried, "gave_up", s.GaveUp, "restamped", s.Restamped,
		"mints", s.Mints, "mint_total", s.MintTime.Round(time.Microsecond),
		"mint_mean", mean.Round(time.Microsecond), "hashes", s.Hashes,
		"reason", err)
	return err
}

func (p *Proxy) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	if p.cfg.TLS != nil {
		td := &tls.Dialer{NetDialer: d, Config: p.cfg.TLS}
		return td.DialContext(ctx, p.cfg.Network, p.cfg.Server)
	}
	return d.DialContext(ctx, p.cfg.Network, p.cfg.Server)
}
