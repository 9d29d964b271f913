package caddyhashcash

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// replyWriter is the client-bound half of a filtered connection. It passes
// the server's bytes to the client and sends the handler's error lines
// between them, only where the server's byte stream is at a line boundary,
// so that an error never lands inside a response. Every write is bounded by
// a write timeout; a client that does not take its bytes in time is
// disconnected. It is safe for concurrent use: the reading side queues
// replies while the next handler writes the server's bytes.
type replyWriter struct {
	conn      net.Conn      // the client connection
	timeout   time.Duration // for one write; 0: none
	limit     int           // the most bytes of replies queued at once
	onTimeout func()        // called once if a write times out

	mu       sync.Mutex
	midLine  bool      // the last byte written to the client was not a line feed
	pending  []byte    // error lines waiting for a line boundary
	timedOut bool      // the client stopped reading; the connection is closed
	deadline time.Time // the write deadline set last
}

// queue adds an error line (without its line feed) for the client; flush
// or the next Write sends it. It fails if more than limit bytes of replies
// would wait.
func (w *replyWriter) queue(reply []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending)+len(reply)+1 > w.limit {
		return fmt.Errorf("hashcash: more than %d bytes of error replies queued", w.limit)
	}
	w.pending = append(w.pending, reply...)
	w.pending = append(w.pending, '\n')
	return nil
}

// flush sends the queued error lines now if the server's stream is at a
// line boundary; otherwise Write sends them at the next boundary.
func (w *replyWriter) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.midLine {
		return nil
	}
	return w.flushLocked()
}

// flushLocked writes the queued error lines; w.mu must be held and the
// client stream must be at a line boundary.
func (w *replyWriter) flushLocked() error {
	if len(w.pending) == 0 {
		return nil
	}
	w.setDeadlineLocked()
	_, err := w.writeLocked(w.pending)
	w.pending = w.pending[:0]
	if err != nil {
		return fmt.Errorf("hashcash: writing error reply: %w", err)
	}
	return nil
}

// Write passes bytes from the server to the client, sending queued error
// lines at the first line boundary.
func (w *replyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setDeadlineLocked()
	written := 0
	if len(w.pending) > 0 && len(p) > 0 {
		if i := bytes.LastIndexByte(p, '\n'); i >= 0 {
			n, err := w.writeLocked(p[:i+1])
			written += n
			if err != nil {
				return written, err
			}
			w.midLine = false
			if err := w.flushLocked(); err != nil {
				return written, err
			}
			p = p[i+1:]
		}
	}
	if len(p) == 0 {
		return written, nil
	}
	n, err := w.writeLocked(p)
	written += n
	if n > 0 {
		w.midLine = p[n-1] != '\n'
	}
	if err == nil && !w.midLine {
		err = w.flushLocked()
	}
	return written, err
}

// finish sends any queued error lines, ending an unfinished server line
// first: the server's stream is over.
func (w *replyWriter) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return
	}
	if w.midLine {
		_, _ = w.writeLocked([]byte{'\n'})
		w.midLine = false
	}
	_ = w.flushLocked()
}

// setDeadlineLocked bounds the next write by the write timeout, up to
// slackFor(timeout) more: the deadline set last stands while it leaves the
// write at least the timeout. w.mu must be held.
func (w *replyWriter) setDeadlineLocked() {
	if w.timeout <= 0 {
		return
	}
	earliest := time.Now().Add(w.timeout)
	if w.deadline.Before(earliest) {
		w.deadline = earliest.Add(slackFor(w.timeout))
		_ = w.conn.SetWriteDeadline(w.deadline)
	}
}

// writeLocked writes to the client; w.mu must be held. A client that has
// not taken the bytes within the timeout is disconnected: the connection is
// closed, which also ends the reading side.
func (w *replyWriter) writeLocked(p []byte) (int, error) {
	n, err := w.conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && !w.timedOut {
		w.timedOut = true
		if w.onTimeout != nil {
			w.onTimeout()
		}
		_ = w.conn.Close()
	}
	return n, err
}
