package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// slowUpstream is an Electrum-shaped server with a fixed capacity, standing
// in for an Electrum server that a flood saturates: every request line, from
// any connection, joins one first-in first-out queue, and each of workers
// workers takes the oldest, holds it for delay and then writes its answer
// (the same answers as upstream's). It serves at most workers/delay
// requests a second; beyond that the queue grows. It counts the requests it
// has read and not yet answered (in flight) and keeps the highest count
// since the last sample.
type slowUpstream struct {
	srv      *testsupport.Server
	answers  *upstream // for its answer method only
	delay    time.Duration
	queue    chan slowJob
	stop     chan struct{}
	wg       sync.WaitGroup
	inFlight atomic.Int64
	peak     atomic.Int64 // the most in flight since the last takePeak
	answered atomic.Int64
	received atomic.Int64 // request lines read
}

// slowJob is one request line waiting for a worker.
type slowJob struct {
	c    *slowConn
	line []byte
}

// slowConn is one client connection; workers write to it under mu.
type slowConn struct {
	mu sync.Mutex
	c  net.Conn
}

// slowQueueLen bounds the queue; a reader blocks when it is full, as a
// server that stops reading would.
const slowQueueLen = 1 << 16

// newSlowUpstream listens on a loopback port and serves methods' answers
// with workers workers each holding a request for delay.
func newSlowUpstream(methods []method, workers int, delay time.Duration) (*slowUpstream, error) {
	if workers < 1 || delay <= 0 {
		return nil, fmt.Errorf("slow upstream: %d workers, delay %s: want at least 1 and positive", workers, delay)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("slow upstream: %w", err)
	}
	u := &slowUpstream{
		answers: &upstream{results: map[string][]byte{}},
		delay:   delay,
		queue:   make(chan slowJob, slowQueueLen),
		stop:    make(chan struct{}),
	}
	for _, m := range methods {
		u.answers.results[m.name] = []byte(m.result)
	}
	for range workers {
		u.wg.Go(u.work)
	}
	u.srv = testsupport.Serve(ln, u.serve)
	return u, nil
}

func (u *slowUpstream) addr() string { return u.srv.Addr() }

// close stops the upstream: its connections, then its workers.
func (u *slowUpstream) close() {
	u.srv.Close()
	close(u.stop)
	u.wg.Wait()
}

// takePeak returns the most requests in flight since the last call, and
// starts the next period from the count now.
func (u *slowUpstream) takePeak() int64 {
	return max(u.peak.Swap(u.inFlight.Load()), u.inFlight.Load())
}

func (u *slowUpstream) serve(c net.Conn) {
	sc := &slowConn{c: c}
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			continue // longer than any request loadbench sends: no answer
		}
		if err != nil {
			return
		}
		u.received.Add(1)
		n := u.inFlight.Add(1)
		for {
			p := u.peak.Load()
			if n <= p || u.peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case u.queue <- slowJob{c: sc, line: append([]byte(nil), line...)}:
		case <-u.stop:
			return
		}
	}
}

func (u *slowUpstream) work() {
	var out []byte
	for {
		var j slowJob
		select {
		case j = <-u.queue:
		case <-u.stop:
			return
		}
		time.Sleep(u.delay)
		out = u.answers.answer(out[:0], j.line)
		// Counted before the write, so that whoever reads the answer
		// finds it counted.
		u.inFlight.Add(-1)
		u.answered.Add(1)
		j.c.mu.Lock()
		j.c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		j.c.c.Write(out) // a closed client loses its answer
		j.c.mu.Unlock()
	}
}
