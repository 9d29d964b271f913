//go:build !amd64 || purego

package stamp

// haveBlocks is false: the verification hashes use crypto/sha256, which
// has its own assembly for this architecture where it has one (the ARMv8
// SHA2 instructions on arm64). A variable so that it matches amd64's.
var haveBlocks = false

// blocks is never called without haveBlocks; it is the generic compression
// so that the package builds.
func blocks(h *[8]uint32, p []byte) {
	for ; len(p) >= 64; p = p[64:] {
		compress(h, p[:64])
	}
}
