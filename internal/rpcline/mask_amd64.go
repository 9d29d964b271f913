//go:build !purego

package rpcline

import "golang.org/x/sys/cpu"

// specialMasksAVX2 is specialMasks with AVX2 (mask_amd64.s, hand-written):
// per block, two 32-byte compares per test and VPMOVMSKB, instead of eight
// words of bit tricks. It marks exactly the bytes a string does not take
// as they are, never a plain byte above one.
//
//go:noescape
func specialMasksAVX2(p []byte, masks []uint64)

// haveMaskAVX2 reports whether specialMasks uses specialMasksAVX2. A
// variable so that tests can force the portable version.
var haveMaskAVX2 = cpu.X86.HasAVX2

// specialMasks sets bit j of masks[k] for byte j of the k-th 64-byte block
// of p if special8 marks it (see specialMask64Go); p must hold
// 64*len(masks) bytes at least.
func specialMasks(p []byte, masks []uint64) {
	if haveMaskAVX2 {
		specialMasksAVX2(p[:64*len(masks)], masks)
		return
	}
	specialMasksGo(p, masks)
}
