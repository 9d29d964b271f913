package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// testTimeout bounds every wait in the tests.
const testTimeout = 60 * time.Second

// ---------------------------------------------------------------------------
// fakeUpstream plays ElectrumX: it answers each request line, in order, with
// a response padded with spaces inside the JSON, and it enforces that the
// first request is server.version by answering anything else with an error
// and disconnecting.

type fakeUpstream struct {
	t   testing.TB
	ln  net.Listener
	pad int // pad responses to this many bytes (before '\n'), if larger
	wg  sync.WaitGroup

	mu    sync.Mutex
	conns []*upConn
	all   []net.Conn
}

// upConn records one connection to the upstream.
type upConn struct {
	mu        sync.Mutex
	received  bytes.Buffer // every byte received
	lines     [][]byte
	violation string // the first request was not server.version
	closed    chan struct{}
}

func (u *upConn) snapshot() (recv []byte, lines [][]byte, violation string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return bytes.Clone(u.received.Bytes()), append([][]byte(nil), u.lines...), u.violation
}

func newFakeUpstream(t testing.TB, network, addr string, pad int) *fakeUpstream {
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	u := &fakeUpstream{t: t, ln: ln, pad: pad}
	u.wg.Go(u.serve)
	t.Cleanup(u.close)
	return u
}

func (u *fakeUpstream) addr() string { return u.ln.Addr().String() }

func (u *fakeUpstream) close() {
	u.ln.Close()
	u.mu.Lock()
	for _, c := range u.all {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *fakeUpstream) serve() {
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		rec := &upConn{closed: make(chan struct{})}
		u.mu.Lock()
		u.conns = append(u.conns, rec)
		u.all = append(u.all, c)
		u.mu.Unlock()
		u.wg.Go(func() {
			defer close(rec.closed)
			defer c.Close()
			u.handle(c, rec)
		})
	}
}

// conn returns the record of the i-th connection, waiting for it.
func (u *fakeUpstream) conn(i int) *upConn {
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		u.mu.Lock()
		if len(u.conns) > i {
			c := u.conns[i]
			u.mu.Unlock()
			return c
		}
		u.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	u.t.Fatalf("upstream connection %d never came", i)
	return nil
}

// active returns the i-th connection that received data, waiting for it:
// connections that never send anything (a proxy's probe) are skipped.
func (u *fakeUpstream) active(i int) *upConn {
	var found *upConn
	waitFor(u.t, fmt.Sprintf("upstream connection %d with data", i), func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		n := 0
		for _, c := range u.conns {
			c.mu.Lock()
			has := c.received.Len() > 0
			c.mu.Unlock()
			if has {
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

func (u *fakeUpstream) handle(c net.Conn, rec *upConn) {
	br := bufio.NewReaderSize(c, 1<<16)
	bw := bufio.NewWriterSize(c, 1<<16)
	var scan rpcline.Line
	first := true
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			rec.mu.Lock()
			rec.received.Write(line)
			rec.lines = append(rec.lines, bytes.Clone(line))
			rec.mu.Unlock()
		}
		if err != nil {
			return
		}
		body := line[:len(line)-1]
		if rpcline.Scan(body, stamp.Member, &scan) != nil || scan.Kind == rpcline.KindOther {
			bw.WriteString(`{"jsonrpc":"2.0","error":{"code":-32700,"message":"invalid JSON"},"id":null}` + "\n")
		} else {
			if first {
				m, _ := rpcline.StringValue(scan.Objects[0].Method)
				if scan.Kind != rpcline.KindObject || m != "server.version" {
					rec.mu.Lock()
					rec.violation = fmt.Sprintf("first request was %q", body)
					rec.mu.Unlock()
					bw.WriteString(`{"jsonrpc":"2.0","error":{"code":1,"message":"use server.version to identify client"},"id":` + string(scan.Objects[0].ID) + "}\n")
					bw.Flush()
					return
				}
			}
			u.respond(bw, body, &scan)
		}
		first = false
		if br.Buffered() == 0 {
			if bw.Flush() != nil {
				return
			}
		}
	}
}

// respond writes the answer to one request line: the method name as result.
func (u *fakeUpstream) respond(bw *bufio.Writer, body []byte, scan *rpcline.Line) {
	var out []byte
	if scan.Kind == rpcline.KindBatch {
		out = append(out, '[')
	}
	n := 0
	for i := range scan.Objects {
		o := &scan.Objects[i]
		if o.ID == nil || string(o.Method) == `"test.silent"` {
			continue // notifications and test.silent get no answer
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, `{"jsonrpc":"2.0","result":`...)
		out = append(out, o.Method...)
		out = append(out, `,"id":`...)
		out = append(out, o.ID...)
		out = append(out, '}')
	}
	if scan.Kind == rpcline.KindBatch {
		out = append(out, ']')
	} else if n == 0 {
		return // a notification
	}
	if len(out) < u.pad { // pad inside the JSON like ElectrumX does
		last := out[len(out)-1]
		out = append(out[:len(out)-1], bytes.Repeat([]byte{' '}, u.pad-len(out))...)
		out = append(out, last)
	}
	bw.Write(out)
	bw.WriteByte('\n')
}

// expectedAnswer is what the fake upstream answers to a single request.
func expectedAnswer(method string, id string, pad int) string {
	return padded(`{"jsonrpc":"2.0","result":"`+method+`","id":`+id+`}`, pad)
}

// padded pads a JSON object or array with spaces before its closing
// bracket to pad bytes, and adds the line feed.
func padded(out string, pad int) string {
	if len(out) < pad {
		out = out[:len(out)-1] + strings.Repeat(" ", pad-len(out)) + out[len(out)-1:]
	}
	return out + "\n"
}

// ---------------------------------------------------------------------------
// fakeServer is the hashcash handler without Caddy: verify.Verifier.Check on
// every line, forwarding accepted lines to the upstream and answering
// refusals itself. Its policy can be replaced while connections are open.

type fakeServer struct {
	t        testing.TB
	ln       net.Listener
	upstream string
	policy   atomic.Pointer[verify.Policy]
	wg       sync.WaitGroup
	// onRefusal, if set, runs after each refusal, before it is sent.
	onRefusal atomic.Pointer[func()]

	mu      sync.Mutex
	all     []net.Conn
	replies [][]byte // every refusal line sent, in order
	refused map[stamp.Reason]int
	open    int
	closed  chan struct{} // receives when a client connection ends
}

func newFakeServer(t testing.TB, network, addr, upstream string, policy *verify.Policy, tlsCfg *tls.Config) *fakeServer {
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s := &fakeServer{t: t, ln: ln, upstream: upstream, refused: map[stamp.Reason]int{}, closed: make(chan struct{}, 100)}
	s.policy.Store(policy)
	s.wg.Go(s.serve)
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.all {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) setPolicy(p *verify.Policy) { s.policy.Store(p) }

func (s *fakeServer) refusedCount(r stamp.Reason) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused[r]
}

func (s *fakeServer) replyLines() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.replies...)
}

func (s *fakeServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.all = append(s.all, c)
		s.open++
		s.mu.Unlock()
		s.wg.Go(func() {
			s.handle(c)
			s.mu.Lock()
			s.open--
			s.mu.Unlock()
			s.closed <- struct{}{}
		})
	}
}

func (s *fakeServer) handle(c net.Conn) {
	defer c.Close()
	if tc, ok := c.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(testTimeout))
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.SetDeadline(time.Time{})
	}
	up, err := net.Dial("tcp", s.upstream)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.all = append(s.all, up)
	s.mu.Unlock()
	defer up.Close()
	var wg sync.WaitGroup
	var wmu sync.Mutex // the client's writers: the upstream copy and the refusals
	wg.Go(func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				wmu.Lock()
				_, werr := c.Write(buf[:n])
				wmu.Unlock()
				if werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		c.Close()
	})
	defer wg.Wait()
	defer up.Close()
	observe := func(r stamp.Reason) {
		if r != "" {
			s.mu.Lock()
			s.refused[r]++
			s.mu.Unlock()
		}
	}
	var pol *verify.Policy
	var v *verify.Verifier
	var fwdBuf []byte
	br := bufio.NewReaderSize(c, 1<<16)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return
		}
		if p := s.policy.Load(); p != pol {
			pol, v = p, p.NewVerifier(observe)
		}
		fwd, rep := v.Check(fwdBuf[:0], line[:len(line)-1])
		if rep == nil {
			fwdBuf = append(fwd, '\n')
			if _, err := up.Write(fwdBuf); err != nil {
				return
			}
			continue
		}
		reply := append(bytes.Clone(rep), '\n')
		if f := s.onRefusal.Load(); f != nil {
			(*f)()
		}
		s.mu.Lock()
		s.replies = append(s.replies, reply)
		s.mu.Unlock()
		wmu.Lock()
		_, err = c.Write(reply)
		wmu.Unlock()
		if err != nil {
			return
		}
	}
}

func newPolicy(resource string, def uint64, prices map[string]uint64) *verify.Policy {
	return &verify.Policy{
		Resource:     resource,
		DefaultPrice: def,
		MethodPrices: prices,
		Window:       300 * time.Second,
		Skew:         30 * time.Second,
		Store:        replay.NewMemory(1 << 16),
	}
}

// ---------------------------------------------------------------------------
// The proxy under test and a scripted wallet.

type testProxy struct {
	*Proxy
	addr string
	logs *syncBuffer
	stop func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startProxy runs a Proxy for cfg on a loopback listener (listenAddr, or
// 127.0.0.1:0) until the test ends.
func startProxy(t testing.TB, cfg Config, listenAddr string) *testProxy {
	t.Helper()
	logs := &syncBuffer{}
	var w io.Writer = logs
	if testing.Verbose() {
		w = io.MultiWriter(logs, os.Stderr)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if listenAddr == "" {
		listenAddr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	tp := &testProxy{Proxy: p, addr: ln.Addr().String(), logs: logs}
	var once sync.Once
	tp.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(testTimeout):
				t.Errorf("Serve did not return after its context ended")
			}
		})
	}
	t.Cleanup(tp.stop)
	return tp
}

type wallet struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialWallet(t testing.TB, addr string) *wallet {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	return &wallet{t: t, c: c, br: bufio.NewReaderSize(c, 1<<16)}
}

func (w *wallet) send(lines ...string) {
	w.t.Helper()
	if _, err := io.WriteString(w.c, strings.Join(lines, "")); err != nil {
		w.t.Fatalf("wallet write: %v", err)
	}
}

func (w *wallet) readLine() string {
	w.t.Helper()
	line, err := w.br.ReadString('\n')
	if err != nil {
		w.t.Fatalf("wallet read: %v (got %q)", err, line)
	}
	return line
}

// readEOF waits for the proxy to close the connection and returns what
// came before.
func (w *wallet) readEOF() (string, error) {
	b, err := io.ReadAll(w.br)
	return string(b), err
}

// expectClosed checks that the proxy closes the connection without sending
// anything. Closing a socket with unread input resets it, so a reset counts.
func (w *wallet) expectClosed() {
	w.t.Helper()
	got, err := w.readEOF()
	if got != "" || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		w.t.Fatalf("wallet read %q, %v; want the connection closed", got, err)
	}
}

func req(method string, id int, params string) string {
	if params == "" {
		return fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"id":%d}`+"\n", method, id)
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"id":%d,"params":%s}`+"\n", method, id, params)
}

const versionReq = `{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}` + "\n"

// waitFor polls cond until it holds or the test times out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
