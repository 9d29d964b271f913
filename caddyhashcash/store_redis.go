package caddyhashcash

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay/redisstore"
)

// DefaultRedisAddress is the address of the redis store that sets none.
const DefaultRedisAddress = "127.0.0.1:6379"

// RedisStore keeps the stamps in Redis, so that every caddy process that
// shares one Redis (several instances behind one address, or one instance
// across restarts) accepts each stamp at most once. A claim is one atomic
// SET NX, with the key expiring with the stamp, so Redis holds about
// accepted stamps per second × window keys.
//
// It fails closed: while Redis cannot be reached, does not answer within
// Timeout, answers an error or is out of memory, new stamps are refused as
// "busy" and nothing is forwarded; the handler recovers by itself when
// Redis answers again. The outage is logged once when it starts and once
// when it ends. Redis must be configured with maxmemory-policy noeviction
// (any other policy can evict a live stamp, which could then be used
// again): provisioning refuses any other.
//
// The connection is shared by every handler configured with the same
// options and kept across config reloads.
type RedisStore struct {
	// Address is where Redis listens: host:port, or the absolute path of a
	// Unix socket. Default: 127.0.0.1:6379.
	Address string `json:"address,omitempty"`

	// Username and Password authenticate to Redis (an ACL user, or the
	// default user with Password alone). Placeholders such as
	// {env.REDIS_PASSWORD} are replaced. Default: none.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	// DB is the logical database the keys are kept in. Default: 0.
	DB int `json:"db,omitempty"`

	// TLS, if set, makes the connections to Redis use TLS (TCP addresses
	// only). Default: plain TCP.
	TLS *RedisTLS `json:"tls,omitempty"`

	// KeyPrefix starts every key the store writes, at most 64 bytes.
	// Default: "hashcash:".
	KeyPrefix string `json:"key_prefix,omitempty"`

	// Timeout bounds each command to Redis, connecting included; a claim
	// that takes longer is refused as busy. Default: 500ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	shared *sharedRedis
	key    redisKey
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// CAFile is a PEM file of the certificate authorities that sign
	// Redis's certificate. Default: the system's roots.
	CAFile string `json:"ca_file,omitempty"`
	// ServerName is the name Redis's certificate must carry. Default: the
	// host of Address.
	ServerName string `json:"server_name,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (RedisStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  storeNamespace + ".redis",
		New: func() caddy.Module { return new(RedisStore) },
	}
}

// redisStores holds the Redis connections, one per set of options, shared
// by every store module with those options and kept across config reloads.
var redisStores = caddy.NewUsagePool()

// redisKey identifies a connection by every option that shapes it.
type redisKey struct {
	addr, username, password string
	db                       int
	tls                      bool
	caFile, serverName       string
	keyPrefix                string
	timeout                  time.Duration
}

// sharedRedis is a Redis store and what reports on it: the logger of the
// newest config that uses it, and when the current outage began.
type sharedRedis struct {
	store  *redisstore.Store
	addr   string
	logger atomic.Pointer[zap.Logger]

	mu        sync.Mutex
	downSince time.Time // zero while up
}

// Provision connects to Redis, or takes the connection an earlier config
// with the same options made, and checks Redis's maxmemory-policy.
func (r *RedisStore) Provision(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	o := redisstore.Options{
		Addr:     repl.ReplaceKnown(r.Address, ""),
		Username: repl.ReplaceKnown(r.Username, ""),
		Password: repl.ReplaceKnown(r.Password, ""),
		DB:       r.DB,
		// KeyPrefix and Timeout default in redisstore.
		KeyPrefix: r.KeyPrefix,
		Timeout:   time.Duration(r.Timeout),
	}
	if o.Addr == "" {
		o.Addr = DefaultRedisAddress
	}
	if r.TLS != nil {
		o.TLS = true
		o.CAFile = repl.ReplaceKnown(r.TLS.CAFile, "")
		o.TLSServerName = r.TLS.ServerName
	}
	r.key = redisKey{o.Addr, o.Username, o.Password, o.DB, o.TLS, o.CAFile, o.TLSServerName, o.KeyPrefix, o.Timeout}
	logger := ctx.Logger(r)
	v, _, err := redisStores.LoadOrNew(r.key, func() (caddy.Destructor, error) {
		s := &sharedRedis{addr: o.Addr}
		s.logger.Store(logger)
		o.OnStateChange = s.stateChanged
		store, err := redisstore.Open(ctx, o)
		if err != nil {
			return nil, err
		}
		s.store = store
		return s, nil
	})
	if err != nil {
		return fmt.Errorf("hashcash: store redis: %w", nameRedisOption(err))
	}
	r.shared = v.(*sharedRedis)
	r.shared.logger.Store(logger)
	registerRedisMetrics(ctx.GetMetricsRegistry(), r.shared)
	return nil
}

// redisOptionNames maps redisstore's option names to this module's.
var redisOptionNames = map[string]string{
	"Addr":          "address",
	"Username":      "username",
	"Password":      "password",
	"DB":            "db",
	"TLS":           "tls",
	"CAFile":        "tls ca_file",
	"TLSServerName": "tls server_name",
	"KeyPrefix":     "key_prefix",
	"Timeout":       "timeout",
}

// nameRedisOption rewrites an error of redisstore.Open about one of its
// options to name this module's option instead.
func nameRedisOption(err error) error {
	var oe *redisstore.OptionError
	if !errors.As(err, &oe) {
		return err
	}
	name, ok := redisOptionNames[oe.Option]
	if !ok {
		name = oe.Option
	}
	return fmt.Errorf("option %s: %w", name, oe.Err)
}

// stateChanged logs the start and the end of an outage: once each, never
// per request.
func (s *sharedRedis) stateChanged(up bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	logger := s.logger.Load()
	if !up {
		s.downSince = time.Now()
		msg, detail := "replay store unavailable: new stamps are refused as busy until Redis answers", ""
		var e *redisstore.Error
		if errors.As(err, &e) {
			detail = e.Detail()
			if e.Full {
				msg = "replay store full: Redis is out of memory (maxmemory); new stamps are refused as busy until it has room"
			}
		} else if err != nil {
			detail = err.Error()
		}
		logger.Error(msg, zap.String("address", s.addr), zap.String("error", detail))
		return
	}
	var outage time.Duration
	if !s.downSince.IsZero() {
		outage = time.Since(s.downSince)
	}
	s.downSince = time.Time{}
	logger.Info("replay store available again", zap.String("address", s.addr), zap.Duration("outage", outage))
}

// Destruct closes the connection when no config uses it any more.
func (s *sharedRedis) Destruct() error {
	return s.store.Close()
}

// ReplayStore returns the store in Redis.
func (r *RedisStore) ReplayStore(*replay.Memory) replay.Store { return r.shared.store }

// Cleanup gives up this config's use of the connection.
func (r *RedisStore) Cleanup() error {
	if r.shared == nil {
		return nil
	}
	_, err := redisStores.Delete(r.key)
	return err
}

// registerRedisMetrics exports the store's health and counts, which the
// store keeps across reloads, in the config's metrics registry.
func registerRedisMetrics(reg *prometheus.Registry, s *sharedRedis) {
	labels := prometheus.Labels{"address": s.addr}
	registerOrExisting(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "layer4_hashcash", Name: "redis_up", ConstLabels: labels,
		Help: "1 while claims in the Redis replay store succeed, 0 during an outage (new stamps are refused as busy).",
	}, func() float64 {
		if s.store.Stats().Up {
			return 1
		}
		return 0
	}))
	counter := func(name, help string, value func(redisstore.Stats) uint64) {
		registerOrExisting(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "layer4_hashcash", Name: name, ConstLabels: labels, Help: help,
		}, func() float64 { return float64(value(s.store.Stats())) }))
	}
	counter("redis_outages_total", "Outages of the Redis replay store: transitions from claims succeeding to failing.",
		func(st redisstore.Stats) uint64 { return st.Outages })
	counter("redis_claim_errors_total", "Claims the Redis replay store could not record (unreachable, timeout, error, out of memory); each request got busy.",
		func(st redisstore.Stats) uint64 { return st.ClaimErrors })
	counter("redis_claims_total", "Stamps recorded in the Redis replay store.",
		func(st redisstore.Stats) uint64 { return st.Claims })
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	store redis {
//		address    <host:port | /path/to/redis.sock>
//		username   <name>
//		password   <password>
//		db         <int>
//		tls        [<ca_file>]
//		tls_server_name <name>
//		key_prefix <prefix>
//		timeout    <duration>
//	}
//
// tls_server_name implies tls. Placeholders such as {env.REDIS_PASSWORD}
// are replaced when the config is loaded.
func (r *RedisStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store's name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		option := d.Val()
		if seen[option] {
			return d.Errf("duplicate store redis option '%s'", option)
		}
		seen[option] = true
		args := d.RemainingArgs()
		one := func() (string, error) {
			if len(args) != 1 {
				return "", d.ArgErr()
			}
			return args[0], nil
		}
		var err error
		switch option {
		case "address":
			r.Address, err = one()
		case "username":
			r.Username, err = one()
		case "password":
			r.Password, err = one()
		case "key_prefix":
			r.KeyPrefix, err = one()
		case "db":
			var s string
			if s, err = one(); err == nil {
				if r.DB, err = strconv.Atoi(s); err != nil {
					return d.Errf("store redis option db: %q is not a number", s)
				}
			}
		case "timeout":
			var s string
			if s, err = one(); err == nil {
				var dur time.Duration
				if dur, err = caddy.ParseDuration(s); err != nil {
					return d.Errf("store redis option timeout: %v", err)
				}
				r.Timeout = caddy.Duration(dur)
			}
		case "tls":
			if len(args) > 1 {
				return d.ArgErr()
			}
			if r.TLS == nil {
				r.TLS = new(RedisTLS)
			}
			if len(args) == 1 {
				r.TLS.CAFile = args[0]
			}
		case "tls_server_name":
			var s string
			if s, err = one(); err == nil {
				if r.TLS == nil {
					r.TLS = new(RedisTLS)
				}
				r.TLS.ServerName = s
			}
		default:
			return d.Errf("unknown store redis option '%s'", option)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
