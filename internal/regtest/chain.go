package regtest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// CoinbaseMaturity is the number of confirmations a coinbase output needs
// before it may be spent (Bitcoin's and Electrum's COINBASE_MATURITY).
const CoinbaseMaturity = 100

// BurnScript is the scriptPubKey (OP_TRUE) paid by the coinbases of the
// maturity blocks and of blocks made by Server.Mine. No wallet owns it.
var BurnScript = []byte{0x51}

// txRecord is a transaction known to the chain, confirmed or in the mempool.
type txRecord struct {
	tx      *transaction
	mempool bool
	height  int      // block height when confirmed
	pos     int      // position in the block when confirmed
	fee     int64    // fee in satoshis (0 for coinbases)
	touched []string // script hashes of its outputs and of the outputs it spends
}

// output is one output of a known transaction.
type output struct {
	index   uint32 // position in its transaction
	value   int64
	script  []byte
	sh      string
	rec     *txRecord
	spentBy *txRecord // confirmed or mempool spender; nil when unspent
}

type block struct {
	header blockHeader
	hash   [32]byte
	txs    []*transaction
}

// chain is the block chain plus mempool and the indexes the Electrum
// methods need. It is not safe for concurrent use; Server guards it.
type chain struct {
	blocks        []*block
	txs           map[[32]byte]*txRecord
	outputs       map[outPoint]*output
	mempool       []*txRecord
	confirmedHist map[string][]*txRecord // script hash -> confirmed txs in block order
}

// rejectError is a transaction refused by the fixture's validity rules. Its
// message uses bitcoind's reject reasons.
type rejectError struct{ reason string }

func (e *rejectError) Error() string { return e.reason }

func newChain() *chain {
	c := &chain{
		txs:           make(map[[32]byte]*txRecord),
		outputs:       make(map[outPoint]*output),
		confirmedHist: make(map[string][]*txRecord),
	}
	h := genesisHeader()
	raw, err := hex.DecodeString(genesisCoinbaseHex)
	if err != nil {
		panic(fmt.Sprintf("regtest: bad genesis coinbase constant: %v", err))
	}
	cb, err := parseTransaction(raw)
	if err != nil {
		panic(fmt.Sprintf("regtest: bad genesis coinbase constant: %v", err))
	}
	// Like bitcoind, the genesis coinbase is not indexed: its output is not
	// spendable and the transaction cannot be fetched.
	c.blocks = append(c.blocks, &block{header: h, hash: h.hash(), txs: []*transaction{cb}})
	return c
}

func (c *chain) height() int { return len(c.blocks) - 1 }

func (c *chain) tip() *block { return c.blocks[len(c.blocks)-1] }

// mine appends a block whose coinbase pays subsidy plus the mempool's fees
// to script, followed by every mempool transaction in arrival order. It
// returns the script hashes the block touches.
func (c *chain) mine(subsidy int64, script []byte) map[string]bool {
	height := len(c.blocks)
	var fees int64
	for _, rec := range c.mempool {
		fees += rec.fee
	}
	cb := newCoinbase(height, subsidy+fees, script)
	cbRec := &txRecord{tx: cb, touched: []string{ScriptHash(script)}}
	recs := append([]*txRecord{cbRec}, c.mempool...)
	c.mempool = nil

	txs := make([]*transaction, len(recs))
	ids := make([][32]byte, len(recs))
	for i, rec := range recs {
		txs[i] = rec.tx
		ids[i] = rec.tx.txid
	}
	prev := c.tip()
	h := newHeader(blockVersion, prev.hash, merkleRoot(ids), prev.header.time()+blockInterval, regtestBits, 0)
	c.blocks = append(c.blocks, &block{header: h, hash: h.hash(), txs: txs})

	c.txs[cb.txid] = cbRec
	c.addOutputs(cbRec)
	touched := make(map[string]bool)
	for i, rec := range recs {
		rec.mempool = false
		rec.height = height
		rec.pos = i
		for _, sh := range rec.touched {
			c.confirmedHist[sh] = append(c.confirmedHist[sh], rec)
			touched[sh] = true
		}
	}
	return touched
}

func (c *chain) addOutputs(rec *txRecord) {
	for i, out := range rec.tx.outputs {
		c.outputs[outPoint{hash: rec.tx.txid, index: uint32(i)}] = &output{
			index:  uint32(i),
			value:  out.value,
			script: out.script,
			sh:     ScriptHash(out.script),
			rec:    rec,
		}
	}
}

// accept validates tx against the chain and mempool and adds it to the
// mempool. It checks what bitcoind checks except scripts and signatures:
// inputs must exist and be unspent, coinbases mature, no duplicate inputs,
// outputs not exceeding inputs. A transaction already in the mempool is
// accepted again without change (added is false).
func (c *chain) accept(tx *transaction) (rec *txRecord, added bool, err error) {
	if old, ok := c.txs[tx.txid]; ok {
		if old.mempool {
			return old, false, nil
		}
		return nil, false, &rejectError{"transaction already in block chain"}
	}
	if tx.isCoinbase() {
		return nil, false, &rejectError{"coinbase"}
	}
	nextHeight := len(c.blocks)
	seen := make(map[outPoint]bool, len(tx.inputs))
	var in int64
	touched := []string{}
	spent := make([]*output, 0, len(tx.inputs))
	for _, txin := range tx.inputs {
		if seen[txin.prev] {
			return nil, false, &rejectError{"bad-txns-inputs-duplicate"}
		}
		seen[txin.prev] = true
		out, ok := c.outputs[txin.prev]
		if !ok {
			return nil, false, &rejectError{"bad-txns-inputs-missingorspent"}
		}
		if out.spentBy != nil {
			if out.spentBy.mempool {
				return nil, false, &rejectError{"txn-mempool-conflict"}
			}
			return nil, false, &rejectError{"bad-txns-inputs-missingorspent"}
		}
		if out.rec.tx.isCoinbase() && nextHeight-out.rec.height < CoinbaseMaturity {
			return nil, false, &rejectError{"bad-txns-premature-spend-of-coinbase"}
		}
		in += out.value
		spent = append(spent, out)
		if !slices.Contains(touched, out.sh) {
			touched = append(touched, out.sh)
		}
	}
	var outSum int64
	for _, o := range tx.outputs {
		outSum += o.value
		if sh := ScriptHash(o.script); !slices.Contains(touched, sh) {
			touched = append(touched, sh)
		}
	}
	if outSum > in {
		return nil, false, &rejectError{"bad-txns-in-belowout"}
	}
	rec = &txRecord{tx: tx, mempool: true, fee: in - outSum, touched: touched}
	for _, out := range spent {
		out.spentBy = rec
	}
	c.txs[tx.txid] = rec
	c.addOutputs(rec)
	c.mempool = append(c.mempool, rec)
	return rec, true, nil
}

// mempoolHeight is the Electrum history height of a mempool transaction:
// -1 when it spends an output of another mempool transaction, else 0.
func (c *chain) mempoolHeight(rec *txRecord) int {
	for _, in := range rec.tx.inputs {
		if out, ok := c.outputs[in.prev]; ok && out.rec.mempool {
			return -1
		}
	}
	return 0
}

// historyItem is one entry of blockchain.scripthash.get_history.
type historyItem struct {
	TxHash string `json:"tx_hash"`
	Height int    `json:"height"`
	Fee    *int64 `json:"fee,omitempty"`
}

// history returns the Electrum history of a script hash: confirmed
// transactions in block order, then mempool transactions in arrival order.
func (c *chain) history(sh string) []historyItem {
	items := []historyItem{}
	for _, rec := range c.confirmedHist[sh] {
		items = append(items, historyItem{TxHash: hashHex(rec.tx.txid), Height: rec.height})
	}
	for _, rec := range c.mempool {
		if slices.Contains(rec.touched, sh) {
			fee := rec.fee
			items = append(items, historyItem{TxHash: hashHex(rec.tx.txid), Height: c.mempoolHeight(rec), Fee: &fee})
		}
	}
	return items
}

// status returns the Electrum status of a script hash, "" for no history
// (sent as JSON null).
func (c *chain) status(sh string) string {
	return historyStatus(c.history(sh))
}

// historyStatus hashes a history the way the Electrum protocol defines a
// script hash status: hex(sha256("txid:height:" for each item)), or "" when
// the history is empty.
func historyStatus(items []historyItem) string {
	if len(items) == 0 {
		return ""
	}
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "%s:%d:", it.TxHash, it.Height)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// scriptOutputs returns every output paying to script hash sh, from the
// transactions in its history, in history order.
func (c *chain) scriptOutputs(sh string) []*output {
	var outs []*output
	visit := func(rec *txRecord) {
		for i := range rec.tx.outputs {
			if o := c.outputs[outPoint{hash: rec.tx.txid, index: uint32(i)}]; o != nil && o.sh == sh {
				outs = append(outs, o)
			}
		}
	}
	for _, rec := range c.confirmedHist[sh] {
		visit(rec)
	}
	for _, rec := range c.mempool {
		if slices.Contains(rec.touched, sh) {
			visit(rec)
		}
	}
	return outs
}

// unspentItem is one entry of blockchain.scripthash.listunspent.
type unspentItem struct {
	TxHash string `json:"tx_hash"`
	TxPos  int    `json:"tx_pos"`
	Height int    `json:"height"`
	Value  int64  `json:"value"`
}

// listUnspent returns the outputs paying to sh that neither a confirmed nor
// a mempool transaction spends; mempool outputs have height 0.
func (c *chain) listUnspent(sh string) []unspentItem {
	items := []unspentItem{}
	for _, o := range c.scriptOutputs(sh) {
		if o.spentBy != nil {
			continue
		}
		h := o.rec.height
		if o.rec.mempool {
			h = 0
		}
		items = append(items, unspentItem{TxHash: hashHex(o.rec.tx.txid), TxPos: int(o.index), Height: h, Value: o.value})
	}
	return items
}

// balance returns ElectrumX's get_balance figures for sh: confirmed is the
// value of confirmed outputs not spent by a confirmed transaction;
// unconfirmed is the mempool's net effect (outputs received minus outputs
// spent).
func (c *chain) balance(sh string) (confirmed, unconfirmed int64) {
	for _, o := range c.scriptOutputs(sh) {
		spentInMempool := o.spentBy != nil && o.spentBy.mempool
		switch {
		case o.rec.mempool:
			unconfirmed += o.value
		case o.spentBy == nil || spentInMempool:
			confirmed += o.value
		}
		if spentInMempool {
			unconfirmed -= o.value
		}
	}
	return confirmed, unconfirmed
}

// merkleProof returns the merkle branch and position of txid in the block
// at height.
func (c *chain) merkleProof(txid [32]byte, height int) ([][32]byte, int, error) {
	if height < 0 || height > c.height() {
		return nil, 0, fmt.Errorf("height %d out of range [0,%d]", height, c.height())
	}
	b := c.blocks[height]
	ids := make([][32]byte, len(b.txs))
	pos := -1
	for i, tx := range b.txs {
		ids[i] = tx.txid
		if tx.txid == txid {
			pos = i
		}
	}
	if pos < 0 {
		return nil, 0, errors.New("tx " + hashHex(txid) + " not in block at height " + fmt.Sprint(height))
	}
	return merkleBranch(ids, pos), pos, nil
}
