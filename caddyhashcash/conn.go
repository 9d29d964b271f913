package caddyhashcash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// Errors that end a connection's request stream.
var (
	errTooManyRejections = errors.New("hashcash: too many refused requests")
	errReadTimeout       = errors.New("hashcash: request line not completed within read_timeout")
	errIdleTimeout       = errors.New("hashcash: nothing received within idle_timeout")
	errInternal          = errors.New("hashcash: internal error while verifying")
	errUnloaded          = errors.New("hashcash: config unloaded while the connection was paused")
)

// filterConn sits between the client and the next handler. Its Read returns
// only accepted request lines, stamps removed; refused lines are answered
// with error lines through its replyWriter, which also carries the
// server's bytes to the client (Write). Reading ties the parts together: a
// lineFramer cuts the client's bytes into lines, the verifier judges each,
// the refusal budget paces refusals, and readDeadline bounds each read.
type filterConn struct {
	net.Conn // the client connection, as caddy-l4 hands it to the handler

	env      *connEnv
	ctx      context.Context // the connection's
	verifier *verify.Verifier
	framer   *lineFramer
	replies  *replyWriter
	deadline readDeadline
	budget   refusalBudget
	pricing  *connPricing // nil while the handler's prices are fixed

	// Used only by the goroutine that calls Read.
	out        []byte // accepted bytes not yet returned by Read
	outPos     int
	readErr    error    // why the request stream ended
	clientDone bool     // the client has closed its sending half
	heldBack   bool     // lines wait for the refusal budget: no reading before them
	strikes    int      // refusals that count toward max_rejections
	peeked     [][]byte // buffered lines whose claims process makes at once
	checked    int      // lines checked, for sampling the check's time
}

// maxPreclaimLines is the most buffered lines whose stamps a connection
// claims in one batch, with a store that claims in batches.
const maxPreclaimLines = 64

// newFilterConn wraps cx. Bytes that matchers prefetched are taken into the
// filter now: cx.Wrap would otherwise hand them to the next handler as they
// are.
func newFilterConn(cx *layer4.Connection, env *connEnv, prices *connPricing) (*filterConn, error) {
	s := &env.settings
	c := &filterConn{
		Conn:     cx,
		env:      env,
		ctx:      cx.Context,
		framer:   newLineFramer(s.maxLineBytes),
		deadline: readDeadline{readTimeout: s.readTimeout, idleTimeout: s.idleTimeout},
		budget:   newRefusalBudget(s.refusalRate, s.refusalBurst),
		pricing:  prices,
	}
	if c.ctx == nil {
		c.ctx = context.Background()
	}
	c.replies = &replyWriter{conn: cx, timeout: s.writeTimeout, limit: s.maxPendingReplies, onTimeout: c.writeTimedOut}
	c.verifier = env.policy.NewVerifier(c.observe)
	if prices != nil {
		c.verifier.QuoteBy(prices.quote)
	}
	if n := len(cx.MatchingBytes()); n > 0 {
		prefetched := make([]byte, n)
		if _, err := io.ReadFull(cx, prefetched); err != nil {
			return nil, fmt.Errorf("hashcash: reading prefetched bytes: %w", err)
		}
		c.framer.load(prefetched)
	}
	return c, nil
}

// Read returns accepted request lines, stamps removed, each with its line
// feed.
func (c *filterConn) Read(p []byte) (int, error) {
	if c.outPos == len(c.out) {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.out[c.outPos:])
	c.outPos += n
	return n, nil
}

// Write passes bytes from the server to the client, with queued error
// lines at line boundaries. While max_in_flight is set, its lines count as
// answers to the requests in flight.
func (c *filterConn) Write(p []byte) (int, error) {
	if c.pricing != nil {
		c.pricing.answered(p)
	}
	return c.replies.Write(p)
}

// awaitFirstRequest reads until the client has sent an accepted request,
// answering refused lines meanwhile, and reports whether it did; false
// means the connection has ended (closed by the client, timed out or over
// max_rejections).
func (c *filterConn) awaitFirstRequest() bool {
	return c.fill() == nil
}

// closedForRejections reports whether the handler ended the connection for
// too many refused requests.
func (c *filterConn) closedForRejections() bool {
	return errors.Is(c.readErr, errTooManyRejections)
}

// fill reads and filters client bytes until there are accepted bytes to
// return or the request stream has ended.
func (c *filterConn) fill() error {
	c.out, c.outPos = c.out[:0], 0
	if cap(c.out) > 4*readChunk {
		c.out = nil
	}
	for {
		if c.readErr == nil && c.framer.buffered() {
			// Lines taken over from a matcher's prefetch, left over, or
			// held back by the refusal budget.
			c.process()
		}
		if len(c.out) > 0 || c.readErr != nil {
			// Replies are written once per batch of lines, not per line.
			if err := c.replies.flush(); err != nil && c.readErr == nil {
				c.readErr = err
			}
			if len(c.out) > 0 {
				return c.admit()
			}
			return c.readErr
		}
		if err := c.replies.flush(); err != nil {
			c.readErr = err
			continue
		}
		if c.heldBack {
			// The client has used up its refusals: stop reading it for a
			// while, so that the cost of a flood falls back on the flooder.
			// The lines it held back are handled before anything is read,
			// even if the pause ended in the meantime.
			if err := c.sitOutPause(); err != nil {
				c.readErr = err
				continue
			}
			c.heldBack = false
			if c.framer.buffered() {
				continue
			}
		}
		if c.clientDone {
			// Every complete line is handled: what is left is the last
			// line, which the client ended without a line feed.
			c.finish()
			c.readErr = io.EOF
			continue
		}
		c.readMore()
	}
}

// admit waits, if max_in_flight requests are forwarded and not yet
// answered, until the gate lets the accepted lines in c.out through; the
// connection reads nothing meanwhile. The refusals queued with them are
// sent first.
func (c *filterConn) admit() error {
	if c.pricing == nil {
		return nil
	}
	if err := c.pricing.admit(); err != nil {
		c.out, c.readErr = c.out[:0], err
		return err
	}
	return nil
}

// readMore reads once from the client and handles the lines it completes.
func (c *filterConn) readMore() {
	if d, changed := c.deadline.next(time.Now()); changed {
		_ = c.Conn.SetReadDeadline(d)
	}
	space := c.framer.space()
	n, err := c.Conn.Read(space)
	c.framer.added(n)
	c.process()
	if err != nil && c.readErr == nil {
		c.endOfInput(err)
	}
}

// sitOutPause waits out the refusal budget's pause, or until the
// connection or the handler's config ends. The pause does not count
// against the unfinished line's read_timeout.
func (c *filterConn) sitOutPause() error {
	d := c.budget.pause()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
		return fmt.Errorf("hashcash: connection ended while paused: %w", c.ctx.Err())
	case <-c.env.unloaded:
		return errUnloaded
	}
	c.deadline.paused(d)
	return nil
}

// endOfInput handles the end of the client's byte stream: the client closed
// it (its last line may lack a line feed), or a read failed or timed out.
func (c *filterConn) endOfInput(err error) {
	if err == io.EOF {
		c.clientDone = true // fill handles the buffered lines first
		return
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.readErr = err
		return
	}
	remote := zap.String("remote", c.RemoteAddr().String())
	if c.deadline.lineExpired(time.Now()) {
		rt := c.env.settings.readTimeout
		partial, _ := c.framer.partial()
		c.env.metrics.closedFor(closedReadTimeout).Inc()
		c.env.logger.Info("closing connection: request line not completed within read_timeout",
			remote, zap.Int("partial_bytes", partial), zap.Duration("read_timeout", rt))
		c.refuseAndClose(stamp.ReasonReadTimeout, "a request line must arrive whole within "+rt.String())
		c.readErr = errReadTimeout
		return
	}
	c.env.metrics.closedFor(closedIdleTimeout).Inc()
	c.env.logger.Debug("closing idle connection", remote, zap.Duration("idle_timeout", c.env.settings.idleTimeout))
	c.readErr = errIdleTimeout
}

// process handles every complete line buffered, until the refusal budget
// holds the rest back.
func (c *filterConn) process() {
	defer c.markPartialLine()
	c.heldBack = false
	if c.verifier.BatchesClaims() && !c.budget.paused() {
		// A store across the network (Redis): claim the stamps of every
		// buffered line in one round trip rather than one each.
		most := maxPreclaimLines
		if c.pricing != nil {
			if g := c.pricing.group(); g > 0 {
				most = min(most, g) // the gate takes no more at once
			}
		}
		c.peeked = c.framer.peek(c.peeked[:0], most)
		if len(c.peeked) > 1 {
			c.verifier.Preclaim(c.peeked)
			defer c.verifier.ReleasePreclaimed()
		}
		clear(c.peeked)
	}
	for c.readErr == nil {
		if c.budget.paused() {
			c.heldBack = true // lines may wait: no reading until handled
			return
		}
		if c.pricing != nil && c.pricing.groupFull() {
			return // the rest waits for the gate's next turn
		}
		line, f := c.framer.next()
		switch f {
		case frameNone:
			return
		case frameOverflow:
			c.refuseTooLarge()
			return
		case frameOverflowEnd:
			c.deadline.lineEnded()
		case frameTooLong:
			c.deadline.lineEnded()
			c.refuseTooLarge()
		case frameLine:
			c.deadline.lineEnded()
			c.checkLine(line, true)
		}
	}
}

// markPartialLine notes when an unfinished line began, for read_timeout.
func (c *filterConn) markPartialLine() {
	if _, unfinished := c.framer.partial(); unfinished {
		c.deadline.lineStarted(time.Now())
	}
}

// finish handles a last line that the client ended without a line feed
// before closing its sending half.
func (c *filterConn) finish() {
	switch line, f := c.framer.rest(); f {
	case frameTooLong:
		c.refuseTooLarge()
	case frameLine:
		c.checkLine(line, false)
	}
}

// checkLine verifies one line and appends what to forward to c.out, or
// answers the client. It fails closed: if verification panics, the line is
// refused, nothing of it is forwarded and the connection is closed.
func (c *filterConn) checkLine(line []byte, lineFeed bool) {
	mark := len(c.out)
	defer func() {
		if p := recover(); p != nil {
			c.out = c.out[:mark]
			c.env.metrics.closedFor(closedInternal).Inc()
			c.env.logger.Error("internal error while verifying a request; refused it and closed the connection",
				zap.String("remote", c.RemoteAddr().String()), zap.Any("panic", p), zap.Stack("stack"))
			c.refuseAndClose(stamp.ReasonInternal, "")
			c.readErr = errInternal
		}
	}()
	var fwd, reply []byte
	if c.checked%verifySample == 0 {
		start := time.Now()
		fwd, reply = c.verifier.Check(c.out, line)
		c.env.metrics.verifyTime.Observe(time.Since(start).Seconds())
	} else {
		fwd, reply = c.verifier.Check(c.out, line)
	}
	c.checked++
	if reply != nil {
		c.refuse(reply)
		return
	}
	c.out = fwd
	if lineFeed {
		c.out = append(c.out, '\n')
	}
	if c.pricing != nil && c.verifier.ExpectsAnswer() {
		c.pricing.forwarding()
	}
	c.budget.earn()
}

// refuseAndClose answers the client with a connection-level error (id
// null) before the connection is closed.
func (c *filterConn) refuseAndClose(r stamp.Reason, detail string) {
	err := c.replies.queue(c.env.policy.ConnectionError(r, detail))
	if err == nil {
		err = c.replies.flush()
	}
	if err != nil {
		c.env.logger.Debug("could not send the closing error", zap.Error(err))
	}
}

func (c *filterConn) refuseTooLarge() {
	c.refuse(c.verifier.RefuseTooLarge(c.env.settings.maxLineBytes))
}

// refuse answers a refused line and counts it against the connection.
func (c *filterConn) refuse(reply []byte) {
	if ce := c.env.logger.Check(zap.DebugLevel, "refused request"); ce != nil {
		ce.Write(zap.String("remote", c.RemoteAddr().String()), zap.ByteString("reply", reply))
	}
	if err := c.replies.queue(reply); err != nil {
		c.readErr = err
		return
	}
	c.budget.spend()
	if most := c.env.settings.maxRejections; most > 0 && c.strikes >= most {
		c.env.metrics.closedFor(closedRejections).Inc()
		c.env.logger.Info("closing connection after too many refused requests",
			zap.String("remote", c.RemoteAddr().String()),
			zap.Int("refused", c.strikes))
		c.readErr = errTooManyRejections
	}
}

// observe counts a request's verdict in the metrics and, if it is a
// strike, against the connection.
func (c *filterConn) observe(v verify.Verdict) {
	c.env.metrics.observe(v)
	if v.Strike {
		c.strikes++
	}
	if c.pricing != nil {
		c.pricing.spent(v)
	}
}

// writeTimedOut records a client disconnected for not reading.
func (c *filterConn) writeTimedOut() {
	c.env.metrics.closedFor(closedWriteTimeout).Inc()
	c.env.logger.Info("closing connection: client did not read within write_timeout",
		zap.String("remote", c.RemoteAddr().String()),
		zap.Duration("write_timeout", c.env.settings.writeTimeout))
}

// closeWriter is a connection whose sending half can be shut down alone.
type closeWriter interface {
	CloseWrite() error
}

// CloseWrite sends any queued error lines, ending an unfinished server line
// first, and then shuts down the sending half of the client connection, so
// that proxy's half-close reaches the client.
func (c *filterConn) CloseWrite() error {
	c.replies.finish()
	if cw, ok := c.underlying().(closeWriter); ok {
		return cw.CloseWrite()
	}
	return nil
}

// underlying returns the net.Conn beneath caddy-l4's Connection wrappers.
func (c *filterConn) underlying() net.Conn {
	conn := c.Conn
	for {
		cx, ok := conn.(*layer4.Connection)
		if !ok {
			return conn
		}
		conn = cx.Conn
	}
}
