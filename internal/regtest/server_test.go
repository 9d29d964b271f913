package regtest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// startServer serves s on a fresh 127.0.0.1 port and returns its address.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return ln.Addr().String()
}

// message is a decoded server line.
type message struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *rpcError       `json:"error"`
	raw    []byte
}

// client is a scripted Electrum client.
type client struct {
	t      *testing.T
	nc     net.Conn
	r      *bufio.Reader
	nextID int
	notes  []message // notifications received while waiting for replies
	sent   [][]byte
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReaderSize(nc, 1<<20)}
}

func (c *client) sendLine(line string) {
	c.t.Helper()
	c.sent = append(c.sent, []byte(line))
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() message {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	line = line[:len(line)-1]
	if bytes.ContainsAny(line, "\n\r") {
		c.t.Fatalf("newline inside message %q", line)
	}
	var m message
	if len(line) > 0 && line[0] == '[' { // batch reply: raw only
		if !json.Valid(line) {
			c.t.Fatalf("bad JSON line %q", line)
		}
		m.raw = line
		return m
	}
	if err := json.Unmarshal(line, &m); err != nil {
		c.t.Fatalf("bad JSON line %q: %v", line, err)
	}
	m.raw = line
	return m
}

// call sends a request the way Electrum 4.3.4 does (params omitted when
// empty) and returns the reply, collecting notifications on the way.
func (c *client) call(method string, params ...any) message {
	c.t.Helper()
	id := c.nextID
	c.nextID++
	req := map[string]any{"jsonrpc": "2.0", "method": method, "id": id}
	if len(params) > 0 {
		req["params"] = params
	}
	b, err := json.Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendLine(string(b))
	for {
		m := c.read()
		if m.Method != "" {
			c.notes = append(c.notes, m)
			continue
		}
		if string(m.ID) != fmt.Sprint(id) {
			c.t.Fatalf("reply id %s, want %d: %s", m.ID, id, m.raw)
		}
		return m
	}
}

func (c *client) result(method string, params ...any) json.RawMessage {
	c.t.Helper()
	m := c.call(method, params...)
	if m.Error != nil {
		c.t.Fatalf("%s: error %+v", method, m.Error)
	}
	return m.Result
}

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

func statusOf(items []historyItem) any {
	if len(items) == 0 {
		return nil
	}
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "%s:%d:", it.TxHash, it.Height)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// verifyMerkle checks a get_merkle reply against the header at its height,
// as Electrum's verifier does.
func verifyMerkle(t *testing.T, c *client, txid string, height int) {
	t.Helper()
	mr := decode[merkleResult](t, c.result("blockchain.transaction.get_merkle", txid, height))
	if mr.BlockHeight != height {
		t.Fatalf("merkle block_height %d, want %d", mr.BlockHeight, height)
	}
	hdrBytes, _ := hex.DecodeString(decode[string](t, c.result("blockchain.block.header", height)))
	var hdr blockHeader
	copy(hdr[:], hdrBytes)
	leaf, err := parseHashHex(txid)
	if err != nil {
		t.Fatal(err)
	}
	branch := make([][32]byte, len(mr.Merkle))
	for i, h := range mr.Merkle {
		if branch[i], err = parseHashHex(h); err != nil {
			t.Fatal(err)
		}
	}
	if rootFromBranch(leaf, branch, mr.Pos) != hdr.merkleRoot() {
		t.Fatalf("merkle proof for %s does not match header %d", txid, height)
	}
}

func TestElectrumSession(t *testing.T) {
	s, err := New(Config{Addresses: []string{testAddr1, testAddr2}, InitialBlocks: 2})
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, s)
	c := dial(t, addr)

	// Connect sequence of Electrum 4.3.4.
	ver := c.call("server.version", "electrum/4.3.4", "1.4")
	if string(ver.raw) != `{"jsonrpc":"2.0","result":["regtest-fixture 0.1","1.4"],"id":0}` {
		t.Fatalf("server.version reply %s", ver.raw)
	}
	tip := decode[headerResult](t, c.result("blockchain.headers.subscribe"))
	if tip.Height != 102 || len(tip.Hex) != 160 {
		t.Fatalf("headers.subscribe %+v", tip)
	}
	for _, n := range []int{25, 10, 5, 2} {
		if r := c.call("blockchain.estimatefee", n); string(r.Result) != "0.0001" {
			t.Fatalf("estimatefee: %s", r.raw)
		}
	}
	if r := c.call("blockchain.relayfee"); string(r.Result) != "1e-05" {
		t.Fatalf("relayfee: %s", r.raw)
	}
	for method, want := range map[string]string{
		"server.donation_address":   `""`,
		"server.peers.subscribe":    `[]`,
		"mempool.get_fee_histogram": `[]`,
		"server.ping":               `null`,
	} {
		if r := c.call(method); string(r.Result) != want || r.Error != nil {
			t.Fatalf("%s: %s", method, r.raw)
		}
	}
	if r := c.call("server.banner"); r.Error != nil || len(decode[string](t, r.Result)) == 0 {
		t.Fatalf("banner: %s", r.raw)
	}
	feat := decode[map[string]any](t, c.result("server.features"))
	if feat["genesis_hash"] != GenesisHash || feat["protocol_max"] != "1.4" || feat["hash_function"] != "sha256" {
		t.Fatalf("features %v", feat)
	}

	// Header chain: chunk plus single headers, linked by prev hash.
	chunk := decode[struct {
		Hex   string `json:"hex"`
		Count int    `json:"count"`
		Max   int    `json:"max"`
	}](t, c.result("blockchain.block.headers", 0, 2016))
	if chunk.Count != 103 || chunk.Max != 2016 || len(chunk.Hex) != 103*160 {
		t.Fatalf("block.headers count %d max %d len %d", chunk.Count, chunk.Max, len(chunk.Hex))
	}
	raw, _ := hex.DecodeString(chunk.Hex)
	prev := [32]byte{}
	for h := 0; h < chunk.Count; h++ {
		var hdr blockHeader
		copy(hdr[:], raw[h*80:])
		if hdr.prevHash() != prev {
			t.Fatalf("header %d does not link", h)
		}
		prev = hdr.hash()
		if h == 0 && hashHex(prev) != GenesisHash {
			t.Fatalf("first header is not genesis")
		}
		if single := decode[string](t, c.result("blockchain.block.header", h)); single != chunk.Hex[h*160:(h+1)*160] {
			t.Fatalf("block.header %d differs from chunk", h)
		}
	}
	if hashHex(prev) != s.TipHash() || chunk.Hex[102*160:] != tip.Hex {
		t.Fatal("chunk does not end at the tip")
	}
	if r := decode[map[string]any](t, c.result("blockchain.block.headers", 100, 10)); r["count"] != 3.0 {
		t.Fatalf("clipped count %v", r["count"])
	}
	if r := decode[map[string]any](t, c.result("blockchain.block.headers", 500, 10)); r["count"] != 0.0 || r["hex"] != "" {
		t.Fatalf("past-tip headers %v", r)
	}
	if r := c.call("blockchain.block.header", 103); r.Error == nil {
		t.Fatalf("header past tip: %s", r.raw)
	}
	if r := c.call("blockchain.block.header", 5, 50); r.Error == nil {
		t.Fatalf("cp_height accepted: %s", r.raw)
	}

	// Wallet sync for both addresses.
	sh1 := ScriptHash(scriptOf(t, testAddr1))
	for _, sh := range []string{sh1, ScriptHash(scriptOf(t, testAddr2))} {
		st := decode[any](t, c.result("blockchain.scripthash.subscribe", sh))
		hist := decode[[]historyItem](t, c.result("blockchain.scripthash.get_history", sh))
		if len(hist) != 1 || st != statusOf(hist) {
			t.Fatalf("status %v does not match history %+v", st, hist)
		}
		rawTx := decode[string](t, c.result("blockchain.transaction.get", hist[0].TxHash))
		if decode[string](t, c.result("blockchain.transaction.get", hist[0].TxHash, false)) != rawTx {
			t.Fatal("transaction.get with verbose=false differs")
		}
		txb, _ := hex.DecodeString(rawTx)
		if hashHex(sha256d(txb)) != hist[0].TxHash {
			t.Fatal("raw tx does not hash to its txid")
		}
		verifyMerkle(t, c, hist[0].TxHash, hist[0].Height)
	}
	empty := ScriptHash([]byte{0x00, 0x14, 0x01})
	if r := c.call("blockchain.scripthash.subscribe", empty); string(r.Result) != "null" {
		t.Fatalf("empty subscribe: %s", r.raw)
	}
	if r := c.call("blockchain.scripthash.get_history", empty); string(r.Result) != "[]" {
		t.Fatalf("empty history: %s", r.raw)
	}
	bal := decode[map[string]int64](t, c.result("blockchain.scripthash.get_balance", sh1))
	if bal["confirmed"] != DefaultCoinbaseValue || bal["unconfirmed"] != 0 {
		t.Fatalf("balance %v", bal)
	}
	utxos := decode[[]unspentItem](t, c.result("blockchain.scripthash.listunspent", sh1))
	if len(utxos) != 1 || utxos[0].Height != 1 || utxos[0].Value != DefaultCoinbaseValue || utxos[0].TxPos != 0 {
		t.Fatalf("listunspent %+v", utxos)
	}

	// Errors.
	if r := c.call("blockchain.transaction.get", hist0(t, c, sh1), true); r.Error == nil {
		t.Fatalf("verbose get: %s", r.raw)
	}
	if r := c.call("no.such.method"); r.Error == nil || r.Error.Code != -32601 {
		t.Fatalf("unknown method: %s", r.raw)
	}
	if r := c.call("blockchain.scripthash.subscribe", "xyz"); r.Error == nil {
		t.Fatalf("bad script hash: %s", r.raw)
	}
	c.sendLine(`{"jsonrpc":"2.0","method":"server.ping","id":`)
	if m := c.read(); m.Error == nil || m.Error.Code != -32700 || string(m.ID) != "null" {
		t.Fatalf("invalid JSON: %s", m.raw)
	}
	c.sendLine(`[{"jsonrpc":"2.0","method":"server.ping","id":"a"},{"jsonrpc":"2.0","method":"blockchain.block.header","params":[0],"id":"b"}]`)
	batch := c.read()
	var items []message
	if err := json.Unmarshal(batch.raw, &items); err != nil || len(items) != 2 || string(items[0].ID) != `"a"` ||
		string(items[1].Result) != `"`+genesisHeaderHex+`"` {
		t.Fatalf("batch reply %s", batch.raw)
	}
	c.sendLine(`{"jsonrpc":"2.0","method":"server.version","params":["x",["1.4","1.6"]],"id":"v2"}`)
	if m := c.read(); string(m.raw) != `{"jsonrpc":"2.0","result":["regtest-fixture 0.1","1.4"],"id":"v2"}` {
		t.Fatalf("server.version with a version range: %s", m.raw)
	}
	c.sendLine(`{"jsonrpc":"2.0","method":"blockchain.block.header","params":{"height":1},"id":3.5}`)
	if m := c.read(); m.Error == nil || m.Error.Code != codeInvalidParams || string(m.ID) != "3.5" {
		t.Fatalf("object params: %s", m.raw)
	}
	c.sendLine(`{"jsonrpc":"2.0","method":"server.ping"}`) // notification: no reply
	c.sendLine(`42`)
	if m := c.read(); m.Error == nil || m.Error.Code != codeInvalidRequest || string(m.ID) != "null" {
		t.Fatalf("non-object request: %s", m.raw)
	}
	if len(c.notes) != 0 {
		t.Fatalf("unexpected notifications %v", c.notes)
	}
}

func hist0(t *testing.T, c *client, sh string) string {
	t.Helper()
	return decode[[]historyItem](t, c.result("blockchain.scripthash.get_history", sh))[0].TxHash
}

func TestBroadcastAndMineNotifications(t *testing.T) {
	s, err := New(Config{Addresses: []string{testAddr1}})
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, s)
	w := dial(t, addr)     // the wallet: subscribed to its own address
	other := dial(t, addr) // an observer: subscribed to the recipient and headers
	sh1 := ScriptHash(scriptOf(t, testAddr1))
	sh2 := ScriptHash(scriptOf(t, testAddr2))
	w.result("server.version", "electrum/4.3.4", "1.4")
	w.result("blockchain.headers.subscribe")
	st1 := decode[any](t, w.result("blockchain.scripthash.subscribe", sh1))
	other.result("server.version", "electrum/4.3.4", "1.4")
	other.result("blockchain.headers.subscribe")
	if st := decode[any](t, other.result("blockchain.scripthash.subscribe", sh2)); st != nil {
		t.Fatalf("recipient status %v, want null", st)
	}

	tx := testSpend([]outPoint{coinbaseOut(s, 1)}, []txOut{
		{value: 100_000_000, script: scriptOf(t, testAddr2)},
		{value: DefaultCoinbaseValue - 100_000_000 - 1410, script: scriptOf(t, testAddr1)},
	})
	txid := hashHex(tx.txid)
	if got := decode[string](t, w.result("blockchain.transaction.broadcast", hex.EncodeToString(tx.raw))); got != txid {
		t.Fatalf("broadcast returned %s, want %s", got, txid)
	}
	if r := w.call("blockchain.transaction.broadcast", "0100"); r.Error == nil {
		t.Fatalf("garbage broadcast accepted: %s", r.raw)
	}
	if got := s.Mempool(); len(got) != 1 || got[0] != txid {
		t.Fatalf("mempool %v", got)
	}
	// Mempool notification to the wallet (it sent the tx) and the observer.
	expectStatus := func(c *client, sh string, wantHeights ...int) {
		t.Helper()
		var m message
		if len(c.notes) > 0 {
			m, c.notes = c.notes[0], c.notes[1:]
		} else {
			m = c.read()
		}
		if m.Method != "blockchain.scripthash.subscribe" {
			t.Fatalf("got %s, want scripthash notification", m.raw)
		}
		p := decode[[]any](t, m.Params)
		hist := decode[[]historyItem](t, c.result("blockchain.scripthash.get_history", sh))
		if len(p) != 2 || p[0] != sh || p[1] != statusOf(hist) {
			t.Fatalf("notification %s does not match history %+v", m.raw, hist)
		}
		if len(hist) != len(wantHeights) {
			t.Fatalf("history %+v, want heights %v", hist, wantHeights)
		}
		for i, h := range wantHeights {
			if hist[i].Height != h {
				t.Fatalf("history %+v, want heights %v", hist, wantHeights)
			}
			if h == 0 && (hist[i].Fee == nil || *hist[i].Fee != 1410) {
				t.Fatalf("mempool item without fee 1410: %+v", hist[i])
			}
		}
	}
	expectStatus(w, sh1, 1, 0)
	expectStatus(other, sh2, 0)
	if mp := decode[[]historyItem](t, other.result("blockchain.scripthash.get_mempool", sh2)); len(mp) != 1 || mp[0].TxHash != txid {
		t.Fatalf("get_mempool %+v", mp)
	}
	if got := decode[string](t, other.result("blockchain.transaction.get", txid)); got != hex.EncodeToString(tx.raw) {
		t.Fatal("transaction.get of a mempool tx returns other bytes")
	}

	s.Mine(1)
	for _, c := range []*client{w, other} {
		m := c.read()
		if m.Method != "blockchain.headers.subscribe" {
			t.Fatalf("got %s, want header notification", m.raw)
		}
		hdrs := decode[[]headerResult](t, m.Params)
		if len(hdrs) != 1 || hdrs[0].Height != 102 || hdrs[0].Hex != decode[string](t, c.result("blockchain.block.header", 102)) {
			t.Fatalf("header notification %s", m.raw)
		}
	}
	expectStatus(w, sh1, 1, 102)
	expectStatus(other, sh2, 102)
	verifyMerkle(t, other, txid, 102)
	if decode[any](t, w.result("blockchain.scripthash.subscribe", sh1)) == st1 {
		t.Fatal("status did not change")
	}
	if b, _ := s.Balance(testAddr2); b != 100_000_000 {
		t.Fatalf("recipient balance %d", b)
	}
	if len(s.Mempool()) != 0 {
		t.Fatal("mempool not empty")
	}
	// Nothing else pending: a ping must be the next line.
	for _, c := range []*client{w, other} {
		if r := c.call("server.ping"); len(c.notes) != 0 || string(r.Result) != "null" {
			t.Fatalf("extra notifications %v", c.notes)
		}
	}
}

func TestRequestRecorder(t *testing.T) {
	var log bytes.Buffer
	s, err := New(Config{Addresses: []string{testAddr1}, RequestLog: &log})
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, s)
	c1 := dial(t, addr)
	c1.call("server.version", "electrum/4.3.4", "1.4")
	c1.sendLine(`{"id":7,"method":"server.ping" ,  "jsonrpc":"2.0"}` + "\r")
	c1.read()
	c2 := dial(t, addr)
	c2.call("blockchain.headers.subscribe")
	c1.call("blockchain.estimatefee", 2)
	c1.sendLine(`not json`)
	c1.read()
	// A fragment without '\n' is not a request.
	if _, err := c2.nc.Write([]byte(`{"jsonrpc":"2.0","method":"server.ping","id":99}`)); err != nil {
		t.Fatal(err)
	}
	c2.nc.Close()

	want := append(append([][]byte{}, c1.sent[:2]...), c2.sent[0])
	want = append(want, c1.sent[2:]...)
	got := s.Requests()
	if len(got) != len(want) {
		t.Fatalf("recorded %d requests, want %d: %q", len(got), len(want), got)
	}
	var wantLog bytes.Buffer
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("request %d: %q, want %q", i, got[i], want[i])
		}
		wantLog.Write(want[i])
		wantLog.WriteByte('\n')
	}
	got[0][0] = 'X'
	if s.Requests()[0][0] == 'X' {
		t.Fatal("Requests returned shared memory")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(log.Bytes(), wantLog.Bytes()) {
		t.Fatalf("request log %q, want %q", log.Bytes(), wantLog.Bytes())
	}
}

func TestOversizeLine(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, startServer(t, s))
	big := `{"jsonrpc":"2.0","method":"server.ping","id":1,"params":["` + strings.Repeat("a", maxLineSize) + `"]}`
	go c.nc.Write([]byte(big + "\n"))
	if m := c.read(); m.Error == nil || m.Error.Code != codeInvalidRequest {
		t.Fatalf("oversize line reply %s", m.raw)
	}
	if r := c.call("server.ping"); string(r.Result) != "null" {
		t.Fatalf("connection unusable after oversize line: %s", r.raw)
	}
	if n := len(s.Requests()); n != 1 {
		t.Fatalf("recorded %d requests, want 1 (the ping)", n)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	c := dial(t, ln.Addr().String())
	c.call("server.version", "x", "1.4")
	idle := dial(t, ln.Addr().String())
	_ = idle
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadByte(); err == nil {
		t.Fatal("connection still open after Close")
	}
	if err := s.Serve(ln); err == nil {
		t.Fatal("Serve after Close succeeded")
	}
	testsupport.WaitFor(t, fmt.Sprintf("the goroutines to drop back to the %d before Close", before), func() bool { return runtime.NumGoroutine() <= before })
	s.Mine(1) // still usable as a chain, with no connections
	if s.Height() != 102 {
		t.Fatalf("height %d", s.Height())
	}
}
