package stamp

// Reason says why a verifier refused a request. It is carried in the "reason"
// member of a rejection's error data.
type Reason string

// The reasons a request is refused, and the JSON-RPC error code of each.
const (
	// ReasonMissing: the request has no stamp but its method has a price.
	ReasonMissing Reason = "missing"
	// ReasonMalformed: the stamp is not valid stamp text, not a JSON string,
	// or present twice.
	ReasonMalformed Reason = "malformed"
	// ReasonInsufficient: the stamp claims less work than the method's price,
	// or its digest does not prove the work it claims.
	ReasonInsufficient Reason = "insufficient"
	// ReasonExpired: the stamp's time is older than the server's window.
	ReasonExpired Reason = "expired"
	// ReasonFuture: the stamp's time is ahead of the server's clock by more
	// than the allowed skew.
	ReasonFuture Reason = "future"
	// ReasonWrongResource: the stamp was minted for another server.
	ReasonWrongResource Reason = "wrong_resource"
	// ReasonReplayed: the stamp was already used.
	ReasonReplayed Reason = "replayed"
	// ReasonBusy: the server cannot remember more stamps right now; retry
	// shortly.
	ReasonBusy Reason = "busy"
	// ReasonBatch: the element was valid but not forwarded because another
	// element of its batch was refused. Its stamp was not used.
	ReasonBatch Reason = "batch"
	// ReasonTooLarge: the line exceeded the server's maximum line length.
	ReasonTooLarge Reason = "too_large"
	// ReasonInvalidRequest: the line is JSON but not a request object (or a
	// batch of them), or has a duplicated "method" or "id".
	ReasonInvalidRequest Reason = "invalid_request"
	// ReasonParse: the line is not valid JSON.
	ReasonParse Reason = "parse"
	// ReasonReadTimeout: the client started a line and did not finish it
	// within the server's read timeout. The connection is closed.
	ReasonReadTimeout Reason = "read_timeout"
	// ReasonConnectionLimit: the client's network already has as many
	// connections open as the server allows. The connection is closed.
	ReasonConnectionLimit Reason = "connection_limit"
	// ReasonInternal: the server failed while verifying the request. The
	// request was not forwarded and the connection is closed.
	ReasonInternal Reason = "internal"
)

// Code returns the JSON-RPC error code for r: the standard codes for JSON
// errors (-32700, -32600, -32603) and -32001 to -32012 for proof-of-work and
// connection refusals.
func (r Reason) Code() int {
	switch r {
	case ReasonParse:
		return -32700
	case ReasonInvalidRequest:
		return -32600
	case ReasonMissing:
		return -32001
	case ReasonMalformed:
		return -32002
	case ReasonInsufficient:
		return -32003
	case ReasonExpired:
		return -32004
	case ReasonFuture:
		return -32005
	case ReasonWrongResource:
		return -32006
	case ReasonReplayed:
		return -32007
	case ReasonBusy:
		return -32008
	case ReasonBatch:
		return -32009
	case ReasonTooLarge:
		return -32010
	case ReasonReadTimeout:
		return -32011
	case ReasonConnectionLimit:
		return -32012
	case ReasonInternal:
		return -32603
	}
	return -32000
}

// Curable reports whether a client that follows the protocol cures a
// refusal for r by minting the request again with what the refusal's data
// tells it: the price, the server's clock, window and resource, or a fresh
// stamp. Refusals that are not curable (a line that is not a request, a
// missing or malformed stamp, a line too large) say the client is broken
// or hostile; a verifier counts them against the connection (see Strike).
// Connection refusals (see ClosesConnection) are not curable either.
func (r Reason) Curable() bool {
	switch r {
	case ReasonInsufficient, ReasonExpired, ReasonFuture, ReasonWrongResource,
		ReasonReplayed, ReasonBusy, ReasonBatch:
		return true
	}
	return false
}

// Strike reports whether a refusal of one request for r counts toward a
// connection's limit of refused requests: every request refusal that is not
// Curable, and an insufficient stamp whose digest does not prove the work
// it claims (forged), which no re-minting at the same claim cures. A stamp
// that claims less than the price is insufficient but not forged: the
// client re-mints at the price in the refusal's data. On a server whose
// prices move (moving), a missing stamp is not a strike either: a client
// that found requests free sends none until a refusal tells it a price.
func (r Reason) Strike(forged, moving bool) bool {
	switch {
	case !r.Known() || r.ClosesConnection():
		return false
	case r == ReasonInsufficient:
		return forged
	case r == ReasonMissing && moving:
		return false
	}
	return !r.Curable()
}

// Priced reports whether a refusal for r carries the real price of its
// request's method: the verifier knows it once it has read the method,
// which is the case for every reason about a stamp.
func (r Reason) Priced() bool {
	switch r {
	case ReasonMissing, ReasonMalformed, ReasonInsufficient, ReasonExpired,
		ReasonFuture, ReasonWrongResource, ReasonReplayed, ReasonBusy, ReasonBatch:
		return true
	}
	return false
}

// ClosesConnection reports whether r refuses a whole connection rather
// than one request: the server closes the connection after it, and the
// error's id is null.
func (r Reason) ClosesConnection() bool {
	switch r {
	case ReasonConnectionLimit, ReasonReadTimeout, ReasonInternal:
		return true
	}
	return false
}

// Known reports whether r is one of the reasons this package defines.
func (r Reason) Known() bool {
	switch r {
	case ReasonTooLarge, ReasonInvalidRequest, ReasonParse:
		return true
	}
	return r.Priced() || r.ClosesConnection()
}

// Message returns the human-readable error message for r.
func (r Reason) Message() string {
	switch r {
	case ReasonParse:
		return "parse error: line is not valid JSON"
	case ReasonInvalidRequest:
		return "invalid request"
	case ReasonMissing:
		return "proof of work required: add a \"pow\" stamp"
	case ReasonMalformed:
		return "proof of work stamp is malformed"
	case ReasonInsufficient:
		return "proof of work is insufficient for this method"
	case ReasonExpired:
		return "proof of work stamp has expired"
	case ReasonFuture:
		return "proof of work stamp is dated in the future"
	case ReasonWrongResource:
		return "proof of work stamp is for another server"
	case ReasonReplayed:
		return "proof of work stamp was already used"
	case ReasonBusy:
		return "server busy: too many live stamps, retry shortly"
	case ReasonBatch:
		return "not forwarded: another request in the batch was refused"
	case ReasonTooLarge:
		return "request line too large"
	case ReasonReadTimeout:
		return "request line not completed in time"
	case ReasonConnectionLimit:
		return "too many connections from your network"
	case ReasonInternal:
		return "internal error: request not forwarded"
	}
	return "request refused"
}

// Rejection is the "data" member of a refusal's JSON-RPC error: everything
// a client needs to mint an acceptable stamp without guessing.
type Rejection struct {
	// Reason is why the request was refused.
	Reason Reason `json:"reason"`
	// Detail explains the reason in words, when there is more to say.
	Detail string `json:"detail,omitempty"`
	// Method is the request's method, when known.
	Method string `json:"method,omitempty"`
	// Price is the work the server requires for Method.
	Price uint64 `json:"price"`
	// Resource is the server's resource name: what stamps must name.
	Resource string `json:"resource"`
	// Time is the server's clock, Unix seconds.
	Time int64 `json:"time"`
	// Window is how many seconds a stamp stays valid after its time.
	Window int64 `json:"window"`
	// Skew is how many seconds a stamp may be dated ahead of Time.
	Skew int64 `json:"skew"`
	// Version is the stamp format version the server verifies.
	Version int `json:"version"`
	// Unit is the work a request of relative cost 1.0 requires from this
	// client now, on a server whose prices move: a method's price is its
	// cost times Unit, rounded up. Absent when the server's prices are
	// fixed, or when requests are free now.
	Unit uint64 `json:"unit,omitempty"`
	// Level is this client's price level (0: calm) on a server whose
	// prices move; absent at calm.
	Level int `json:"level,omitempty"`
	// NextFall is the earliest Unix time the level may fall by one, if the
	// client's network stays within its budget; absent at calm.
	NextFall int64 `json:"next_fall,omitempty"`
}
