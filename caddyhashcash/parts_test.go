package caddyhashcash

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// frames feeds chunks to a lineFramer as reads would, and returns what
// next reports, one string an event: the line for frameLine, else a name.
func frames(max int, chunks ...string) []string {
	f := newLineFramer(max)
	var got []string
	take := func() {
		for {
			line, ev := f.next()
			switch ev {
			case frameNone:
				return
			case frameLine:
				got = append(got, "line "+string(line))
			case frameTooLong:
				got = append(got, "too long "+string(line))
			case frameOverflow:
				got = append(got, "overflow")
			case frameOverflowEnd:
				got = append(got, "overflow end")
			}
		}
	}
	for _, c := range chunks {
		space := f.space()
		f.added(copy(space, c))
		take()
	}
	switch line, ev := f.rest(); ev {
	case frameLine:
		got = append(got, "last "+string(line))
	case frameTooLong:
		got = append(got, "last too long "+string(line))
	}
	return got
}

func TestLineFramer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int
		chunks []string
		want   []string
	}{
		{"lines in one read", 8, []string{"a\nbb\n\n"}, []string{"line a", "line bb", "line "}},
		{"a line split over reads", 8, []string{"ab", "c", "d\ne"}, []string{"line abcd", "last e"}},
		{"a line of exactly max", 4, []string{"abcd\n"}, []string{"line abcd"}},
		{"a whole line over max", 4, []string{"abcde\nok\n"}, []string{"too long abcde", "line ok"}},
		{"an unfinished line over max", 4, []string{"abc", "de", "fgh", "ij\nok\n"}, []string{"overflow", "overflow end", "line ok"}},
		{"an overflowing last line", 4, []string{"abcdefg"}, []string{"overflow"}},
		{"a last line without line feed", 8, []string{"x\nyz"}, []string{"line x", "last yz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := frames(tc.max, tc.chunks...)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLineFramerPeek: after every read, peek returns the lines next then
// returns as frameLine, up to the first other event, without taking them,
// and at most its limit.
func TestLineFramerPeek(t *testing.T) {
	for _, chunks := range [][]string{
		{"a\nbb\n\nc"},
		{"ab", "c", "d\ne\nf", "g\n"},
		{"abcd\nx\n"},
		{"ok\nabcde\nok\n"},
		{"abc", "de", "fgh", "ij\nok\n"},
		{"x", "\n", "y\nz\n"},
	} {
		f := newLineFramer(4)
		for _, c := range chunks {
			f.added(copy(f.space(), c))
			peeked := f.peek(nil, 100)
			if limited := f.peek(nil, 1); len(peeked) > 0 && (len(limited) != 1 || string(limited[0]) != string(peeked[0])) {
				t.Fatalf("%q: peek with limit 1 gave %q, want %q", chunks, limited, peeked[:1])
			}
			var lines []string
			for {
				line, ev := f.next()
				if ev != frameLine {
					if ev != frameNone {
						for { // the rest, after a line that is not a frameLine
							if _, ev := f.next(); ev == frameNone {
								break
							}
						}
					}
					break
				}
				lines = append(lines, string(line))
			}
			var got []string
			for _, l := range peeked {
				got = append(got, string(l))
			}
			if strings.Join(got, "|") != strings.Join(lines, "|") || len(got) != len(lines) {
				t.Fatalf("%q, after %q: peek gave %q, next gave %q", chunks, c, got, lines)
			}
		}
	}
}

// TestLineFramerKeepsLongLinesOutOfMemory: a line far over max is dropped
// as it arrives, and the buffer gives its memory back afterwards.
func TestLineFramerKeepsLongLinesOutOfMemory(t *testing.T) {
	f := newLineFramer(1000)
	for range 1000 {
		space := f.space()
		f.added(copy(space, bytes.Repeat([]byte{'x'}, len(space))))
		f.next()
	}
	if cap(f.buf) > 8*readChunk {
		t.Fatalf("buffer grew to %d bytes for a line limit of 1000", cap(f.buf))
	}
	if n, unfinished := f.partial(); n != 0 || !unfinished {
		t.Fatalf("partial() = %d, %v inside a dropped line: want 0, true", n, unfinished)
	}
	space := f.space()
	f.added(copy(space, "\nok\n"))
	if _, ev := f.next(); ev != frameOverflowEnd {
		t.Fatalf("got %v, want the end of the dropped line", ev)
	}
	if line, ev := f.next(); ev != frameLine || string(line) != "ok" {
		t.Fatalf("got %v %q after the dropped line, want the line ok", ev, line)
	}
}

// recordingConn records writes and can fail them with a timeout.
type recordingConn struct {
	net.Conn
	written   bytes.Buffer
	timeout   bool
	closed    bool
	deadline  time.Time
	deadlines int // SetWriteDeadline calls
}

func (c *recordingConn) Write(p []byte) (int, error) {
	if c.timeout {
		return 0, os.ErrDeadlineExceeded
	}
	return c.written.Write(p)
}
func (c *recordingConn) Close() error { c.closed = true; return nil }
func (c *recordingConn) SetWriteDeadline(t time.Time) error {
	c.deadline = t
	c.deadlines++
	return nil
}

func TestReplyWriterWaitsForLineBoundaries(t *testing.T) {
	conn := &recordingConn{}
	w := &replyWriter{conn: conn, timeout: time.Second, limit: 1 << 10}
	step := func(what string, do func(), want string) {
		t.Helper()
		do()
		if conn.written.String() != want {
			t.Fatalf("after %s: client got %q, want %q", what, conn.written.String(), want)
		}
	}
	step("half a response", func() { w.Write([]byte(`{"result":`)) }, `{"result":`)
	step("a queued error", func() {
		if err := w.queue([]byte("E1")); err != nil {
			t.Fatal(err)
		}
		w.flush()
	}, `{"result":`)
	step("the response's end and half the next", func() { w.Write([]byte("1}\n{\"res")) }, "{\"result\":1}\nE1\n{\"res")
	step("an error at the end of the server's stream", func() {
		w.queue([]byte("E2"))
		w.finish()
	}, "{\"result\":1}\nE1\n{\"res\nE2\n")
	step("an error at a boundary", func() {
		w.Write([]byte("{}\n"))
		w.queue([]byte("E3"))
		w.flush()
	}, "{\"result\":1}\nE1\n{\"res\nE2\n{}\nE3\n")
	if conn.deadline.IsZero() {
		t.Fatal("no write deadline was set")
	}
}

func TestReplyWriterBoundsItsQueue(t *testing.T) {
	w := &replyWriter{conn: &recordingConn{}, limit: 10}
	w.Write([]byte("mid-line"))
	if err := w.queue([]byte("123456789")); err != nil {
		t.Fatalf("9 bytes and a line feed within a limit of 10: %v", err)
	}
	if err := w.queue([]byte("x")); err == nil {
		t.Fatal("queued past the limit")
	}
}

func TestReplyWriterDisconnectsAClientThatDoesNotRead(t *testing.T) {
	conn := &recordingConn{timeout: true}
	timeouts := 0
	w := &replyWriter{conn: conn, timeout: time.Second, limit: 1 << 10, onTimeout: func() { timeouts++ }}
	if _, err := w.Write([]byte("x\n")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v, want the deadline error", err)
	}
	w.Write([]byte("y\n"))
	if !conn.closed || timeouts != 1 {
		t.Fatalf("closed %v, timeouts reported %d: want closed and 1", conn.closed, timeouts)
	}
}

// TestWriteDeadlineMovesOnlyWhenItMust: each write may take the write
// timeout, up to an eighth of it more (at most 1s), so the deadline is set
// again only once it would leave a write less than the timeout.
func TestWriteDeadlineMovesOnlyWhenItMust(t *testing.T) {
	conn := &recordingConn{}
	w := &replyWriter{conn: conn, timeout: 4 * time.Second, limit: 1 << 10}
	start := time.Now()
	w.Write([]byte("a\n"))
	if conn.deadlines != 1 || conn.deadline.Before(start.Add(4*time.Second)) || conn.deadline.After(time.Now().Add(4*time.Second+500*time.Millisecond)) {
		t.Fatalf("first write: %d deadlines, the last %v after the write began; want 1, 4s to 4.5s", conn.deadlines, conn.deadline.Sub(start))
	}
	for range 100 {
		w.Write([]byte("b\n"))
	}
	if conn.deadlines != 1 {
		t.Fatalf("100 writes within the slack set the deadline %d times, want once", conn.deadlines)
	}
	w.deadline = time.Now().Add(3 * time.Second) // as if a second had passed
	w.Write([]byte("c\n"))
	if conn.deadlines != 2 || conn.deadline.Before(time.Now().Add(4*time.Second)) {
		t.Fatalf("a write with less than the timeout left: %d deadlines, the last in %v; want 2, at least 4s", conn.deadlines, time.Until(conn.deadline))
	}
}

func TestReadDeadline(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	d := readDeadline{readTimeout: 30 * time.Second, idleTimeout: 10 * time.Minute}
	idle := now.Add(10*time.Minute + time.Second) // idle_timeout from now, with the slack of 1s
	if got, changed := d.next(now); !changed || !got.Equal(idle) {
		t.Fatalf("no line: deadline %v, want idle_timeout from now plus 1s", got)
	}
	if got, changed := d.next(now.Add(time.Second)); changed || !got.Equal(idle) {
		t.Fatalf("1s later: deadline %v (changed %v), want the same, still idle_timeout away", got, changed)
	}
	if got, changed := d.next(now.Add(1500 * time.Millisecond)); !changed || !got.Equal(now.Add(10*time.Minute+2500*time.Millisecond)) {
		t.Fatalf("1.5s later: deadline %v (changed %v), want it moved to idle_timeout from then plus 1s", got, changed)
	}
	d = readDeadline{readTimeout: 30 * time.Second, idleTimeout: 10 * time.Minute}
	d.lineStarted(now)
	d.lineStarted(now.Add(5 * time.Second)) // the same line goes on
	if got, _ := d.next(now.Add(10 * time.Second)); !got.Equal(now.Add(30 * time.Second)) {
		t.Fatalf("unfinished line: deadline %v, want read_timeout from its first byte", got)
	}
	if _, changed := d.next(now.Add(11 * time.Second)); changed {
		t.Fatal("the same deadline reported as changed")
	}
	d.paused(2 * time.Second)
	if d.lineExpired(now.Add(31*time.Second)) || !d.lineExpired(now.Add(32*time.Second)) {
		t.Fatal("a pause of 2s did not move the line's deadline by 2s")
	}
	d.lineEnded()
	if d.lineExpired(now.Add(time.Hour)) {
		t.Fatal("a completed line expired")
	}
	off := readDeadline{}
	if got, _ := off.next(now); !got.IsZero() {
		t.Fatalf("timeouts off: deadline %v, want none", got)
	}
}
