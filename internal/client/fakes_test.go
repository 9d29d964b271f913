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
	"maps"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/methodcost"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// testTimeout bounds every wait in the tests.
const testTimeout = 60 * time.Second

// ---------------------------------------------------------------------------
// The upstream plays ElectrumX: testsupport's recording Upstream answering
// with electrumAnswer.

// newFakeUpstream starts an upstream on host that answers as ElectrumX
// does, each response padded to pad bytes.
func newFakeUpstream(t testing.TB, host string, pad int) *testsupport.Upstream {
	return testsupport.NewUpstream(t, host, testsupport.UpstreamOptions{Pad: pad, Answer: electrumAnswer})
}

// electrumAnswer answers the n-th request line of a connection as ElectrumX
// does: each request with its method name as the result, notifications and
// test.silent not at all, a batch with an array. A connection whose first
// request is not server.version gets an error and is closed.
func electrumAnswer(body []byte, n int) ([]byte, error) {
	var scan rpcline.Line
	if rpcline.Scan(body, stamp.Member, &scan) != nil || scan.Kind == rpcline.KindOther {
		return []byte(`{"jsonrpc":"2.0","error":{"code":-32700,"message":"invalid JSON"},"id":null}`), nil
	}
	if n == 0 {
		method, id := "", []byte("null")
		if scan.Kind == rpcline.KindObject {
			o := &scan.Objects[0]
			method, _ = rpcline.StringValue(o.Method)
			if o.ID != nil {
				id = o.ID
			}
		}
		if method != "server.version" {
			return []byte(`{"jsonrpc":"2.0","error":{"code":1,"message":"use server.version to identify client"},"id":` + string(id) + "}"),
				fmt.Errorf("first request was %q", body)
		}
	}
	var out []byte
	if scan.Kind == rpcline.KindBatch {
		out = append(out, '[')
	}
	answered := 0
	for i := range scan.Objects {
		o := &scan.Objects[i]
		if o.ID == nil || string(o.Method) == `"test.silent"` {
			continue // notifications and test.silent get no answer
		}
		if answered > 0 {
			out = append(out, ',')
		}
		answered++
		out = append(out, `{"jsonrpc":"2.0","result":`...)
		out = append(out, o.Method...)
		out = append(out, `,"id":`...)
		out = append(out, o.ID...)
		out = append(out, '}')
	}
	if scan.Kind == rpcline.KindBatch {
		return append(out, ']'), nil
	}
	if answered == 0 {
		return nil, nil // a notification
	}
	return out, nil
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
	srv      *testsupport.Server
	upstream string
	policy   atomic.Pointer[verify.Policy]
	// onRefusal, if set, runs after each refusal, before it is sent.
	onRefusal atomic.Pointer[func()]
	// quote, if set when a connection's policy is loaded, prices requests
	// by policy.Costs times its unit, as the handler does while prices
	// move.
	quote  atomic.Pointer[verify.Quote]
	closed chan struct{} // receives when a client connection ends

	mu      sync.Mutex
	replies [][]byte // every refusal line sent, in order
	refused map[stamp.Reason]int
}

func newFakeServer(t testing.TB, network, addr, upstream string, policy *verify.Policy, tlsCfg *tls.Config) *fakeServer {
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s := &fakeServer{upstream: upstream, refused: map[stamp.Reason]int{}, closed: make(chan struct{}, 100)}
	s.policy.Store(policy)
	s.srv = testsupport.Serve(ln, func(c net.Conn) {
		s.handle(c)
		s.closed <- struct{}{}
	})
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeServer) addr() string { return s.srv.Addr() }

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
	observe := func(v verify.Verdict) {
		if r := v.Reason; r != "" {
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
			if s.quote.Load() != nil {
				v.QuoteBy(func(time.Time) verify.Quote { return *s.quote.Load() })
			}
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

// newPolicy prices as the handler does with fixed prices: each method its
// cost times def, methods not in the cost table def, prices overriding.
func newPolicy(resource string, def uint64, prices map[string]uint64) *verify.Policy {
	table := map[string]uint64{}
	for m, c := range methodcost.Table() {
		table[m] = priceUp(c, def)
	}
	maps.Copy(table, prices)
	return &verify.Policy{
		Resource:     resource,
		DefaultPrice: def,
		MethodPrices: table,
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
	logs *testsupport.SyncBuffer
	stop func()
}

// startProxy runs a Proxy for cfg on a loopback listener (listenAddr, or
// 127.0.0.1:0) until the test ends.
func startProxy(t testing.TB, cfg Config, listenAddr string) *testProxy {
	t.Helper()
	logs := &testsupport.SyncBuffer{}
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
