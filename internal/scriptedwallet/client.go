// Package scriptedwallet is an Electrum-shaped client for tests and demos:
// it speaks newline-delimited JSON-RPC 2.0 the way Electrum 4.3.4 does
// (integer ids from 0 per connection, "params" omitted when empty, one
// request per line, pipelined, never batched) and replays the requests
// Electrum 4.3.4 sends when it connects to its main server and synchronizes
// a wallet from a fresh data directory: server.version,
// blockchain.headers.subscribe, estimatefee ×4, block.header, server.banner,
// server.donation_address, server.peers.subscribe, blockchain.relayfee,
// mempool.get_fee_histogram, the rest of the header catch-up (block.header 0,
// block.headers per 2016-chunk), then blockchain.scripthash.subscribe for
// every address (more as the gap limit requires) and, for each address with
// history, get_history, transaction.get and get_merkle, with the checks
// Electrum makes (status hash, header chain links, SPV merkle proof).
// TestConnectSequence pins the sequence to one captured from Electrum 4.3.4.
//
// It owns no keys: its "addresses" are watch-only P2WPKH programs, so it can
// receive and verify, not spend.
package scriptedwallet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// RPCError is a JSON-RPC error answer.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string {
	if len(e.Data) > 0 {
		return fmt.Sprintf("error %d: %s (data %s)", e.Code, e.Message, e.Data)
	}
	return fmt.Sprintf("error %d: %s", e.Code, e.Message)
}

// Call is one request and its answer.
type Call struct {
	Method string
	ID     int
	// Line is the request line as sent, without its '\n'.
	Line []byte
	// Sent is when the line was written; Answered when the answer arrived.
	Sent, Answered time.Time
	// Result is the raw result; Err the error answer or the failure.
	Result json.RawMessage
	Err    error

	done chan struct{}
}

// Latency is the time from sending the request to its answer.
func (c *Call) Latency() time.Duration { return c.Answered.Sub(c.Sent) }

// Wait waits for the answer or ctx's end.
func (c *Call) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.Err
	case <-ctx.Done():
		return fmt.Errorf("%s (id %d): %w", c.Method, c.ID, ctx.Err())
	}
}

// Client is one Electrum protocol connection.
type Client struct {
	conn net.Conn

	wmu    sync.Mutex
	nextID int

	mu      sync.Mutex
	pending map[int]*Call
	calls   []*Call
	err     error
	closed  chan struct{}
}

// Dial connects to addr.
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewClient(conn), nil
}

// NewClient runs the protocol on conn.
func NewClient(conn net.Conn) *Client {
	c := &Client{conn: conn, pending: map[int]*Call{}, closed: make(chan struct{})}
	go c.read()
	return c
}

// Close closes the connection.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.closed
	return err
}

// Calls returns every call made so far, in sending order.
func (c *Client) Calls() []*Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Call(nil), c.calls...)
}

// Request formats a request line the way Electrum 4.3.4 does.
func Request(method string, id int, params ...any) ([]byte, error) {
	m, err := json.Marshal(method)
	if err != nil {
		return nil, err
	}
	line := []byte(`{"jsonrpc":"2.0","method":`)
	line = append(line, m...)
	line = append(line, `,"id":`...)
	line = strconv.AppendInt(line, int64(id), 10)
	if len(params) > 0 {
		p, err := json.Marshal(params)
		if err != nil {
			return nil, err
		}
		line = append(line, `,"params":`...)
		line = append(line, p...)
	}
	return append(line, '}'), nil
}

// Go sends a request without waiting for its answer.
func (c *Client) Go(method string, params ...any) *Call {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	call := &Call{Method: method, ID: c.nextID, done: make(chan struct{})}
	c.nextID++
	line, err := Request(method, call.ID, params...)
	if err != nil {
		call.Err = err
		close(call.done)
		return call
	}
	call.Line = line
	c.mu.Lock()
	if c.err != nil {
		call.Err = c.err
		c.mu.Unlock()
		close(call.done)
		return call
	}
	c.pending[call.ID] = call
	c.calls = append(c.calls, call)
	c.mu.Unlock()
	call.Sent = time.Now()
	c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write(append(line, '\n')); err != nil {
		c.fail(fmt.Errorf("write: %w", err))
	}
	return call
}

// Call sends a request and waits for its answer, decoding the result into
// result (if not nil).
func (c *Client) Call(ctx context.Context, result any, method string, params ...any) error {
	call := c.Go(method, params...)
	if err := call.Wait(ctx); err != nil {
		return err
	}
	if result != nil {
		if err := json.Unmarshal(call.Result, result); err != nil {
			return fmt.Errorf("%s: result %s: %v", method, call.Result, err)
		}
	}
	return nil
}

func (c *Client) read() {
	defer close(c.closed)
	r := bufio.NewReaderSize(c.conn, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			c.handle(line[:len(line)-1])
		}
		if err != nil {
			c.fail(fmt.Errorf("connection: %w", err))
			return
		}
	}
}

func (c *Client) handle(line []byte) {
	now := time.Now()
	var msg struct {
		ID     *json.RawMessage `json:"id"`
		Method string           `json:"method"`
		Result json.RawMessage  `json:"result"`
		Error  *RPCError        `json:"error"`
	}
	if err := json.Unmarshal(line, &msg); err != nil {
		c.fail(fmt.Errorf("bad answer %q: %v", line, err))
		return
	}
	if msg.Method != "" && msg.ID == nil {
		return // a notification: the scripted wallet does not act on them
	}
	var id int
	if msg.ID == nil || json.Unmarshal(*msg.ID, &id) != nil {
		// An error without a usable id (e.g. a parse error).
		if msg.Error != nil {
			c.fail(fmt.Errorf("server: %w", msg.Error))
		}
		return
	}
	c.mu.Lock()
	call := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if call == nil {
		return
	}
	call.Answered = now
	if msg.Error != nil {
		call.Err = fmt.Errorf("%s: %w", call.Method, msg.Error)
	} else {
		call.Result = msg.Result
	}
	close(call.done)
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	pending := c.pending
	c.pending = map[int]*Call{}
	c.mu.Unlock()
	now := time.Now()
	for _, call := range pending {
		call.Answered = now
		call.Err = fmt.Errorf("%s: %w", call.Method, err)
		close(call.done)
	}
	c.conn.Close()
}

// ErrClosed is returned for calls on a failed connection.
var ErrClosed = errors.New("connection closed")
