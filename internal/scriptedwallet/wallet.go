package scriptedwallet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/regtest"
)

// Wallet is a watch-only set of P2WPKH addresses.
type Wallet struct {
	// Receiving and Change are the wallet's addresses (Electrum's default
	// gap limits make 20 and 10 to start with). Sync adds receiving
	// addresses to keep GapLimit unused ones after the last used one, as
	// Electrum does.
	Receiving, Change []Address
	// GapLimit is the number of unused receiving addresses kept after the
	// last used one.
	GapLimit int

	hrp, seed string
}

// Address is a watch-only P2WPKH address.
type Address struct {
	Address    string // bech32, "bcrt1q…" on regtest
	Script     []byte // scriptPubKey: OP_0 <20 bytes>
	ScriptHash string // Electrum protocol script hash
}

// NewWallet derives receiving and change addresses for hrp ("bcrt" on
// regtest) from seed, deterministically.
func NewWallet(hrp, seed string, receiving, change int) (*Wallet, error) {
	w := &Wallet{GapLimit: receiving, hrp: hrp, seed: seed}
	for i := range receiving {
		a, err := w.derive(0, i)
		if err != nil {
			return nil, err
		}
		w.Receiving = append(w.Receiving, a)
	}
	for i := range change {
		a, err := w.derive(1, i)
		if err != nil {
			return nil, err
		}
		w.Change = append(w.Change, a)
	}
	return w, nil
}

func (w *Wallet) derive(branch, i int) (Address, error) {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%d", w.seed, branch, i)))
	return NewAddress(w.hrp, sum[:20])
}

// NewAddress makes the P2WPKH address of a 20-byte key hash.
func NewAddress(hrp string, keyHash []byte) (Address, error) {
	if len(keyHash) != 20 {
		return Address{}, errors.New("P2WPKH needs a 20-byte key hash")
	}
	addr, err := regtest.SegwitAddress(hrp, 0, keyHash)
	if err != nil {
		return Address{}, err
	}
	script := append([]byte{0x00, 0x14}, keyHash...)
	return Address{Address: addr, Script: script, ScriptHash: ScriptHash(script)}, nil
}

// All returns the receiving then the change addresses.
func (w *Wallet) All() []Address { return append(append([]Address(nil), w.Receiving...), w.Change...) }

// ScriptHash returns the Electrum script hash of a scriptPubKey: SHA-256,
// bytes reversed, hex.
func ScriptHash(script []byte) string {
	sum := sha256.Sum256(script)
	slices.Reverse(sum[:])
	return hex.EncodeToString(sum[:])
}

// SyncReport is what a Sync saw.
type SyncReport struct {
	ServerVersion []string
	Height        int
	// Confirmed is the value in satoshis of outputs to the wallet's
	// scripts in confirmed transactions (spends are not tracked).
	Confirmed int64
	// Txs is the number of transactions fetched and SPV-verified.
	Txs int
	// Requests is the number of requests sent.
	Requests int
	// Duration is the time from the first request to the last answer.
	Duration time.Duration
}

// ClientName and ProtocolVersion are what Electrum 4.3.4 sends in
// server.version.
const (
	ClientName      = "electrum/4.3.4"
	ProtocolVersion = "1.4"
)

// Sync replays Electrum 4.3.4's connect and wallet synchronization on c:
// the connect sequence, header catch-up from an empty header store, and the
// synchronizer's requests for every address, checking each address status
// against its history and each confirmed transaction's merkle proof against
// its block header.
func (w *Wallet) Sync(ctx context.Context, c *Client) (*SyncReport, error) {
	start := time.Now()
	rep := &SyncReport{}

	// interface.open_session: server.version first, alone.
	if err := c.Call(ctx, &rep.ServerVersion, "server.version", ClientName, ProtocolVersion); err != nil {
		return nil, err
	}
	if len(rep.ServerVersion) != 2 || rep.ServerVersion[1] != ProtocolVersion {
		return nil, fmt.Errorf("server.version answered %q; Electrum 4.3.4 needs protocol %s", rep.ServerVersion, ProtocolVersion)
	}
	var tip struct {
		Hex    string `json:"hex"`
		Height int    `json:"height"`
	}
	if err := c.Call(ctx, &tip, "blockchain.headers.subscribe"); err != nil {
		return nil, err
	}
	rep.Height = tip.Height

	// Pipelined as Electrum does: fee estimates, the first header of its
	// backward search from an empty header store, the main interface's
	// server info; then the rest of the header catch-up.
	var batch []*Call
	for _, n := range []int{25, 10, 5, 2} {
		batch = append(batch, c.Go("blockchain.estimatefee", n))
	}
	batch = append(batch, c.Go("blockchain.block.header", min(1, tip.Height)))
	for _, m := range []string{"server.banner", "server.donation_address", "server.peers.subscribe", "blockchain.relayfee", "mempool.get_fee_histogram"} {
		batch = append(batch, c.Go(m))
	}
	if tip.Height > 0 {
		batch = append(batch, c.Go("blockchain.block.header", 0))
	}
	var chunks []*Call
	for start := 0; start <= tip.Height; start += 2016 {
		chunks = append(chunks, c.Go("blockchain.block.headers", start, min(2016, tip.Height-start+1)))
	}
	batch = append(batch, chunks...)
	for _, call := range batch {
		if err := call.Wait(ctx); err != nil {
			return nil, err
		}
	}
	var headers []byte
	for _, call := range chunks {
		var r struct {
			Hex   string `json:"hex"`
			Count int    `json:"count"`
		}
		if err := jsonResult(call, &r); err != nil {
			return nil, err
		}
		b, err := hex.DecodeString(r.Hex)
		if err != nil || len(b) != 80*r.Count {
			return nil, fmt.Errorf("block.headers: %d bytes for %d headers (%v)", len(b), r.Count, err)
		}
		headers = append(headers, b...)
	}
	if len(headers) != 80*(tip.Height+1) {
		return nil, fmt.Errorf("got %d headers, want %d", len(headers)/80, tip.Height+1)
	}
	if err := checkHeaderChain(headers); err != nil {
		return nil, err
	}
	if hex.EncodeToString(headers[80*tip.Height:]) != tip.Hex {
		return nil, errors.New("headers.subscribe tip differs from the header chain")
	}

	// synchronizer: subscribe every address, pipelined; then, as
	// addresses turn out used, more receiving addresses up to the gap
	// limit.
	addrs := w.All()
	var subs []*Call
	for _, a := range addrs {
		subs = append(subs, c.Go("blockchain.scripthash.subscribe", a.ScriptHash))
	}
	type hist struct {
		TxHash string `json:"tx_hash"`
		Height int    `json:"height"`
	}
	var withHistory []int
	statuses := make([]string, len(addrs))
	receivingIndex := map[string]int{}
	for i, a := range w.Receiving {
		receivingIndex[a.ScriptHash] = i
	}
	for i := 0; i < len(subs); i++ {
		call := subs[i]
		if err := call.Wait(ctx); err != nil {
			return nil, err
		}
		var st *string
		if err := jsonResult(call, &st); err != nil {
			return nil, err
		}
		if st == nil {
			continue
		}
		statuses[i] = *st
		withHistory = append(withHistory, i)
		if r, ok := receivingIndex[addrs[i].ScriptHash]; ok {
			for len(w.Receiving) < r+1+w.GapLimit {
				a, err := w.derive(0, len(w.Receiving))
				if err != nil {
					return nil, err
				}
				receivingIndex[a.ScriptHash] = len(w.Receiving)
				w.Receiving = append(w.Receiving, a)
				addrs = append(addrs, a)
				statuses = append(statuses, "")
				subs = append(subs, c.Go("blockchain.scripthash.subscribe", a.ScriptHash))
			}
		}
	}
	histCalls := make([]*Call, len(withHistory))
	for j, i := range withHistory {
		histCalls[j] = c.Go("blockchain.scripthash.get_history", addrs[i].ScriptHash)
	}
	type txRef struct {
		txid   string
		height int
	}
	var txs []txRef
	seen := map[string]bool{}
	for j, i := range withHistory {
		if err := histCalls[j].Wait(ctx); err != nil {
			return nil, err
		}
		var h []hist
		if err := jsonResult(histCalls[j], &h); err != nil {
			return nil, err
		}
		var s strings.Builder
		for _, it := range h {
			fmt.Fprintf(&s, "%s:%d:", it.TxHash, it.Height)
			if !seen[it.TxHash] {
				seen[it.TxHash] = true
				txs = append(txs, txRef{it.TxHash, it.Height})
			}
		}
		sum := sha256.Sum256([]byte(s.String()))
		if got := hex.EncodeToString(sum[:]); got != statuses[i] {
			return nil, fmt.Errorf("address %s: status %s does not match its history (%s)", addrs[i].Address, statuses[i], got)
		}
	}
	getCalls := make([]*Call, len(txs))
	for k, tx := range txs {
		getCalls[k] = c.Go("blockchain.transaction.get", tx.txid)
	}
	merkleCalls := make([]*Call, len(txs))
	for k, tx := range txs {
		if tx.height > 0 {
			merkleCalls[k] = c.Go("blockchain.transaction.get_merkle", tx.txid, tx.height)
		}
	}
	scripts := map[string]bool{}
	for _, a := range addrs {
		scripts[string(a.Script)] = true
	}
	for k, tx := range txs {
		if err := getCalls[k].Wait(ctx); err != nil {
			return nil, err
		}
		var rawHex string
		if err := jsonResult(getCalls[k], &rawHex); err != nil {
			return nil, err
		}
		raw, err := hex.DecodeString(rawHex)
		if err != nil {
			return nil, fmt.Errorf("transaction.get %s: %v", tx.txid, err)
		}
		txid, outs, err := parseTx(raw)
		if err != nil {
			return nil, fmt.Errorf("transaction %s: %v", tx.txid, err)
		}
		if txid != tx.txid {
			return nil, fmt.Errorf("transaction.get %s returned transaction %s", tx.txid, txid)
		}
		if merkleCalls[k] == nil {
			continue
		}
		if err := merkleCalls[k].Wait(ctx); err != nil {
			return nil, err
		}
		var m struct {
			BlockHeight int      `json:"block_height"`
			Merkle      []string `json:"merkle"`
			Pos         int      `json:"pos"`
		}
		if err := jsonResult(merkleCalls[k], &m); err != nil {
			return nil, err
		}
		if m.BlockHeight != tx.height || tx.height > tip.Height {
			return nil, fmt.Errorf("get_merkle %s: height %d, want %d", tx.txid, m.BlockHeight, tx.height)
		}
		if err := checkMerkle(tx.txid, m.Merkle, m.Pos, headers[80*tx.height:80*tx.height+80]); err != nil {
			return nil, fmt.Errorf("SPV check of %s: %v", tx.txid, err)
		}
		for _, o := range outs {
			if scripts[string(o.script)] {
				rep.Confirmed += o.value
			}
		}
		rep.Txs++
	}
	rep.Requests = len(c.Calls())
	rep.Duration = time.Since(start)
	return rep, nil
}

func jsonResult(call *Call, v any) error {
	if err := json.Unmarshal(call.Result, v); err != nil {
		return fmt.Errorf("%s: result %.200s: %v", call.Method, call.Result, err)
	}
	return nil
}

// checkHeaderChain checks that each header links to the previous one by
// hash, as Electrum does on regtest (it skips proof of work there).
func checkHeaderChain(h []byte) error {
	for i := 80; i < len(h); i += 80 {
		prev := sha256d(h[i-80 : i])
		if !bytes.Equal(h[i+4:i+36], prev[:]) {
			return fmt.Errorf("header %d does not link to header %d", i/80, i/80-1)
		}
	}
	return nil
}

// checkMerkle checks a merkle branch from txid (display hex) at pos against
// the merkle root of header.
func checkMerkle(txid string, branch []string, pos int, header []byte) error {
	h, err := revHex(txid)
	if err != nil {
		return err
	}
	cur := h
	for _, b := range branch {
		sib, err := revHex(b)
		if err != nil {
			return err
		}
		var pair []byte
		if pos&1 == 1 {
			pair = append(append(pair, sib...), cur...)
		} else {
			pair = append(append(pair, cur...), sib...)
		}
		d := sha256d(pair)
		cur = d[:]
		pos >>= 1
	}
	if !bytes.Equal(cur, header[36:68]) {
		return errors.New("merkle branch does not lead to the header's merkle root")
	}
	return nil
}

func revHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("bad hash %q", s)
	}
	slices.Reverse(b)
	return b, nil
}

func sha256d(b []byte) [32]byte {
	a := sha256.Sum256(b)
	return sha256.Sum256(a[:])
}

type txOut struct {
	value  int64
	script []byte
}

// parseTx parses a legacy or segwit serialized transaction and returns its
// txid (display hex) and outputs.
func parseTx(raw []byte) (string, []txOut, error) {
	r := &reader{b: raw}
	version := r.bytes(4)
	segwit := false
	if len(r.b) >= 2 && r.b[0] == 0 && r.b[1] == 1 {
		segwit = true
		r.bytes(2)
	}
	bodyStart := r.off
	nIn := r.varint()
	for range nIn {
		r.bytes(36)
		r.bytes(int(r.varint()))
		r.bytes(4)
	}
	nOut := r.varint()
	var outs []txOut
	for range nOut {
		v := int64(binary.LittleEndian.Uint64(r.bytes(8)))
		s := r.bytes(int(r.varint()))
		outs = append(outs, txOut{v, append([]byte(nil), s...)})
	}
	bodyEnd := r.off
	if segwit {
		for range nIn {
			n := r.varint()
			for range n {
				r.bytes(int(r.varint()))
			}
		}
	}
	lock := r.bytes(4)
	if r.err != nil {
		return "", nil, r.err
	}
	if r.off != len(raw) {
		return "", nil, fmt.Errorf("%d trailing bytes", len(raw)-r.off)
	}
	var legacy []byte
	legacy = append(legacy, version...)
	legacy = append(legacy, raw[bodyStart:bodyEnd]...)
	legacy = append(legacy, lock...)
	id := sha256d(legacy)
	slices.Reverse(id[:])
	return hex.EncodeToString(id[:]), outs, nil
}

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || r.off+n > len(r.b) {
		if r.err == nil {
			r.err = errors.New("truncated transaction")
		}
		return make([]byte, max(n, 0))
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *reader) varint() uint64 {
	p := r.bytes(1)
	switch p[0] {
	case 0xfd:
		return uint64(binary.LittleEndian.Uint16(r.bytes(2)))
	case 0xfe:
		return uint64(binary.LittleEndian.Uint32(r.bytes(4)))
	case 0xff:
		v := binary.LittleEndian.Uint64(r.bytes(8))
		if v > 1<<24 {
			r.err = errors.New("absurd count")
			return 0
		}
		return v
	}
	return uint64(p[0])
}
