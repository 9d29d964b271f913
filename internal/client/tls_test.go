package client

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/caddytest"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// selfSigned returns a self-signed server certificate for 127.0.0.1, ::1 and
// the DNS name electrum.test.
func selfSigned(t testing.TB) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	c := caddytest.SelfSigned(t, "electrum.test", "127.0.0.1", "::1")
	return c.TLS, c.TLS.Leaf
}

// colons formats a hex fingerprint the way openssl prints it.
func colons(hexfp string) string {
	var parts []string
	for i := 0; i < len(hexfp); i += 2 {
		parts = append(parts, strings.ToUpper(hexfp[i:i+2]))
	}
	return strings.Join(parts, ":")
}

func TestParseFingerprint(t *testing.T) {
	leakCheck(t)
	hexfp := strings.Repeat("0f", 32)
	for _, s := range []string{hexfp, colons(hexfp), " " + strings.ToUpper(hexfp) + "\n"} {
		fp, err := ParseFingerprint(s)
		if err != nil || fp[0] != 0x0f || fp[31] != 0x0f {
			t.Errorf("ParseFingerprint(%q) = %x, %v", s, fp, err)
		}
	}
	for _, s := range []string{"", hexfp[:62], hexfp + "00", strings.Repeat("zz", 32)} {
		if _, err := ParseFingerprint(s); err == nil {
			t.Errorf("ParseFingerprint(%q) succeeded", s)
		}
	}
	if _, err := NewTLSConfig(TLSOptions{Fingerprint: hexfp, Insecure: true}); err == nil {
		t.Error("a pin together with insecure was accepted")
	}
}

// TestTLS runs the proxy against a TLS server with a self-signed
// certificate: a pinned fingerprint (either spelling), insecure mode and a
// trusted root with a server name work; a wrong pin, the system roots and a
// wrong server name are refused before anything is sent.
func TestTLS(t *testing.T) {
	cert, leaf := selfSigned(t)
	_, other := selfSigned(t)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, tc := range []struct {
		name    string
		opts    TLSOptions
		ok      bool
		wantLog string
	}{
		{"pinned", TLSOptions{Fingerprint: caddytest.FingerprintOf(leaf)}, true, ""},
		{"pinned with colons", TLSOptions{Fingerprint: colons(caddytest.FingerprintOf(leaf))}, true, ""},
		{"insecure", TLSOptions{Insecure: true}, true, ""},
		{"root and server name", TLSOptions{RootCAs: pool, ServerName: "electrum.test"}, true, ""},
		{"wrong pin", TLSOptions{Fingerprint: caddytest.FingerprintOf(other)}, false, "does not match the pinned fingerprint"},
		{"system roots", TLSOptions{}, false, "certificate"},
		{"wrong server name", TLSOptions{RootCAs: pool, ServerName: "other.test"}, false, "other.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			tlsCfg, err := NewTLSConfig(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			up := newFakeUpstream(t, "127.0.0.1", 0)
			srv := newFakeServer(t, "tcp", "127.0.0.1:0", up.Addr,
				newPolicy(testResource, 64, nil), &tls.Config{Certificates: []tls.Certificate{cert}})
			px := startProxy(t, Config{Server: srv.addr(), TLS: tlsCfg, Resource: testResource, Work: 64}, "")
			w := dialWallet(t, px.addr)
			w.send(versionReq, req("server.banner", 1, ""))
			if !tc.ok {
				w.expectClosed()
				testsupport.WaitFor(t, "the log of the failure", func() bool { return strings.Contains(px.logs.String(), tc.wantLog) })
				if up.Accepted() != 0 {
					t.Errorf("the server forwarded a connection to the upstream")
				}
				return
			}
			for _, want := range []string{expectedAnswer("server.version", "0", 0), expectedAnswer("server.banner", "1", 0)} {
				if got := w.readLine(); got != want {
					t.Fatalf("wallet got %q, want %q", got, want)
				}
			}
		})
	}
}
