package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/client"
)

// An honest wallet, as scenarios 2 and 3 of moving prices run it: an
// Electrum-shaped client that connects to its own clientproxy (package
// client, which is clientproxy's logic, started free as with --work 0), on
// its own client network. clientproxy dials the server from the machine's
// default address, so each wallet's proxy dials a relay of its own, which
// connects to caddy from the wallet's loopback address (127.0.0.x with
// ipv4_prefix 32 is a network of its own) and copies bytes both ways. The
// wallet sends server.version, waits for its answer, then pipelines
// requests of the Electrum mix at a fixed rate, and matches answers to
// requests by id. Any answer that is not a result is an error that reached
// the wallet, as is a request left unanswered or a connection that ends.

// walletConfig is what an honest wallet does.
type walletConfig struct {
	server   string  // caddy's address
	ip       string  // the address its connection to caddy comes from
	resource string  // clientproxy's first guess of the resource
	rate     float64 // requests a second after server.version
	seed     uint64  // of the requests it picks
	// grace is how long the wallet waits for answers after it stops
	// sending.
	grace time.Duration
}

// walletSample is one answered request: when it was sent (since the run's
// start) and how long its answer took.
type walletSample struct {
	at      time.Duration
	latency time.Duration
}

// walletResult is what one honest wallet saw.
type walletResult struct {
	ip         string
	sent       int // requests written, server.version included
	results    int // answers that are results
	errors     int // answers that are errors
	unanswered int // requests without an answer when it stopped
	firstError string
	err        error // the connection failed, or ended early
	samples    []walletSample
	// errorsAt lists when (since the run's start) each request answered
	// with an error was sent, and unansweredAt each left unanswered.
	errorsAt, unansweredAt []time.Duration
	proxy                  client.Stats
}

// failures counts the requests that did not get a result.
func (r *walletResult) failures() int {
	n := r.errors + r.unanswered
	if r.err != nil {
		n++
	}
	return n
}

// relay accepts connections on a loopback port and connects each to server
// from the address from, copying bytes both ways until either side ends.
type relay struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]bool
}

func newRelay(server, from string) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, open: map[net.Conn]bool{}}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Go(func() {
				defer c.Close()
				s, err := d.Dial("tcp", server)
				if err != nil {
					return
				}
				defer s.Close()
				if !r.track(c, s) {
					return
				}
				done := make(chan struct{}, 2)
				pipe := func(dst, src net.Conn) {
					io.Copy(dst, src)
					if cw, ok := dst.(interface{ CloseWrite() error }); ok {
						cw.CloseWrite()
					}
					done <- struct{}{}
				}
				go pipe(s, c)
				go pipe(c, s)
				<-done
				<-done
				r.untrack(c, s)
			})
		}
	})
	return r, nil
}

func (r *relay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open == nil {
		return false
	}
	for _, c := range cs {
		r.open[c] = true
	}
	return true
}

func (r *relay) untrack(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		delete(r.open, c)
	}
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.open {
		c.Close()
	}
	r.open = nil
	r.mu.Unlock()
	r.wg.Wait()
}

// walletLine appends request id of the mix, picked with rng, as Electrum
// writes it; id 0 is server.version.
func walletLine(dst []byte, methods *picker, rng *rand.Rand, id int) []byte {
	m := &methods.methods[0] // server.version
	if id > 0 {
		for m.name == "server.version" {
			m = methods.pick(rng)
		}
	}
	return append(body(dst, m, id, m.params(rng)), '\n')
}

// runWallet runs one honest wallet, with its clientproxy and relay, from
// the run's start until ctx ends, then waits wc.grace for the last answers.
func runWallet(ctx context.Context, wc walletConfig, start time.Time) *walletResult {
	res := &walletResult{ip: wc.ip}
	fail := func(err error) *walletResult {
		res.err = fmt.Errorf("honest wallet %s: %w", wc.ip, err)
		return res
	}
	rl, err := newRelay(wc.server, wc.ip)
	if err != nil {
		return fail(err)
	}
	defer rl.close()
	proxy, err := client.New(client.Config{Server: rl.addr(), Resource: wc.resource, StartFree: true})
	if err != nil {
		return fail(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	pwg.Go(func() { proxy.Serve(pctx, pln) })
	defer func() {
		pcancel()
		pwg.Wait()
		res.proxy = proxy.Stats()
	}()
	c, err := net.Dial("tcp", pln.Addr().String())
	if err != nil {
		return fail(err)
	}
	defer c.Close()

	methods := newPicker(mix())
	rng := rand.New(rand.NewPCG(wc.seed, 7))
	var (
		mu       sync.Mutex
		sentAt   = map[int]time.Time{}
		readErr  error
		readDone = make(chan struct{})
		answered = make(chan struct{}, 1)
	)
	go func() {
		defer close(readDone)
		r := bufio.NewReaderSize(c, 256<<10)
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				if errors.Is(err, bufio.ErrBufferFull) {
					err = errors.New("answer longer than 256 KiB")
				}
				mu.Lock()
				readErr = err
				mu.Unlock()
				return
			}
			now := time.Now()
			id, ok := responseID(line)
			mu.Lock()
			t0, known := sentAt[id]
			if ok && known {
				delete(sentAt, id)
				if bytes.HasPrefix(line, resultPrefix) {
					res.results++
					res.samples = append(res.samples, walletSample{at: t0.Sub(start), latency: now.Sub(t0)})
				} else {
					res.errors++
					res.errorsAt = append(res.errorsAt, t0.Sub(start))
					if res.firstError == "" {
						res.firstError = strings.TrimSpace(string(line))
					}
				}
			} else {
				res.errors++
				if res.firstError == "" {
					res.firstError = "answer to no request: " + strings.TrimSpace(string(line))
				}
			}
			mu.Unlock()
			select {
			case answered <- struct{}{}:
			default:
			}
		}
	}()
	send := func(id int, line []byte) error {
		mu.Lock()
		sentAt[id] = time.Now()
		res.sent++
		mu.Unlock()
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Write(line)
		return err
	}
	var line []byte
	// server.version first, and nothing until it is answered, as Electrum.
	line = walletLine(line[:0], methods, rng, 0)
	if err := send(0, line); err != nil {
		return fail(err)
	}
	select {
	case <-answered:
	case <-readDone:
	case <-ctx.Done():
	}
	interval := time.Duration(float64(time.Second) / wc.rate)
	next := time.Now().Add(time.Duration(rng.Int64N(int64(interval))))
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	earlyEnd := false
sending:
	for id := 1; ; id++ {
		select {
		case <-ctx.Done():
			break sending
		case <-readDone:
			earlyEnd = true
			break sending
		case <-timer.C:
		}
		line = walletLine(line[:0], methods, rng, id)
		if err := send(id, line); err != nil {
			if earlyEnd = ctx.Err() == nil; earlyEnd {
				mu.Lock()
				readErr = err
				mu.Unlock()
			}
			break
		}
		next = next.Add(interval)
		timer.Reset(time.Until(next))
	}
	// The last answers.
	grace := time.NewTimer(wc.grace)
	defer grace.Stop()
	for waiting := !earlyEnd; waiting; {
		mu.Lock()
		left := len(sentAt)
		mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-answered:
		case <-readDone:
			waiting = false
		case <-grace.C:
			waiting = false
		}
	}
	c.Close()
	<-readDone
	mu.Lock()
	defer mu.Unlock()
	res.unanswered = len(sentAt)
	for _, t0 := range sentAt {
		res.unansweredAt = append(res.unansweredAt, t0.Sub(start))
	}
	slices.Sort(res.unansweredAt)
	if earlyEnd {
		res.err = fmt.Errorf("honest wallet %s: connection ended early: %v", wc.ip, readErr)
	}
	return res
}
