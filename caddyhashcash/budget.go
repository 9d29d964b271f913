package caddyhashcash

import (
	"math"
	"time"
)

// refusalBudget paces the refusals of one connection, like a token bucket:
// a connection starts with burst refusals, earns one back per accepted
// request and rate per second with time, up to burst. A refusal that
// overdraws it pauses reading from the client until the overdraft is
// repaid. Honest clients, which cure a refusal by minting again, rarely
// touch it; a client that only sends refused lines is served at rate.
type refusalBudget struct {
	rate, burst float64   // rate 0: no pacing
	tokens      float64   // may fall to -1
	updated     time.Time // when tokens was last refilled
	pauseUntil  time.Time
}

func newRefusalBudget(rate float64, burst int) refusalBudget {
	if rate <= 0 || burst <= 0 {
		return refusalBudget{}
	}
	return refusalBudget{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// refill adds the tokens earned since the last update.
func (b *refusalBudget) refill(now time.Time) {
	if !b.updated.IsZero() {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.updated).Seconds()*b.rate)
	}
	b.updated = now
}

// spend takes a token for a refusal, pausing the connection if it has none.
func (b *refusalBudget) spend() {
	if b.rate == 0 {
		return
	}
	now := time.Now()
	b.refill(now)
	b.tokens--
	if b.tokens < 0 {
		b.pauseUntil = now.Add(time.Duration(-b.tokens / b.rate * float64(time.Second)))
	}
}

// earn gives back a token for an accepted request.
func (b *refusalBudget) earn() {
	if b.rate != 0 {
		b.tokens = math.Min(b.burst, b.tokens+1)
	}
}

// paused reports whether the connection must wait before its next line.
//
// It is called for every line: once a pause is over it is forgotten, so that
// the clock is read only while one may be running.
func (b *refusalBudget) paused() bool {
	if b.pauseUntil.IsZero() {
		return false
	}
	if time.Now().Before(b.pauseUntil) {
		return true
	}
	b.pauseUntil = time.Time{}
	return false
}

// pause returns how long is left of the current pause, 0 or less if none.
func (b *refusalBudget) pause() time.Duration {
	return time.Until(b.pauseUntil)
}
