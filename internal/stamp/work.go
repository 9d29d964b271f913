package stamp

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Work is an amount of proof of work: the expected number of SHA-256
// attempts. As text it is a plain number ("65536"), a number with a decimal
// suffix k, M or G ("64k", "1.5M"), a power of two ("2^16") or a hashcash
// bit count ("16 bits", "16bits"). In JSON it is a number or such a string.
type Work uint64

// ParseWork parses the text forms described on Work.
func ParseWork(text string) (Work, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return 0, fmt.Errorf("work %q: empty", text)
	}
	if rest, ok := strings.CutPrefix(s, "2^"); ok {
		return powerOfTwo(text, rest)
	}
	if rest, ok := strings.CutSuffix(s, "bits"); ok {
		return powerOfTwo(text, strings.TrimSpace(rest))
	}
	mult := 1.0
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1e3
	case 'M':
		mult = 1e6
	case 'G':
		mult = 1e9
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	if mult == 1 {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("work %q: want a number such as 65536, 64k, 1M, 2^16 or 16 bits", text)
		}
		return Work(v), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f*mult >= math.MaxUint64 {
		return 0, fmt.Errorf("work %q: want a number such as 65536, 64k, 1M, 2^16 or 16 bits", text)
	}
	return Work(math.Round(f * mult)), nil
}

func powerOfTwo(text, exp string) (Work, error) {
	n, err := strconv.ParseUint(exp, 10, 8)
	if err != nil || n > 63 {
		return 0, fmt.Errorf("work %q: exponent must be 0 to 63", text)
	}
	return Work(uint64(1) << n), nil
}

// String formats w compactly, in a form ParseWork reads back exactly.
func (w Work) String() string {
	v := uint64(w)
	for _, u := range []struct {
		div    uint64
		suffix string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= u.div && v%u.div == 0 {
			return strconv.FormatUint(v/u.div, 10) + u.suffix
		}
	}
	return strconv.FormatUint(v, 10)
}

// MarshalJSON encodes w as a JSON number.
func (w Work) MarshalJSON() ([]byte, error) {
	return strconv.AppendUint(nil, uint64(w), 10), nil
}

// UnmarshalJSON accepts a JSON number or any string ParseWork accepts.
func (w *Work) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseWork(s)
		if err != nil {
			return err
		}
		*w = v
		return nil
	}
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("work %s: want a non-negative integer or a string such as \"64k\"", b)
	}
	*w = Work(v)
	return nil
}
