package main

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"sync"
)

// upstream is a fast Electrum-shaped server: it answers every request line
// at once with {"jsonrpc":"2.0","result":...,"id":N}, the result chosen by
// method, and writes the answers to all the lines it has read in one write,
// as a server answering a pipeline does. It decodes no JSON: it finds the
// method and id of the request shapes loadbench sends by their text.
type upstream struct {
	ln      net.Listener
	results map[string][]byte
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
}

// newUpstream listens on a loopback port and answers with the results of
// methods.
func newUpstream(methods []method) (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{ln: ln, results: map[string][]byte{}, conns: map[net.Conn]struct{}{}}
	for _, m := range methods {
		u.results[m.name] = []byte(m.result)
	}
	u.wg.Go(u.accept)
	return u, nil
}

func (u *upstream) addr() string { return u.ln.Addr().String() }

// close stops the upstream and waits for its connections to end.
func (u *upstream) close() {
	u.ln.Close()
	u.mu.Lock()
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *upstream) accept() {
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns[c] = struct{}{}
		u.mu.Unlock()
		u.wg.Go(func() {
			defer func() {
				u.mu.Lock()
				delete(u.conns, c)
				u.mu.Unlock()
				c.Close()
			}()
			u.serve(c)
		})
	}
}

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
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			continue
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
