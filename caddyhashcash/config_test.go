package caddyhashcash_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/mholt/caddy-l4/layer4"
	_ "github.com/mholt/caddy-l4/modules/l4remoteiplist"

	"github.com/electrum-hashcash/electrum-hashcash/caddyhashcash"
	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

func TestConfigErrorsNameTheOption(t *testing.T) {
	up := "127.0.0.1:1"
	for _, tc := range []struct{ handler, want string }{
		{`{"handler":"hashcash"}`, "option resource is required"},
		{`{"handler":"hashcash","resource":"bad host"}`, "option resource"},
		{hashcashHandler(`"window":"500ms"`), "option window"},
		{hashcashHandler(`"max_skew":"-1s"`), "option max_skew"},
		{hashcashHandler(`"max_line_bytes":10`), "option max_line_bytes"},
		{hashcashHandler(`"replay_capacity":-1`), "option replay_capacity"},
		{hashcashHandler(`"method_prices":{"":5}`), "option method_prices"},
		{hashcashHandler(`"price":"lots"`), "work \"lots\""},
		{hashcashHandler(`"ipv4_prefix":33`), "option ipv4_prefix"},
		{hashcashHandler(`"refusal_burst":-1`), "option refusal_burst"},
		{hashcashHandler(`"max_batch":-1`), "option max_batch"},
		{hashcashHandler(`"ipv6_prefix":-48`), "option ipv6_prefix"},
		{hashcashHandler(`"network_budget":-1`), "option network_budget"},
		{hashcashHandler(`"max_in_flight":10`), "option max_in_flight"},
		{hashcashHandler(`"network_budget":5,"price_factor":0.5`), "option price_factor"},
		{hashcashHandler(`"network_budget":5,"price":"2^20","max_price":"2^10"`), "max_price"},
		{hashcashHandler(`"network_budget":5,"price_tick":"1ms"`), "option price_tick"},
		{hashcashHandler(`"store":{"module":"nosuch"}`), "option store"},
		{hashcashHandler(`"store":{"module":"memory","capacity":5}`), "option store"},
		{hashcashHandler(`"store":{"module":"redis","address":"localhost"}`), "store redis: option address: \"localhost\""},
		{hashcashHandler(`"store":{"module":"redis","timeout":"1ns"}`), "store redis: option timeout"},
		{hashcashHandler(`"store":{"module":"redis","db":-1}`), "store redis: option db"},
		{hashcashHandler(`"store":{"module":"redis","key_prefix":"` + strings.Repeat("k", 65) + `"}`), "store redis: option key_prefix"},
		{hashcashHandler(`"store":{"module":"redis","username":"hashcash"}`), "store redis: option username"},
		{hashcashHandler(`"store":{"module":"redis","tls":{"ca_file":"/nonexistent/ca.pem"}}`), "store redis: option tls ca_file"},
		{hashcashHandler(`"store":{"module":"redis","address":"/nonexistent/redis.sock","tls":{}}`), "store redis: option tls"},
		{hashcashHandler(`"store":{"module":"redis","address":"127.0.0.1:1","timeout":"200ms"}`), "store redis: redisstore: connecting to 127.0.0.1:1"},
	} {
		addr := testsupport.FreeAddr(t, "127.0.0.1")
		err := caddy.Load([]byte(caddytest.Layer4Config(addr, []string{tc.handler, caddytest.ProxyHandler(up)}, "")), true)
		if err == nil {
			caddy.Stop()
			t.Errorf("%s: loaded, want an error mentioning %q", tc.handler, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.handler, err, tc.want)
		}
	}
}

func adaptCaddyfile(t *testing.T, body string) (string, error) {
	t.Helper()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(body), map[string]any{"filename": "Caddyfile"})
	for _, w := range warnings {
		t.Logf("adapter warning: %s", w.Message)
	}
	return string(cfg), err
}

func TestCaddyfileSyntax(t *testing.T) {
	cfg, err := adaptCaddyfile(t, `{
	layer4 {
		127.0.0.1:1 {
			route {
				hashcash example.org:1 {
					price 17 bits
					method_price server.ping 0
					method_price server.add_peer 2^30
					window 2m
					max_skew 10s
					max_line_bytes 5000
					max_rejections -1
					replay_capacity 1000
					read_timeout 5s
					idle_timeout 2m
					write_timeout -1s
					rejection_cooldown 1m
					refusal_rate 2.5
					refusal_burst 10
					max_batch 50
					max_conns_per_prefix 8
					ipv4_prefix 32
					ipv6_prefix 64
					network_budget 20
					network_burst 400
					price_step 2^18
					price_factor 1.5
					max_price 30 bits
					price_tick 500ms
					calm_ticks 3
					price_tolerance 20s
					max_networks 5000
					refused_weight 0.5
					max_in_flight 300
				}
				proxy 127.0.0.1:2
			}
		}
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"handler":"hashcash"`, `"resource":"example.org:1"`, `"price":131072`,
		`"method_prices":{"server.add_peer":1073741824,"server.ping":0}`, `"window":120000000000`,
		`"max_skew":10000000000`, `"max_line_bytes":5000`, `"max_rejections":-1`, `"replay_capacity":1000`,
		`"read_timeout":5000000000`, `"idle_timeout":120000000000`, `"write_timeout":-1000000000`, `"rejection_cooldown":60000000000`, `"refusal_rate":2.5`, `"refusal_burst":10`, `"max_batch":50`,
		`"max_conns_per_prefix":8`, `"ipv4_prefix":32`, `"ipv6_prefix":64`,
		`"network_budget":20`, `"network_burst":400`, `"price_step":262144`, `"price_factor":1.5`, `"max_price":1073741824`,
		`"price_tick":500000000`, `"calm_ticks":3`, `"price_tolerance":20000000000`, `"max_networks":5000`,
		`"refused_weight":0.5`, `"max_in_flight":300`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("adapted config lacks %s:\n%s", want, cfg)
		}
	}
	for _, bad := range []string{
		"hashcash a:1 b:2",
		"hashcash a:1 {\n price\n }",
		"hashcash a:1 {\n price ten\n }",
		"hashcash a:1 {\n window 5m\n window 6m\n }",
		"hashcash a:1 {\n method_price x 1\n method_price x 2\n }",
		"hashcash a:1 {\n allowlist 10.0.0.0/8\n }",
		"hashcash a:1 {\n max_rejections many\n }",
		"hashcash a:1 {\n read_timeout soon\n }",
		"hashcash a:1 {\n ipv4_prefix 24 25\n }",
		"hashcash a:1 {\n network_budget lots\n }",
		"hashcash a:1 {\n price_step\n }",
		"hashcash a:1 {\n store\n }",
		"hashcash a:1 {\n store nosuch\n }",
		"hashcash a:1 {\n store memory 5\n }",
		"hashcash a:1 {\n store memory {\n capacity 5\n }\n }",
		"hashcash a:1 {\n store redis extra\n }",
		"hashcash a:1 {\n store redis {\n bogus 1\n }\n }",
		"hashcash a:1 {\n store redis {\n db one\n }\n }",
		"hashcash a:1 {\n store redis {\n timeout soon\n }\n }",
		"hashcash a:1 {\n store redis {\n address a:1 b:2\n }\n }",
		"hashcash a:1 {\n store redis {\n tls a b\n }\n }",
		"hashcash a:1 {\n store redis {\n key_prefix a:\n key_prefix b:\n }\n }",
		"hashcash a:1 {\n store memory\n store memory\n }",
	} {
		_, err := adaptCaddyfile(t, "{\n layer4 {\n 127.0.0.1:1 {\n route {\n "+bad+"\n proxy 127.0.0.1:2\n }\n }\n }\n}")
		if err == nil {
			t.Errorf("Caddyfile accepted:\n%s", bad)
		}
	}
}

// TestCaddyfileStores: the store option and the redis store's options in
// the Caddyfile, and the JSON they adapt to.
func TestCaddyfileStores(t *testing.T) {
	for _, tc := range []struct {
		store string
		want  string // the handler's "store" member
	}{
		{"store memory", `"store":{"module":"memory"}`},
		{"store redis", `"store":{"module":"redis"}`},
		{`store redis {
			address 10.0.0.5:6380
			username hashcash
			password {env.REDIS_PASSWORD}
			db 2
			tls /etc/hashcash/redis-ca.pem
			tls_server_name redis.internal
			key_prefix hc:
			timeout 250ms
		}`, `"store":{"address":"10.0.0.5:6380","db":2,"key_prefix":"hc:","module":"redis","password":"{env.REDIS_PASSWORD}",` +
			`"timeout":250000000,"tls":{"ca_file":"/etc/hashcash/redis-ca.pem","server_name":"redis.internal"},"username":"hashcash"}`},
		{"store redis {\n address /run/redis/redis.sock\n }", `"store":{"address":"/run/redis/redis.sock","module":"redis"}`},
		{"store redis {\n tls\n }", `"store":{"module":"redis","tls":{}}`},
	} {
		cfg, err := adaptCaddyfile(t, "{\n layer4 {\n 127.0.0.1:1 {\n route {\n hashcash a:1 {\n price 0\n "+tc.store+"\n window 1m\n }\n proxy 127.0.0.1:2\n }\n }\n }\n}")
		if err != nil {
			t.Errorf("%s: %v", tc.store, err)
			continue
		}
		if !strings.Contains(cfg, tc.want) || !strings.Contains(cfg, `"window":60000000000`) {
			t.Errorf("%s: adapted config lacks %s or the option after the store:\n%s", tc.store, tc.want, cfg)
		}
	}
}

// TestCaddyfileExample runs the shipped Caddyfile.example, with its ports and
// certificate paths moved to the test's, in front of an upstream.
func TestCaddyfileExample(t *testing.T) {
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert := caddytest.SelfSigned(t, "electrum.example.org")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, []byte(cert.CertPEM), 0o600)
	os.WriteFile(keyFile, []byte(cert.KeyPEM), 0o600)
	up := testsupport.NewUpstream(t, "127.0.0.1", testsupport.UpstreamOptions{})
	addr := testsupport.FreeAddr(t, "127.0.0.1")
	_, port, _ := net.SplitHostPort(addr)
	_, sitePort, _ := net.SplitHostPort(testsupport.FreeAddr(t, "127.0.0.1"))
	onionAddr := testsupport.FreeAddr(t, "127.0.0.1")
	body := strings.NewReplacer(
		"\t\t:50002 {", "\t\t127.0.0.1:"+port+" {",
		"\t\t127.0.0.1:50011 {", "\t\t"+onionAddr+" {",
		"127.0.0.1:50001", up.Addr,
		":50443", ":"+sitePort,
		"/etc/electrum-hashcash/cert.pem", certFile,
		"/etc/electrum-hashcash/key.pem", keyFile,
	).Replace(string(raw))
	cfg, err := adaptCaddyfile(t, body)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(cfg), &doc); err != nil {
		t.Fatal(err)
	}
	doc["admin"] = map[string]any{"disabled": true}
	doc["storage"] = map[string]any{"module": "file_system", "root": filepath.Join(dir, "storage")}
	patched, _ := json.Marshal(doc)
	caddytest.Start(t, string(patched), addr)

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := caddytest.FingerprintOf(conn.ConnectionState().PeerCertificates[0]); got != cert.Fingerprint {
		t.Fatalf("served certificate %s, want the one from the Caddyfile (%s)", got, cert.Fingerprint)
	}
	c := &client{t: t, Conn: conn, r: bufio.NewReader(conn)}
	// Free while calm: an unstamped request is forwarded, and so is a
	// stamped one, its stamp removed.
	unstamped := `{"jsonrpc":"2.0","method":"blockchain.transaction.get","id":1,"params":["00"]}`
	c.send(unstamped + "\n")
	if r := parseResponse(t, c.readLine()); r.Error != nil {
		t.Fatalf("unstamped request refused by a calm server: %+v", r.Error)
	}
	l := `{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}`
	c.send(mintLine(t, l, "electrum.example.org:50002", 65_536, time.Now()) + "\n")
	if r := parseResponse(t, c.readLine()); r.Error != nil {
		t.Fatalf("stamped request refused: %+v", r.Error)
	}
	waitReceived(t, up, []byte(unstamped+"\n"+l+"\n"))

	// The onion service's port: more connections from 127.0.0.1 than the
	// default cap per network, all open at once, are each answered by the
	// handler for the onion resource, none refused with connection_limit.
	onion := make([]*client, caddyhashcash.DefaultMaxConnsPerPrefix+8)
	for i := range onion {
		onion[i] = dial(t, onionAddr)
		onion[i].send(`{"jsonrpc":"2.0","method":"server.banner","id":2}` + "\n")
	}
	for i, c := range onion {
		var r rpcError
		json.Unmarshal([]byte(c.readLine()), &r)
		if r.Error == nil || r.Error.Data.Reason != stamp.ReasonMissing || r.Error.Data.Resource != "yourservice.onion:50001" {
			t.Fatalf("onion connection %d: unstamped request answered %+v, want missing for the onion resource", i, r.Error)
		}
	}
	ol := `{"jsonrpc":"2.0","method":"server.banner","id":3}`
	onion[0].send(mintLine(t, ol, "yourservice.onion:50001", 131_072, time.Now()) + "\n")
	if r := parseResponse(t, onion[0].readLine()); r.Error != nil {
		t.Fatalf("stamped request on the onion port refused: %+v", r.Error)
	}
	waitReceived(t, up, []byte(unstamped+"\n"+l+"\n"+ol+"\n"))
}
