package client

import (
	"bufio"
	"io"
)

// lineReader frames a stream strictly on '\n'. Lines up to max bytes are
// returned whole; a longer line is returned as a sequence of raw fragments
// so that it can be passed through without being held in memory.
type lineReader struct {
	br       *bufio.Reader
	max      int
	buf      []byte
	skipping bool // inside a line longer than max
}

func newLineReader(r io.Reader, bufSize, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, bufSize), max: max}
}

// next returns the next piece of the stream. When whole is true, b is one
// complete line including its '\n'. Otherwise b is raw bytes to pass on
// unchanged: a fragment of a line longer than max, or the unterminated tail
// of the stream before err. b is valid only until the next call.
func (r *lineReader) next() (b []byte, whole bool, err error) {
	if r.skipping {
		frag, err := r.br.ReadSlice('\n')
		switch err {
		case nil:
			r.skipping = false
			return frag, false, nil
		case bufio.ErrBufferFull:
			return frag, false, nil
		}
		return frag, false, err
	}
	if cap(r.buf) > 1<<20 {
		r.buf = nil // do not keep a huge buffer after one huge line
	}
	r.buf = r.buf[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		switch err {
		case nil:
			whole := len(r.buf)+len(frag) <= r.max+1 // max excludes the '\n'
			if len(r.buf) == 0 {
				return frag, whole, nil
			}
			r.buf = append(r.buf, frag...)
			return r.buf, whole, nil
		case bufio.ErrBufferFull:
			r.buf = append(r.buf, frag...)
			if len(r.buf) > r.max {
				r.skipping = true
				return r.buf, false, nil
			}
			continue
		}
		r.buf = append(r.buf, frag...)
		return r.buf, false, err
	}
}

// buffered reports how many bytes can be read without blocking.
func (r *lineReader) buffered() int { return r.br.Buffered() }
