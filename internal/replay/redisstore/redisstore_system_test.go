//go:build systemtest && linux

package redisstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay/redisstore"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

func TestClaimOnceAmongGoroutinesAndStores(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	stores := []*redisstore.Store{
		openStore(t, redisstore.Options{Addr: r.Addr}),
		openStore(t, redisstore.Options{Addr: r.Addr}),
	}
	const keys, perStore = 64, 16
	now := time.Now().Unix()
	ks := make([]replay.Key, keys)
	for i := range ks {
		ks[i] = freshKey()
	}
	var wins, replays [keys]atomic.Int64
	var other atomic.Value
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range ks {
		for _, s := range stores {
			for range perStore {
				wg.Go(func() {
					<-start
					switch err := s.Claim(ks[i], now, now+300); err {
					case nil:
						wins[i].Add(1)
					case replay.ErrReplayed:
						replays[i].Add(1)
					default:
						other.Store(err)
					}
				})
			}
		}
	}
	close(start)
	wg.Wait()
	if err := other.Load(); err != nil {
		t.Fatalf("a claim failed: %v", err)
	}
	for i := range ks {
		if w, r := wins[i].Load(), replays[i].Load(); w != 1 || r != 2*perStore-1 {
			t.Errorf("key %d: %d claims succeeded and %d were replays; want 1 and %d", i, w, r, 2*perStore-1)
		}
	}
	var claims, replayed uint64
	for _, s := range stores {
		st := s.Stats()
		claims += st.Claims
		replayed += st.Replayed
		if st.ClaimErrors != 0 || !st.Up {
			t.Errorf("stats %+v: want no errors, up", st)
		}
	}
	if claims != keys || replayed != keys*(2*perStore-1) {
		t.Errorf("stats: %d claims, %d replayed; want %d and %d", claims, replayed, keys, keys*(2*perStore-1))
	}
}

func TestClaimExpiresWithTheStamp(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	s := openStore(t, redisstore.Options{Addr: r.Addr, KeyPrefix: "test:"})

	// A clock far from Redis's: the key lives expires − now seconds from
	// the claim, whatever Redis's own clock says.
	now := time.Now().Unix() - 100_000
	const window = 300
	k := freshKey()
	before := redisMillis(t, r)
	if err := s.Claim(k, now, now+window); err != nil {
		t.Fatal(err)
	}
	after := redisMillis(t, r)
	key := s.Key(k)
	if key != "test:"+string(k[:]) {
		t.Fatalf("key %q: want the prefix and the 16 bytes", key)
	}
	at := redisInt(t, r.MustDo(t, "PEXPIRETIME", key))
	if at < before+window*1000 || at > after+window*1000 {
		t.Errorf("PEXPIRETIME %d: want %d to %d (claimed between %d and %d, for %d s)", at, before+window*1000, after+window*1000, before, after, window)
	}
	if ttl := redisInt(t, r.MustDo(t, "TTL", key)); ttl < window-5 || ttl > window {
		t.Errorf("TTL %d: want about %d", ttl, window)
	}
	if enc := r.MustDo(t, "OBJECT", "ENCODING", key); enc != "int" {
		t.Errorf("the value's encoding %v: want int", enc)
	}
	v := valueOf(t, r, key)
	if v>>21 != redisstore.Token(s) {
		t.Errorf("value %#x: want the store's token %#x and a counter", v, redisstore.Token(s))
	}
	k2 := freshKey()
	if err := s.Claim(k2, now, now+window); err != nil {
		t.Fatal(err)
	}
	if v2 := valueOf(t, r, s.Key(k2)); v2 == v || v2>>21 != v>>21 {
		t.Errorf("values of two claims %#x and %#x: want the same token, different counters", v, v2)
	}

	// A claim that has expired already is refused if the key is live, and
	// otherwise not kept.
	if err := s.Claim(k, now, now); err != replay.ErrReplayed {
		t.Errorf("claiming a live key with an expired claim: %v; want ErrReplayed", err)
	}
	k3 := freshKey()
	if err := s.Claim(k3, now, now-10); err != nil {
		t.Fatalf("an expired claim: %v", err)
	}
	testsupport.WaitFor(t, "the expired claim's key to go", func() bool {
		return redisInt(t, r.MustDo(t, "EXISTS", s.Key(k3))) == 0
	})
}

func TestReleaseDeletesOnlyItsOwnClaim(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	a := openStore(t, redisstore.Options{Addr: r.Addr})
	b := openStore(t, redisstore.Options{Addr: r.Addr})
	now := time.Now().Unix()
	exists := func(s *redisstore.Store, k replay.Key) bool {
		return redisInt(t, r.MustDo(t, "EXISTS", s.Key(k))) == 1
	}
	expire := func(s *redisstore.Store, k replay.Key) {
		r.MustDo(t, "PEXPIRE", s.Key(k), "1")
		testsupport.WaitFor(t, "the claim to expire", func() bool { return !exists(s, k) })
	}

	// Released, the stamp can be claimed again.
	k := freshKey()
	if err := a.Claim(k, now, now+300); err != nil {
		t.Fatal(err)
	}
	a.Release(k)
	if exists(a, k) {
		t.Fatal("Release left its own claim")
	}
	if err := b.Claim(k, now, now+300); err != nil {
		t.Fatalf("claiming a released key: %v", err)
	}

	// A's claim expires and B claims the key: A's late release leaves B's
	// claim, whether A still remembers its claim's value or only its
	// token.
	for _, remembered := range []bool{true, false} {
		k := freshKey()
		if err := a.Claim(k, now, now+300); err != nil {
			t.Fatal(err)
		}
		expire(a, k)
		if err := b.Claim(k, now, now+300); err != nil {
			t.Fatal(err)
		}
		if !remembered {
			redisstore.ForgetRecent(a, k)
		}
		a.Release(k)
		if !exists(b, k) {
			t.Fatalf("remembered %v: A's Release deleted B's claim", remembered)
		}
		if v := valueOf(t, r, b.Key(k)); v>>21 != redisstore.Token(b) {
			t.Fatalf("remembered %v: the key holds %#x, not B's claim", remembered, v)
		}
		b.Release(k)
		if exists(b, k) {
			t.Fatalf("remembered %v: B's Release left its claim", remembered)
		}
	}

	// Forgotten, its own claim is still released (by its token).
	k = freshKey()
	if err := a.Claim(k, now, now+300); err != nil {
		t.Fatal(err)
	}
	redisstore.ForgetRecent(a, k)
	a.Release(k)
	if exists(a, k) {
		t.Fatal("Release by token left its own claim")
	}
	if st := a.Stats(); st.Releases != 2 || st.ReleasesGone != 2 || st.ReleaseErrors != 0 {
		t.Errorf("A's stats %+v: want 2 releases, 2 gone, no errors", st)
	}
}

func TestOpenRefusesEvictingPolicies(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	for _, policy := range []string{"allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"} {
		r.MustDo(t, "CONFIG", "SET", "maxmemory-policy", policy)
		s, err := tryOpen(t, redisstore.Options{Addr: r.Addr})
		if err == nil {
			s.Close()
			t.Errorf("%s: opened", policy)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "maxmemory-policy "+policy) || !strings.Contains(msg, "noeviction") {
			t.Errorf("%s: %v; want the policy and the accepted one named", policy, err)
		}
	}
	r.MustDo(t, "CONFIG", "SET", "maxmemory-policy", "noeviction")
	r.MustDo(t, "CONFIG", "SET", "maxmemory", "64mb")
	s := openStore(t, redisstore.Options{Addr: r.Addr})
	if got, want := s.Info(), (redisstore.ServerInfo{MaxMemoryPolicy: "noeviction", MaxMemory: 64 << 20, From: "CONFIG GET"}); got != want {
		t.Errorf("Info %+v; want %+v", got, want)
	}
}

func TestOpenReadsThePolicyFromInfoWithoutConfig(t *testing.T) {
	noConfig := []string{"--rename-command", "CONFIG", ""}
	r := testsupport.StartRedis(t, testsupport.RedisOptions{Args: noConfig})
	s := openStore(t, redisstore.Options{Addr: r.Addr})
	if got, want := s.Info(), (redisstore.ServerInfo{MaxMemoryPolicy: "noeviction", From: "INFO memory"}); got != want {
		t.Errorf("Info %+v; want %+v", got, want)
	}

	r = testsupport.StartRedis(t, testsupport.RedisOptions{Args: append(noConfig, "--maxmemory-policy", "volatile-ttl")})
	if s, err := tryOpen(t, redisstore.Options{Addr: r.Addr}); err == nil {
		s.Close()
		t.Error("volatile-ttl read from INFO: opened")
	} else if !strings.Contains(err.Error(), "maxmemory-policy volatile-ttl (INFO memory)") {
		t.Errorf("volatile-ttl read from INFO: %v", err)
	}

	r = testsupport.StartRedis(t, testsupport.RedisOptions{Args: append(noConfig, "--rename-command", "INFO", "")})
	if s, err := tryOpen(t, redisstore.Options{Addr: r.Addr}); err == nil {
		s.Close()
		t.Error("neither CONFIG nor INFO: opened")
	} else if !strings.Contains(err.Error(), "cannot read maxmemory-policy") || !strings.Contains(err.Error(), "noeviction") {
		t.Errorf("neither CONFIG nor INFO: %v", err)
	}
}

func TestOpenAuthenticates(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{Password: "correct horse"})
	if s, err := tryOpen(t, redisstore.Options{Addr: r.Addr, Password: "hunter2"}); err == nil {
		s.Close()
		t.Error("wrong password: opened")
	} else if msg := err.Error(); !strings.Contains(msg, "WRONGPASS") || !strings.Contains(msg, r.Addr) || strings.Contains(msg, "hunter2") {
		t.Errorf("wrong password: %v; want WRONGPASS and the address, not the password", err)
	} else if oe := (*redisstore.OptionError)(nil); !errors.As(err, &oe) || oe.Option != "Password" {
		t.Errorf("wrong password: %v; want an *OptionError for Password", err)
	}
	if s, err := tryOpen(t, redisstore.Options{Addr: r.Addr}); err == nil {
		s.Close()
		t.Error("no password: opened")
	} else if oe := (*redisstore.OptionError)(nil); !strings.Contains(err.Error(), "NOAUTH") || !errors.As(err, &oe) || oe.Option != "Password" {
		t.Errorf("no password: %v; want NOAUTH, as an *OptionError for Password", err)
	}
	s := openStore(t, redisstore.Options{Addr: r.Addr, Password: "correct horse", DB: 3})
	k := freshKey()
	if err := s.Claim(k, 1, 300); err != nil {
		t.Fatal(err)
	}
	if n := redisInt(t, r.MustDo(t, "DBSIZE")); n != 0 {
		t.Errorf("database 0 holds %d keys; want the claim in database 3", n)
	}

	// A user with only what the store needs (README.md's ACL).
	r.MustDo(t, "ACL", "SETUSER", "hashcash", "on", ">pw", "resetkeys", "~hashcash:*", "nocommands",
		"+hello", "+client|setname", "+select",
		"+config|get", "+info", "+set", "+evalsha", "+eval", "+get", "+del")
	s = openStore(t, redisstore.Options{Addr: r.Addr, Username: "hashcash", Password: "pw"})
	if err := s.Claim(k, 1, 300); err != nil {
		t.Fatalf("claim as the ACL user: %v", err)
	}
	s.Release(k)
	if st := s.Stats(); st.Releases != 1 {
		t.Errorf("release as the ACL user: stats %+v", st)
	}
	if s, err := tryOpen(t, redisstore.Options{Addr: r.Addr, Username: "hashcash", Password: "pw", KeyPrefix: "other:"}); err != nil {
		t.Fatal(err)
	} else {
		err := s.Claim(k, 1, 300)
		s.Close()
		if err == nil || !strings.Contains(err.(*redisstore.Error).Detail(), "NOPERM") {
			t.Errorf("claim outside the user's keys: %v; want NOPERM", err)
		}
	}
}

func TestOpenOverUnixSocketAndTLS(t *testing.T) {
	cert, key, ca := writeCerts(t)
	r := testsupport.StartRedis(t, testsupport.RedisOptions{TLSCertFile: cert, TLSKeyFile: key})

	s := openStore(t, redisstore.Options{Addr: r.Socket})
	if err := s.Claim(freshKey(), 1, 300); err != nil {
		t.Fatalf("over the Unix socket: %v", err)
	}

	s = openStore(t, redisstore.Options{Addr: r.TLSAddr, TLS: true, CAFile: ca})
	if err := s.Claim(freshKey(), 1, 300); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	_, port, _ := net.SplitHostPort(r.TLSAddr)
	s = openStore(t, redisstore.Options{Addr: "localhost:" + port, TLS: true, CAFile: ca, TLSServerName: "redis.test"})
	if err := s.Claim(freshKey(), 1, 300); err != nil {
		t.Fatalf("over TLS, with TLSServerName: %v", err)
	}
	for name, o := range map[string]redisstore.Options{
		"system roots":     {Addr: r.TLSAddr, TLS: true, Timeout: time.Second},
		"wrong name":       {Addr: r.TLSAddr, TLS: true, CAFile: ca, TLSServerName: "other.test", Timeout: time.Second},
		"no TLS":           {Addr: r.TLSAddr, Timeout: time.Second},
		"TLS to plain TCP": {Addr: r.Addr, TLS: true, CAFile: ca, Timeout: time.Second},
	} {
		if s, err := tryOpen(t, o); err == nil {
			s.Close()
			t.Errorf("%s: opened", name)
		}
	}
}

// writeCerts writes a certificate authority and a certificate for
// 127.0.0.1 and redis.test that it signed, with its key, and returns the
// files' paths.
func writeCerts(t *testing.T) (cert, key, ca string) {
	dir := t.TempDir()
	write := func(name, kind string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"redis.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	return write("redis.crt", "CERTIFICATE", leafDER), write("redis.key", "EC PRIVATE KEY", keyDER), write("ca.crt", "CERTIFICATE", caDER)
}

func TestClaimFailsWhenRedisIsFull(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{Args: []string{"--maxmemory", "2mb"}})
	var tr transitions
	s := openStore(t, redisstore.Options{Addr: r.Addr, OnStateChange: tr.hook})
	now := time.Now().Unix()
	first := freshKey()
	if err := s.Claim(first, now, now+300); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 1_000_000 && err == nil; i++ {
		err = s.Claim(freshKey(), now, now+300)
	}
	var e *redisstore.Error
	if !errors.As(err, &e) || !e.Full || !errors.Is(err, replay.ErrFull) || err.Error() != replay.ErrFull.Error() ||
		!strings.Contains(e.Detail(), "OOM") {
		t.Fatalf("claims into a full Redis: %v; want replay.ErrFull, with OOM in its detail", err)
	}
	if err := s.Claim(first, now, now+300); !errors.Is(err, replay.ErrFull) {
		t.Errorf("claiming a recorded key in a full Redis: %v; want replay.ErrFull (Redis refuses SET before looking)", err)
	}
	// Releasing still works (and frees memory), without announcing a
	// recovery.
	s.Release(first)
	if ups, errs := tr.get(); len(ups) != 1 || ups[0] || !errors.Is(errs[0], replay.ErrFull) {
		t.Errorf("transitions %v %v; want one outage, full", ups, errs)
	}
	if st := s.Stats(); st.ClaimsFull == 0 || st.ClaimsFull != st.ClaimErrors || st.Releases != 1 || st.Up || st.Outages != 1 {
		t.Errorf("stats %+v", st)
	}

	r.MustDo(t, "CONFIG", "SET", "maxmemory", "0")
	if err := s.Claim(freshKey(), now, now+300); err != nil {
		t.Fatalf("after raising maxmemory: %v", err)
	}
	if ups, _ := tr.get(); len(ups) != 2 || !ups[1] {
		t.Errorf("transitions %v; want an outage and a recovery", ups)
	}
}

func TestClaimFailsWhileRedisIsDownAndRecovers(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	var tr transitions
	s := openStore(t, redisstore.Options{Addr: r.Addr, OnStateChange: tr.hook})
	now := time.Now().Unix()

	const (
		running = iota
		killed
		restarting
	)
	var phase atomic.Int32
	var stop atomic.Bool
	var succeededDown, failedDown atomic.Int64
	var wrongErr atomic.Value
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			var k replay.Key
			rand.Read(k[:8])
			for i := uint64(0); !stop.Load(); i++ {
				binary.LittleEndian.PutUint64(k[8:], i<<8|uint64(g))
				before := phase.Load()
				err := s.Claim(k, now, now+300)
				if before != killed || phase.Load() != killed {
					continue // not wholly while Redis was down
				}
				if err == nil {
					succeededDown.Add(1)
				} else {
					failedDown.Add(1)
					if !errors.Is(err, redisstore.ErrUnavailable) || err.Error() != redisstore.ErrUnavailable.Error() {
						wrongErr.Store(err)
					}
				}
			}
		})
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	testsupport.WaitFor(t, "claims to succeed", func() bool { return s.Stats().Claims >= 500 })

	r.Kill(t)
	phase.Store(killed)
	testsupport.WaitFor(t, "claims to fail", func() bool { return failedDown.Load() >= 2000 })
	if n := succeededDown.Load(); n != 0 {
		t.Errorf("%d claims succeeded while Redis was down", n)
	}
	if err := wrongErr.Load(); err != nil {
		t.Errorf("a claim failed with %v; want ErrUnavailable's message", err)
	}
	ups, errs := tr.get()
	if len(ups) != 1 || ups[0] {
		t.Fatalf("transitions while down %v %v; want one outage", ups, errs)
	}
	var e *redisstore.Error
	if !errors.As(errs[0], &e) || !strings.Contains(e.Detail(), r.Addr) {
		t.Errorf("the outage's error %v: want an *Error naming the address", errs[0])
	}
	if st := s.Stats(); st.Up || st.Outages != 1 {
		t.Errorf("stats while down %+v", st)
	}

	phase.Store(restarting)
	r.Restart(t)
	testsupport.WaitFor(t, "the recovery to be reported", func() bool { return tr.count() >= 2 })
	claims := s.Stats().Claims
	testsupport.WaitFor(t, "claims to succeed again", func() bool { return s.Stats().Claims >= claims+500 })
	stop.Store(true)
	wg.Wait()
	if ups, errs := tr.get(); len(ups) != 2 || ups[0] || !ups[1] || errs[1] != nil {
		t.Errorf("transitions %v %v; want one outage, then one recovery", ups, errs)
	}
	if st := s.Stats(); !st.Up || st.Outages != 1 {
		t.Errorf("stats after the recovery %+v", st)
	}
}

func TestClaimGivesUpOnASlowRedis(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	var tr transitions
	s := openStore(t, redisstore.Options{Addr: r.Addr, Timeout: 200 * time.Millisecond, OnStateChange: tr.hook})
	now := time.Now().Unix()
	if err := s.Claim(freshKey(), now, now+300); err != nil {
		t.Fatal(err)
	}

	// Redis holds every write command for a minute: a claim must give up
	// at its timeout, long before.
	r.MustDo(t, "CLIENT", "PAUSE", "60000", "WRITE")
	unpaused := false
	t.Cleanup(func() {
		if !unpaused {
			r.MustDo(t, "CLIENT", "UNPAUSE")
		}
	})
	done := make(chan error, 1)
	go func() { done <- s.Claim(freshKey(), now, now+300) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, redisstore.ErrUnavailable) {
			t.Errorf("claim while Redis is paused: %v; want a timeout", err)
		}
	case <-time.After(testsupport.WaitTimeout):
		t.Fatal("a claim did not return while Redis was paused")
	}
	if ups, _ := tr.get(); len(ups) != 1 || ups[0] {
		t.Errorf("transitions %v; want an outage", ups)
	}

	r.MustDo(t, "CLIENT", "UNPAUSE")
	unpaused = true
	testsupport.WaitFor(t, "a claim to succeed", func() bool { return s.Claim(freshKey(), now, now+300) == nil })
	if ups, _ := tr.get(); len(ups) != 2 || !ups[1] {
		t.Errorf("transitions %v; want an outage and a recovery", ups)
	}
}

func TestClaimAfterClose(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	s := openStore(t, redisstore.Options{Addr: r.Addr})
	s.Close()
	if err := s.Claim(freshKey(), 1, 300); !errors.Is(err, redisstore.ErrClosed) || !errors.Is(err, redisstore.ErrUnavailable) {
		t.Errorf("claim after Close: %v", err)
	}
	s.Release(freshKey())
	if st := s.Stats(); st.ReleaseErrors != 1 {
		t.Errorf("release after Close: stats %+v", st)
	}
}

func TestClaimBatchIsClaimPipelined(t *testing.T) {
	r := testsupport.StartRedis(t, testsupport.RedisOptions{})
	a := openStore(t, redisstore.Options{Addr: r.Addr})
	b := openStore(t, redisstore.Options{Addr: r.Addr})
	now := time.Now().Unix()
	k := []replay.Key{freshKey(), freshKey(), freshKey()}
	batch := func(s *redisstore.Store, keys ...replay.Key) []error {
		claims := make([]replay.Claim, len(keys))
		for i, key := range keys {
			claims[i] = replay.Claim{Key: key, Expires: now + 300}
		}
		errs := make([]error, len(keys))
		s.ClaimBatch(now, claims, errs)
		return errs
	}
	if errs := batch(a, k[0], k[1]); errs[0] != nil || errs[1] != nil {
		t.Fatalf("A's first batch: %v", errs)
	}
	// At B: k1 is A's; k2 is new, then again in the same batch.
	if errs := batch(b, k[1], k[2], k[2]); errs[0] != replay.ErrReplayed || errs[1] != nil || errs[2] != replay.ErrReplayed {
		t.Fatalf("B's batch: %v; want replayed, claimed, replayed", errs)
	}
	if ttl, ok := r.MustDo(t, "PTTL", a.Key(k[0])).(int64); !ok || ttl <= 0 || ttl > 300_000 {
		t.Fatalf("a batched key's PTTL is %v; want the stamp's remaining 300 s", ttl)
	}
	// A batched claim is released as any other, and only by its owner.
	b.Release(k[0])
	if err := b.Claim(k[0], now, now+300); err != replay.ErrReplayed {
		t.Fatalf("after B released A's claim: %v; want it still A's", err)
	}
	a.Release(k[0])
	if err := b.Claim(k[0], now, now+300); err != nil {
		t.Fatalf("after A released its batched claim: %v", err)
	}
	if st := b.Stats(); st.Claims != 2 || st.Replayed != 3 {
		t.Errorf("B's stats %+v; want 2 claims, 3 replayed", st)
	}

	// Redis down: every claim of a batch fails, unavailable; back: claimed.
	r.Kill(t)
	k2 := []replay.Key{freshKey(), freshKey()}
	for i, err := range batch(a, k2...) {
		if err == nil || !errors.Is(err, redisstore.ErrUnavailable) {
			t.Fatalf("claim %d of a batch while Redis is down: %v; want ErrUnavailable", i, err)
		}
	}
	if st := a.Stats(); st.Up || st.ClaimErrors != 2 {
		t.Errorf("A's stats while down %+v; want down, 2 claim errors", st)
	}
	r.Restart(t)
	// A connection that has not noticed the restart fails its next
	// command (EOF) and reconnects: the batch fails, unclaimed, until the
	// store's connections are new.
	testsupport.WaitFor(t, "the batch to be claimed after the restart", func() bool {
		errs := batch(a, k2...)
		if (errs[0] == nil) != (errs[1] == nil) {
			t.Fatalf("one pipelined batch half claimed: %v", errs)
		}
		return errs[0] == nil
	})
	if !a.Stats().Up {
		t.Errorf("A not up after the restart")
	}
}
