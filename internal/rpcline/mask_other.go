//go:build !amd64 || purego

package rpcline

// haveMaskAVX2 is false: there is no hand-written version here. A variable
// so that it matches amd64's.
var haveMaskAVX2 = false

// specialMasks sets bit j of masks[k] for byte j of the k-th 64-byte block
// of p if special8 marks it (see specialMask64Go); p must hold
// 64*len(masks) bytes at least.
func specialMasks(p []byte, masks []uint64) { specialMasksGo(p, masks) }
