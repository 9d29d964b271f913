// Package e2e runs a real Electrum 4.3.4 wallet against a real (regtest)
// chain through the whole electrum-hashcash stack:
//
//	electrum daemon → recording relay → clientproxy → recording relay →
//	caddy (optional tls, hashcash, proxy) → in-process regtest server
//
// and checks what each side saw. It needs /usr/bin/electrum (Debian's
// electrum 4.3.4) and a Caddy with the hashcash module: CADDY_BIN, or else
// xcaddy to build one (several minutes when cold). CLIENTPROXY_BIN may name
// a built clientproxy; otherwise it is built from the working tree. These
// tests never skip: missing tools make them fail, naming what to install.
//
// They are system tests, built only with the build tag systemtest
// (go test -tags systemtest ./internal/e2e, as make test does): without it
// the package holds no tests.
package e2e
