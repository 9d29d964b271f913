package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// CaddyConfig describes a layer-4 server: listen, optionally terminate TLS,
// hashcash, proxy.
type CaddyConfig struct {
	// Listen is the address Caddy listens on, host:port.
	Listen string
	// Upstream is the Electrum server the proxy handler dials.
	Upstream string
	// Resource is the hashcash resource name.
	Resource string
	// Price is the hashcash price as Caddyfile text, e.g. "1k".
	Price string
	// CertFile and KeyFile, if set, make Caddy terminate TLS with this
	// certificate (JSON config only).
	CertFile, KeyFile string
	// NetworkBudget, if positive, makes the prices move (the handler's
	// network_budget): Price is then the calm price.
	NetworkBudget float64
	// Store, if not nil, is the handler's store option as JSON, such as
	// {"module": "redis", "address": "127.0.0.1:6379"}; its values must be
	// strings or numbers, which the Caddyfile writes as they are.
	Store map[string]any
	// Options are further handler options, such as "price_tick": "200ms";
	// their values must be strings or numbers, which the Caddyfile writes
	// as they are.
	Options map[string]any
}

// Caddyfile returns the Caddyfile text for c (no TLS).
func (c CaddyConfig) Caddyfile() string {
	return fmt.Sprintf(`{
	admin off
	persist_config off
	layer4 {
		%s {
			route {
				hashcash %s {
					price %s%s%s
				}
				proxy %s
			}
		}
	}
}
`, c.Listen, c.Resource, c.Price, c.budgetLine(), c.storeLines(), c.Upstream)
}

// storeLines returns the Caddyfile lines for Options and Store, or nothing.
func (c CaddyConfig) storeLines() string {
	var b strings.Builder
	for _, k := range sortedKeys(c.Options) {
		fmt.Fprintf(&b, "\n\t\t\t\t\t%s %v", k, c.Options[k])
	}
	if c.Store == nil {
		return b.String()
	}
	fmt.Fprintf(&b, "\n\t\t\t\t\tstore %v {", c.Store["module"])
	for _, k := range sortedKeys(c.Store) {
		if k != "module" {
			fmt.Fprintf(&b, "\n\t\t\t\t\t\t%s %v", k, c.Store[k])
		}
	}
	b.WriteString("\n\t\t\t\t\t}")
	return b.String()
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// budgetLine returns the Caddyfile line for NetworkBudget, or nothing.
func (c CaddyConfig) budgetLine() string {
	if c.NetworkBudget <= 0 {
		return ""
	}
	return fmt.Sprintf("\n\t\t\t\t\tnetwork_budget %g", c.NetworkBudget)
}

// JSON returns Caddy's native JSON config for c. With CertFile set, the
// route starts with the tls handler and the certificate is loaded by the
// tls app (load_files) with tag "electrum-hashcash".
func (c CaddyConfig) JSON() ([]byte, error) {
	if c.Price == "" {
		return nil, errors.New("no price")
	}
	// The handler's price is a stamp.Work, which takes the Caddyfile's
	// text forms ("64k") as a JSON string too.
	price := c.Price
	handle := []any{}
	apps := map[string]any{}
	if c.CertFile != "" {
		apps["tls"] = map[string]any{
			"certificates": map[string]any{
				"load_files": []any{map[string]any{
					"certificate": c.CertFile,
					"key":         c.KeyFile,
					"tags":        []string{"electrum-hashcash"},
				}},
			},
		}
		handle = append(handle, map[string]any{
			"handler": "tls",
			"connection_policies": []any{map[string]any{
				"certificate_selection": map[string]any{"any_tag": []string{"electrum-hashcash"}},
			}},
		})
	}
	hashcash := map[string]any{"handler": "hashcash", "resource": c.Resource, "price": price}
	if c.NetworkBudget > 0 {
		hashcash["network_budget"] = c.NetworkBudget
	}
	if c.Store != nil {
		hashcash["store"] = c.Store
	}
	for k, v := range c.Options {
		hashcash[k] = v
	}
	handle = append(handle,
		hashcash,
		map[string]any{"handler": "proxy", "upstreams": []any{map[string]any{"dial": []string{c.Upstream}}}},
	)
	apps["layer4"] = map[string]any{
		"servers": map[string]any{
			"electrum": map[string]any{
				"listen": []string{c.Listen},
				"routes": []any{map[string]any{"handle": handle}},
			},
		},
	}
	cfg := map[string]any{
		"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"apps":  apps,
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// Caddy is a running Caddy process.
type Caddy struct {
	*Process
	Addr       string
	ConfigPath string
}

// StartCaddy writes the config for c into dir (a Caddyfile unless TLS is
// configured or useJSON is set), runs `caddy run` and waits until it
// listens. Caddy's data and config homes are kept inside dir.
func StartCaddy(ctx context.Context, bin, dir string, c CaddyConfig, useJSON bool) (*Caddy, error) {
	var path, adapter string
	if useJSON || c.CertFile != "" {
		b, err := c.JSON()
		if err != nil {
			return nil, err
		}
		path = filepath.Join(dir, "caddy.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, err
		}
	} else {
		path = filepath.Join(dir, "Caddyfile")
		adapter = "caddyfile"
		if err := os.WriteFile(path, []byte(c.Caddyfile()), 0o644); err != nil {
			return nil, err
		}
	}
	args := []string{"run", "--config", path}
	if adapter != "" {
		args = append(args, "--adapter", adapter)
	}
	home := filepath.Join(dir, "caddy-home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	env := []string{
		"HOME=" + home,
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
	}
	p, err := StartProcess("caddy", filepath.Join(dir, "caddy.log"), bin, args, env)
	if err != nil {
		return nil, err
	}
	exited := func() error {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited (%v)", p.Name, err)
		}
		return nil
	}
	if err := testsupport.AwaitListening(ctx, c.Listen, 20*time.Second, exited); err != nil {
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("%s: %w; log tail:\n%s", p.Name, err, p.Tail(20))
	}
	return &Caddy{Process: p, Addr: c.Listen, ConfigPath: path}, nil
}

// CheckCaddyModule runs `caddy list-modules` and checks that the hashcash
// handler is compiled in.
func CheckCaddyModule(ctx context.Context, bin string) error {
	out, err := RunCommand(ctx, 30*time.Second, nil, bin, "list-modules")
	if err != nil {
		return err
	}
	if !strings.Contains(string(out), "layer4.handlers.hashcash") {
		return fmt.Errorf("%s list-modules does not show layer4.handlers.hashcash; build it with xcaddy --with github.com/mholt/caddy-l4 --with github.com/electrum-hashcash/electrum-hashcash/caddyhashcash", bin)
	}
	return nil
}

// SelfSignedCert writes a fresh self-signed ECDSA P-256 certificate for
// 127.0.0.1 and localhost (cert.pem, key.pem) into dir and returns their
// paths and the certificate's SHA-256 fingerprint in hex.
func SelfSignedCert(dir string) (certPath, keyPath, fingerprint string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return "", "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "electrum-hashcash e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", "", err
	}
	certPath = filepath.Join(dir, "cert.pem")
	keyPath = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", "", err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", "", err
	}
	sum := sha256.Sum256(der)
	return certPath, keyPath, hex.EncodeToString(sum[:]), nil
}

// RepoRoot returns the directory of the go.mod of module
// github.com/electrum-hashcash/electrum-hashcash, searching upward from the
// working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/electrum-hashcash/electrum-hashcash\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the electrum-hashcash go.mod above the working directory")
		}
		dir = parent
	}
}

// Versions the Caddy binary is built with.
const (
	CaddyVersion   = "v2.11.9"
	CaddyL4Version = "v0.1.2"
)

// FindXcaddy returns the xcaddy binary: $XCADDY, xcaddy on PATH, or
// $(go env GOPATH)/bin/xcaddy.
func FindXcaddy() (string, error) {
	if p := os.Getenv("XCADDY"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("xcaddy"); err == nil {
		return p, nil
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, d := range filepath.SplitList(strings.TrimSpace(string(gopath))) {
			p := filepath.Join(d, "bin", "xcaddy")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", errors.New("xcaddy not found (looked at $XCADDY, PATH and $(go env GOPATH)/bin): install it with `go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5`, or set CADDY_BIN to a Caddy built with the hashcash module")
}

// XcaddyArgs returns the xcaddy arguments that build Caddy with caddy-l4
// and the hashcash module from the working tree at repo (absolute).
func XcaddyArgs(out, repo string) []string {
	return []string{
		"build", CaddyVersion,
		"--output", out,
		"--with", "github.com/mholt/caddy-l4@" + CaddyL4Version,
		"--with", "github.com/electrum-hashcash/electrum-hashcash/caddyhashcash@v0.0.0",
		"--replace", "github.com/electrum-hashcash/electrum-hashcash@v0.0.0=" + repo,
	}
}

// BuildCaddy builds Caddy with xcaddy into out from the working tree at
// repo. It first tries offline (GOPROXY=off, enough when the module cache
// is warm), then with the configured proxies. In the second try a proxy
// error falls through to "off" ('|' separators), so that the lookup of the
// unpublished module path github.com/electrum-hashcash/electrum-hashcash/
// caddyhashcash (which some proxies answer with 403, a hard error for ',')
// counts as "not found" and the replaced parent module is used. logf
// receives progress lines.
func BuildCaddy(ctx context.Context, out, repo string, logf func(string, ...any)) error {
	xc, err := FindXcaddy()
	if err != nil {
		return err
	}
	args := XcaddyArgs(out, repo)
	proxies := []string{"off", onlineGoproxy()}
	var errs []error
	for _, gp := range proxies {
		start := time.Now()
		logf("building caddy: GOPROXY=%q GOFLAGS=-mod=mod %s %s", gp, xc, strings.Join(args, " "))
		_, err := RunCommand(ctx, 15*time.Minute, []string{"GOPROXY=" + gp, "GOFLAGS=-mod=mod"}, xc, args...)
		if err == nil {
			logf("built caddy in %v", time.Since(start).Round(time.Second))
			return nil
		}
		msg := err.Error()
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		errs = append(errs, fmt.Errorf("GOPROXY=%s: %s", gp, msg))
	}
	return errors.Join(errs...)
}

func onlineGoproxy() string {
	gp := os.Getenv("GOPROXY")
	if gp == "" {
		if b, err := exec.Command("go", "env", "GOPROXY").Output(); err == nil {
			gp = strings.TrimSpace(string(b))
		}
	}
	var keep []string
	for _, p := range strings.FieldsFunc(gp, func(r rune) bool { return r == ',' || r == '|' }) {
		if p != "off" && p != "direct" && p != "" {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		keep = []string{"https://proxy.golang.org"}
	}
	return strings.Join(keep, "|") + "|off"
}
