package regtest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// JSON-RPC and Electrum error codes.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeBadRequest     = 1 // ElectrumX BAD_REQUEST
	codeDaemonError    = 2 // ElectrumX DAEMON_ERROR
)

// maxHeadersPerRequest is the "max" of blockchain.block.headers.
const maxHeadersPerRequest = 2016

var nullID = json.RawMessage("null")

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

func errorf(code int, format string, args ...any) *rpcError {
	return &rpcError{Code: code, Message: fmt.Sprintf(format, args...)}
}

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	ID      json.RawMessage `json:"id"`
	Params  json.RawMessage `json:"params"`
}

type resultResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result"`
	ID      json.RawMessage `json:"id"`
}

type errorResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Error   rpcError        `json:"error"`
	ID      json.RawMessage `json:"id"`
}

type notification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  []any  `json:"params"`
}

type headerResult struct {
	Hex    string `json:"hex"`
	Height int    `json:"height"`
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("regtest: marshal %T: %v", v, err))
	}
	return b
}

// statusValue turns a status into its JSON value: a string or null.
func statusValue(st string) any {
	if st == "" {
		return nil
	}
	return st
}

// processLine handles one request line, a single request or a batch, and
// returns the reply line (nil when nothing is to be sent). s.mu is held.
func (s *Server) processLine(c *conn, line []byte, ch *changes) []byte {
	trimmed := bytes.TrimSpace(line)
	if !json.Valid(trimmed) {
		return mustMarshal(errorResponse{JSONRPC: "2.0", Error: rpcError{Code: codeParseError, Message: "invalid JSON"}, ID: nullID})
	}
	if trimmed[0] != '[' {
		return s.processOne(c, trimmed, ch)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(trimmed, &items); err != nil || len(items) == 0 {
		return mustMarshal(errorResponse{JSONRPC: "2.0", Error: rpcError{Code: codeInvalidRequest, Message: "invalid batch"}, ID: nullID})
	}
	var replies []json.RawMessage
	for _, it := range items {
		if r := s.processOne(c, it, ch); r != nil {
			replies = append(replies, r)
		}
	}
	if len(replies) == 0 {
		return nil
	}
	return mustMarshal(replies)
}

// processOne handles one request object. Requests without an id are
// notifications and get no reply.
func (s *Server) processOne(c *conn, msg json.RawMessage, ch *changes) []byte {
	var req request
	if len(msg) == 0 || msg[0] != '{' {
		return mustMarshal(errorResponse{JSONRPC: "2.0", Error: rpcError{Code: codeInvalidRequest, Message: "request must be an object"}, ID: nullID})
	}
	if err := json.Unmarshal(msg, &req); err != nil {
		return mustMarshal(errorResponse{JSONRPC: "2.0", Error: rpcError{Code: codeInvalidRequest, Message: "invalid request: " + err.Error()}, ID: nullID})
	}
	id := req.ID
	if req.Method == "" {
		if id == nil {
			id = nullID
		}
		return mustMarshal(errorResponse{JSONRPC: "2.0", Error: rpcError{Code: codeInvalidRequest, Message: "missing method"}, ID: id})
	}
	result, rerr := s.dispatch(c, req.Method, req.Params, ch)
	if rerr != nil {
		s.log.Debug("request failed", "conn", c.id, "method", req.Method, "code", rerr.Code, "err", rerr.Message)
	}
	if id == nil {
		return nil
	}
	if rerr != nil {
		return mustMarshal(errorResponse{JSONRPC: "2.0", Error: *rerr, ID: id})
	}
	raw, ok := result.(json.RawMessage)
	if !ok {
		raw = mustMarshal(result)
	}
	return mustMarshal(resultResponse{JSONRPC: "2.0", Result: raw, ID: id})
}

// params is a decoded positional parameter list.
type params []json.RawMessage

func parseParams(raw json.RawMessage) (params, *rpcError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, nullID) {
		return nil, nil
	}
	var p params
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, errorf(codeInvalidParams, "params must be an array")
	}
	return p, nil
}

func (p params) count(min, max int) *rpcError {
	if len(p) < min || len(p) > max {
		if min == max {
			return errorf(codeInvalidParams, "expected %d params, got %d", min, len(p))
		}
		return errorf(codeInvalidParams, "expected %d to %d params, got %d", min, max, len(p))
	}
	return nil
}

func (p params) str(i int) (string, *rpcError) {
	var v string
	if err := json.Unmarshal(p[i], &v); err != nil {
		return "", errorf(codeInvalidParams, "param %d must be a string", i)
	}
	return v, nil
}

func (p params) int(i int) (int, *rpcError) {
	var n json.Number
	if err := json.Unmarshal(p[i], &n); err != nil {
		return 0, errorf(codeInvalidParams, "param %d must be an integer", i)
	}
	v, err := strconv.Atoi(n.String())
	if err != nil {
		return 0, errorf(codeInvalidParams, "param %d must be an integer", i)
	}
	return v, nil
}

func (p params) bool(i int) (bool, *rpcError) {
	var v bool
	if err := json.Unmarshal(p[i], &v); err != nil {
		return false, errorf(codeInvalidParams, "param %d must be a boolean", i)
	}
	return v, nil
}

func (p params) scriptHash(i int) (string, *rpcError) {
	sh, rerr := p.str(i)
	if rerr != nil {
		return "", rerr
	}
	if _, err := parseHashHex(sh); err != nil {
		return "", errorf(codeBadRequest, "%s is not a valid script hash", strconv.Quote(sh))
	}
	return sh, nil
}

func (p params) txid(i int) ([32]byte, *rpcError) {
	s, rerr := p.str(i)
	if rerr != nil {
		return [32]byte{}, rerr
	}
	h, err := parseHashHex(s)
	if err != nil {
		return [32]byte{}, errorf(codeBadRequest, "%s should be a transaction hash", strconv.Quote(s))
	}
	return h, nil
}

// dispatch runs one method with s.mu held. The result is JSON-marshalled by
// the caller unless it already is a json.RawMessage.
func (s *Server) dispatch(c *conn, method string, rawParams json.RawMessage, ch *changes) (any, *rpcError) {
	p, rerr := parseParams(rawParams)
	if rerr != nil {
		return nil, rerr
	}
	ch0 := s.chain
	switch method {
	case "server.version":
		if rerr := p.count(0, 2); rerr != nil {
			return nil, rerr
		}
		return []string{ServerVersion, ProtocolVersion}, nil
	case "server.ping":
		return nil, p.count(0, 0)
	case "server.features":
		if rerr := p.count(0, 0); rerr != nil {
			return nil, rerr
		}
		return map[string]any{
			"genesis_hash":   GenesisHash,
			"hosts":          map[string]any{},
			"protocol_min":   ProtocolVersion,
			"protocol_max":   ProtocolVersion,
			"hash_function":  "sha256",
			"server_version": ServerVersion,
			"pruning":        nil,
		}, nil
	case "server.banner":
		return "You are connected to " + ServerVersion + ", a regtest test fixture.", p.count(0, 0)
	case "server.donation_address":
		return "", p.count(0, 0)
	case "server.peers.subscribe":
		return []any{}, p.count(0, 0)
	case "blockchain.headers.subscribe":
		if rerr := p.count(0, 0); rerr != nil {
			return nil, rerr
		}
		c.headersSub = true
		return headerResult{Hex: ch0.tip().header.hex(), Height: ch0.height()}, nil
	case "blockchain.block.header":
		return s.blockHeader(p)
	case "blockchain.block.headers":
		return s.blockHeaders(p)
	case "blockchain.estimatefee":
		if rerr := p.count(1, 2); rerr != nil {
			return nil, rerr
		}
		if _, rerr := p.int(0); rerr != nil {
			return nil, rerr
		}
		return json.RawMessage("0.0001"), nil
	case "blockchain.relayfee":
		return json.RawMessage("1e-05"), p.count(0, 0)
	case "mempool.get_fee_histogram":
		return []any{}, p.count(0, 0)
	case "blockchain.scripthash.subscribe":
		sh, rerr := oneScriptHash(p)
		if rerr != nil {
			return nil, rerr
		}
		st := ch0.status(sh)
		c.subs[sh] = st
		return statusValue(st), nil
	case "blockchain.scripthash.unsubscribe":
		sh, rerr := oneScriptHash(p)
		if rerr != nil {
			return nil, rerr
		}
		_, ok := c.subs[sh]
		delete(c.subs, sh)
		return ok, nil
	case "blockchain.scripthash.get_history":
		sh, rerr := oneScriptHash(p)
		if rerr != nil {
			return nil, rerr
		}
		return ch0.history(sh), nil
	case "blockchain.scripthash.get_mempool":
		sh, rerr := oneScriptHash(p)
		if rerr != nil {
			return nil, rerr
		}
		items := []historyItem{}
		for _, it := range ch0.history(sh) {
			if it.Fee != nil {
				items = append(items, it)
			}
		}
		return items, nil
	case "blockchain.scripthash.get_balance":
		sh, rerr := oneScriptHash(p)
		if rerr != nil {
			return nil, rerr
		}
		conf, unconf := ch0.balance(sh)
		return map[string]int64{"confirmed": conf, "unconfirmed": unconf}, nil
	case "blockchain.scripthash.listunspent":
		sh, rerr := oneScriptHash(p)
		if rerr != nil {
			return nil, rerr
		}
		return ch0.listUnspent(sh), nil
	case "blockchain.transaction.get":
		return s.transactionGet(p)
	case "blockchain.transaction.get_merkle":
		return s.transactionGetMerkle(p)
	case "blockchain.transaction.broadcast":
		return s.broadcast(c, p, ch)
	default:
		return nil, errorf(codeMethodNotFound, "unknown method %s", strconv.Quote(method))
	}
}

func oneScriptHash(p params) (string, *rpcError) {
	if rerr := p.count(1, 1); rerr != nil {
		return "", rerr
	}
	return p.scriptHash(0)
}

func (s *Server) heightParam(p params, i int) (int, *rpcError) {
	h, rerr := p.int(i)
	if rerr != nil {
		return 0, rerr
	}
	if h < 0 || h > s.chain.height() {
		return 0, errorf(codeBadRequest, "height %d out of range", h)
	}
	return h, nil
}

// checkpointParam rejects a non-zero cp_height: header checkpoint proofs
// are not implemented.
func checkpointParam(p params, i int) *rpcError {
	if len(p) <= i {
		return nil
	}
	cp, rerr := p.int(i)
	if rerr != nil {
		return rerr
	}
	if cp != 0 {
		return errorf(codeBadRequest, "cp_height %d: checkpoint proofs are not supported by this test server", cp)
	}
	return nil
}

func (s *Server) blockHeader(p params) (any, *rpcError) {
	if rerr := p.count(1, 2); rerr != nil {
		return nil, rerr
	}
	h, rerr := s.heightParam(p, 0)
	if rerr != nil {
		return nil, rerr
	}
	if rerr := checkpointParam(p, 1); rerr != nil {
		return nil, rerr
	}
	return s.chain.blocks[h].header.hex(), nil
}

func (s *Server) blockHeaders(p params) (any, *rpcError) {
	if rerr := p.count(2, 3); rerr != nil {
		return nil, rerr
	}
	start, rerr := p.int(0)
	if rerr != nil {
		return nil, rerr
	}
	count, rerr := p.int(1)
	if rerr != nil {
		return nil, rerr
	}
	if start < 0 || count < 0 {
		return nil, errorf(codeBadRequest, "start_height %d and count %d must be non-negative", start, count)
	}
	if rerr := checkpointParam(p, 2); rerr != nil {
		return nil, rerr
	}
	count = min(count, maxHeadersPerRequest, max(0, s.chain.height()+1-start))
	buf := make([]byte, 0, count*headerSize*2)
	for h := start; h < start+count; h++ {
		buf = hex.AppendEncode(buf, s.chain.blocks[h].header[:])
	}
	return map[string]any{"hex": string(buf), "count": count, "max": maxHeadersPerRequest}, nil
}

func (s *Server) transactionGet(p params) (any, *rpcError) {
	if rerr := p.count(1, 2); rerr != nil {
		return nil, rerr
	}
	txid, rerr := p.txid(0)
	if rerr != nil {
		return nil, rerr
	}
	if len(p) == 2 {
		verbose, rerr := p.bool(1)
		if rerr != nil {
			return nil, rerr
		}
		if verbose {
			return nil, errorf(codeBadRequest, "verbose transactions are not supported by this test server")
		}
	}
	rec, ok := s.chain.txs[txid]
	if !ok {
		return nil, errorf(codeDaemonError, "daemon error: No such mempool or blockchain transaction %s", hashHex(txid))
	}
	return hex.EncodeToString(rec.tx.raw), nil
}

type merkleResult struct {
	BlockHeight int      `json:"block_height"`
	Merkle      []string `json:"merkle"`
	Pos         int      `json:"pos"`
}

func (s *Server) transactionGetMerkle(p params) (any, *rpcError) {
	if rerr := p.count(2, 2); rerr != nil {
		return nil, rerr
	}
	txid, rerr := p.txid(0)
	if rerr != nil {
		return nil, rerr
	}
	h, rerr := p.int(1)
	if rerr != nil {
		return nil, rerr
	}
	branch, pos, err := s.chain.merkleProof(txid, h)
	if err != nil {
		return nil, errorf(codeBadRequest, "%v", err)
	}
	res := merkleResult{BlockHeight: h, Merkle: make([]string, len(branch)), Pos: pos}
	for i, b := range branch {
		res.Merkle[i] = hashHex(b)
	}
	return res, nil
}

func (s *Server) broadcast(c *conn, p params, ch *changes) (any, *rpcError) {
	if rerr := p.count(1, 1); rerr != nil {
		return nil, rerr
	}
	rawHex, rerr := p.str(0)
	if rerr != nil {
		return nil, rerr
	}
	raw, err := hex.DecodeString(rawHex)
	if err != nil {
		return nil, errorf(codeBadRequest, "the transaction was rejected by network rules.\n\nTX decode failed: %v\n[%s]", err, rawHex)
	}
	tx, err := parseTransaction(raw)
	if err != nil {
		return nil, errorf(codeBadRequest, "the transaction was rejected by network rules.\n\nTX decode failed: %v\n[%s]", err, rawHex)
	}
	rec, added, err := s.chain.accept(tx)
	if err != nil {
		var rej *rejectError
		if errors.As(err, &rej) {
			return nil, errorf(codeBadRequest, "the transaction was rejected by network rules.\n\n%s\n[%s]", rej.reason, rawHex)
		}
		return nil, errorf(codeBadRequest, "broadcast: %v", err)
	}
	txid := hashHex(rec.tx.txid)
	if added {
		s.log.Info("transaction accepted", "conn", c.id, "txid", txid, "fee", rec.fee)
		for _, sh := range rec.touched {
			ch.touch(sh)
		}
	}
	return txid, nil
}
