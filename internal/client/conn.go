package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// Why a connection ended.
var (
	ErrWalletClosed = errors.New("wallet closed the connection")
	ErrServerClosed = errors.New("server closed the connection")
	errStopped      = errors.New("proxy stopped")
)

// timeMargin is how close to the end of its validity a stamp may be sent.
const timeMargin = 2

// outQueue is how many of the wallet's lines may be read ahead of the
// writer: each starts minting as soon as it is read.
const outQueue = 128

// slot is one piece of the wallet's stream, in order: a request line being
// stamped, or raw bytes to forward untouched. done is closed once b (or
// err) is set; until then only its minter touches b and err.
type slot struct {
	req   *request // nil for raw bytes
	first bool     // the connection's first request
	done  chan struct{}
	b     []byte // the line to send, with its '\n'
	err   error
}

// outLine is a resend ready for the server.
type outLine struct {
	b   []byte
	req *request
}

// conn is one proxied wallet connection. Four goroutines serve it, and
// one more per request line while it is minted:
//
//	readWallet:  frames the wallet's stream into slots, starts minting
//	             each at once (on the cores all connections of the Proxy
//	             share, see Proxy.acquireMint) and queues them in order
//	writeServer: writes the slots in order as each is minted, resends as
//	             they are minted, and holds everything new back until the
//	             connection's first request is answered
//	remint:      mints the resends of refused and stale requests
//	readServer:  passes the server's lines to the wallet, intercepting
//	             the refusals it can cure, and opens the gate
//
// Queues between them are bounded, except the retry queue, which the
// server reader and the writer must never block on.
type conn struct {
	p      *Proxy
	cfg    *Config
	k      *Knowledge
	log    *slog.Logger
	wallet net.Conn
	server net.Conn
	ctx    context.Context
	cancel context.CancelCauseFunc

	out      chan *slot
	retryOut chan outLine
	retries  retryQueue
	table    *table
	minters  sync.WaitGroup

	// The gate: after the connection's first request gateReq the writer
	// sends nothing new until gateCh is closed, when the request is
	// answered or given up.
	gateMu  sync.Mutex
	gateReq *request
	gateCh  chan struct{}

	timersMu sync.Mutex
	timers   map[uint64]*time.Timer // pending delayed resends
	timerSeq uint64

	stats counters
}

func newConn(ctx context.Context, p *Proxy, log *slog.Logger, wallet, server net.Conn) *conn {
	c := &conn{
		p: p, cfg: &p.cfg, k: p.k, log: log,
		wallet: wallet, server: server,
		out:      make(chan *slot, outQueue),
		retryOut: make(chan outLine, 8),
		retries:  retryQueue{notify: make(chan struct{}, 1)},
		table:    newTable(maxOutstanding, maxOutstandingBytes),
		timers:   map[uint64]*time.Timer{},
	}
	c.ctx, c.cancel = context.WithCancelCause(ctx)
	return c
}

// run serves the connection until one side closes or ctx ends.
func (c *conn) run() error {
	stop := context.AfterFunc(c.ctx, func() {
		c.wallet.Close()
		c.server.Close()
	})
	defer stop()
	var wg sync.WaitGroup
	for _, f := range []func() error{c.readWallet, c.remint, c.writeServer, c.readServer} {
		wg.Go(func() { c.cancel(f()) })
	}
	wg.Wait()
	c.minters.Wait() // they end with c.ctx
	c.timersMu.Lock()
	for _, t := range c.timers {
		t.Stop()
	}
	clear(c.timers)
	c.timersMu.Unlock()
	c.wallet.Close()
	c.server.Close()
	err := context.Cause(c.ctx)
	if errors.Is(err, context.Canceled) { // the parent context ended
		err = errStopped
	}
	return err
}

// stopped returns the error a goroutine returns when the connection is
// ending for another reason.
func (c *conn) stopped() error { return context.Cause(c.ctx) }

func (c *conn) ioErr(err error) error {
	if c.ctx.Err() != nil {
		return c.stopped()
	}
	return err
}

func (c *conn) count(f func(*counters)) {
	f(&c.stats)
	f(&c.p.total)
}

// readWallet reads the wallet's lines, starts minting each request line at
// once and queues the lines for the writer in order.
func (c *conn) readWallet() error {
	lr := newLineReader(c.wallet, 64<<10, c.cfg.MaxRequest)
	var seq uint64
	for {
		b, whole, err := lr.next()
		if len(b) > 0 {
			raw := bytes.Clone(b)
			var r *request
			if whole {
				r = prepare(raw[:len(raw)-1])
			}
			s := &slot{req: r, done: make(chan struct{})}
			if r == nil {
				s.b = raw
				close(s.done)
			} else {
				r.seq = seq
				r.attempts = 1 // r is not shared yet
				s.first = seq == 0 && len(r.ids) > 0
				c.count(func(cs *counters) { cs.stamped.Add(uint64(len(r.methods))) })
				c.startMint(s)
			}
			select {
			case c.out <- s:
			case <-c.ctx.Done():
				return c.stopped()
			}
			seq++
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return ErrWalletClosed
			}
			return c.ioErr(err)
		}
	}
}

// startMint stamps s.req with what the proxy knows now and then closes
// s.done: at once when the line goes without stamps, otherwise on a
// goroutine of its own once it has a turn at the Proxy's cores.
func (c *conn) startMint(s *slot) {
	if c.free(s.req) {
		s.b, s.err = c.stampLine(s.req, 0)
		close(s.done)
		return
	}
	c.minters.Go(func() {
		defer close(s.done)
		s.b, s.err = c.mintLine(s.req)
	})
}

// mintLine waits for a turn at the Proxy's cores and stamps r.
func (c *conn) mintLine(r *request) ([]byte, error) {
	release, workers, err := c.p.acquireMint(c.ctx)
	if err != nil {
		return nil, c.stopped()
	}
	defer release()
	return c.stampLine(r, workers)
}

// prepare returns the request a wallet line holds, or nil when the line is
// to be forwarded untouched: not JSON, not a request object or a batch of
// them, already stamped, or with a method the verifier would refuse.
func prepare(line []byte) *request {
	var l rpcline.Line
	if err := rpcline.Scan(line, stamp.Member, &l); err != nil || l.Kind == rpcline.KindOther || len(l.Objects) == 0 {
		return nil
	}
	r := &request{line: line, scan: l, methods: make([]string, len(l.Objects))}
	for i := range l.Objects {
		o := &l.Objects[i]
		if !o.IsObject || o.Duplicate != "" || o.StampCount > 0 {
			return nil
		}
		m, ok := rpcline.StringValue(o.Method)
		if !ok {
			return nil
		}
		r.methods[i] = m
		if o.ID != nil && string(o.ID) != "null" {
			r.ids = append(r.ids, string(o.ID))
		}
	}
	return r
}

// remint mints the resends of refused and stale requests, in the order
// they are queued.
func (c *conn) remint() error {
	for {
		r := c.retries.pop()
		if r == nil {
			select {
			case <-c.retries.notify:
				continue
			case <-c.ctx.Done():
				return c.stopped()
			}
		}
		var b []byte
		var err error
		if c.free(r) {
			b, err = c.stampLine(r, 0)
		} else {
			b, err = c.mintLine(r)
		}
		if err != nil {
			return err
		}
		select {
		case c.retryOut <- outLine{b: b, req: r}:
		case <-c.ctx.Done():
			return c.stopped()
		}
	}
}

// free reports whether every object of r goes without a stamp now.
func (c *conn) free(r *request) bool {
	for _, m := range r.methods {
		if c.workFor(m) != 0 {
			return false
		}
	}
	return true
}

// workFor returns the work to mint a stamp for method with. When the known
// price is above the ceiling, it is 1: a token stamp, so that the server
// answers with its current price (which it may have lowered) and the
// wallet gets the server's refusal, without the proxy spending anything.
func (c *conn) workFor(method string) uint64 {
	w := c.k.Price(method)
	if w > c.cfg.MaxWork {
		return 1
	}
	return w
}

// stampLine mints a stamp for every object of r with what we know now,
// with workers goroutines, and returns the line to send, with its '\n'.
func (c *conn) stampLine(r *request, workers int) ([]byte, error) {
	start := time.Now()
	resource := c.k.Resource()
	free := true
	for _, m := range r.methods {
		free = free && c.workFor(m) == 0
	}
	if free {
		// Free now: the line goes as the wallet wrote it.
		r.minted(resource, make([]uint64, len(r.methods)), make([]int64, len(r.methods)))
		return append(append(make([]byte, 0, len(r.line)+1), r.line...), '\n'), nil
	}
	out := make([]byte, 0, len(r.line)+len(r.methods)*(stamp.MaxTextLen+8)+1)
	out, m, err := stamp.AppendStampedFunc(c.ctx, out, r.line, func(i int) stamp.Stamp {
		st := stamp.Stamp{Work: max(c.workFor(r.methods[i]), 1), Time: c.k.ServerTime(), Resource: resource}
		rand.Read(st.Salt[:])
		return st
	}, max(workers, 1))
	if err != nil {
		if c.ctx.Err() != nil {
			return nil, c.stopped()
		}
		return nil, err
	}
	works := make([]uint64, len(m.Stamps))
	times := make([]int64, len(m.Stamps))
	for i, st := range m.Stamps {
		works[i], times[i] = st.Work, st.Time
	}
	r.minted(resource, works, times)
	d := time.Since(start)
	c.count(func(cs *counters) {
		cs.mints.Add(1)
		cs.mintNanos.Add(uint64(d))
		cs.hashes.Add(m.Attempts)
	})
	if c.log.Enabled(c.ctx, slog.LevelDebug) {
		args := []any{"seq", r.seq, "attempt", r.attempt(), "mint", d.Round(time.Microsecond), "hashes", m.Attempts}
		if len(r.methods) == 1 {
			args = append(args, "method", r.methods[0], "work", works[0])
		} else {
			args = append(args, "batch", len(r.methods), "methods", r.methods, "works", works)
		}
		c.log.Debug("stamped", args...)
	}
	return append(out, '\n'), nil
}

// stale reports whether r's stamps, minted earlier, would now be refused
// for what the proxy has learned since: another resource, a higher price,
// or a time outside the server's window.
func (c *conn) stale(r *request) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resource != c.k.Resource() {
		return true
	}
	for i, m := range r.methods {
		if c.workFor(m) > r.works[i] {
			return true
		}
	}
	if window, skew, ok := c.k.Limits(); ok {
		now := c.k.ServerTime()
		for i, t := range r.times {
			if r.works[i] == 0 {
				continue // sent without a stamp
			}
			if t < now-window+timeMargin || t > now+skew {
				return true
			}
		}
	}
	return false
}

// writeServer writes the wallet's lines to the server in the wallet's
// order, each as soon as it is minted, and resends as they come. Only one
// thing holds new lines back (resends still go): after the connection's
// first request, nothing new is sent until it is answered. ElectrumX
// disconnects a client whose first request is not server.version, and the
// handler does not forward a refused request, so anything sent behind a
// refused first request would overtake it. The first request also teaches
// the proxy whether the server is free, and its price level.
//
// No other request waits for another's answer: prices are predicted from
// the cost table (see Knowledge), and a request of a method whose price
// turns out higher is refused and resent on its own.
//
// A line whose stamps have gone stale since minting (the proxy learned a
// higher price, another resource or clock meanwhile) is minted again
// before it is sent, in its place.
func (c *conn) writeServer() error {
	bw := bufio.NewWriterSize(c.server, 64<<10)
	var (
		gate    <-chan struct{}
		pending *slot // the next line in the wallet's order, being minted
	)
	flush := func() error {
		if bw.Buffered() == 0 {
			return nil
		}
		c.server.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		return bw.Flush()
	}
	for {
		var (
			in    <-chan *slot
			ready <-chan struct{}
		)
		switch {
		case pending == nil:
			in = c.out
		case gate == nil:
			ready = pending.done
		}
		// What is ready goes out without a flush in between; the buffer
		// is flushed before waiting.
		ev := c.next(in, ready, gate, false)
		if ev.what == evNone {
			if err := flush(); err != nil {
				return c.ioErr(err)
			}
			ev = c.next(in, ready, gate, true)
		}
		var b []byte
		switch ev.what {
		case evStopped:
			return c.stopped()
		case evGate:
			gate = nil
			continue
		case evSlot:
			pending = ev.slot
			continue
		case evMinted:
			x := pending
			if x.err != nil {
				return x.err
			}
			if x.req != nil && c.stale(x.req) {
				c.count(func(cs *counters) { cs.restamped.Add(1) })
				x.done = make(chan struct{})
				c.minters.Go(func() {
					defer close(x.done)
					x.b, x.err = c.mintLine(x.req)
				})
				continue
			}
			pending, b = nil, x.b
			if x.req != nil {
				c.table.add(x.req)
				if x.first {
					gate = c.setGate(x.req)
				}
			}
		case evRetry:
			if c.stale(ev.retry.req) {
				c.count(func(cs *counters) { cs.restamped.Add(1) })
				c.retries.push(ev.retry.req)
				continue
			}
			b = ev.retry.b
		}
		c.server.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		if _, err := bw.Write(b); err != nil {
			return c.ioErr(err)
		}
	}
}

// Events the writer waits for.
const (
	evNone    = iota
	evStopped // the connection is ending
	evGate    // the gate opened
	evSlot    // the wallet's next line arrived
	evMinted  // the pending line is minted
	evRetry   // a resend is minted
)

type writerEvent struct {
	what  int
	slot  *slot
	retry outLine
}

// next returns the writer's next event; without block, evNone if none is
// ready. Nil channels are not waited for.
func (c *conn) next(in <-chan *slot, ready, gate <-chan struct{}, block bool) writerEvent {
	if !block {
		select {
		case s := <-in:
			return writerEvent{what: evSlot, slot: s}
		case <-ready:
			return writerEvent{what: evMinted}
		case r := <-c.retryOut:
			return writerEvent{what: evRetry, retry: r}
		case <-gate:
			return writerEvent{what: evGate}
		case <-c.ctx.Done():
			return writerEvent{what: evStopped}
		default:
			return writerEvent{what: evNone}
		}
	}
	select {
	case s := <-in:
		return writerEvent{what: evSlot, slot: s}
	case <-ready:
		return writerEvent{what: evMinted}
	case r := <-c.retryOut:
		return writerEvent{what: evRetry, retry: r}
	case <-gate:
		return writerEvent{what: evGate}
	case <-c.ctx.Done():
		return writerEvent{what: evStopped}
	}
}

// setGate closes the gate behind r and returns the channel that opens it.
// It is called before r is written, so that its answer finds the gate.
func (c *conn) setGate(r *request) <-chan struct{} {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	if c.gateCh != nil {
		close(c.gateCh)
	}
	c.gateReq, c.gateCh = r, make(chan struct{})
	return c.gateCh
}

// openGate opens the gate after the server sent a line: matched is the
// request the line answers (nil if none or unknown), swallowed whether the
// line is a refusal being cured by a resend. Nothing but the first request
// is in flight while the gate is closed, so any line but its refusal being
// cured is its answer (or the server's last word).
func (c *conn) openGate(matched *request, swallowed bool) {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	if c.gateReq == nil || (swallowed && matched == c.gateReq) {
		return
	}
	close(c.gateCh)
	c.gateReq, c.gateCh = nil, nil
}

// readServer passes the server's lines to the wallet, except refusals that
// are cured by a resend.
func (c *conn) readServer() error {
	lr := newLineReader(c.server, 64<<10, c.cfg.MaxLine)
	bw := bufio.NewWriterSize(c.wallet, 64<<10)
	var scan rpcline.Line
	for {
		b, whole, err := lr.next()
		if len(b) > 0 {
			pass := true
			if whole {
				pass = c.judge(b[:len(b)-1], &scan)
			} else {
				c.openGate(nil, false)
			}
			if pass {
				c.wallet.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
				if _, werr := bw.Write(b); werr != nil {
					return c.ioErr(werr)
				}
			}
		}
		if err != nil || lr.buffered() == 0 {
			c.wallet.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
			if ferr := bw.Flush(); ferr != nil {
				return c.ioErr(ferr)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if cw, ok := c.wallet.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
				return ErrServerClosed
			}
			return c.ioErr(err)
		}
	}
}

// judge decides what to do with one line from the server, without its
// '\n': it returns false when the line is a refusal being cured by a
// resend, true when the line goes to the wallet.
func (c *conn) judge(line []byte, scan *rpcline.Line) bool {
	if c.table.empty() {
		// A connection refusal can come before the first request is sent.
		c.noteConnectionRefusal(line, scan, false)
		c.openGate(nil, false)
		return true
	}
	if err := rpcline.Scan(line, stamp.Member, scan); err != nil || scan.Kind == rpcline.KindOther {
		c.openGate(nil, false)
		return true
	}
	var req *request
	for i := range scan.Objects {
		if req = c.table.lookup(scan.Objects[i].ID); req != nil {
			break
		}
	}
	if req == nil { // a notification, the answer to an unstamped line, or a connection refusal
		c.noteConnectionRefusal(line, scan, true)
		c.openGate(nil, false)
		return true
	}
	if (scan.Kind == rpcline.KindBatch) == (req.scan.Kind == rpcline.KindBatch) &&
		bytes.Contains(line, []byte(`"error"`)) {
		// A refused batch is refused whole: every element is an error.
		if rejs := refusals(line, scan); len(rejs) > 0 && len(rejs) == len(scan.Objects) {
			if c.refused(req, rejs) {
				c.openGate(req, true)
				return false
			}
			c.table.remove(req)
			c.openGate(req, false)
			return true
		}
	}
	// An answer: the stamps were accepted at the work they claim.
	for i := range scan.Objects {
		r := c.table.lookup(scan.Objects[i].ID)
		if r == nil {
			continue
		}
		c.table.remove(r)
		r.mu.Lock()
		for j, m := range r.methods {
			c.k.Confirm(m, r.works[j])
		}
		r.mu.Unlock()
		c.openGate(r, false)
	}
	return true
}

// refused learns from the refusals of req and schedules a resend if that
// can help, reporting whether it did. Otherwise the proxy gives up and the
// refusal goes to the wallet.
func (c *conn) refused(req *request, rejs []*stamp.Rejection) bool {
	now := time.Now()
	for _, r := range rejs {
		c.k.Learn(r, now)
	}
	why, busy := "", false
	for _, r := range rejs {
		switch {
		case r.Reason == stamp.ReasonMissing && r.Price > 0 && req.unstamped():
			// Sent without a stamp as free: mint at the price it names.
		case !r.Reason.Curable():
			why = "not curable: " + string(r.Reason)
		case r.Reason.Priced() && r.Price > c.cfg.MaxWork:
			why = "price above max work"
		}
		busy = busy || r.Reason == stamp.ReasonBusy
		if why != "" {
			break
		}
	}
	// A refused guess (no stamp while free, a token stamp after next_fall)
	// teaches the price and is not counted as a try: the wallet never
	// sees the refusal of a request the proxy chose not to pay for.
	guess := req.guessed()
	for _, r := range rejs {
		switch r.Reason {
		case stamp.ReasonMissing, stamp.ReasonInsufficient, stamp.ReasonBatch:
		default:
			guess = false // not an answer to the guess (busy, replayed, ...)
		}
	}
	if why == "" && !guess && req.attempt() >= c.cfg.MaxTries {
		why = "tries exhausted"
	}
	r0 := rejs[0]
	if why != "" {
		c.count(func(cs *counters) { cs.gaveUp.Add(1) })
		c.log.Info("gave up", "seq", req.seq, "method", r0.Method, "reason", r0.Reason,
			"price", r0.Price, "attempts", req.attempt(), "why", why)
		return false
	}
	attempt := req.attempt()
	if !guess {
		attempt = req.nextAttempt()
	}
	c.count(func(cs *counters) { cs.retried.Add(1) })
	c.log.Debug("refused, resending", "seq", req.seq, "method", r0.Method, "reason", r0.Reason,
		"price", r0.Price, "attempt", attempt)
	if !busy {
		c.retries.push(req)
		return true
	}
	c.timersMu.Lock()
	defer c.timersMu.Unlock()
	c.timerSeq++
	id := c.timerSeq
	c.timers[id] = time.AfterFunc(c.cfg.BusyDelay*time.Duration(attempt-1), func() {
		c.timersMu.Lock()
		delete(c.timers, id)
		c.timersMu.Unlock()
		c.retries.push(req)
	})
	return true
}

// noteConnectionRefusal logs a refusal of the whole connection (id null:
// connection_limit, read_timeout, internal), which the server sends just
// before it closes; the line still goes to the wallet.
// scanned says whether scan already holds the line; otherwise it is
// storage to scan it into.
func (c *conn) noteConnectionRefusal(line []byte, scan *rpcline.Line, scanned bool) {
	if !bytes.Contains(line, []byte(`"error"`)) || !bytes.Contains(line, []byte(`null`)) {
		return // the cheap test first: most lines are results
	}
	if !scanned && rpcline.Scan(line, stamp.Member, scan) != nil {
		return
	}
	if scan.Kind != rpcline.KindObject || string(scan.Objects[0].ID) != "null" {
		return
	}
	for _, r := range refusals(line, scan) {
		if r.Reason.ClosesConnection() {
			c.log.Warn("server is closing the connection", "reason", r.Reason, "detail", r.Detail)
		}
	}
}

// refusals returns the hashcash refusals among the objects of a line:
// error responses whose data carries a reason and whose code matches it.
func refusals(line []byte, scan *rpcline.Line) []*stamp.Rejection {
	var rejs []*stamp.Rejection
	for i := range scan.Objects {
		o := &scan.Objects[i]
		if !o.IsObject {
			continue
		}
		text := line[o.Start:o.End]
		if !bytes.Contains(text, []byte(`"error"`)) {
			continue
		}
		var resp struct {
			Error *struct {
				Code int             `json:"code"`
				Data json.RawMessage `json:"data"`
			} `json:"error"`
		}
		if json.Unmarshal(text, &resp) != nil || resp.Error == nil || len(resp.Error.Data) == 0 {
			continue
		}
		r := new(stamp.Rejection)
		if json.Unmarshal(resp.Error.Data, r) != nil || !r.Reason.Known() || r.Reason.Code() != resp.Error.Code {
			continue
		}
		rejs = append(rejs, r)
	}
	return rejs
}

// retryQueue is an unbounded queue of requests to mint again.
type retryQueue struct {
	mu     sync.Mutex
	q      []*request
	notify chan struct{}
}

func (q *retryQueue) push(r *request) {
	q.mu.Lock()
	q.q = append(q.q, r)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *retryQueue) pop() *request {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q) == 0 {
		return nil
	}
	r := q.q[0]
	q.q[0] = nil
	q.q = q.q[1:]
	return r
}
