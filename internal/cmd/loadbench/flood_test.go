package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// TestFloodLinesVerdicts checks that each kind of flooder line gets the
// refusal it is meant to from the verifier, counted as a strike or not as
// meant, and that the upstream would count every flooder line as one.
func TestFloodLinesVerdicts(t *testing.T) {
	const price = 16
	pick := newPicker(mix())
	now := time.Now().Unix()
	mt := &minter{resource: floodResource, work: price, when: func(int, int) int64 { return now }}
	seeds, err := seedLines(50, mt, pick)
	if err != nil {
		t.Fatal(err)
	}
	plan := &floodPlan{Resource: floodResource, Price: price, Seeds: seeds, Seed: 7}
	p := &verify.Policy{Resource: floodResource, DefaultPrice: price, Window: time.Minute, Skew: time.Minute, Store: replay.NewMemory(10_000)}

	seeder := p.NewVerifier(nil)
	for i, s := range seeds {
		fwd, reply := seeder.Check(nil, []byte(s))
		if reply != nil {
			t.Fatalf("seed %d refused: %s", i, reply)
		}
		if c := classifyLine(fwd); c != lineSeed {
			t.Fatalf("seed %d forwarded as %s: class %d", i, fwd, c)
		}
	}

	want := map[string]struct {
		reasons []string
		strike  bool
	}{
		kindGarbage: {[]string{"parse", "invalid_request"}, true},
		kindMissing: {[]string{"missing"}, true},
		kindForged:  {[]string{"insufficient"}, true},
		kindReplay:  {[]string{"replayed"}, false},
	}
	for _, kind := range floodKinds {
		lines, err := floodLines(kind, plan, pick, 64)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if lines.lines() == 0 {
			t.Fatalf("%s: no lines", kind)
		}
		strikes := 0
		v := p.NewVerifier(func(v verify.Verdict) {
			if v.Strike {
				strikes++
			}
		})
		seen := map[string]int{}
		for i := range lines.lines() {
			line := lines.buf[lines.off[i]:lines.off[i+1]]
			if strings.Count(string(line), "\n") != 1 || line[len(line)-1] != '\n' {
				t.Fatalf("%s line %d is not one line: %q", kind, i, line)
			}
			line = line[:len(line)-1]
			if kind != kindReplay && classifyLine(line) != lineFlood {
				t.Fatalf("%s line %d would count as honest or seed at the upstream: %q", kind, i, line)
			}
			before := strikes
			_, reply := v.Check(nil, line)
			if reply == nil {
				t.Fatalf("%s line %d accepted: %q", kind, i, line)
			}
			reason := string(replyKind(reply))
			if !contains(want[kind].reasons, reason) {
				t.Fatalf("%s line %d refused as %s, want one of %v: %s", kind, i, reason, want[kind].reasons, reply)
			}
			seen[reason]++
			if struck := strikes > before; struck != want[kind].strike {
				t.Fatalf("%s line %d: strike %v, want %v", kind, i, struck, want[kind].strike)
			}
		}
		if len(seen) != len(want[kind].reasons) {
			t.Errorf("%s lines were refused as %v, want every one of %v", kind, seen, want[kind].reasons)
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func TestClassifyLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int
	}{
		{`{"jsonrpc":"2.0","method":"server.ping","id":0}`, lineHonest},
		{`{"jsonrpc":"2.0","method":"server.ping","id":999999999,"params":[]}`, lineHonest},
		{`{"jsonrpc":"2.0","method":"server.ping","id":1000000000}`, lineSeed},
		{`{"jsonrpc":"2.0","method":"server.ping","id":2000000000}`, lineFlood},
		{`{"jsonrpc":"2.0","method":"server.ping","id":12345678901234567890}`, lineFlood}, // would overflow
		{`{"jsonrpc":"2.0","method":"server.ping","id":-1}`, lineFlood},
		{`{"jsonrpc":"2.0","method":"server.ping"}`, lineFlood},
		{`GET / HTTP/1.1`, lineFlood},
	} {
		if got := classifyLine([]byte(tc.line)); got != tc.want {
			t.Errorf("classifyLine(%s) = %d, want %d", tc.line, got, tc.want)
		}
	}
}

func TestReplyKind(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{"jsonrpc":"2.0","result":"x","id":1}`, "result"},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m","data":{"reason":"parse","detail":"d"}}}`, "parse"},
		{`[{"jsonrpc":"2.0","id":1,"error":{"data":{"reason":"batch"}}}]`, "batch"},
		{`{"error":{"data":{"reason":"Bad Reason"}}}`, "other"},
		{`{"error":{}}`, "other"},
	} {
		if got := string(replyKind([]byte(tc.line))); got != tc.want {
			t.Errorf("replyKind(%s) = %s, want %s", tc.line, got, tc.want)
		}
	}
}

// TestFlooderAddr checks that every /24 holds the flooders of one kind
// only, at most perPrefix of them, one address each.
func TestFlooderAddr(t *testing.T) {
	const perPrefix = 24
	kindOf := map[string]int{}
	inPrefix := map[string]int{}
	seen := map[string]bool{}
	for k := range floodKinds {
		for i := range 100 {
			ip, err := flooderAddr(k, i, perPrefix)
			if err != nil {
				t.Fatal(err)
			}
			if !ip.IsLoopback() || seen[ip.String()] {
				t.Fatalf("kind %d flooder %d: address %s is not loopback or used twice", k, i, ip)
			}
			seen[ip.String()] = true
			prefix := ip.Mask(net.CIDRMask(24, 32)).String()
			if other, ok := kindOf[prefix]; ok && other != k {
				t.Fatalf("%s/24 holds kinds %d and %d", prefix, other, k)
			}
			kindOf[prefix] = k
			if inPrefix[prefix]++; inPrefix[prefix] > perPrefix {
				t.Fatalf("%s/24 holds more than %d flooders", prefix, perPrefix)
			}
			if honest := honestAddr(0).Mask(net.CIDRMask(24, 32)).String(); prefix == honest {
				t.Fatalf("flooder in the honest /24 %s", honest)
			}
		}
	}
	if _, err := flooderAddr(0, 254*perPrefix, perPrefix); err == nil {
		t.Error("flooderAddr gave an address past the last /24")
	}
}

// TestFlooderAccounting runs flooders against a server that refuses each
// flooder's second connection with connection_limit, answers every line
// on the others and ends them after a few answers, and checks what the
// flooders count, and that they never have more than their window
// unanswered.
func TestFlooderAccounting(t *testing.T) {
	const (
		answers = 5
		window  = 3
		conns   = 6 // each flooder's connections before the test stops them
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu         sync.Mutex
		problems   []string
		accepted   = map[string]int{} // by client address
		enough     = make(chan struct{})
		enoughOnce sync.Once
	)
	reply := []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m","data":{"reason":"parse"}}}` + "\n")
	limit := []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32012,"message":"m","data":{"reason":"connection_limit"}}}` + "\n")
	srv := testsupport.Serve(ln, func(c net.Conn) {
		ip := c.RemoteAddr().(*net.TCPAddr).IP.String()
		mu.Lock()
		accepted[ip]++
		refuse := accepted[ip] == 2
		if len(accepted) == 2 && min(accepted[ip], accepted[other(accepted, ip)]) >= conns {
			enoughOnce.Do(func() { close(enough) })
		}
		mu.Unlock()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if refuse {
			c.Write(limit)
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
			return
		}
		br := bufio.NewReader(c)
		for i := range answers {
			if _, err := br.ReadSlice('\n'); err != nil {
				return
			}
			// Lines sent beyond the window would be here already,
			// unanswered: the answers go out one at a time.
			time.Sleep(time.Millisecond)
			if n := countLines(peekBuffered(br)); n > window-1 {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%d lines waiting after answering %d", n+1, i))
				mu.Unlock()
			}
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
		// End the connection the way that delivers every answer:
		// half-close, then read until the client closes.
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	defer srv.Close()
	plan := &floodPlan{Addr: ln.Addr().String(), Flooders: 2, Kinds: []string{kindGarbage, kindMissing},
		PerPrefix: 24, Resource: floodResource, Price: 16, Lines: 100, Window: window, Max: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-enough:
		case <-time.After(20 * time.Second):
		}
		cancel()
	}()
	ready := make(chan struct{})
	report, err := runFlood(ctx, plan, func() { close(ready) })
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	select {
	case <-ready:
	default:
		t.Error("ready was not called")
	}
	for _, p := range problems {
		t.Error(p)
	}
	if len(report.Kinds) != 2 {
		t.Fatalf("%d kinds in the report", len(report.Kinds))
	}
	total := 0
	for _, n := range accepted {
		total += n
	}
	var dials int64
	for _, k := range report.Kinds {
		dials += k.Dials
		if k.Flooders != 1 || k.Prefixes != 1 {
			t.Errorf("%s: %d flooders from %d /24s, want 1 from 1", k.Kind, k.Flooders, k.Prefixes)
		}
		if k.LimitRefused != 1 || k.ServerClosed < conns-3 || k.DialErrors != 0 {
			t.Errorf("%s: %d connections refused, %d ended by the server, %d dial errors (%s)",
				k.Kind, k.LimitRefused, k.ServerClosed, k.DialErrors, k.DialError)
		}
		if c := k.RepliesAtClose; c.N != k.ServerClosed || c.Min != answers || c.Max != answers || c.Sum != answers*c.N {
			t.Errorf("%s: replies per ended connection %+v, want %d each of %d", k.Kind, c, answers, k.ServerClosed)
		}
		if extra := k.Replies["parse"] - answers*k.ServerClosed; extra < 0 || extra > answers ||
			k.Replies["connection_limit"] != 1 || len(k.Replies) != 2 {
			t.Errorf("%s: replies %v for %d ended connections and 1 refused", k.Kind, k.Replies, k.ServerClosed)
		}
		if open := k.Dials - k.ServerClosed - k.LimitRefused; open < 0 || open > 1 {
			t.Errorf("%s: %d dials but %d connections ended by the server and %d refused", k.Kind, k.Dials, k.ServerClosed, k.LimitRefused)
		}
		if k.Lines < k.replies() || k.Lines > k.replies()+window*k.Dials || k.Bytes < k.Lines {
			t.Errorf("%s: %d lines (%d bytes) sent for %d replies over %d connections, window %d",
				k.Kind, k.Lines, k.Bytes, k.replies(), k.Dials, window)
		}
	}
	if int64(total) != dials {
		t.Errorf("the server accepted %d connections, the flooders counted %d", total, dials)
	}
}

// other returns a key of m other than k, or k.
func other(m map[string]int, k string) string {
	for o := range m {
		if o != k {
			return o
		}
	}
	return k
}

// peekBuffered returns what br holds unread.
func peekBuffered(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

// TestFloodFailure checks that a flood run fails when anything of a
// flooder's gets through, and only then.
func TestFloodFailure(t *testing.T) {
	clean := func() *floodResult {
		r := &floodResult{seeds: 10, flood: &floodReport{Kinds: []*floodStats{
			{Kind: kindMissing, Replies: map[string]int64{"missing": 100}},
			{Kind: kindReplay, Replies: map[string]int64{"replayed": 100}},
		}}}
		r.before.lines[lineSeed], r.before.bytes[lineSeed] = 10, 1000
		r.after = r.before
		r.after.lines[lineHonest], r.after.bytes[lineHonest] = 500, 50_000
		return r
	}
	if err := clean().failure(); err != nil {
		t.Fatalf("a clean run failed: %v", err)
	}
	for name, spoil := range map[string]func(*floodResult){
		"flooder line":   func(r *floodResult) { r.after.lines[lineFlood], r.after.bytes[lineFlood] = 1, 80 },
		"replayed seed":  func(r *floodResult) { r.after.lines[lineSeed], r.after.bytes[lineSeed] = 11, 1100 },
		"flooder result": func(r *floodResult) { r.flood.Kinds[1].Replies["result"] = 1 },
	} {
		r := clean()
		spoil(r)
		if r.failure() == nil {
			t.Errorf("%s: not a failure", name)
		}
	}
}
