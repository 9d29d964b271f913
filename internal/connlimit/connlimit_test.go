package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestPrefixOf(t *testing.T) {
	r := Rule{IPv4Bits: 24, IPv6Bits: 48}
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7", "192.0.2.0/24"},
		{"192.0.2.255", "192.0.2.0/24"},
		{"::ffff:192.0.2.9", "192.0.2.0/24"},
		{"2001:db8:1:2::1", "2001:db8:1::/48"},
		{"2001:db8:1:ffff::1", "2001:db8:1::/48"},
		{"fe80::1%eth0", "fe80::/48"},
		{"::1", "::/48"},
	} {
		if got := r.PrefixOf(netip.MustParseAddr(tc.addr)); got.String() != tc.want {
			t.Errorf("PrefixOf(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if got := (Rule{IPv4Bits: 32, IPv6Bits: 128}).PrefixOf(netip.MustParseAddr("10.1.2.3")); got.String() != "10.1.2.3/32" {
		t.Errorf("/32 grouping gave %s", got)
	}
}

func TestValidate(t *testing.T) {
	for _, r := range []Rule{{IPv4Bits: 33, IPv6Bits: 48}, {IPv4Bits: -1, IPv6Bits: 48}, {IPv4Bits: 24, IPv6Bits: 129}} {
		if r.Validate() == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	if err := (Rule{IPv4Bits: 24, IPv6Bits: 48}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestAcquireRelease(t *testing.T) {
	l := New()
	r := Rule{Max: 2, IPv4Bits: 24, IPv6Bits: 48}
	a, b, other := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("198.51.101.1")
	p1, _, ok1 := l.Acquire(a, r)
	p2, n, ok2 := l.Acquire(b, r)
	if !ok1 || !ok2 || p1 != p2 || n != 2 {
		t.Fatalf("first two: %v %v %v %v n=%d", p1, ok1, p2, ok2, n)
	}
	if _, n, ok := l.Acquire(a, r); ok || n != 2 {
		t.Fatalf("third in the same /24 accepted (n=%d)", n)
	}
	if _, _, ok := l.Acquire(other, r); !ok {
		t.Fatal("another /24 refused")
	}
	l.Release(p1)
	if _, _, ok := l.Acquire(a, r); !ok {
		t.Fatal("refused after a release")
	}
	// A reload that raises the limit applies to the existing counts.
	if _, n, ok := l.Acquire(a, Rule{Max: 3, IPv4Bits: 24, IPv6Bits: 48}); !ok || n != 3 {
		t.Fatalf("raised limit: ok=%v n=%d", ok, n)
	}
	// No limit still counts.
	if _, n, ok := l.Acquire(a, Rule{Max: 0, IPv4Bits: 24, IPv6Bits: 48}); !ok || n != 4 {
		t.Fatalf("unlimited: ok=%v n=%d", ok, n)
	}
	for range 4 {
		l.Release(p1)
	}
	l.Release(r.PrefixOf(other))
	if l.Prefixes() != 0 {
		t.Fatalf("%d prefixes left after every release", l.Prefixes())
	}
}

func TestConcurrentAcquireNeverExceedsMax(t *testing.T) {
	l := New()
	r := Rule{Max: 5, IPv4Bits: 24, IPv6Bits: 48}
	addr := netip.MustParseAddr("203.0.113.4")
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak, held := 0, 0
	for range 50 {
		wg.Go(func() {
			for range 200 {
				p, _, ok := l.Acquire(addr, r)
				if !ok {
					continue
				}
				mu.Lock()
				held++
				peak = max(peak, held)
				mu.Unlock()
				mu.Lock()
				held--
				mu.Unlock()
				l.Release(p)
			}
		})
	}
	wg.Wait()
	if peak > 5 || l.Prefixes() != 0 {
		t.Fatalf("peak %d held connections (max 5), %d prefixes left", peak, l.Prefixes())
	}
}

func TestAddrOf(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
		ok   bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}, "127.0.0.1", true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1}, "::1", true},
		{&net.UDPAddr{IP: net.IPv4(10, 0, 0, 1).To16(), Port: 1}, "10.0.0.1", true},
		{nil, "invalid IP", false},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, "invalid IP", false},
	} {
		got, ok := AddrOf(tc.addr)
		if ok != tc.ok || got.String() != tc.want {
			t.Errorf("AddrOf(%v) = %s, %v; want %s, %v", tc.addr, got, ok, tc.want, tc.ok)
		}
	}
}

func TestReleaseAfterHoldsThePlaceThenFreesIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New()
		rule := Rule{Max: 1, IPv4Bits: 24, IPv6Bits: 48}
		addr := netip.MustParseAddr("192.0.2.7")
		prefix, _, ok := l.Acquire(addr, rule)
		if !ok {
			t.Fatal("first connection refused")
		}
		l.ReleaseAfter(prefix, 30*time.Second)
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if _, _, ok := l.Acquire(addr, rule); ok {
			t.Fatal("the place was free before the delay passed")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if l.Open(prefix) != 0 || l.Delayed() != 0 {
			t.Fatalf("after the delay: open %d, delayed %d; want 0 and 0", l.Open(prefix), l.Delayed())
		}
	})
}

func TestStopCancelsDelayedReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New()
		rule := Rule{IPv4Bits: 24, IPv6Bits: 48}
		prefix, _, _ := l.Acquire(netip.MustParseAddr("192.0.2.7"), rule)
		l.ReleaseAfter(prefix, time.Minute)
		l.Stop()
		if l.Delayed() != 0 {
			t.Fatalf("%d delayed releases left after Stop", l.Delayed())
		}
		l.ReleaseAfter(prefix, time.Second) // after Stop: does nothing
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		// No timer ran: the count is as Acquire left it. (synctest.Test
		// also fails if a timer were still pending at the end.)
		if l.Open(prefix) != 1 {
			t.Fatalf("open %d, want 1: a stopped release ran", l.Open(prefix))
		}
	})
}
