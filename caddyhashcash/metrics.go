package caddyhashcash

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
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
}

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
	m := &handlerMetrics{
		resource: resource,
		requests: requests,
		accepted: requests.WithLabelValues(resource, "accepted"),
		closed:   make(map[string]prometheus.Counter),
	}
	if state != nil {
		registerPriceGauges(reg, resource, state)
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

// observe counts one verdict; "" means accepted.
func (m *handlerMetrics) observe(r stamp.Reason) {
	if r == "" {
		m.accepted.Inc()
		return
	}
	m.requests.WithLabelValues(m.resource, string(r)).Inc()
}

// registerPriceGauges exports the state's price levels, as of the last
// price tick; all are 0 while prices are fixed.
func registerPriceGauges(reg *prometheus.Registry, resource string, state *resourceState) {
	gauge := func(name, help string, value func(*priceSnapshot) float64) {
		registerOrExisting(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace:   "caddy",
			Subsystem:   "layer4_hashcash",
			Name:        name,
			Help:        help,
			ConstLabels: prometheus.Labels{"resource": resource},
		}, func() float64 {
			if snap := state.snapshot.Load(); snap != nil {
				return value(snap)
			}
			return 0
		}))
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
	registerOrExisting(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace:   "caddy",
		Subsystem:   "layer4_hashcash",
		Name:        "requests_waiting",
		Help:        "Accepted requests waiting at the gate because max_in_flight requests are forwarded and not yet answered.",
		ConstLabels: prometheus.Labels{"resource": resource},
	}, func() float64 { return float64(state.gate.Waiting()) }))
}
