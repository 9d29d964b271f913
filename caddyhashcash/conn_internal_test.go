package caddyhashcash

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

const testResource = "electrum.test:50002"

// testClock is the fixed time of the stamps in these tests.
var testClock = time.Unix(1_795_470_000, 0)

// scriptedConn is a client connection that delivers a byte stream in the
// given chunks, then io.EOF, and records what is written to it.
type scriptedConn struct {
	chunks  [][]byte
	written bytes.Buffer
	// eofWithLast returns io.EOF together with the last chunk, as a TLS
	// connection may.
	eofWithLast bool
}

func (c *scriptedConn) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if c.eofWithLast && len(c.chunks) == 1 && len(c.chunks[0]) == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (c *scriptedConn) Write(p []byte) (int, error) { return c.written.Write(p) }
func (c *scriptedConn) Close() error                { return nil }
func (c *scriptedConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50002}
}
func (c *scriptedConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *scriptedConn) SetDeadline(time.Time) error { return nil }
func (c *scriptedConn) SetReadDeadline(time.Time) error {
	return nil
}
func (c *scriptedConn) SetWriteDeadline(time.Time) error { return nil }

// testEnv returns the connection environment of a handler for
// testResource with the given options, resolved as Provision resolves them,
// whose stamps are checked against the fixed testClock at the given price
// (server.ping free) with the given replay store. Unless options says
// otherwise, refusal pacing runs at a rate so high that its pauses take
// microseconds: lines held back by it are still processed later, without
// slowing the tests.
func testEnv(t testing.TB, price uint64, store replay.Store, options func(*Handler)) *connEnv {
	t.Helper()
	h := &Handler{Resource: testResource, RefusalRate: 1e6, RefusalBurst: 2}
	if options != nil {
		options(h)
	}
	if err := h.applyDefaults(); err != nil {
		t.Fatal(err)
	}
	return &connEnv{
		settings: h.resolveSettings(),
		policy: &verify.Policy{
			Resource:     testResource,
			DefaultPrice: price,
			MethodPrices: map[string]uint64{"server.ping": 0},
			Window:       time.Hour,
			Skew:         time.Minute,
			Store:        store,
			Now:          func() time.Time { return testClock },
		},
		metrics: newHandlerMetrics(nil, testResource, nil),
		logger:  zap.NewNop(),
	}
}

// limits returns options that set max_line_bytes and max_rejections.
func limits(maxLine, maxRejections int) func(*Handler) {
	return func(h *Handler) { h.MaxLineBytes, h.MaxRejections = maxLine, maxRejections }
}

// filterStream runs chunks through a filterConn as one connection and
// returns what it forwarded, what it answered, and the error that ended it.
func filterStream(t testing.TB, env *connEnv, chunks [][]byte) (forwarded, answered []byte, end error) {
	t.Helper()
	return filterConnStream(t, env, &scriptedConn{chunks: chunks})
}

func filterConnStream(t testing.TB, env *connEnv, client *scriptedConn) (forwarded, answered []byte, end error) {
	t.Helper()
	fc, err := newFilterConn(layer4.WrapConnection(client, nil, zap.NewNop()), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 777) // an odd size, so that Read splits lines too
	for range 1 << 20 {
		n, err := fc.Read(buf)
		forwarded = append(forwarded, buf[:n]...)
		if err != nil {
			return forwarded, client.written.Bytes(), err
		}
	}
	t.Fatal("filterConn.Read never ended")
	return nil, nil, nil
}

// stampLine inserts a stamp for testResource, minted for work at testClock,
// into the request object line.
func stampLine(t testing.TB, line string, work uint64) string {
	t.Helper()
	stamped, err := stamp.AppendStamped(context.Background(), nil, []byte(line), stamp.Stamp{Work: work, Time: testClock.Unix(), Resource: testResource}, 1)
	if err != nil {
		t.Fatalf("stampLine(%q): %v", line, err)
	}
	return string(stamped)
}

// replyReasons returns the reasons of the errors in answered, one line an
// error or, for a refused batch, an array of them, checking that each is a
// well-formed JSON-RPC error whose code matches its reason.
func replyReasons(t testing.TB, answered []byte) []stamp.Reason {
	t.Helper()
	type errorResponse struct {
		ID    json.RawMessage `json:"id"`
		Error *struct {
			Code int             `json:"code"`
			Data stamp.Rejection `json:"data"`
		} `json:"error"`
	}
	var reasons []stamp.Reason
	for _, line := range bytes.Split(bytes.TrimSuffix(answered, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var resps []errorResponse
		if line[0] == '[' {
			if err := json.Unmarshal(line, &resps); err != nil || len(resps) == 0 {
				t.Fatalf("batch reply is not a JSON array of errors: %q", line)
			}
		} else {
			resps = make([]errorResponse, 1)
			if err := json.Unmarshal(line, &resps[0]); err != nil {
				t.Fatalf("reply is not JSON: %q", line)
			}
		}
		for _, resp := range resps {
			if resp.Error == nil || resp.Error.Code != resp.Error.Data.Reason.Code() {
				t.Fatalf("reply is not an error whose code matches its reason: %q", line)
			}
			reasons = append(reasons, resp.Error.Data.Reason)
		}
	}
	return reasons
}

// panickingStore fails the way a bug would: it panics.
type panickingStore struct{}

func (panickingStore) Claim(replay.Key, int64, int64) error { panic("replay store bug") }
func (panickingStore) Release(replay.Key)                   {}

// unavailableStore cannot answer, like a shared store that is down.
type unavailableStore struct{ claims int }

func (s *unavailableStore) Claim(replay.Key, int64, int64) error {
	s.claims++
	return errors.New("replay store unreachable")
}
func (*unavailableStore) Release(replay.Key) {}

func TestFailsClosedWhenVerificationPanics(t *testing.T) {
	free := `{"jsonrpc":"2.0","method":"server.ping","id":1}` + "\n"
	stamped := stampLine(t, `{"jsonrpc":"2.0","method":"server.banner","id":2}`, 16) + "\n"
	after := `{"jsonrpc":"2.0","method":"server.ping","id":3}` + "\n"
	env := testEnv(t, 16, panickingStore{}, nil)
	forwarded, answered, end := filterStream(t, env, [][]byte{[]byte(free + stamped + after)})
	if string(forwarded) != free {
		t.Fatalf("forwarded %q, want only the free request before the failure", forwarded)
	}
	if got := replyReasons(t, answered); len(got) != 1 || got[0] != stamp.ReasonInternal {
		t.Fatalf("answered %q, want one internal error", answered)
	}
	if !bytes.Contains(answered, []byte(`"id":null`)) || !bytes.Contains(answered, []byte(`"code":-32603`)) {
		t.Fatalf("internal error is not a -32603 with id null: %q", answered)
	}
	if !errors.Is(end, errInternal) {
		t.Fatalf("connection ended with %v, want errInternal", end)
	}
}

func TestFailsClosedWhenReplayStoreCannotAnswer(t *testing.T) {
	store := &unavailableStore{}
	env := testEnv(t, 16, store, nil)
	var stream []byte
	for id := range 3 {
		stream = append(stream, stampLine(t, `{"jsonrpc":"2.0","method":"server.banner","id":`+string(rune('0'+id))+`}`, 16)+"\n"...)
	}
	forwarded, answered, end := filterStream(t, env, [][]byte{stream})
	if len(forwarded) != 0 {
		t.Fatalf("forwarded %q without a replay check", forwarded)
	}
	got := replyReasons(t, answered)
	if len(got) != 3 || got[0] != stamp.ReasonBusy || got[2] != stamp.ReasonBusy {
		t.Fatalf("answered %v, want busy for each request", got)
	}
	if store.claims != 3 || end != io.EOF {
		t.Fatalf("claims %d, end %v: want 3 and the client's EOF", store.claims, end)
	}
}

// framingCorpus is a stream of lines of every kind the filter meets, for
// the framing fuzz target's seeds.
func framingCorpus(t testing.TB) []byte {
	lines := []string{
		stampLine(t, `{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}`, 1),
		`{"jsonrpc":"2.0","method":"server.ping","id":1}`,
		`{"jsonrpc":"2.0","method":"server.banner","id":2}`,
		`not json`,
		stampLine(t, `{"jsonrpc":"2.0","method":"blockchain.scripthash.subscribe","id":3,"params":["`+string(bytes.Repeat([]byte("ab"), 32))+`"]}`, 1),
		`{"jsonrpc":"2.0","method":"blockchain.transaction.broadcast","id":4,"params":["` + string(bytes.Repeat([]byte("00"), 200)) + `"]}`,
		`[{"jsonrpc":"2.0","method":"server.ping","id":5},{"jsonrpc":"2.0","method":"server.ping","id":6}]`,
		``,
		`{"jsonrpc":"2.0","method":"server.ping","id":7}`,
	}
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\n')
	}
	return append(b, `{"jsonrpc":"2.0","method":"server.ping","id":8}`...) // no final line feed
}

// FuzzFramingUnderChunking: however the same client byte stream is cut into
// reads, the filter forwards the same bytes and answers the same replies as
// when it arrives in one piece. Price 1 makes every well-formed stamp
// valid, so that mutated streams keep accepted lines among refused ones,
// and lines over 256 bytes exercise the too-large path.
func FuzzFramingUnderChunking(f *testing.F) {
	stream := framingCorpus(f)
	f.Add(stream, []byte{1})
	f.Add(stream, []byte{7, 200, 3, 64})
	f.Add(stream, []byte{255, 1, 1, 2, 250})
	f.Add([]byte("{\"method\":\"server.ping\"}\n\n\n{"), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		if len(stream) > 64<<10 {
			return
		}
		run := func(chunks [][]byte) ([]byte, []byte, error) {
			return filterStream(t, testEnv(t, 1, replay.NewMemory(1024), limits(256, 5)), chunks)
		}
		wantFwd, wantAns, wantEnd := run([][]byte{bytes.Clone(stream)})
		var chunks [][]byte
		rest := stream
		for i := 0; len(rest) > 0; i++ {
			size := len(rest)
			if len(cuts) > 0 {
				size = min(int(cuts[i%len(cuts)])+1, len(rest))
			}
			chunks = append(chunks, bytes.Clone(rest[:size]))
			rest = rest[size:]
		}
		gotFwd, gotAns, gotEnd := run(chunks)
		if !bytes.Equal(gotFwd, wantFwd) {
			t.Fatalf("chunked into %d reads, forwarded\n%q\nwant\n%q", len(chunks), gotFwd, wantFwd)
		}
		if !bytes.Equal(gotAns, wantAns) {
			t.Fatalf("chunked into %d reads, answered\n%q\nwant\n%q", len(chunks), gotAns, wantAns)
		}
		if !errors.Is(gotEnd, wantEnd) {
			t.Fatalf("chunked, ended with %v, want %v", gotEnd, wantEnd)
		}
		replyReasons(t, wantAns) // every answer is a well-formed error line
	})
}

// TestFramingCorpusExercisesEveryPath checks that the fuzz target's seed
// stream is not trivially all refused or all accepted.
func TestFramingCorpusExercisesEveryPath(t *testing.T) {
	env := testEnv(t, 1, replay.NewMemory(1024), limits(256, 5))
	forwarded, answered, end := filterStream(t, env, [][]byte{framingCorpus(t)})
	for _, want := range []string{`"id":0,"params":["electrum/4.3.4","1.4"]}` + "\n", `"id":1}` + "\n", `"id":7}` + "\n", `"id":8}`} {
		if !bytes.Contains(forwarded, []byte(want)) {
			t.Errorf("forwarded stream lacks %q:\n%q", want, forwarded)
		}
	}
	if bytes.Contains(forwarded, []byte(stamp.Member)) {
		t.Errorf("a stamp was forwarded:\n%q", forwarded)
	}
	want := []stamp.Reason{stamp.ReasonMissing, stamp.ReasonParse, stamp.ReasonTooLarge, stamp.ReasonParse}
	if got := replyReasons(t, answered); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("answered reasons %v, want %v", got, want)
	}
	if end != io.EOF {
		t.Errorf("ended with %v, want EOF", end)
	}
}

// TestRefusalBudget runs on synctest's clock, which moves only when every
// goroutine of the test waits, so its pauses are exact.
func TestRefusalBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRefusalBudget(10, 3)
		for i := range 3 {
			b.spend()
			if b.paused() {
				t.Fatalf("paused after %d refusals, within the burst of 3", i+1)
			}
		}
		b.spend()
		if !b.paused() || b.pause() != 100*time.Millisecond {
			t.Fatalf("4th refusal at 10/s: paused %v for %s, want 100ms", b.paused(), b.pause())
		}
		time.Sleep(100 * time.Millisecond)
		if b.paused() {
			t.Fatalf("still paused after the pause of 100ms")
		}
		// Accepted requests earn refusals back, up to the burst.
		for range 10 {
			b.earn()
		}
		if b.tokens != 3 {
			t.Fatalf("tokens %v after earning, want the burst 3", b.tokens)
		}
		// Time earns them back too.
		b.tokens, b.updated = -1, time.Now()
		time.Sleep(time.Second)
		b.refill(time.Now())
		if b.tokens != 3 {
			t.Fatalf("tokens %v a second after -1 at 10/s, want the burst 3", b.tokens)
		}
		off := newRefusalBudget(-1, 64)
		for range 1000 {
			off.spend()
		}
		if off.paused() {
			t.Fatal("a disabled budget paused")
		}
	})
}

// TestPacingServesRefusalsAtTheRate: past its burst, a client that sends
// only refused lines is answered at refusal_rate, on synctest's clock.
func TestPacingServesRefusalsAtTheRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := testEnv(t, 16, replay.NewMemory(16), func(h *Handler) {
			h.MaxRejections = -1
			h.RefusalRate, h.RefusalBurst = 10, 1
		})
		start := time.Now()
		_, answered, end := filterStream(t, env, [][]byte{[]byte(strings.Repeat("x\n", 5))})
		if got := replyReasons(t, answered); len(got) != 5 || end != io.EOF {
			t.Fatalf("answered %v, ended %v: want 5 parse errors and EOF", got, end)
		}
		// The 1st refusal takes the burst's token; the 2nd to 5th each
		// overdraw the budget by one and pause the connection 100ms.
		if elapsed := time.Since(start); elapsed != 400*time.Millisecond {
			t.Fatalf("5 refusals took %s, want 400ms at 10/s after a burst of 1", elapsed)
		}
	})
}

// TestPauseEndsWhenTheConfigIsUnloaded: a connection paused by refusal
// pacing does not outlive its handler's config, nor its own context.
func TestPauseEndsWhenTheConfigIsUnloaded(t *testing.T) {
	for _, which := range []string{"config unloaded", "connection context cancelled"} {
		t.Run(which, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				env := testEnv(t, 16, replay.NewMemory(16), func(h *Handler) {
					h.MaxRejections = -1
					h.RefusalRate, h.RefusalBurst = 1.0/3600, 1 // an hour between refusals
				})
				unloaded := make(chan struct{})
				env.unloaded = unloaded
				cx := layer4.WrapConnection(&scriptedConn{chunks: [][]byte{[]byte(strings.Repeat("x\n", 3))}}, nil, zap.NewNop())
				ctx, cancel := context.WithCancel(cx.Context)
				defer cancel()
				cx.Context = ctx
				fc, err := newFilterConn(cx, env, nil)
				if err != nil {
					t.Fatal(err)
				}
				ended := make(chan error, 1)
				go func() { _, err := fc.Read(make([]byte, 64)); ended <- err }()
				time.Sleep(time.Minute)
				synctest.Wait()
				select {
				case err := <-ended:
					t.Fatalf("Read ended with %v before the pause of an hour was over", err)
				default:
				}
				start := time.Now()
				if which == "config unloaded" {
					close(unloaded)
				} else {
					cancel()
				}
				err = <-ended
				if time.Since(start) != 0 {
					t.Fatalf("the pause went on %s after the %s", time.Since(start), which)
				}
				want := errUnloaded
				if which != "config unloaded" {
					want = context.Canceled
				}
				if !errors.Is(err, want) {
					t.Fatalf("Read ended with %v, want %v", err, want)
				}
			})
		})
	}
}

// TestPausedLinesBeforeEndOfStream: lines held back by refusal pacing when
// the client's last bytes arrive together with the end of its stream are
// still handled one by one, before the unterminated last line.
func TestPausedLinesBeforeEndOfStream(t *testing.T) {
	env := testEnv(t, 16, replay.NewMemory(16), func(h *Handler) { h.RefusalRate, h.RefusalBurst = 1000, 1 })
	last := `{"jsonrpc":"2.0","method":"server.ping","id":9}`
	stream := strings.Repeat("x\n", 5) + last
	forwarded, answered, end := filterConnStream(t, env, &scriptedConn{chunks: [][]byte{[]byte(stream)}, eofWithLast: true})
	if string(forwarded) != last {
		t.Fatalf("forwarded %q, want %q", forwarded, last)
	}
	if got := replyReasons(t, answered); len(got) != 5 {
		t.Fatalf("answered %v, want 5 parse errors", got)
	}
	if end != io.EOF {
		t.Fatalf("ended with %v", end)
	}
}

// TestHeldBackLinesAreHandledBeforeReading: lines held back by refusal
// pacing are answered before the filter waits for more from the client,
// even when the pause is over by the time it would read. (A client that
// waits for those answers would otherwise wait forever.)
func TestHeldBackLinesAreHandledBeforeReading(t *testing.T) {
	env := testEnv(t, 16, replay.NewMemory(16), func(h *Handler) {
		h.MaxRejections = -1                   // never closed for strikes
		h.RefusalRate, h.RefusalBurst = 2e5, 1 // pauses of a few µs, often over before fill looks
	})
	server, client := net.Pipe()
	defer client.Close()
	fc, err := newFilterConn(layer4.WrapConnection(server, nil, zap.NewNop()), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			if _, err := fc.Read(buf); err != nil {
				return
			}
		}
	}()
	const lines = 500
	client.SetDeadline(time.Now().Add(5 * time.Second))
	go client.Write([]byte(strings.Repeat("x\n", lines)))
	r := bufio.NewReader(client)
	for i := range lines {
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("answer %d of %d: %v", i+1, lines, err)
		}
	}
	server.Close()
	<-done
}
