package regtest

import (
	"encoding/hex"
	"strings"
	"testing"
)

// Vectors from BIP173 and BIP350 (cross-checked with the reference
// implementation shipped in Electrum's segwit_addr.py).
func TestDecodeSegwitAddressValid(t *testing.T) {
	tests := []struct {
		hrp, addr, script string
	}{
		{"bc", "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"},
		{"bc", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"},
		{"tb", "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"},
		{"tb", "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy", "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433"},
		{"bc", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"},
		{"bc", "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y", "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6"},
		{"bc", "BC1SW50QGDZ25J", "6002751e"},
		{"bcrt", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", "0014751e76e8199196d454941c45d1b3a323f1433bd6"},
		{"bcrt", "bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0scjhmyt", "0020000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
	}
	for _, tc := range tests {
		v, prog, err := decodeSegwitAddress(tc.hrp, tc.addr)
		if err != nil {
			t.Errorf("decode %s: %v", tc.addr, err)
			continue
		}
		if got := hex.EncodeToString(segwitScript(v, prog)); got != tc.script {
			t.Errorf("decode %s: script %s, want %s", tc.addr, got, tc.script)
		}
	}
}

func TestDecodeSegwitAddressInvalid(t *testing.T) {
	tests := []struct {
		hrp, addr, why string
	}{
		{"bc", "tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty", "wrong hrp"},
		{"bc", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "bad checksum"},
		{"bc", "BC13W508D6QEJXTDG4Y5R3ZARVARY0C5XW7KN40WF2", "witness version 17"},
		{"bc", "bc1rw5uspcuh", "program too short"},
		{"bc", "bc10w508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kw5rljs90", "program too long"},
		{"bc", "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P", "v0 program of 16 bytes"},
		{"tb", "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7", "mixed case"},
		{"bc", "bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du", "padding over 4 bits"},
		{"tb", "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3pjxtptv", "non-zero padding"},
		{"bc", "bc1gmk9yu", "empty data"},
		{"bc", "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx", "v1 with bech32 checksum"},
		{"bc", "BC1SW50QA3JX3S", "v16 with bech32 checksum"},
		{"bcrt", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt081", "bad checksum"},
		{"bcrt", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt08", "truncated"},
		{"bcrt", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt08b", "invalid character b"},
		{"bcrt", "bcrt1" + strings.Repeat("q", 90), "too long"},
	}
	for _, tc := range tests {
		if v, prog, err := decodeSegwitAddress(tc.hrp, tc.addr); err == nil {
			t.Errorf("decode %s (%s): got v%d %x, want error", tc.addr, tc.why, v, prog)
		}
	}
}

func TestAddressScript(t *testing.T) {
	script, err := AddressScript("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(script), "0014751e76e8199196d454941c45d1b3a323f1433bd6"; got != want {
		t.Fatalf("script %s, want %s", got, want)
	}
	if _, err := AddressScript("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"); err == nil {
		t.Fatal("mainnet address accepted as regtest")
	}
}

func TestScriptHashIsReversedSHA256(t *testing.T) {
	// sha256("") is e3b0c442…7852b855; the script hash is its reversal.
	if got, want := ScriptHash(nil), "55b852781b9995a44c939b64e441ae2724b96f99c8f4fb9a141cfc9842c4b0e3"; got != want {
		t.Fatalf("ScriptHash(empty) = %s, want %s", got, want)
	}
}

func TestSegwitAddressEncodesBIP173Vector(t *testing.T) {
	program, _ := hex.DecodeString("751e76e8199196d454941c45d1b3a323f1433bd6")
	got, err := SegwitAddress("bc", 0, program)
	if err != nil || got != "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4" {
		t.Fatalf("SegwitAddress = %q, %v", got, err)
	}
	addr, err := SegwitAddress(RegtestHRP, 0, program)
	if err != nil {
		t.Fatal(err)
	}
	script, err := AddressScript(addr)
	if err != nil || hex.EncodeToString(script) != "0014751e76e8199196d454941c45d1b3a323f1433bd6" {
		t.Fatalf("round trip through %s: %x, %v", addr, script, err)
	}
}
