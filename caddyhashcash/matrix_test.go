package caddyhashcash_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/caddyhashcash"
	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/testsupport"
)

// matrixUpdateDoc makes TestBadInputMatrix rewrite docs/security.md's table
// ("Bad input: what each gets"):
//
//	go test ./caddyhashcash -run TestBadInputMatrix -update-doc
var matrixUpdateDoc = flag.Bool("update-doc", false,
	"TestBadInputMatrix: rewrite the table between docs/security.md's security-matrix markers")

// The configuration every row of the matrix runs against: a small price,
// so that minting is quick, a small max_rejections, so that strikes can be
// counted, and every other option at its default, as operators run it.
const (
	mxPrice   = 64
	mxMaxRej  = 3
	mxMaxLine = caddyhashcash.DefaultMaxLineBytes
	mxWindow  = int64(caddyhashcash.DefaultWindow / time.Second)
	mxSkew    = int64(caddyhashcash.DefaultMaxSkew / time.Second)
	mxMethod  = "blockchain.transaction.get"
	// mxTx is the params of most requests: one transaction id.
	mxTx = `["4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"]`
)

// mxOptions is the handler's JSON options for the matrix.
var mxOptions = fmt.Sprintf(`"price":%d,"max_rejections":%d`, mxPrice, mxMaxRej)

// Where the generated table sits: the document, and the markers around it.
const (
	mxDocPath     = "../docs/security.md"
	mxBeginMarker = "<!-- security-matrix:begin"
	mxEndMarker   = "<!-- security-matrix:end -->"
)

// mxReply is one error a refusal must hold: its reason, and the raw JSON id
// it must carry.
type mxReply struct {
	reason stamp.Reason
	id     string
}

// mxCase is one row of the matrix: a bad input sent on a connection of its
// own, and everything the handler must do about it.
type mxCase struct {
	name  string // subtest name
	input string // docs/security.md: what the client sends, in Markdown

	// line returns the line to send (without its line feed) and, for a line
	// that must be accepted, the bytes the server must receive for it
	// (without line feed); forward is empty for a line that must be
	// refused. It may first use c, or connections it dials itself, for what
	// the case needs (the first copy of a replayed stamp).
	line func(k *mxKit, c *client) (send, forward string)
	// chunk, if positive, sends the line in writes of this many bytes and
	// its line feed in the write of the request that follows, instead of
	// the whole in one write.
	chunk int

	// replies is the refusal the line must get: one error line, or with
	// batch an array with one error per element, in order. Without batch,
	// more than one reply means the input is that many lines, each
	// answered by a line of its own.
	replies []mxReply
	batch   bool
	// strikes is how many strikes the refusal counts toward max_rejections.
	strikes int
	// after, if set, runs after the request that follows the case's line
	// has been answered: further checks of what the refusal left behind.
	after func(k *mxKit, c *client)

	// run, if set, replaces the standard steps (see runCase).
	run func(k *mxKit)

	// docs/security.md texts that replace the ones derived from the fields
	// above.
	idText, connText, serverText string
}

// mxKit is what a case works with: caddy's address, the address the case
// connects from, the recording upstream and every byte the upstream must
// have received so far.
type mxKit struct {
	t    *testing.T
	addr string
	src  string
	up   *testsupport.Upstream
	want *bytes.Buffer
}

// TestBadInputMatrix sends each bad input of mxCases to caddy (hashcash then
// proxy) on a connection of its own and checks the exact refusal, that the
// connection is kept and loses nothing (a valid request sent right behind
// the bad line is answered), how many strikes the refusal counts (the
// connection must close after exactly max_rejections minus that many more),
// and that the upstream received exactly the bytes of the accepted requests:
// nothing of any refused line. It also checks that docs/security.md's table,
// between the security-matrix markers, is the one these cases render; run it
// with -update-doc to rewrite that table.
func TestBadInputMatrix(t *testing.T) {
	cases := mxCases()
	t.Run("doc", func(t *testing.T) { mxCheckDoc(t, cases) })

	addr, up := setup(t, mxOptions)
	k := &mxKit{addr: addr, up: up, want: new(bytes.Buffer)}
	for i, tc := range cases {
		ok := t.Run(tc.name, func(t *testing.T) {
			kk := *k
			kk.t = t
			kk.src = fmt.Sprintf("127.5.%d.1", 1+i)
			if tc.run != nil {
				tc.run(&kk)
				return
			}
			kk.runCase(&tc)
		})
		if !ok {
			// Let later rows start from what the upstream really holds,
			// so that one failure does not fail every row after it.
			time.Sleep(100 * time.Millisecond)
			k.want.Reset()
			k.want.Write(up.Received())
		}
	}
	// A last request on a fresh connection: nothing of any row arrived
	// after that row's own checks.
	t.Run("final_control", func(t *testing.T) {
		kk := *k
		kk.t = t
		kk.src = "127.5.254.1"
		c := kk.dial()
		send, body := kk.control("final")
		kk.accept(c, send, body)
		if got := up.Received(); !bytes.Equal(got, k.want.Bytes()) {
			t.Fatalf("upstream received %d bytes, want exactly the %d of the accepted requests", len(got), k.want.Len())
		}
	})
}

// runCase runs the standard steps of tc: send the line with a valid control
// request behind it in the same write, read the refusal (or the answer to
// an accepted line), then the control's answer, then check that the
// upstream holds exactly the accepted bytes, and finally count the strikes
// left before the connection closes.
func (k *mxKit) runCase(tc *mxCase) {
	c := k.dial()
	send, forward := tc.line(k, c)
	control, controlBody := k.control(tc.name)
	if tc.chunk > 0 {
		for i := 0; i < len(send); i += tc.chunk {
			c.send(send[i:min(i+tc.chunk, len(send))])
		}
		c.send("\n" + control + "\n")
	} else {
		c.send(send + "\n" + control + "\n")
	}
	if forward != "" {
		k.expectResult(c, mxIDOf(k.t, forward))
		k.want.WriteString(forward + "\n")
	} else if tc.batch {
		k.expectRefusal(c, true, tc.replies...)
	} else {
		for _, r := range tc.replies {
			k.expectRefusal(c, false, r)
		}
	}
	if tc.strikes >= mxMaxRej {
		// The refusal used up max_rejections: the connection closes right
		// after its reply, without reading the request behind the line,
		// which is then accepted on a new connection (its stamp unused).
		mxExpectClosed(k.t, c)
		k.accept(k.dial(), control, controlBody)
		return
	}
	// The next line must be the control's answer: exactly one reply per
	// refused line, and nothing behind the bad line was lost.
	k.expectResult(c, mxIDOf(k.t, controlBody))
	k.forwarded(controlBody)
	if tc.after != nil {
		tc.after(k, c)
	}
	k.strikesLeft(c, mxMaxRej-tc.strikes)
}

// dial connects to caddy from the case's own client network, k.src, a
// 127.5.N.0/24 that no other test uses: a case whose connection is closed
// for too many strikes holds its network's place in max_conns_per_prefix
// for rejection_cooldown, which must not crowd out the cases after it.
func (k *mxKit) dial() *client {
	k.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(k.src)}}
	c, err := d.Dial("tcp", k.addr)
	if err != nil {
		k.t.Fatalf("dial from %s: %v", k.src, err)
	}
	k.t.Cleanup(func() { c.Close() })
	return &client{t: k.t, Conn: c, r: bufio.NewReaderSize(c, 1<<20)}
}

// mint returns line stamped for the matrix's resource and price, now.
func (k *mxKit) mint(line string) string {
	k.t.Helper()
	return mintLine(k.t, line, resource, mxPrice, time.Now())
}

// control returns a fresh valid stamped request and its unstamped body.
func (k *mxKit) control(name string) (send, body string) {
	k.t.Helper()
	id, _ := json.Marshal("control " + name)
	body = mxReq(string(id), mxTx)
	return k.mint(body), body
}

// accept sends a stamped request on c, checks that the upstream answers
// it, and that the upstream received body.
func (k *mxKit) accept(c *client, send, body string) {
	k.t.Helper()
	c.send(send + "\n")
	k.expectResult(c, mxIDOf(k.t, body))
	k.forwarded(body)
}

// forwarded adds body and its line feed to what the upstream must have
// received, and waits until it has received exactly that.
func (k *mxKit) forwarded(body string) {
	k.t.Helper()
	k.want.WriteString(body + "\n")
	waitReceived(k.t, k.up, k.want.Bytes())
}

// sized returns a valid stamped request whose line is exactly n bytes long
// (without its line feed), and its unstamped body.
func (k *mxKit) sized(id string, n int) (send, body string) {
	k.t.Helper()
	pad := n - 250
	for range 50 {
		body = mxReq(id, `["`+strings.Repeat("a", pad)+`"]`)
		send = k.mint(body)
		if len(send) == n {
			return send, body
		}
		pad += n - len(send) // the stamp's length varies with its counter
	}
	k.t.Fatalf("could not make a stamped line of %d bytes", n)
	return "", ""
}

// expectResult reads one line from c and checks it is the upstream's
// answer (a result, not an error) to the request with the raw JSON id.
func (k *mxKit) expectResult(c *client, id string) {
	k.t.Helper()
	line := c.readLine()
	var r rpcError
	if err := json.Unmarshal([]byte(line), &r); err != nil || r.Error != nil || r.Result == nil || string(r.ID) != id {
		k.t.Fatalf("want the server's answer to id %s, got %q", id, line)
	}
}

// expectRefusal reads one line from c and checks it is the refusal want:
// one error object, or with batch an array of one error per element.
func (k *mxKit) expectRefusal(c *client, batch bool, want ...mxReply) {
	k.t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	readAt := time.Now()
	if err != nil {
		k.t.Fatalf("want a refusal (%d error(s), first %s), got no reply: %v (read %d bytes: %.200q)",
			len(want), want[0].reason, err, len(line), line)
	}
	var got []rpcError
	if batch {
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			k.t.Fatalf("want an array of %d errors, got %q: %v", len(want), line, err)
		}
	} else {
		var r rpcError
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			k.t.Fatalf("want one error object, got %q: %v", line, err)
		}
		got = []rpcError{r}
	}
	if len(got) != len(want) {
		k.t.Fatalf("want %d errors, got %d: %q", len(want), len(got), line)
	}
	bad := 0
	for i, w := range want {
		if problem := mxCheckError(&got[i], w, readAt); problem != "" {
			if bad++; bad <= 3 {
				k.t.Errorf("error %d of the reply: %s\nreply: %.1000s", i, problem, line)
			}
		}
	}
	if bad > 3 {
		k.t.Errorf("%d of the reply's %d errors are wrong", bad, len(want))
	}
}

// mxCheckError describes how r, read at readAt, differs from the refusal
// w, or returns "".
func mxCheckError(r *rpcError, w mxReply, readAt time.Time) string {
	if r.Error == nil || r.Result != nil {
		return "not an error response"
	}
	var problems []string
	e := r.Error
	if r.JSONRPC != "2.0" {
		problems = append(problems, fmt.Sprintf("jsonrpc %q", r.JSONRPC))
	}
	if string(r.ID) != w.id {
		problems = append(problems, fmt.Sprintf("id %s, want %s", r.ID, w.id))
	}
	if e.Code != w.reason.Code() || e.Data.Reason != w.reason || e.Message != w.reason.Message() {
		problems = append(problems, fmt.Sprintf("code %d reason %q, want %d %q", e.Code, e.Data.Reason, w.reason.Code(), w.reason))
	}
	d := e.Data
	if d.Resource != resource || d.Version != stamp.Version || d.Window != mxWindow || d.Skew != mxSkew {
		problems = append(problems, fmt.Sprintf("data resource %q version %d window %d skew %d", d.Resource, d.Version, d.Window, d.Skew))
	}
	if off := readAt.Sub(time.Unix(d.Time, 0)); off < -2*time.Second || off > 3*time.Second {
		problems = append(problems, fmt.Sprintf("data time %s before the reply arrived", off))
	}
	switch w.reason {
	case stamp.ReasonParse, stamp.ReasonTooLarge, stamp.ReasonInvalidRequest:
		// Not a request whose method is known: no method, no price.
		if d.Method != "" || d.Price != 0 {
			problems = append(problems, fmt.Sprintf("data method %q price %d for a line that is not a request", d.Method, d.Price))
		}
	default:
		if d.Method != mxMethod || d.Price != mxPrice {
			problems = append(problems, fmt.Sprintf("data method %q price %d, want %q %d", d.Method, d.Price, mxMethod, mxPrice))
		}
	}
	return strings.Join(problems, "; ")
}

// strikesLeft checks that c closes after exactly n more strikes: it sends
// requests without a stamp one at a time, each of which must be refused as
// missing, and after the n-th the connection must close.
func (k *mxKit) strikesLeft(c *client, n int) {
	k.t.Helper()
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf(`"strike %d"`, i)
		c.send(mxReq(id, mxTx) + "\n")
		k.expectRefusal(c, false, mxReply{stamp.ReasonMissing, id})
	}
	mxExpectClosed(k.t, c)
}

// mxExpectClosed reads from c until it ends, failing if a byte arrives or
// if it is still open after 10 seconds.
func mxExpectClosed(t *testing.T, c *client) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.r.ReadByte()
	switch {
	case err == nil:
		rest, _ := c.r.Peek(c.r.Buffered())
		t.Fatalf("want the connection closed, got %q", append([]byte{b}, rest...))
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatal("want the connection closed: still open after 10 s")
	case err != io.EOF && !errors.Is(err, syscall.ECONNRESET):
		t.Fatalf("want the connection closed, got %v", err)
	}
}

// mxIDOf returns the raw JSON id of a request line, "null" if it has none
// or is a batch (the upstream answers a batch with id null).
func mxIDOf(t *testing.T, line string) string {
	t.Helper()
	var l rpcline.Line
	if err := rpcline.Scan([]byte(line), stamp.Member, &l); err != nil {
		t.Fatalf("mxIDOf: %v", err)
	}
	if l.Kind != rpcline.KindObject || l.Objects[0].ID == nil {
		return "null"
	}
	return string(l.Objects[0].ID)
}

// mxReq returns an unstamped request line of mxMethod with the raw JSON id
// and params.
func mxReq(id, params string) string {
	return `{"jsonrpc":"2.0","method":"` + mxMethod + `","id":` + id + `,"params":` + params + `}`
}

// mxWithPow inserts member "pow" with the raw JSON value v before the last
// '}' of line, as a minter would.
func mxWithPow(line, v string) string {
	i := strings.LastIndexByte(line, '}')
	return line[:i] + `,"pow":` + v + line[i:]
}

// mxStampOf returns the stamp text of a single request line stamped by
// mintLine.
func mxStampOf(t *testing.T, line string) string {
	t.Helper()
	var l rpcline.Line
	if err := rpcline.Scan([]byte(line), stamp.Member, &l); err != nil || l.Kind != rpcline.KindObject {
		t.Fatalf("mxStampOf: not a request object: %v", err)
	}
	text, ok := rpcline.RawStringValue(l.Objects[0].Stamp)
	if !ok {
		t.Fatalf("mxStampOf: no stamp in %q", line)
	}
	return string(text)
}

// mxEditedStamp returns a line function for a request with the raw JSON id
// whose valid stamp has been changed by edit, which gets the stamp's six
// fields (version, work, time, salt, counter, resource) and returns the
// text to send in their place.
func mxEditedStamp(id string, edit func(f []string) string) func(*mxKit, *client) (string, string) {
	return func(k *mxKit, _ *client) (string, string) {
		body := mxReq(id, mxTx)
		f := strings.SplitN(mxStampOf(k.t, k.mint(body)), ":", 6)
		return mxWithPow(body, `"`+edit(f)+`"`), ""
	}
}

// mxFixed returns a line function for a line that needs no stamp.
func mxFixed(line string) func(*mxKit, *client) (string, string) {
	return func(*mxKit, *client) (string, string) { return line, "" }
}

// mxStamped returns a line function that sends line with a valid stamp, so
// that its only fault is the one the case is about.
func mxStamped(line string) func(*mxKit, *client) (string, string) {
	return func(k *mxKit, _ *client) (string, string) { return k.mint(line), "" }
}

// mxCorrupted returns a line function that stamps mxReq(id, params) and
// then replaces old, which must occur in params, with bad.
func mxCorrupted(id, params, old, bad string) func(*mxKit, *client) (string, string) {
	return func(k *mxKit, _ *client) (string, string) {
		return strings.Replace(k.mint(mxReq(id, params)), old, bad, 1), ""
	}
}

// mxOne is a refusal of one error.
func mxOne(r stamp.Reason, id string) []mxReply { return []mxReply{{r, id}} }

// mxCases returns the rows of the matrix, in the order of docs/security.md's
// table.
func mxCases() []mxCase {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	return []mxCase{
		// Lines that are not JSON.
		{name: "not_json", input: "not JSON: an HTTP request line, `GET / HTTP/1.1`",
			line: mxFixed("GET / HTTP/1.1\r"), replies: mxOne(stamp.ReasonParse, "null"), strikes: 1},
		{name: "http_request", input: "an HTTP request: `GET / HTTP/1.1`, `Host: …` and an empty line, CRLF-ended (3 lines)",
			line:    mxFixed("GET / HTTP/1.1\r\nHost: electrum.test:50002\r\n\r"),
			replies: []mxReply{{stamp.ReasonParse, "null"}, {stamp.ReasonParse, "null"}, {stamp.ReasonParse, "null"}},
			strikes: 3},
		{name: "empty_line", input: "an empty line",
			line: mxFixed(""), replies: mxOne(stamp.ReasonParse, "null"), strikes: 1},
		{name: "blank_line", input: "a line of spaces and tabs",
			line: mxFixed(" \t  "), replies: mxOne(stamp.ReasonParse, "null"), strikes: 1},
		{name: "truncated", input: "truncated JSON: a stamped request cut in the middle",
			line: func(k *mxKit, _ *client) (string, string) {
				s := k.mint(mxReq("1", mxTx))
				return s[:len(s)/2], ""
			},
			replies: mxOne(stamp.ReasonParse, "null"), strikes: 1},
		{name: "two_values", input: "two stamped requests on one line, `{…} {…}`",
			line: func(k *mxKit, _ *client) (string, string) {
				return k.mint(mxReq("2", mxTx)) + " " + k.mint(mxReq("3", mxTx)), ""
			},
			replies: mxOne(stamp.ReasonParse, "null"), strikes: 1},
		{name: "invalid_utf8", input: "invalid UTF-8: a byte `FF` in a string of a stamped request",
			line:    mxCorrupted("4", `["XY"]`, "XY", "\xff"),
			replies: mxOne(stamp.ReasonParse, "null"), strikes: 1},
		{name: "utf8_surrogate", input: "invalid UTF-8: a UTF-16 surrogate encoded as UTF-8 (`ED A0 80`)",
			line:    mxCorrupted("5", `["XY"]`, "XY", "\xed\xa0\x80"),
			replies: mxOne(stamp.ReasonParse, "null"), strikes: 1},
		{name: "utf8_overlong", input: "invalid UTF-8: an overlong `/` (`C0 AF`)",
			line:    mxCorrupted("6", `["XY"]`, "XY", "\xc0\xaf"),
			replies: mxOne(stamp.ReasonParse, "null"), strikes: 1},
		{name: "nul_in_string", input: "a raw NUL byte inside a string",
			line:    mxCorrupted("7", `["XY"]`, "XY", "X\x00Y"),
			replies: mxOne(stamp.ReasonParse, "null"), strikes: 1},
		{name: "too_deep", input: fmt.Sprintf("nesting %d deep (one more than the limit)", rpcline.MaxDepth+1),
			line: func(k *mxKit, _ *client) (string, string) {
				someStamp := mxStampOf(k.t, k.mint(mxReq("8", mxTx)))
				return mxWithPow(mxReq("8", deep(rpcline.MaxDepth)), `"`+someStamp+`"`), ""
			},
			replies: mxOne(stamp.ReasonParse, "null"), strikes: 1},
		{name: "deep_at_limit", input: fmt.Sprintf("control: nesting exactly %d deep, validly stamped", rpcline.MaxDepth),
			line: func(k *mxKit, _ *client) (string, string) {
				body := mxReq("9", deep(rpcline.MaxDepth-1))
				return k.mint(body), body
			}},

		// JSON that is not a request.
		{name: "scalar", input: "a JSON scalar, `42`",
			line: mxFixed("42"), replies: mxOne(stamp.ReasonInvalidRequest, "null"), strikes: 1},
		{name: "no_method", input: "an object without `method` (stamped)",
			line:    mxStamped(`{"jsonrpc":"2.0","id":10,"params":[]}`),
			replies: mxOne(stamp.ReasonInvalidRequest, "10"), strikes: 1},
		{name: "method_not_string", input: "`method` a number, `\"method\":42` (stamped)",
			line:    mxStamped(`{"jsonrpc":"2.0","method":42,"id":11,"params":[]}`),
			replies: mxOne(stamp.ReasonInvalidRequest, "11"), strikes: 1},
		{name: "method_twice", input: "`method` given twice, once with an escaped name, `\"m\\u0065thod\"` (stamped)",
			line:    mxStamped(`{"jsonrpc":"2.0","method":"server.ping","m\u0065thod":"` + mxMethod + `","id":12,"params":[]}`),
			replies: mxOne(stamp.ReasonInvalidRequest, "12"), strikes: 1},
		{name: "id_twice", input: "`id` given twice, `\"id\":13,\"id\":14` (stamped)",
			line:    mxStamped(`{"jsonrpc":"2.0","method":"` + mxMethod + `","id":13,"id":14,"params":[]}`),
			replies: mxOne(stamp.ReasonInvalidRequest, "14"), strikes: 1, idText: "the last one given"},

		// Requests without a usable stamp member.
		{name: "no_stamp", input: "a request without `pow`",
			line: mxFixed(mxReq("15", mxTx)), replies: mxOne(stamp.ReasonMissing, "15"), strikes: 1},
		{name: "no_stamp_no_id", input: "a request without `pow` and without `id`",
			line:    mxFixed(`{"jsonrpc":"2.0","method":"` + mxMethod + `","params":` + mxTx + `}`),
			replies: mxOne(stamp.ReasonMissing, "null"), strikes: 1, idText: "null (none given)"},
		{name: "pow_number", input: "`pow` a number, `\"pow\":17`",
			line: mxFixed(mxWithPow(mxReq("16", mxTx), "17")), replies: mxOne(stamp.ReasonMalformed, "16"), strikes: 1},
		{name: "pow_object", input: "`pow` an object holding a valid stamp, `\"pow\":{\"v\":\"1:…\"}`",
			line: func(k *mxKit, _ *client) (string, string) {
				body := mxReq("17", mxTx)
				return mxWithPow(body, `{"v":"`+mxStampOf(k.t, k.mint(body))+`"}`), ""
			},
			replies: mxOne(stamp.ReasonMalformed, "17"), strikes: 1},
		{name: "pow_null", input: "`pow` null",
			line: mxFixed(mxWithPow(mxReq("18", mxTx), "null")), replies: mxOne(stamp.ReasonMalformed, "18"), strikes: 1},
		{name: "pow_empty", input: "`pow` the empty string",
			line: mxFixed(mxWithPow(mxReq("19", mxTx), `""`)), replies: mxOne(stamp.ReasonMalformed, "19"), strikes: 1},
		{name: "pow_twice", input: "`pow` given twice, the same valid stamp both times",
			line: func(k *mxKit, _ *client) (string, string) {
				s := k.mint(mxReq("20", mxTx))
				return mxWithPow(s, `"`+mxStampOf(k.t, s)+`"`), ""
			},
			replies: mxOne(stamp.ReasonMalformed, "20"), strikes: 1},
		{name: "pow_twice_escaped", input: "`pow` given twice, once as `\"p\\u006fw\"`",
			line: func(k *mxKit, _ *client) (string, string) {
				s := k.mint(mxReq("21", mxTx))
				i := strings.LastIndexByte(s, '}')
				return s[:i] + `,"p\u006fw":"` + mxStampOf(k.t, s) + `"` + s[i:], ""
			},
			replies: mxOne(stamp.ReasonMalformed, "21"), strikes: 1},
		{name: "pow_escaped_text", input: "a valid stamp written with a JSON escape (`\\u003a` for a `:`)",
			line: func(k *mxKit, _ *client) (string, string) {
				body := mxReq("22", mxTx)
				text := mxStampOf(k.t, k.mint(body))
				return mxWithPow(body, `"`+strings.Replace(text, ":", `\u003a`, 1)+`"`), ""
			},
			replies: mxOne(stamp.ReasonMalformed, "22"), strikes: 1},
		{name: "pow_in_params", input: "a valid stamp only inside `params`, `\"params\":[{\"pow\":\"1:…\"}]`",
			line: func(k *mxKit, _ *client) (string, string) {
				text := mxStampOf(k.t, k.mint(mxReq("23", mxTx)))
				return mxReq("23", `[{"pow":"`+text+`"}]`), ""
			},
			replies: mxOne(stamp.ReasonMissing, "23"), strikes: 1},

		// Stamps that are not valid stamp text.
		{name: "bad_version", input: "stamp version `2`",
			line:    mxEditedStamp("24", func(f []string) string { f[0] = "2"; return strings.Join(f, ":") }),
			replies: mxOne(stamp.ReasonMalformed, "24"), strikes: 1},
		{name: "work_zero", input: "stamp work `0`",
			line:    mxEditedStamp("25", func(f []string) string { f[1] = "0"; return strings.Join(f, ":") }),
			replies: mxOne(stamp.ReasonMalformed, "25"), strikes: 1},
		{name: "salt_not_hex", input: "salt with a non-hex digit",
			line:    mxEditedStamp("26", func(f []string) string { f[3] = "g" + f[3][1:]; return strings.Join(f, ":") }),
			replies: mxOne(stamp.ReasonMalformed, "26"), strikes: 1},
		{name: "salt_upper", input: "salt in uppercase hex",
			line: mxEditedStamp("27", func(f []string) string {
				f[3] = "A" + strings.ToUpper(f[3][1:])
				return strings.Join(f, ":")
			}),
			replies: mxOne(stamp.ReasonMalformed, "27"), strikes: 1},
		{name: "salt_short", input: "salt of 30 hex digits",
			line:    mxEditedStamp("28", func(f []string) string { f[3] = f[3][:30]; return strings.Join(f, ":") }),
			replies: mxOne(stamp.ReasonMalformed, "28"), strikes: 1},
		{name: "counter_not_decimal", input: "counter not a number, `12ab`",
			line:    mxEditedStamp("29", func(f []string) string { f[4] = "12ab"; return strings.Join(f, ":") }),
			replies: mxOne(stamp.ReasonMalformed, "29"), strikes: 1},
		{name: "counter_leading_zero", input: "counter with a leading zero",
			line:    mxEditedStamp("30", func(f []string) string { f[4] = "0" + f[4]; return strings.Join(f, ":") }),
			replies: mxOne(stamp.ReasonMalformed, "30"), strikes: 1},
		{name: "field_missing", input: "a field missing (no time)",
			line: mxEditedStamp("31", func(f []string) string {
				return strings.Join(append(f[:2:2], f[3:]...), ":")
			}),
			replies: mxOne(stamp.ReasonMalformed, "31"), strikes: 1},
		{name: "resource_too_long", input: "resource of 300 characters",
			line:    mxEditedStamp("32", func(f []string) string { f[5] = strings.Repeat("a", 300); return strings.Join(f, ":") }),
			replies: mxOne(stamp.ReasonMalformed, "32"), strikes: 1},

		// Well-formed stamps that are refused.
		{name: "wrong_resource", input: "stamp minted for another server",
			line: func(k *mxKit, _ *client) (string, string) {
				return mintLine(k.t, mxReq("33", mxTx), "other.example:50002", mxPrice, time.Now()), ""
			},
			replies: mxOne(stamp.ReasonWrongResource, "33")},
		{name: "expired", input: "stamp dated 6 minutes ago (`window` 5 min)",
			line: func(k *mxKit, _ *client) (string, string) {
				return mintLine(k.t, mxReq("34", mxTx), resource, mxPrice, time.Now().Add(-6*time.Minute)), ""
			},
			replies: mxOne(stamp.ReasonExpired, "34")},
		{name: "future", input: "stamp dated 2 minutes ahead (`max_skew` 30 s)",
			line: func(k *mxKit, _ *client) (string, string) {
				return mintLine(k.t, mxReq("35", mxTx), resource, mxPrice, time.Now().Add(2*time.Minute)), ""
			},
			replies: mxOne(stamp.ReasonFuture, "35")},
		{name: "underpriced", input: fmt.Sprintf("stamp claiming work %d, below the price %d", mxPrice/4, mxPrice),
			line: func(k *mxKit, _ *client) (string, string) {
				return mintLine(k.t, mxReq("36", mxTx), resource, mxPrice/4, time.Now()), ""
			},
			replies: mxOne(stamp.ReasonInsufficient, "36")},
		{name: "work_inflated", input: "valid stamp with its work raised to 2^64−1",
			line: mxEditedStamp("51", func(f []string) string {
				f[1] = "18446744073709551615"
				return strings.Join(f, ":")
			}),
			replies: mxOne(stamp.ReasonInsufficient, "51"), strikes: 1},
		{name: "counter_fails", input: "valid stamp with its counter changed so the digest misses the target",
			line: func(k *mxKit, _ *client) (string, string) {
				body := mxReq("37", mxTx)
				return mxWithPow(body, `"`+mxUnproven(k.t, body, mxStampOf(k.t, k.mint(body)))+`"`), ""
			},
			replies: mxOne(stamp.ReasonInsufficient, "37"), strikes: 1},
		{name: "stamp_copied", input: "valid stamp copied onto another request (other `params`)",
			line: func(k *mxKit, _ *client) (string, string) {
				return mintMoved(k.t, mxReq("38", `["aa"]`), resource, mxPrice, time.Now(), func(s string) string {
					return mxWithPow(mxReq("38", `["bb"]`), `"`+mxStampOf(k.t, s)+`"`)
				}), ""
			},
			replies: mxOne(stamp.ReasonInsufficient, "38"), strikes: 1},
		{name: "replay_same_conn", input: "a stamped request sent twice on one connection",
			line: func(k *mxKit, c *client) (string, string) {
				body := mxReq("39", mxTx)
				s := k.mint(body)
				k.accept(c, s, body)
				return s, ""
			},
			replies: mxOne(stamp.ReasonReplayed, "39"), serverText: "the first copy only"},
		{name: "replay_other_conn", input: "a stamped request sent on one connection, then on another",
			line: func(k *mxKit, _ *client) (string, string) {
				body := mxReq("40", mxTx)
				s := k.mint(body)
				k.accept(k.dial(), s, body)
				return s, ""
			},
			replies: mxOne(stamp.ReasonReplayed, "40"), serverText: "the first copy only"},

		// Batches.
		{name: "empty_batch", input: "an empty batch, `[]`",
			line: mxFixed("[]"), replies: mxOne(stamp.ReasonInvalidRequest, "null"), strikes: 1},
		{name: "batch_of_scalars", input: "a batch of non-objects, `[1,2]`",
			line: mxFixed("[1,2]"), batch: true, strikes: 2,
			replies: []mxReply{{stamp.ReasonInvalidRequest, "null"}, {stamp.ReasonInvalidRequest, "null"}}},
		mxBatchWithBadElement(),
		{name: "batch_pow_in_one", input: "a batch of two requests, only the first stamped",
			line: func(k *mxKit, _ *client) (string, string) {
				return "[" + k.mint(mxReq("44", mxTx)) + "," + mxReq("45", mxTx) + "]", ""
			},
			batch: true, strikes: 1,
			replies: []mxReply{{stamp.ReasonBatch, "44"}, {stamp.ReasonMissing, "45"}}},
		{name: "batch_non_object", input: "a batch of a stamped request and `5`",
			line: func(k *mxKit, _ *client) (string, string) {
				return "[" + k.mint(mxReq("46", mxTx)) + ",5]", ""
			},
			batch: true, strikes: 1,
			replies: []mxReply{{stamp.ReasonBatch, "46"}, {stamp.ReasonInvalidRequest, "null"}}},
		mxBatchSameStampTwice(),
		mxBigBatch(1000),
		mxOversizedBatch(1001),

		// Line length.
		{name: "line_at_limit", input: "control: a valid stamped request of exactly " + mxThousands(mxMaxLine) + " bytes (`max_line_bytes`), its line feed in the next write",
			line:  func(k *mxKit, _ *client) (string, string) { return k.sized("47", mxMaxLine) },
			chunk: mxMaxLine},
		{name: "line_over_limit", input: "a valid stamped request of " + mxThousands(mxMaxLine+1) + " bytes, one over `max_line_bytes`",
			line: func(k *mxKit, _ *client) (string, string) {
				send, _ := k.sized("48", mxMaxLine+1)
				return send, ""
			},
			replies: mxOne(stamp.ReasonTooLarge, "null"), strikes: 1},
		{name: "line_10MB", input: "a 10 MB line sent in 64 KB writes, then its line feed and a valid request in one write",
			line: func(*mxKit, *client) (string, string) {
				head := `{"jsonrpc":"2.0","method":"blockchain.transaction.broadcast","id":49,"params":["`
				return head + strings.Repeat("0123456789abcdef", (10<<20-len(head))/16), ""
			},
			chunk: 64 << 10, replies: mxOne(stamp.ReasonTooLarge, "null"), strikes: 1},

		// Strikes.
		mxStrikesCase(),
	}
}

// mxBatchWithBadElement is the row of a batch of three stamped-or-not
// requests whose middle one has no stamp: every element is answered, the
// good ones with "batch", nothing is forwarded, and the good elements'
// stamps stay unused (the batch without the bad element is then accepted).
func mxBatchWithBadElement() mxCase {
	var good1, good2, body1, body2 string
	return mxCase{
		name:  "batch_bad_element",
		input: "a batch of three requests, the middle one without `pow`",
		line: func(k *mxKit, _ *client) (string, string) {
			body1, body2 = mxReq("41", mxTx), mxReq("43", mxTx)
			good1, good2 = k.mint(body1), k.mint(body2)
			return "[" + good1 + "," + mxReq("42", mxTx) + "," + good2 + "]", ""
		},
		batch: true, strikes: 1,
		replies: []mxReply{{stamp.ReasonBatch, "41"}, {stamp.ReasonMissing, "42"}, {stamp.ReasonBatch, "43"}},
		after: func(k *mxKit, c *client) {
			k.accept(c, "["+good1+","+good2+"]", "["+body1+","+body2+"]")
		},
		serverText: "never; the good elements' stamps stay unused (the batch of them alone is then forwarded)",
	}
}

// mxBatchSameStampTwice is the row of a batch holding one stamped request
// twice: the second copy is a replay of the first, the batch is refused and
// the stamp, claimed by the first copy, is given back.
func mxBatchSameStampTwice() mxCase {
	var good, body string
	return mxCase{
		name:  "batch_same_stamp_twice",
		input: "a batch holding the same stamped request twice",
		line: func(k *mxKit, _ *client) (string, string) {
			body = mxReq("50", mxTx)
			good = k.mint(body)
			return "[" + good + "," + good + "]", ""
		},
		batch:   true,
		replies: []mxReply{{stamp.ReasonBatch, "50"}, {stamp.ReasonReplayed, "50"}},
		after: func(k *mxKit, c *client) {
			k.accept(c, good, body)
		},
		serverText: "never; the stamp stays unused (the request alone is then forwarded)",
	}
}

// mxBigBatch is the row of a batch of n non-objects, `[1,1,…]`, n at most
// max_batch: a short line that is refused element by element, one error per
// element in one reply, and every element is a strike, so the connection
// then closes. The reply is about 125 times the line's size, which
// max_batch bounds.
func mxBigBatch(n int) mxCase {
	replies := make([]mxReply, n)
	for i := range replies {
		replies[i] = mxReply{stamp.ReasonInvalidRequest, "null"}
	}
	line := "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"
	return mxCase{
		name:    fmt.Sprintf("batch_of_%d", n),
		input:   fmt.Sprintf("a batch of %s non-objects, `[1,1,…]` (a %s-byte line)", mxThousands(n), mxThousands(len(line))),
		line:    mxFixed(line),
		batch:   true,
		strikes: n,
		replies: replies,
	}
}

// mxOversizedBatch is the row of a batch of n > max_batch non-objects: it
// is refused whole with one error, one strike, without its elements being
// looked at, so that a short line cannot make the handler build a reply a
// hundred times its size.
func mxOversizedBatch(n int) mxCase {
	line := "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"
	return mxCase{
		name:    fmt.Sprintf("batch_of_%d", n),
		input:   fmt.Sprintf("a batch of %s elements, more than `max_batch` (a %s-byte line)", mxThousands(n), mxThousands(len(line))),
		line:    mxFixed(line),
		strikes: 1,
		replies: []mxReply{{stamp.ReasonInvalidRequest, "null"}},
	}
}

// mxStrikesCase is the row that runs a connection into max_rejections:
// three strikes with every kind of curable refusal between them, and a valid
// request pipelined right behind the third strike, which must not be read.
func mxStrikesCase() mxCase {
	return mxCase{
		name: "max_rejections",
		input: fmt.Sprintf("on one connection (`max_rejections` %d): no `pow`; then expired, replayed, wrong-server, future, "+
			"underpriced and batch refusals; then not JSON; then `\"pow\":17` with a valid request behind it in the same write", mxMaxRej),
		run: func(k *mxKit) {
			c := k.dial()
			stamped := func(id string, res string, work uint64, when time.Time) string {
				return mintLine(k.t, mxReq(id, mxTx), res, work, when)
			}
			now := time.Now()
			c.send(mxReq(`"s1"`, mxTx) + "\n") // strike 1
			k.expectRefusal(c, false, mxReply{stamp.ReasonMissing, `"s1"`})

			// Curable refusals: none of them is a strike.
			c.send(stamped(`"c1"`, resource, mxPrice, now.Add(-6*time.Minute)) + "\n")
			k.expectRefusal(c, false, mxReply{stamp.ReasonExpired, `"c1"`})
			firstBody := mxReq(`"c2"`, mxTx)
			first := k.mint(firstBody)
			k.accept(c, first, firstBody)
			c.send(first + "\n")
			k.expectRefusal(c, false, mxReply{stamp.ReasonReplayed, `"c2"`})
			c.send(stamped(`"c3"`, "other.example:50002", mxPrice, now) + "\n")
			k.expectRefusal(c, false, mxReply{stamp.ReasonWrongResource, `"c3"`})
			c.send(stamped(`"c4"`, resource, mxPrice, now.Add(2*time.Minute)) + "\n")
			k.expectRefusal(c, false, mxReply{stamp.ReasonFuture, `"c4"`})
			c.send(stamped(`"c5"`, resource, mxPrice/4, now) + "\n")
			k.expectRefusal(c, false, mxReply{stamp.ReasonInsufficient, `"c5"`})
			c.send("[" + k.mint(mxReq(`"c6"`, mxTx)) + "," + stamped(`"c7"`, resource, mxPrice, now.Add(-time.Hour)) + "]\n")
			k.expectRefusal(c, true, mxReply{stamp.ReasonBatch, `"c6"`}, mxReply{stamp.ReasonExpired, `"c7"`})

			c.send("hello\n") // strike 2
			k.expectRefusal(c, false, mxReply{stamp.ReasonParse, "null"})

			// Strike 3, with a valid request behind it: the reply, then
			// the connection closes without reading on.
			laterBody := mxReq(`"later"`, mxTx)
			later := k.mint(laterBody)
			c.send(mxWithPow(mxReq(`"s3"`, mxTx), "17") + "\n" + later + "\n")
			k.expectRefusal(c, false, mxReply{stamp.ReasonMalformed, `"s3"`})
			mxExpectClosed(k.t, c)

			// The pipelined request never reached the server, nor the
			// replay store: on a new connection it is accepted.
			k.accept(k.dial(), later, laterBody)
		},
		connText:   fmt.Sprintf("closed right after the reply to the %d%s strike; the curable refusals do not count", mxMaxRej, mxOrdinal(mxMaxRej)),
		serverText: "only the one accepted request; the request behind the last strike is never read (its stamp stays unused)",
	}
}

// mxUnproven returns stamp text with the counter of text changed to the
// next one whose digest, for body, does not prove the stamp's work.
func mxUnproven(t *testing.T, body, text string) string {
	t.Helper()
	st, err := stamp.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	bodyHash := stamp.BodyHash([]byte(body))
	for {
		st.Counter++
		if d := st.Digest(&bodyHash, nil); !stamp.Meets(&d, st.Work) {
			return st.String()
		}
	}
}

// mxThousands formats n with commas between groups of three digits.
func mxThousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// mxDuration formats d as a configuration would: "5m", "30s".
func mxDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// mxOrdinal returns the English ordinal suffix of n.
func mxOrdinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return "th"
	case n%10 == 1:
		return "st"
	case n%10 == 2:
		return "nd"
	case n%10 == 3:
		return "rd"
	}
	return "th"
}

// mxTable renders the docs/security.md block for cases: an introduction and the table.
func mxTable(cases []mxCase) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Each row is checked by `TestBadInputMatrix` ([`caddyhashcash/matrix_test.go`](../caddyhashcash/matrix_test.go)),\n"+
		"which sends the input on a connection of its own to caddy running `hashcash` with\n"+
		"`%s` and every other option at its default (`max_line_bytes`\n"+
		"%s, `window` %s, `max_skew` %s), then `proxy` to a server that records every byte it\n"+
		"receives. For each row the test checks the exact reply (code, reason, id; one reply line\n"+
		"per refused line, for a batch an array with one error per element); that a valid stamped\n"+
		"request sent behind the bad line in the same write is answered, so the connection is\n"+
		"**kept** and loses nothing; how many strikes toward `max_rejections` the refusal counts\n"+
		"(the connection must close after exactly the remaining ones); and that the server\n"+
		"received exactly the bytes of the accepted requests. Regenerate with\n"+
		"`go test ./caddyhashcash -run TestBadInputMatrix -update-doc`.\n\n",
		mxOptions, mxThousands(mxMaxLine), mxDuration(caddyhashcash.DefaultWindow), mxDuration(caddyhashcash.DefaultMaxSkew))
	b.WriteString("| input | reply: code, reason | id | connection | reaches the server |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, tc := range cases {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", tc.input, mxReplyText(&tc), mxIDText(&tc), mxConnText(&tc), mxServerText(&tc))
	}
	return b.String()
}

// mxReplyText is a row's "reply" column.
func mxReplyText(tc *mxCase) string {
	switch {
	case tc.run != nil:
		return "each line its own error, as in the rows above"
	case len(tc.replies) == 0:
		return "none: the server answers"
	}
	parts := make([]string, len(tc.replies))
	for i, r := range tc.replies {
		parts[i] = fmt.Sprintf("%d `%s`", r.reason.Code(), r.reason)
	}
	if tc.batch && len(parts) > 1 && mxUniform(tc.replies) {
		return "array: " + parts[0] + " for each of the " + mxThousands(len(parts)) + " elements"
	}
	if !tc.batch && len(parts) > 1 && mxUniform(tc.replies) {
		return parts[0] + ", one reply line for each line"
	}
	if tc.batch {
		return "array: " + strings.Join(parts, ", ")
	}
	return parts[0]
}

// mxIDText is a row's "id" column.
func mxIDText(tc *mxCase) string {
	switch {
	case tc.idText != "":
		return tc.idText
	case tc.run != nil:
		return "as in the rows above"
	case len(tc.replies) == 0:
		return "—"
	}
	parts := make([]string, len(tc.replies))
	allEchoed := true
	for i, r := range tc.replies {
		parts[i] = "echoed"
		if r.id == "null" {
			parts[i] = "null"
			allEchoed = false
		}
	}
	if !tc.batch && mxUniform(tc.replies) {
		return parts[0]
	}
	if !tc.batch {
		return "per line: " + strings.Join(parts, ", ")
	}
	if allEchoed {
		return "each element's"
	}
	if mxUniform(tc.replies) {
		return parts[0] + " for each element"
	}
	return "per element: " + strings.Join(parts, ", ")
}

// mxConnText is a row's "connection" column.
func mxConnText(tc *mxCase) string {
	switch {
	case tc.connText != "":
		return tc.connText
	case len(tc.replies) == 0:
		return "kept"
	case tc.strikes >= mxMaxRej && !tc.batch && len(tc.replies) > 1:
		return fmt.Sprintf("closed right after the last reply (%s strikes); the request behind it is not read", mxThousands(tc.strikes))
	case tc.strikes >= mxMaxRej:
		return fmt.Sprintf("closed right after the reply (%s strikes); the request behind it is not read", mxThousands(tc.strikes))
	case tc.strikes == 0:
		return "kept; no strike"
	case tc.strikes == 1:
		return "kept; 1 strike"
	}
	return fmt.Sprintf("kept; %d strikes", tc.strikes)
}

// mxUniform reports whether every reply is the same.
func mxUniform(replies []mxReply) bool {
	for _, r := range replies {
		if r != replies[0] {
			return false
		}
	}
	return true
}

// mxServerText is a row's "reaches the server" column.
func mxServerText(tc *mxCase) string {
	switch {
	case tc.serverText != "":
		return tc.serverText
	case tc.run == nil && len(tc.replies) == 0:
		return "forwarded, stamp removed"
	}
	return "never"
}

// mxCheckDoc compares docs/security.md's block between the security-matrix
// markers with the table of cases, and rewrites it with -update-doc.
func mxCheckDoc(t *testing.T, cases []mxCase) {
	doc, err := os.ReadFile(mxDocPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	begin := strings.Index(text, mxBeginMarker)
	if begin < 0 {
		t.Fatalf("%s has no %q marker", mxDocPath, mxBeginMarker)
	}
	nl := strings.IndexByte(text[begin:], '\n')
	end := strings.Index(text[begin:], mxEndMarker)
	if nl < 0 || end < nl {
		t.Fatalf("%s has no %q marker after %q", mxDocPath, mxEndMarker, mxBeginMarker)
	}
	from, to := begin+nl+1, begin+end
	table := mxTable(cases)
	if text[from:to] == table {
		return
	}
	if *matrixUpdateDoc {
		updated := text[:from] + table + text[to:]
		if err := os.WriteFile(mxDocPath, []byte(updated), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: bad-input table rewritten", mxDocPath)
		return
	}
	t.Errorf("%s's bad-input table is not the one TestBadInputMatrix's cases render; "+
		"rerun with -update-doc, or put this between the markers:\n%s", mxDocPath, table)
}
