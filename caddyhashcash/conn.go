package caddyhashcash

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// readChunk is how much is read from the client at a time.
const readChunk = 8 << 10

// maxPendingReplies bounds the error lines queued while the server is in the
// middle of a response; a client that makes more is disconnected.
const maxPendingReplies = 1 << 20

// errTooManyRejections ends a connection that sent too many refused requests.
var errTooManyRejections = errors.New("hashcash: too many refused requests")

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

	// Write side, shared by Read (error lines) and Write (server bytes).
	wmu     sync.Mutex
	midLine bool   // the last byte written to the client was not a line feed
	pending []byte // error lines waiting for a line boundary
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
	for {
		if c.outPos < len(c.out) {
			n := copy(p, c.out[c.outPos:])
			c.outPos += n
			return n, nil
		}
		c.out, c.outPos = c.out[:0], 0
		if cap(c.out) > 4*readChunk {
			c.out = nil
		}
		if c.readErr != nil {
			return 0, c.readErr
		}
		if len(c.in) > c.start {
			// Lines taken over from a matcher's prefetch, or left over.
			c.process()
			if len(c.out) > 0 || c.readErr != nil {
				continue
			}
		}
		c.compact()
		n, err := c.Conn.Read(c.in[len(c.in):cap(c.in)])
		c.in = c.in[:len(c.in)+n]
		c.process()
		if err != nil && c.readErr == nil {
			c.finish()
			c.readErr = err
		}
	}
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
	for c.readErr == nil {
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

// finish handles a last line that the client ended without a line feed.
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

func (c *filterConn) checkLine(line []byte, lineFeed bool) {
	fwd, reply := c.verifier.Check(c.out, line)
	if reply != nil {
		c.refuse(reply)
		return
	}
	c.out = fwd
	if lineFeed {
		c.out = append(c.out, '\n')
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
	if err := c.writeReply(reply); err != nil {
		c.readErr = err
		return
	}
	if strikes := c.verifier.Strikes(); c.h.MaxRejections > 0 && strikes >= c.h.MaxRejections {
		c.h.metrics.closed.Inc()
		c.logger.Info("closing connection after too many refused requests",
			zap.String("remote", c.RemoteAddr().String()),
			zap.Int("refused", strikes))
		c.readErr = errTooManyRejections
	}
}

// writeReply sends an error line to the client now if the server's stream
// is at a line boundary, or queues it for the next boundary.
func (c *filterConn) writeReply(reply []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.pending)+len(reply)+1 > maxPendingReplies {
		return fmt.Errorf("hashcash: more than %d bytes of error replies queued", maxPendingReplies)
	}
	c.pending = append(c.pending, reply...)
	c.pending = append(c.pending, '\n')
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
	_, err := c.Conn.Write(c.pending)
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
	written := 0
	if len(c.pending) > 0 && len(p) > 0 {
		if i := bytes.LastIndexByte(p, '\n'); i >= 0 {
			n, err := c.Conn.Write(p[:i+1])
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
	n, err := c.Conn.Write(p)
	written += n
	if n > 0 {
		c.midLine = p[n-1] != '\n'
	}
	if err == nil && !c.midLine {
		err = c.flushLocked()
	}
	return written, err
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
			_, _ = c.Conn.Write([]byte{'\n'})
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
