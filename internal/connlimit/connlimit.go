// Package connlimit counts open connections per client network prefix and
// refuses those over a limit: an /24 for IPv4 and a /48 for IPv6 by default,
// the groups ElectrumX uses for its own per-subnet accounting. Behind a
// local proxy every session reaches the Electrum server from the proxy's
// address, so the proxy is the only place left to count by client network.
package connlimit

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Default prefix lengths for grouping client addresses.
const (
	DefaultIPv4Bits = 24
	DefaultIPv6Bits = 48
)

// Limiter counts open connections per prefix. It is safe for concurrent use
// and holds memory only for prefixes with open connections, and for the
// timers of delayed releases (see ReleaseAfter).
type Limiter struct {
	mu      sync.Mutex
	counts  map[netip.Prefix]int
	delayed map[*time.Timer]struct{} // releases that ReleaseAfter scheduled
	stopped bool
}

// New returns an empty Limiter.
func New() *Limiter {
	return &Limiter{counts: make(map[netip.Prefix]int), delayed: make(map[*time.Timer]struct{})}
}

// Rule says how addresses are grouped and how many connections a group may
// have open. It is passed on each call, so that a config reload may change
// it while counts carry over.
type Rule struct {
	// Max is the most open connections per prefix; 0 or less means no limit
	// (connections are still counted).
	Max int
	// IPv4Bits and IPv6Bits are the prefix lengths (0..32, 0..128).
	IPv4Bits, IPv6Bits int
}

// Validate reports a prefix length out of range.
func (r Rule) Validate() error {
	if r.IPv4Bits < 0 || r.IPv4Bits > 32 {
		return fmt.Errorf("IPv4 prefix length %d is not in 0..32", r.IPv4Bits)
	}
	if r.IPv6Bits < 0 || r.IPv6Bits > 128 {
		return fmt.Errorf("IPv6 prefix length %d is not in 0..128", r.IPv6Bits)
	}
	return nil
}

// PrefixOf returns the group addr belongs to. IPv4-mapped IPv6 addresses
// count as IPv4, and IPv6 zones are ignored.
func (r Rule) PrefixOf(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	bits := r.IPv6Bits
	if addr.Is4() {
		bits = r.IPv4Bits
	}
	p, err := addr.Prefix(bits)
	if err != nil { // invalid address: a group of its own
		return netip.Prefix{}
	}
	return p
}

// Acquire counts a new connection from addr. If its prefix already has
// rule.Max open, it returns ok false and the prefix, and counts nothing.
// Otherwise the caller must call Release with the returned prefix when the
// connection ends.
func (l *Limiter) Acquire(addr netip.Addr, rule Rule) (prefix netip.Prefix, open int, ok bool) {
	prefix = rule.PrefixOf(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.counts[prefix]
	if rule.Max > 0 && n >= rule.Max {
		return prefix, n, false
	}
	l.counts[prefix] = n + 1
	return prefix, n + 1, true
}

// Release uncounts a connection that Acquire counted.
func (l *Limiter) Release(prefix netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch n := l.counts[prefix]; {
	case n > 1:
		l.counts[prefix] = n - 1
	case n == 1:
		delete(l.counts, prefix)
	default:
		panic("connlimit: Release without Acquire for " + prefix.String())
	}
}

// ReleaseAfter uncounts a connection that Acquire counted once d has
// passed, so that the connection's place is held for a while after it
// closed. The Limiter owns the timer: Stop cancels it.
func (l *Limiter) ReleaseAfter(prefix netip.Prefix, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		l.mu.Lock()
		_, pending := l.delayed[t]
		delete(l.delayed, t)
		l.mu.Unlock()
		if pending {
			l.Release(prefix)
		}
	})
	l.delayed[t] = struct{}{}
}

// Delayed returns the number of releases ReleaseAfter has scheduled that
// have not happened yet.
func (l *Limiter) Delayed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.delayed)
}

// Stop cancels every release that ReleaseAfter scheduled and makes later
// ones do nothing: the Limiter is being discarded.
func (l *Limiter) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	for t := range l.delayed {
		t.Stop()
	}
	clear(l.delayed)
}

// Open returns the number of connections counted for prefix.
func (l *Limiter) Open(prefix netip.Prefix) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[prefix]
}

// Prefixes returns the number of prefixes with open connections.
func (l *Limiter) Prefixes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.counts)
}

// AddrOf returns the IP address of a network address such as a
// net.Conn's RemoteAddr, or false if it has none.
func AddrOf(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case *net.UDPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case nil:
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}
