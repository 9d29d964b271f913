package pricing

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestWithDefaults(t *testing.T) {
	got := Config{}.WithDefaults()
	want := Config{
		CalmUnit: 0, StepUnit: 1 << 14, Factor: 2, MaxUnit: 1 << 26, Budget: 20, Burst: 200,
		RefusedWeight: 0.25, Tick: time.Second, CalmTicks: 5, Tolerance: 10 * time.Second,
		MaxNetworks: 100000, PressureTarget: 0,
	}
	if got != want {
		t.Fatalf("WithDefaults:\n got %+v\nwant %+v", got, want)
	}
	if again := got.WithDefaults(); again != got {
		t.Fatalf("WithDefaults is not idempotent: %+v", again)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	if got.MaxLevel() != 13 {
		t.Fatalf("default MaxLevel %d, want 13", got.MaxLevel())
	}
	// Negative RefusedWeight and Tolerance survive WithDefaults and mean 0.
	c := Config{RefusedWeight: -1, Tolerance: -1}.WithDefaults()
	if c.RefusedWeight != -1 || c.Tolerance != -1 || c.Validate() != nil {
		t.Fatalf("negative refused_weight/price_tolerance: %+v, %v", c, c.Validate())
	}
	st := newSettings(c)
	if st.refused != 0 || st.tolerance >= 0 {
		t.Fatalf("negative settings not read as 0: refused %v, tolerance %v", st.refused, st.tolerance)
	}
}

func TestValidate(t *testing.T) {
	d := Config{}.WithDefaults()
	with := func(f func(*Config)) Config { c := d; f(&c); return c }
	cases := []struct {
		c      Config
		option string
	}{
		{with(func(c *Config) { c.StepUnit = 0 }), "price_step"},
		{with(func(c *Config) { c.MaxUnit = 0 }), "max_price"},
		{with(func(c *Config) { c.CalmUnit = 1 << 27 }), "calm_price"},
		{with(func(c *Config) { c.StepUnit = 1 << 27 }), "price_step"},
		{with(func(c *Config) { c.Factor = 1 }), "price_factor"},
		{with(func(c *Config) { c.Factor = 0.5 }), "price_factor"},
		{with(func(c *Config) { c.Factor = math.NaN() }), "price_factor"},
		{with(func(c *Config) { c.Factor = math.Inf(1) }), "price_factor"},
		{with(func(c *Config) { c.Factor = 1.01 }), "price_factor"}, // 837 levels
		{with(func(c *Config) { c.Budget = -1 }), "network_budget"},
		{with(func(c *Config) { c.Budget = math.Inf(1) }), "network_budget"},
		{with(func(c *Config) { c.Burst = -1 }), "network_burst"},
		{with(func(c *Config) { c.Burst = math.NaN() }), "network_burst"},
		{with(func(c *Config) { c.RefusedWeight = 1.5 }), "refused_weight"},
		{with(func(c *Config) { c.RefusedWeight = math.NaN() }), "refused_weight"},
		{with(func(c *Config) { c.Tick = time.Millisecond }), "price_tick"},
		{with(func(c *Config) { c.Tick = -time.Second }), "price_tick"},
		{with(func(c *Config) { c.CalmTicks = -1 }), "calm_ticks"},
		{with(func(c *Config) { c.Tolerance = 400 * 24 * time.Hour }), "price_tolerance"},
		{with(func(c *Config) { c.MaxNetworks = -1 }), "max_networks"},
		{with(func(c *Config) { c.PressureTarget = -1 }), "max_in_flight"},
		{Config{}, "price_step"}, // defaults not applied
	}
	for _, tc := range cases {
		err := tc.c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.option+" ") {
			t.Errorf("%+v: error %v, want one naming %s", tc.c, err, tc.option)
		}
	}
	for _, c := range []Config{
		with(func(c *Config) { c.CalmUnit = c.MaxUnit }),               // fixed pricing
		with(func(c *Config) { c.StepUnit = c.MaxUnit }),               // one level
		with(func(c *Config) { c.Factor = 1.05; c.MaxUnit = 1 << 20 }), // 86 levels
		with(func(c *Config) { c.RefusedWeight = 1 }),
		with(func(c *Config) { c.PressureTarget = 1 }),
		with(func(c *Config) { c.Tick = MinTick }),
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestUnit(t *testing.T) {
	d := Config{}.WithDefaults()
	cases := []struct {
		name     string
		c        Config
		units    []uint64 // Unit(0), Unit(1), …
		maxLevel int
	}{
		{"defaults", d, []uint64{0, 1 << 14, 1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 21, 1 << 22,
			1 << 23, 1 << 24, 1 << 25, 1 << 26, 1 << 26, 1 << 26}, 13},
		{"calm 1000", Config{CalmUnit: 1000, StepUnit: 4096, Factor: 4, MaxUnit: 1 << 20},
			[]uint64{1000, 4096, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 20}, 5},
		{"calm above step", Config{CalmUnit: 5000, StepUnit: 4096, Factor: 2, MaxUnit: 1 << 14},
			[]uint64{5000, 5000, 8192, 1 << 14}, 3},
		{"factor 1.5, capped", Config{StepUnit: 1000, Factor: 1.5, MaxUnit: 4000},
			[]uint64{0, 1000, 1500, 2250, 3375, 4000, 4000}, 5},
		{"factor 3, cap between", Config{StepUnit: 10, Factor: 3, MaxUnit: 100},
			[]uint64{0, 10, 30, 90, 100}, 4},
		{"fixed", Config{CalmUnit: 1 << 17, StepUnit: 1 << 17, Factor: 2, MaxUnit: 1 << 17},
			[]uint64{1 << 17, 1 << 17, 1 << 17}, 0},
		{"one level", Config{StepUnit: 1 << 20, Factor: 2, MaxUnit: 1 << 20},
			[]uint64{0, 1 << 20, 1 << 20}, 1},
		{"huge", Config{StepUnit: 1 << 62, Factor: 2, MaxUnit: math.MaxUint64},
			[]uint64{0, 1 << 62, 1 << 63, math.MaxUint64, math.MaxUint64}, 3},
	}
	for _, tc := range cases {
		for l, want := range tc.units {
			if got := tc.c.Unit(l); got != want {
				t.Errorf("%s: Unit(%d) = %d, want %d", tc.name, l, got, want)
			}
		}
		if got := tc.c.Unit(-3); got != tc.units[0] {
			t.Errorf("%s: Unit(-3) = %d, want Unit(0) %d", tc.name, got, tc.units[0])
		}
		if got := tc.c.MaxLevel(); got != tc.maxLevel {
			t.Errorf("%s: MaxLevel = %d, want %d", tc.name, got, tc.maxLevel)
		}
		if got := tc.c.Unit(tc.maxLevel); got != tc.c.MaxUnit {
			t.Errorf("%s: Unit(MaxLevel) = %d, want MaxUnit %d", tc.name, got, tc.c.MaxUnit)
		}
	}
}

func TestPrice(t *testing.T) {
	d := Config{}.WithDefaults()
	cases := []struct {
		cost  float64
		level int
		want  uint64
	}{
		{1, 0, 0}, // free while calm
		{100, 0, 0},
		{1, 1, 1 << 14},
		{0.1, 1, 1639}, // ⌈1638.4⌉
		{0.25, 1, 1 << 12},
		{0.5, 3, 1 << 15},
		{100, 13, 100 << 26},
		{2, 20, 2 << 26}, // above MaxLevel: MaxUnit
		{0, 5, 0},
		{-1, 5, 0},
		{math.NaN(), 5, 0},
		{1e-9, 1, 1},                     // never 0 when both are positive
		{math.Inf(1), 1, math.MaxUint64}, // saturates
		{1e30, 13, math.MaxUint64},
	}
	for _, tc := range cases {
		if got := d.Price(tc.cost, tc.level); got != tc.want {
			t.Errorf("Price(%v, %d) = %d, want %d", tc.cost, tc.level, got, tc.want)
		}
	}
	// The same rounding as caddyhashcash's fixed prices: ⌈cost × price⌉.
	for _, cost := range []float64{0.1, 0.2, 0.25, 0.5, 1, 2, 100} {
		if got, want := PriceOf(cost, 1<<17), uint64(math.Ceil(cost*(1<<17))); got != want {
			t.Errorf("PriceOf(%v, 2^17) = %d, want %d", cost, got, want)
		}
	}
	if got := (Quote{Unit: 1 << 15, MinUnit: 1 << 14}); got.Price(0.1) != 3277 || got.MinPrice(0.1) != 1639 {
		t.Errorf("Quote.Price/MinPrice(0.1) = %d/%d, want 3277/1639", got.Price(0.1), got.MinPrice(0.1))
	}
}
