package regtest

import (
	"errors"
	"fmt"
	"strings"
)

// RegtestHRP is the human-readable part of Bitcoin regtest segwit addresses.
const RegtestHRP = "bcrt"

const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// bech32 checksum constants: BIP173 (bech32) and BIP350 (bech32m).
const (
	bech32Const  = 1
	bech32mConst = 0x2bc830a3
)

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

func bech32HRPExpand(hrp string) []byte {
	out := make([]byte, 0, 2*len(hrp)+1)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]&31)
	}
	return out
}

// bech32Decode splits and checksums a bech32 or bech32m string. It returns
// the lower-case HRP, the 5-bit data without checksum, and the checksum
// constant that matched (bech32Const or bech32mConst).
func bech32Decode(s string) (hrp string, data []byte, checksum uint32, err error) {
	if len(s) > 90 {
		return "", nil, 0, fmt.Errorf("bech32: length %d exceeds 90", len(s))
	}
	hasLower, hasUpper := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 {
			return "", nil, 0, fmt.Errorf("bech32: invalid character 0x%02x at %d", c, i)
		}
		if c >= 'a' && c <= 'z' {
			hasLower = true
		}
		if c >= 'A' && c <= 'Z' {
			hasUpper = true
		}
	}
	if hasLower && hasUpper {
		return "", nil, 0, errors.New("bech32: mixed case")
	}
	s = strings.ToLower(s)
	sep := strings.LastIndexByte(s, '1')
	if sep < 1 {
		return "", nil, 0, errors.New("bech32: missing or empty human-readable part")
	}
	if len(s)-sep-1 < 6 {
		return "", nil, 0, errors.New("bech32: data part shorter than checksum")
	}
	hrp = s[:sep]
	values := make([]byte, 0, len(s)-sep-1)
	for i := sep + 1; i < len(s); i++ {
		d := strings.IndexByte(bech32Charset, s[i])
		if d < 0 {
			return "", nil, 0, fmt.Errorf("bech32: invalid data character %q at %d", s[i], i)
		}
		values = append(values, byte(d))
	}
	switch c := bech32Polymod(append(bech32HRPExpand(hrp), values...)); c {
	case bech32Const, bech32mConst:
		checksum = c
	default:
		return "", nil, 0, errors.New("bech32: invalid checksum")
	}
	return hrp, values[:len(values)-6], checksum, nil
}

// convertBits5to8 regroups 5-bit groups into bytes (BIP173 convertbits with
// pad=false): leftover padding must be under 5 bits and all zero.
func convertBits5to8(data []byte) ([]byte, error) {
	acc, bits := uint32(0), uint(0)
	out := make([]byte, 0, len(data)*5/8)
	for _, v := range data {
		acc = acc<<5 | uint32(v)
		bits += 5
		for bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	if bits >= 5 {
		return nil, errors.New("excess padding")
	}
	if acc&((1<<bits)-1) != 0 {
		return nil, errors.New("non-zero padding")
	}
	return out, nil
}

// decodeSegwitAddress decodes a BIP173/BIP350 segwit address whose HRP must
// equal wantHRP, returning the witness version and program.
func decodeSegwitAddress(wantHRP, addr string) (version int, program []byte, err error) {
	hrp, data, checksum, err := bech32Decode(addr)
	if err != nil {
		return 0, nil, fmt.Errorf("address %q: %w", addr, err)
	}
	if hrp != wantHRP {
		return 0, nil, fmt.Errorf("address %q: human-readable part %q, want %q", addr, hrp, wantHRP)
	}
	if len(data) < 1 {
		return 0, nil, fmt.Errorf("address %q: empty data", addr)
	}
	version = int(data[0])
	if version > 16 {
		return 0, nil, fmt.Errorf("address %q: witness version %d out of range", addr, version)
	}
	program, err = convertBits5to8(data[1:])
	if err != nil {
		return 0, nil, fmt.Errorf("address %q: witness program: %w", addr, err)
	}
	if len(program) < 2 || len(program) > 40 {
		return 0, nil, fmt.Errorf("address %q: witness program length %d", addr, len(program))
	}
	if version == 0 && len(program) != 20 && len(program) != 32 {
		return 0, nil, fmt.Errorf("address %q: v0 witness program length %d, want 20 or 32", addr, len(program))
	}
	if version == 0 && checksum != bech32Const {
		return 0, nil, fmt.Errorf("address %q: v0 address must use bech32, not bech32m", addr)
	}
	if version != 0 && checksum != bech32mConst {
		return 0, nil, fmt.Errorf("address %q: v%d address must use bech32m, not bech32", addr, version)
	}
	return version, program, nil
}

// segwitScript returns the scriptPubKey for a witness version and program:
// OP_n followed by a push of the program.
func segwitScript(version int, program []byte) []byte {
	op := byte(0x00)
	if version > 0 {
		op = 0x50 + byte(version)
	}
	return append([]byte{op, byte(len(program))}, program...)
}

// AddressScript decodes a Bitcoin regtest segwit address ("bcrt1…":
// P2WPKH, P2WSH, or a bech32m v1+ program) into its scriptPubKey. Addresses
// of other networks and bad checksums are rejected with an error.
func AddressScript(addr string) ([]byte, error) {
	v, prog, err := decodeSegwitAddress(RegtestHRP, addr)
	if err != nil {
		return nil, err
	}
	return segwitScript(v, prog), nil
}

// SegwitAddress encodes a segwit program as an address for hrp: version 0
// with bech32 (BIP173), versions 1 to 16 with bech32m (BIP350).
func SegwitAddress(hrp string, version int, program []byte) (string, error) {
	if version < 0 || version > 16 || len(program) < 2 || len(program) > 40 {
		return "", fmt.Errorf("segwit address: version %d with a %d-byte program", version, len(program))
	}
	data := []byte{byte(version)}
	acc, nbits := 0, 0
	for _, b := range program {
		acc = acc<<8 | int(b)
		nbits += 8
		for nbits >= 5 {
			nbits -= 5
			data = append(data, byte(acc>>nbits)&31)
		}
	}
	if nbits > 0 {
		data = append(data, byte(acc<<(5-nbits))&31)
	}
	values := append(bech32HRPExpand(hrp), data...)
	values = append(values, 0, 0, 0, 0, 0, 0)
	c := uint32(bech32Const)
	if version > 0 {
		c = bech32mConst
	}
	mod := bech32Polymod(values) ^ c
	var s strings.Builder
	s.WriteString(hrp)
	s.WriteByte('1')
	for _, d := range data {
		s.WriteByte(bech32Charset[d])
	}
	for i := range 6 {
		s.WriteByte(bech32Charset[(mod>>(5*(5-i)))&31])
	}
	return s.String(), nil
}
