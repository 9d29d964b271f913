// Package redisstore is a replay.Store kept in Redis, so that every process
// sharing one Redis accepts each stamp at most once.
//
// A claim is one command, SET key value NX PX ttl: atomic in Redis, so of
// several claims of one key, from any number of processes, exactly one
// succeeds. The key is the configured prefix followed by the stamp's 16-byte
// key as raw bytes (16 bytes less per stamp in Redis than hex). The key
// expires when the stamp does, by the claiming process's clock (its ttl is
// the claim's expires minus its now), so Redis holds about accepted stamps
// per second × window keys, and the Redis host's own clock does not matter.
// The value is unique to the claim: a random 32-bit token of the Store and
// a 21-bit counter, as one integer below 2^53, which Redis keeps inside the
// value's object header (32 bytes less per stamp than a 24-byte string)
// and Lua reads exactly. Release deletes the key only if it still holds
// that claim's value (a Lua compare-and-delete), so it never deletes a
// claim of another process.
//
// Redis must not evict keys: an evicted key lets its stamp be used again.
// Open therefore refuses a Redis whose maxmemory-policy is not noeviction.
// The volatile-* policies are refused too: they evict keys that have an
// expiry, and every stamp's key has one. Under noeviction a full Redis
// answers claims with an OOM error, which Claim reports as replay.ErrFull,
// so the request gets busy and no stamp is forgotten.
//
// The store fails closed. When Redis cannot be reached, does not answer
// within Options.Timeout, or answers with an error, Claim returns an error
// (never nil), so the request gets busy rather than being forwarded with an
// unrecorded stamp. The client reconnects by itself when Redis is back.
// Options.OnStateChange reports the transitions between claims failing and
// succeeding, for a log line and a counter; Stats counts claims and errors.
//
// What the operator's Redis needs is listed in this package's README.md.
package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
)

// Defaults of Options.
const (
	// DefaultKeyPrefix is the KeyPrefix of Options that leave it empty.
	DefaultKeyPrefix = "hashcash:"
	// DefaultTimeout is the Timeout of Options that leave it zero.
	DefaultTimeout = 500 * time.Millisecond
)

// Bounds of Options.
const (
	// MaxKeyPrefix is the longest KeyPrefix, in bytes. Prefixes of up to
	// 12 bytes keep a key within Redis's 32-byte allocation; longer ones
	// cost more memory per stamp.
	MaxKeyPrefix = 64
	// MinTimeout and MaxTimeout bound Options.Timeout: a shorter timeout is
	// less than a round trip (a duration given without its unit, say), a
	// longer one holds a connection's requests for that long each while
	// Redis does not answer.
	MinTimeout = time.Millisecond
	MaxTimeout = time.Minute
)

// Options configures a Store.
type Options struct {
	// Addr is where Redis listens: host:port for TCP, or the absolute path
	// of a Unix socket (which starts with "/"). Required.
	Addr string
	// Username and Password authenticate the connections (AUTH or
	// HELLO ... AUTH); an empty Username with a Password is the default
	// user. Empty: no authentication.
	Username string
	Password string
	// DB is the logical database to SELECT; default 0.
	DB int
	// TLS makes the TCP connections use TLS, verifying the server's
	// certificate for TLSServerName (default: the host of Addr) against
	// CAFile's certificates, or the system's roots if CAFile is empty.
	TLS bool
	// CAFile is a PEM file of the certificate authorities to trust for
	// TLS; it requires TLS.
	CAFile string
	// TLSServerName is the name the server's certificate must carry, when
	// it is not the host of Addr (an IP address, say); it requires TLS.
	TLSServerName string
	// KeyPrefix starts every key the store writes, so that the stamps'
	// keys stay apart from other data; default DefaultKeyPrefix. At most
	// MaxKeyPrefix bytes.
	KeyPrefix string
	// Timeout bounds each command: connecting (and the TLS and AUTH
	// handshakes), a claim, a release, and each of Open's checks; default
	// DefaultTimeout. A claim that Redis does not answer in time fails.
	Timeout time.Duration
	// OnStateChange, if not nil, is called when claims start failing
	// (up false, with the *Error, whose Detail names the cause) and when
	// they succeed again (up true, err nil): on transitions only, in order,
	// one call at a time, never twice in a row with the same up. A claim
	// refused as replayed is a success: Redis answered. Releases do not
	// count. A store is up when Open returns it. It runs on the goroutine of the claim that
	// changed the state, which it holds up, so it must be quick and must
	// not call the Store.
	OnStateChange func(up bool, err error)
}

// normalized returns o with its defaults filled in, or an error naming the
// first option that is wrong.
func (o Options) normalized() (Options, error) {
	switch {
	case o.Addr == "":
		return o, optionError("Addr", "empty; want host:port or the absolute path of a Unix socket")
	case o.unix():
		if o.TLS {
			return o, optionError("TLS", "not supported over the Unix socket %q", o.Addr)
		}
	default:
		host, port, err := net.SplitHostPort(o.Addr)
		if err != nil {
			return o, optionError("Addr", "%q: want host:port or the absolute path of a Unix socket: %w", o.Addr, err)
		}
		if host == "" || port == "" {
			return o, optionError("Addr", "%q: want host:port, both given, or the absolute path of a Unix socket", o.Addr)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return o, optionError("Addr", "%q: port %q is not a number from 1 to 65535", o.Addr, port)
		}
	}
	if o.DB < 0 {
		return o, optionError("DB", "%d is negative", o.DB)
	}
	if o.CAFile != "" && !o.TLS {
		return o, optionError("CAFile", "set but TLS is not")
	}
	if o.TLSServerName != "" && !o.TLS {
		return o, optionError("TLSServerName", "set but TLS is not")
	}
	if o.Password == "" && o.Username != "" {
		return o, optionError("Username", "%q is set without a Password", o.Username)
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if len(o.KeyPrefix) > MaxKeyPrefix {
		return o, optionError("KeyPrefix", "%d bytes; at most %d", len(o.KeyPrefix), MaxKeyPrefix)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Timeout < MinTimeout || o.Timeout > MaxTimeout {
		return o, optionError("Timeout", "%v: want %v to %v", o.Timeout, MinTimeout, MaxTimeout)
	}
	return o, nil
}

// unix reports whether Addr names a Unix socket.
func (o *Options) unix() bool { return strings.HasPrefix(o.Addr, "/") }

// tlsConfig returns the TLS configuration the options ask for, or nil.
func (o *Options) tlsConfig() (*tls.Config, error) {
	if !o.TLS {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.TLSServerName}
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(o.Addr)
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, optionError("CAFile", "%w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, optionError("CAFile", "%q: no PEM certificate in it", o.CAFile)
		}
	}
	return c, nil
}

// OptionError is the error of Open for an option that is wrong, or that
// Redis refused (the credentials: Option "Password").
type OptionError struct {
	// Option is the name of the field of Options.
	Option string
	// Err says what is wrong with it.
	Err error
}

// Error names the option and says what is wrong.
func (e *OptionError) Error() string { return "redisstore: option " + e.Option + ": " + e.Err.Error() }

// Unwrap returns what is wrong.
func (e *OptionError) Unwrap() error { return e.Err }

// optionError returns an *OptionError for option, its Err formatted as by
// fmt.Errorf.
func optionError(option, format string, args ...any) error {
	return &OptionError{Option: option, Err: fmt.Errorf(format, args...)}
}

// refusedCredentials reports whether err is Redis refusing a connection's
// authentication: a wrong username or password (WRONGPASS), or none where
// one is required (NOAUTH).
func refusedCredentials(err error) bool {
	var re *rueidis.RedisError
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH")
}

// ErrUnavailable is what Claim's errors say when Redis cannot be used:
// unreachable, too slow, or answering with an error.
var ErrUnavailable = errors.New("replay store unavailable")

// ErrClosed is the cause of the errors of a Store's methods after Close.
var ErrClosed = errors.New("redisstore: store closed")

// Error is the error Claim returns when it cannot record a claim. Its
// message is only "replay store unavailable" (ErrUnavailable) or, when
// Redis is out of memory, replay.ErrFull's: the request's busy reply shows
// it to the client, who must not learn Redis's address or errors. Log
// Detail, or the error OnStateChange gets, for those. errors.Is matches it
// against ErrUnavailable or replay.ErrFull, and against its Cause.
type Error struct {
	// Op is the operation that failed: "claim".
	Op string
	// Addr is the Redis it failed on, Options.Addr.
	Addr string
	// Cause is what happened: the connection's or Redis's error, or
	// context.DeadlineExceeded for a command that ran past the timeout.
	Cause error
	// Full reports that Redis refused the write for lack of memory (an OOM
	// reply under maxmemory-policy noeviction).
	Full bool
}

// Error returns the message fit for a client: ErrUnavailable's, or
// replay.ErrFull's if Full.
func (e *Error) Error() string {
	if e.Full {
		return replay.ErrFull.Error()
	}
	return ErrUnavailable.Error()
}

// Detail returns the message for logs: the operation, Redis's address and
// the cause.
func (e *Error) Detail() string {
	return "redis replay store " + e.Addr + ": " + e.Op + ": " + e.Cause.Error()
}

// Unwrap returns ErrUnavailable or replay.ErrFull, and the cause.
func (e *Error) Unwrap() []error {
	if e.Full {
		return []error{replay.ErrFull, e.Cause}
	}
	return []error{ErrUnavailable, e.Cause}
}

// Stats are a Store's counters since Open.
type Stats struct {
	// Claims counts claims recorded, Replayed claims refused with
	// replay.ErrReplayed, and ClaimErrors claims that failed with an Error
	// (Full ones included, in ClaimsFull too).
	Claims, Replayed, ClaimErrors, ClaimsFull uint64
	// Releases counts releases that deleted the claim, ReleasesGone those
	// that found it gone (expired, or already released), and
	// ReleaseErrors those that failed: their keys stay until they expire.
	Releases, ReleasesGone, ReleaseErrors uint64
	// Outages counts the transitions from up to down.
	Outages uint64
	// Up reports whether claims succeed: whether the latest claim that
	// decides (see OnStateChange) succeeded.
	Up bool
}

// ServerInfo is what Open found out about Redis.
type ServerInfo struct {
	// MaxMemoryPolicy is Redis's maxmemory-policy: always noeviction.
	MaxMemoryPolicy string
	// MaxMemory is Redis's maxmemory in bytes; 0 means no limit, under
	// which Redis grows until the system runs out of memory instead of
	// refusing claims.
	MaxMemory int64
	// From says where Open read them: "CONFIG GET" or "INFO memory".
	From string
}

// Store is a replay.Store in Redis. Its methods are safe for concurrent
// use; concurrent claims share a few connections, their commands
// pipelined.
type Store struct {
	client  rueidis.Client
	addr    string
	prefix  string
	timeout time.Duration
	info    ServerInfo

	token   uint64        // this store's part of every claim's value, 32 random bits
	counter atomic.Uint64 // the last claim's number
	release *rueidis.Lua  // releaseScript

	recent [recentSlots]recentSlot
	seed   uint64

	health health
	closed atomic.Bool
	close  sync.Once

	claims, replayed, claimErrors, claimsFull atomic.Uint64
	releases, releasesGone, releaseErrors     atomic.Uint64
}

const (
	// counterBits is the width of a value's counter, below the token's 32
	// bits: values stay below 2^53, integers that Lua's numbers hold
	// exactly. The counter wraps after 2 million claims, which only a
	// store's claims of one key could confuse (see Release).
	counterBits = 21
	keyLen      = len(replay.Key{})
)

// releaseScript deletes KEYS[1] if its value, an integer, is at least
// ARGV[1] and below ARGV[2]: a claim's value, or the values of a store's
// claims (its token's range).
const releaseScript = `local v = redis.call('GET', KEYS[1])
v = v and tonumber(v)
if v and v >= tonumber(ARGV[1]) and v < tonumber(ARGV[2]) then
  return redis.call('DEL', KEYS[1])
end
return 0`

// Open connects to Redis, checks that it may hold the store (its
// maxmemory-policy is noeviction), and returns the store. It fails if Redis
// cannot be reached within ctx and Options.Timeout, refuses the
// credentials, or has another maxmemory-policy. Close the store when done.
func Open(ctx context.Context, o Options) (*Store, error) {
	o, err := o.normalized()
	if err != nil {
		return nil, err
	}
	tlsConf, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	copt := rueidis.ClientOption{
		InitAddress:       []string{o.Addr},
		Username:          o.Username,
		Password:          o.Password,
		SelectDB:          o.DB,
		ClientName:        "electrum-hashcash",
		TLSConfig:         tlsConf,
		Dialer:            net.Dialer{Timeout: o.Timeout},
		ConnWriteTimeout:  max(2*o.Timeout, time.Second),
		ForceSingleClient: true, // no CLUSTER SLOTS probe
		DisableCache:      true,
		DisableRetry:      true, // a failed claim answers busy; the client retries
	}
	if o.unix() {
		copt.DialCtxFn = func(ctx context.Context, path string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
	}
	client, err := connect(ctx, copt)
	if err != nil {
		who := ""
		if o.Username != "" {
			who = " as user " + strconv.Quote(o.Username)
		}
		err = fmt.Errorf("connecting to %s%s: %w", o.Addr, who, err)
		if refusedCredentials(err) {
			return nil, &OptionError{Option: "Password", Err: err}
		}
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	s := &Store{client: client, addr: o.Addr, prefix: o.KeyPrefix, timeout: o.Timeout,
		release: rueidis.NewLuaScript(releaseScript)}
	s.health.init(o.OnStateChange)
	var random [12]byte
	rand.Read(random[:]) // crypto/rand.Read does not fail
	s.token = uint64(binary.LittleEndian.Uint32(random[:4]))
	s.seed = binary.LittleEndian.Uint64(random[4:])
	if s.info, err = s.checkPolicy(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return s, nil
}

// connect makes the client, which dials Redis and authenticates, within
// ctx: NewClient itself is bounded only by the dial timeout.
func connect(ctx context.Context, copt rueidis.ClientOption) (rueidis.Client, error) {
	type result struct {
		c   rueidis.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := rueidis.NewClient(copt)
		if err != nil && c != nil { // ForceSingleClient returns both
			c.Close()
			c = nil
		}
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-ctx.Done():
		go func() { // NewClient ends within the dial timeout
			if r := <-done; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// acceptedPolicy is the only maxmemory-policy the store accepts.
const acceptedPolicy = "noeviction"

// checkPolicy reads Redis's maxmemory-policy and maxmemory, with CONFIG GET
// or, where that is disabled, renamed or not allowed, from INFO memory, and
// fails unless the policy is noeviction.
func (s *Store) checkPolicy(ctx context.Context) (ServerInfo, error) {
	info, cfgErr := s.configPolicy(ctx)
	if cfgErr != nil {
		var infoErr error
		if info, infoErr = s.infoPolicy(ctx); infoErr != nil {
			return info, fmt.Errorf("redisstore: %s: cannot read maxmemory-policy, which must be %s: CONFIG GET: %v; INFO memory: %w",
				s.addr, acceptedPolicy, cfgErr, infoErr)
		}
	}
	if info.MaxMemoryPolicy != acceptedPolicy {
		return info, fmt.Errorf("redisstore: %s has maxmemory-policy %s (%s); the replay store accepts only %s: "+
			"every other policy evicts keys when Redis is full (the volatile-* ones those with an expiry, which every stamp's key has), "+
			"and an evicted stamp can be used again", s.addr, info.MaxMemoryPolicy, info.From, acceptedPolicy)
	}
	return info, nil
}

// configPolicy reads the settings with CONFIG GET.
func (s *Store) configPolicy(ctx context.Context) (ServerInfo, error) {
	info := ServerInfo{From: "CONFIG GET"}
	get := func(name string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		m, err := s.client.Do(ctx, s.client.B().ConfigGet().Parameter(name).Build()).AsStrMap()
		if err != nil {
			return "", err
		}
		v, ok := m[name]
		if !ok {
			return "", fmt.Errorf("no %s in the reply", name)
		}
		return v, nil
	}
	var err error
	if info.MaxMemoryPolicy, err = get("maxmemory-policy"); err != nil {
		return info, err
	}
	mm, err := get("maxmemory")
	if err != nil {
		return info, err
	}
	if info.MaxMemory, err = strconv.ParseInt(mm, 10, 64); err != nil {
		return info, fmt.Errorf("maxmemory %q: %w", mm, err)
	}
	return info, nil
}

// infoPolicy reads the settings from INFO memory.
func (s *Store) infoPolicy(ctx context.Context) (ServerInfo, error) {
	info := ServerInfo{From: "INFO memory"}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	text, err := s.client.Do(ctx, s.client.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		return info, err
	}
	return parseInfoMemory(text)
}

// parseInfoMemory reads maxmemory_policy and maxmemory from INFO memory's
// text.
func parseInfoMemory(text string) (ServerInfo, error) {
	info := ServerInfo{From: "INFO memory"}
	var policy, mm bool
	for line := range strings.Lines(text) {
		name, value, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		if !ok {
			continue
		}
		switch name {
		case "maxmemory_policy":
			info.MaxMemoryPolicy, policy = value, true
		case "maxmemory":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return info, fmt.Errorf("maxmemory %q: %w", value, err)
			}
			info.MaxMemory, mm = n, true
		}
	}
	if !policy || !mm {
		return info, errors.New("no maxmemory_policy or maxmemory in it")
	}
	return info, nil
}

// Info returns what Open found out about Redis.
func (s *Store) Info() ServerInfo { return s.info }

// Key returns the Redis key of a stamp's key: the prefix, then the 16
// bytes.
func (s *Store) Key(key replay.Key) string { return redisKey(s.prefix, key) }

func redisKey(prefix string, key replay.Key) string {
	b := make([]byte, 0, len(prefix)+keyLen)
	b = append(b, prefix...)
	return string(append(b, key[:]...))
}

// value returns the value of the claim numbered n.
func (s *Store) value(n uint64) int64 {
	return int64(s.token<<counterBits | n&(1<<counterBits-1))
}

// Claim implements replay.Store: it records key until expires, as SET NX
// with a ttl of expires − now seconds. It returns replay.ErrReplayed if the
// key is recorded (by any process sharing the Redis), and otherwise, if it
// cannot record it, an *Error, never nil.
func (s *Store) Claim(key replay.Key, now, expires int64) error {
	if s.closed.Load() {
		s.claimErrors.Add(1)
		return &Error{Op: "claim", Addr: s.addr, Cause: ErrClosed}
	}
	// A claim that has expired already (which Verifier never makes)
	// records the key for a millisecond, as replay.Memory records it
	// expired: it is refused if the key is live, and forgotten at once.
	ttl := int64(1)
	if expires > now {
		ttl = min(expires-now, maxTTL) * 1000
	}
	n := s.counter.Add(1)
	seq := s.health.begin()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	set := s.client.B().Set().Key(s.Key(key)).Value(strconv.FormatInt(s.value(n), 10)).Nx().PxMilliseconds(ttl)
	err := s.client.Do(ctx, set.Build()).Error()
	cancel()
	switch {
	case err == nil:
		s.remember(key, n)
		s.claims.Add(1)
		s.health.report(seq, nil)
		return nil
	case rueidis.IsRedisNil(err): // NX: the key exists
		s.replayed.Add(1)
		s.health.report(seq, nil)
		return replay.ErrReplayed
	}
	e := s.fail(err)
	s.claimErrors.Add(1)
	if e.Full {
		s.claimsFull.Add(1)
	}
	s.health.report(seq, e)
	return e
}

// ClaimBatch implements replay.BatchClaimer: the claims, each as Claim
// makes it, sent together in one pipeline (rueidis DoMulti), so that a
// connection with several requests buffered waits one round trip for all
// of them instead of one each.
func (s *Store) ClaimBatch(now int64, claims []replay.Claim, errs []error) {
	if len(claims) == 0 {
		return
	}
	if s.closed.Load() {
		for i := range claims {
			s.claimErrors.Add(1)
			errs[i] = &Error{Op: "claim", Addr: s.addr, Cause: ErrClosed}
		}
		return
	}
	first := s.counter.Add(uint64(len(claims))) - uint64(len(claims)) + 1
	cmds := make(rueidis.Commands, len(claims))
	for i, c := range claims {
		ttl := int64(1)
		if c.Expires > now {
			ttl = min(c.Expires-now, maxTTL) * 1000
		}
		n := first + uint64(i)
		cmds[i] = s.client.B().Set().Key(s.Key(c.Key)).Value(strconv.FormatInt(s.value(n), 10)).Nx().PxMilliseconds(ttl).Build()
	}
	seq := s.health.begin()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	results := s.client.DoMulti(ctx, cmds...)
	cancel()
	var failure *Error
	for i, r := range results {
		err := r.Error()
		switch {
		case err == nil:
			s.remember(claims[i].Key, first+uint64(i))
			s.claims.Add(1)
			errs[i] = nil
		case rueidis.IsRedisNil(err):
			s.replayed.Add(1)
			errs[i] = replay.ErrReplayed
		default:
			e := s.fail(err)
			s.claimErrors.Add(1)
			if e.Full {
				s.claimsFull.Add(1)
			}
			errs[i] = e
			if failure == nil {
				failure = e
			}
		}
	}
	if failure != nil {
		s.health.report(seq, failure)
	} else {
		s.health.report(seq, nil)
	}
}

// maxTTL is the longest ttl a claim asks for, in seconds (a century):
// a Verifier's claims last its window, and Redis refuses a ttl whose
// expiry overflows.
const maxTTL = 100 * 365 * 24 * 3600

// fail wraps the cause of a failed claim.
func (s *Store) fail(cause error) *Error {
	e := &Error{Op: "claim", Addr: s.addr, Cause: cause}
	if re, ok := rueidis.IsRedisErr(cause); ok && strings.HasPrefix(re.Error(), "OOM ") {
		e.Full = true
	}
	return e
}

// Release implements replay.Store: it deletes key if it still holds this
// store's claim, its latest one of key, and leaves alone a claim of another
// process. If Redis cannot be reached, the key stays until it expires (and
// Stats counts a release error). Releases do not change the state that
// OnStateChange reports: under OOM they succeed while claims fail.
func (s *Store) Release(key replay.Key) {
	if s.closed.Load() {
		s.releaseErrors.Add(1)
		return
	}
	// The value of this store's latest claim of key if it is still
	// remembered, else any value of this store's (another of its claims
	// of key, while this one lives, could only follow a release).
	lo, hi := int64(s.token<<counterBits), int64((s.token+1)<<counterBits)
	if n, ok := s.forget(key); ok {
		lo = s.value(n)
		hi = lo + 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	args := []string{strconv.FormatInt(lo, 10), strconv.FormatInt(hi, 10)}
	deleted, err := s.release.Exec(ctx, s.client, []string{s.Key(key)}, args).AsInt64()
	cancel()
	switch {
	case err != nil:
		s.releaseErrors.Add(1)
	case deleted == 1:
		s.releases.Add(1)
	default:
		s.releasesGone.Add(1)
	}
}

// recentSlots is the number of claims a Store remembers for Release: its
// latest claims, one per slot, a key's slot chosen by a seeded hash.
const recentSlots = 1024

// recentSlot remembers the latest claim of a key.
type recentSlot struct {
	mu  sync.Mutex
	key replay.Key
	n   uint64 // the claim's number; 0: none
}

func (s *Store) slot(key *replay.Key) *recentSlot {
	h := (binary.LittleEndian.Uint64(key[:8]) ^ s.seed) * 0x9e3779b97f4a7c15
	h ^= binary.LittleEndian.Uint64(key[8:])
	h *= 0xbf58476d1ce4e5b9
	return &s.recent[h>>(64-10)]
}

// remember records that claim n is the latest of key.
func (s *Store) remember(key replay.Key, n uint64) {
	r := s.slot(&key)
	r.mu.Lock()
	r.key, r.n = key, n
	r.mu.Unlock()
}

// forget returns the number of the latest claim of key, if it is still
// remembered, and forgets it.
func (s *Store) forget(key replay.Key) (uint64, bool) {
	r := s.slot(&key)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 || r.key != key {
		return 0, false
	}
	n := r.n
	r.n = 0
	return n, true
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Claims:        s.claims.Load(),
		Replayed:      s.replayed.Load(),
		ClaimErrors:   s.claimErrors.Load(),
		ClaimsFull:    s.claimsFull.Load(),
		Releases:      s.releases.Load(),
		ReleasesGone:  s.releasesGone.Load(),
		ReleaseErrors: s.releaseErrors.Load(),
		Outages:       s.health.outages.Load(),
		Up:            s.health.up.Load(),
	}
}

// Close closes the store's connections. Claims made after it fail with
// ErrClosed as their cause; those in progress fail or finish.
func (s *Store) Close() error {
	s.close.Do(func() {
		s.closed.Store(true)
		s.client.Close()
	})
	return nil
}

// Interface guard
var _ replay.BatchClaimer = (*Store)(nil)
