package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

func TestOptionsAreChecked(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string // in the error
	}{
		{Options{}, "option Addr: empty"},
		{Options{Addr: "localhost"}, "option Addr: \"localhost\""},
		{Options{Addr: ":6379"}, "option Addr: \":6379\""},
		{Options{Addr: "redis:"}, "option Addr: \"redis:\""},
		{Options{Addr: "redis:0"}, "option Addr: \"redis:0\": port \"0\""},
		{Options{Addr: "redis:65536"}, "option Addr: \"redis:65536\": port \"65536\""},
		{Options{Addr: "redis:x"}, "option Addr: \"redis:x\": port \"x\""},
		{Options{Addr: "/run/redis.sock", TLS: true}, "option TLS"},
		{Options{Addr: "redis:6379", DB: -1}, "option DB: -1"},
		{Options{Addr: "redis:6379", CAFile: "ca.pem"}, "option CAFile"},
		{Options{Addr: "redis:6379", TLSServerName: "redis"}, "option TLSServerName"},
		{Options{Addr: "redis:6379", Username: "u"}, "option Username"},
		{Options{Addr: "redis:6379", KeyPrefix: strings.Repeat("p", MaxKeyPrefix+1)}, "option KeyPrefix"},
		{Options{Addr: "redis:6379", Timeout: -time.Second}, "option Timeout"},
		{Options{Addr: "redis:6379", Timeout: 500}, "option Timeout: 500ns"},
		{Options{Addr: "redis:6379", Timeout: 2 * time.Minute}, "option Timeout"},
	} {
		_, err := c.o.normalized()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want an error with %q", c.o, err, c.want)
		}
		if oe := (*OptionError)(nil); !errors.As(err, &oe) || !strings.Contains(c.want, oe.Option) {
			t.Errorf("%+v: %v; want an *OptionError naming the option in %q", c.o, err, c.want)
		}
		// Open checks them before it dials.
		if _, err := Open(context.Background(), c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v): %v; want an error with %q", c.o, err, c.want)
		}
	}
	for _, o := range []Options{
		{Addr: "redis:6379"},
		{Addr: "[::1]:6379", Password: "p"},
		{Addr: "/run/redis/redis.sock", Username: "u", Password: "p", DB: 2},
		{Addr: "redis:6379", TLS: true, CAFile: "ca.pem", TLSServerName: "redis", KeyPrefix: "x:", Timeout: time.Second},
	} {
		n, err := o.normalized()
		if err != nil {
			t.Errorf("%+v: %v", o, err)
			continue
		}
		want := o
		if want.KeyPrefix == "" {
			want.KeyPrefix = DefaultKeyPrefix
		}
		if want.Timeout == 0 {
			want.Timeout = DefaultTimeout
		}
		if n.KeyPrefix != want.KeyPrefix || n.Timeout != want.Timeout || n.Addr != o.Addr {
			t.Errorf("%+v normalized to %+v", o, n)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	if c, err := (&Options{Addr: "redis:6379"}).tlsConfig(); c != nil || err != nil {
		t.Errorf("without TLS: %v, %v", c, err)
	}
	c, err := (&Options{Addr: "redis.example:6380", TLS: true}).tlsConfig()
	if err != nil || c.ServerName != "redis.example" || c.RootCAs != nil || c.MinVersion == 0 {
		t.Errorf("TLS: %+v, %v; want the host as the server name, the system's roots", c, err)
	}
	c, err = (&Options{Addr: "10.0.0.5:6380", TLS: true, TLSServerName: "redis.example"}).tlsConfig()
	if err != nil || c.ServerName != "redis.example" {
		t.Errorf("TLSServerName: %+v, %v", c, err)
	}
	dir := t.TempDir()
	if _, err := (&Options{Addr: "redis:6380", TLS: true, CAFile: filepath.Join(dir, "none.pem")}).tlsConfig(); err == nil || !strings.Contains(err.Error(), "option CAFile") {
		t.Errorf("a missing CAFile: %v", err)
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not PEM"), 0o600)
	if _, err := (&Options{Addr: "redis:6380", TLS: true, CAFile: bad}).tlsConfig(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CAFile without a certificate: %v", err)
	}
}

func TestKeysAndValues(t *testing.T) {
	var k replay.Key
	for i := range k {
		k[i] = byte(i * 17)
	}
	s := &Store{prefix: "hc:"}
	if got := s.Key(k); got != "hc:"+string(k[:]) || len(got) != 3+16 {
		t.Errorf("Key: %q; want the prefix and the 16 raw bytes", got)
	}
	s.token = 0xfedcba98
	v1, v2 := s.value(1), s.value(2)
	if v1 != 0xfedcba98<<21|1 || v2 != v1+1 || s.value(1<<21) != 0xfedcba98<<21 || s.value(1<<21-1) >= 1<<53 {
		t.Errorf("values %#x, %#x: want the token then a 21-bit counter, below 2^53", v1, v2)
	}
}

func TestErrorsShowClientsNoDetail(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.5:6379: connect: connection refused")
	e := &Error{Op: "claim", Addr: "10.0.0.5:6379", Cause: cause}
	if e.Error() != "replay store unavailable" || !errors.Is(e, ErrUnavailable) || !errors.Is(e, cause) || errors.Is(e, replay.ErrFull) {
		t.Errorf("%v: want ErrUnavailable's message, matching it and the cause", e)
	}
	if d := e.Detail(); !strings.Contains(d, "10.0.0.5:6379: claim: dial tcp") {
		t.Errorf("Detail %q: want the address, the operation and the cause", d)
	}
	e.Full = true
	if e.Error() != replay.ErrFull.Error() || !errors.Is(e, replay.ErrFull) || errors.Is(e, ErrUnavailable) {
		t.Errorf("%v: want replay.ErrFull", e)
	}
}

func TestParseInfoMemory(t *testing.T) {
	text := "# Memory\r\nused_memory:1024\r\nmaxmemory:2097152\r\nmaxmemory_human:2.00M\r\nmaxmemory_policy:allkeys-lru\r\n"
	got, err := parseInfoMemory(text)
	if want := (ServerInfo{MaxMemoryPolicy: "allkeys-lru", MaxMemory: 2 << 20, From: "INFO memory"}); err != nil || got != want {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	if _, err := parseInfoMemory("# Memory\r\nmaxmemory:0\r\n"); err == nil {
		t.Error("no policy: no error")
	}
	if _, err := parseInfoMemory("maxmemory:lots\r\nmaxmemory_policy:noeviction\r\n"); err == nil {
		t.Error("bad maxmemory: no error")
	}
}

func TestHealthDecidesByWhenCommandsBegan(t *testing.T) {
	var calls []bool
	var h health
	h.init(func(up bool, err error) {
		if up != (err == nil) {
			t.Errorf("hook(%v, %v)", up, err)
		}
		calls = append(calls, up)
	})
	fail := errors.New("down")
	early := h.begin() // sent before Redis died, answered late
	h.report(h.begin(), nil)
	h.report(h.begin(), fail) // outage
	h.report(early, nil)      // no recovery: it began before the outage
	h.report(h.begin(), fail)
	late := h.begin()        // sent while down, failing late
	h.report(h.begin(), nil) // recovery
	h.report(late, fail)     // no outage: it began before the recovery
	h.report(h.begin(), nil)
	h.report(h.begin(), fail) // outage
	if want := []bool{false, true, false}; !equal(calls, want) {
		t.Errorf("transitions %v; want %v", calls, want)
	}
	if h.outages.Load() != 2 || h.up.Load() {
		t.Errorf("%d outages, up %v; want 2, down", h.outages.Load(), h.up.Load())
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHealthTransitionsAlternateUnderConcurrency(t *testing.T) {
	var h health
	var mu sync.Mutex
	var calls []bool
	var inHook atomic.Int32
	h.init(func(up bool, _ error) {
		if inHook.Add(1) != 1 {
			t.Error("hook called concurrently")
		}
		mu.Lock()
		calls = append(calls, up)
		mu.Unlock()
		inHook.Add(-1)
	})
	fail := errors.New("down")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				var err error
				if (i/100+g)%2 == 1 {
					err = fail
				}
				h.report(h.begin(), err)
			}
		})
	}
	wg.Wait()
	up := true
	for i, c := range calls {
		if c == up {
			t.Fatalf("transition %d repeats up=%v: %v", i, c, calls)
		}
		up = c
	}
	if h.up.Load() != up || h.outages.Load() != uint64((len(calls)+1)/2) {
		t.Errorf("up %v, %d outages after %d transitions", h.up.Load(), h.outages.Load(), len(calls))
	}
}

func TestRecentClaims(t *testing.T) {
	s := &Store{seed: 12345}
	var k1, k2 replay.Key
	k1[0] = 1
	s.remember(k1, 5)
	if n, ok := s.forget(k1); !ok || n != 5 {
		t.Errorf("forget: %d, %v; want 5, true", n, ok)
	}
	if _, ok := s.forget(k1); ok {
		t.Error("forgot twice")
	}
	// A later claim of another key in the same slot takes it.
	s.remember(k1, 6)
	for i := uint64(1); s.slot(&k2) != s.slot(&k1); i++ {
		binary.LittleEndian.PutUint64(k2[8:], i)
	}
	s.remember(k2, 7)
	if _, ok := s.forget(k1); ok {
		t.Error("k1 still remembered after k2 took its slot")
	}
	if n, ok := s.forget(k2); !ok || n != 7 {
		t.Errorf("forget(k2): %d, %v; want 7, true", n, ok)
	}
}

func TestOpenFailsWithoutRedis(t *testing.T) {
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	_, err := Open(context.Background(), Options{Addr: addr})
	if err == nil || !strings.Contains(err.Error(), "connecting to "+addr) {
		t.Errorf("nothing listening: %v; want an error naming the address", err)
	}
}

// blackHole returns the address of a listener that accepts connections
// and never answers.
func blackHole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := testsupport.Serve(ln, func(c net.Conn) { io.Copy(io.Discard, c) })
	t.Cleanup(srv.Close)
	return ln.Addr().String()
}

// openBounded runs Open and fails the test if it does not return.
func openBounded(t *testing.T, ctx context.Context, o Options) error {
	done := make(chan error, 1)
	go func() {
		s, err := Open(ctx, o)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(testsupport.WaitTimeout):
		t.Fatal("Open did not return")
		return nil
	}
}

func TestOpenGivesUpOnAServerThatDoesNotAnswer(t *testing.T) {
	addr := blackHole(t)
	err := openBounded(t, context.Background(), Options{Addr: addr, Timeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), addr) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open: %v; want a timeout naming the address", err)
	}
	// Its context ends first.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = openBounded(t, ctx, Options{Addr: addr, Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), addr) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open with a context ending first: %v; want a timeout naming the address", err)
	}
}
