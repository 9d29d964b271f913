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
	s := scanner{b: line, stampKey: stampKey, out: dst, maxBatch: maxBatch}
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
	escaped  bool // the last string str scanned has escapes
	maxBatch int  // most batch elements; 0: no limit
}

func (s *scanner) errf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrSyntax, s.i, fmt.Sprintf(format, args...))
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
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

// object scans a request object at s.i, recording its members in o.
func (s *scanner) object(o *Object) error {
	*o = Object{IsObject: true, Start: s.i}
	s.i++ // '{'
	s.depth++
	if s.depth > MaxDepth {
		return s.errf("nesting deeper than %d", MaxDepth)
	}
	prevComma := -1 // index of the comma before the current member
	stampFirst := false
	for {
		s.skipSpace()
		if s.i >= len(s.b) {
			return s.errf("unterminated object")
		}
		if s.b[s.i] == '}' && o.Members == 0 {
			break
		}
		keyStart := s.i
		if s.b[s.i] != '"' {
			return s.errf("want a string key in object")
		}
		if err := s.str(); err != nil {
			return err
		}
		member := s.member(s.b[keyStart:s.i])
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.errf("want ':' after object key")
		}
		s.i++
		s.skipSpace()
		valStart := s.i
		if err := s.value(); err != nil {
			return err
		}
		val := s.b[valStart:s.i]
		escaped := s.escaped && val[0] == '"' // str set s.escaped for a string
		o.Members++
		switch member {
		case memberStamp:
			o.StampCount++
			o.Stamp, o.StampEscaped = val, escaped
			if prevComma >= 0 {
				o.CutStart, o.CutEnd = prevComma, s.i
			} else {
				o.CutStart, o.CutEnd = keyStart, s.i
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
		s.skipSpace()
		if s.i >= len(s.b) {
			return s.errf("unterminated object")
		}
		if s.b[s.i] == ',' {
			if stampFirst && o.StampCount == 1 && o.Members == 1 {
				o.CutEnd = s.i + 1
			}
			prevComma = s.i
			s.i++
			continue
		}
		if s.b[s.i] != '}' {
			return s.errf("want ',' or '}' in object")
		}
		break
	}
	o.closeBrace = s.i
	s.i++
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

// member says which member the raw string token key, just scanned by str,
// names; names are compared after unescaping.
func (s *scanner) member(key []byte) int {
	if s.escaped {
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

// plainRun returns how many bytes at the start of b a string takes as they
// are, looking at whole 8-byte words: it stops at the first byte special8
// marks, or before the last len(b)%8 bytes when none is. Hex strings (script
// hashes, transactions) and stamps are most of a request's bytes.
func plainRun(b []byte) int {
	i := 0
	for ; i+16 <= len(b); i += 16 {
		m0 := special8(binary.LittleEndian.Uint64(b[i:]))
		m1 := special8(binary.LittleEndian.Uint64(b[i+8:]))
		if m0|m1 != 0 {
			if m0 != 0 {
				return i + bits.TrailingZeros64(m0)/8
			}
			return i + 8 + bits.TrailingZeros64(m1)/8
		}
	}
	if i+8 <= len(b) {
		if m := special8(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	return i
}

// str scans a string token starting at its opening quote, and sets
// s.escaped if it has escapes.
func (s *scanner) str() error {
	s.i++ // '"'
	s.escaped = false
	for s.i < len(s.b) {
		s.i += plainRun(s.b[s.i:])
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return nil
		case c == '\\':
			s.escaped = true
			if s.i+1 >= len(s.b) {
				return s.errf("unterminated escape")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if len(s.b)-s.i < 6 || !isHex4(s.b[s.i+2:s.i+6]) {
					return s.errf("invalid \\u escape")
				}
				s.i += 6
			default:
				return s.errf("invalid escape")
			}
		case c < 0x20:
			return s.errf("control character in string")
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, size := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && size <= 1 {
				return s.errf("invalid UTF-8 in string")
			}
			s.i += size
		}
	}
	return s.errf("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
