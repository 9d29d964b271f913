package caddyhashcash

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// readChunk is how much is read from the client at a time.
const readChunk = 8 << 10

// Errors that end a connection's request stream.
var (
	errTooManyRejections = errors.New("hashcash: too many refused requests")
	errReadTimeout       = errors.New("hashcash: request line not completed within read_timeout")
	errIdleTimeout       = errors.New("hashcash: nothing received within idle_timeout")
	errInternal          = errors.New("hashcash: internal error while verifying")
)

// filterConn sits between the client and the next handler. Its Read returns
// only accepted request lines, stamps removed; refused lines are answered
// by writing an error line to the client. Its Write passes the server's
// bytes to the client, and inserts queued error lines only where the
// server's byte stream is at a line boundary, so an error never lands
// inside a response.
type filterConn struct {
	net.Conn // the client connection, as caddy-l4 hands it to the handler

	h        *Handler
	verifier *verify.Verifier
	logger   *zap.Logger

	// Read side, used only by the goroutine that calls Read.
	in         []byte // bytes read from the client: in[start:] is unprocessed
	start      int    // beginning of the current, incomplete line
	scanned    int    // in[start:scanned] holds no line feed
	discarding bool   // inside a line longer than MaxLineBytes
	out        []byte // accepted bytes not yet returned by Read
	outPos     int
	readErr    error
	lineSince  time.Time // when the first byte of the unfinished line came
	clientDone bool      // the client has closed its sending half
	heldBack   bool      // process stopped for the refusal budget
	budget     refusalBudget
	deadline   time.Time // the read deadline set on the client connection

	// Write side, shared by Read (error lines) and Write (server bytes).
	wmu     sync.Mutex
	midLine bool   // the last byte written to the client was not a line feed
	pending []byte // error lines waiting for a line boundary

	writeTimedOut bool // the client stopped reading; the connection is closed
}

// newFilterConn wraps cx. Bytes that matchers prefetched are taken into the
// filter now: cx.Wrap would otherwise hand them to the next handler as they
// are.
func newFilterConn(cx *layer4.Connection, h *Handler) (*filterConn, error) {
	fc := &filterConn{
		Conn:   cx,
		h:      h,
		logger: h.logger,
		in:     make([]byte, 0, readChunk),
		budget: newRefusalBudget(h.RefusalRate, h.RefusalBurst),
	}
	fc.verifier = h.policy.NewVerifier(func(r stamp.Reason) { h.metrics.observe(h.Resource, r) })
	if n := len(cx.MatchingBytes()); n > 0 {
		fc.in = append(fc.in, make([]byte, n)...)
		if _, err := io.ReadFull(cx, fc.in); err != nil {
			return nil, fmt.Errorf("hashcash: reading prefetched bytes: %w", err)
		}
	}
	return fc, nil
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

// awaitFirstRequest reads until the client has sent an accepted request,
// answering refused lines meanwhile, and reports whether it did; false
// means the connection has ended (closed by the client, timed out or over
// max_rejections).
func (c *filterConn) awaitFirstRequest() bool {
	return c.fill() == nil
}

// fill reads and filters client bytes until there are accepted bytes to
// return or the request stream has ended.
func (c *filterConn) fill() error {
	c.out, c.outPos = c.out[:0], 0
	if cap(c.out) > 4*readChunk {
		c.out = nil
	}
	for {
		if c.readErr == nil && len(c.in) > c.start {
			// Lines taken over from a matcher's prefetch, left over, or
			// held back by the refusal budget.
			c.process()
			c.markPartialLine()
		}
		if len(c.out) > 0 || c.readErr != nil {
			// Replies are written once per batch of lines, not per line.
			if err := c.flushReplies(); err != nil && c.readErr == nil {
				c.readErr = err
			}
			if len(c.out) > 0 {
				return nil
			}
			return c.readErr
		}
		if err := c.flushReplies(); err != nil {
			c.readErr = err
			continue
		}
		if c.heldBack {
			// The client has used up its refusals: stop reading it for a
			// while, so that the cost of a flood falls back on the flooder.
			// The pause does not count against the line's read_timeout.
			// The lines it held back are handled before anything is read,
			// even if the pause ended in the meantime.
			if d := c.budget.pause(); d > 0 {
				time.Sleep(d)
				if !c.lineSince.IsZero() {
					c.lineSince = c.lineSince.Add(d)
				}
			}
			c.heldBack = false
			if len(c.in) > c.start {
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
		c.compact()
		c.setReadDeadline()
		n, err := c.Conn.Read(c.in[len(c.in):cap(c.in)])
		c.in = c.in[:len(c.in)+n]
		c.process()
		c.markPartialLine()
		if err != nil && c.readErr == nil {
			c.endOfInput(err)
		}
	}
}

// markPartialLine notes when an unfinished line began, for read_timeout.
func (c *filterConn) markPartialLine() {
	if c.lineSince.IsZero() && (len(c.in) > c.start || c.discarding) {
		c.lineSince = time.Now()
	}
}

// setReadDeadline bounds the next read: by read_timeout from the first byte
// of an unfinished line, and by idle_timeout from now.
func (c *filterConn) setReadDeadline() {
	var d time.Time
	if idle := time.Duration(c.h.IdleTimeout); idle > 0 {
		d = time.Now().Add(idle)
	}
	if rt := time.Duration(c.h.ReadTimeout); rt > 0 && !c.lineSince.IsZero() {
		if line := c.lineSince.Add(rt); d.IsZero() || line.Before(d) {
			d = line
		}
	}
	if d.Equal(c.deadline) {
		return
	}
	c.deadline = d
	_ = c.Conn.SetReadDeadline(d)
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
	if !c.lineSince.IsZero() && time.Duration(c.h.ReadTimeout) > 0 &&
		!time.Now().Before(c.lineSince.Add(time.Duration(c.h.ReadTimeout))) {
		c.h.metrics.closedFor(closedReadTimeout).Inc()
		c.logger.Info("closing connection: request line not completed within read_timeout",
			remote, zap.Int("partial_bytes", len(c.in)-c.start), zap.Duration("read_timeout", time.Duration(c.h.ReadTimeout)))
		c.refuseAndClose(stamp.ReasonReadTimeout, "a request line must arrive whole within "+time.Duration(c.h.ReadTimeout).String())
		c.readErr = errReadTimeout
		return
	}
	c.h.metrics.closedFor(closedIdleTimeout).Inc()
	c.logger.Debug("closing idle connection", remote, zap.Duration("idle_timeout", time.Duration(c.h.IdleTimeout)))
	c.readErr = errIdleTimeout
}

// compact moves the unprocessed bytes to the front of the input buffer and
// makes room for another read, growing the buffer only as far as a line of
// MaxLineBytes needs.
func (c *filterConn) compact() {
	if c.start > 0 {
		n := copy(c.in, c.in[c.start:])
		c.in = c.in[:n]
		c.scanned -= c.start
		c.start = 0
	}
	if cap(c.in) > 4*readChunk && len(c.in) < readChunk/2 {
		// A long line has passed: give its memory back.
		c.in = append(make([]byte, 0, readChunk), c.in...)
	}
	if cap(c.in)-len(c.in) < readChunk/2 {
		grown := make([]byte, len(c.in), 2*cap(c.in)+readChunk)
		copy(grown, c.in)
		c.in = grown
	}
}

// process handles every complete line in the input buffer.
func (c *filterConn) process() {
	c.heldBack = false
	for c.readErr == nil {
		if c.budget.paused() {
			c.heldBack = true // lines may wait in c.in: no reading until handled
			return
		}
		i := bytes.IndexByte(c.in[c.scanned:], '\n')
		if i < 0 {
			c.scanned = len(c.in)
			if c.discarding {
				c.in, c.start, c.scanned = c.in[:0], 0, 0
			} else if len(c.in)-c.start > c.h.MaxLineBytes {
				c.refuseTooLarge()
				c.discarding = true
				c.in, c.start, c.scanned = c.in[:0], 0, 0
			}
			return
		}
		end := c.scanned + i
		line := c.in[c.start:end]
		c.start, c.scanned = end+1, end+1
		c.lineSince = time.Time{}
		switch {
		case c.discarding:
			c.discarding = false
		case len(line) > c.h.MaxLineBytes:
			c.refuseTooLarge()
		default:
			c.checkLine(line, true)
		}
	}
}

// finish handles a last line that the client ended without a line feed
// before closing its sending half.
func (c *filterConn) finish() {
	if c.discarding || len(c.in) == c.start {
		return
	}
	line := c.in[c.start:]
	c.start, c.scanned = len(c.in), len(c.in)
	if len(line) > c.h.MaxLineBytes {
		c.refuseTooLarge()
		return
	}
	c.checkLine(line, false)
}

// checkLine verifies one line and appends what to forward to c.out, or
// answers the client. It fails closed: if verification panics, the line is
// refused, nothing of it is forwarded and the connection is closed.
func (c *filterConn) checkLine(line []byte, lineFeed bool) {
	mark := len(c.out)
	defer func() {
		if p := recover(); p != nil {
			c.out = c.out[:mark]
			c.h.metrics.closedFor(closedInternal).Inc()
			c.logger.Error("internal error while verifying a request; refused it and closed the connection",
				zap.String("remote", c.RemoteAddr().String()), zap.Any("panic", p), zap.Stack("stack"))
			c.refuseAndClose(stamp.ReasonInternal, "")
			c.readErr = errInternal
		}
	}()
	fwd, reply := c.verifier.Check(c.out, line)
	if reply != nil {
		c.refuse(reply)
		return
	}
	c.out = fwd
	if lineFeed {
		c.out = append(c.out, '\n')
	}
	c.budget.earn()
}

// refuseAndClose answers the client with a connection-level error (id
// null) before the connection is closed.
func (c *filterConn) refuseAndClose(r stamp.Reason, detail string) {
	err := c.queueReply(c.h.policy.ConnectionError(r, detail))
	if err == nil {
		err = c.flushReplies()
	}
	if err != nil {
		c.logger.Debug("could not send the closing error", zap.Error(err))
	}
}

func (c *filterConn) refuseTooLarge() {
	c.refuse(c.verifier.RefuseTooLarge(c.h.MaxLineBytes))
}

// refuse answers a refused line and counts it against the connection.
func (c *filterConn) refuse(reply []byte) {
	if ce := c.logger.Check(zap.DebugLevel, "refused request"); ce != nil {
		ce.Write(zap.String("remote", c.RemoteAddr().String()), zap.ByteString("reply", reply))
	}
	if err := c.queueReply(reply); err != nil {
		c.readErr = err
		return
	}
	c.budget.spend()
	if strikes := c.verifier.Strikes(); c.h.MaxRejections > 0 && strikes >= c.h.MaxRejections {
		c.h.metrics.closedFor(closedRejections).Inc()
		c.logger.Info("closing connection after too many refused requests",
			zap.String("remote", c.RemoteAddr().String()),
			zap.Int("refused", strikes))
		c.readErr = errTooManyRejections
	}
}

// queueReply queues an error line for the client; flushReplies sends it.
func (c *filterConn) queueReply(reply []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if limit := c.h.maxPendingReplies(); len(c.pending)+len(reply)+1 > limit {
		return fmt.Errorf("hashcash: more than %d bytes of error replies queued", limit)
	}
	c.pending = append(c.pending, reply...)
	c.pending = append(c.pending, '\n')
	return nil
}

// flushReplies sends the queued error lines now if the server's stream is
// at a line boundary; otherwise Write sends them at the next boundary.
func (c *filterConn) flushReplies() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.midLine {
		return nil
	}
	return c.flushLocked()
}

// flushLocked writes the queued error lines; c.wmu must be held and the
// client stream must be at a line boundary.
func (c *filterConn) flushLocked() error {
	if len(c.pending) == 0 {
		return nil
	}
	c.setWriteDeadlineLocked()
	_, err := c.writeLocked(c.pending)
	c.pending = c.pending[:0]
	if err != nil {
		return fmt.Errorf("hashcash: writing error reply: %w", err)
	}
	return nil
}

// Write passes bytes from the server to the client, flushing queued error
// lines at the first line boundary.
func (c *filterConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.setWriteDeadlineLocked()
	written := 0
	if len(c.pending) > 0 && len(p) > 0 {
		if i := bytes.LastIndexByte(p, '\n'); i >= 0 {
			n, err := c.writeLocked(p[:i+1])
			written += n
			if err != nil {
				return written, err
			}
			c.midLine = false
			if err := c.flushLocked(); err != nil {
				return written, err
			}
			p = p[i+1:]
		}
	}
	if len(p) == 0 {
		return written, nil
	}
	n, err := c.writeLocked(p)
	written += n
	if n > 0 {
		c.midLine = p[n-1] != '\n'
	}
	if err == nil && !c.midLine {
		err = c.flushLocked()
	}
	return written, err
}

// setWriteDeadlineLocked bounds the next write to the client by
// write_timeout; c.wmu must be held.
func (c *filterConn) setWriteDeadlineLocked() {
	if wt := time.Duration(c.h.WriteTimeout); wt > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(wt))
	}
}

// writeLocked writes to the client; c.wmu must be held. A client that has
// not taken the bytes within write_timeout is disconnected: the connection
// is closed, which also ends the reading side.
func (c *filterConn) writeLocked(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && !c.writeTimedOut {
		c.writeTimedOut = true
		c.h.metrics.closedFor(closedWriteTimeout).Inc()
		c.logger.Info("closing connection: client did not read within write_timeout",
			zap.String("remote", c.RemoteAddr().String()),
			zap.Duration("write_timeout", time.Duration(c.h.WriteTimeout)))
		_ = c.Conn.Close()
	}
	return n, err
}

// closeWriter is a connection whose sending half can be shut down alone.
type closeWriter interface {
	CloseWrite() error
}

// CloseWrite sends any queued error lines, ending an unfinished server line
// first, and then shuts down the sending half of the client connection, so
// that proxy's half-close reaches the client.
func (c *filterConn) CloseWrite() error {
	c.wmu.Lock()
	if len(c.pending) > 0 {
		if c.midLine {
			_, _ = c.writeLocked([]byte{'\n'})
			c.midLine = false
		}
		_ = c.flushLocked()
	}
	c.wmu.Unlock()
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
