//go:build systemtest && linux

package redisstore_test

import (
	"context"
	"crypto/rand"
	"strconv"
	"sync"
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay/redisstore"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// openStore opens a store, failing the test if it cannot, and closes it
// when the test ends.
func openStore(tb testing.TB, o redisstore.Options) *redisstore.Store {
	tb.Helper()
	s, err := tryOpen(tb, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// tryOpen opens a store, bounded by testsupport.WaitTimeout; the caller
// closes it.
func tryOpen(tb testing.TB, o redisstore.Options) (*redisstore.Store, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testsupport.WaitTimeout)
	defer cancel()
	return redisstore.Open(ctx, o)
}

// freshKey returns a random key.
func freshKey() replay.Key {
	var k replay.Key
	rand.Read(k[:])
	return k
}

// transitions records what OnStateChange reports.
type transitions struct {
	mu   sync.Mutex
	ups  []bool
	errs []error
}

func (tr *transitions) hook(up bool, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.ups = append(tr.ups, up)
	tr.errs = append(tr.errs, err)
}

// get returns the transitions so far, and their errors.
func (tr *transitions) get() ([]bool, []error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]bool(nil), tr.ups...), append([]error(nil), tr.errs...)
}

// count returns how many transitions there have been.
func (tr *transitions) count() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.ups)
}

// redisInt returns an integer reply, failing the test on another.
func redisInt(tb testing.TB, reply any) int64 {
	tb.Helper()
	n, ok := reply.(int64)
	if !ok {
		tb.Fatalf("reply %#v: want an integer", reply)
	}
	return n
}

// redisMillis returns Redis's clock in Unix milliseconds (TIME).
func redisMillis(tb testing.TB, r *testsupport.Redis) int64 {
	tb.Helper()
	a, ok := r.MustDo(tb, "TIME").([]any)
	if !ok || len(a) != 2 {
		tb.Fatalf("TIME: unexpected reply %#v", a)
	}
	sec, err1 := strconv.ParseInt(a[0].(string), 10, 64)
	usec, err2 := strconv.ParseInt(a[1].(string), 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("TIME: unexpected reply %#v", a)
	}
	return sec*1000 + usec/1000
}

// valueOf returns the integer value of key.
func valueOf(tb testing.TB, r *testsupport.Redis, key string) int64 {
	tb.Helper()
	v, ok := r.MustDo(tb, "GET", key).(string)
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil {
		tb.Fatalf("GET %q: %q; want an integer", key, v)
	}
	return n
}
