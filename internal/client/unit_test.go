package client

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// TestLineReader: pieces concatenate to the input; lines up to max are
// whole, longer ones come as fragments, a tail without '\n' comes last.
func TestLineReader(t *testing.T) {
	leakCheck(t)
	long := strings.Repeat("x", 100) + "\n"
	in := "a\n" + strings.Repeat("b", 16) + "\n" + long + "\n" + long[:17] + "\nc\ntail"
	lr := newLineReader(strings.NewReader(in), 16, 17) // the smallest bufio allows
	var out bytes.Buffer
	var whole []string
	for range 1000 {
		b, w, err := lr.next()
		out.Write(b)
		if w {
			whole = append(whole, string(b))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != in {
		t.Fatalf("pieces concatenate to %q, want %q", out.String(), in)
	}
	want := []string{"a\n", strings.Repeat("b", 16) + "\n", "\n", long[:17] + "\n", "c\n"}
	if fmt.Sprint(whole) != fmt.Sprint(want) {
		t.Fatalf("whole lines %q, want %q", whole, want)
	}
}

// TestTable: answered requests are forgotten, unanswered ones are evicted
// oldest first beyond the bound, and the FIFO does not grow behind a
// request that is never answered.
func TestTable(t *testing.T) {
	leakCheck(t)
	tb := newTable(100, 1<<30)
	mk := func(id int) *request {
		return &request{ids: []string{fmt.Sprint(id)}, line: []byte("x")}
	}
	never := mk(-1)
	tb.add(never)
	for i := range 10000 {
		r := mk(i)
		tb.add(r)
		if got := tb.lookup([]byte(fmt.Sprint(i))); got != r {
			t.Fatalf("lookup %d = %v", i, got)
		}
		tb.remove(r)
	}
	if tb.len() != 1 || tb.lookup([]byte("-1")) != never {
		t.Fatalf("table holds %d, want only the unanswered request", tb.len())
	}
	if n := len(tb.fifo) - tb.head; n > 300 {
		t.Errorf("FIFO holds %d entries for 1 live request", n)
	}
	for i := range 250 {
		tb.add(mk(i))
	}
	if tb.len() != 100 || tb.lookup([]byte("-1")) != nil || tb.lookup([]byte("149")) != nil || tb.lookup([]byte("150")) == nil {
		t.Fatalf("after overflow: %d live, oldest not evicted first", tb.len())
	}
	// Duplicate ids are answered oldest first.
	a, b := mk(7), mk(7)
	tb2 := newTable(10, 1<<30)
	tb2.add(a)
	tb2.add(b)
	if tb2.lookup([]byte("7")) != a {
		t.Fatal("duplicate id: not the oldest first")
	}
	tb2.remove(a)
	if tb2.lookup([]byte("7")) != b {
		t.Fatal("duplicate id: second not found")
	}
}

func TestKnowledge(t *testing.T) {
	leakCheck(t)
	k := NewKnowledge("guess:1", 100)
	now := time.Unix(1_000_000, 0)
	if k.Price("m") != 100 || k.Resource() != "guess:1" || k.offset != 0 {
		t.Fatal("initial guesses not used")
	}
	k.Learn(&stamp.Rejection{Reason: stamp.ReasonInsufficient, Method: "m", Price: 5000, Resource: "real:2", Time: 1_000_042}, now)
	if k.Price("m") != 5000 || k.Resource() != "real:2" || k.offset != 42*time.Second {
		t.Fatalf("learned price %d, resource %q, offset %v", k.Price("m"), k.Resource(), k.offset)
	}
	// Methods are guessed at their cost in the handler's table times the
	// guess of the unit; m's price teaches only m's.
	if k.Price("other") != 100 || k.Price("blockchain.estimatefee") != 10 {
		t.Errorf("guesses %d, %d: want the unit guess 100 times the cost", k.Price("other"), k.Price("blockchain.estimatefee"))
	}
	// server.version costs 0.5: its price implies the unit 2 × 6000.
	k.Learn(&stamp.Rejection{Reason: stamp.ReasonInsufficient, Method: "server.version", Price: 6000, Resource: "real:2", Time: 1_000_042}, now)
	if k.Price("other") != 12000 || k.Price("server.version") != 6000 || k.Price("blockchain.block.header") != 3000 {
		t.Errorf("guesses %d, %d after server.version's price: want 12000, 3000", k.Price("other"), k.Price("blockchain.block.header"))
	}
	// A cheaper server.version never lowers the guess.
	k2 := NewKnowledge("guess:1", 100)
	k2.Learn(&stamp.Rejection{Reason: stamp.ReasonInsufficient, Method: "server.version", Price: 10, Resource: "real:2", Time: 1_000_042}, now)
	if k2.Price("other") != 100 {
		t.Errorf("guess for other methods %d after a cheap server.version, want 100", k2.Price("other"))
	}
	// Free methods are learned as free.
	k.Learn(&stamp.Rejection{Reason: stamp.ReasonBatch, Method: "free", Price: 0, Resource: "real:2", Time: 1_000_042}, now)
	if k.Price("free") != 0 {
		t.Errorf("free method priced %d", k.Price("free"))
	}
	// Refusals that do not price the method, and invalid resources, teach
	// nothing about them.
	k.Learn(&stamp.Rejection{Reason: stamp.ReasonParse, Method: "m", Price: 0, Resource: "bad resource!", Time: 1_000_042}, now)
	if k.Price("m") != 5000 || k.Resource() != "real:2" {
		t.Errorf("learned from a parse error: price %d resource %q", k.Price("m"), k.Resource())
	}
	for i := range 2 * maxLearnedMethods {
		teachPrice(k, fmt.Sprint(i), 1)
	}
	if len(k.prices) > maxLearnedMethods {
		t.Errorf("remembers %d methods", len(k.prices))
	}
}

func TestNewChecksConfig(t *testing.T) {
	leakCheck(t)
	for _, cfg := range []Config{
		{},
		{Server: "no-port"},
		{Server: "h:1", Network: "udp"},
		{Server: "h:1", Resource: "bad resource"},
		{Server: "h:1", Work: 1 << 20, MaxWork: 1 << 10},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	p, err := New(Config{Server: "[::1]:50002"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Knowledge().Resource() != "[::1]:50002" || p.Knowledge().Price("x") != DefaultWork || p.cfg.MaxWork != DefaultMaxWork {
		t.Errorf("defaults: resource %q price %d", p.Knowledge().Resource(), p.Knowledge().Price("x"))
	}
}
