package testsupport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

// FindFreeAddr returns a loopback address with a port that was free a
// moment ago. host is "127.0.0.1" or "::1".
func FindFreeAddr(host string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("finding a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// FreeAddr is FindFreeAddr for a test.
func FreeAddr(t testing.TB, host string) string {
	t.Helper()
	addr, err := FindFreeAddr(host)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// AwaitListening waits until addr accepts a TCP connection, until ctx ends
// or timeout passes, and closes the probe connection at once without
// sending anything. alive, if not nil, is called before each attempt: an
// error from it (the server's process has exited, say) ends the wait.
func AwaitListening(ctx context.Context, addr string, timeout time.Duration, alive func() error) error {
	var last error
	err := Poll(ctx, "listening on "+addr, timeout, 20*time.Millisecond, func() (bool, error) {
		if alive != nil {
			if err := alive(); err != nil {
				return false, err
			}
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			last = err
			return false, nil
		}
		c.Close()
		return true, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last dial: %v)", err, last)
	}
	return err
}

// WaitListening is AwaitListening for a test, for up to WaitTimeout.
func WaitListening(t testing.TB, addr string) {
	t.Helper()
	if err := AwaitListening(context.Background(), addr, waitBudget(t), nil); err != nil {
		t.Fatal(err)
	}
}

// WaitBound waits until something listens on the TCP address addr, for up
// to WaitTimeout, without connecting to it: it tries to bind addr itself
// until that fails for the address being in use. Unlike WaitListening, it
// leaves no connection behind for the server to serve, which a test that
// counts a server's connections (or is limited in them) must not have.
func WaitBound(t testing.TB, addr string) {
	t.Helper()
	WaitFor(t, "something to listen on "+addr, func() bool {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
		}
		return errors.Is(err, syscall.EADDRINUSE)
	})
}
