package regtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"net"
	"slices"
	"sync"
	"time"
)

// Protocol and size limits.
const (
	// ServerVersion is the software name reported by server.version and
	// server.features.
	ServerVersion = "regtest-fixture 0.1"
	// ProtocolVersion is the only Electrum protocol version spoken.
	ProtocolVersion = "1.4"
	// DefaultCoinbaseValue is the default coinbase value: 50 BTC.
	DefaultCoinbaseValue int64 = 50 * 100_000_000
	// DefaultMaturityBlocks is the default number of blocks mined after the
	// wallet's coinbase blocks, enough for all of them to mature.
	DefaultMaturityBlocks = CoinbaseMaturity

	maxLineSize  = 4 << 20 // longest accepted request line, in bytes
	readBufSize  = 64 << 10
	writeTimeout = 30 * time.Second
)

// Config configures a Server.
type Config struct {
	// Addresses are the regtest segwit addresses ("bcrt1q…") the initial
	// coinbase blocks pay to, in turn. May be empty: then those coinbases
	// pay to BurnScript.
	Addresses []string
	// InitialBlocks is the number of coinbase blocks paying to Addresses,
	// mined first (heights 1…InitialBlocks). 0 means 1; negative means none.
	InitialBlocks int
	// MaturityBlocks is the number of blocks paying to BurnScript mined
	// after the initial blocks, so that their coinbases mature. 0 means
	// DefaultMaturityBlocks (100); negative means none.
	MaturityBlocks int
	// CoinbaseValue is the subsidy of every block in satoshis; 0 means
	// DefaultCoinbaseValue. Blocks made by Mine add the mempool's fees.
	CoinbaseValue int64
	// RequestLog, if set, receives every request line exactly as received,
	// each followed by '\n'. Writes are serialized.
	RequestLog io.Writer
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Hold, if positive, makes the server write its answers as ElectrumX
	// ≥ 1.18 does (its PaddedRSTransport, see ../shared/electrum-facts.md):
	// once a connection has been sent its first PadSize bytes, messages
	// are buffered until PadSize bytes are waiting or Hold has passed
	// since the last write, and each write is padded with spaces inside
	// its last message to a power of two of at least PadSize bytes.
	// ElectrumX holds for ElectrumXHold. 0 writes every message at once,
	// unpadded.
	Hold time.Duration
}

// ElectrumXHold is how long ElectrumX holds small answers back
// (WAIT_FOR_BUFFER_GROWTH_SECONDS).
const ElectrumXHold = time.Second

// PadSize is ElectrumX's smallest padded write, and the bytes of a session
// it sends without holding them back (MIN_PACKET_SIZE and the warm-up
// budget).
const PadSize = 1024

// Server is an in-memory regtest chain served over the Electrum protocol.
// It is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	scripts [][]byte // scriptPubKeys of cfg.Addresses

	mu        sync.Mutex // guards everything below and conn subscription state
	chain     *chain
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	closed    bool
	nextConn  uint64
	wg        sync.WaitGroup // connection goroutines

	recMu    sync.Mutex // guards requests and writes to cfg.RequestLog
	requests [][]byte
}

// New builds the chain described by cfg: genesis, cfg.InitialBlocks blocks
// whose coinbase i pays cfg.CoinbaseValue to cfg.Addresses[i%len], then
// cfg.MaturityBlocks blocks paying to BurnScript.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.InitialBlocks == 0:
		cfg.InitialBlocks = 1
	case cfg.InitialBlocks < 0:
		cfg.InitialBlocks = 0
	}
	switch {
	case cfg.MaturityBlocks == 0:
		cfg.MaturityBlocks = DefaultMaturityBlocks
	case cfg.MaturityBlocks < 0:
		cfg.MaturityBlocks = 0
	}
	if cfg.CoinbaseValue == 0 {
		cfg.CoinbaseValue = DefaultCoinbaseValue
	}
	if cfg.CoinbaseValue < 0 || cfg.CoinbaseValue > maxMoney {
		return nil, fmt.Errorf("regtest: coinbase value %d out of range", cfg.CoinbaseValue)
	}
	cfg.Addresses = slices.Clone(cfg.Addresses)
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		chain:     newChain(),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, a := range cfg.Addresses {
		script, err := AddressScript(a)
		if err != nil {
			return nil, fmt.Errorf("regtest: %w", err)
		}
		s.scripts = append(s.scripts, script)
	}
	for i := range cfg.InitialBlocks {
		script := BurnScript
		if len(s.scripts) > 0 {
			script = s.scripts[i%len(s.scripts)]
		}
		s.chain.mine(cfg.CoinbaseValue, script)
	}
	for range cfg.MaturityBlocks {
		s.chain.mine(cfg.CoinbaseValue, BurnScript)
	}
	return s, nil
}

// Serve accepts Electrum connections on ln until ln is closed, by Close or
// otherwise. It returns nil when the listener was closed and an error for
// any other accept failure. Serve may be called for several listeners.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return errors.New("regtest: serve: server closed")
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	s.log.Info("serving", "addr", ln.Addr().String(), "height", s.Height())
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("regtest: accept on %s: %w", ln.Addr(), err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return nil
		}
		s.nextConn++
		c := &conn{s: s, nc: nc, id: s.nextConn, subs: make(map[string]string)}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.run()
	}
}

// Close closes all listeners and connections and waits for the connection
// goroutines to exit. The chain stays readable.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("regtest: close listener %s: %w", ln.Addr(), err))
		}
	}
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

// Mine appends n blocks. The first one includes every mempool transaction
// after its coinbase; every coinbase pays CoinbaseValue plus fees to
// BurnScript. Subscribed connections then get one
// blockchain.headers.subscribe notification with the new tip and a
// blockchain.scripthash.subscribe notification for every subscribed script
// hash whose status changed.
func (s *Server) Mine(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	var ch changes
	for range n {
		for sh := range s.chain.mine(s.cfg.CoinbaseValue, BurnScript) {
			ch.touch(sh)
		}
	}
	ch.tip = true
	s.log.Info("mined", "blocks", n, "height", s.chain.height(), "tip", hashHex(s.chain.tip().hash))
	s.flushLocked(nil, nil, s.notesLocked(&ch))
}

// Height returns the height of the chain tip.
func (s *Server) Height() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chain.height()
}

// TipHash returns the hash of the chain tip, in the usual byte-reversed hex.
func (s *Server) TipHash() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return hashHex(s.chain.tip().hash)
}

// Mempool returns the txids of the mempool transactions in arrival order.
func (s *Server) Mempool() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.chain.mempool))
	for i, rec := range s.chain.mempool {
		ids[i] = hashHex(rec.tx.txid)
	}
	return ids
}

// Balance returns the value in satoshis of the outputs paying to address
// that no transaction (confirmed or in the mempool) spends, counting
// mempool outputs too. Immature coinbase outputs are included.
func (s *Server) Balance(address string) (int64, error) {
	script, err := AddressScript(address)
	if err != nil {
		return 0, fmt.Errorf("regtest: balance: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, u := s.chain.balance(ScriptHash(script))
	return c + u, nil
}

// Requests returns copies of every request line received so far, across
// all connections, in arrival order and without the trailing newline.
func (s *Server) Requests() [][]byte {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	out := make([][]byte, len(s.requests))
	for i, r := range s.requests {
		out[i] = slices.Clone(r)
	}
	return out
}

func (s *Server) record(line []byte) {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	s.requests = append(s.requests, slices.Clone(line))
	if s.cfg.RequestLog != nil {
		buf := make([]byte, 0, len(line)+1)
		buf = append(append(buf, line...), '\n')
		if _, err := s.cfg.RequestLog.Write(buf); err != nil {
			s.log.Error("request log write failed", "err", err)
		}
	}
}

// changes collects what a state change affected, for notifications.
type changes struct {
	tip     bool
	touched map[string]bool
}

func (ch *changes) touch(sh string) {
	if ch.touched == nil {
		ch.touched = make(map[string]bool)
	}
	ch.touched[sh] = true
}

// note is a notification line for one connection.
type note struct {
	c   *conn
	msg []byte
}

// notesLocked builds the notifications for ch. s.mu must be held; it also
// records the statuses sent in each connection's subscription state.
func (s *Server) notesLocked(ch *changes) []note {
	var notes []note
	if !ch.tip && len(ch.touched) == 0 {
		return nil
	}
	var tipMsg []byte
	if ch.tip {
		tip := s.chain.tip()
		tipMsg = mustMarshal(notification{
			JSONRPC: "2.0",
			Method:  "blockchain.headers.subscribe",
			Params:  []any{headerResult{Hex: tip.header.hex(), Height: s.chain.height()}},
		})
	}
	statuses := make(map[string]string)
	for c := range s.conns {
		if ch.tip && c.headersSub {
			notes = append(notes, note{c, tipMsg})
		}
		// Deterministic order helps tests and logs.
		for _, sh := range sortedKeys(ch.touched) {
			old, ok := c.subs[sh]
			if !ok {
				continue
			}
			st, done := statuses[sh]
			if !done {
				st = s.chain.status(sh)
				statuses[sh] = st
			}
			if st == old {
				continue
			}
			c.subs[sh] = st
			notes = append(notes, note{c, mustMarshal(notification{
				JSONRPC: "2.0",
				Method:  "blockchain.scripthash.subscribe",
				Params:  []any{sh, statusValue(st)},
			})})
		}
	}
	return notes
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// flushLocked writes resp to c (if both are non-nil) and then the notes,
// preserving the order of state changes: it is called with s.mu held, takes
// the write lock of every connection it will write to, releases s.mu, and
// only then writes. Responses computed from an older state therefore always
// reach the wire before notifications about a newer one.
func (s *Server) flushLocked(c *conn, resp []byte, notes []note) {
	var targets []*conn
	if c != nil && resp != nil {
		targets = append(targets, c)
	}
	for _, n := range notes {
		if !slices.Contains(targets, n.c) {
			targets = append(targets, n.c)
		}
	}
	for _, t := range targets {
		t.wmu.Lock()
	}
	s.mu.Unlock()
	if c != nil && resp != nil {
		c.writeLocked(resp)
	}
	for _, n := range notes {
		n.c.writeLocked(n.msg)
	}
	for _, t := range targets {
		t.wmu.Unlock()
	}
}

// conn is one client connection.
type conn struct {
	s  *Server
	nc net.Conn
	id uint64

	wmu    sync.Mutex // serializes writes
	broken bool       // guarded by wmu: a write failed

	// With Config.Hold, guarded by wmu: messages held back, bytes sent,
	// the time of the last write and the timer that ends the hold.
	held      []byte
	sent      int
	lastWrite time.Time
	holdTimer *time.Timer

	// Guarded by s.mu.
	headersSub bool
	subs       map[string]string // script hash -> last status sent ("" = null)
}

func (c *conn) run() {
	s := c.s
	defer s.wg.Done()
	defer func() {
		_ = c.nc.Close()
		c.wmu.Lock()
		c.broken = true
		if c.holdTimer != nil {
			c.holdTimer.Stop()
		}
		c.wmu.Unlock()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.log.Debug("connection closed", "conn", c.id)
	}()
	s.log.Debug("connection opened", "conn", c.id, "remote", c.nc.RemoteAddr().String())
	c.wmu.Lock()
	c.lastWrite = time.Now()
	c.wmu.Unlock()
	r := bufio.NewReaderSize(c.nc, readBufSize)
	for {
		line, tooLong, err := readLine(r, maxLineSize)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("read failed", "conn", c.id, "err", err)
			}
			return
		}
		if tooLong {
			s.log.Warn("request line too long, dropped", "conn", c.id, "limit", maxLineSize)
			c.handleOversize()
			continue
		}
		s.record(line)
		c.handle(line)
	}
}

// readLine reads one '\n'-terminated line without the '\n'. A line longer
// than limit is consumed and discarded, reported by tooLong. A final
// fragment without '\n' is discarded and io.EOF returned.
func readLine(r *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(frag) > limit+1 {
				tooLong = true
				line = nil
			} else {
				line = append(line, frag...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, true, nil
			}
			return line[:len(line)-1], false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, false, err
		}
	}
}

func (c *conn) handle(line []byte) {
	s := c.s
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	s.mu.Lock()
	var ch changes
	resp := s.processLine(c, line, &ch)
	s.flushLocked(c, resp, s.notesLocked(&ch))
}

func (c *conn) handleOversize() {
	resp := mustMarshal(errorResponse{JSONRPC: "2.0", Error: rpcError{Code: codeInvalidRequest, Message: "request too large"}, ID: nullID})
	c.s.mu.Lock()
	c.s.flushLocked(c, resp, nil)
}

// writeLocked writes one message plus '\n', or with Config.Hold queues it
// to be written as ElectrumX would. c.wmu must be held. A failed write
// closes the connection, which ends its reader.
func (c *conn) writeLocked(msg []byte) {
	if c.broken {
		return
	}
	if c.s.cfg.Hold > 0 {
		c.held = append(append(c.held, msg...), '\n')
		c.flushHeldLocked()
		return
	}
	buf := make([]byte, 0, len(msg)+1)
	buf = append(append(buf, msg...), '\n')
	c.writeRawLocked(buf)
}

func (c *conn) writeRawLocked(buf []byte) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(buf); err != nil {
		c.broken = true
		c.s.log.Debug("write failed", "conn", c.id, "err", err)
		_ = c.nc.Close()
	}
}

// flushHeldLocked writes the held messages if ElectrumX would now: the
// connection is still within its first PadSize bytes, PadSize bytes are
// waiting, or Hold has passed since the last write. Otherwise it makes
// sure a timer writes them when the hold ends. c.wmu must be held.
func (c *conn) flushHeldLocked() {
	if c.broken || len(c.held) == 0 {
		return
	}
	hold := c.s.cfg.Hold
	if wait := time.Until(c.lastWrite.Add(hold)); c.sent >= PadSize && len(c.held) < PadSize && wait > 0 {
		if c.holdTimer == nil {
			c.holdTimer = time.AfterFunc(wait, func() {
				c.wmu.Lock()
				defer c.wmu.Unlock()
				c.holdTimer = nil
				c.flushHeldLocked()
			})
		}
		return
	}
	if c.holdTimer != nil {
		c.holdTimer.Stop()
		c.holdTimer = nil
	}
	buf := padHeld(c.held)
	c.held = c.held[:0]
	c.sent += len(buf)
	c.lastWrite = time.Now()
	c.writeRawLocked(buf)
}

// padHeld returns msgs (whole messages, each ending in "}\n" or "]\n")
// padded as ElectrumX pads a write: spaces before the last message's
// closing bracket up to a power of two of at least PadSize bytes (the
// next one above the length, as ElectrumX's 2**bit_length does).
func padHeld(msgs []byte) []byte {
	total := max(PadSize, 1<<bits.Len(uint(len(msgs))))
	buf := make([]byte, 0, total)
	buf = append(buf, msgs[:len(msgs)-2]...)
	for range total - len(msgs) {
		buf = append(buf, ' ')
	}
	return append(buf, msgs[len(msgs)-2:]...)
}
