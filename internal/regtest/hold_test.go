package regtest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHold: with Config.Hold the server writes as ElectrumX does: the
// first PadSize bytes of a connection at once, then small answers held
// back until PadSize bytes wait (or the hold ends), every write padded to
// a power of two of at least PadSize bytes with spaces inside its last
// message.
func TestHold(t *testing.T) {
	s, err := New(Config{Hold: time.Hour, MaturityBlocks: 20})
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, s)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	send := func(line string) {
		t.Helper()
		if _, err := io.WriteString(nc, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	// readWrite reads what one padded write brings: whole lines up to a
	// power-of-two total.
	readWrite := func() []string {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		var lines []string
		n := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v (after %q)", err, lines)
			}
			lines = append(lines, line)
			n += len(line)
			if n >= PadSize && n&(n-1) == 0 {
				return lines
			}
			if n > 1<<20 {
				t.Fatalf("read %d bytes, no padded write", n)
			}
		}
	}

	// Within the first PadSize bytes: answered at once, padded.
	send(`{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}`)
	if got := readWrite(); len(got) != 1 || !strings.Contains(got[0], `"id":0`) || len(got[0]) != PadSize ||
		!strings.HasSuffix(got[0], " }\n") {
		t.Fatalf("server.version answered with %q", got)
	}
	// The connection has now been sent PadSize bytes: a small answer is
	// held back.
	send(`{"jsonrpc":"2.0","method":"server.ping","id":1}`)
	nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if b, err := r.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a small answer was not held: read %q, %v", b, err)
	}
	// A large answer ends the hold: both go in one write, padded.
	send(`{"jsonrpc":"2.0","method":"blockchain.block.headers","id":2,"params":[0,10]}`)
	got := readWrite()
	if len(got) != 2 || !strings.Contains(got[0], `"id":1`) || !strings.Contains(got[1], `"id":2`) {
		t.Fatalf("got %q, want the held ping answer then the headers", got)
	}
	if n := len(got[0]) + len(got[1]); n != 2048 || !bytes.HasSuffix([]byte(got[1]), []byte(" }\n")) {
		t.Fatalf("write of %d bytes, want padded to 2048", n)
	}
}

// TestHoldEnds: a held answer is written when the hold ends.
func TestHoldEnds(t *testing.T) {
	s, err := New(Config{Hold: 50 * time.Millisecond, MaturityBlocks: 20})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, startServer(t, s))
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	for i := range 30 { // more than PadSize bytes of small answers
		c.sendLine(`{"jsonrpc":"2.0","method":"server.ping","id":` + string(rune('0'+i%10)) + `}`)
	}
	n := 0
	for range 30 {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		n += len(line)
	}
	if n%PadSize != 0 { // each write is a power of two of at least PadSize
		t.Errorf("received %d bytes: not padded writes", n)
	}
}
