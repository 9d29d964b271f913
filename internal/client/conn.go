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

// methodGateTimeout bounds how long the proxy holds the wallet's requests
// back while it waits for the answer to a request of a method whose price
// it does not know yet (see writeServer). A variable for tests.
var methodGateTimeout = 5 * time.Second

// timeMargin is how close to the end of its validity a stamp may be sent.
const timeMargin = 2

// job is one piece of the wallet's stream, in order: a request line to
// stamp, or raw bytes to forward untouched.
type job struct {
	seq uint64
	req *request
	raw []byte
}

// outLine is a piece of the stream ready for the server.
type outLine struct {
	b     []byte
	req   *request // nil for raw bytes
	first bool     // the connection's first request
	retry bool     // a resend
}

// conn is one proxied wallet connection. Four goroutines serve it:
//
//	readWallet:  frames the wallet's stream and queues jobs in order
//	mint:        stamps the jobs in order, and mints resends first
//	writeServer: writes the stamped lines in order, resends when ready,
//	             and holds new lines back while a gate is closed
//	readServer:  passes the server's lines to the wallet, intercepting
//	             the refusals it can cure, and opens gates
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

	jobs     chan job
	out      chan outLine
	retryOut chan outLine
	retries  retryQueue
	table    *table

	// The gate: after the request gateReq the writer sends nothing new
	// until gateCh is closed. A strict gate (the first request) opens only
	// when the request is answered or given up; a method gate also opens
	// when the request is refused (its price is then known).
	gateMu     sync.Mutex
	gateReq    *request
	gateStrict bool
	gateCh     chan struct{}

	timersMu sync.Mutex
	timers   map[uint64]*time.Timer // pending delayed resends
	timerSeq uint64

	stats counters
}

func newConn(ctx context.Context, p *Proxy, log *slog.Logger, wallet, server net.Conn) *conn {
	c := &conn{
		p: p, cfg: &p.cfg, k: p.k, log: log,
		wallet: wallet, server: server,
		jobs:     make(chan job, 64),
		out:      make(chan outLine, 64),
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
	for _, f := range []func() error{c.readWallet, c.mint, c.writeServer, c.readServer} {
		wg.Go(func() { c.cancel(f()) })
	}
	wg.Wait()
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

// readWallet reads the wallet's lines and queues them for minting.
func (c *conn) readWallet() error {
	lr := newLineReader(c.wallet, 64<<10, c.cfg.MaxRequest)
	var seq uint64
	for {
		b, whole, err := lr.next()
		if len(b) > 0 {
			j := job{seq: seq, raw: bytes.Clone(b)}
			if whole {
				j.req = prepare(j.raw[:len(j.raw)-1])
			}
			if j.req != nil {
				j.req.seq = seq
				j.raw = nil
			}
			select {
			case c.jobs <- j:
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

// mint stamps the wallet's lines in order and mints resends, which take
// priority.
func (c *conn) mint() error {
	for {
		if r := c.retries.pop(); r != nil {
			if err := c.resend(r); err != nil {
				return err
			}
			continue
		}
		select {
		case j := <-c.jobs:
			if err := c.process(j); err != nil {
				return err
			}
		case <-c.retries.notify:
		case <-c.ctx.Done():
			return c.stopped()
		}
	}
}

func (c *conn) process(j job) error {
	if j.req == nil {
		return c.deliver(outLine{b: j.raw})
	}
	r := j.req
	r.attempts = 1 // r is not shared yet
	b, err := c.stampLine(r)
	if err != nil {
		return err
	}
	c.count(func(cs *counters) { cs.stamped.Add(uint64(len(r.methods))) })
	c.table.add(r)
	return c.deliver(outLine{b: b, req: r, first: j.seq == 0 && len(r.ids) > 0})
}

// deliver queues x for the writer, minting resends while the queue is
// full: the writer may be holding everything back until a request that
// itself needs a resend is answered.
func (c *conn) deliver(x outLine) error {
	for {
		select {
		case c.out <- x:
			return nil
		case <-c.retries.notify:
			for r := c.retries.pop(); r != nil; r = c.retries.pop() {
				if err := c.resend(r); err != nil {
					return err
				}
			}
		case <-c.ctx.Done():
			return c.stopped()
		}
	}
}

func (c *conn) resend(r *request) error {
	b, err := c.stampLine(r)
	if err != nil {
		return err
	}
	select {
	case c.retryOut <- outLine{b: b, req: r, retry: true}:
		return nil
	case <-c.ctx.Done():
		return c.stopped()
	}
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

// stampLine mints a stamp for every object of r with what we know now and
// returns the line to send, with its '\n'.
func (c *conn) stampLine(r *request) ([]byte, error) {
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
	}, c.cfg.Workers)
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

// confirmed reports whether the prices of all of r's methods are known.
func (c *conn) confirmed(r *request) bool {
	for _, m := range r.methods {
		if !c.k.Confirmed(m) {
			return false
		}
	}
	return true
}

// writeServer writes stamped lines to the server in the wallet's order, and
// resends as they come. Two kinds of gate hold new lines back (resends
// still go):
//
//   - after the connection's first request, until it is answered: ElectrumX
//     disconnects a client whose first request is not server.version, and
//     the handler does not forward a refused request, so anything sent
//     behind a refused first request would overtake it;
//   - after a request of a method whose price is not known yet, until it is
//     answered or refused (or methodGateTimeout passes): then the price is
//     known, and the requests behind it are not all refused at a wrong
//     guess (the handler closes connections that collect refusals).
//
// A line whose stamps have gone stale since minting is not sent but minted
// again.
func (c *conn) writeServer() error {
	bw := bufio.NewWriterSize(c.server, 64<<10)
	var gate <-chan struct{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		in := c.out
		if gate != nil {
			in = nil
		}
		var x outLine
		select {
		case x = <-in:
		case x = <-c.retryOut:
		case <-gate:
			gate = nil
			timer.Stop()
			continue
		case <-timer.C:
			c.log.Debug("no answer to a request of unknown price; sending on", "seq", c.gateSeq())
			c.openGate(nil, true)
			gate = nil
			continue
		case <-c.ctx.Done():
			return c.stopped()
		}
		if x.req != nil && x.first && gate == nil {
			gate = c.setGate(x.req, true)
		}
		if x.req != nil && c.stale(x.req) {
			c.count(func(cs *counters) { cs.restamped.Add(1) })
			c.retries.push(x.req)
		} else {
			if x.req != nil && !x.first && !x.retry && len(x.req.ids) > 0 && !c.confirmed(x.req) {
				gate = c.setGate(x.req, false)
				timer.Reset(methodGateTimeout)
			}
			c.server.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
			if _, err := bw.Write(x.b); err != nil {
				return c.ioErr(err)
			}
		}
		if (gate != nil || len(c.out) == 0) && len(c.retryOut) == 0 {
			c.server.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
			if err := bw.Flush(); err != nil {
				return c.ioErr(err)
			}
		}
	}
}

// setGate closes the gate behind r and returns the channel that opens it.
// It is called before r is written, so that its answer finds the gate.
func (c *conn) setGate(r *request, strict bool) <-chan struct{} {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	if c.gateCh != nil {
		close(c.gateCh)
	}
	c.gateReq, c.gateStrict, c.gateCh = r, strict, make(chan struct{})
	return c.gateCh
}

func (c *conn) gateSeq() uint64 {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	if c.gateReq == nil {
		return 0
	}
	return c.gateReq.seq
}

// openGate opens the gate after the server sent a line: matched is the
// request the line answers (nil if none or unknown), swallowed whether the
// line is a refusal being cured by a resend, force whether the line cannot
// have been judged (or the gate timed out).
func (c *conn) openGate(matched *request, force bool) {
	c.openGateAfter(matched, false, force)
}

func (c *conn) openGateAfter(matched *request, swallowed, force bool) {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	if c.gateReq == nil {
		return
	}
	var open bool
	if c.gateStrict {
		// Nothing but the first request is in flight: any line but its
		// refusal being cured is its answer (or the server's last word).
		open = !(swallowed && matched == c.gateReq)
	} else {
		open = force || matched == c.gateReq
	}
	if open {
		close(c.gateCh)
		c.gateReq, c.gateCh = nil, nil
	}
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
				c.openGate(nil, true)
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
		c.openGate(nil, true)
		return true
	}
	if err := rpcline.Scan(line, stamp.Member, scan); err != nil || scan.Kind == rpcline.KindOther {
		c.openGate(nil, true)
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
				c.openGateAfter(req, true, false)
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
	if why == "" && req.attempt() >= c.cfg.MaxTries {
		why = "tries exhausted"
	}
	r0 := rejs[0]
	if why != "" {
		c.count(func(cs *counters) { cs.gaveUp.Add(1) })
		c.log.Info("gave up", "seq", req.seq, "method", r0.Method, "reason", r0.Reason,
			"price", r0.Price, "attempts", req.attempt(), "why", why)
		return false
	}
	attempt := req.nextAttempt()
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
