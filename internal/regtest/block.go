package regtest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// headerSize is the size of a serialized block header.
const headerSize = 80

// Regtest chain constants.
const (
	// GenesisHash is the hash of the Bitcoin regtest genesis block.
	GenesisHash = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"

	genesisHeaderHex = "0100000000000000000000000000000000000000000000000000000000000000" +
		"000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa" +
		"4b1e5e4adae5494dffff7f2002000000"

	// genesisCoinbaseHex is the coinbase transaction of the genesis block
	// (the same on mainnet and regtest). Its txid is the genesis merkle root.
	genesisCoinbaseHex = "01000000010000000000000000000000000000000000000000000000000000000000000000" +
		"ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72" +
		"206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f205" +
		"2a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4c" +
		"ef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000"

	blockVersion  = 0x20000000
	regtestBits   = 0x207fffff
	blockInterval = 600 // seconds between consecutive block timestamps
)

// blockHeader is a serialized 80-byte block header.
type blockHeader [headerSize]byte

func (h *blockHeader) hash() [32]byte { return sha256d(h[:]) }

func (h *blockHeader) prevHash() (p [32]byte) {
	copy(p[:], h[4:36])
	return p
}

func (h *blockHeader) merkleRoot() (m [32]byte) {
	copy(m[:], h[36:68])
	return m
}

func (h *blockHeader) time() uint32 { return binary.LittleEndian.Uint32(h[68:72]) }

func (h *blockHeader) hex() string { return hex.EncodeToString(h[:]) }

// newHeader serializes a block header.
func newHeader(version uint32, prev, merkle [32]byte, time, bits, nonce uint32) blockHeader {
	var h blockHeader
	binary.LittleEndian.PutUint32(h[0:4], version)
	copy(h[4:36], prev[:])
	copy(h[36:68], merkle[:])
	binary.LittleEndian.PutUint32(h[68:72], time)
	binary.LittleEndian.PutUint32(h[72:76], bits)
	binary.LittleEndian.PutUint32(h[76:80], nonce)
	return h
}

// genesisHeader returns the regtest genesis header.
func genesisHeader() blockHeader {
	var h blockHeader
	b, err := hex.DecodeString(genesisHeaderHex)
	if err != nil || len(b) != headerSize {
		panic(fmt.Sprintf("regtest: bad genesis header constant: %v", err))
	}
	copy(h[:], b)
	return h
}

// hashPair returns sha256d(left || right), one merkle tree node.
func hashPair(left, right [32]byte) [32]byte {
	var buf [64]byte
	copy(buf[:32], left[:])
	copy(buf[32:], right[:])
	return sha256d(buf[:])
}

// nextLevel hashes one merkle tree level into the next, duplicating the last
// node of an odd-sized level as Bitcoin does.
func nextLevel(level [][32]byte) [][32]byte {
	next := make([][32]byte, 0, (len(level)+1)/2)
	for i := 0; i < len(level); i += 2 {
		right := level[i]
		if i+1 < len(level) {
			right = level[i+1]
		}
		next = append(next, hashPair(level[i], right))
	}
	return next
}

// merkleRoot computes the Bitcoin merkle root of txids (internal byte
// order). It panics on an empty list: every block has a coinbase.
func merkleRoot(leaves [][32]byte) [32]byte {
	if len(leaves) == 0 {
		panic("regtest: merkle root of no transactions")
	}
	level := leaves
	for len(level) > 1 {
		level = nextLevel(level)
	}
	return level[0]
}

// merkleBranch returns the sibling hashes from leaf pos up to (excluding)
// the root, the "merkle" list of blockchain.transaction.get_merkle.
func merkleBranch(leaves [][32]byte, pos int) [][32]byte {
	if pos < 0 || pos >= len(leaves) {
		panic(fmt.Sprintf("regtest: merkle branch position %d out of range [0,%d)", pos, len(leaves)))
	}
	branch := [][32]byte{}
	level := leaves
	for len(level) > 1 {
		sib := pos ^ 1
		if sib >= len(level) {
			sib = pos
		}
		branch = append(branch, level[sib])
		level = nextLevel(level)
		pos >>= 1
	}
	return branch
}

// rootFromBranch recomputes the merkle root from a leaf, its branch and its
// position, the way an SPV client (Electrum's verifier) does.
func rootFromBranch(leaf [32]byte, branch [][32]byte, pos int) [32]byte {
	h := leaf
	for _, sib := range branch {
		if pos&1 == 1 {
			h = hashPair(sib, h)
		} else {
			h = hashPair(h, sib)
		}
		pos >>= 1
	}
	return h
}
