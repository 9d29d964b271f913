package client

import (
	"testing"

	"go.uber.org/goleak"
)

// leakOptions ignore Caddy's own background work, which outlives
// caddy.Stop by design: certmagic polls a released storage lock for up to
// 5 s before its goroutine ends.
var leakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakOptions...)
}

// leakCheck verifies, after every other cleanup of t has run, that t left
// no goroutine behind. Call it first in a test.
func leakCheck(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, leakOptions...) })
}
