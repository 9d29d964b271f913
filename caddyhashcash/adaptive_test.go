package caddyhashcash_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// adaptiveOptions: free while calm, a budget of 5 cost units a second and
// a burst of 5 per network, levels moving every 100ms from 16 up to 4096.
const adaptiveOptions = `"price":0,"network_budget":5,"network_burst":5,"price_step":16,"max_price":4096,` +
	`"price_tick":"100ms","calm_ticks":2,"price_tolerance":"1s","ipv4_prefix":32,"max_rejections":-1,"refusal_rate":-1`

// call sends an unstamped server.banner (cost 0.5) and returns the
// refusal's data, or nil if it was answered by the upstream.
func (c *client) call(id int) *stamp.Rejection {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"server.banner","id":%d}`+"\n", id))
	r := parseResponse(c.t, c.readLine())
	if r.Error == nil {
		return nil
	}
	return &r.Error.Data
}

// TestFloodingNetworkPaysAloneAndCalmsDown: a network that floods a free
// server sees its price rise level by level, every refusal telling it the
// price, the level and when the level may fall; another network is not
// touched and keeps working without stamps; once the flood stops, the
// flooder's price falls back to free.
func TestFloodingNetworkPaysAloneAndCalmsDown(t *testing.T) {
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	admin := testsupport.FreeAddr(t, "127.0.0.1")
	config := strings.Replace(caddytest.Layer4Config(addr, []string{hashcashHandler(adaptiveOptions), caddytest.ProxyHandler(up.Addr)}, ""),
		`"admin":{"disabled":true}`, `"admin":{"listen":"`+admin+`"}`, 1)
	caddytest.Start(t, config, addr)
	flooder := dialFrom(t, addr, "127.0.0.2")
	honest := dialFrom(t, addr, "127.0.0.3")

	// The flooder sends unstamped requests as fast as it is answered; the
	// other network, one every 300ms (1.7 cost units/s, within budget).
	id, accepted, freeAboveOne, highest := 0, 0, 0, 0
	var last *stamp.Rejection
	lastHonest := time.Now()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && highest < 4; {
		id++
		r := flooder.call(id)
		switch {
		case r == nil && highest >= 2:
			freeAboveOne++ // from level 2, no stamp was free a moment ago
		case r == nil:
			accepted++
		case r.Reason != stamp.ReasonMissing:
			t.Fatalf("flood refused for %s, want missing: %+v", r.Reason, r)
		case r.Level < highest:
			t.Fatalf("the flooder's level fell from %d to %d during the flood", highest, r.Level)
		default:
			highest, last = r.Level, r
		}
		if time.Since(lastHonest) > 300*time.Millisecond {
			lastHonest = time.Now()
			if hr := honest.call(100000 + id); hr != nil {
				t.Fatalf("the other network was refused during the flood: %+v", hr)
			}
		}
	}
	if highest < 4 {
		t.Fatalf("after %d requests the flooder's level is %d, want it to reach 4", id, highest)
	}
	if freeAboveOne > 0 {
		t.Fatalf("%d unstamped flood requests were let through at level 2 or above", freeAboveOne)
	}
	if want := uint64(16 << (highest - 1)); last.Unit != want || last.Price != want/2 {
		t.Fatalf("level %d: unit %d, price %d; want unit %d and server.banner (cost 0.5) at %d", highest, last.Unit, last.Price, want, want/2)
	}
	if last.NextFall <= time.Now().Unix()-1 {
		t.Fatalf("next_fall %d is not in the future", last.NextFall)
	}
	t.Logf("level %d after %d requests, %d of them free while calm or just after the first rise", highest, id, accepted)

	// The operator sees who pays what: in the metrics and the admin API,
	// as of the last price tick.
	testsupport.WaitFor(t, "the metrics to show the flooder's level", func() bool {
		return gauge(t, "caddy_layer4_hashcash_price_highest_level") >= 3 &&
			gauge(t, "caddy_layer4_hashcash_price_networks_above_calm") == 1
	})
	logPriceMetrics(t)
	report := adminPrices(t, admin)[resource]
	if len(report.Networks) != 1 || report.Networks[0].Prefix != "127.0.0.2/32" || report.Networks[0].Level < 3 ||
		report.Networks[0].Unit != 16<<(report.Networks[0].Effective-1) || report.Networks[0].Spending <= 0 {
		t.Fatalf("admin API reports %+v, want only 127.0.0.2/32 above calm, spending", report)
	}

	// A stamp for the quoted price is accepted.
	flooder.send(mintLine(t, fmt.Sprintf(`{"jsonrpc":"2.0","method":"server.banner","id":%d}`, id+1), resource, last.Price, time.Now()) + "\n")
	if r := parseResponse(t, flooder.readLine()); r.Error != nil && r.Error.Data.Reason != stamp.ReasonMissing {
		// A rise since the last refusal is within price_tolerance.
		t.Fatalf("a stamp for the quoted price was refused: %+v", r.Error)
	}

	// The flood stops: the level falls back to calm, and requests are free.
	testsupport.WaitFor(t, "the flooder's price to fall back to free", func() bool {
		time.Sleep(200 * time.Millisecond) // one request in two ticks: within budget
		id++
		return flooder.call(id) == nil
	})
	testsupport.WaitFor(t, "the admin API to show every network calm", func() bool {
		return len(adminPrices(t, admin)[resource].Networks) == 0
	})
	if n := strings.Count(string(up.Received()), "\n"); n < accepted+1 {
		t.Fatalf("upstream received %d lines, want at least the %d accepted", n, accepted+1)
	}
}

// TestReloadKeepsLevelsAndRepricesOpenConnections: a reload that changes
// the price options keeps each network's level, and a connection opened
// before it pays the new prices.
func TestReloadKeepsLevelsAndRepricesOpenConnections(t *testing.T) {
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	config := func(step int) string {
		return caddytest.Layer4Config(addr, []string{
			hashcashHandler(strings.Replace(adaptiveOptions, `"price_step":16`, fmt.Sprintf(`"price_step":%d`, step), 1)),
			caddytest.ProxyHandler(up.Addr)}, "")
	}
	caddytest.Start(t, config(16), addr)
	flooder := dialFrom(t, addr, "127.0.0.2")
	id, level := 0, 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && level < 2; {
		id++
		if r := flooder.call(id); r != nil {
			level = r.Level
		}
	}
	if level < 2 {
		t.Fatalf("the flooder's level is %d, want 2", level)
	}

	if err := caddy.Load([]byte(config(64)), true); err != nil {
		t.Fatalf("reloading with price_step 64: %v", err)
	}
	id++
	r := flooder.call(id)
	if r == nil || r.Level < level {
		t.Fatalf("after the reload the open connection got %+v, want its level %d kept", r, level)
	}
	if want := uint64(64 << (r.Level - 1)); r.Unit != want {
		t.Fatalf("after the reload the open connection is quoted unit %d at level %d, want the new step's %d", r.Unit, r.Level, want)
	}
}

// gauge returns the value of the gauge name for the test resource, from
// the running config's registry.
func gauge(t testing.TB, name string) float64 {
	t.Helper()
	return resourceMetric(t, name).GetGauge().GetValue()
}

// histogramCount returns the sample count of the histogram name for the
// test resource, from the running config's registry.
func histogramCount(t testing.TB, name string) uint64 {
	t.Helper()
	return resourceMetric(t, name).GetHistogram().GetSampleCount()
}

// resourceMetric returns the sample of the metric family name whose
// resource label is the test resource, from the running config's
// registry.
func resourceMetric(t testing.TB, name string) *dto.Metric {
	t.Helper()
	ctx := caddy.ActiveContext()
	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "resource" && l.GetValue() == resource {
					return m
				}
			}
		}
	}
	t.Fatalf("no metric %s for %s", name, resource)
	return nil
}

// adminReport is one resource's entry in GET /hashcash/prices.
type adminReport struct {
	GlobalLevel int `json:"global_level"`
	Networks    []struct {
		Prefix    string  `json:"prefix"`
		Level     int     `json:"level"`
		Effective int     `json:"effective_level"`
		Unit      uint64  `json:"unit"`
		Spending  float64 `json:"spending_per_second"`
	} `json:"networks_above_calm"`
}

// adminPrices returns GET /hashcash/prices from caddy's admin endpoint.
func adminPrices(t testing.TB, admin string) map[string]adminReport {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/hashcash/prices")
	if err != nil {
		t.Fatalf("admin API: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	var out map[string]adminReport
	if err == nil {
		err = json.Unmarshal(body, &out)
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin API answered %s: %v", resp.Status, err)
	}
	t.Logf("GET /hashcash/prices: %s", body)
	return out
}

// logPriceMetrics logs the hashcash metrics of the running config in the
// Prometheus text format, as /metrics shows them.
func logPriceMetrics(t testing.TB) {
	t.Helper()
	ctx := caddy.ActiveContext()
	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "caddy_layer4_hashcash_") {
			expfmt.MetricFamilyToText(&b, f)
		}
	}
	t.Logf("metrics:\n%s", b.String())
}

// startAdaptive starts caddy with the hashcash handler configured by
// options in front of a recording upstream, with the admin endpoint on,
// and returns caddy's and the admin endpoint's addresses.
func startAdaptive(t *testing.T, options string) (addr, admin string) {
	t.Helper()
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	addr = testsupport.FreeAddr(t, "127.0.0.1")
	admin = testsupport.FreeAddr(t, "127.0.0.1")
	config := strings.Replace(caddytest.Layer4Config(addr, []string{hashcashHandler(options), caddytest.ProxyHandler(up.Addr)}, ""),
		`"admin":{"disabled":true}`, `"admin":{"listen":"`+admin+`"}`, 1)
	caddytest.Start(t, config, addr)
	return addr, admin
}

// floodUntil sends unstamped requests on c (ids from *id on) as fast as
// they are answered until one is refused at a level above least, and
// returns that refusal; it fails the test after 10 s.
func (c *client) floodUntil(id *int, least int) *stamp.Rejection {
	c.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		*id++
		if r := c.call(*id); r != nil && r.Level > least {
			return r
		}
	}
	c.t.Fatalf("no refusal above level %d within 10 s", least)
	return nil
}

// TestToleranceAdmitsStampMintedBeforeRise: a stamp minted for the price a
// refusal named is accepted after the price rose once more, within
// price_tolerance; a stamp below that price is not.
func TestToleranceAdmitsStampMintedBeforeRise(t *testing.T) {
	// A tick long enough to send a stamp between two rises, and levels
	// that do not fall during the test.
	addr, _ := startAdaptive(t, `"price":0,"network_budget":5,"network_burst":5,"price_step":16,"max_price":1048576,`+
		`"price_tick":"1s","calm_ticks":1000,"price_tolerance":"10s","ipv4_prefix":32,"max_rejections":-1,"refusal_rate":-1`)
	flooder := dialFrom(t, addr, "127.0.0.2")
	id := 0
	before := flooder.floodUntil(&id, 0)
	// Minted now for the price named; sent after the next rise.
	line := func(work uint64) string {
		return mintLine(t, fmt.Sprintf(`{"jsonrpc":"2.0","method":"server.banner","id":%d}`, 1_000_000+work), resource, work, time.Now()) + "\n"
	}
	atPrice, below := line(before.Price), line(before.Price/2)
	after := flooder.floodUntil(&id, before.Level)
	if after.Price <= before.Price {
		t.Fatalf("level %d → %d, price %d → %d: want a higher price", before.Level, after.Level, before.Price, after.Price)
	}
	flooder.send(atPrice)
	if r := parseResponse(t, flooder.readLine()); r.Error != nil {
		t.Fatalf("a stamp for the price before the rise (%d, now %d) was refused: %+v", before.Price, after.Price, r.Error.Data)
	}
	flooder.send(below)
	if r := parseResponse(t, flooder.readLine()); r.Error == nil || r.Error.Data.Reason != stamp.ReasonInsufficient {
		t.Fatalf("a stamp for half the price before the rise got %+v, want refused as insufficient", r.Error)
	}
}

// TestNetworkTableCapDropsColdest: with max_networks 2, a third network's
// meter drops the coldest of the two above calm, the one that flooded
// first, which then starts again at calm; the other keeps its level.
func TestNetworkTableCapDropsColdest(t *testing.T) {
	addr, admin := startAdaptive(t, `"price":0,"network_budget":5,"network_burst":5,"price_step":16,"max_price":4096,`+
		`"price_tick":"100ms","calm_ticks":1000,"max_networks":2,"ipv4_prefix":32,"max_rejections":-1,"refusal_rate":-1`)
	first, second, third := dialFrom(t, addr, "127.0.0.2"), dialFrom(t, addr, "127.0.0.3"), dialFrom(t, addr, "127.0.0.4")
	id := 0
	first.floodUntil(&id, 0)
	second.floodUntil(&id, 0)
	testsupport.WaitFor(t, "both flooders above calm", func() bool {
		return len(adminPrices(t, admin)[resource].Networks) == 2
	})
	if r := third.call(1); r != nil {
		t.Fatalf("a calm network's free request was refused: %+v", r)
	}
	testsupport.WaitFor(t, "the first flooder dropped", func() bool {
		rep := adminPrices(t, admin)[resource]
		return len(rep.Networks) == 1
	})
	rep := adminPrices(t, admin)[resource]
	if rep.Networks[0].Prefix != "127.0.0.3/32" {
		t.Fatalf("networks above calm %+v, want only 127.0.0.3/32: the coldest, 127.0.0.2/32, dropped", rep.Networks)
	}
	if r := first.call(2); r != nil {
		t.Fatalf("the dropped network did not start again at calm: %+v", r)
	}
	if r := second.call(3); r == nil || r.Level < 1 {
		t.Fatalf("the network kept in the table lost its level: %+v", r)
	}
}
