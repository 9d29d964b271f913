package stamp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
)

// Version is the stamp format version this package implements.
const Version = 1

// Member is the name of the JSON-RPC request member that carries the stamp.
const Member = "pow"

// Tag starts every hashed input and separates this use of SHA-256 from any
// other.
const Tag = "electrum-hashcash"

// SaltSize is the length of a stamp's salt in bytes.
const SaltSize = 16

// MaxResourceLen is the longest resource name a stamp can carry.
const MaxResourceLen = 255

// MaxTextLen bounds the length of a stamp's text: version, two 20-digit
// decimals, the salt, a 20-digit counter, the resource and five separators.
const MaxTextLen = 1 + 20 + 20 + 2*SaltSize + 20 + MaxResourceLen + 5

// Stamp holds the fields of a version 1 stamp.
type Stamp struct {
	// Work is the number of hash attempts the stamp claims to be worth.
	Work uint64
	// Time is the minting time in Unix seconds.
	Time int64
	// Salt makes stamps for identical requests distinct.
	Salt [SaltSize]byte
	// Counter is the value found by the minter.
	Counter uint64
	// Resource names the server the stamp was minted for.
	Resource string
}

// ErrMalformed is wrapped by every error Parse returns.
var ErrMalformed = errors.New("malformed stamp")

// Parse decodes stamp text (the JSON string value, without quotes).
func Parse(text []byte) (Stamp, error) { return ParseKnown(text, "") }

// ParseKnown is Parse for a verifier that expects resource known: when the
// stamp names it, the result shares known's storage instead of allocating.
func ParseKnown(text []byte, known string) (Stamp, error) {
	if s, ok := parseWellFormed(text, known); ok {
		return s, nil
	}
	return parseOrExplain(text, known)
}

// parseWellFormed is ParseKnown for a stamp it accepts, in one pass over
// the text instead of splitting it at its colons first; ok is false for any
// text ParseKnown refuses (and for no other), whose error parseOrExplain
// then gives.
func parseWellFormed(text []byte, known string) (s Stamp, ok bool) {
	if len(text) > MaxTextLen || len(text) < 2 || text[0] != '1' || text[1] != ':' {
		return s, false
	}
	work, i, ok := decimalField(text, 2)
	if !ok || work == 0 {
		return s, false
	}
	t, i, ok := decimalField(text, i)
	if !ok || t > 1<<63-1 {
		return s, false
	}
	if len(text)-i <= 2*SaltSize || text[i+2*SaltSize] != ':' || !decodeLowerHex(s.Salt[:], text[i:i+2*SaltSize]) {
		return s, false
	}
	counter, i, ok := decimalField(text, i+2*SaltSize+1)
	if !ok {
		return s, false
	}
	rest := text[i:]
	if len(rest) == 0 || len(rest) > MaxResourceLen {
		return s, false
	}
	for _, c := range rest {
		if !resourceChars[c] {
			return s, false
		}
	}
	s.Work, s.Time, s.Counter = work, int64(t), counter
	if string(rest) == known {
		s.Resource = known
	} else {
		s.Resource = string(rest)
	}
	return s, true
}

// decimalField parses the decimal field of text at i, which a colon ends,
// as parseDecimal does, and returns its value and the index after the colon.
// It reads the digits once: a field of at most 19 digits, below 10^19,
// cannot overflow, and a longer one is parsed again by parseDecimal.
func decimalField(text []byte, i int) (v uint64, next int, ok bool) {
	j := i
	for j < len(text) {
		d := text[j] - '0'
		if d >= 10 {
			break
		}
		v = v*10 + uint64(d)
		j++
	}
	switch n := j - i; {
	case j == len(text) || text[j] != ':' || n == 0 || n > 1 && text[i] == '0':
		return 0, 0, false
	case n > 19:
		v, err := parseDecimal(text[i:j])
		return v, j + 1, err == nil
	}
	return v, j + 1, true
}

// parseOrExplain is ParseKnown field by field: for text that
// parseWellFormed refuses, it says why.
func parseOrExplain(text []byte, known string) (Stamp, error) {
	var s Stamp
	if len(text) > MaxTextLen {
		return s, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTextLen)
	}
	var fields [5][]byte
	rest := text
	for i := range fields {
		j := bytes.IndexByte(rest, ':')
		if j < 0 {
			return s, fmt.Errorf("%w: want 6 fields separated by ':'", ErrMalformed)
		}
		fields[i], rest = rest[:j], rest[j+1:]
	}
	if string(fields[0]) != "1" {
		return s, fmt.Errorf("%w: unsupported version %q", ErrMalformed, fields[0])
	}
	var err error
	if s.Work, err = parseDecimal(fields[1]); err != nil || s.Work == 0 {
		return s, fmt.Errorf("%w: work must be a decimal from 1 to 2^64-1", ErrMalformed)
	}
	t, err := parseDecimal(fields[2])
	if err != nil || t > 1<<63-1 {
		return s, fmt.Errorf("%w: time must be decimal Unix seconds", ErrMalformed)
	}
	s.Time = int64(t)
	if len(fields[3]) != 2*SaltSize || !decodeLowerHex(s.Salt[:], fields[3]) {
		return s, fmt.Errorf("%w: salt must be %d lowercase hex digits", ErrMalformed, 2*SaltSize)
	}
	if s.Counter, err = parseDecimal(fields[4]); err != nil {
		return s, fmt.Errorf("%w: counter must be a decimal from 0 to 2^64-1", ErrMalformed)
	}
	// Validate the bytes, not string(rest): converting would allocate on
	// every call, since the error message keeps the name.
	if err := validateResource(rest); err != nil {
		return s, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if string(rest) == known {
		s.Resource = known
	} else {
		s.Resource = string(rest)
	}
	return s, nil
}

// AppendText appends the stamp's text to dst.
func (s *Stamp) AppendText(dst []byte) []byte {
	dst = append(dst, "1:"...)
	dst = strconv.AppendUint(dst, s.Work, 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, s.Time, 10)
	dst = append(dst, ':')
	dst = hex.AppendEncode(dst, s.Salt[:])
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, s.Counter, 10)
	dst = append(dst, ':')
	return append(dst, s.Resource...)
}

// String returns the stamp's text.
func (s Stamp) String() string { return string(s.AppendText(nil)) }

// ValidateResource reports whether name can be a stamp's resource.
func ValidateResource(name string) error { return validateResource(name) }

// validateResource is ValidateResource for text held in a string or bytes.
func validateResource[T string | []byte](name T) error {
	if len(name) == 0 || len(name) > MaxResourceLen {
		return fmt.Errorf("resource must be 1 to %d characters", MaxResourceLen)
	}
	for i := 0; i < len(name); i++ {
		if !resourceChars[name[i]] {
			return fmt.Errorf("resource %q: character %q not allowed (use A-Z a-z 0-9 . - _ : [ ])", string(name), name[i])
		}
	}
	return nil
}

// BodyHash returns the SHA-256 of a forwarded request body.
func BodyHash(body []byte) [32]byte {
	if haveBlocks {
		return sum256Pair(body, nil)
	}
	return sha256.Sum256(body)
}

// PrefixLen returns the length of the hashed input before the counter: a
// multiple of the 64-byte SHA-256 block size.
func PrefixLen(resourceLen int) int {
	return (83 + resourceLen + 63) &^ 63
}

// AppendPrefix appends the hashed input of s up to, not including, the
// counter: whole SHA-256 blocks.
func (s *Stamp) AppendPrefix(dst []byte, bodyHash *[32]byte) []byte {
	start := len(dst)
	dst = append(dst, Tag...)
	dst = append(dst, Version)
	dst = binary.BigEndian.AppendUint64(dst, s.Work)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.Time))
	dst = append(dst, s.Salt[:]...)
	dst = append(dst, bodyHash[:]...)
	dst = append(dst, byte(len(s.Resource)))
	dst = append(dst, s.Resource...)
	var zeros [63]byte // the padding is less than a block
	return append(dst, zeros[:PrefixLen(len(s.Resource))-(len(dst)-start)]...)
}

// Digest returns the SHA-256 of the stamp's hashed input for a body with the
// given hash. scratch, if it has room, avoids an allocation.
func (s *Stamp) Digest(bodyHash *[32]byte, scratch []byte) [32]byte {
	if haveBlocks && len(s.Resource) <= MaxResourceLen {
		return s.digestBlocks(bodyHash)
	}
	in := s.AppendPrefix(scratch[:0], bodyHash)
	in = binary.BigEndian.AppendUint64(in, s.Counter)
	return sha256.Sum256(in)
}

// Meets reports whether digest proves work: the first 8 bytes, read as a
// big-endian integer v, satisfy v*work < 2^64.
func Meets(digest *[32]byte, work uint64) bool {
	hi, _ := bits.Mul64(binary.BigEndian.Uint64(digest[:8]), work)
	return hi == 0
}

// parseDecimal parses an unsigned decimal without sign or leading zeros.
func parseDecimal(b []byte) (uint64, error) {
	if len(b) == 0 || (len(b) > 1 && b[0] == '0') {
		return 0, strconv.ErrSyntax
	}
	var v uint64
	if len(b) <= 19 { // below 10^19: cannot overflow
		for _, c := range b {
			if c-'0' > 9 {
				return 0, strconv.ErrSyntax
			}
			v = v*10 + uint64(c-'0')
		}
		return v, nil
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		hi, lo := bits.Mul64(v, 10)
		lo2, carry := bits.Add64(lo, uint64(c-'0'), 0)
		if hi != 0 || carry != 0 {
			return 0, strconv.ErrRange
		}
		v = lo2
	}
	return v, nil
}

// hexValue maps a lowercase hex digit to its value and every other byte
// to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// decodeLowerHex decodes src, 2*len(dst) lowercase hex digits, into dst, and
// reports whether every digit was one.
func decodeLowerHex(dst, src []byte) bool {
	var bad byte
	for i := range dst {
		hi, lo := hexValue[src[2*i]], hexValue[src[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo
	}
	return bad&0xf0 == 0
}

// resourceChars marks the bytes a resource name may hold.
var resourceChars = func() (t [256]bool) {
	for c := range t {
		t[c] = isResourceChar(byte(c))
	}
	return t
}()

func isResourceChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '.', '-', '_', ':', '[', ']':
		return true
	}
	return false
}
