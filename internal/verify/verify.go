// Package verify decides, line by line, whether a JSON-RPC request carries an
// acceptable proof-of-work stamp, and produces either the bytes to forward
// (the line with its stamps removed) or the JSON-RPC error line to answer.
package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/electrum-hashcash/electrum-hashcash/internal/replay"
	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// Policy is what a server requires of stamps. It is read-only once built
// and shared by every connection.
type Policy struct {
	// Resource is the server's name that stamps must carry.
	Resource string
	// DefaultPrice is the work required for methods not in MethodPrices,
	// when the Verifier has no Quoter.
	DefaultPrice uint64
	// MethodPrices maps a method name to its required work, whatever the
	// Quoter says; 0 means free.
	MethodPrices map[string]uint64
	// Costs maps a method name to its relative cost, for a Verifier with a
	// Quoter: a method not in MethodPrices costs its cost (1.0 if not
	// listed) times the quoted unit price, rounded up.
	Costs map[string]float64
	// Window is how long a stamp is valid after its time.
	Window time.Duration
	// Skew is how far a stamp may be dated ahead of the server's clock.
	Skew time.Duration
	// Store remembers used stamps.
	Store replay.Store
	// MaxBatch is the most requests a batch may hold; a longer batch is
	// refused whole with one error. 0 means no limit.
	MaxBatch int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// PriceOf returns the work required for method, without a Quoter.
func (p *Policy) PriceOf(method string) uint64 {
	if w, ok := p.MethodPrices[method]; ok {
		return w
	}
	return p.DefaultPrice
}

// costOf returns the relative cost of method: its entry in Costs, else 1.
func (p *Policy) costOf(method []byte) float64 {
	if c, ok := p.Costs[string(method)]; ok {
		return c
	}
	return 1
}

// Quote is the price in force for one connection's client at a moment,
// as a Quoter gives it.
type Quote struct {
	// Unit is the work a request of cost 1.0 requires now.
	Unit uint64
	// LeastUnit is the least unit price a stamp may have been minted for
	// and still be accepted: the unit before a rise that happened a moment
	// ago, so that a stamp in flight during the rise is not refused.
	LeastUnit uint64
	// Level is the price level (0: calm) the unit price comes from.
	Level int
	// NextFall is when the level may next fall, Unix seconds; 0 if none.
	NextFall int64
}

// Quoter returns the Quote in force now for a connection's client. It is
// called once per line.
type Quoter func(now time.Time) Quote

// priceUp returns cost × unit rounded up, at most the largest uint64; a
// priced method never becomes free.
func priceUp(cost float64, unit uint64) uint64 {
	w := math.Ceil(cost * float64(unit))
	if w >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(w)
}

// Verifier checks lines for one connection. It reuses its buffers between
// calls, so it is not safe for concurrent use, and a reply is valid only
// until the next call.
type Verifier struct {
	policy   *Policy
	observe  func(Verdict)
	quoter   Quoter
	quote    Quote // the quote for the line being checked
	quoted   bool  // a Quoter gave quote
	line     rpcline.Line
	reply    []byte
	elems    []element
	hasher   stamp.BodyHasher
	digester stamp.Digester

	// The claims Preclaim made and no Check has used yet, with their
	// outcome, and its buffers.
	preclaimed map[replay.Key]error
	batch      []replay.Claim
	batchErrs  []error
}

// element is the verdict on one request of a line.
type element struct {
	reason stamp.Reason
	detail string
	method []byte
	price  uint64  // the work the request requires now
	least  uint64  // the least work accepted (see Quote.LeastUnit)
	cost   float64 // the method's relative cost
	key    replay.Key
	expiry int64
	forged bool   // the digest does not prove the work the stamp claims
	work   uint64 // the work of the stamp that proved it, once verified
}

// Verdict is a Verifier's judgement on one request. The Verifier judges
// each request; the connection counts the strikes and enforces its limit.
type Verdict struct {
	// Reason is why the request was refused; "" if it was accepted.
	Reason stamp.Reason
	// Strike reports that the refusal counts toward the connection's limit
	// of refused requests (see stamp.Reason.Strike): a client that follows
	// the protocol could not have caused it.
	Strike bool
	// Cost is the request's relative cost (see Policy.Costs); 1 for a line
	// that is not a request.
	Cost float64
	// Method is the request's method name, nil for a line that is not a
	// request; it is valid only during the call that reports the Verdict.
	Method []byte
	// Work is the work of the stamp an accepted request carried, 0 if it
	// was accepted without one.
	Work uint64
}

// quoteOrNil returns the quote of the line being checked, or nil if v
// prices without a Quoter.
func (v *Verifier) quoteOrNil() *Quote {
	if v.quoted {
		return &v.quote
	}
	return nil
}

// QuoteBy makes v price requests by the Quotes q gives, with the Policy's
// Costs and MethodPrices, instead of by the Policy's static prices.
func (v *Verifier) QuoteBy(q Quoter) { v.quoter = q }

// NewVerifier returns a Verifier for one connection. observe, if not nil,
// is called once per request with its verdict.
func (p *Policy) NewVerifier(observe func(Verdict)) *Verifier {
	return &Verifier{
		policy:  p,
		observe: observe,
	}
}

// now returns the current time: p.Now(), or time.Now if Now is nil.
func (p *Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// record reports a verdict to observe. forged says that an insufficient
// stamp's digest does not prove the work it claims; cost is the request's.
func (v *Verifier) record(r stamp.Reason, forged bool, cost float64) {
	if v.observe != nil {
		v.observe(Verdict{Reason: r, Strike: r.Strike(forged, v.quoted), Cost: cost})
	}
}

// recordElement reports the verdict on request e, as record does.
func (v *Verifier) recordElement(e *element) {
	if v.observe != nil {
		vd := Verdict{Reason: e.reason, Strike: e.reason.Strike(e.forged, v.quoted), Cost: e.cost, Method: e.method}
		if e.reason == "" {
			vd.Work = e.work
		}
		v.observe(vd)
	}
}

// Check verifies one line (without its line feed). If the line is accepted,
// it appends the bytes to forward (the line without its stamps, and without
// a line feed) to dst and returns the extended slice and a nil reply.
// Otherwise it returns dst unchanged and the error line to answer with
// (without a line feed).
func (v *Verifier) Check(dst, line []byte) (forward, reply []byte) {
	clock := v.policy.now()
	now := clock.Unix()
	v.reply = v.reply[:0]
	if v.quoted = v.quoter != nil; v.quoted {
		v.quote = v.quoter(clock)
	}
	if err := rpcline.ScanLimit(line, stamp.Member, v.policy.MaxBatch, &v.line); err != nil {
		if errors.Is(err, rpcline.ErrBatchTooLarge) {
			v.record(stamp.ReasonInvalidRequest, false, 1)
			return dst, v.refuseLine(stamp.ReasonInvalidRequest,
				"a batch may hold at most "+strconv.Itoa(v.policy.MaxBatch)+" requests", now)
		}
		v.record(stamp.ReasonParse, false, 1)
		return dst, v.refuseLine(stamp.ReasonParse, err.Error(), now)
	}
	switch v.line.Kind {
	case rpcline.KindObject:
		e := v.checkObject(line, &v.line.Objects[0], now)
		if e.reason == "" {
			e.reason = v.claim(&e, now)
		}
		v.recordElement(&e)
		if e.reason != "" {
			v.reply = v.policy.appendError(v.reply, v.line.Objects[0].ID, &e, now, v.quoteOrNil())
			return dst, v.reply
		}
		return rpcline.AppendStripped(dst, line, &v.line), nil
	case rpcline.KindBatch:
		if len(v.line.Objects) == 0 {
			v.record(stamp.ReasonInvalidRequest, false, 1)
			return dst, v.refuseLine(stamp.ReasonInvalidRequest, "empty batch", now)
		}
		return v.checkBatch(dst, line, now)
	default:
		v.record(stamp.ReasonInvalidRequest, false, 1)
		return dst, v.refuseLine(stamp.ReasonInvalidRequest, "a request must be a JSON object or an array of them", now)
	}
}

// ExpectsAnswer reports whether the line the last Check accepted holds a
// request with an id, which the server answers with one line; a line of
// notifications only (no member "id") gets no answer.
func (v *Verifier) ExpectsAnswer() bool {
	for i := range v.line.Objects {
		if v.line.Objects[i].ID != nil {
			return true
		}
	}
	return false
}

// RefuseTooLarge returns the error line for a line longer than limit.
func (v *Verifier) RefuseTooLarge(limit int) []byte {
	v.record(stamp.ReasonTooLarge, false, 1)
	v.reply = v.reply[:0]
	clock := v.policy.now()
	if v.quoted = v.quoter != nil; v.quoted {
		v.quote = v.quoter(clock)
	}
	return v.refuseLine(stamp.ReasonTooLarge, "lines may be at most "+strconv.Itoa(limit)+" bytes", clock.Unix())
}

func (v *Verifier) refuseLine(r stamp.Reason, detail string, now int64) []byte {
	e := element{reason: r, detail: detail}
	v.reply = v.policy.appendError(v.reply[:0], nil, &e, now, v.quoteOrNil())
	return v.reply
}

func (v *Verifier) checkBatch(dst, line []byte, now int64) (forward, reply []byte) {
	v.elems = v.elems[:0]
	refused := false
	for i := range v.line.Objects {
		e := v.checkObject(line, &v.line.Objects[i], now)
		refused = refused || e.reason != ""
		v.elems = append(v.elems, e)
	}
	claimed := 0
	if !refused {
		for ; claimed < len(v.elems); claimed++ {
			if r := v.claim(&v.elems[claimed], now); r != "" {
				v.elems[claimed].reason = r
				refused = true
				break
			}
		}
	}
	if !refused {
		for i := range v.elems {
			v.recordElement(&v.elems[i])
		}
		return rpcline.AppendStripped(dst, line, &v.line), nil
	}
	// Undo the claims of a batch that is not forwarded, so that its valid
	// stamps can be sent again, and those Preclaim made for it.
	for i := 0; i < claimed; i++ {
		v.policy.Store.Release(v.elems[i].key)
	}
	for i := claimed; i < len(v.elems); i++ {
		if e := &v.elems[i]; e.expiry != 0 {
			v.dropPreclaim(e.key)
		}
	}
	v.reply = append(v.reply[:0], '[')
	for i := range v.elems {
		e := &v.elems[i]
		if e.reason == "" {
			e.reason = stamp.ReasonBatch
		}
		v.recordElement(e)
		if i > 0 {
			v.reply = append(v.reply, ',')
		}
		v.reply = v.policy.appendError(v.reply, v.line.Objects[i].ID, e, now, v.quoteOrNil())
	}
	v.reply = append(v.reply, ']')
	return dst, v.reply
}

// BatchesClaims reports whether the Policy's Store makes claims in
// batches (replay.BatchClaimer), so that Preclaim saves round trips.
func (v *Verifier) BatchesClaims() bool {
	_, ok := v.policy.Store.(replay.BatchClaimer)
	return ok
}

// Preclaim makes, in one batch, the claims that checking lines now would
// make, one line after the other, without checking them: each line is
// verified as Check verifies it, but no verdict is recorded and nothing is
// answered. The Checks of the lines that follow then use those claims
// instead of claiming one key at a time. Claims that no Check uses (a line
// refused after all, because time or its price moved on; a line not
// checked) must be given back with ReleasePreclaimed, before v's Policy
// Store is used by anything else for them. A key is claimed at most once
// however many lines carry it: the second line's Check claims it itself
// and finds it replayed. Preclaim does nothing unless BatchesClaims.
func (v *Verifier) Preclaim(lines [][]byte) {
	bc, ok := v.policy.Store.(replay.BatchClaimer)
	if !ok {
		return
	}
	clock := v.policy.now()
	now := clock.Unix()
	if v.quoted = v.quoter != nil; v.quoted {
		v.quote = v.quoter(clock)
	}
	if v.preclaimed == nil {
		v.preclaimed = make(map[replay.Key]error)
	}
	v.batch = v.batch[:0]
	for _, line := range lines {
		if len(v.batch) >= maxPreclaims {
			break
		}
		if rpcline.ScanLimit(line, stamp.Member, v.policy.MaxBatch, &v.line) != nil ||
			v.line.Kind != rpcline.KindObject && v.line.Kind != rpcline.KindBatch {
			continue
		}
		first := len(v.batch)
		for i := range v.line.Objects {
			e := v.checkObject(line, &v.line.Objects[i], now)
			if e.reason != "" { // a refused batch claims nothing
				for _, c := range v.batch[first:] {
					delete(v.preclaimed, c.Key)
				}
				v.batch = v.batch[:first]
				break
			}
			if _, dup := v.preclaimed[e.key]; e.expiry == 0 || dup {
				continue
			}
			v.preclaimed[e.key] = errUnsent // until ClaimBatch says
			v.batch = append(v.batch, replay.Claim{Key: e.key, Expires: e.expiry})
		}
	}
	if len(v.batch) == 0 {
		return
	}
	v.batchErrs = slices.Grow(v.batchErrs[:0], len(v.batch))[:len(v.batch)]
	bc.ClaimBatch(now, v.batch, v.batchErrs)
	for i, c := range v.batch {
		v.preclaimed[c.Key] = v.batchErrs[i]
	}
	clear(v.batchErrs)
}

// maxPreclaims is the most claims one Preclaim makes.
const maxPreclaims = 256

// errUnsent marks a key Preclaim is about to claim; ClaimBatch replaces it.
var errUnsent = errors.New("claim not sent")

// ReleasePreclaimed gives back every claim Preclaim made that no Check has
// used.
func (v *Verifier) ReleasePreclaimed() {
	for key := range v.preclaimed {
		v.dropPreclaim(key)
	}
}

// dropPreclaim gives back Preclaim's claim of key, if it made one that no
// Check has used.
func (v *Verifier) dropPreclaim(key replay.Key) {
	err, ok := v.preclaimed[key]
	if !ok {
		return
	}
	delete(v.preclaimed, key)
	if err == nil {
		v.policy.Store.Release(key)
	}
}

// checkObject applies every check but the replay claim to one request.
func (v *Verifier) checkObject(line []byte, o *rpcline.Object, now int64) element {
	if !o.IsObject {
		return element{reason: stamp.ReasonInvalidRequest, detail: "a request must be a JSON object"}
	}
	if o.Duplicate != "" {
		return element{reason: stamp.ReasonInvalidRequest, detail: "member \"" + o.Duplicate + "\" appears twice"}
	}
	method, ok := rpcline.ScannedStringValue(o.Method, o.MethodEscaped)
	if !ok { // absent, not a string, or escaped: the rare slow path
		decoded, ok := rpcline.StringValue(o.Method)
		if !ok {
			return element{reason: stamp.ReasonInvalidRequest, detail: "member \"method\" must be a string"}
		}
		method = []byte(decoded)
	}
	e := element{method: method, cost: v.policy.costOf(method)}
	price, listed := v.policy.MethodPrices[string(method)]
	switch {
	case listed:
		e.price, e.least = price, price
	case v.quoted:
		e.price, e.least = priceUp(e.cost, v.quote.Unit), priceUp(e.cost, min(v.quote.LeastUnit, v.quote.Unit))
	default:
		e.price, e.least = v.policy.DefaultPrice, v.policy.DefaultPrice
	}
	price = e.price
	switch {
	case o.StampCount == 0 && e.least == 0:
		return e // free, or free a moment ago
	case o.StampCount == 0:
		e.reason = stamp.ReasonMissing
		return e
	case o.StampCount > 1:
		e.reason, e.detail = stamp.ReasonMalformed, "member \""+stamp.Member+"\" appears more than once"
		return e
	case e.least == 0:
		return e // free method: the stamp is removed unchecked
	}
	text, ok := rpcline.ScannedStringValue(o.Stamp, o.StampEscaped)
	if !ok {
		e.reason, e.detail = stamp.ReasonMalformed, "member \""+stamp.Member+"\" must be a string without escapes"
		return e
	}
	st, err := stamp.ParseKnown(text, v.policy.Resource)
	if err != nil {
		e.reason, e.detail = stamp.ReasonMalformed, err.Error()
		return e
	}
	window, skew := int64(v.policy.Window/time.Second), int64(v.policy.Skew/time.Second)
	switch {
	case st.Resource != v.policy.Resource:
		e.reason, e.detail = stamp.ReasonWrongResource, "stamp names "+strconv.Quote(st.Resource)
	case st.Time < now-window:
		e.reason = stamp.ReasonExpired
	case st.Time > now+skew:
		e.reason = stamp.ReasonFuture
	case st.Work < e.least:
		e.reason, e.detail = stamp.ReasonInsufficient, fmt.Sprintf("stamp claims %d, method costs %d", st.Work, price)
	}
	if e.reason != "" {
		return e
	}
	bodyHash := v.bodyHash(line, o)
	digest := v.digester.Sum(&st, &bodyHash)
	if !stamp.Meets(&digest, st.Work) {
		e.reason, e.detail = stamp.ReasonInsufficient, "digest does not prove the claimed work for this request"
		e.forged = true
		return e
	}
	copy(e.key[:], digest[16:])
	e.expiry = st.Time + window + 1
	e.work = st.Work
	return e
}

// bodyHash returns the hash of the body of object o of line, the object
// without its one stamp member: the same as stamp.BodyHash of
// rpcline.AppendObjectStripped, but it hashes the text on either side of the
// member where it lies instead of copying it together first.
func (v *Verifier) bodyHash(line []byte, o *rpcline.Object) [32]byte {
	return v.hasher.Sum(line[o.Start:o.CutStart], line[o.CutEnd:o.End])
}

// claim records an accepted request's stamp, or says why it cannot. A
// claim Preclaim made of the key is used instead of a new one.
func (v *Verifier) claim(e *element, now int64) stamp.Reason {
	if e.expiry == 0 { // free request: nothing to claim
		return ""
	}
	err, ok := v.preclaimed[e.key]
	if ok {
		delete(v.preclaimed, e.key)
	} else {
		err = v.policy.Store.Claim(e.key, now, e.expiry)
	}
	switch err {
	case nil:
		return ""
	case replay.ErrReplayed:
		return stamp.ReasonReplayed
	default:
		e.detail = err.Error()
		return stamp.ReasonBusy
	}
}

// ConnectionError returns a JSON-RPC error line (without a line feed), with
// id null, for a refusal that concerns the connection rather than one
// request: a read timeout, a connection limit, an internal failure.
func (p *Policy) ConnectionError(r stamp.Reason, detail string) []byte {
	return p.appendError(nil, nil, &element{reason: r, detail: detail}, p.now().Unix(), nil)
}

// maxEcho is the most bytes of a client's method name or of a detail that
// an error's data repeats, so that a reply stays short whatever the
// request held.
const maxEcho = 256

// truncate cuts s to at most maxEcho bytes, at a UTF-8 character boundary.
func truncate(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// appendError appends a JSON-RPC error response for a refused request.
func (p *Policy) appendError(dst, id []byte, e *element, now int64, q *Quote) []byte {
	r := stamp.Rejection{
		Reason:   e.reason,
		Detail:   truncate(e.detail),
		Method:   truncate(string(e.method)),
		Price:    e.price,
		Resource: p.Resource,
		Time:     now,
		Window:   int64(p.Window / time.Second),
		Skew:     int64(p.Skew / time.Second),
		Version:  stamp.Version,
	}
	if q != nil {
		r.Unit, r.Level, r.NextFall = q.Unit, q.Level, q.NextFall
	}
	data, err := json.Marshal(r)
	if err != nil { // cannot happen: every field is plainly encodable
		data = []byte("{}")
	}
	if id == nil {
		id = []byte("null")
	}
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = append(dst, id...)
	dst = append(dst, `,"error":{"code":`...)
	dst = strconv.AppendInt(dst, int64(e.reason.Code()), 10)
	dst = append(dst, `,"message":`...)
	msg, _ := json.Marshal(e.reason.Message())
	dst = append(dst, msg...)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, "}}"...)
}
