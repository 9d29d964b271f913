// Package harness runs the pieces of an electrum-hashcash deployment as
// separate processes on loopback ports and records what passes between them:
// recording TCP relays, a Caddy launcher, a clientproxy launcher, a driver for
// a headless Electrum 4.3.4 daemon, and checks of stamped request lines.
// It is shared by the end-to-end tests (package e2e) and the demo
// (internal/cmd/demo). It is test tooling, not product code.
package harness

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Line is one newline-terminated line that passed a relay, without its '\n'.
type Line struct {
	// Conn is the relay connection's number, from 1 in accept order.
	Conn int
	// Data is the line's bytes.
	Data []byte
	// At is when the relay read the line's last byte.
	At time.Time
}

// Relay is a TCP relay that records, per connection and in total, every line
// the client sent to the upstream and every line the upstream sent back.
type Relay struct {
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	conns  []*RelayConn
	up     []Line // client → upstream, all connections, in arrival order
	down   []Line // upstream → client
	closed bool
	wg     sync.WaitGroup
}

// RelayConn is one relayed connection.
type RelayConn struct {
	ID       int
	Opened   time.Time
	r        *Relay
	client   net.Conn
	upstream net.Conn

	mu                 sync.Mutex
	upBytes, downBytes int
	upLines, downLines [][]byte
	upPart, downPart   []byte
	firstUp            []byte // first bytes the client sent, up to 16
}

// NewRelay listens on a free loopback port and relays every connection to
// upstream.
func NewRelay(upstream string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, upstream: upstream}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr returns the relay's listening address, host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.DialTimeout("tcp", r.upstream, 10*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		rc := &RelayConn{ID: len(r.conns) + 1, Opened: time.Now(), r: r, client: c, upstream: u}
		r.conns = append(r.conns, rc)
		r.mu.Unlock()
		var both sync.WaitGroup
		both.Add(2)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			both.Wait()
			c.Close()
			u.Close()
		}()
		go func() { defer both.Done(); rc.pump(u, c, true) }()
		go func() { defer both.Done(); rc.pump(c, u, false) }()
	}
}

// pump copies src to dst, recording. When src ends it half-closes dst, and
// when dst fails it closes src.
func (rc *RelayConn) pump(dst, src net.Conn, up bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			rc.record(buf[:n], up)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok && (err == io.EOF) {
				tc.CloseWrite()
			} else {
				dst.Close()
			}
			return
		}
	}
}

func (rc *RelayConn) record(b []byte, up bool) {
	now := time.Now()
	var done [][]byte
	rc.mu.Lock()
	part := &rc.downPart
	lines := &rc.downLines
	if up {
		part, lines = &rc.upPart, &rc.upLines
		rc.upBytes += len(b)
		if len(rc.firstUp) < 16 {
			rc.firstUp = append(rc.firstUp, b[:min(len(b), 16-len(rc.firstUp))]...)
		}
	} else {
		rc.downBytes += len(b)
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			*part = append(*part, b...)
			break
		}
		line := append(append([]byte(nil), *part...), b[:i]...)
		*part = (*part)[:0]
		*lines = append(*lines, line)
		done = append(done, line)
		b = b[i+1:]
	}
	rc.mu.Unlock()
	if len(done) == 0 {
		return
	}
	rc.r.mu.Lock()
	for _, l := range done {
		if up {
			rc.r.up = append(rc.r.up, Line{Conn: rc.ID, Data: l, At: now})
		} else {
			rc.r.down = append(rc.r.down, Line{Conn: rc.ID, Data: l, At: now})
		}
	}
	rc.r.mu.Unlock()
}

// Conns returns the relay's connections so far, in accept order.
func (r *Relay) Conns() []*RelayConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*RelayConn(nil), r.conns...)
}

// Sent returns every complete line clients sent, across connections, in
// arrival order.
func (r *Relay) Sent() []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Line(nil), r.up...)
}

// Received returns every complete line upstreams sent back, in arrival order.
func (r *Relay) Received() []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Line(nil), r.down...)
}

// Sent returns the complete lines the client sent on this connection.
func (rc *RelayConn) Sent() [][]byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]byte(nil), rc.upLines...)
}

// Bytes returns how many bytes went up (client → upstream) and down.
func (rc *RelayConn) Bytes() (up, down int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.upBytes, rc.downBytes
}

// FirstBytes returns up to the first 16 bytes the client sent.
func (rc *RelayConn) FirstBytes() []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]byte(nil), rc.firstUp...)
}

// Close stops accepting, closes every connection and waits for the relay's
// goroutines.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	conns := append([]*RelayConn(nil), r.conns...)
	r.mu.Unlock()
	err := r.ln.Close()
	for _, c := range conns {
		c.client.Close()
		c.upstream.Close()
	}
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
