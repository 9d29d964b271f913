package regtest

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testSpend builds a segwit transaction spending prevs with a dummy P2WPKH
// style witness (the fixture does not check signatures).
func testSpend(prevs []outPoint, outs []txOut) *transaction {
	tx := &transaction{version: 2, segwit: true}
	for _, p := range prevs {
		tx.inputs = append(tx.inputs, txIn{
			prev:     p,
			sequence: 0xfffffffd,
			witness: [][]byte{
				bytes.Repeat([]byte{0x30}, 71),
				append([]byte{0x02}, bytes.Repeat([]byte{0x11}, 32)...),
			},
		})
	}
	tx.outputs = outs
	tx.finalize()
	return tx
}

func TestGenesisCoinbaseTxid(t *testing.T) {
	tx, err := parseTransaction(mustHex(t, genesisCoinbaseHex))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hashHex(tx.txid), "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"; got != want {
		t.Fatalf("txid %s, want %s", got, want)
	}
	if !tx.isCoinbase() || tx.segwit || len(tx.outputs) != 1 || tx.outputs[0].value != 5_000_000_000 {
		t.Fatalf("unexpected parse: %+v", tx)
	}
	if !bytes.Equal(tx.serialize(true), mustHex(t, genesisCoinbaseHex)) {
		t.Fatal("re-serialization differs")
	}
	h := genesisHeader()
	if h.merkleRoot() != tx.txid {
		t.Fatal("genesis header merkle root is not the coinbase txid")
	}
}

// The expected ids were computed independently with Electrum 4.3.4's
// Transaction class from the same bytes.
func TestSegwitTxidVector(t *testing.T) {
	var prev [32]byte
	for i := range prev {
		prev[i] = byte(i)
	}
	tx := testSpend([]outPoint{{hash: prev, index: 1}}, []txOut{
		{value: 100_000_000, script: mustHex(t, "0014751e76e8199196d454941c45d1b3a323f1433bd6")},
		{value: 4_899_990_000, script: []byte{0x51}},
	})
	if tx.raw[4] != 0x00 || tx.raw[5] != 0x01 {
		t.Fatalf("missing segwit marker: %x", tx.raw[:6])
	}
	if got, want := hashHex(tx.txid), segwitVectorTxid; got != want {
		t.Errorf("txid %s, want %s", got, want)
	}
	if got, want := hashHex(sha256d(tx.raw)), segwitVectorWtxid; got != want {
		t.Errorf("wtxid %s, want %s", got, want)
	}
	parsed, err := parseTransaction(tx.raw)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.txid != tx.txid || !parsed.segwit || len(parsed.inputs[0].witness) != 2 {
		t.Fatalf("parse round trip: %+v", parsed)
	}
	legacy, err := parseTransaction(tx.serialize(false))
	if err != nil {
		t.Fatal(err)
	}
	if legacy.txid != tx.txid || legacy.segwit {
		t.Fatal("legacy serialization has a different txid")
	}
}

const (
	segwitVectorTxid  = "c1ad62a46c09b46da87ec88ec1fbd42d65cbcb7496e2a38d007c6ff87acb5cdc"
	segwitVectorWtxid = "eed98b7465dba0413f26edd70334c1899a800fb271ce4f42d4bd6ec3e16a495a"
)

func TestParseTransactionRejects(t *testing.T) {
	good := testSpend([]outPoint{{index: 0}}, []txOut{{value: 1, script: []byte{0x51}}}).raw
	legacy := newCoinbase(5, 1, []byte{0x51}).raw
	cases := map[string][]byte{
		"empty":            {},
		"truncated":        good[:len(good)-1],
		"trailing byte":    append(bytes.Clone(good), 0),
		"legacy truncated": legacy[:len(legacy)-5],
		"bad segwit flag":  append(append(bytes.Clone(good[:4]), 0x00, 0x02), good[6:]...),
		"zero inputs":      mustHex(t, "01000000"+"00"+"01"+"0100000000000000"+"0151"+"00000000"),
		"huge input count": mustHex(t, "01000000"+"feffffff00"+"00"),
		"non-canonical":    mustHex(t, "01000000"+"fd0100"+"00"),
		"value too large":  append(append(bytes.Clone(legacy[:len(legacy)-4-2-8]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), legacy[len(legacy)-4-2:]...),
		"no witness data": func() []byte {
			tx := testSpend([]outPoint{{index: 0}}, []txOut{{value: 1, script: []byte{0x51}}})
			tx.inputs[0].witness = nil
			return tx.serialize(true)
		}(),
	}
	for name, raw := range cases {
		if _, err := parseTransaction(raw); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
	if _, err := parseTransaction(good); err != nil {
		t.Fatalf("good tx: %v", err)
	}
	if _, err := parseTransaction(legacy); err != nil {
		t.Fatalf("legacy coinbase: %v", err)
	}
}

func TestScriptNumPush(t *testing.T) {
	tests := map[int64]string{
		0: "00", 1: "51", 16: "60", 17: "0111", 127: "017f", 128: "028000",
		255: "02ff00", 256: "020001", 101: "0165", 32767: "02ff7f", 32768: "03008000", 500000: "0320a107",
		-1: "4f", -2: "0182", -128: "028080",
	}
	for n, want := range tests {
		if got := hex.EncodeToString(scriptNumPush(n)); got != want {
			t.Errorf("scriptNumPush(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestNewCoinbase(t *testing.T) {
	script := mustHex(t, "0014751e76e8199196d454941c45d1b3a323f1433bd6")
	cb := newCoinbase(300, DefaultCoinbaseValue, script)
	parsed, err := parseTransaction(cb.raw)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.segwit || !parsed.isCoinbase() || parsed.version != 1 || parsed.lockTime != 0 {
		t.Fatalf("bad coinbase: %+v", parsed)
	}
	in := parsed.inputs[0]
	if in.sequence != 0xffffffff || !bytes.HasPrefix(in.script, mustHex(t, "022c01")) {
		t.Fatalf("bad coinbase input: %x seq %x", in.script, in.sequence)
	}
	if n := len(in.script); n < 2 || n > 100 {
		t.Fatalf("coinbase scriptSig length %d", n)
	}
	if len(parsed.outputs) != 1 || parsed.outputs[0].value != DefaultCoinbaseValue || !bytes.Equal(parsed.outputs[0].script, script) {
		t.Fatalf("bad coinbase output: %+v", parsed.outputs)
	}
	if parsed.txid != sha256d(cb.raw) {
		t.Fatal("legacy txid must be sha256d of the raw bytes")
	}
	if newCoinbase(301, DefaultCoinbaseValue, script).txid == cb.txid {
		t.Fatal("coinbases at different heights share a txid")
	}
}
