//go:build !purego

#include "textflag.h"

// func specialMasksAVX2(p []byte, masks []uint64)
//
// For each 64-byte block k of p (len(p) >= 64*len(masks)), bit j of
// masks[k] is set if byte j of the block is '"', '\\', below 0x20 or 0x80
// and above: as signed bytes, the last two are exactly those less than
// 0x20, one VPCMPGTB.
TEXT ·specialMasksAVX2(SB), NOSPLIT|NOFRAME, $0-48
	MOVQ p_base+0(FP), SI
	MOVQ masks_base+24(FP), DI
	MOVQ masks_len+32(FP), CX
	TESTQ CX, CX
	JZ done
	MOVL $0x22, AX
	MOVL $0x5c, BX
	MOVL $0x20, DX
	VMOVD AX, X2
	VMOVD BX, X3
	VMOVD DX, X4
	VPBROADCASTB X2, Y2
	VPBROADCASTB X3, Y3
	VPBROADCASTB X4, Y4

loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1

	VPCMPEQB Y0, Y2, Y5
	VPCMPEQB Y0, Y3, Y6
	VPCMPGTB Y0, Y4, Y7
	VPOR Y5, Y6, Y5
	VPOR Y5, Y7, Y5
	VPMOVMSKB Y5, AX

	VPCMPEQB Y1, Y2, Y8
	VPCMPEQB Y1, Y3, Y9
	VPCMPGTB Y1, Y4, Y10
	VPOR Y8, Y9, Y8
	VPOR Y8, Y10, Y8
	VPMOVMSKB Y8, BX

	SHLQ $32, BX
	ORQ BX, AX
	MOVQ AX, (DI)
	ADDQ $64, SI
	ADDQ $8, DI
	DECQ CX
	JNZ loop
	VZEROUPPER

done:
	RET
