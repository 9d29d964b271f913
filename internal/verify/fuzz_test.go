package verify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// The policy of FuzzVerifierArbitraryBytes: small prices, so that minting in
// the fuzz loop takes a few hundred hashes, and a fixed clock.
const (
	fuzzResource = "electrum.example.org:50002"
	fuzzNow      = 1795470000 // Unix seconds
	fuzzWindow   = 300        // seconds
	fuzzSkew     = 30         // seconds
	fuzzPrice    = 256
	// fuzzMaxBatch bounds the elements of a batch the target mints stamps
	// for, and so the hashing per iteration.
	fuzzMaxBatch = 32
	// fuzzMaxLines bounds the lines of one input that are stamped.
	fuzzMaxLines = 4
)

// fuzzMethodPrices has one free method and one above the default price.
var fuzzMethodPrices = map[string]uint64{"server.ping": 0, "server.version": 2 * fuzzPrice}

// FuzzVerifierArbitraryBytes feeds arbitrary bytes to a Verifier, and, for
// lines that are requests, correctly stamped and then mutated versions of
// them. Input: the bytes (split into lines at LF, as the handler frames
// them), a position and a byte for the mutation, and flags choosing the
// stamps' time and work and a deliberately refused variant.
//
// Every Check call must: not panic; produce a forward or a reply, never
// both, leaving dst's bytes in place; reply with one valid JSON line without
// LF holding a JSON-RPC error (an array of them for a batch) whose id is the
// request's, whose code matches data.reason (Reason.Code), and whose data
// carries the policy, the method and its price; report to observe one
// verdict per request, agreeing with the reply.
//
// When it forwards, an independent check (encoding/json's offsets and a
// test-local implementation of docs/wire-format.md section 5, "Hashed
// input"; no rpcline stripping, no stamp.Digest or stamp.Meets) must find
// that the forwarded bytes are the line with each request's "pow" member
// removed by the removal rules of section 3 ("The stamp member", Removal)
// and nothing else changed, that they decode to the same JSON as the
// line without the "pow" members, and that every removed stamp of a priced
// request is valid for what is forwarded and was not accepted before. A
// request of the free method (server.ping) may be forwarded without a stamp
// or with any one stamp, removed unchecked (section 9, "Free methods").
//
// Beyond that, the same independent code models the verdict
// docs/wire-format.md prescribes for each request (parse, invalid_request, missing, malformed,
// wrong_resource, expired, future, insufficient, replayed, batch, or
// accepted), and Check must agree with it wherever it is determined: on the
// raw bytes, on the stamped line (which must be accepted and forwarded as
// exactly the original bytes), on deliberately refused variants, and on the
// mutated line, which may be accepted only if its stamps are valid for what
// is forwarded. After a batch is refused, the stamps of its other requests
// must still be unused.
//
// Each iteration gets its own replay store, so that an input's verdicts do
// not depend on the inputs run before it (and a failing input reproduces
// alone); within an iteration, the store is shared on purpose, so that a
// stamp accepted once must be refused as replayed after that.
func FuzzVerifierArbitraryBytes(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","method":"server.version","params":["electrum/4.3.4","1.4"],"id":0}`), uint16(40), byte('x'), byte(0))
	f.Add([]byte(`[{"method":"server.ping","id":1},{"method":"blockchain.headers.subscribe","id":2}]`), uint16(3), byte(' '), byte(0x12))
	f.Add([]byte("{\"method\":\"server.ping\"}\r\n{}"), uint16(0), byte('['), byte(0x01))
	f.Add(mintedLine(f, `{"jsonrpc":"2.0","method":"blockchain.scripthash.subscribe","params":["8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"],"id":5}`),
		uint16(100), byte('0'), byte(0x20))
	// A valid stamp written with an escape (\u003a for its first ':'): malformed
	// on a priced method, removed unchecked on a free one.
	escaped := bytes.Replace(mintedLine(f, `{"method":"blockchain.headers.subscribe","id":6}`), []byte(`"pow":"1:`), []byte(`"pow":"1\u003a`), 1)
	f.Add(escaped, uint16(0), byte(' '), byte(0))
	f.Add([]byte(`[{"method":"server.ping","id":7,"pow":"1\u003ax"},{"method":"server.ping","id":8}]`), uint16(0), byte(' '), byte(0))
	f.Fuzz(func(t *testing.T, data []byte, pos uint16, repl byte, flags byte) {
		env := newFuzzEnv(t)
		env.checkTooLarge()
		stamped := 0
		for line := range bytes.SplitSeq(data, []byte{'\n'}) {
			// (a) the bytes as they come.
			env.check(line)
			if stamped == fuzzMaxLines {
				continue
			}
			// A refused variant first, with stamps of its own.
			if v := fuzzVariant(flags); v != "" {
				if out, priced := env.stampLine(line, flags, v); out != nil && priced >= 0 {
					if v == stamp.ReasonReplayed {
						env.useStamp(out, priced)
					}
					env.expectRefused(out, priced, v)
				}
			}
			// (b) the line correctly stamped.
			out, priced := env.stampLine(line, flags, "")
			if out == nil {
				continue
			}
			stamped++
			fwd, reply := env.check(out)
			if reply != nil || !bytes.Equal(fwd, line) {
				t.Fatalf("correctly stamped line refused or altered:\nline    %q\nstamped %q\nforward %q\nreply   %s", line, out, fwd, reply)
			}
			// (c) the stamped line with one byte replaced. It may be
			// accepted only if the independent check (in env.check) finds
			// its stamps valid for what is forwarded.
			mut := bytes.Clone(out)
			i := int(pos) % len(mut)
			mut[i] = repl
			refused := 0
			for l := range bytes.SplitSeq(mut, []byte{'\n'}) {
				if _, reply := env.check(l); reply != nil {
					refused++
				}
			}
			if bytes.Equal(mut, out) && priced >= 0 && refused == 0 {
				t.Fatalf("replayed line %q accepted twice", out)
			}
		}
	})
}

// mintedLine returns body with a valid stamp for the fuzz policy's clock
// and resource, for seeding the corpus with a line that is accepted as is.
func mintedLine(tb testing.TB, body string) []byte {
	env := &fuzzEnv{t: tb}
	out, _ := env.stampLine([]byte(body), 0, "")
	if out == nil {
		tb.Fatalf("cannot stamp %s", body)
	}
	return out
}

// fuzzPriceOf is the fuzz policy's price of method, as the README's price
// and method_price options (and the policy of docs/wire-format.md section
// 10, "Test vectors") say prices work: the method's own price if listed,
// else the default.
func fuzzPriceOf(method string) uint64 {
	if p, ok := fuzzMethodPrices[method]; ok {
		return p
	}
	return fuzzPrice
}

func fuzzPolicy() *verify.Policy {
	return &verify.Policy{
		Resource:     fuzzResource,
		DefaultPrice: fuzzPrice,
		MethodPrices: fuzzMethodPrices,
		Window:       fuzzWindow * time.Second,
		Skew:         fuzzSkew * time.Second,
		Store:        replay.NewMemory(1 << 14),
		Now:          func() time.Time { return time.Unix(fuzzNow, 0) },
	}
}

// fuzzEnv is one iteration's verifier and what the test knows about it.
type fuzzEnv struct {
	t        testing.TB
	policy   *verify.Policy
	v        *verify.Verifier
	verdicts []stamp.Reason
	used     map[[16]byte]bool // replay keys of the stamps accepted so far
	mints    int               // stamps minted so far
}

func newFuzzEnv(t testing.TB) *fuzzEnv {
	env := &fuzzEnv{t: t, policy: fuzzPolicy(), used: map[[16]byte]bool{}}
	env.v = env.policy.NewVerifier(func(v verify.Verdict) { env.verdicts = append(env.verdicts, v.Reason) })
	return env
}

// fuzzVariant returns the refusal reason the flags ask a stamped line to
// provoke, or "" for none.
func fuzzVariant(flags byte) stamp.Reason {
	switch flags >> 4 & 7 {
	case 1:
		return stamp.ReasonExpired
	case 2:
		return stamp.ReasonFuture
	case 3:
		return stamp.ReasonWrongResource
	case 4:
		return stamp.ReasonInsufficient
	case 5:
		return stamp.ReasonReplayed
	}
	return ""
}

// stampLine returns line with a stamp minted into every request object, or
// nil if line is not a request object or a batch of at most fuzzMaxBatch of
// them, each with a string method, no "pow" member and no duplicate
// "method" or "id". With variant set, the first element that has a price
// gets a stamp that is refused for that reason (the last one, for
// "replayed": its stamp is valid, and the caller uses it first), and
// priced is its index (-1 if no element has a price; then variant is not
// applied). Without one, priced is the index of an element with a price,
// or -1.
func (env *fuzzEnv) stampLine(line []byte, flags byte, variant stamp.Reason) (out []byte, priced int) {
	var l rpcline.Line
	if err := rpcline.Scan(line, stamp.Member, &l); err != nil || len(l.Objects) == 0 || len(l.Objects) > fuzzMaxBatch {
		return nil, -1
	}
	prices := make([]uint64, len(l.Objects))
	priced = -1
	for i := range l.Objects {
		o := &l.Objects[i]
		method, ok := rpcline.StringValue(o.Method)
		if !o.IsObject || o.StampCount != 0 || o.Duplicate != "" || !ok {
			return nil, -1
		}
		prices[i] = fuzzPriceOf(method)
		if prices[i] > 0 && (priced < 0 || variant == stamp.ReasonReplayed) {
			priced = i
		}
	}
	if variant != "" && priced < 0 {
		return nil, -1
	}
	if variant == stamp.ReasonInsufficient && prices[priced] == 1 {
		return nil, -1 // no work is less than the price
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := stamp.AppendStampedFunc(ctx, nil, line, func(i int) stamp.Stamp {
		st := stamp.Stamp{Work: max(prices[i], 1), Resource: fuzzResource}
		if flags&4 != 0 {
			st.Work *= 2
		}
		switch flags & 3 {
		case 0:
			st.Time = fuzzNow
		case 1:
			st.Time = fuzzNow - fuzzWindow
		case 2:
			st.Time = fuzzNow + fuzzSkew
		case 3:
			st.Time = fuzzNow - fuzzWindow/2
		}
		if i == priced {
			switch variant {
			case stamp.ReasonExpired:
				st.Time = fuzzNow - fuzzWindow - 1
			case stamp.ReasonFuture:
				st.Time = fuzzNow + fuzzSkew + 1
			case stamp.ReasonWrongResource:
				st.Resource = "electrum.example.org:50001"
			case stamp.ReasonInsufficient:
				st.Work = prices[i] - 1
			}
		}
		// Deterministic, so that an input reproduces, and distinct for
		// every stamp of an iteration, so that identical lines do not
		// get identical stamps.
		env.mints++
		salt := sha256.Sum256(fmt.Appendf(nil, "%d %d %s %s", env.mints, i, variant, line))
		copy(st.Salt[:], salt[:])
		return st
	}, 1)
	if err != nil {
		env.t.Fatalf("minting for %q: %v", line, err)
	}
	return out, priced
}

// useStamp sends element i of line, stamped by stampLine, alone (or the
// line, if it is one object), which must be accepted.
func (env *fuzzEnv) useStamp(line []byte, i int) {
	spans, batch := valueSpans(env.t, line)
	sp := spans[i]
	if !batch {
		sp = [2]int{0, len(line)}
	}
	if fwd, reply := env.check(line[sp[0]:sp[1]]); reply != nil {
		env.t.Fatalf("element %d of stamped line %q refused alone: forward %q reply %s", i, line, fwd, reply)
	}
}

// expectRefused checks that line, stamped by stampLine with variant, is
// refused: with reason variant for element priced, and (in a batch) with
// "batch" for the others. Then, as docs/wire-format.md says of "batch"
// (section 7, "Checks": no stamp of a refused batch is recorded), the stamps
// of the others were not used: each of them sent alone is accepted.
func (env *fuzzEnv) expectRefused(line []byte, priced int, variant stamp.Reason) {
	t := env.t
	fwd, reply := env.check(line)
	if reply == nil {
		t.Fatalf("line stamped to be refused as %s was forwarded: %q -> %q", variant, line, fwd)
	}
	spans, batch := valueSpans(t, line)
	if len(env.verdicts) != len(spans) {
		t.Fatalf("line stamped to be refused as %s: %d verdicts for %d requests", variant, len(env.verdicts), len(spans))
	}
	for i, r := range env.verdicts {
		want := variant
		if i != priced {
			want = stamp.ReasonBatch
		}
		if r != want {
			t.Fatalf("line stamped to be refused as %s: element %d refused as %q, want %q\nline  %q\nreply %s",
				variant, i, r, want, line, reply)
		}
	}
	for i, sp := range spans {
		if !batch || i == priced {
			continue
		}
		if fwd, reply := env.check(line[sp[0]:sp[1]]); reply != nil {
			t.Fatalf("element %d of refused batch %q, sent alone, refused (its stamp was used?): forward %q reply %s",
				i, line, fwd, reply)
		}
	}
}

// check runs Check on line, asserts the properties that hold for every
// line, and returns what was forwarded (without dst's prefix) and a copy
// of the reply.
func (env *fuzzEnv) check(line []byte) (fwd, reply []byte) {
	t := env.t
	preds, batch := env.model(line)
	const prefix = "earlier output\n"
	dst := []byte(prefix)
	env.verdicts = env.verdicts[:0]
	out, rep := env.v.Check(dst, line)
	if len(out) < len(prefix) || string(out[:len(prefix)]) != prefix {
		t.Fatalf("Check(%q) did not keep dst's bytes: %q", line, out)
	}
	fwd, reply = out[len(prefix):], bytes.Clone(rep)
	switch {
	case reply != nil && len(fwd) > 0:
		t.Fatalf("Check(%q) both forwarded %q and replied %s", line, fwd, reply)
	case reply == nil && len(fwd) == 0:
		t.Fatalf("Check(%q) neither forwarded nor replied", line)
	}
	if reply == nil {
		for i, p := range preds {
			if p != "" && p != unknown {
				t.Fatalf("Check(%q) forwarded %q, but request %d should be refused as %s", line, fwd, i, p)
			}
		}
		for i, r := range env.verdicts {
			if r != "" {
				t.Fatalf("Check(%q) forwarded, but verdict %d is %q", line, i, r)
			}
		}
		env.checkForward(line, fwd)
		return fwd, nil
	}
	reasons := env.checkReply(line, reply)
	if !reflect.DeepEqual(reasons, env.verdicts) {
		t.Fatalf("Check(%q): observed verdicts %q, reply says %q: %s", line, env.verdicts, reasons, reply)
	}
	for i, p := range preds {
		want := p
		if p == "" && batch {
			want = stamp.ReasonBatch // refused because of another element
		}
		if p != unknown && (len(reasons) != len(preds) || reasons[i] != want) {
			t.Fatalf("Check(%q): refused with %q, want %q for request %d: %s", line, reasons, want, i, reply)
		}
	}
	return nil, reply
}

// unknown is a verdict the model leaves open.
const unknown stamp.Reason = "?"

// model returns the verdict on each request of line that
// docs/wire-format.md (sections 1 "Lines", 2 "Requests", 3 "The stamp
// member", 4 "Stamp text", 5 "Hashed input", 6 "Proof", 7 "Checks", 9 "Free
// methods") and the fuzz policy determine, worked out with encoding/json
// and judgeStamp, not with rpcline or stamp: "" for a request that must be
// forwarded, else the reason it must be refused. Only a line that may be
// nested deeper than the limit is left unknown. batch reports whether line
// is a batch.
func (env *fuzzEnv) model(line []byte) (preds []stamp.Reason, batch bool) {
	if !utf8.Valid(line) || !json.Valid(line) {
		return []stamp.Reason{stamp.ReasonParse}, false
	}
	if bytes.Count(line, []byte("["))+bytes.Count(line, []byte("{")) > rpcline.MaxDepth {
		return []stamp.Reason{unknown}, false // perhaps nested too deep: parse
	}
	v, err := decodeJSON(line)
	if err != nil {
		env.t.Fatalf("%q: valid JSON, but %v", line, err)
	}
	switch v := v.(type) {
	case map[string]any:
	case []any:
		if len(v) == 0 {
			return []stamp.Reason{stamp.ReasonInvalidRequest}, false
		}
		batch = true
	default:
		return []stamp.Reason{stamp.ReasonInvalidRequest}, false
	}
	spans, _ := valueSpans(env.t, line)
	keys := make([]*[16]byte, len(spans))
	refused := false
	for i, sp := range spans {
		var r stamp.Reason
		r, keys[i] = env.modelRequest(line, sp, batch)
		preds = append(preds, r)
		refused = refused || r != ""
	}
	switch {
	case refused:
		// No stamp is claimed; the other requests are refused as "batch".
	default:
		// Stamps are claimed in order, up to the first that was used.
		seen := map[[16]byte]bool{}
		for i, k := range keys {
			if k == nil {
				continue
			}
			if env.used[*k] || seen[*k] {
				preds[i] = stamp.ReasonReplayed
				break
			}
			seen[*k] = true
		}
	}
	return preds, batch
}

// modelRequest returns the verdict on the request at span of line, before
// any replay claim, and the replay key of its stamp when it is to be
// claimed.
func (env *fuzzEnv) modelRequest(line []byte, span [2]int, batch bool) (stamp.Reason, *[16]byte) {
	obj := line[span[0]:span[1]]
	names, values, err := objectMembers(obj)
	if err != nil {
		return stamp.ReasonInvalidRequest, nil // not an object
	}
	count := map[string]int{}
	var method any
	var pow json.RawMessage
	for i, name := range names {
		count[name]++
		switch name {
		case "method":
			method, _ = decodeJSON(values[i])
		case stamp.Member:
			pow = values[i]
		}
	}
	m, isString := method.(string)
	price := fuzzPriceOf(m)
	switch {
	case count["method"] > 1 || count["id"] > 1 || !isString:
		return stamp.ReasonInvalidRequest, nil
	case count[stamp.Member] == 0 && price > 0:
		return stamp.ReasonMissing, nil
	case count[stamp.Member] == 0:
		return "", nil
	case count[stamp.Member] > 1:
		return stamp.ReasonMalformed, nil // whatever the price (check 1)
	case price == 0:
		// Free: one stamp member is removed unchecked, whatever its value:
		// not a string, escaped, not stamp text (check 1; section 9).
		return "", nil
	case pow[0] != '"':
		return stamp.ReasonMalformed, nil // not a string (check 2)
	case bytes.IndexByte(pow, '\\') >= 0:
		// Any JSON escape, even one that decodes to valid stamp text
		// (check 2; section 4: a verifier MUST refuse it).
		return stamp.ReasonMalformed, nil
	}
	// The stamp is the JSON string's bytes as written on the line
	// (section 4): without escapes, the bytes between the quotes.
	text := string(pow[1 : len(pow)-1])
	// The body is the object's text without its stamp member, whitespace
	// around the object excluded (docs/wire-format.md section 3, Body).
	body := stripStamp(env.t, obj)
	key, reason, _ := judgeStamp(text, body, price)
	if reason != "" {
		return reason, nil
	}
	return "", &key
}

// checkTooLarge checks the reply for a line that is too long.
func (env *fuzzEnv) checkTooLarge() {
	env.verdicts = env.verdicts[:0]
	reply := bytes.Clone(env.v.RefuseTooLarge(1000))
	if reasons := env.checkReply(nil, reply); len(reasons) != 1 || reasons[0] != stamp.ReasonTooLarge ||
		!reflect.DeepEqual(reasons, env.verdicts) {
		env.t.Fatalf("RefuseTooLarge: reasons %q, verdicts %q: %s", reasons, env.verdicts, reply)
	}
}

// decodeJSON decodes exactly one JSON value from b, with numbers as text.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the value (%v)", err)
	}
	return v, nil
}

// checkReply checks that reply is one JSON line with a JSON-RPC error for
// line (nil for a line that was too large), or an array of them for a
// batch, and returns the reasons in order.
func (env *fuzzEnv) checkReply(line, reply []byte) []stamp.Reason {
	t := env.t
	if bytes.IndexByte(reply, '\n') >= 0 || !json.Valid(reply) || !utf8.Valid(reply) {
		t.Fatalf("reply to %q is not one JSON line: %q", line, reply)
	}
	r, err := decodeJSON(reply)
	if err != nil {
		t.Fatalf("reply to %q: %v", line, err)
	}
	var req any // the request as JSON, when it is
	if line != nil && utf8.Valid(line) {
		req, _ = decodeJSON(line)
	}
	if arr, ok := r.([]any); ok {
		elems, ok := req.([]any)
		if !ok || len(elems) == 0 || len(elems) != len(arr) {
			t.Fatalf("reply to %q is an array of %d errors: %s", line, len(arr), reply)
		}
		reasons := make([]stamp.Reason, len(arr))
		for i := range arr {
			reasons[i] = env.checkError(arr[i], elems[i], line, reply)
		}
		return reasons
	}
	if elems, isBatch := req.([]any); isBatch && len(elems) > 0 {
		t.Fatalf("reply to batch %q is not an array: %s", line, reply)
	}
	return []stamp.Reason{env.checkError(r, req, line, reply)}
}

// checkError checks one JSON-RPC error response to request req (decoded
// JSON, nil if none) and returns its reason.
func (env *fuzzEnv) checkError(v, req any, line, reply []byte) stamp.Reason {
	t := env.t
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("reply to %q: %s\nreply %s", line, fmt.Sprintf(format, args...), reply)
	}
	resp, ok := v.(map[string]any)
	if !ok || len(resp) != 3 || resp["jsonrpc"] != "2.0" {
		fail("not a JSON-RPC 2.0 response object")
	}
	e, ok := resp["error"].(map[string]any)
	if !ok || len(e) != 3 {
		fail("no error object")
	}
	data, ok := e["data"].(map[string]any)
	if !ok {
		fail("error without data")
	}
	reasonText, ok := data["reason"].(string)
	reason := stamp.Reason(reasonText)
	if !ok || reason.Code() == -32000 {
		fail("unknown reason %#v", data["reason"])
	}
	if e["code"] != json.Number(strconv.Itoa(reason.Code())) || e["message"] != reason.Message() {
		fail("code %v and message %v do not match reason %s", e["code"], e["message"], reason)
	}
	// The id is the request's; null when the line is not JSON or too large.
	reqObj, _ := req.(map[string]any)
	wantID := reqObj["id"]
	if reason == stamp.ReasonParse || reason == stamp.ReasonTooLarge {
		wantID = nil
	}
	if id, ok := resp["id"]; !ok || !reflect.DeepEqual(id, wantID) {
		fail("id %#v, want %#v", resp["id"], wantID)
	}
	for k, want := range map[string]any{
		"resource": fuzzResource,
		"time":     json.Number(strconv.Itoa(fuzzNow)),
		"window":   json.Number(strconv.Itoa(fuzzWindow)),
		"skew":     json.Number(strconv.Itoa(fuzzSkew)),
		"version":  json.Number("1"),
	} {
		if data[k] != want {
			fail("data.%s is %#v, want %#v", k, data[k], want)
		}
	}
	switch reason {
	case stamp.ReasonParse, stamp.ReasonInvalidRequest, stamp.ReasonTooLarge:
	default:
		// The request had a string method: the data names it and its price.
		// A verifier may shorten a long method name in its echo, marking
		// the cut with "…".
		method, _ := reqObj["method"].(string)
		got, _ := data["method"].(string)
		if cut, shortened := strings.CutSuffix(got, "…"); got != method &&
			!(shortened && len(cut) < len(method) && strings.HasPrefix(method, cut)) {
			fail("data.method %q, request's method %q", got, method)
		}
		if want := json.Number(strconv.FormatUint(fuzzPriceOf(method), 10)); data["price"] != want {
			fail("data.price %v, want %v", data["price"], want)
		}
	}
	return reason
}

// valueSpans returns where the top-level value of b lies, or for an array,
// where each of its elements lies, found with encoding/json.
func valueSpans(t testing.TB, b []byte) (spans [][2]int, batch bool) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	next := func() {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			t.Fatalf("decoding %q: %v", b, err)
		}
		end := int(d.InputOffset())
		start := end - len(raw)
		if start < 0 || !bytes.Equal(b[start:end], raw) {
			t.Fatalf("cannot locate %q in %q", raw, b)
		}
		spans = append(spans, [2]int{start, end})
	}
	if first := bytes.TrimLeft(b, " \t\r\n"); len(first) > 0 && first[0] == '[' {
		batch = true
		if _, err := d.Token(); err != nil {
			t.Fatalf("decoding %q: %v", b, err)
		}
		for d.More() {
			next()
		}
		if tok, err := d.Token(); err != nil || tok != json.Delim(']') {
			t.Fatalf("decoding %q: %v %v", b, tok, err)
		}
	} else {
		next()
	}
	if _, err := d.Token(); err != io.EOF {
		t.Fatalf("%q: data after the value (%v)", b, err)
	}
	return spans, batch
}

// objectMembers returns the member names (after unescaping) and raw values
// of the JSON object obj, in order, duplicates included, and where each
// member's key starts and value ends.
func objectMembers(obj []byte) (names []string, values []json.RawMessage, err error) {
	names, values, _, _, err = objectLayout(obj)
	return names, values, err
}

// objectLayout is objectMembers with the offsets of each member's key and
// the end of its value, from encoding/json's offsets.
func objectLayout(obj []byte) (names []string, values []json.RawMessage, keyStarts, valueEnds []int, err error) {
	d := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, nil, nil, fmt.Errorf("not an object: %v %v", tok, err)
	}
	prevEnd := int(d.InputOffset())
	for d.More() {
		// The key starts after whitespace and the comma, if any.
		k := prevEnd
		for k < len(obj) && bytes.IndexByte([]byte(" \t\r\n,"), obj[k]) >= 0 {
			k++
		}
		tok, err := d.Token()
		if err != nil {
			return nil, nil, nil, nil, err
		}
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return nil, nil, nil, nil, err
		}
		prevEnd = int(d.InputOffset())
		if k >= len(obj) || obj[k] != '"' {
			return nil, nil, nil, nil, fmt.Errorf("cannot locate key %q", tok)
		}
		names, values = append(names, tok.(string)), append(values, raw)
		keyStarts, valueEnds = append(keyStarts, k), append(valueEnds, prevEnd)
	}
	if tok, err := d.Token(); err != nil || tok != json.Delim('}') {
		return nil, nil, nil, nil, fmt.Errorf("unterminated object: %v %v", tok, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, nil, nil, nil, fmt.Errorf("data after the object (%v)", err)
	}
	return names, values, keyStarts, valueEnds, nil
}

// stripStamp returns the JSON object obj, which has exactly one member
// named "pow", with that member removed as docs/wire-format.md section 3
// ("The stamp member", Removal) says: from the comma
// before it through the end of its value, when it is not the first member;
// from its key's opening quote through the comma after its value, when it
// is the first of several; the member alone otherwise.
func stripStamp(t testing.TB, obj []byte) []byte {
	names, _, keyStarts, valueEnds, err := objectLayout(obj)
	if err != nil {
		t.Fatalf("%q: %v", obj, err)
	}
	i := slices.Index(names, stamp.Member)
	start, end := keyStarts[i], valueEnds[i]
	switch {
	case i > 0:
		start = bytes.LastIndexByte(obj[:start], ',')
	case len(names) > 1:
		end += bytes.IndexByte(obj[end:], ',') + 1
	}
	return slices.Concat(obj[:start], obj[end:])
}

// checkForward checks, without rpcline, that fwd is line with the "pow"
// member of each request removed as docs/wire-format.md section 3 ("The
// stamp member", Removal and Forwarding) describes, and that every removed
// stamp of a priced request is valid and new.
func (env *fuzzEnv) checkForward(line, fwd []byte) {
	t := env.t
	in, inBatch := valueSpans(t, line)
	out, outBatch := valueSpans(t, fwd)
	if inBatch != outBatch || len(in) != len(out) || len(in) == 0 {
		t.Fatalf("forwarded %q as %q: not the same requests", line, fwd)
	}
	if len(env.verdicts) != len(in) {
		t.Fatalf("forwarded %q: %d verdicts observed for %d requests", line, len(env.verdicts), len(in))
	}
	// Outside the requests, nothing changes.
	for i := 0; i <= len(in); i++ {
		a, b, c, d := 0, len(line), 0, len(fwd)
		if i > 0 {
			a, c = in[i-1][1], out[i-1][1]
		}
		if i < len(in) {
			b, d = in[i][0], out[i][0]
		}
		if !bytes.Equal(line[a:b], fwd[c:d]) {
			t.Fatalf("forwarded %q as %q: text between requests changed: %q -> %q", line, fwd, line[a:b], fwd[c:d])
		}
	}
	for i := range in {
		got := fwd[out[i][0]:out[i][1]]
		env.checkForwardedRequest(line, line[in[i][0]:in[i][1]], got, got)
	}
	// And as JSON: the line without its stamp members.
	want, err := decodeJSON(line)
	if err != nil {
		t.Fatalf("forwarded %q: %v", line, err)
	}
	got, err := decodeJSON(fwd)
	if err != nil {
		t.Fatalf("forwarded %q as %q: %v", line, fwd, err)
	}
	reqs := []any{want}
	if inBatch {
		reqs = want.([]any)
	}
	for _, r := range reqs {
		delete(r.(map[string]any), stamp.Member)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("forwarded %q as %q, which decodes as %v, want %v", line, fwd, got, want)
	}
}

// checkForwardedRequest checks one forwarded request: a is its text in the
// line, b what was forwarded, body the bytes its stamp commits to.
func (env *fuzzEnv) checkForwardedRequest(line, a, b, body []byte) {
	t := env.t
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("forwarded %q: request %q forwarded as %q: %s", line, a, b, fmt.Sprintf(format, args...))
	}
	v, err := decodeJSON(a)
	req, ok := v.(map[string]any)
	if err != nil || !ok {
		fail("not a JSON object (%v)", err)
	}
	method, ok := req["method"].(string)
	if !ok {
		fail("no string method")
	}
	price := fuzzPriceOf(method)
	names, values, err := objectMembers(a)
	if err != nil {
		fail("%v", err)
	}
	switch n := strings.Count("\x00"+strings.Join(names, "\x00")+"\x00", "\x00"+stamp.Member+"\x00"); {
	case n == 0 && price != 0:
		fail("forwarded without a stamp at price %d", price)
	case n == 0:
		if !bytes.Equal(a, b) {
			fail("changed without a stamp")
		}
		return
	case n > 1:
		fail("forwarded with %d stamp members", n)
	}
	if want := stripStamp(t, a); !bytes.Equal(b, want) {
		fail("want %q: the stamp member removed as docs/wire-format.md section 3 says", want)
	}
	if price == 0 {
		return // a free method's stamp is removed unchecked
	}
	raw := values[slices.Index(names, stamp.Member)]
	switch {
	case raw[0] != '"':
		fail("stamp %s is not a string", raw)
	case bytes.IndexByte(raw, '\\') >= 0:
		fail("stamp %s is written with a JSON escape", raw)
	}
	text := string(raw[1 : len(raw)-1])
	key, reason, detail := judgeStamp(text, body, price)
	if reason != "" {
		fail("stamp %q for body %q should be refused as %s: %s", text, body, reason, detail)
	}
	if env.used[key] {
		fail("stamp %q accepted a second time", text)
	}
	env.used[key] = true
}

// decimal parses a decimal of docs/wire-format.md section 4 ("Stamp
// text"): digits, no sign, no leading zeros, at most 2^64-1.
func decimal(s string) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// judgeStamp checks stamp text for body against the fuzz policy as
// docs/wire-format.md (sections 4 "Stamp text", 5 "Hashed input", 6 "Proof"
// and 7 "Checks") describes, in the order of section 7's checks 2 to 6,
// with its own implementation of the hashed input. It returns the stamp's
// replay key (digest bytes 16 to 31) and "" if the stamp is valid, or the
// reason to refuse it and why.
func judgeStamp(text string, body []byte, price uint64) (key [16]byte, reason stamp.Reason, detail string) {
	f := strings.SplitN(text, ":", 6)
	if len(f) != 6 || f[0] != "1" {
		return key, stamp.ReasonMalformed, "not 6 fields of version 1"
	}
	work, ok1 := decimal(f[1])
	tm, ok2 := decimal(f[2])
	counter, ok3 := decimal(f[4])
	if !ok1 || !ok2 || !ok3 || work == 0 || tm > math.MaxInt64 {
		return key, stamp.ReasonMalformed, "bad decimal field"
	}
	if len(f[3]) != 32 || strings.Trim(f[3], "0123456789abcdef") != "" {
		return key, stamp.ReasonMalformed, "salt is not 32 lowercase hex digits"
	}
	salt, _ := hex.DecodeString(f[3])
	res := f[5]
	if len(res) < 1 || len(res) > 255 ||
		strings.Trim(res, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_:[]") != "" {
		return key, stamp.ReasonMalformed, "bad resource"
	}
	switch t := int64(tm); {
	case res != fuzzResource:
		return key, stamp.ReasonWrongResource, res
	case t < fuzzNow-fuzzWindow:
		return key, stamp.ReasonExpired, ""
	case t > fuzzNow+fuzzSkew:
		return key, stamp.ReasonFuture, ""
	case work < price:
		return key, stamp.ReasonInsufficient, fmt.Sprintf("work %d below price %d", work, price)
	}
	bodyHash := sha256.Sum256(body)
	in := []byte("electrum-hashcash\x01")
	in = binary.BigEndian.AppendUint64(in, work)
	in = binary.BigEndian.AppendUint64(in, tm)
	in = append(in, salt...)
	in = append(in, bodyHash[:]...)
	in = append(in, byte(len(res)))
	in = append(in, res...)
	for len(in)%64 != 0 {
		in = append(in, 0)
	}
	in = binary.BigEndian.AppendUint64(in, counter)
	digest := sha256.Sum256(in)
	v := new(big.Int).SetBytes(digest[:8])
	if v.Mul(v, new(big.Int).SetUint64(work)).Cmp(new(big.Int).Lsh(big.NewInt(1), 64)) >= 0 {
		return key, stamp.ReasonInsufficient, fmt.Sprintf("digest %x does not prove work %d", digest, work)
	}
	copy(key[:], digest[16:])
	return key, "", ""
}
