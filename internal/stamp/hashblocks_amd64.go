//go:build !purego

package stamp

// blocksSHANI applies SHA-256's compression function to state h and each
// 64-byte block of p in turn, with the x86 SHA extensions
// (hashblocks_amd64.s, hand-written). len(p) must be a multiple of 64.
//
//go:noescape
func blocksSHANI(h *[8]uint32, p []byte)

// haveBlocks reports whether blocks may be called: the CPU has what
// blocksSHANI uses (the same instructions as searchSHANI's, SSE4.1 and
// SSSE3 included). A variable so that tests can force the fallback.
var haveBlocks = hasSHANI()

// blocks is blocksSHANI; only called when haveBlocks is set.
func blocks(h *[8]uint32, p []byte) { blocksSHANI(h, p) }
