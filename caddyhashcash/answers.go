package caddyhashcash

import "bytes"

// answerProbe is how many bytes from a line's start answerLines reads to
// tell a notification from an answer: a notification names its method
// first, as `{"jsonrpc":"2.0","method":` (or with spaces, as aiorpcx
// writes it), well within this; an answer has "result" or "error" there.
const answerProbe = 48

// answerLines counts the answers among the lines of the server's byte
// stream, given write by write as they reach the client: complete lines
// that are not notifications (whose first answerProbe bytes hold
// `"method"`). Lines that began while nothing was awaited (see skip) are
// not counted: no request was forwarded to answer. Not safe for
// concurrent use: the server's bytes come from one goroutine.
type answerLines struct {
	head    [answerProbe]byte // the start of the current line
	n       int               // bytes of head filled
	decided bool              // the current line is judged
	answer  bool              // what it was judged, once decided
	midLine bool              // the last byte seen was not a line feed
}

// count returns how many answers end in b, the next bytes of the stream.
func (a *answerLines) count(b []byte) int {
	answers := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		part := b
		if i >= 0 {
			part = b[:i]
		}
		if !a.decided {
			k := copy(a.head[a.n:], part)
			a.n += k
			if a.n == len(a.head) || i >= 0 {
				a.answer = !bytes.Contains(a.head[:a.n], []byte(`"method"`))
				a.decided = true
			}
		}
		if i < 0 {
			a.midLine = true
			return answers
		}
		if a.answer {
			answers++
		}
		a.n, a.decided, a.midLine = 0, false, false
		b = b[i+1:]
	}
	return answers
}

// skip takes b, the next bytes of the stream, without counting: the line
// they start or continue is no answer. It costs a look at b's last byte.
func (a *answerLines) skip(b []byte) {
	if len(b) == 0 {
		return
	}
	if b[len(b)-1] == '\n' {
		a.n, a.decided, a.midLine = 0, false, false
		return
	}
	// The line goes on into later writes: whatever follows up to its
	// line feed belongs to a line that began with nothing awaited.
	a.decided, a.answer, a.midLine = true, false, true
}
