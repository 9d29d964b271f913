package stamp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
)

// ErrNotStampable is wrapped by the error AppendStamped and
// AppendStampedFunc return for a line they cannot stamp: one that is not
// JSON (the error then also wraps rpcline.ErrSyntax), not a request object
// or a non-empty batch of request objects, or that already carries a stamp.
var ErrNotStampable = errors.New("line cannot be stamped")

// AppendStamped appends line to dst with a "pow" stamp minted into every
// request object (for a batch: each element), as the object's last member,
// inserted as package rpcline describes. Nothing else of the line changes:
// whitespace around and inside it is kept, so a trailing line feed, if line
// has one, stays at the end. tmpl gives Resource, Time and Work; each stamp
// gets its own random salt, and tmpl's Salt and Counter are not used.
// workers is the number of goroutines Mint uses.
//
// It fails, returning dst unchanged, if line is not a JSON object or a
// non-empty batch of objects, or already carries a stamp (errors wrapping
// ErrNotStampable), or if minting fails: ctx ends first, or tmpl's Work or
// Resource is invalid.
func AppendStamped(ctx context.Context, dst, line []byte, tmpl Stamp, workers int) ([]byte, error) {
	out, _, err := AppendStampedFunc(ctx, dst, line, func(int) Stamp {
		st := tmpl
		rand.Read(st.Salt[:])
		return st
	}, workers)
	return out, err
}

// Minted is what AppendStampedFunc minted for one line.
type Minted struct {
	// Stamps holds the stamp of each request object, in line order.
	Stamps []Stamp
	// Attempts counts the hash attempts Mint made for all of them.
	Attempts uint64
}

// AppendStampedFunc is AppendStamped with each stamp's fields chosen by the
// caller: stampFor(i), called just before the line's i-th request object is
// minted (in line order), gives its Resource, Time, Work and Salt; the
// Counter it gives is not used. It also returns what it minted, and on a
// failed mint the attempts made until then.
func AppendStampedFunc(ctx context.Context, dst, line []byte, stampFor func(i int) Stamp, workers int) ([]byte, Minted, error) {
	var l rpcline.Line
	if err := scanStampable(line, &l); err != nil {
		return dst, Minted{}, err
	}
	m := Minted{Stamps: make([]Stamp, len(l.Objects))}
	texts := make([]string, len(l.Objects))
	var body []byte
	for i := range l.Objects {
		st := stampFor(i)
		st.Counter = 0
		body = rpcline.AppendObjectStripped(body[:0], line, &l.Objects[i])
		bodyHash := BodyHash(body)
		n, err := Mint(ctx, &st, &bodyHash, workers)
		m.Attempts += n
		if err != nil {
			return dst, m, fmt.Errorf("stamping request %d of the line: %w", i, err)
		}
		m.Stamps[i] = st
		texts[i] = st.String()
	}
	return rpcline.AppendWithStamps(dst, line, &l, Member, texts), m, nil
}

// scanStampable scans line into l and checks that it is a request object or
// a non-empty batch of them, without a stamp member.
func scanStampable(line []byte, l *rpcline.Line) error {
	if err := rpcline.Scan(line, Member, l); err != nil {
		return fmt.Errorf("%w: %w", ErrNotStampable, err)
	}
	switch {
	case l.Kind == rpcline.KindOther:
		return fmt.Errorf("%w: not a JSON object or a batch", ErrNotStampable)
	case len(l.Objects) == 0:
		return fmt.Errorf("%w: an empty batch", ErrNotStampable)
	}
	for i := range l.Objects {
		o := &l.Objects[i]
		switch {
		case !o.IsObject:
			return fmt.Errorf("%w: batch element %d is not a JSON object", ErrNotStampable, i)
		case o.StampCount > 0:
			return fmt.Errorf("%w: request %d already has a %q member", ErrNotStampable, i, Member)
		}
	}
	return nil
}
