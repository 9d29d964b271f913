//go:build !purego

#include "textflag.h"

// func prefetchSlot(e *entry)
//
// An entry is 24 bytes and may straddle two cache lines: fetch the lines
// of its first and its last byte (the same line for most slots).
TEXT ·prefetchSlot(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ e+0(FP), AX
	PREFETCHT0 (AX)
	PREFETCHT0 23(AX)
	RET
