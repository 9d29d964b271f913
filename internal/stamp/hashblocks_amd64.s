// Hand-written, not generated: SHA-256 of whole 64-byte blocks for
// verification (blocksSHANI in hashblocks_amd64.go), one message at a time.
// The structure is the x86 SHA extensions' reference sequence (Intel's
// white paper, as in Linux's sha256_ni_asm.S): four rounds per step, with
// the message schedule of later words computed alongside. It is checked
// against crypto/sha256 on random inputs in hashblocks_test.go.

//go:build !purego

#include "textflag.h"

DATA blockK<>+0x0(SB)/4, $0x428a2f98
DATA blockK<>+0x4(SB)/4, $0x71374491
DATA blockK<>+0x8(SB)/4, $0xb5c0fbcf
DATA blockK<>+0xc(SB)/4, $0xe9b5dba5
DATA blockK<>+0x10(SB)/4, $0x3956c25b
DATA blockK<>+0x14(SB)/4, $0x59f111f1
DATA blockK<>+0x18(SB)/4, $0x923f82a4
DATA blockK<>+0x1c(SB)/4, $0xab1c5ed5
DATA blockK<>+0x20(SB)/4, $0xd807aa98
DATA blockK<>+0x24(SB)/4, $0x12835b01
DATA blockK<>+0x28(SB)/4, $0x243185be
DATA blockK<>+0x2c(SB)/4, $0x550c7dc3
DATA blockK<>+0x30(SB)/4, $0x72be5d74
DATA blockK<>+0x34(SB)/4, $0x80deb1fe
DATA blockK<>+0x38(SB)/4, $0x9bdc06a7
DATA blockK<>+0x3c(SB)/4, $0xc19bf174
DATA blockK<>+0x40(SB)/4, $0xe49b69c1
DATA blockK<>+0x44(SB)/4, $0xefbe4786
DATA blockK<>+0x48(SB)/4, $0xfc19dc6
DATA blockK<>+0x4c(SB)/4, $0x240ca1cc
DATA blockK<>+0x50(SB)/4, $0x2de92c6f
DATA blockK<>+0x54(SB)/4, $0x4a7484aa
DATA blockK<>+0x58(SB)/4, $0x5cb0a9dc
DATA blockK<>+0x5c(SB)/4, $0x76f988da
DATA blockK<>+0x60(SB)/4, $0x983e5152
DATA blockK<>+0x64(SB)/4, $0xa831c66d
DATA blockK<>+0x68(SB)/4, $0xb00327c8
DATA blockK<>+0x6c(SB)/4, $0xbf597fc7
DATA blockK<>+0x70(SB)/4, $0xc6e00bf3
DATA blockK<>+0x74(SB)/4, $0xd5a79147
DATA blockK<>+0x78(SB)/4, $0x6ca6351
DATA blockK<>+0x7c(SB)/4, $0x14292967
DATA blockK<>+0x80(SB)/4, $0x27b70a85
DATA blockK<>+0x84(SB)/4, $0x2e1b2138
DATA blockK<>+0x88(SB)/4, $0x4d2c6dfc
DATA blockK<>+0x8c(SB)/4, $0x53380d13
DATA blockK<>+0x90(SB)/4, $0x650a7354
DATA blockK<>+0x94(SB)/4, $0x766a0abb
DATA blockK<>+0x98(SB)/4, $0x81c2c92e
DATA blockK<>+0x9c(SB)/4, $0x92722c85
DATA blockK<>+0xa0(SB)/4, $0xa2bfe8a1
DATA blockK<>+0xa4(SB)/4, $0xa81a664b
DATA blockK<>+0xa8(SB)/4, $0xc24b8b70
DATA blockK<>+0xac(SB)/4, $0xc76c51a3
DATA blockK<>+0xb0(SB)/4, $0xd192e819
DATA blockK<>+0xb4(SB)/4, $0xd6990624
DATA blockK<>+0xb8(SB)/4, $0xf40e3585
DATA blockK<>+0xbc(SB)/4, $0x106aa070
DATA blockK<>+0xc0(SB)/4, $0x19a4c116
DATA blockK<>+0xc4(SB)/4, $0x1e376c08
DATA blockK<>+0xc8(SB)/4, $0x2748774c
DATA blockK<>+0xcc(SB)/4, $0x34b0bcb5
DATA blockK<>+0xd0(SB)/4, $0x391c0cb3
DATA blockK<>+0xd4(SB)/4, $0x4ed8aa4a
DATA blockK<>+0xd8(SB)/4, $0x5b9cca4f
DATA blockK<>+0xdc(SB)/4, $0x682e6ff3
DATA blockK<>+0xe0(SB)/4, $0x748f82ee
DATA blockK<>+0xe4(SB)/4, $0x78a5636f
DATA blockK<>+0xe8(SB)/4, $0x84c87814
DATA blockK<>+0xec(SB)/4, $0x8cc70208
DATA blockK<>+0xf0(SB)/4, $0x90befffa
DATA blockK<>+0xf4(SB)/4, $0xa4506ceb
DATA blockK<>+0xf8(SB)/4, $0xbef9a3f7
DATA blockK<>+0xfc(SB)/4, $0xc67178f2
GLOBL blockK<>(SB), RODATA|NOPTR, $256

// Byte order of each 32-bit message word: big-endian to little-endian.
DATA blockBswap<>+0x00(SB)/8, $0x0405060700010203
DATA blockBswap<>+0x08(SB)/8, $0x0c0d0e0f08090a0b
GLOBL blockBswap<>(SB), RODATA|NOPTR, $16

// func blocksSHANI(h *[8]uint32, p []byte)
// len(p) must be a multiple of 64.
//
// Registers: X0 the message words plus round constants (SHA256RNDS2's
// implicit operand), X1 and X2 the state as ABEF and CDGH, X3 to X6 the
// last 16 message words, X7 scratch, X8 the byte-swap mask, X9 and X10 the
// state before the block.
TEXT ·blocksSHANI(SB), NOSPLIT, $0-32
	MOVQ h+0(FP), DI
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), DX
	SHRQ $6, DX
	JZ   done
	MOVOU blockBswap<>(SB), X8

	MOVOU 0(DI), X1  // DCBA
	MOVOU 16(DI), X2 // HGFE
	MOVO X1, X7
	PUNPCKLQDQ X2, X1 // FEBA
	PUNPCKHQDQ X7, X2 // DCHG
	PSHUFD $0x1b, X1, X1 // ABEF
	PSHUFD $0xb1, X2, X2 // CDGH

loop:
	MOVO X1, X9
	MOVO X2, X10

	// rounds 0 to 3
	MOVOU 0(SI), X3
	PSHUFB X8, X3
	MOVOU blockK<>+0x0(SB), X0
	PADDL X3, X0
	SHA256RNDS2 X0, X1, X2
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	// rounds 4 to 7
	MOVOU 16(SI), X4
	PSHUFB X8, X4
	MOVOU blockK<>+0x10(SB), X0
	PADDL X4, X0
	SHA256RNDS2 X0, X1, X2
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X4, X3
	// rounds 8 to 11
	MOVOU 32(SI), X5
	PSHUFB X8, X5
	MOVOU blockK<>+0x20(SB), X0
	PADDL X5, X0
	SHA256RNDS2 X0, X1, X2
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X5, X4
	// rounds 12 to 15
	MOVOU 48(SI), X6
	PSHUFB X8, X6
	MOVOU blockK<>+0x30(SB), X0
	PADDL X6, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X6, X7
	PALIGNR $4, X5, X7
	PADDL X7, X3
	SHA256MSG2 X6, X3
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X6, X5
	// rounds 16 to 19
	MOVOU blockK<>+0x40(SB), X0
	PADDL X3, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X3, X7
	PALIGNR $4, X6, X7
	PADDL X7, X4
	SHA256MSG2 X3, X4
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X3, X6
	// rounds 20 to 23
	MOVOU blockK<>+0x50(SB), X0
	PADDL X4, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X4, X7
	PALIGNR $4, X3, X7
	PADDL X7, X5
	SHA256MSG2 X4, X5
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X4, X3
	// rounds 24 to 27
	MOVOU blockK<>+0x60(SB), X0
	PADDL X5, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X5, X7
	PALIGNR $4, X4, X7
	PADDL X7, X6
	SHA256MSG2 X5, X6
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X5, X4
	// rounds 28 to 31
	MOVOU blockK<>+0x70(SB), X0
	PADDL X6, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X6, X7
	PALIGNR $4, X5, X7
	PADDL X7, X3
	SHA256MSG2 X6, X3
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X6, X5
	// rounds 32 to 35
	MOVOU blockK<>+0x80(SB), X0
	PADDL X3, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X3, X7
	PALIGNR $4, X6, X7
	PADDL X7, X4
	SHA256MSG2 X3, X4
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X3, X6
	// rounds 36 to 39
	MOVOU blockK<>+0x90(SB), X0
	PADDL X4, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X4, X7
	PALIGNR $4, X3, X7
	PADDL X7, X5
	SHA256MSG2 X4, X5
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X4, X3
	// rounds 40 to 43
	MOVOU blockK<>+0xa0(SB), X0
	PADDL X5, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X5, X7
	PALIGNR $4, X4, X7
	PADDL X7, X6
	SHA256MSG2 X5, X6
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X5, X4
	// rounds 44 to 47
	MOVOU blockK<>+0xb0(SB), X0
	PADDL X6, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X6, X7
	PALIGNR $4, X5, X7
	PADDL X7, X3
	SHA256MSG2 X6, X3
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X6, X5
	// rounds 48 to 51
	MOVOU blockK<>+0xc0(SB), X0
	PADDL X3, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X3, X7
	PALIGNR $4, X6, X7
	PADDL X7, X4
	SHA256MSG2 X3, X4
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	SHA256MSG1 X3, X6
	// rounds 52 to 55
	MOVOU blockK<>+0xd0(SB), X0
	PADDL X4, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X4, X7
	PALIGNR $4, X3, X7
	PADDL X7, X5
	SHA256MSG2 X4, X5
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	// rounds 56 to 59
	MOVOU blockK<>+0xe0(SB), X0
	PADDL X5, X0
	SHA256RNDS2 X0, X1, X2
	MOVO X5, X7
	PALIGNR $4, X4, X7
	PADDL X7, X6
	SHA256MSG2 X5, X6
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1
	// rounds 60 to 63
	MOVOU blockK<>+0xf0(SB), X0
	PADDL X6, X0
	SHA256RNDS2 X0, X1, X2
	PSHUFD $0x0e, X0, X0
	SHA256RNDS2 X0, X2, X1

	PADDL X9, X1
	PADDL X10, X2
	ADDQ $64, SI
	DECQ DX
	JNZ  loop

	MOVO X1, X7
	PUNPCKLQDQ X2, X1 // GHEF
	PUNPCKHQDQ X7, X2 // ABCD
	PSHUFD $0xb1, X1, X1 // HGFE
	PSHUFD $0x1b, X2, X2 // DCBA
	MOVOU X2, 0(DI)
	MOVOU X1, 16(DI)

done:
	RET
