package testsupport_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

func TestFreeAddrCanBeListenedOn(t *testing.T) {
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on the free address %s: %v", addr, err)
	}
	ln.Close()
}

func TestAwaitListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	testsupport.WaitListening(t, ln.Addr().String())

	closed := testsupport.FreeAddr(t, "127.0.0.1")
	err = testsupport.AwaitListening(context.Background(), closed, 100*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "listening on "+closed) || !strings.Contains(err.Error(), "last dial") {
		t.Errorf("nothing listening: %v", err)
	}
	exited := errors.New("the server exited")
	start := time.Now()
	err = testsupport.AwaitListening(context.Background(), closed, time.Minute, func() error { return exited })
	if !errors.Is(err, exited) || time.Since(start) > 10*time.Second {
		t.Errorf("alive failing: %v after %v", err, time.Since(start))
	}
}

func TestPoll(t *testing.T) {
	calls := 0
	err := testsupport.Poll(context.Background(), "the third call", time.Minute, time.Millisecond, func() (bool, error) {
		calls++
		return calls == 3, nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Poll = %v after %d calls", err, calls)
	}
	broken := errors.New("broken")
	if err := testsupport.Poll(context.Background(), "x", time.Minute, time.Millisecond, func() (bool, error) { return false, broken }); !errors.Is(err, broken) {
		t.Errorf("a failing condition: %v", err)
	}
	if err := testsupport.Poll(context.Background(), "never", 20*time.Millisecond, time.Millisecond, func() (bool, error) { return false, nil }); err == nil || !strings.Contains(err.Error(), "never: not reached") {
		t.Errorf("a condition that never holds: %v", err)
	}
}

func TestWaitForSeesAnotherGoroutine(t *testing.T) {
	var mu sync.Mutex
	done := false
	go func() {
		mu.Lock()
		done = true
		mu.Unlock()
	}()
	testsupport.WaitFor(t, "the goroutine", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return done
	})
}

func TestSyncBuffer(t *testing.T) {
	var b testsupport.SyncBuffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprintf(&b, "%d\n", i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 400 {
		t.Fatalf("%d lines, want 400", n)
	}
}

func TestServerTracksAndClosesConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := testsupport.Serve(ln, func(c net.Conn) { io.Copy(c, c) })
	c1, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "two connections", func() bool { return s.Accepted() == 2 && s.Open() == 2 })
	c2.Close()
	testsupport.WaitFor(t, "the closed one to end", func() bool { return s.Open() == 1 })
	s.Close() // closes c1's server side and waits for its handler
	if s.Open() != 0 || s.Accepted() != 2 {
		t.Errorf("after Close: %d open, %d accepted", s.Open(), s.Accepted())
	}
	c1.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c1.Read(make([]byte, 1)); err == nil {
		t.Error("a connection is still open after Close")
	}
	s.Close()
}

// exchange sends lines on a new connection to addr and reads n lines back.
func exchange(t *testing.T, addr, lines string, n int) (net.Conn, []string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, lines); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var got []string
	for range n {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, l)
	}
	return c, got
}

func TestUpstreamAnswersAndRecords(t *testing.T) {
	u := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	probe, err := net.Dial("tcp", u.Addr) // never sends: not active
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	testsupport.WaitFor(t, "the probe to be accepted", func() bool { return u.Accepted() == 1 })
	_, got := exchange(t, u.Addr, `{"id":"a","method":"m"}`+"\n"+`[{"id":1}]`+"\n"+`{"method":"n"}`+"\n", 3)
	want := []string{
		`{"jsonrpc":"2.0","result":0,"id":"a"}` + "\n",
		`{"jsonrpc":"2.0","result":1,"id":null}` + "\n",
		`{"jsonrpc":"2.0","result":2,"id":null}` + "\n",
	}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("answers %q, want %q", got, want)
	}
	c := u.Active(t, 0)
	recv, lines, err := c.Snapshot()
	if string(recv) != `{"id":"a","method":"m"}`+"\n"+`[{"id":1}]`+"\n"+`{"method":"n"}`+"\n" || len(lines) != 3 || err != nil {
		t.Errorf("connection record %q, %q, %v", recv, lines, err)
	}
	if u.Conn(t, 1) != c || u.Conn(t, 0) == c {
		t.Error("Conn and Active disagree on which connection had data")
	}
	if string(u.Received()) != string(recv) || u.Accepted() != 2 {
		t.Errorf("received %q over %d connections", u.Received(), u.Accepted())
	}
}

func TestUpstreamPadsChunksAndHangsUp(t *testing.T) {
	refused := errors.New("first request was not version")
	u := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{
		Pad:   100,
		Chunk: 7,
		Answer: func(line []byte, n int) ([]byte, error) {
			if n == 1 {
				return []byte(`["bye"]`), refused
			}
			return []byte(`{"echo":` + string(line) + `}`), nil
		},
	})
	c, got := exchange(t, u.Addr, "1\n2\n3\n", 2)
	if want := `{"echo":1` + strings.Repeat(" ", 100-len(`{"echo":1}`)) + "}\n"; got[0] != want {
		t.Errorf("first answer %q, want %q", got[0], want)
	}
	if want := `["bye"` + strings.Repeat(" ", 100-len(`["bye"]`)) + "]\n"; got[1] != want {
		t.Errorf("second answer %q, want %q", got[1], want)
	}
	rec := u.Conn(t, 0)
	select {
	case <-rec.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not closed after Answer failed")
	}
	if !errors.Is(rec.Err(), refused) {
		t.Errorf("Err = %v", rec.Err())
	}
	if rest, err := io.ReadAll(c); len(rest) != 0 {
		t.Errorf("after the hang-up: %q, %v", rest, err)
	}
}

func TestWaitBoundLeavesNoConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan string, 10)
	s := testsupport.Serve(ln, func(c net.Conn) { served <- c.RemoteAddr().String() })
	defer s.Close()
	testsupport.WaitBound(t, s.Addr())
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Connections are accepted in order: a probe by WaitBound would have
	// been accepted, and counted, before this one.
	for got := ""; got != c.LocalAddr().String(); {
		select {
		case got = <-served:
		case <-time.After(testsupport.WaitTimeout):
			t.Fatal("the connection was not served")
		}
	}
	if n := s.Accepted(); n != 1 {
		t.Fatalf("the server accepted %d connections, want only this test's", n)
	}
}
