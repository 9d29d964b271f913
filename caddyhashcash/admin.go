package caddyhashcash

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(AdminPrices{})
}

// AdminPrices is an admin API module (admin.api.hashcash) that shows, for
// each resource whose prices move, the global level, the pressure signal
// and the client networks above calm with their levels and spending:
//
//	GET /hashcash/prices
//
// It needs no configuration: Caddy loads admin.api modules with its admin
// endpoint.
type AdminPrices struct{}

// CaddyModule returns the Caddy module information.
func (AdminPrices) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.hashcash",
		New: func() caddy.Module { return new(AdminPrices) },
	}
}

// Routes returns the module's admin routes.
func (AdminPrices) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/hashcash/prices", Handler: caddy.AdminHandlerFunc(servePrices)}}
}

// pricesReport is one resource's entry in GET /hashcash/prices.
type pricesReport struct {
	// GlobalLevel is the level every network pays at least, from the
	// server's load.
	GlobalLevel int `json:"global_level"`
	// InFlight is the pressure signal: accepted requests the Electrum
	// server has not yet answered, forwarded or waiting at the gate.
	InFlight int `json:"in_flight"`
	// Waiting is how many of those wait at the gate now, because
	// max_in_flight requests are forwarded and not yet answered.
	Waiting int `json:"waiting"`
	// MaxLevel is the highest level, where a cost-1.0 request costs
	// max_price.
	MaxLevel int `json:"max_level"`
	// Tracked is how many client networks have a meter now.
	Tracked int `json:"networks_tracked"`
	// Networks are the networks above calm, highest level first.
	Networks []networkReport `json:"networks_above_calm"`
	// At is when the figures were taken (at the last price tick).
	At time.Time `json:"at"`
}

// networkReport is one network above calm.
type networkReport struct {
	Prefix    string    `json:"prefix"`
	Level     int       `json:"level"`
	Effective int       `json:"effective_level"` // its level plus the global level
	Unit      uint64    `json:"unit"`            // the price of a cost-1.0 request now
	Spending  float64   `json:"spending_per_second"`
	Since     time.Time `json:"since"`
}

// servePrices answers GET /hashcash/prices with a pricesReport per
// resource, keyed by resource.
func servePrices(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed: use GET", r.Method)}
	}
	reports := make(map[string]pricesReport)
	resourceStates.Range(func(key, value any) bool {
		s, ok := value.(*resourceState)
		if !ok || s.prices.Load() == nil {
			return true
		}
		reports[key.(string)] = s.report()
		return true
	})
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(reports)
}

// report returns the state's prices as the admin endpoint shows them.
func (s *resourceState) report() pricesReport {
	snap := s.snapshot.Load()
	if snap == nil {
		return pricesReport{Networks: []networkReport{}}
	}
	rep := pricesReport{
		GlobalLevel: snap.GlobalLevel,
		InFlight:    snap.InFlight,
		Waiting:     s.gate.Waiting(),
		MaxLevel:    snap.MaxLevel,
		Tracked:     snap.Tracked,
		Networks:    make([]networkReport, 0, len(snap.Networks)),
		At:          snap.at.UTC(),
	}
	for _, n := range snap.Networks {
		rep.Networks = append(rep.Networks, networkReport{
			Prefix: n.Prefix.String(), Level: n.Level, Effective: n.Effective,
			Unit: n.Unit, Spending: n.Rate, Since: n.Since.UTC(),
		})
	}
	sort.SliceStable(rep.Networks, func(i, j int) bool { return rep.Networks[i].Effective > rep.Networks[j].Effective })
	return rep
}
