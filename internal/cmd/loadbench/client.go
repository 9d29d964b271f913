package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The phases of a run.
const (
	phaseWarmup = iota
	phaseMeasure
	phaseDone
)

// run is one measurement: N connections sending to one address.
type run struct {
	window    int
	batch     int           // most requests per write
	interval  time.Duration // if positive, each connection sends a request this often
	base      time.Time     // the start of the run; times are measured from here
	phase     atomic.Int32  // phaseWarmup, phaseMeasure or phaseDone
	stop      chan struct{} // closed when writers are to stop sending
	exhausted chan struct{} // closed when a connection has used up its pool
	exhaust   sync.Once
}

// minSleep is the shortest a paced connection sleeps.
const minSleep = 200 * time.Microsecond

// connResult is what one connection measured.
type connResult struct {
	latencies  []time.Duration // of responses read while measuring
	errors     int             // responses that are not results
	firstError string
	err        error
}

var resultPrefix = []byte(`{"jsonrpc":"2.0","result":`)

// drive sends the lines of p on c, at most r.window unanswered at a time,
// until r.stop is closed (or, unless cyclic, p runs out), and reads the
// responses until every request is answered. A cyclic pool is sent again
// from its start when it runs out; its length must be a multiple of the
// ring size (64 for windows up to 32).
//
// If r.interval is positive, the connection sends one request every
// r.interval from offset after r.base, each in its own write (paced), and
// only the window can hold it back; otherwise it sends as fast as the
// window allows (saturated).
func drive(c net.Conn, p *pool, cyclic bool, offset time.Duration, r *run) *connResult {
	res := &connResult{}
	ringSize := 1
	for ringSize < 2*r.window {
		ringSize *= 2
	}
	mask := ringSize - 1
	sentAt := make([]atomic.Int64, ringSize) // by id: when it was written
	tokens := make(chan struct{}, r.window)  // one per request in flight
	var sent atomic.Int64                    // requests written
	writerDone := make(chan struct{})
	var writeErr error

	go func() {
		defer close(writerDone)
		defer func() {
			// Wait for the answers to what was sent, then wake the reader.
			for deadline := time.Now().Add(10 * time.Second); len(tokens) > 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			c.SetReadDeadline(time.Now())
		}()
		next := 0
		due := offset
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for {
			if r.interval > 0 {
				if wait := due - time.Since(r.base); wait > 0 {
					// Sleep at least minSleep, and then send what is due:
					// a timer per request would cost the client more than
					// the request.
					timer.Reset(max(wait, minSleep))
					select {
					case <-timer.C:
					case <-r.stop:
						return
					}
				}
				due += r.interval
			}
			select {
			case tokens <- struct{}{}:
			case <-r.stop:
				return
			}
			k := 1
		more:
			for r.interval == 0 && k < min(r.window, r.batch) {
				select {
				case tokens <- struct{}{}:
					k++
				default:
					break more
				}
			}
			if next == p.lines() {
				if !cyclic {
					r.exhaust.Do(func() { close(r.exhausted) })
					for range k {
						<-tokens
					}
					<-r.stop
					return
				}
				next = 0
			}
			if rest := p.lines() - next; k > rest {
				for range k - rest {
					<-tokens
				}
				k = rest
			}
			now := int64(time.Since(r.base))
			for id := next; id < next+k; id++ {
				sentAt[id&mask].Store(now)
			}
			sent.Add(int64(k))
			if _, err := c.Write(p.buf[p.off[next]:p.off[next+k]]); err != nil {
				writeErr = fmt.Errorf("write: %w", err)
				c.Close()
				return
			}
			next += k
		}
	}()

	br := bufio.NewReaderSize(c, 64<<10)
	var received int64
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			err = fmt.Errorf("response longer than %d bytes", br.Size())
		}
		if err != nil {
			<-writerDone
			switch {
			case writeErr != nil:
				res.err = writeErr
			case received != sent.Load() || !errors.Is(err, os.ErrDeadlineExceeded):
				res.err = fmt.Errorf("read after %d of %d responses: %w", received, sent.Load(), err)
			}
			return res
		}
		now := int64(time.Since(r.base))
		received++
		if !bytes.HasPrefix(line, resultPrefix) {
			res.errors++
			if res.firstError == "" {
				res.firstError = string(line)
			}
		}
		if id, ok := responseID(line); ok && r.phase.Load() == phaseMeasure {
			res.latencies = append(res.latencies, time.Duration(now-sentAt[id&mask].Load()))
		}
		<-tokens
	}
}

// responseID returns the id of a response line: the number after its first
// "id": member name.
func responseID(line []byte) (int, bool) {
	i := bytes.Index(line, idKey)
	if i < 0 {
		return 0, false
	}
	n, digits := 0, 0
	for _, c := range line[i+len(idKey):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
		digits++
	}
	return n, digits > 0
}

// summary is what a run measured over its measuring phase.
type summary struct {
	requests   int
	elapsed    time.Duration
	p50, p99   time.Duration
	errors     int
	firstError string
}

func summarize(results []*connResult, elapsed time.Duration) (summary, error) {
	s := summary{elapsed: elapsed}
	var all []time.Duration
	for _, r := range results {
		if r.err != nil {
			return s, r.err
		}
		all = append(all, r.latencies...)
		s.errors += r.errors
		if s.firstError == "" {
			s.firstError = r.firstError
		}
	}
	s.requests = len(all)
	if len(all) == 0 {
		return s, errors.New("no responses while measuring")
	}
	slices.Sort(all)
	s.p50 = all[len(all)/2]
	s.p99 = all[len(all)*99/100]
	return s, nil
}

func (s summary) rate() float64 { return float64(s.requests) / s.elapsed.Seconds() }
