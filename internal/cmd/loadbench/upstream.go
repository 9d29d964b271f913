package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// upstream is a fast Electrum-shaped server: it answers every request line
// at once with {"jsonrpc":"2.0","result":...,"id":N}, the result chosen by
// method, and writes the answers to all the lines it has read in one write,
// as a server answering a pipeline does. It decodes no JSON: it finds the
// method and id of the request shapes loadbench sends by their text.
type upstream struct {
	srv     *testsupport.Server
	results map[string][]byte
	tally   *lineTally // if not nil, counts the lines read by sender
}

// newUpstream listens on a loopback port and answers with the results of
// methods.
func newUpstream(methods []method) (*upstream, error) {
	return newCountingUpstream(methods, nil)
}

// newCountingUpstream is newUpstream that also counts every line it reads
// in tally, if not nil.
func newCountingUpstream(methods []method, tally *lineTally) (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	u := &upstream{results: map[string][]byte{}, tally: tally}
	for _, m := range methods {
		u.results[m.name] = []byte(m.result)
	}
	u.srv = testsupport.Serve(ln, u.serve)
	return u, nil
}

func (u *upstream) addr() string { return u.srv.Addr() }

// opened returns how many connections the upstream has accepted.
func (u *upstream) opened() int64 { return int64(u.srv.Accepted()) }

// close stops the upstream and waits for its connections to end.
func (u *upstream) close() { u.srv.Close() }

var (
	methodKey = []byte(`"method":"`)
	idKey     = []byte(`"id":`)
	nullID    = []byte("null")
	unknown   = []byte(`null`)
)

func (u *upstream) serve(c net.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	var out []byte
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Longer than any request loadbench sends: skip it.
			n := len(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				n += len(line)
			}
			if u.tally != nil {
				u.tally.add(lineFlood, n, nil)
			}
			continue
		}
		if u.tally != nil && len(line) > 0 {
			u.tally.observe(line)
		}
		if err != nil {
			if len(out) > 0 {
				c.Write(out)
			}
			return
		}
		out = u.answer(out, line)
		if r.Buffered() == 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

// answer appends the response to one request line.
func (u *upstream) answer(dst, line []byte) []byte {
	result := unknown
	if i := bytes.Index(line, methodKey); i >= 0 {
		rest := line[i+len(methodKey):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			if r, ok := u.results[string(rest[:j])]; ok {
				result = r
			}
		}
	}
	id := nullID
	if i := bytes.Index(line, idKey); i >= 0 {
		rest := line[i+len(idKey):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j > 0 {
			id = rest[:j]
		}
	}
	dst = append(dst, `{"jsonrpc":"2.0","result":`...)
	dst = append(dst, result...)
	dst = append(dst, `,"id":`...)
	dst = append(dst, id...)
	return append(dst, "}\n"...)
}

// The senders a flood run's upstream tells apart, by request id.
const (
	lineHonest = iota // ids below seedIDBase
	lineSeed          // ids from seedIDBase below floodIDBase
	lineFlood         // ids from floodIDBase, or no id
	lineClasses
)

// lineTally counts the request lines an upstream reads, by sender, and
// keeps the first flooder line.
type lineTally struct {
	lines, bytes [lineClasses]atomic.Int64
	mu           sync.Mutex
	firstFlood   string
}

// classifyLine returns who sent a request line, from its first "id"
// member: honest clients, the seeding connection or a flooder.
func classifyLine(line []byte) int {
	i := bytes.Index(line, idKey)
	if i < 0 {
		return lineFlood
	}
	var id, digits int64
	for _, c := range line[i+len(idKey):] {
		if c < '0' || c > '9' {
			break
		}
		if digits++; digits > 12 {
			return lineFlood
		}
		id = id*10 + int64(c-'0')
	}
	switch {
	case digits == 0:
		return lineFlood
	case id < seedIDBase:
		return lineHonest
	case id < floodIDBase:
		return lineSeed
	}
	return lineFlood
}

func (t *lineTally) observe(line []byte) { t.add(classifyLine(line), len(line), line) }

func (t *lineTally) add(class, n int, line []byte) {
	t.lines[class].Add(1)
	t.bytes[class].Add(int64(n))
	if class == lineFlood {
		t.mu.Lock()
		if t.firstFlood == "" {
			t.firstFlood = fmt.Sprintf("%.300q", line)
		}
		t.mu.Unlock()
	}
}

// tallySnapshot is a lineTally's counts at one moment.
type tallySnapshot struct {
	lines, bytes [lineClasses]int64
	firstFlood   string
}

func (t *lineTally) snapshot() tallySnapshot {
	var s tallySnapshot
	for i := range lineClasses {
		s.lines[i], s.bytes[i] = t.lines[i].Load(), t.bytes[i].Load()
	}
	t.mu.Lock()
	s.firstFlood = t.firstFlood
	t.mu.Unlock()
	return s
}
