package regtest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
)

// maxMoney is the largest amount of satoshis an output may carry (21e6 BTC).
const maxMoney = 21_000_000 * 100_000_000

// maxTxSize bounds the size of a transaction accepted by the parser. A
// broadcast line is limited to maxLineSize anyway; this keeps the parser's
// allocations bounded independently of the caller.
const maxTxSize = 2_000_000

// sha256d returns SHA256(SHA256(b)).
func sha256d(b []byte) [32]byte {
	first := sha256.Sum256(b)
	return sha256.Sum256(first[:])
}

// hashHex renders a hash stored in internal byte order the way Bitcoin
// displays it: byte-reversed hex.
func hashHex(h [32]byte) string {
	r := h
	slices.Reverse(r[:])
	return hex.EncodeToString(r[:])
}

// parseHashHex parses a byte-reversed 64-character hex hash (txid, block
// hash) into internal byte order.
func parseHashHex(s string) ([32]byte, error) {
	var h [32]byte
	if len(s) != 64 {
		return h, fmt.Errorf("hash %q: want 64 hex characters, got %d", s, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	slices.Reverse(h[:])
	return h, nil
}

// ScriptHash returns the Electrum protocol script hash of a scriptPubKey:
// the hex of SHA256(script) with its bytes reversed.
func ScriptHash(script []byte) string {
	h := sha256.Sum256(script)
	return hashHex(h)
}

// outPoint names a transaction output.
type outPoint struct {
	hash  [32]byte // txid in internal byte order
	index uint32
}

// isNull reports whether o is the null prevout used by coinbase inputs.
func (o outPoint) isNull() bool {
	return o.hash == [32]byte{} && o.index == 0xffffffff
}

type txIn struct {
	prev     outPoint
	script   []byte
	sequence uint32
	witness  [][]byte
}

type txOut struct {
	value  int64
	script []byte
}

// transaction is a parsed Bitcoin transaction.
type transaction struct {
	version  uint32
	inputs   []txIn
	outputs  []txOut
	lockTime uint32
	segwit   bool     // serialized with marker, flag and witnesses
	raw      []byte   // full serialization (with witnesses if segwit)
	txid     [32]byte // sha256d of the non-witness serialization
}

// isCoinbase reports whether tx has the single null-prevout input of a
// coinbase transaction.
func (tx *transaction) isCoinbase() bool {
	return len(tx.inputs) == 1 && tx.inputs[0].prev.isNull()
}

// byteReader reads a serialized transaction with bounds checks.
type byteReader struct {
	b   []byte
	off int
}

var errShort = errors.New("unexpected end of data")

func (r *byteReader) remaining() int { return len(r.b) - r.off }

func (r *byteReader) readN(n int) ([]byte, error) {
	if n < 0 || n > r.remaining() {
		return nil, errShort
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out, nil
}

func (r *byteReader) u8() (byte, error) {
	b, err := r.readN(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (r *byteReader) u32() (uint32, error) {
	b, err := r.readN(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (r *byteReader) u64() (uint64, error) {
	b, err := r.readN(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// compactSize reads a canonical CompactSize integer no larger than the
// number of remaining bytes divided by minItem (each counted item takes at
// least minItem bytes), which keeps allocations proportional to the input.
func (r *byteReader) compactSize(minItem int) (int, error) {
	first, err := r.u8()
	if err != nil {
		return 0, err
	}
	var v uint64
	switch first {
	case 0xfd:
		b, err := r.readN(2)
		if err != nil {
			return 0, err
		}
		v = uint64(binary.LittleEndian.Uint16(b))
		if v < 0xfd {
			return 0, errors.New("non-canonical compact size")
		}
	case 0xfe:
		x, err := r.u32()
		if err != nil {
			return 0, err
		}
		v = uint64(x)
		if v <= 0xffff {
			return 0, errors.New("non-canonical compact size")
		}
	case 0xff:
		x, err := r.u64()
		if err != nil {
			return 0, err
		}
		v = x
		if v <= 0xffffffff {
			return 0, errors.New("non-canonical compact size")
		}
	default:
		v = uint64(first)
	}
	if minItem < 1 {
		minItem = 1
	}
	if v > uint64(r.remaining()/minItem) {
		return 0, fmt.Errorf("count %d exceeds remaining data", v)
	}
	return int(v), nil
}

func (r *byteReader) varBytes() ([]byte, error) {
	n, err := r.compactSize(1)
	if err != nil {
		return nil, err
	}
	return r.readN(n)
}

// parseTransaction parses a legacy or segwit (BIP144) serialized
// transaction. The whole input must be consumed.
func parseTransaction(raw []byte) (*transaction, error) {
	if len(raw) > maxTxSize {
		return nil, fmt.Errorf("parse transaction: %d bytes exceeds limit %d", len(raw), maxTxSize)
	}
	tx, err := parseTransactionInner(raw)
	if err != nil {
		return nil, fmt.Errorf("parse transaction: %w", err)
	}
	return tx, nil
}

func parseTransactionInner(raw []byte) (*transaction, error) {
	r := &byteReader{b: raw}
	tx := &transaction{}
	var err error
	if tx.version, err = r.u32(); err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	if r.remaining() >= 2 && r.b[r.off] == 0x00 {
		if r.b[r.off+1] != 0x01 {
			return nil, fmt.Errorf("unknown segwit flag 0x%02x", r.b[r.off+1])
		}
		tx.segwit = true
		r.off += 2
	}
	nIn, err := r.compactSize(41)
	if err != nil {
		return nil, fmt.Errorf("input count: %w", err)
	}
	if nIn == 0 {
		return nil, errors.New("no inputs")
	}
	tx.inputs = make([]txIn, nIn)
	for i := range tx.inputs {
		in := &tx.inputs[i]
		h, err := r.readN(32)
		if err != nil {
			return nil, fmt.Errorf("input %d prevout: %w", i, err)
		}
		copy(in.prev.hash[:], h)
		if in.prev.index, err = r.u32(); err != nil {
			return nil, fmt.Errorf("input %d prevout index: %w", i, err)
		}
		if in.script, err = r.varBytes(); err != nil {
			return nil, fmt.Errorf("input %d scriptSig: %w", i, err)
		}
		if in.sequence, err = r.u32(); err != nil {
			return nil, fmt.Errorf("input %d sequence: %w", i, err)
		}
	}
	nOut, err := r.compactSize(9)
	if err != nil {
		return nil, fmt.Errorf("output count: %w", err)
	}
	if nOut == 0 {
		return nil, errors.New("no outputs")
	}
	tx.outputs = make([]txOut, nOut)
	var total int64
	for i := range tx.outputs {
		out := &tx.outputs[i]
		v, err := r.u64()
		if err != nil {
			return nil, fmt.Errorf("output %d value: %w", i, err)
		}
		if v > maxMoney {
			return nil, fmt.Errorf("output %d value %d out of range", i, v)
		}
		out.value = int64(v)
		total += out.value
		if total > maxMoney {
			return nil, fmt.Errorf("output total %d out of range", total)
		}
		if out.script, err = r.varBytes(); err != nil {
			return nil, fmt.Errorf("output %d scriptPubKey: %w", i, err)
		}
	}
	if tx.segwit {
		anyWitness := false
		for i := range tx.inputs {
			n, err := r.compactSize(1)
			if err != nil {
				return nil, fmt.Errorf("input %d witness count: %w", i, err)
			}
			stack := make([][]byte, n)
			for j := range stack {
				if stack[j], err = r.varBytes(); err != nil {
					return nil, fmt.Errorf("input %d witness item %d: %w", i, j, err)
				}
			}
			tx.inputs[i].witness = stack
			if n > 0 {
				anyWitness = true
			}
		}
		if !anyWitness {
			return nil, errors.New("segwit serialization without any witness data")
		}
	}
	if tx.lockTime, err = r.u32(); err != nil {
		return nil, fmt.Errorf("locktime: %w", err)
	}
	if r.remaining() != 0 {
		return nil, fmt.Errorf("%d trailing bytes", r.remaining())
	}
	tx.raw = slices.Clone(raw)
	tx.txid = sha256d(tx.serialize(false))
	return tx, nil
}

func appendCompactSize(b []byte, n int) []byte {
	switch {
	case n < 0xfd:
		return append(b, byte(n))
	case n <= 0xffff:
		return binary.LittleEndian.AppendUint16(append(b, 0xfd), uint16(n))
	case int64(n) <= 0xffffffff:
		return binary.LittleEndian.AppendUint32(append(b, 0xfe), uint32(n))
	default:
		return binary.LittleEndian.AppendUint64(append(b, 0xff), uint64(n))
	}
}

func appendVarBytes(b, v []byte) []byte {
	return append(appendCompactSize(b, len(v)), v...)
}

// serialize encodes tx; withWitness selects the BIP144 serialization and is
// ignored for transactions that have no witness data.
func (tx *transaction) serialize(withWitness bool) []byte {
	withWitness = withWitness && tx.segwit
	b := binary.LittleEndian.AppendUint32(nil, tx.version)
	if withWitness {
		b = append(b, 0x00, 0x01)
	}
	b = appendCompactSize(b, len(tx.inputs))
	for _, in := range tx.inputs {
		b = append(b, in.prev.hash[:]...)
		b = binary.LittleEndian.AppendUint32(b, in.prev.index)
		b = appendVarBytes(b, in.script)
		b = binary.LittleEndian.AppendUint32(b, in.sequence)
	}
	b = appendCompactSize(b, len(tx.outputs))
	for _, out := range tx.outputs {
		b = binary.LittleEndian.AppendUint64(b, uint64(out.value))
		b = appendVarBytes(b, out.script)
	}
	if withWitness {
		for _, in := range tx.inputs {
			b = appendCompactSize(b, len(in.witness))
			for _, item := range in.witness {
				b = appendVarBytes(b, item)
			}
		}
	}
	return binary.LittleEndian.AppendUint32(b, tx.lockTime)
}

// finalize fills raw and txid from the parsed fields.
func (tx *transaction) finalize() {
	tx.raw = tx.serialize(true)
	tx.txid = sha256d(tx.serialize(false))
}

// coinbaseTag is pushed into every coinbase scriptSig after the BIP34
// height, so the fixture's blocks are recognisable.
const coinbaseTag = "/regtest-fixture/"

// scriptNumPush returns the script that pushes n the way Bitcoin Core's
// CScript() << n does (OP_0, OP_1..OP_16, or a minimal script number push).
// BIP34 requires the coinbase scriptSig to start with exactly this.
func scriptNumPush(n int64) []byte {
	switch {
	case n == 0:
		return []byte{0x00}
	case n == -1:
		return []byte{0x4f}
	case n >= 1 && n <= 16:
		return []byte{0x50 + byte(n)}
	}
	neg := n < 0
	abs := uint64(n)
	if neg {
		abs = uint64(-n)
	}
	var num []byte
	for ; abs > 0; abs >>= 8 {
		num = append(num, byte(abs))
	}
	switch {
	case num[len(num)-1]&0x80 != 0 && neg:
		num = append(num, 0x80)
	case num[len(num)-1]&0x80 != 0:
		num = append(num, 0x00)
	case neg:
		num[len(num)-1] |= 0x80
	}
	return append([]byte{byte(len(num))}, num...)
}

// newCoinbase builds the legacy-serialized coinbase transaction of the block
// at height: one null-prevout input whose scriptSig holds the BIP34 height
// push and the fixture tag, and one output paying value to script.
func newCoinbase(height int, value int64, script []byte) *transaction {
	sig := scriptNumPush(int64(height))
	sig = append(sig, byte(len(coinbaseTag)))
	sig = append(sig, coinbaseTag...)
	tx := &transaction{
		version: 1,
		inputs: []txIn{{
			prev:     outPoint{index: 0xffffffff},
			script:   sig,
			sequence: 0xffffffff,
		}},
		outputs: []txOut{{value: value, script: slices.Clone(script)}},
	}
	tx.finalize()
	return tx
}
