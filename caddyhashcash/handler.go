// Package caddyhashcash is a layer-4 handler for Caddy (caddy-l4) that puts
// hashcash-style proof of work in front of an Electrum server. For every
// newline-delimited JSON-RPC request line a client sends, it verifies the
// "pow" stamp, removes it and passes the request on, byte for byte as the
// client wrote it, to the next handler (normally proxy); or it answers the
// client with a JSON-RPC error and passes nothing on. Bytes from the server
// reach the client unchanged.
package caddyhashcash

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/electrum-hashcash/electrum-hashcash/internal/connlimit"
	"github.com/electrum-hashcash/electrum-hashcash/internal/pricing"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/replay/redisstore"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

func init() {
	caddy.RegisterModule(&Handler{})
	caddy.RegisterModule(MemoryStore{})
	caddy.RegisterModule(RedisStore{})
}

// Defaults for the Handler's options: DefaultX is the default of option X.
const (
	DefaultWindow            = 5 * time.Minute
	DefaultMaxSkew           = 30 * time.Second
	DefaultMaxLineBytes      = 1_000_000
	DefaultMaxRejections     = 20
	DefaultReplayCapacity    = 1_000_000
	DefaultMaxBatch          = 1000
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 10 * time.Minute
	DefaultWriteTimeout      = 30 * time.Second
	DefaultMaxConnsPerPrefix = 32
	DefaultRejectionCooldown = 30 * time.Second
	DefaultRefusalRate       = 8
	DefaultRefusalBurst      = 64
)

// Handler verifies, strips and forwards Electrum request lines. It must be
// followed in its route by a handler that carries the connection on, such as
// proxy.
type Handler struct {
	// Resource is the name stamps must be minted for, usually the host and
	// port clients connect to, such as "electrum.example.org:50002". It is
	// required; characters allowed: A-Z a-z 0-9 . - _ : [ ].
	Resource string `json:"resource,omitempty"`

	// Price is the work, in expected SHA-256 attempts, that a request of
	// relative cost 1.0 requires; other methods are priced by their relative
	// cost (see MethodCosts) and unknown methods cost 1.0. Accepts numbers
	// with k, M, G suffixes ("64k"), powers of two ("2^17") and bit counts
	// ("17 bits"); k, M and G are powers of ten. 0 makes every method free
	// unless priced in MethodPrices. Default: 131072 (2^17).
	Price *stamp.Work `json:"price,omitempty"`

	// MethodPrices sets the work for individual methods, overriding the
	// price derived from Price. A price of 0 lets the method through without
	// a stamp. Default: none.
	MethodPrices map[string]stamp.Work `json:"method_prices,omitempty"`

	// Window is how long a stamp is accepted after the time it carries.
	// Default: 5m.
	Window caddy.Duration `json:"window,omitempty"`

	// MaxSkew is how far ahead of this server's clock a stamp's time may be.
	// Default: 30s.
	MaxSkew caddy.Duration `json:"max_skew,omitempty"`

	// MaxLineBytes is the longest request line accepted, in bytes, without
	// its line feed. Longer lines are answered with an error and discarded
	// as they arrive, never buffered whole. Default: 1000000 (ElectrumX's
	// MAX_RECV).
	MaxLineBytes int `json:"max_line_bytes,omitempty"`

	// MaxRejections is how many refused requests a connection may send
	// before it is closed, counting only refusals that re-minting cannot
	// cure: lines that are not requests, missing or malformed stamps, stamps
	// whose digest does not prove their claimed work, and lines that are too
	// large. Expired, future-dated, wrong-resource, underpriced, replayed and
	// busy refusals, which a client cures by learning from the error data,
	// do not count. A negative value never closes. Default: 20.
	MaxRejections int `json:"max_rejections,omitempty"`

	// Store is where accepted stamps are recorded, so that each is
	// accepted once: a module of namespace layer4.handlers.hashcash.stores,
	// "memory" (in this process; see MemoryStore) or "redis" (shared by
	// every caddy process using one Redis, and kept across restarts; see
	// RedisStore). Default: memory.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=layer4.handlers.hashcash.stores inline_key=module"`

	// ReplayCapacity is the most stamps remembered at once for Resource by
	// the memory store. When it is reached, new stamps are refused as
	// "busy" until old ones expire; live stamps are never forgotten early.
	// The memory is shared by every handler with the same Resource and
	// survives config reloads. Default: 1000000.
	ReplayCapacity int `json:"replay_capacity,omitempty"`

	// MaxBatch is the most requests one batch line may hold. A longer batch
	// is refused whole with a single invalid_request error, which counts
	// toward MaxRejections, without its elements being looked at. Electrum
	// wallets do not send batches. Default: 1000.
	MaxBatch int `json:"max_batch,omitempty"`

	// ReadTimeout is how long a request line may take to arrive, from its
	// first byte to its line feed. A client that is slower is answered with
	// a read_timeout error and disconnected, and the partial line is
	// dropped. A negative value disables it. Default: 30s.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`

	// IdleTimeout is how long a connection may go without a byte from the
	// client before it is closed. Electrum wallets ping every 5 minutes.
	// A negative value disables it. Default: 10m (ElectrumX's
	// SESSION_TIMEOUT).
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// WriteTimeout is how long one write to the client may block, for the
	// server's responses and for error replies alike. A client that stops
	// reading is disconnected after it. A negative value disables it.
	// Default: 30s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	// MaxConnsPerPrefix is the most connections open at once from one
	// client network: addresses that share their first IPv4Prefix (IPv4) or
	// IPv6Prefix (IPv6) bits. Connections over it are answered with a
	// connection_limit error and closed, before the upstream is dialed.
	// The counts are shared by every handler with the same Resource and
	// survive config reloads. Behind this handler the Electrum server sees
	// every client come from the proxy, so its own per-IP limits no longer
	// apply. A negative value disables it. Default: 32.
	MaxConnsPerPrefix int `json:"max_conns_per_prefix,omitempty"`

	// RejectionCooldown is how long a connection closed for too many
	// refused requests (see MaxRejections) keeps its place in its
	// network's count for MaxConnsPerPrefix after it is closed, so that a
	// flooder cannot reconnect at once. A negative value disables it.
	// Default: 30s.
	RejectionCooldown caddy.Duration `json:"rejection_cooldown,omitempty"`

	// RefusalRate is how many refusals per second a connection is answered
	// once it has used up RefusalBurst; beyond it, the handler stops
	// reading from the client until the budget allows the next line, so a
	// flood of refused lines is slowed to this rate. Each accepted request
	// earns one refusal back. A negative value disables pacing. Default: 8.
	RefusalRate float64 `json:"refusal_rate,omitempty"`

	// RefusalBurst is how many refusals a connection may receive at once
	// before RefusalRate paces it. Default: 64.
	RefusalBurst int `json:"refusal_burst,omitempty"`

	// NetworkBudget makes prices move: it is how many cost units a second
	// (a request of relative cost 1.0 is one unit, see MethodCosts) one
	// client network (see IPv4Prefix) may spend at the calm price, Price.
	// A network that spends more, refused requests counting RefusedWeight
	// of their cost, sees its price level rise one PriceTick at a time
	// until it is back within budget, and fall again after CalmTicks ticks
	// within it; other networks' prices do not move. 0 keeps every price
	// fixed at Price. Default: 0.
	NetworkBudget float64 `json:"network_budget,omitempty"`

	// NetworkBurst is how many cost units a network may spend at once
	// before NetworkBudget limits it: a fresh wallet's sync is about 50
	// units, one with 100 transactions about 250. Default: 25 ×
	// network_budget.
	NetworkBurst float64 `json:"network_burst,omitempty"`

	// PriceStep is the price of a cost-1.0 request at level 1, the first
	// level above calm; each level above multiplies it by PriceFactor.
	// Same syntax as Price. Default: 2 × price, or 16384 if price is 0.
	PriceStep *stamp.Work `json:"price_step,omitempty"`

	// PriceFactor multiplies the price at each level above the first.
	// Default: 2.
	PriceFactor float64 `json:"price_factor,omitempty"`

	// MaxPrice bounds the price of a cost-1.0 request at any level.
	// Default: 2^26 (about 1.1 seconds of one core with SHA extensions).
	MaxPrice *stamp.Work `json:"max_price,omitempty"`

	// PriceTick is how often price levels move. Default: 1s.
	PriceTick caddy.Duration `json:"price_tick,omitempty"`

	// CalmTicks is how many ticks in a row a network must stay within its
	// budget before its level falls by one. Default: 5.
	CalmTicks int `json:"calm_ticks,omitempty"`

	// PriceTolerance is how long after a rise a stamp minted for the price
	// before it is still accepted, so that a stamp in flight during a rise
	// is not refused. A negative value accepts only the current price.
	// Default: 10s.
	PriceTolerance caddy.Duration `json:"price_tolerance,omitempty"`

	// MaxNetworks is how many client networks the price levels are kept
	// for; beyond it the coldest are dropped first, and a dropped network
	// starts again at calm. Default: 100000.
	MaxNetworks int `json:"max_networks,omitempty"`

	// RefusedWeight is the fraction of a refused request's cost that
	// counts toward its network's budget, so that spraying refused lines
	// is not free; at most 1. A negative value counts refused requests for
	// nothing. Default: 0.25.
	RefusedWeight float64 `json:"refused_weight,omitempty"`

	// MaxInFlight caps the server's own load: at most this many accepted
	// requests are forwarded to the Electrum server and not yet answered,
	// across all connections. Beyond it, a connection's requests wait at
	// caddy (it reads nothing more meanwhile), and the slots that answers
	// free go to the waiting client networks in turn, so that a network
	// with one request waiting goes before the backlog of a network that
	// floods. While requests wait throughout a tick, every network's price
	// rises one level (it holds while the backlog drains by a tenth or more
	// a tick); it falls again after CalmTicks ticks at half of it or
	// below. It holds and prices a flood spread over many networks, each
	// within its budget. Size it above what the server has unanswered at a
	// busy calm moment (ElectrumX holds small answers up to a second). 0
	// disables it. Needs network_budget. Default: 0.
	MaxInFlight int `json:"max_in_flight,omitempty"`

	// IPv4Prefix is the prefix length that groups IPv4 clients for
	// MaxConnsPerPrefix and for prices, 1 to 32. Default: 24.
	IPv4Prefix int `json:"ipv4_prefix,omitempty"`

	// IPv6Prefix is the prefix length that groups IPv6 clients for
	// MaxConnsPerPrefix and for prices, 1 to 128. Default: 48.
	IPv6Prefix int `json:"ipv6_prefix,omitempty"`

	state  *resourceState
	env    connEnv // what the handler's connections use, set up by Provision
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "layer4.handlers.hashcash",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies defaults, checks the options and sets up the handler.
func (h *Handler) Provision(ctx caddy.Context) error {
	// Log lines are per connection, and a flood makes many: keep the first
	// 10 of each message every second, then one in 100.
	h.logger = ctx.Logger(h).WithOptions(zap.WrapCore(func(core zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(core, time.Second, 10, 100)
	}))
	if err := h.applyDefaults(); err != nil {
		return err
	}
	var prices *pricing.Config
	if h.adaptive() {
		c, err := h.pricingConfig()
		if err != nil {
			return err
		}
		prices = &c
	}
	state, err := loadResourceState(h.Resource, h.ReplayCapacity, time.Duration(h.Window))
	if err != nil {
		return fmt.Errorf("hashcash: shared state of resource %q: %w", h.Resource, err)
	}
	h.state = state
	var stamps replay.Store = state.stamps
	var redis *redisstore.Store // the Redis store, if that is the store
	if h.StoreRaw != nil {
		mod, err := ctx.LoadModule(h, "StoreRaw")
		if err != nil {
			return fmt.Errorf("hashcash: option store: %w", err)
		}
		stamps = mod.(ReplayStore).ReplayStore(state.stamps)
		redis, _ = stamps.(*redisstore.Store)
	}
	policy := &verify.Policy{
		Resource:     h.Resource,
		DefaultPrice: uint64(*h.Price),
		MethodPrices: methodPrices(*h.Price, h.MethodPrices),
		Window:       time.Duration(h.Window),
		Skew:         time.Duration(h.MaxSkew),
		Store:        stamps,
		MaxBatch:     h.MaxBatch,
	}
	if prices != nil {
		// Only method_prices are fixed; every other method costs its
		// relative cost times the unit price its network's level sets.
		policy.MethodPrices = overridePrices(h.MethodPrices)
		policy.Costs = MethodCosts()
	}
	state.configurePrices(prices, h.logger)
	if prices == nil {
		redis = nil
	}
	state.shareSpending(redis)
	h.env = connEnv{
		settings: h.resolveSettings(),
		policy:   policy,
		metrics:  newHandlerMetrics(ctx.GetMetricsRegistry(), h.Resource, state),
		logger:   h.logger,
		unloaded: ctx.Done(),
	}
	return nil
}

// applyDefaults fills unset options and rejects invalid ones, naming the
// option in the error.
func (h *Handler) applyDefaults() error {
	if h.Resource == "" {
		return fmt.Errorf("hashcash: option resource is required (the host:port clients mint stamps for)")
	}
	if err := stamp.ValidateResource(h.Resource); err != nil {
		return fmt.Errorf("hashcash: option resource: %w", err)
	}
	if h.Price == nil {
		p := DefaultPrice
		h.Price = &p
	}
	for method, w := range h.MethodPrices {
		if method == "" {
			return fmt.Errorf("hashcash: option method_prices: empty method name (price %d)", w)
		}
	}
	orDefault(&h.Window, caddy.Duration(DefaultWindow))
	orDefault(&h.MaxSkew, caddy.Duration(DefaultMaxSkew))
	orDefault(&h.ReadTimeout, caddy.Duration(DefaultReadTimeout))
	orDefault(&h.IdleTimeout, caddy.Duration(DefaultIdleTimeout))
	orDefault(&h.WriteTimeout, caddy.Duration(DefaultWriteTimeout))
	orDefault(&h.RejectionCooldown, caddy.Duration(DefaultRejectionCooldown))
	orDefault(&h.MaxLineBytes, DefaultMaxLineBytes)
	orDefault(&h.MaxBatch, DefaultMaxBatch)
	orDefault(&h.MaxRejections, DefaultMaxRejections)
	orDefault(&h.ReplayCapacity, DefaultReplayCapacity)
	orDefault(&h.RefusalRate, DefaultRefusalRate)
	orDefault(&h.RefusalBurst, DefaultRefusalBurst)
	orDefault(&h.MaxConnsPerPrefix, DefaultMaxConnsPerPrefix)
	orDefault(&h.IPv4Prefix, connlimit.DefaultIPv4Bits)
	orDefault(&h.IPv6Prefix, connlimit.DefaultIPv6Bits)

	switch {
	case h.Window < caddy.Duration(time.Second):
		return fmt.Errorf("hashcash: option window: %s is shorter than 1s", time.Duration(h.Window))
	case h.MaxSkew < 0:
		return fmt.Errorf("hashcash: option max_skew: %s is negative", time.Duration(h.MaxSkew))
	case h.MaxLineBytes < 64:
		return fmt.Errorf("hashcash: option max_line_bytes: %d is less than 64", h.MaxLineBytes)
	case h.MaxBatch < 0:
		return fmt.Errorf("hashcash: option max_batch: %d is negative", h.MaxBatch)
	case h.ReplayCapacity < 0:
		return fmt.Errorf("hashcash: option replay_capacity: %d is negative", h.ReplayCapacity)
	case h.RefusalBurst < 0:
		return fmt.Errorf("hashcash: option refusal_burst: %d is negative", h.RefusalBurst)
	case h.IPv4Prefix < 1 || h.IPv4Prefix > 32:
		return fmt.Errorf("hashcash: option ipv4_prefix: %d is not in 1..32", h.IPv4Prefix)
	case h.IPv6Prefix < 1 || h.IPv6Prefix > 128:
		return fmt.Errorf("hashcash: option ipv6_prefix: %d is not in 1..128", h.IPv6Prefix)
	case h.NetworkBudget < 0:
		return fmt.Errorf("hashcash: option network_budget: %v is negative", h.NetworkBudget)
	case h.MaxInFlight < 0:
		return fmt.Errorf("hashcash: option max_in_flight: %d is negative", h.MaxInFlight)
	case h.MaxInFlight > 0 && !h.adaptive():
		return fmt.Errorf("hashcash: option max_in_flight needs network_budget: prices move only when network_budget is set")
	}
	return nil
}

// orDefault sets an option left at its zero value to its default.
func orDefault[T comparable](option *T, def T) {
	var zero T
	if *option == zero {
		*option = def
	}
}

// Cleanup releases the handler's share of its resource's state.
func (h *Handler) Cleanup() error {
	if h.state == nil {
		return nil
	}
	return h.state.release()
}

// Handle admits the connection if its client network is under the
// connection limit, waits for its first accepted request line, and only then
// hands the filtered connection to next: a client that never sends a valid
// request never causes a connection to the upstream.
func (h *Handler) Handle(cx *layer4.Connection, next layer4.Handler) error {
	h.state.open.Add(1)
	defer h.state.open.Add(-1)
	var fc *filterConn
	var network netip.Prefix // zero for an address without an IP: one network
	if addr, ok := connlimit.AddrOf(cx.RemoteAddr()); ok {
		prefix, open, admitted := h.state.conns.Acquire(addr, h.env.settings.prefixRule)
		if !admitted {
			h.refuseConnection(cx, prefix, open)
			return nil
		}
		defer func() { h.releaseSlot(prefix, fc) }()
		network = prefix
	}
	var prices *connPricing
	if h.adaptive() {
		prices = &connPricing{state: h.state, calm: uint64(*h.Price), prefix: network}
		defer prices.ended()
	}
	var err error
	if fc, err = newFilterConn(cx, &h.env, prices); err != nil {
		return err
	}
	if !fc.awaitFirstRequest() {
		return nil
	}
	return next.Handle(cx.Wrap(fc))
}

// releaseSlot gives back a connection's place in its network's count: at
// once, or after rejection_cooldown if the handler closed it for too many
// refused requests, so that the network cannot simply reconnect.
func (h *Handler) releaseSlot(prefix netip.Prefix, fc *filterConn) {
	cooldown := h.env.settings.rejectionCooldown
	if fc == nil || cooldown == 0 || !fc.closedForRejections() {
		h.state.conns.Release(prefix)
		return
	}
	h.state.conns.ReleaseAfter(prefix, cooldown)
}

// refuseConnection answers a client whose network is over the connection
// limit with a connection_limit error and logs why; the caller then closes
// the connection. Nothing is read from it.
func (h *Handler) refuseConnection(cx *layer4.Connection, prefix netip.Prefix, open int) {
	h.env.metrics.closedFor(closedConnectionLimit).Inc()
	h.logger.Info("refusing connection: too many open from its network",
		zap.String("remote", cx.RemoteAddr().String()),
		zap.Stringer("prefix", prefix),
		zap.Int("open", open),
		zap.Int("max_conns_per_prefix", h.MaxConnsPerPrefix))
	reply := h.env.policy.ConnectionError(stamp.ReasonConnectionLimit,
		fmt.Sprintf("%d connections are open from %s, the most allowed", open, prefix))
	if wt := h.env.settings.writeTimeout; wt > 0 {
		_ = cx.SetWriteDeadline(time.Now().Add(wt))
	}
	if _, err := cx.Write(append(reply, '\n')); err != nil {
		h.logger.Debug("could not send the connection_limit error", zap.Error(err))
	}
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddy.CleanerUpper    = (*Handler)(nil)
	_ layer4.NextHandler    = (*Handler)(nil)
	_ caddy.Destructor      = (*resourceState)(nil)
	_ caddy.AdminRouter     = AdminPrices{}
	_ ReplayStore           = MemoryStore{}
	_ caddyfile.Unmarshaler = (*MemoryStore)(nil)
	_ ReplayStore           = (*RedisStore)(nil)
	_ caddy.Provisioner     = (*RedisStore)(nil)
	_ caddy.CleanerUpper    = (*RedisStore)(nil)
	_ caddyfile.Unmarshaler = (*RedisStore)(nil)
	_ caddy.Destructor      = (*sharedRedis)(nil)
)
