package caddyhashcash

import "time"

// slackFor is how much later than exact an idle or write timeout may end
// a connection: an eighth of the timeout, at most a second. Deadlines on
// the connection move only when they have fallen that far behind, not on
// every read or write (each move resets a runtime timer: at a paced load,
// most of what the deadlines cost).
func slackFor(timeout time.Duration) time.Duration {
	return min(timeout/8, time.Second)
}

// readDeadline decides how long the next read from the client may wait:
// until readTimeout after the first byte of an unfinished line, and until
// idleTimeout after the read starts (up to slackFor(idleTimeout) later),
// whichever is sooner. A zero timeout is off.
type readDeadline struct {
	readTimeout, idleTimeout time.Duration
	lineSince                time.Time // first byte of the unfinished line; zero if none
	current                  time.Time // the deadline set on the connection
}

// lineStarted notes that an unfinished line is buffered, at now if it is a
// new one.
func (d *readDeadline) lineStarted(now time.Time) {
	if d.lineSince.IsZero() {
		d.lineSince = now
	}
}

// lineEnded notes that the unfinished line was completed.
func (d *readDeadline) lineEnded() { d.lineSince = time.Time{} }

// paused moves the unfinished line's start by p, a time during which the
// handler did not read: it does not count against readTimeout.
func (d *readDeadline) paused(p time.Duration) {
	if !d.lineSince.IsZero() {
		d.lineSince = d.lineSince.Add(p)
	}
}

// next returns the deadline for a read starting at now, and whether it
// differs from the one set last (the caller then sets it on the connection).
func (d *readDeadline) next(now time.Time) (time.Time, bool) {
	var t time.Time
	if d.idleTimeout > 0 {
		t = now.Add(d.idleTimeout)
		// The deadline set last is still good if it is no earlier than
		// idle_timeout from now and at most the slack later.
		if !d.current.Before(t) && !d.current.After(t.Add(slackFor(d.idleTimeout))) {
			t = d.current
		} else {
			t = t.Add(slackFor(d.idleTimeout))
		}
	}
	if d.readTimeout > 0 && !d.lineSince.IsZero() {
		if line := d.lineSince.Add(d.readTimeout); t.IsZero() || line.Before(t) {
			t = line
		}
	}
	if t.Equal(d.current) {
		return t, false
	}
	d.current = t
	return t, true
}

// lineExpired reports whether, at now, an unfinished line has taken longer
// than readTimeout: a read that timed out then did so for read_timeout,
// otherwise for idle_timeout.
func (d *readDeadline) lineExpired(now time.Time) bool {
	return d.readTimeout > 0 && !d.lineSince.IsZero() && !now.Before(d.lineSince.Add(d.readTimeout))
}
