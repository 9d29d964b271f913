package caddyhashcash

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// handlerMetrics counts verdicts on requests and closed connections, in the
// metrics registry of Caddy's current config.
type handlerMetrics struct {
	requests *prometheus.CounterVec
	closed   prometheus.Counter
	accepted prometheus.Counter
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

func newHandlerMetrics(reg *prometheus.Registry, resource string) *handlerMetrics {
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
		Help:      "Connections closed for sending too many refused requests, by resource.",
	}, []string{"resource"}))
	return &handlerMetrics{
		requests: requests,
		closed:   closed.WithLabelValues(resource),
		accepted: requests.WithLabelValues(resource, "accepted"),
	}
}

// observe counts one verdict; "" means accepted.
func (m *handlerMetrics) observe(resource string, r stamp.Reason) {
	if r == "" {
		m.accepted.Inc()
		return
	}
	m.requests.WithLabelValues(resource, string(r)).Inc()
}
