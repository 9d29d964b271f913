package scriptedwallet

import (
	"encoding/json"
	"errors"
	"strings"
)

const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

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

// SegwitAddress encodes a segwit v0 program (BIP173 bech32) or a v1+ program
// (BIP350 bech32m) for hrp.
func SegwitAddress(hrp string, version int, program []byte) (string, error) {
	if version < 0 || version > 16 || len(program) < 2 || len(program) > 40 {
		return "", errors.New("bad segwit program")
	}
	data := []byte{byte(version)}
	acc, bits := 0, 0
	for _, b := range program {
		acc = acc<<8 | int(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			data = append(data, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		data = append(data, byte(acc<<(5-bits))&31)
	}
	var values []byte
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]>>5)
	}
	values = append(values, 0)
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]&31)
	}
	values = append(values, data...)
	values = append(values, 0, 0, 0, 0, 0, 0)
	c := uint32(1)
	if version > 0 {
		c = 0x2bc830a3
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

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
