package stamp

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// The verification hashes. A verifier hashes six SHA-256 blocks for a
// typical request (three for the body, three for the stamp's input), one
// message at a time, each depending on the one before. crypto/sha256 costs
// about 60 ns per block there, a third of it its per-call overhead (the
// digest's buffer, its copy in Sum, the padding written through Write). With
// the x86 SHA extensions these functions instead compress the blocks
// directly from the input and from one stack buffer for the last block or
// two, with blocks (hashblocks_amd64.s); elsewhere they use crypto/sha256.
// Either way the digests are SHA-256's.

// digestOf returns state h as a SHA-256 digest.
func digestOf(h *[8]uint32) (d [32]byte) {
	for i, v := range h {
		binary.BigEndian.PutUint32(d[4*i:], v)
	}
	return d
}

// sum256Pair returns the SHA-256 of a followed by b; haveBlocks must be set.
func sum256Pair(a, b []byte) [32]byte {
	h := initialState
	total := uint64(len(a)) + uint64(len(b))
	var buf [128]byte
	n := len(a) &^ 63
	if n > 0 {
		blocks(&h, a[:n])
	}
	k := copy(buf[:], a[n:])
	if k+len(b) >= 64 {
		m := copy(buf[k:64], b)
		blocks(&h, buf[:64])
		b = b[m:]
		n = len(b) &^ 63
		if n > 0 {
			blocks(&h, b[:n])
		}
		k = copy(buf[:], b[n:])
		clear(buf[k:64])
	} else {
		k += copy(buf[k:], b)
	}
	// k < 64 bytes are left in buf, followed by zeros.
	buf[k] = 0x80
	end := 64
	if k >= 56 {
		end = 128
	}
	binary.BigEndian.PutUint64(buf[end-8:end], total*8)
	blocks(&h, buf[:end])
	return digestOf(&h)
}

// BodyHasher computes body hashes (see BodyHash) of request bodies given in
// two parts, as a verifier finds them either side of the cut stamp member,
// without copying them together and without allocating. The zero value is
// ready to use; a BodyHasher is not safe for concurrent use.
type BodyHasher struct {
	fallback hash.Hash // crypto/sha256, where blocks is not available
	sum      []byte
}

// Sum returns BodyHash of head followed by tail.
func (bh *BodyHasher) Sum(head, tail []byte) (sum [32]byte) {
	if haveBlocks {
		return sum256Pair(head, tail)
	}
	if bh.fallback == nil {
		bh.fallback = sha256.New()
		bh.sum = make([]byte, 0, sha256.Size)
	}
	bh.fallback.Reset()
	bh.fallback.Write(head)
	bh.fallback.Write(tail)
	bh.sum = bh.fallback.Sum(bh.sum[:0])
	copy(sum[:], bh.sum)
	return sum
}

// digestBlocks is Digest with blocks. haveBlocks must be set and
// len(s.Resource) at most MaxResourceLen.
func (s *Stamp) digestBlocks(bodyHash *[32]byte) [32]byte {
	var d Digester
	d.layout(s.Resource)
	return d.sumBlocks(s, bodyHash)
}

// Digester computes stamp digests (Digest) as a verifier does, one after
// another for one resource: it keeps the hashed input laid out in a buffer
// of its own, with the parts that depend only on the resource (tag,
// version, resource, zeros and padding) written once, so that each digest
// writes only the stamp's own fields and compresses the blocks in one call.
// The zero value is ready to use; a Digester is not safe for concurrent use.
type Digester struct {
	// in is the hashed input: the prefix (whole blocks), then the counter
	// and the padding, one more block, as 8 + 1 + 8 bytes fit in one.
	in       [(83+MaxResourceLen+63)&^63 + 64]byte
	resource string // the resource laid out in in
	laid     bool
	scratch  []byte // for Digest, where blocks is not available
}

// Sum returns s.Digest(bodyHash).
func (d *Digester) Sum(s *Stamp, bodyHash *[32]byte) [32]byte {
	if !haveBlocks || len(s.Resource) > MaxResourceLen {
		if d.scratch == nil {
			d.scratch = make([]byte, 0, PrefixLen(MaxResourceLen)+8)
		}
		return s.Digest(bodyHash, d.scratch)
	}
	if !d.laid || s.Resource != d.resource {
		d.layout(s.Resource)
	}
	return d.sumBlocks(s, bodyHash)
}

// layout writes the parts of the input that depend only on resource.
func (d *Digester) layout(resource string) {
	clear(d.in[:])
	copy(d.in[:], Tag)
	d.in[len(Tag)] = Version
	const at = len(Tag) + 1 + 16 + SaltSize + 32
	d.in[at] = byte(len(resource))
	copy(d.in[at+1:], resource)
	p := PrefixLen(len(resource))
	d.in[p+8] = 0x80
	binary.BigEndian.PutUint64(d.in[p+56:], uint64(p+8)*8)
	d.resource, d.laid = resource, true
}

// sumBlocks writes s's own fields into the laid-out input and hashes it;
// s.Resource must be the one laid out.
func (d *Digester) sumBlocks(s *Stamp, bodyHash *[32]byte) [32]byte {
	const at = len(Tag) + 1
	binary.BigEndian.PutUint64(d.in[at:], s.Work)
	binary.BigEndian.PutUint64(d.in[at+8:], uint64(s.Time))
	copy(d.in[at+16:], s.Salt[:])
	copy(d.in[at+16+SaltSize:], bodyHash[:])
	p := PrefixLen(len(s.Resource))
	binary.BigEndian.PutUint64(d.in[p:], s.Counter)
	h := initialState
	blocks(&h, d.in[:p+64])
	return digestOf(&h)
}
