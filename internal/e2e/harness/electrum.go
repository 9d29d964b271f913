package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// ElectrumBin is Debian's Electrum 4.3.4. It is always called by this path:
// the python3 first on PATH may not be able to import electrum.
const ElectrumBin = "/usr/bin/electrum"

// ElectrumInstallHint says how to get ElectrumBin.
const ElectrumInstallHint = "install Debian's Electrum 4.3.4: apt-get install -y --no-install-recommends electrum python3-electrum"

// CheckElectrum checks that ElectrumBin exists and runs.
func CheckElectrum(ctx context.Context) error {
	if _, err := os.Stat(ElectrumBin); err != nil {
		return fmt.Errorf("%s not found: %s", ElectrumBin, ElectrumInstallHint)
	}
	out, err := RunCommand(ctx, 60*time.Second, nil, ElectrumBin, "version", "--offline")
	if err != nil {
		return fmt.Errorf("%s does not run (%v): %s", ElectrumBin, err, ElectrumInstallHint)
	}
	_ = out
	return nil
}

// Electrum drives a headless Electrum 4.3.4 on regtest with its own data
// directory (-D).
type Electrum struct {
	// Dir is the data directory; wallets live in Dir/regtest/wallets.
	Dir string
	// Timeout bounds each command; 0 means 60 s.
	Timeout time.Duration

	daemon *Process
	logs   int
}

// NewElectrum returns a driver for a fresh data directory dir.
func NewElectrum(dir string) *Electrum { return &Electrum{Dir: dir} }

// baseArgs returns the options every electrum command of e starts with:
// regtest, the data directory, and fixed RPC credentials. Without the
// credentials, the daemon and each CLI command would make them up when the
// config has none and save them: a command that reads the config while
// the daemon rewrites it makes up new ones, and from then on every
// command gets "Forbidden".
func (e *Electrum) baseArgs() []string {
	return []string{"--regtest", "-D", e.Dir, "--rpcuser", "e2e", "--rpcpassword", "e2e-" + filepath.Base(e.Dir)}
}

func (e *Electrum) env() []string {
	// Keep python's and electrum's files out of the real home.
	return []string{"HOME=" + e.Dir}
}

// Run runs `electrum --regtest -D Dir args…` and returns its stdout.
func (e *Electrum) Run(ctx context.Context, args ...string) ([]byte, error) {
	t := e.Timeout
	if t == 0 {
		t = 60 * time.Second
	}
	full := append(e.baseArgs(), args...)
	return RunCommand(ctx, t, e.env(), ElectrumBin, full...)
}

// JSON runs a command and decodes its stdout as JSON into v.
func (e *Electrum) JSON(ctx context.Context, v any, args ...string) error {
	out, err := e.Run(ctx, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), v); err != nil {
		return fmt.Errorf("electrum %s: output %q: %v", strings.Join(args, " "), truncate(out, 300), err)
	}
	return nil
}

// Create makes the default wallet offline (no password) and returns its
// seed.
func (e *Electrum) Create(ctx context.Context) (string, error) {
	var r struct {
		Seed string `json:"seed"`
		Path string `json:"path"`
	}
	if err := e.JSON(ctx, &r, "--offline", "create"); err != nil {
		return "", err
	}
	return r.Seed, nil
}

// Addresses lists the default wallet's addresses offline (receiving first).
func (e *Electrum) Addresses(ctx context.Context) ([]string, error) {
	var a []string
	err := e.JSON(ctx, &a, "--offline", "listaddresses")
	return a, err
}

// StartDaemon runs `electrum daemon --oneserver --server <server>:t` in the
// foreground as a child process (log in Dir/daemon-N.log) and waits until it
// answers getinfo. Nothing is saved to the config.
func (e *Electrum) StartDaemon(ctx context.Context, server string) error {
	if e.daemon != nil {
		return errors.New("electrum daemon already running")
	}
	e.logs++
	logPath := filepath.Join(e.Dir, fmt.Sprintf("daemon-%d.log", e.logs))
	args := append(e.baseArgs(), "-v", "daemon", "--oneserver", "--server", server+":t")
	p, err := StartProcess("electrum daemon", logPath, ElectrumBin, args, e.env())
	if err != nil {
		return err
	}
	e.daemon = p
	err = testsupport.Poll(ctx, "electrum daemon answering getinfo", 60*time.Second, 250*time.Millisecond, func() (bool, error) {
		if done, err := p.Exited(); done {
			return false, fmt.Errorf("daemon exited (%v); log tail:\n%s", err, p.Tail(30))
		}
		_, err := e.Run(ctx, "getinfo")
		return err == nil, nil
	})
	if err != nil {
		e.StopDaemon(ctx)
		return err
	}
	return nil
}

// DaemonLog returns the path of the current or last daemon log.
func (e *Electrum) DaemonLog() string {
	return filepath.Join(e.Dir, fmt.Sprintf("daemon-%d.log", e.logs))
}

// StopDaemon asks the daemon to stop (`electrum stop`) and waits for it;
// if it has not exited after 15 s it is killed. Safe to call when no daemon
// runs.
func (e *Electrum) StopDaemon(ctx context.Context) error {
	p := e.daemon
	if p == nil {
		return nil
	}
	e.daemon = nil
	var err error
	if done, _ := p.Exited(); !done {
		_, err = RunCommand(ctx, 20*time.Second, e.env(), ElectrumBin, append(e.baseArgs(), "stop")...)
		select {
		case <-p.Done():
		case <-time.After(15 * time.Second):
			err = errors.Join(err, errors.New("electrum daemon did not stop within 15 s; killed"))
		}
	}
	p.Stop(5 * time.Second)
	return err
}

// Info is part of getinfo's answer.
type Info struct {
	Connected     bool   `json:"connected"`
	BlockchainH   int    `json:"blockchain_height"`
	ServerH       int    `json:"server_height"`
	Server        string `json:"server"`
	DefaultWallet string `json:"default_wallet"`
	SpvNodes      int    `json:"spv_nodes"`
	AutoConnect   bool   `json:"auto_connect"`
	FeePerKB      int    `json:"fee_per_kb"`
	Version       string `json:"version"`
	Path          string `json:"path"`
	Network       string `json:"network"`
}

// GetInfo runs getinfo.
func (e *Electrum) GetInfo(ctx context.Context) (Info, error) {
	var i Info
	err := e.JSON(ctx, &i, "getinfo")
	return i, err
}

// LoadWallet loads the default wallet into the daemon.
func (e *Electrum) LoadWallet(ctx context.Context) error {
	_, err := e.Run(ctx, "load_wallet")
	return err
}

// IsSynchronized runs is_synchronized.
func (e *Electrum) IsSynchronized(ctx context.Context) (bool, error) {
	var b bool
	err := e.JSON(ctx, &b, "is_synchronized")
	return b, err
}

// Balance is getbalance's answer, amounts in BTC as Electrum prints them.
type Balance struct {
	Confirmed   string `json:"confirmed"`
	Unconfirmed string `json:"unconfirmed"`
	Unmatured   string `json:"unmatured"`
}

// GetBalance runs getbalance.
func (e *Electrum) GetBalance(ctx context.Context) (Balance, error) {
	var b Balance
	err := e.JSON(ctx, &b, "getbalance")
	return b, err
}

// UnusedAddress runs getunusedaddress.
func (e *Electrum) UnusedAddress(ctx context.Context) (string, error) {
	out, err := e.Run(ctx, "getunusedaddress")
	return strings.TrimSpace(string(out)), err
}

// PayTo creates and signs a transaction paying amount (BTC text) to addr and
// returns its hex.
func (e *Electrum) PayTo(ctx context.Context, addr, amount string) (string, error) {
	out, err := e.Run(ctx, "payto", addr, amount)
	return strings.TrimSpace(string(out)), err
}

// Broadcast broadcasts a transaction hex and returns the txid.
func (e *Electrum) Broadcast(ctx context.Context, txHex string) (string, error) {
	out, err := e.Run(ctx, "broadcast", txHex)
	return strings.Trim(strings.TrimSpace(string(out)), `"`), err
}

// HistoryTx is one transaction of onchain_history.
type HistoryTx struct {
	TxID          string `json:"txid"`
	Height        int    `json:"height"`
	Confirmations int    `json:"confirmations"`
	BCValue       string `json:"bc_value"`
	Incoming      bool   `json:"incoming"`
	FeeSat        *int64 `json:"fee_sat"`
}

// OnchainHistory runs onchain_history.
func (e *Electrum) OnchainHistory(ctx context.Context) ([]HistoryTx, error) {
	var h struct {
		Transactions []HistoryTx `json:"transactions"`
	}
	err := e.JSON(ctx, &h, "onchain_history")
	return h.Transactions, err
}

// Sats parses an amount in BTC as Electrum prints it ("49.999746", "50",
// "50.") into satoshis.
func Sats(btc string) (int64, error) {
	whole, frac, _ := strings.Cut(btc, ".")
	if whole == "" && frac == "" || len(frac) > 8 {
		return 0, fmt.Errorf("amount %q: not BTC with at most 8 decimals", btc)
	}
	neg := strings.HasPrefix(whole, "-")
	whole = strings.TrimPrefix(whole, "-")
	var w, f int64
	var err error
	if whole != "" {
		if w, err = strconv.ParseInt(whole, 10, 64); err != nil || w < 0 {
			return 0, fmt.Errorf("amount %q: bad whole part", btc)
		}
	}
	if frac != "" {
		frac += strings.Repeat("0", 8-len(frac))
		if f, err = strconv.ParseInt(frac, 10, 64); err != nil || f < 0 {
			return 0, fmt.Errorf("amount %q: bad fraction", btc)
		}
	}
	v := w*100_000_000 + f
	if neg {
		v = -v
	}
	return v, nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
