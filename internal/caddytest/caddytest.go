// Package caddytest runs Caddy in-process for tests, with a recording,
// Electrum-shaped upstream to proxy to.
package caddytest

import (
	"bufio"
	"bytes"
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
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage" // Start's default storage
)

// FreeAddr returns a loopback address with a port that was free a moment
// ago. host is "127.0.0.1" or "::1".
func FreeAddr(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("finding a free port on %s: %v", host, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Start loads cfg (a complete Caddy JSON config) into the process's Caddy,
// waits until every address in waitFor accepts connections, and stops Caddy
// when the test ends. Unless cfg sets "storage", Caddy stores its files in
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
		WaitListening(t, addr)
	}
}

// WaitListening waits up to 10 seconds for addr to accept a connection.
func WaitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not accept connections within 10s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
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

// Upstream is an Electrum-shaped TCP server for tests: it records every byte
// it receives and answers each request line with a result echoing its id.
type Upstream struct {
	// Addr is the address it listens on.
	Addr string
	// Pad, if positive, pads each response with spaces inside the JSON to
	// this many bytes, as ElectrumX does.
	Pad int
	// Chunk, if positive, writes responses in pieces of this many bytes
	// with a short pause between them.
	Chunk int

	ln       net.Listener
	mu       sync.Mutex
	received []byte
	conns    map[net.Conn]struct{}
	accepted int
	wg       sync.WaitGroup
}

// NewUpstream starts an Upstream on host ("127.0.0.1" or "::1") and closes
// it when the test ends. Set Pad and Chunk before the first connection.
func NewUpstream(t testing.TB, host string) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("upstream listen: %v", err)
	}
	u := &Upstream{Addr: ln.Addr().String(), ln: ln, conns: make(map[net.Conn]struct{})}
	u.wg.Go(u.accept)
	t.Cleanup(u.Close)
	return u
}

// Received returns a copy of every byte received so far, from all
// connections in arrival order of whole lines.
func (u *Upstream) Received() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return bytes.Clone(u.received)
}

// Accepted returns how many connections the upstream has accepted.
func (u *Upstream) Accepted() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.accepted
}

// Open returns how many of its connections are still open.
func (u *Upstream) Open() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.conns)
}

// Close stops the upstream and waits for its goroutines.
func (u *Upstream) Close() {
	u.ln.Close()
	u.mu.Lock()
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *Upstream) accept() {
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns[c] = struct{}{}
		u.accepted++
		u.mu.Unlock()
		u.wg.Go(func() { u.serve(c) })
	}
}

func (u *Upstream) serve(c net.Conn) {
	defer func() {
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	for n := 0; ; n++ {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long line: collect it whole.
			buf := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		}
		if len(line) > 0 && err == nil {
			u.mu.Lock()
			u.received = append(u.received, line...)
			u.mu.Unlock()
			if werr := u.respond(c, line, n); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (u *Upstream) respond(c net.Conn, line []byte, n int) error {
	var req struct {
		ID json.RawMessage `json:"id"`
	}
	id := []byte("null")
	if json.Unmarshal(line, &req) == nil && len(req.ID) > 0 {
		id = req.ID
	}
	resp := []byte(`{"jsonrpc":"2.0","result":` + itoa(n) + `,"id":` + string(id))
	if pad := u.Pad - len(resp) - 2; pad > 0 {
		resp = append(resp, bytes.Repeat([]byte{' '}, pad)...)
	}
	resp = append(resp, "}\n"...)
	if u.Chunk <= 0 {
		_, err := c.Write(resp)
		return err
	}
	for len(resp) > 0 {
		k := min(u.Chunk, len(resp))
		if _, err := c.Write(resp[:k]); err != nil {
			return err
		}
		resp = resp[k:]
		time.Sleep(200 * time.Microsecond)
	}
	return nil
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
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
