// Package caddytest runs Caddy in-process for tests: a layer4 config with
// caddy-l4's proxy and tls handlers, and self-signed certificates. What
// tests share without Caddy (free addresses, waiting, the recording
// upstream to proxy to) is in package testsupport.
package caddytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage" // Start's default storage

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// Start loads cfg (a complete Caddy JSON config) into the process's Caddy,
// waits until it listens on every address in waitFor (without connecting:
// a probe connection would be one more for the handlers under test, and
// one more against a per-network connection limit), and stops Caddy when
// the test ends. Unless cfg sets "storage", Caddy stores its files in
// a temporary directory of the test.
func Start(t testing.TB, cfg string, waitFor ...string) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(cfg), &doc); err != nil {
		t.Fatalf("caddy config is not JSON: %v\n%s", err, cfg)
	}
	if _, ok := doc["storage"]; !ok {
		doc["storage"] = map[string]any{"module": "file_system", "root": t.TempDir()}
		patched, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		cfg = string(patched)
	}
	if err := caddy.Load([]byte(cfg), true); err != nil {
		t.Fatalf("loading caddy config: %v\n%s", err, cfg)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	for _, addr := range waitFor {
		testsupport.WaitBound(t, addr)
	}
}

// Layer4Config returns a Caddy JSON config with the admin API off, quiet
// logs, and one layer4 server listening on listen whose single route runs
// handlers (JSON objects) in order. extraApps, if not empty, is spliced in
// as further members of "apps" (e.g. `"tls":{...}`).
func Layer4Config(listen string, handlers []string, extraApps string) string {
	apps := `"layer4":{"servers":{"hashcash":{"listen":["` + listen + `"],"routes":[{"handle":[` +
		strings.Join(handlers, ",") + `]}]}}}`
	if extraApps != "" {
		apps += "," + extraApps
	}
	return `{"admin":{"disabled":true},"logging":{"logs":{"default":{"level":"ERROR"}}},"apps":{` + apps + `}}`
}

// ProxyHandler returns the JSON of caddy-l4's proxy handler to upstream.
func ProxyHandler(upstream string) string {
	return `{"handler":"proxy","upstreams":[{"dial":["` + upstream + `"]}]}`
}

// Cert is a self-signed certificate for tests.
type Cert struct {
	// CertPEM and KeyPEM are the certificate and its private key in PEM.
	CertPEM, KeyPEM string
	// TLS is the certificate ready for a tls.Config.
	TLS tls.Certificate
	// Fingerprint is the SHA-256 of the certificate's DER, in hex.
	Fingerprint string
}

// SelfSigned makes a self-signed certificate for the given host names and
// IP addresses.
func SelfSigned(t testing.TB, hosts ...string) Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return Cert{CertPEM: string(certPEM), KeyPEM: string(keyPEM), TLS: pair, Fingerprint: hex.EncodeToString(sum[:])}
}

// TLSApp returns the "tls" app JSON that loads c under tag and disables
// automatic certificate management, for use with Layer4Config's extraApps.
func (c Cert) TLSApp(tag string) string {
	certJSON, _ := json.Marshal(c.CertPEM)
	keyJSON, _ := json.Marshal(c.KeyPEM)
	return `"tls":{"certificates":{"load_pem":[{"certificate":` + string(certJSON) + `,"key":` + string(keyJSON) +
		`,"tags":["` + tag + `"]}]},"disable_ocsp_stapling":true}`
}

// TLSHandler returns the JSON of caddy-l4's tls handler serving the
// certificate loaded under tag.
func TLSHandler(tag string) string {
	return `{"handler":"tls","connection_policies":[{"certificate_selection":{"any_tag":["` + tag + `"]}}]}`
}

// FingerprintOf returns the SHA-256 of a certificate's DER, in hex.
func FingerprintOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}
