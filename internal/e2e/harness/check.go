package harness

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// CheckStampedLine checks one request line as clientproxy sent it on the
// wire: every request object carries exactly one "pow" member whose text is
// a valid stamp for resource, and the stamp's digest over the object's body
// (its text without the stamp member) proves the work the stamp claims.
// It returns the line with its stamps removed (what the handler forwards)
// and the stamps.
func CheckStampedLine(line []byte, resource string) ([]byte, []stamp.Stamp, error) {
	var l rpcline.Line
	if err := rpcline.Scan(line, stamp.Member, &l); err != nil {
		return nil, nil, fmt.Errorf("not JSON: %v", err)
	}
	if l.Kind == rpcline.KindOther || len(l.Objects) == 0 {
		return nil, nil, fmt.Errorf("not a request object")
	}
	var stamps []stamp.Stamp
	var body []byte
	for i := range l.Objects {
		o := &l.Objects[i]
		if !o.IsObject {
			return nil, nil, fmt.Errorf("element %d is not an object", i)
		}
		if o.StampCount != 1 || o.Stamp == nil {
			return nil, nil, fmt.Errorf("object %d has %d stamp members", i, o.StampCount)
		}
		text, ok := rpcline.RawStringValue(o.Stamp)
		if !ok {
			return nil, nil, fmt.Errorf("object %d: stamp %s is not a plain JSON string", i, o.Stamp)
		}
		st, err := stamp.Parse(text)
		if err != nil {
			return nil, nil, fmt.Errorf("object %d: %v", i, err)
		}
		if st.Resource != resource {
			return nil, nil, fmt.Errorf("object %d: stamp for resource %q, want %q", i, st.Resource, resource)
		}
		body = rpcline.AppendObjectStripped(body[:0], line, o)
		h := stamp.BodyHash(body)
		d := st.Digest(&h, nil)
		if !stamp.Meets(&d, st.Work) {
			return nil, nil, fmt.Errorf("object %d: digest %x does not prove the claimed work %d", i, d[:8], st.Work)
		}
		stamps = append(stamps, st)
	}
	return rpcline.AppendStripped(nil, line, &l), stamps, nil
}

// Interleaving checks that server, the lines a server received in order,
// is an interleaving of the per-connection line sequences conns (each in
// its own order), every line byte for byte. It returns how many lines of
// each connection were matched; lines of a connection beyond that were not
// (yet) received. A server line that fits no connection is an error.
func Interleaving(server [][]byte, conns [][][]byte) ([]int, error) {
	next := make([]int, len(conns))
	for i, line := range server {
		found := false
		for c := range conns {
			if next[c] < len(conns[c]) && bytes.Equal(conns[c][next[c]], line) {
				next[c]++
				found = true
				break
			}
		}
		if !found {
			return next, fmt.Errorf("server line %d (%s) is not the next line of any client connection%s", i, Quote(line, 200), expected(conns, next))
		}
	}
	return next, nil
}

func expected(conns [][][]byte, next []int) string {
	var b strings.Builder
	for c := range conns {
		if next[c] < len(conns[c]) {
			fmt.Fprintf(&b, "; conn %d expects %s", c+1, Quote(conns[c][next[c]], 200))
		}
	}
	return b.String()
}

// MultisetDiff compares two collections of lines as multisets and describes
// the lines only in a and only in b (at most 5 of each), or returns "".
func MultisetDiff(aName string, a [][]byte, bName string, b [][]byte) string {
	count := map[string]int{}
	for _, l := range a {
		count[string(l)]++
	}
	for _, l := range b {
		count[string(l)]--
	}
	var onlyA, onlyB []string
	for l, n := range count {
		for ; n > 0; n-- {
			onlyA = append(onlyA, l)
		}
		for ; n < 0; n++ {
			onlyB = append(onlyB, l)
		}
	}
	if len(onlyA) == 0 && len(onlyB) == 0 {
		return ""
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%d lines only in %s, %d only in %s", len(onlyA), aName, len(onlyB), bName)
	for i, l := range onlyA {
		if i == 5 {
			break
		}
		fmt.Fprintf(&s, "\n  only in %s: %s", aName, Quote([]byte(l), 200))
	}
	for i, l := range onlyB {
		if i == 5 {
			break
		}
		fmt.Fprintf(&s, "\n  only in %s: %s", bName, Quote([]byte(l), 200))
	}
	return s.String()
}

// Quote quotes a line for messages, cut to n bytes.
func Quote(b []byte, n int) string {
	if len(b) > n {
		return fmt.Sprintf("%q…(%d bytes)", b[:n], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// ConnLines returns the lines clients sent on each of r's connections.
func ConnLines(r *Relay) [][][]byte {
	var out [][][]byte
	for _, c := range r.Conns() {
		out = append(out, c.Sent())
	}
	return out
}
