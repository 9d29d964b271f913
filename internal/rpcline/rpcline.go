// Package rpcline scans one line of newline-delimited JSON-RPC, finds the
// proof-of-work stamp member of each request object, and removes or inserts
// it without re-encoding anything else.
//
// # Removing a stamp member
//
// The member is the text from its key's opening quote to the end of its
// string value. What is removed from the line is:
//   - when the member is not the object's first: the comma before it, and
//     everything from that comma to the end of the member;
//   - when it is the first and another member follows: the member and
//     everything up to and including the comma after it;
//   - when it is the only member: the member.
//
// # Inserting a stamp member
//
// The text is inserted immediately before the object's closing brace: as
// ,"pow":"<stamp>" when the object has members, as "pow":"<stamp>" when it
// is empty. Removing that member, as above, restores the original bytes.
package rpcline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects a line may have.
const MaxDepth = 512

// Kind is what a line holds at its top level.
type Kind uint8

// The kinds of line.
const (
	// KindOther is valid JSON that is neither an object nor an array.
	KindOther Kind = iota
	// KindObject is a single JSON object: one request.
	KindObject
	// KindBatch is a JSON array: a batch of requests.
	KindBatch
)

// Object describes one request object: the line itself or a batch element.
type Object struct {
	// IsObject is false for a batch element that is not a JSON object.
	IsObject bool
	// Start and End delimit the object's text in the line (End exclusive).
	Start, End int
	// Method is the raw JSON value of member "method", if present.
	Method []byte
	// ID is the raw JSON value of member "id", if present.
	ID []byte
	// Stamp is the raw JSON value of the stamp member, if present.
	Stamp []byte
	// Members counts the object's members, the stamp included.
	Members int
	// MethodEscaped and StampEscaped report that Method and Stamp are
	// strings with escapes (RawStringValue refuses them).
	MethodEscaped, StampEscaped bool
	// StampCount counts the stamp members; more than one is an error.
	StampCount int
	// Duplicate names a member other than the stamp that occurs twice
	// among "method" and "id", or is empty.
	Duplicate string
	// CutStart and CutEnd delimit the text removed with the stamp member.
	CutStart, CutEnd int
	// closeBrace is the index of the object's closing brace.
	closeBrace int
}

// Line is the result of scanning one line. Its slices alias the line.
type Line struct {
	// Kind is what the line holds.
	Kind Kind
	// Objects holds the line's object (KindObject) or every batch element
	// (KindBatch), in order.
	Objects []Object
}

// ErrSyntax is wrapped by every error Scan returns for invalid JSON.
var ErrSyntax = errors.New("invalid JSON")

// ErrBatchTooLarge is returned by ScanLimit for a batch with more elements
// than allowed. Scanning stops at the first element over the limit.
var ErrBatchTooLarge = errors.New("batch too large")

// Scan checks that line (without its line feed) is exactly one JSON value,
// optionally surrounded by whitespace, and describes it in dst, reusing
// dst's storage. stampKey is the member name of the stamp, e.g. "pow".
func Scan(line []byte, stampKey string, dst *Line) error {
	return ScanLimit(line, stampKey, 0, dst)
}

// ScanLimit is Scan for lines whose batches may hold at most maxBatch
// elements (0: no limit). A longer batch fails with ErrBatchTooLarge as soon
// as its first element over the limit begins, so the work and memory spent
// on a line stay in proportion to the limit, not to the line.
func ScanLimit(line []byte, stampKey string, maxBatch int, dst *Line) error {
	s := scanner{b: line, stampKey: stampKey, out: dst, maxBatch: maxBatch, maskAt: -1}
	dst.Kind = KindOther
	dst.Objects = dst.Objects[:0]
	s.skipSpace()
	if s.i >= len(s.b) {
		return fmt.Errorf("%w: empty line", ErrSyntax)
	}
	var err error
	switch s.b[s.i] {
	case '{':
		dst.Kind = KindObject
		dst.Objects = append(dst.Objects, Object{})
		err = s.object(&dst.Objects[0])
	case '[':
		dst.Kind = KindBatch
		err = s.batch()
	default:
		err = s.value()
	}
	if err != nil {
		return err
	}
	s.skipSpace()
	if s.i != len(s.b) {
		return s.errf("unexpected data after the top-level value")
	}
	return nil
}

// AppendStripped appends line with the stamp member of every object in l
// removed (objects in l must be in line order, as Scan leaves them).
func AppendStripped(dst, line []byte, l *Line) []byte {
	pos := 0
	for i := range l.Objects {
		o := &l.Objects[i]
		if o.StampCount == 0 {
			continue
		}
		dst = append(dst, line[pos:o.CutStart]...)
		pos = o.CutEnd
	}
	return append(dst, line[pos:]...)
}

// AppendObjectStripped appends the text of object o of line with its stamp
// member removed: the body a batch element's stamp commits to.
func AppendObjectStripped(dst, line []byte, o *Object) []byte {
	if o.StampCount == 0 {
		return append(dst, line[o.Start:o.End]...)
	}
	dst = append(dst, line[o.Start:o.CutStart]...)
	return append(dst, line[o.CutEnd:o.End]...)
}

// AppendWithStamps appends line with one stamp member inserted into every
// object of l, before its closing brace. stamps[i] is the stamp text for
// l.Objects[i]; it must not need JSON escaping. Objects that are not JSON
// objects are copied unchanged.
func AppendWithStamps(dst, line []byte, l *Line, stampKey string, stamps []string) []byte {
	pos := 0
	for i := range l.Objects {
		o := &l.Objects[i]
		if !o.IsObject {
			continue
		}
		dst = append(dst, line[pos:o.closeBrace]...)
		if o.Members > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, stampKey...)
		dst = append(dst, `":"`...)
		dst = append(dst, stamps[i]...)
		dst = append(dst, '"')
		pos = o.closeBrace
	}
	return append(dst, line[pos:]...)
}

// StringValue returns the content of a raw JSON string token. For tokens
// without escapes it aliases raw and does not allocate.
func StringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// RawStringValue returns the content of a raw JSON string token without
// escapes, aliasing raw; ok is false if raw is not a string or has escapes.
func RawStringValue(raw []byte) (inner []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	inner = raw[1 : len(raw)-1]
	return inner, bytes.IndexByte(inner, '\\') < 0
}

// ScannedStringValue is RawStringValue for a value Scan recorded, whose
// escapes it already knows (Object.MethodEscaped, Object.StampEscaped): it
// does not look at the string's bytes again.
func ScannedStringValue(raw []byte, escaped bool) (inner []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || escaped {
		return nil, false
	}
	return raw[1 : len(raw)-1], true
}

type scanner struct {
	b        []byte
	i        int
	depth    int
	stampKey string
	out      *Line
	maxBatch int // most batch elements; 0: no limit

	// masks marks the bytes of the chunk of b at maskAt (a multiple of
	// chunkSize; -1 before the first) that a string may not take as they
	// are, a word per 64-byte block (see loadMasks): str looks at one bit
	// per byte.
	maskAt int
	masks  [chunkSize / 64]uint64
}

// chunkSize is how many bytes of a line the scanner finds the special
// bytes of at once: a request of a few hundred bytes in one go.
const chunkSize = 512

func (s *scanner) errf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrSyntax, s.i, fmt.Sprintf(format, args...))
}

func (s *scanner) skipSpace() { s.i = spaceEnd(s.b, s.i) }

// spaceEnd returns the index of the first byte of b at or after i that is
// not JSON whitespace, or len(b).
func spaceEnd(b []byte, i int) int {
	// One test for the usual case, a token right here: every byte that
	// is space in JSON is below '!'.
	for i < len(b) && b[i] <= ' ' {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

func (s *scanner) batch() error {
	s.i++ // '['
	s.depth++
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.skipSpace()
		if s.i >= len(s.b) {
			return s.errf("unterminated array")
		}
		idx := len(s.out.Objects)
		if s.maxBatch > 0 && idx == s.maxBatch {
			return fmt.Errorf("%w: more than %d requests", ErrBatchTooLarge, s.maxBatch)
		}
		s.out.Objects = append(s.out.Objects, Object{Start: s.i})
		if s.b[s.i] == '{' {
			if err := s.object(&s.out.Objects[idx]); err != nil {
				return err
			}
		} else {
			if err := s.value(); err != nil {
				return err
			}
			s.out.Objects[idx].End = s.i
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return s.errf("unterminated array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return s.errf("want ',' or ']' in array")
		}
	}
}

// object scans a request object at s.i, recording its members in o. It
// keeps its place in a local variable, not in s.i, which it sets only
// around calls that use it (value, errf): every request is scanned here.
func (s *scanner) object(o *Object) error {
	*o = Object{IsObject: true, Start: s.i}
	b := s.b
	i := s.i + 1 // '{'
	s.depth++
	if s.depth > MaxDepth {
		s.i = i
		return s.errf("nesting deeper than %d", MaxDepth)
	}
	prevComma := -1 // index of the comma before the current member
	stampFirst := false
	for {
		i = spaceEnd(b, i)
		if i >= len(b) {
			s.i = i
			return s.errf("unterminated object")
		}
		if b[i] == '}' && o.Members == 0 {
			break
		}
		keyStart := i
		if b[i] != '"' {
			s.i = i
			return s.errf("want a string key in object")
		}
		end, keyEscaped, err := s.strAt(i)
		if err != nil {
			return err
		}
		i = end
		member := s.member(b[keyStart:i], keyEscaped)
		i = spaceEnd(b, i)
		if i >= len(b) || b[i] != ':' {
			s.i = i
			return s.errf("want ':' after object key")
		}
		i = spaceEnd(b, i+1)
		valStart := i
		escaped := false // the value is a string with escapes
		if i < len(b) && b[i] == '"' {
			if i, escaped, err = s.strAt(i); err != nil {
				return err
			}
		} else {
			s.i = i
			if err := s.value(); err != nil {
				return err
			}
			i = s.i
		}
		val := b[valStart:i]
		o.Members++
		switch member {
		case memberStamp:
			o.StampCount++
			o.Stamp, o.StampEscaped = val, escaped
			if prevComma >= 0 {
				o.CutStart, o.CutEnd = prevComma, i
			} else {
				o.CutStart, o.CutEnd = keyStart, i
				stampFirst = true
			}
		case memberMethod:
			if o.Method != nil {
				o.Duplicate = "method"
			}
			o.Method, o.MethodEscaped = val, escaped
		case memberID:
			if o.ID != nil {
				o.Duplicate = "id"
			}
			o.ID = val
		}
		i = spaceEnd(b, i)
		if i >= len(b) {
			s.i = i
			return s.errf("unterminated object")
		}
		if b[i] == ',' {
			if stampFirst && o.StampCount == 1 && o.Members == 1 {
				o.CutEnd = i + 1
			}
			prevComma = i
			i++
			continue
		}
		if b[i] != '}' {
			s.i = i
			return s.errf("want ',' or '}' in object")
		}
		break
	}
	o.closeBrace = i
	s.i = i + 1
	s.depth--
	o.End = s.i
	return nil
}

// The members of a request object that Scan records.
const (
	memberOther = iota
	memberStamp
	memberMethod
	memberID
)

// member says which member the raw string token key names; names are
// compared after unescaping, if escaped says it has escapes.
func (s *scanner) member(key []byte, escaped bool) int {
	if escaped {
		name, ok := StringValue(key)
		if !ok {
			return memberOther
		}
		return s.memberNamed(name)
	}
	// Compared in place: string(name) == x copies nothing.
	switch name := key[1 : len(key)-1]; {
	case string(name) == s.stampKey:
		return memberStamp
	case string(name) == "method":
		return memberMethod
	case string(name) == "id":
		return memberID
	}
	return memberOther
}

// memberNamed says which member a decoded name names.
func (s *scanner) memberNamed(name string) int {
	switch name {
	case s.stampKey:
		return memberStamp
	case "method":
		return memberMethod
	case "id":
		return memberID
	}
	return memberOther
}

func (s *scanner) value() error {
	if s.i >= len(s.b) {
		return s.errf("want a value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.str()
	case c == '{':
		var ignored Object
		return s.object(&ignored)
	case c == '[':
		return s.array()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return s.number()
	}
	return s.errf("unexpected character %q", s.b[s.i])
}

func (s *scanner) array() error {
	s.i++ // '['
	s.depth++
	if s.depth > MaxDepth {
		return s.errf("nesting deeper than %d", MaxDepth)
	}
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.skipSpace()
		if err := s.value(); err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return s.errf("unterminated array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return s.errf("want ',' or ']' in array")
		}
	}
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.errf("invalid literal")
	}
	s.i += len(lit)
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return s.errf("invalid number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return s.errf("invalid number fraction")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return s.errf("invalid number exponent")
		}
	}
	return nil
}

// Masks for testing the eight bytes of a 64-bit word at once.
const (
	ones    = 0x0101010101010101 // 0x01 in every byte
	highs   = 0x8080808080808080 // the top bit of every byte
	quotes  = '"' * ones
	slashes = '\\' * ones
)

// special8 returns, for the eight bytes of w, a word with the top bit set
// for every byte that a JSON string does not take as it is: '"', '\\',
// a control character below 0x20, or a byte of 0x80 or more (UTF-8, checked
// one byte at a time). It may also mark a byte above such a byte (a borrow
// runs into it), but never marks a byte when there is none: the result is 0
// exactly when all eight bytes are plain.
func special8(w uint64) uint64 {
	q, bs := w^quotes, w^slashes
	return ((q-ones)&^q | (bs-ones)&^bs | (w-0x20*ones)&^w | w) & highs
}

// gather8 moves the top bit of each byte of m, which has no other bits set,
// to bit i for byte i.
func gather8(m uint64) uint64 {
	return (m >> 7) * 0x0102040810204080 >> 56
}

// specialMask64Go returns a mask with bit k set if byte k of *p is one
// that special8 marks: every byte that a string does not take as it is,
// and rarely a plain byte just above one (which str then steps over).
func specialMask64Go(p *[64]byte) uint64 {
	word := func(k int) uint64 { return gather8(special8(binary.LittleEndian.Uint64(p[k:]))) << k }
	return word(0) | word(8) | word(16) | word(24) | word(32) | word(40) | word(48) | word(56)
}

// specialMasksGo is the portable specialMasks. Unlike specialMasksAVX2 it
// may also mark a plain byte just above a marked one (see special8).
func specialMasksGo(p []byte, masks []uint64) {
	for k := range masks {
		masks[k] = specialMask64Go((*[64]byte)(p))
		p = p[64:]
	}
}

// loadMasks sets s.masks for the chunk of s.b at chunk, which must be
// before its end: bit j of s.masks[k] is set if byte chunk+64*k+j is one
// that special8 marks or lies past the end of s.b. (The masks of blocks
// wholly past the end are not set: nextSpecial never reads them.)
func (s *scanner) loadMasks(chunk int) {
	s.maskAt = chunk
	rest := s.b[chunk:]
	full := min(len(rest)/64, len(s.masks))
	specialMasks(rest, s.masks[:full])
	n := len(rest) - 64*full // bytes in the block where s.b ends
	if full == len(s.masks) || n == 0 {
		return
	}
	var m [1]uint64
	if len(s.b) >= 64 {
		// The last 64 bytes of s.b, of which the block's n come last.
		specialMasks(s.b[len(s.b)-64:], m[:])
		m[0] >>= 64 - n
	} else {
		var tail [64]byte
		copy(tail[:], rest[64*full:])
		specialMasks(tail[:], m[:])
	}
	s.masks[full] = m[0] | ^uint64(0)<<n
}

// nextSpecial returns the index of the first byte at or after i that
// special8 marks, or len(s.b) if there is none.
func (s *scanner) nextSpecial(i int) int {
	for i < len(s.b) {
		if chunk := i &^ (chunkSize - 1); chunk != s.maskAt {
			s.loadMasks(chunk)
		}
		u := uint(i) // not negative: unsigned division is a shift
		if m := s.masks[u/64%uint(len(s.masks))] >> (u % 64); m != 0 {
			return i + bits.TrailingZeros64(m)
		}
		i = i | 63 + 1
	}
	return len(s.b)
}

// str scans a string token starting at its opening quote, at s.i.
func (s *scanner) str() error {
	end, _, err := s.strAt(s.i)
	if err != nil {
		return err
	}
	s.i = end
	return nil
}

// strAt scans the string token whose opening quote is at s.b[i], and
// returns the index after its closing quote and whether it has escapes.
// On an error it leaves s.i where the error is.
func (s *scanner) strAt(i int) (end int, escaped bool, err error) {
	b := s.b
	i++ // '"'
	for {
		i = s.nextSpecial(i)
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				s.i = i
				return 0, false, s.errf("unterminated escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || !isHex4(b[i+2:i+6]) {
					s.i = i
					return 0, false, s.errf("invalid \\u escape")
				}
				i += 6
			default:
				s.i = i
				return 0, false, s.errf("invalid escape")
			}
		case c < 0x20:
			s.i = i
			return 0, false, s.errf("control character in string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				s.i = i
				return 0, false, s.errf("invalid UTF-8 in string")
			}
			i += size
		}
	}
	s.i = i
	return 0, false, s.errf("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
