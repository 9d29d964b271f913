package client

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// TLSOptions says how to secure the connection to the server.
type TLSOptions struct {
	// ServerName is the name to verify the certificate against and to send
	// in SNI. Empty means the host of the server address.
	ServerName string
	// Fingerprint, if set, pins the server's leaf certificate: the SHA-256
	// of its DER encoding as hex, colons allowed. The chain is then not
	// verified, only the pin.
	Fingerprint string
	// Insecure skips every check. For tests only.
	Insecure bool
	// RootCAs replaces the system roots when not nil.
	RootCAs *x509.CertPool
}

// ParseFingerprint parses a SHA-256 certificate fingerprint: 64 hex digits,
// optionally separated by colons (as openssl prints them).
func ParseFingerprint(s string) ([32]byte, error) {
	var fp [32]byte
	clean := strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	if len(clean) != 2*len(fp) {
		return fp, fmt.Errorf("fingerprint %q: want the SHA-256 of the certificate as 64 hex digits", s)
	}
	if _, err := hex.Decode(fp[:], []byte(clean)); err != nil {
		return fp, fmt.Errorf("fingerprint %q: %v", s, err)
	}
	return fp, nil
}

// ErrPinMismatch is returned by the TLS handshake when the server's
// certificate does not match the pinned fingerprint.
var ErrPinMismatch = errors.New("server certificate does not match the pinned fingerprint")

// NewTLSConfig builds the client TLS configuration for o.
func NewTLSConfig(o TLSOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName: o.ServerName,
		RootCAs:    o.RootCAs,
		MinVersion: tls.VersionTLS12,
	}
	switch {
	case o.Fingerprint != "" && o.Insecure:
		return nil, errors.New("a pinned fingerprint and insecure TLS exclude each other")
	case o.Fingerprint != "":
		pin, err := ParseFingerprint(o.Fingerprint)
		if err != nil {
			return nil, err
		}
		// Chain verification is replaced by the pin, which VerifyConnection
		// checks on every handshake, resumed ones included.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrPinMismatch
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(sum[:], pin[:]) != 1 {
				return fmt.Errorf("%w: got %x", ErrPinMismatch, sum)
			}
			return nil
		}
	case o.Insecure:
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}
