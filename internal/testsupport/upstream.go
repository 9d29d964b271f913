package testsupport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// UpstreamOptions configures an Upstream.
type UpstreamOptions struct {
	// Pad, if positive, pads each answer with spaces before its last byte
	// (inside the JSON, as ElectrumX does) to this many bytes, its line
	// feed not counted.
	Pad int
	// Chunk, if positive, writes each answer in pieces of this many bytes
	// with a short pause between them.
	Chunk int
	// Answer, if not nil, returns the answer to line (without its line
	// feed), the n-th line of its connection counting from 0, or nil for
	// none. An error closes the connection once the answer is written, and
	// is kept as the connection's Err. Nil answers every line with
	// {"jsonrpc":"2.0","result":n,"id":ID}, ID being the request's id, or
	// null for a batch or a request without one.
	Answer func(line []byte, n int) ([]byte, error)
}

// Upstream is an Electrum-shaped TCP server for tests: it records every
// byte it receives, per connection and in all, and answers each request
// line, as UpstreamOptions says.
type Upstream struct {
	// Addr is the address it listens on.
	Addr string

	opts UpstreamOptions
	srv  *Server

	mu       sync.Mutex
	received []byte
	conns    []*UpstreamConn
}

// UpstreamConn is the record of one connection to an Upstream.
type UpstreamConn struct {
	done chan struct{}

	mu       sync.Mutex
	received []byte
	lines    [][]byte
	err      error
}

// NewUpstream starts an Upstream on host ("127.0.0.1" or "::1") and closes
// it when the test ends.
func NewUpstream(t testing.TB, host string, opts UpstreamOptions) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("upstream listen: %v", err)
	}
	u := &Upstream{Addr: ln.Addr().String(), opts: opts}
	u.srv = Serve(ln, u.serve)
	t.Cleanup(u.Close)
	return u
}

// Received returns a copy of every whole line received so far, from all
// connections, in arrival order.
func (u *Upstream) Received() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return bytes.Clone(u.received)
}

// Accepted returns how many connections the upstream has accepted.
func (u *Upstream) Accepted() int { return u.srv.Accepted() }

// Open returns how many of its connections are still open.
func (u *Upstream) Open() int { return u.srv.Open() }

// Close stops the upstream and waits for its goroutines.
func (u *Upstream) Close() { u.srv.Close() }

// Conn returns the record of the i-th connection (from 0, in the order
// the upstream started serving them), waiting for it.
func (u *Upstream) Conn(t testing.TB, i int) *UpstreamConn {
	t.Helper()
	return u.nth(t, fmt.Sprintf("upstream connection %d", i), i, func(*UpstreamConn) bool { return true })
}

// Active returns the record of the i-th connection that received data,
// waiting for it: connections that never send anything (a proxy's probe)
// are skipped.
func (u *Upstream) Active(t testing.TB, i int) *UpstreamConn {
	t.Helper()
	return u.nth(t, fmt.Sprintf("upstream connection %d with data", i), i, func(c *UpstreamConn) bool { return !c.idle() })
}

// nth waits for the i-th connection that matches, and returns its record.
func (u *Upstream) nth(t testing.TB, what string, i int, match func(*UpstreamConn) bool) *UpstreamConn {
	t.Helper()
	var found *UpstreamConn
	WaitFor(t, what, func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		n := 0
		for _, c := range u.conns {
			if match(c) {
				if n == i {
					found = c
					return true
				}
				n++
			}
		}
		return false
	})
	return found
}

// Snapshot returns copies of what the connection has received: every
// byte, the same split into lines (each with its line feed, but for an
// unfinished last one), and the error its Answer returned, if any.
func (c *UpstreamConn) Snapshot() (received []byte, lines [][]byte, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines = make([][]byte, len(c.lines))
	for i, l := range c.lines {
		lines[i] = bytes.Clone(l)
	}
	return bytes.Clone(c.received), lines, c.err
}

// Err returns the error Answer returned for the connection, which closed
// it, or nil.
func (c *UpstreamConn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done returns a channel that is closed when the connection has ended.
func (c *UpstreamConn) Done() <-chan struct{} { return c.done }

func (c *UpstreamConn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.received) == 0
}

func (c *UpstreamConn) record(line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.received = append(c.received, line...)
	c.lines = append(c.lines, bytes.Clone(line))
}

func (c *UpstreamConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

func (u *Upstream) serve(c net.Conn) {
	rec := &UpstreamConn{done: make(chan struct{})}
	defer close(rec.done)
	u.mu.Lock()
	u.conns = append(u.conns, rec)
	u.mu.Unlock()
	br := bufio.NewReaderSize(c, 64<<10)
	// A small writer: answers to pipelined lines go out together, and the
	// per-connection memory stays what the capacity test documents (its
	// figure includes this upstream's side).
	bw := bufio.NewWriter(c)
	for n := 0; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			rec.record(line)
		}
		if err != nil {
			return
		}
		u.mu.Lock()
		u.received = append(u.received, line...)
		u.mu.Unlock()
		answer, aerr := u.answer(line[:len(line)-1], n)
		if aerr != nil {
			rec.fail(aerr)
		}
		if answer != nil {
			if err := u.write(bw, u.pad(answer)); err != nil {
				return
			}
		}
		if aerr != nil {
			bw.Flush()
			return
		}
		if br.Buffered() == 0 && bw.Flush() != nil {
			return
		}
	}
}

// answer returns the answer to the n-th line of a connection.
func (u *Upstream) answer(line []byte, n int) ([]byte, error) {
	if u.opts.Answer != nil {
		return u.opts.Answer(line, n)
	}
	var req struct {
		ID json.RawMessage `json:"id"`
	}
	id := []byte("null")
	if json.Unmarshal(line, &req) == nil && len(req.ID) > 0 {
		id = req.ID
	}
	return []byte(`{"jsonrpc":"2.0","result":` + strconv.Itoa(n) + `,"id":` + string(id) + "}"), nil
}

// pad returns answer padded to opts.Pad bytes, with its line feed.
func (u *Upstream) pad(answer []byte) []byte {
	out := make([]byte, 0, max(len(answer), u.opts.Pad)+1)
	if n := u.opts.Pad - len(answer); n > 0 && len(answer) > 0 {
		out = append(out, answer[:len(answer)-1]...)
		out = append(out, bytes.Repeat([]byte{' '}, n)...)
		out = append(out, answer[len(answer)-1])
	} else {
		out = append(out, answer...)
	}
	return append(out, '\n')
}

// write writes b, in pieces of opts.Chunk bytes if that is set.
func (u *Upstream) write(bw *bufio.Writer, b []byte) error {
	if u.opts.Chunk <= 0 {
		_, err := bw.Write(b)
		return err
	}
	for len(b) > 0 {
		k := min(u.opts.Chunk, len(b))
		bw.Write(b[:k])
		if err := bw.Flush(); err != nil {
			return err
		}
		b = b[k:]
		time.Sleep(200 * time.Microsecond)
	}
	return nil
}
