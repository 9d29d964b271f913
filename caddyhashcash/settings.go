package caddyhashcash

import (
	"time"

	"go.uber.org/zap"

	"github.com/electrum-hashcash/electrum-hashcash/internal/connlimit"
	"github.com/electrum-hashcash/electrum-hashcash/internal/verify"
)

// connSettings are the limits and timeouts of one connection, resolved
// once from the handler's options (after their defaults): a zero duration
// or count means the limit is off.
type connSettings struct {
	maxLineBytes      int           // max_line_bytes
	maxRejections     int           // max_rejections; 0: never close
	maxPendingReplies int           // error bytes queued for a client that does not read
	readTimeout       time.Duration // read_timeout
	idleTimeout       time.Duration // idle_timeout
	writeTimeout      time.Duration // write_timeout
	rejectionCooldown time.Duration // rejection_cooldown
	refusalRate       float64       // refusal_rate; 0: no pacing
	refusalBurst      int           // refusal_burst
	prefixRule        connlimit.Rule
}

// resolveSettings turns the handler's options, defaults applied, into the
// settings its connections use.
func (h *Handler) resolveSettings() connSettings {
	return connSettings{
		maxLineBytes:      h.MaxLineBytes,
		maxRejections:     max(h.MaxRejections, 0),
		maxPendingReplies: maxPendingReplies(h.MaxLineBytes, h.MaxBatch),
		readTimeout:       max(time.Duration(h.ReadTimeout), 0),
		idleTimeout:       max(time.Duration(h.IdleTimeout), 0),
		writeTimeout:      max(time.Duration(h.WriteTimeout), 0),
		rejectionCooldown: max(time.Duration(h.RejectionCooldown), 0),
		refusalRate:       max(h.RefusalRate, 0),
		refusalBurst:      h.RefusalBurst,
		prefixRule:        connlimit.Rule{Max: h.MaxConnsPerPrefix, IPv4Bits: h.IPv4Prefix, IPv6Bits: h.IPv6Prefix},
	}
}

// maxPendingReplies bounds the error lines queued for a client, which grow
// only while the client does not read them: enough for the replies to a
// line of maxLine bytes and to a batch of maxBatch requests, whose error
// data repeat at most a few hundred bytes of each request besides its id.
func maxPendingReplies(maxLine, maxBatch int) int {
	return maxLine + maxBatch*1024 + 1<<20
}

// connEnv is what every connection of one handler shares: its settings,
// the policy its lines are verified against, its metrics and its logger.
type connEnv struct {
	settings connSettings
	policy   *verify.Policy
	metrics  *handlerMetrics
	logger   *zap.Logger
	// unloaded is closed when the handler's config is unloaded: waits of
	// its connections end then.
	unloaded <-chan struct{}
}
