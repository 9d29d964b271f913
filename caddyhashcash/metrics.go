package caddyhashcash

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/electrum-hashcash/electrum-hashcash/internal/methodcost"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// Why the handler closed a connection, the "reason" label of
// connections_closed_total.
const (
	closedRejections      = "rejections"       // too many refused requests
	closedReadTimeout     = "read_timeout"     // a line not finished in time
	closedIdleTimeout     = "idle_timeout"     // nothing from the client
	closedWriteTimeout    = "write_timeout"    // the client stopped reading
	closedConnectionLimit = "connection_limit" // its network has too many open
	closedInternal        = "internal"         // a failure while verifying
)

// handlerMetrics counts verdicts on requests and closed connections, in the
// metrics registry of Caddy's current config.
type handlerMetrics struct {
	resource string
	requests *prometheus.CounterVec
	accepted prometheus.Counter
	closed   map[string]prometheus.Counter // by reason, made up front
	// byMethod counts requests by method: the methods of the cost table,
	// made up front, and otherMethod for every other name, so that the
	// label set stays bounded whatever clients send.
	byMethod    map[string]prometheus.Counter
	otherMethod prometheus.Counter
	work        prometheus.Counter  // the work of accepted stamps
	verifyTime  prometheus.Observer // seconds to check a line, sampled
}

// verifySample is how often a connection times its check of a line: the
// first line, then one in verifySample, which keeps the histogram's shape
// at a fraction of the clock reads.
const verifySample = 8

func registerOrExisting[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

func newHandlerMetrics(reg *prometheus.Registry, resource string, state *resourceState) *handlerMetrics {
	const ns, sub = "caddy", "layer4_hashcash"
	requests := registerOrExisting(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "requests_total",
		Help:      "Requests checked, by resource and verdict (accepted, or the reason refused).",
	}, []string{"resource", "verdict"}))
	closed := registerOrExisting(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "connections_closed_total",
		Help:      "Connections the handler closed, by resource and reason (rejections, read_timeout, idle_timeout, write_timeout, connection_limit, internal).",
	}, []string{"resource", "reason"}))
	byMethod := registerOrExisting(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "requests_by_method_total",
		Help:      "Requests checked, by resource and method: the methods of the Electrum cost table, and \"other\" for any other name (or a line that is not a request).",
	}, []string{"resource", "method"}))
	work := registerOrExisting(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "work_accepted_total",
		Help:      "The work (expected SHA-256 attempts) of the stamps of accepted requests, by resource.",
	}, []string{"resource"}))
	verifyTime := registerOrExisting(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "verify_seconds",
		Help:      "Time to check one request line (scan, stamp, hashes, replay claim), by resource; each connection times its first line and then one in 8.",
		Buckets:   prometheus.ExponentialBuckets(250e-9, 2, 14), // 250 ns to 2 ms
	}, []string{"resource"}))
	m := &handlerMetrics{
		resource:    resource,
		requests:    requests,
		accepted:    requests.WithLabelValues(resource, "accepted"),
		closed:      make(map[string]prometheus.Counter),
		byMethod:    make(map[string]prometheus.Counter),
		otherMethod: byMethod.WithLabelValues(resource, "other"),
		work:        work.WithLabelValues(resource),
		verifyTime:  verifyTime.WithLabelValues(resource),
	}
	for method := range methodcost.Table() {
		m.byMethod[method] = byMethod.WithLabelValues(resource, method)
	}
	if state != nil {
		registerPriceGauges(reg, resource, state)
		registerStateGauges(reg, resource, state)
	}
	for _, reason := range []string{closedRejections, closedReadTimeout, closedIdleTimeout,
		closedWriteTimeout, closedConnectionLimit, closedInternal} {
		m.closed[reason] = closed.WithLabelValues(resource, reason)
	}
	return m
}

// closedFor returns the counter of connections closed for reason, one of
// the closed* constants.
func (m *handlerMetrics) closedFor(reason string) prometheus.Counter {
	return m.closed[reason]
}

// observe counts one verdict, by reason and by method, and the work of an
// accepted stamp.
func (m *handlerMetrics) observe(v verify.Verdict) {
	if c, ok := m.byMethod[string(v.Method)]; ok {
		c.Inc()
	} else {
		m.otherMethod.Inc()
	}
	if v.Reason != "" {
		m.requests.WithLabelValues(m.resource, string(v.Reason)).Inc()
		return
	}
	m.accepted.Inc()
	if v.Work > 0 {
		m.work.Add(float64(v.Work))
	}
}

// registerGauge registers a gauge of the resource whose value is read
// when the metrics are gathered.
func registerGauge(reg *prometheus.Registry, resource, name, help string, value func() float64) {
	registerOrExisting(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace:   "caddy",
		Subsystem:   "layer4_hashcash",
		Name:        name,
		Help:        help,
		ConstLabels: prometheus.Labels{"resource": resource},
	}, value))
}

// registerPriceGauges exports the state's price levels, as of the last
// price tick (all are 0 while prices are fixed), and, live, the requests
// waiting at the gate.
func registerPriceGauges(reg *prometheus.Registry, resource string, state *resourceState) {
	gauge := func(name, help string, value func(*priceSnapshot) float64) {
		registerGauge(reg, resource, name, help, func() float64 {
			if snap := state.snapshot.Load(); snap != nil {
				return value(snap)
			}
			return 0
		})
	}
	gauge("price_global_level", "The price level every client network pays at least, raised by the Electrum server's load (max_in_flight).",
		func(s *priceSnapshot) float64 { return float64(s.GlobalLevel) })
	gauge("price_networks_above_calm", "Client networks whose own price level is above calm.",
		func(s *priceSnapshot) float64 { return float64(len(s.Networks)) })
	gauge("price_highest_level", "The highest price level of any client network (0: all calm).",
		func(s *priceSnapshot) float64 { return float64(s.Highest) })
	gauge("price_networks_tracked", "Client networks with a price meter (at most max_networks).",
		func(s *priceSnapshot) float64 { return float64(s.Tracked) })
	gauge("requests_in_flight", "Accepted requests not yet answered by the Electrum server, forwarded or waiting at the gate: the pressure signal (counted while max_in_flight is set).",
		func(s *priceSnapshot) float64 { return float64(s.InFlight) })
	registerGauge(reg, resource, "requests_waiting", "Accepted requests waiting at the gate because max_in_flight requests are forwarded and not yet answered.",
		func() float64 { return float64(state.gate.Waiting()) })
}

// registerStateGauges exports what the resource's shared state holds: the
// in-memory replay store's stamps and capacity, and the connections open.
func registerStateGauges(reg *prometheus.Registry, resource string, state *resourceState) {
	registerGauge(reg, resource, "replay_entries", "Stamps the in-memory replay store holds now (0 with the Redis store).",
		func() float64 { return float64(state.stamps.Len()) })
	registerGauge(reg, resource, "replay_capacity", "The most stamps the in-memory replay store holds (replay_capacity); beyond it new stamps get busy.",
		func() float64 { return float64(state.stamps.Capacity()) })
	registerGauge(reg, resource, "connections_open", "Client connections the handler is serving now.",
		func() float64 { return float64(state.open.Load()) })
}
