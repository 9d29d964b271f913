package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// FloodIDPrefix starts the id of every request a Flooder sends, so that
// its lines can be told from a wallet's where both reach one server.
const FloodIDPrefix = "flood-"

// IsFloodLine reports whether a request line was sent by a Flooder.
func IsFloodLine(line []byte) bool {
	return bytes.Contains(line, []byte(`"id":"`+FloodIDPrefix))
}

// FloodAnswer is one answer a Flooder received.
type FloodAnswer struct {
	// At is when it was read.
	At time.Time
	// Reason is the refusal's reason, or "" for an answer of the server.
	Reason string
	// Level and Unit are the refusal's price level and unit price (0 at
	// calm or for an answer of the server).
	Level int
	Unit  uint64
}

// Flooder sends unstamped request lines on one connection at a fixed pace
// (server.version first, then Method), reads every answer and records its
// verdict and price level. On a server free while calm its requests are
// forwarded until its network's price rises, then refused as "missing".
type Flooder struct {
	conn   net.Conn
	stop   chan struct{}
	wg     sync.WaitGroup
	method string

	mu      sync.Mutex
	sent    int
	answers []FloodAnswer
	err     error
	stopped bool
}

// StartFlooder connects to addr and sends perTick request lines of method
// (no params) every tick, in one write, until Stop.
func StartFlooder(addr, method string, perTick int, tick time.Duration) (*Flooder, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	f := &Flooder{conn: c, stop: make(chan struct{}), method: method}
	f.wg.Add(2)
	go f.write(perTick, tick)
	go f.read()
	return f, nil
}

func (f *Flooder) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil && !f.stopped {
		f.err = err
	}
}

func (f *Flooder) write(perTick int, tick time.Duration) {
	defer f.wg.Done()
	first := fmt.Sprintf(`{"jsonrpc":"2.0","method":"server.version","id":"%s0","params":["flooder","1.4"]}`+"\n", FloodIDPrefix)
	buf := []byte(first)
	n := 0
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		f.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := f.conn.Write(buf); err != nil {
			f.fail(fmt.Errorf("flooder write: %w", err))
			return
		}
		f.mu.Lock()
		f.sent += bytes.Count(buf, []byte{'\n'})
		f.mu.Unlock()
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		buf = buf[:0]
		for range perTick {
			n++
			buf = fmt.Appendf(buf, `{"jsonrpc":"2.0","method":"%s","id":"%s%d"}`+"\n", f.method, FloodIDPrefix, n)
		}
	}
}

func (f *Flooder) read() {
	defer f.wg.Done()
	r := bufio.NewReaderSize(f.conn, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			f.fail(fmt.Errorf("flooder read: %w", err))
			return
		}
		a := FloodAnswer{At: time.Now()}
		var m struct {
			Error *struct {
				Data *stamp.Rejection `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			f.fail(fmt.Errorf("flooder: answer %s: %v", Quote(line, 200), err))
			return
		}
		if m.Error != nil {
			if m.Error.Data == nil {
				f.fail(fmt.Errorf("flooder: error answer without data: %s", Quote(line, 300)))
				return
			}
			a.Reason = string(m.Error.Data.Reason)
			a.Level, a.Unit = m.Error.Data.Level, m.Error.Data.Unit
		}
		f.mu.Lock()
		f.answers = append(f.answers, a)
		f.mu.Unlock()
	}
}

// Sent returns how many lines the flooder has written.
func (f *Flooder) Sent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent
}

// Answers returns the answers so far, in arrival order.
func (f *Flooder) Answers() []FloodAnswer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FloodAnswer(nil), f.answers...)
}

// Err returns the first failure of the flood (its connection closed, an
// answer that is not JSON-RPC), or nil.
func (f *Flooder) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Level returns the price level of the last refusal if it is the last
// answer, or 0.
func (f *Flooder) Level() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.answers) == 0 {
		return 0
	}
	return f.answers[len(f.answers)-1].Level
}

// Stop ends the flood, closes the connection and waits for the flooder's
// goroutines. It returns Err. Safe to call more than once.
func (f *Flooder) Stop() error {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return f.Err()
	}
	f.stopped = true
	f.mu.Unlock()
	close(f.stop)
	f.conn.Close()
	f.wg.Wait()
	return f.Err()
}

// FloodSummary counts answers received in [from, to]: forwarded (answered
// by the server), refused by reason, and the lowest and highest level of
// the refusals.
type FloodSummary struct {
	Forwarded          int
	Refused            map[string]int
	MinLevel, MaxLevel int
	MaxUnit            uint64
}

// Summary summarizes the answers received in [from, to].
func (f *Flooder) Summary(from, to time.Time) FloodSummary {
	s := FloodSummary{Refused: map[string]int{}, MinLevel: -1}
	for _, a := range f.Answers() {
		if a.At.Before(from) || a.At.After(to) {
			continue
		}
		if a.Reason == "" {
			s.Forwarded++
			continue
		}
		s.Refused[a.Reason]++
		if s.MinLevel < 0 || a.Level < s.MinLevel {
			s.MinLevel = a.Level
		}
		s.MaxLevel = max(s.MaxLevel, a.Level)
		s.MaxUnit = max(s.MaxUnit, a.Unit)
	}
	return s
}

// String formats s for logs.
func (s FloodSummary) String() string {
	var r []string
	for k, v := range s.Refused {
		r = append(r, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(r)
	return fmt.Sprintf("%d forwarded, refused {%s}, levels %d–%d, unit up to %d", s.Forwarded, strings.Join(r, ", "), s.MinLevel, s.MaxLevel, s.MaxUnit)
}
