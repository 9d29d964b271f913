package caddyhashcash

import "bytes"

// readChunk is how much is read from the client at a time.
const readChunk = 8 << 10

// frame is what lineFramer.next found in the bytes buffered so far.
type frame int

const (
	// frameNone: no complete line is buffered; read more.
	frameNone frame = iota
	// frameLine: a complete line of at most the limit, without its line
	// feed.
	frameLine
	// frameTooLong: a complete line longer than the limit, which arrived
	// whole in the buffer.
	frameTooLong
	// frameOverflow: the unfinished line has grown past the limit. Its
	// bytes are dropped from now on, as they arrive, up to its line feed.
	frameOverflow
	// frameOverflowEnd: the line feed that ends a line dropped since
	// frameOverflow.
	frameOverflowEnd
)

// lineFramer cuts a client's byte stream into lines on line feeds. It does
// no I/O: the caller reads into space, reports the bytes with added, and
// takes lines with next until it returns frameNone. A line longer than max
// bytes is reported once and never held whole in memory.
type lineFramer struct {
	max        int    // the longest line, without its line feed
	buf        []byte // buf[start:] is not yet framed
	start      int    // beginning of the current, unfinished line
	scanned    int    // buf[start:scanned] holds no line feed
	discarding bool   // inside a line longer than max, since frameOverflow
}

func newLineFramer(max int) *lineFramer {
	return &lineFramer{max: max, buf: make([]byte, 0, readChunk)}
}

// load adds bytes that were read elsewhere, such as a matcher's prefetch.
func (f *lineFramer) load(p []byte) {
	f.buf = append(f.buf, p...)
}

// space compacts the buffer and returns room for the next read, growing the
// buffer only as far as a line of max bytes needs.
func (f *lineFramer) space() []byte {
	if f.start > 0 {
		n := copy(f.buf, f.buf[f.start:])
		f.buf = f.buf[:n]
		f.scanned -= f.start
		f.start = 0
	}
	if cap(f.buf) > 4*readChunk && len(f.buf) < readChunk/2 {
		// A long line has passed: give its memory back.
		f.buf = append(make([]byte, 0, readChunk), f.buf...)
	}
	if cap(f.buf)-len(f.buf) < readChunk/2 {
		grown := make([]byte, len(f.buf), 2*cap(f.buf)+readChunk)
		copy(grown, f.buf)
		f.buf = grown
	}
	return f.buf[len(f.buf):cap(f.buf)]
}

// added records that n bytes were read into the slice space returned.
func (f *lineFramer) added(n int) {
	f.buf = f.buf[:len(f.buf)+n]
}

// next returns the next thing found in the buffered bytes. The line it
// returns with frameLine or frameTooLong is valid until the next call to
// space.
func (f *lineFramer) next() ([]byte, frame) {
	i := bytes.IndexByte(f.buf[f.scanned:], '\n')
	if i < 0 {
		f.scanned = len(f.buf)
		switch {
		case f.discarding:
			f.drop()
		case len(f.buf)-f.start > f.max:
			f.discarding = true
			f.drop()
			return nil, frameOverflow
		}
		return nil, frameNone
	}
	end := f.scanned + i
	line := f.buf[f.start:end]
	f.start, f.scanned = end+1, end+1
	switch {
	case f.discarding:
		f.discarding = false
		return nil, frameOverflowEnd
	case len(line) > f.max:
		return line, frameTooLong
	}
	return line, frameLine
}

// peek appends to dst the complete lines next would return as frameLine
// from the buffered bytes, at most limit of them, without taking them: it
// stops at the first line longer than the framer's max, and finds none
// while a line is being dropped. Like next, it does not scan again the
// bytes next has found without a line feed. The lines are valid until the
// next call to space.
func (f *lineFramer) peek(dst [][]byte, limit int) [][]byte {
	if f.discarding {
		return dst
	}
	for i := f.start; len(dst) < limit; {
		from := i
		if i == f.start {
			from = max(i, f.scanned) // buf[start:scanned] holds no line feed
		}
		k := bytes.IndexByte(f.buf[from:], '\n')
		if k < 0 || from+k-i > f.max {
			break
		}
		end := from + k
		dst = append(dst, f.buf[i:end])
		i = end + 1
	}
	return dst
}

// rest returns the last line of a stream that ended without a line feed
// after it, once every complete line has been taken with next: frameNone
// if there is none, or it was dropped as too long.
func (f *lineFramer) rest() ([]byte, frame) {
	if f.discarding || len(f.buf) == f.start {
		return nil, frameNone
	}
	line := f.buf[f.start:]
	f.start, f.scanned = len(f.buf), len(f.buf)
	if len(line) > f.max {
		return line, frameTooLong
	}
	return line, frameLine
}

// drop forgets every buffered byte.
func (f *lineFramer) drop() {
	f.buf, f.start, f.scanned = f.buf[:0], 0, 0
}

// buffered reports whether bytes wait that next has not framed.
func (f *lineFramer) buffered() bool {
	return len(f.buf) > f.start
}

// partial returns how many bytes of an unfinished line are buffered, and
// whether a line is unfinished at all (it may be one being dropped).
func (f *lineFramer) partial() (bytes int, unfinished bool) {
	n := len(f.buf) - f.start
	return n, n > 0 || f.discarding
}
