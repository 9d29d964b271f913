package caddyhashcash

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// UnmarshalCaddyfile sets up the Handler from Caddyfile tokens. Syntax:
//
//	hashcash [<resource>] {
//		resource        <host:port>
//		price           <work>
//		method_price    <method> <work>
//		window          <duration>
//		max_skew        <duration>
//		max_line_bytes  <int>
//		max_rejections  <int>
//		replay_capacity <int>
//		max_batch       <int>
//		read_timeout    <duration>
//		idle_timeout    <duration>
//		write_timeout   <duration>
//		rejection_cooldown <duration>
//		refusal_rate    <per second>
//		refusal_burst   <int>
//		max_conns_per_prefix <int>
//		ipv4_prefix     <bits>
//		ipv6_prefix     <bits>
//		network_budget  <cost units per second>
//		network_burst   <cost units>
//		price_step      <work>
//		price_factor    <number>
//		max_price       <work>
//		price_tick      <duration>
//		calm_ticks      <int>
//		price_tolerance <duration>
//		max_networks    <int>
//		refused_weight  <fraction>
//		max_in_flight   <int>
//		store           memory | redis [{ ... }]
//	}
//
// <work> is a number of expected SHA-256 attempts: 131072, 128k, 1.5M,
// 2^17 or 17bits. method_price may be repeated, once per method. The
// redis store's options are described on RedisStore.UnmarshalCaddyfile.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	_, wrapper := d.Next(), d.Val() // consume wrapper name

	switch d.CountRemainingArgs() {
	case 0:
	case 1:
		d.NextArg()
		h.Resource = d.Val()
	default:
		return d.ArgErr()
	}

	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		optionName := d.Val()
		if optionName != "method_price" {
			if seen[optionName] {
				return d.Errf("duplicate %s option '%s'", wrapper, optionName)
			}
			seen[optionName] = true
		}
		switch optionName {
		case "resource":
			if d.CountRemainingArgs() != 1 {
				return d.ArgErr()
			}
			d.NextArg()
			h.Resource = d.Val()
		case "price", "price_step", "max_price":
			w, err := parseWorkArgs(d, wrapper, optionName)
			if err != nil {
				return err
			}
			*map[string]**stamp.Work{
				"price":      &h.Price,
				"price_step": &h.PriceStep,
				"max_price":  &h.MaxPrice,
			}[optionName] = &w
		case "method_price":
			if d.CountRemainingArgs() < 2 {
				return d.ArgErr()
			}
			d.NextArg()
			method := d.Val()
			w, err := parseWorkArgs(d, wrapper, optionName)
			if err != nil {
				return err
			}
			if h.MethodPrices == nil {
				h.MethodPrices = make(map[string]stamp.Work)
			}
			if _, dup := h.MethodPrices[method]; dup {
				return d.Errf("duplicate %s option '%s %s'", wrapper, optionName, method)
			}
			h.MethodPrices[method] = w
		case "window", "max_skew", "read_timeout", "idle_timeout", "write_timeout", "rejection_cooldown",
			"price_tick", "price_tolerance":
			if d.CountRemainingArgs() != 1 {
				return d.ArgErr()
			}
			d.NextArg()
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("parsing %s option '%s' duration: %v", wrapper, optionName, err)
			}
			*map[string]*caddy.Duration{
				"window":             &h.Window,
				"max_skew":           &h.MaxSkew,
				"read_timeout":       &h.ReadTimeout,
				"idle_timeout":       &h.IdleTimeout,
				"write_timeout":      &h.WriteTimeout,
				"rejection_cooldown": &h.RejectionCooldown,
				"price_tick":         &h.PriceTick,
				"price_tolerance":    &h.PriceTolerance,
			}[optionName] = caddy.Duration(dur)
		case "refusal_rate", "network_budget", "network_burst", "price_factor", "refused_weight":
			if d.CountRemainingArgs() != 1 {
				return d.ArgErr()
			}
			d.NextArg()
			val, err := strconv.ParseFloat(d.Val(), 64)
			if err != nil {
				return d.Errf("parsing %s option '%s': %v", wrapper, optionName, err)
			}
			*map[string]*float64{
				"refusal_rate":   &h.RefusalRate,
				"network_budget": &h.NetworkBudget,
				"network_burst":  &h.NetworkBurst,
				"price_factor":   &h.PriceFactor,
				"refused_weight": &h.RefusedWeight,
			}[optionName] = val
		case "max_line_bytes", "max_rejections", "replay_capacity", "refusal_burst", "max_batch",
			"max_conns_per_prefix", "ipv4_prefix", "ipv6_prefix", "calm_ticks", "max_networks", "max_in_flight":
			if d.CountRemainingArgs() != 1 {
				return d.ArgErr()
			}
			d.NextArg()
			val, err := strconv.Atoi(d.Val())
			if err != nil {
				return d.Errf("parsing %s option '%s': %v", wrapper, optionName, err)
			}
			*map[string]*int{
				"max_line_bytes":       &h.MaxLineBytes,
				"max_rejections":       &h.MaxRejections,
				"replay_capacity":      &h.ReplayCapacity,
				"refusal_burst":        &h.RefusalBurst,
				"max_batch":            &h.MaxBatch,
				"max_conns_per_prefix": &h.MaxConnsPerPrefix,
				"ipv4_prefix":          &h.IPv4Prefix,
				"ipv6_prefix":          &h.IPv6Prefix,
				"calm_ticks":           &h.CalmTicks,
				"max_networks":         &h.MaxNetworks,
				"max_in_flight":        &h.MaxInFlight,
			}[optionName] = val
		case "store":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			store, err := caddyfile.UnmarshalModule(d, storeNamespace+"."+name)
			if err != nil {
				return err
			}
			h.StoreRaw = caddyconfig.JSONModuleObject(store, "module", name, nil)
			continue // the store's block is its own
		default:
			return d.Errf("unrecognized %s option '%s'", wrapper, optionName)
		}

		// No nested blocks are supported
		if d.NextBlock(nesting + 1) {
			return d.Errf("malformed %s option '%s': blocks are not supported", wrapper, optionName)
		}
	}
	return nil
}

// parseWorkArgs reads the rest of the line as a work amount, so that
// "17 bits" works as well as "17bits".
func parseWorkArgs(d *caddyfile.Dispenser, wrapper, optionName string) (stamp.Work, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return 0, d.ArgErr()
	}
	w, err := stamp.ParseWork(strings.Join(args, " "))
	if err != nil {
		return 0, d.Errf("parsing %s option '%s': %v", wrapper, optionName, err)
	}
	return w, nil
}
