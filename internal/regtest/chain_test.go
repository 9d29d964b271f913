package regtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

const (
	testAddr1 = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"                     // P2WPKH
	testAddr2 = "bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0scjhmyt" // P2WSH
)

func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func scriptOf(t *testing.T, addr string) []byte {
	t.Helper()
	s, err := AddressScript(addr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGenesisHash(t *testing.T) {
	h := genesisHeader()
	if got := hashHex(h.hash()); got != "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206" {
		t.Fatalf("genesis hash %s", got)
	}
	if got := hashHex(newChain().tip().hash); got != GenesisHash {
		t.Fatalf("chain genesis %s, want %s", got, GenesisHash)
	}
}

func TestDefaultChain(t *testing.T) {
	s := newTestServer(t, Config{Addresses: []string{testAddr1, testAddr2}, InitialBlocks: 3})
	if got, want := s.Height(), 3+CoinbaseMaturity; got != want {
		t.Fatalf("height %d, want %d", got, want)
	}
	c := s.chain
	for h := 1; h <= c.height(); h++ {
		b := c.blocks[h]
		hdr := b.header
		if hdr.prevHash() != c.blocks[h-1].hash {
			t.Fatalf("block %d does not link to %d", h, h-1)
		}
		if b.hash != sha256d(hdr[:]) {
			t.Fatalf("block %d: stored hash is not sha256d(header)", h)
		}
		if v := binary.LittleEndian.Uint32(hdr[0:4]); v != 0x20000000 {
			t.Fatalf("block %d version %#x", h, v)
		}
		if !bytes.Equal(hdr[72:76], []byte{0xff, 0xff, 0x7f, 0x20}) {
			t.Fatalf("block %d bits %x", h, hdr[72:76])
		}
		if hdr.time() != c.blocks[h-1].header.time()+600 {
			t.Fatalf("block %d time %d", h, hdr.time())
		}
		if len(b.txs) != 1 || hdr.merkleRoot() != b.txs[0].txid {
			t.Fatalf("block %d merkle root is not its coinbase txid", h)
		}
		cb := b.txs[0]
		if !bytes.HasPrefix(cb.inputs[0].script, scriptNumPush(int64(h))) {
			t.Fatalf("block %d coinbase lacks BIP34 height: %x", h, cb.inputs[0].script)
		}
		want := BurnScript
		switch h {
		case 1, 3:
			want = scriptOf(t, testAddr1)
		case 2:
			want = scriptOf(t, testAddr2)
		}
		if !bytes.Equal(cb.outputs[0].script, want) || cb.outputs[0].value != DefaultCoinbaseValue {
			t.Fatalf("block %d coinbase pays %d to %x, want %x", h, cb.outputs[0].value, cb.outputs[0].script, want)
		}
	}
	for addr, want := range map[string]int64{testAddr1: 2 * DefaultCoinbaseValue, testAddr2: DefaultCoinbaseValue} {
		got, err := s.Balance(addr)
		if err != nil || got != want {
			t.Fatalf("balance %s = %d, %v; want %d", addr, got, err, want)
		}
	}
}

func TestConfigVariants(t *testing.T) {
	s := newTestServer(t, Config{InitialBlocks: -1, MaturityBlocks: -1})
	if s.Height() != 0 {
		t.Fatalf("height %d, want 0", s.Height())
	}
	s = newTestServer(t, Config{Addresses: []string{testAddr1}, InitialBlocks: 2, MaturityBlocks: 5, CoinbaseValue: 1234})
	if s.Height() != 7 {
		t.Fatalf("height %d, want 7", s.Height())
	}
	if b, _ := s.Balance(testAddr1); b != 2468 {
		t.Fatalf("balance %d, want 2468", b)
	}
	if _, err := New(Config{Addresses: []string{"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt081"}}); err == nil {
		t.Fatal("bad checksum accepted")
	}
	if _, err := New(Config{Addresses: []string{"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"}}); err == nil {
		t.Fatal("mainnet address accepted")
	}
}

func TestMerkleRootByHand(t *testing.T) {
	leaf := func(i byte) [32]byte { return sha256.Sum256([]byte{i}) }
	a, b, c := leaf(1), leaf(2), leaf(3)
	if merkleRoot([][32]byte{a}) != a {
		t.Fatal("single leaf")
	}
	if got, want := merkleRoot([][32]byte{a, b, c}), hashPair(hashPair(a, b), hashPair(c, c)); got != want {
		t.Fatal("three leaves")
	}
	var buf []byte
	buf = append(append(buf, a[:]...), b[:]...)
	first := sha256.Sum256(buf)
	if sha256.Sum256(first[:]) != hashPair(a, b) {
		t.Fatal("hashPair is not sha256d(left||right)")
	}
}

// coinbaseOut returns the wallet coinbase output of the block at height.
func coinbaseOut(s *Server, height int) outPoint {
	return outPoint{hash: s.chain.blocks[height].txs[0].txid, index: 0}
}

func acceptTx(t *testing.T, s *Server, tx *transaction) *txRecord {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, added, err := s.chain.accept(tx)
	if err != nil || !added {
		t.Fatalf("accept %s: added=%v err=%v", hashHex(tx.txid), added, err)
	}
	return rec
}

func TestMerkleProofsInBlocks(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8, 11} {
		t.Run(fmt.Sprint(n, "txs"), func(t *testing.T) {
			s := newTestServer(t, Config{Addresses: []string{testAddr1}, InitialBlocks: 10})
			for i := range n - 1 {
				tx := testSpend([]outPoint{coinbaseOut(s, i+1)}, []txOut{{value: DefaultCoinbaseValue - 1000, script: scriptOf(t, testAddr2)}})
				acceptTx(t, s, tx)
			}
			s.Mine(1)
			b := s.chain.tip()
			if len(b.txs) != n {
				t.Fatalf("block has %d txs, want %d", len(b.txs), n)
			}
			if got := b.txs[0].outputs[0].value; got != DefaultCoinbaseValue+int64(n-1)*1000 {
				t.Fatalf("coinbase value %d does not include fees", got)
			}
			for pos, tx := range b.txs {
				branch, gotPos, err := s.chain.merkleProof(tx.txid, s.Height())
				if err != nil || gotPos != pos {
					t.Fatalf("proof for tx %d: pos %d err %v", pos, gotPos, err)
				}
				if n == 1 && len(branch) != 0 {
					t.Fatalf("single-tx block has branch %x", branch)
				}
				if rootFromBranch(tx.txid, branch, pos) != b.header.merkleRoot() {
					t.Fatalf("tx %d of %d: proof does not reach the header's merkle root", pos, n)
				}
				// A wrong position must not verify (except where duplication
				// makes the last odd node its own sibling).
				if n > 1 && rootFromBranch(tx.txid, branch, pos^1) == b.header.merkleRoot() && !(pos == n-1 && pos%2 == 0) {
					t.Fatalf("tx %d verifies at wrong position", pos)
				}
			}
			if _, _, err := s.chain.merkleProof(b.txs[0].txid, s.Height()-1); err == nil {
				t.Fatal("proof at wrong height succeeded")
			}
		})
	}
}

func TestAcceptRules(t *testing.T) {
	s := newTestServer(t, Config{Addresses: []string{testAddr1}, InitialBlocks: 2, MaturityBlocks: 99})
	// Tip 101: block 1 and 2 coinbases are mature for the next block (102),
	// since 102-2 = 100.
	pay := func(v int64) []txOut { return []txOut{{value: v, script: scriptOf(t, testAddr2)}} }
	reject := func(tx *transaction, reason string) {
		t.Helper()
		s.mu.Lock()
		_, _, err := s.chain.accept(tx)
		s.mu.Unlock()
		var rej *rejectError
		if !errors.As(err, &rej) || rej.reason != reason {
			t.Fatalf("accept: err %v, want reject %q", err, reason)
		}
	}
	reject(testSpend([]outPoint{{index: 0}}, pay(1)), "bad-txns-inputs-missingorspent")
	reject(testSpend([]outPoint{coinbaseOut(s, 1)}, pay(DefaultCoinbaseValue+1)), "bad-txns-in-belowout")
	reject(testSpend([]outPoint{coinbaseOut(s, 1), coinbaseOut(s, 1)}, pay(1)), "bad-txns-inputs-duplicate")
	reject(newCoinbase(500, 1, BurnScript), "coinbase")
	young := coinbaseOut(s, s.Height()) // burn coinbase of the tip: immature
	reject(testSpend([]outPoint{young}, pay(1)), "bad-txns-premature-spend-of-coinbase")

	tx := testSpend([]outPoint{coinbaseOut(s, 1)}, pay(DefaultCoinbaseValue-500))
	acceptTx(t, s, tx)
	s.mu.Lock()
	if _, added, err := s.chain.accept(tx); err != nil || added {
		t.Fatalf("re-accept of mempool tx: added=%v err=%v", added, err)
	}
	s.mu.Unlock()
	reject(testSpend([]outPoint{coinbaseOut(s, 1)}, pay(1)), "txn-mempool-conflict")
	// Child of a mempool tx is fine and gets height -1 in histories.
	child := testSpend([]outPoint{{hash: tx.txid, index: 0}}, pay(DefaultCoinbaseValue-1000))
	acceptTx(t, s, child)
	s.mu.Lock()
	hist := s.chain.history(ScriptHash(scriptOf(t, testAddr2)))
	s.mu.Unlock()
	if len(hist) != 2 || hist[0].Height != 0 || hist[1].Height != -1 || *hist[0].Fee != 500 || *hist[1].Fee != 500 {
		t.Fatalf("mempool history %+v", hist)
	}
	s.Mine(1)
	reject(tx, "transaction already in block chain")
	reject(testSpend([]outPoint{coinbaseOut(s, 1)}, pay(1)), "bad-txns-inputs-missingorspent")
	if len(s.Mempool()) != 0 {
		t.Fatalf("mempool not empty after mining: %v", s.Mempool())
	}
}

func TestHistoryIncludesSpends(t *testing.T) {
	s := newTestServer(t, Config{Addresses: []string{testAddr1}})
	sh1 := ScriptHash(scriptOf(t, testAddr1))
	sh2 := ScriptHash(scriptOf(t, testAddr2))
	tx := testSpend([]outPoint{coinbaseOut(s, 1)}, []txOut{
		{value: 100_000_000, script: scriptOf(t, testAddr2)},
		{value: DefaultCoinbaseValue - 100_000_000 - 2000, script: scriptOf(t, testAddr1)},
	})
	acceptTx(t, s, tx)
	check := func(sh string, want []historyItem, conf, unconf int64) {
		t.Helper()
		s.mu.Lock()
		defer s.mu.Unlock()
		got := s.chain.history(sh)
		if len(got) != len(want) {
			t.Fatalf("history %+v, want %+v", got, want)
		}
		var pre string
		for i := range got {
			if got[i].TxHash != want[i].TxHash || got[i].Height != want[i].Height {
				t.Fatalf("history[%d] %+v, want %+v", i, got[i], want[i])
			}
			pre += fmt.Sprintf("%s:%d:", want[i].TxHash, want[i].Height)
		}
		sum := sha256.Sum256([]byte(pre))
		if st := s.chain.status(sh); st != hex.EncodeToString(sum[:]) {
			t.Fatalf("status %s, want sha256(%q)", st, pre)
		}
		if c, u := s.chain.balance(sh); c != conf || u != unconf {
			t.Fatalf("balance %d/%d, want %d/%d", c, u, conf, unconf)
		}
	}
	cbID := hashHex(coinbaseOut(s, 1).hash)
	txID := hashHex(tx.txid)
	check(sh1, []historyItem{{TxHash: cbID, Height: 1}, {TxHash: txID, Height: 0}}, DefaultCoinbaseValue, -100_000_000-2000)
	check(sh2, []historyItem{{TxHash: txID, Height: 0}}, 0, 100_000_000)
	s.Mine(1)
	check(sh1, []historyItem{{TxHash: cbID, Height: 1}, {TxHash: txID, Height: 102}}, DefaultCoinbaseValue-100_000_000-2000, 0)
	check(sh2, []historyItem{{TxHash: txID, Height: 102}}, 100_000_000, 0)
	s.mu.Lock()
	if st := s.chain.status(ScriptHash([]byte{0x00, 0x14})); st != "" {
		t.Fatalf("status of unknown script %q, want empty", st)
	}
	s.mu.Unlock()
}
