package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// The request ids of a flood run tell the upstream who sent a line: honest
// clients use ids below seedIDBase; the seed lines, sent once by an honest
// connection so that replay flooders have used stamps to replay, use ids
// from seedIDBase; flooders use ids from floodIDBase. A line without an id
// can only come from a flooder.
const (
	seedIDBase  = 1_000_000_000
	floodIDBase = 2_000_000_000
)

// The kinds of flooder. Each flooder connection sends lines of one kind.
const (
	kindGarbage = "garbage" // not JSON, or JSON but not a request: parse, invalid_request
	kindMissing = "missing" // Electrum requests without a stamp: missing
	kindForged  = "forged"  // stamps whose digest does not prove their work: insufficient
	kindReplay  = "replay"  // stamps already accepted once: replayed, not a strike
)

// floodKinds lists the kinds a flood run knows, in report order.
var floodKinds = []string{kindGarbage, kindMissing, kindForged, kindReplay}

// floodPlan is what the flooder process is told to do, as one JSON line on
// its standard input.
type floodPlan struct {
	Addr      string        // caddy's hashcash server
	Flooders  int           // flooder connections open at a time
	Kinds     []string      // flooder i sends kind Kinds[i % len(Kinds)]
	PerPrefix int           // most flooders of one kind per /24
	Resource  string        // the server's resource, for forged stamps
	Price     uint64        // the server's price: forged stamps claim it
	Seeds     []string      // accepted request lines (no line feed), to replay
	Lines     int           // lines per kind to cycle through
	Window    int           // most unanswered lines per flooder connection
	Redial    time.Duration // wait before connecting again when the server ends a connection
	Max       time.Duration // the flooders stop by themselves after this
	Seed      uint64        // of the random lines
}

// spread is the count, least, greatest and sum of some values.
type spread struct {
	N, Min, Max, Sum int64
}

func (s *spread) add(v int64) {
	if s.N == 0 || v < s.Min {
		s.Min = v
	}
	if s.N == 0 || v > s.Max {
		s.Max = v
	}
	s.N++
	s.Sum += v
}

func (s *spread) merge(o spread) {
	if o.N == 0 {
		return
	}
	if s.N == 0 || o.Min < s.Min {
		s.Min = o.Min
	}
	if s.N == 0 || o.Max > s.Max {
		s.Max = o.Max
	}
	s.N += o.N
	s.Sum += o.Sum
}

func (s spread) mean() float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.Sum) / float64(s.N)
}

// floodStats is what flooders of one kind did.
type floodStats struct {
	Kind       string
	Flooders   int
	Prefixes   int   // distinct /24s they dialed from
	Dials      int64 // connection attempts
	DialErrors int64
	DialError  string           // the first dial error
	Lines      int64            // request lines written in whole
	Bytes      int64            // bytes written
	Replies    map[string]int64 // lines received, by refusal reason; "result" for results, "other" for the rest
	// LimitRefused counts connections the server refused with
	// connection_limit (and ended).
	LimitRefused int64
	// ServerClosed counts the other connections the server ended (end of
	// stream or reset) while the flooder was still sending.
	ServerClosed int64
	// RepliesAtClose is the number of lines each of those had received
	// by then.
	RepliesAtClose spread
}

// replies returns the number of lines received.
func (s *floodStats) replies() int64 {
	var n int64
	for _, v := range s.Replies {
		n += v
	}
	return n
}

func (s *floodStats) merge(o *floodStats) {
	s.Dials += o.Dials
	s.DialErrors += o.DialErrors
	if s.DialError == "" {
		s.DialError = o.DialError
	}
	s.Lines += o.Lines
	s.Bytes += o.Bytes
	s.LimitRefused += o.LimitRefused
	s.ServerClosed += o.ServerClosed
	s.RepliesAtClose.merge(o.RepliesAtClose)
	if s.Replies == nil {
		s.Replies = map[string]int64{}
	}
	for k, v := range o.Replies {
		s.Replies[k] += v
	}
}

// floodReport is what the flooder process reports when it stops, as one
// JSON line on its standard output.
type floodReport struct {
	Kinds   []*floodStats
	Elapsed time.Duration // from the first dial to the end
	CPU     time.Duration // the flooder process's
}

// flooderAddr returns the address flooder index (counted within its kind)
// of kind k dials from: 127.(10+k).(1+index/perPrefix).(1+index%perPrefix),
// so that each kind's flooders fill /24s of perPrefix addresses, one
// address each, and no two kinds share a /24. Linux routes all of
// 127.0.0.0/8 to the loopback interface.
func flooderAddr(k, index, perPrefix int) (net.IP, error) {
	if k < 0 || k > 200 || perPrefix < 1 || perPrefix > 254 || index < 0 || index/perPrefix > 253 {
		return nil, fmt.Errorf("no loopback address for flooder %d of kind %d at %d per /24", index, k, perPrefix)
	}
	return net.IPv4(127, byte(10+k), byte(1+index/perPrefix), byte(1+index%perPrefix)), nil
}

// honestAddr returns the address honest connection i dials from, in
// 127.0.2.0/24, apart from every flooder.
func honestAddr(i int) net.IP { return net.IPv4(127, 0, 2, byte(1+i%250)) }

// floodLines returns the lines flooders of kind send, in a pool: n of them
// (all the seeds for replay), each ending in a line feed.
func floodLines(kind string, plan *floodPlan, methods *picker, n int) (*pool, error) {
	rng := rand.New(rand.NewPCG(plan.Seed, uint64(len(kind))))
	p := &pool{}
	add := func(line []byte) {
		p.off = append(p.off, len(p.buf))
		p.buf = append(append(p.buf, line...), '\n')
	}
	var b []byte
	switch kind {
	case kindGarbage:
		for i := range n {
			id := strconv.Itoa(floodIDBase + i)
			switch i % 8 {
			case 0:
				add([]byte("GET / HTTP/1.1"))
			case 1: // printable noise
				b = b[:0]
				for range 20 + rng.IntN(180) {
					b = append(b, byte(' '+1+rng.IntN(94)))
				}
				b[0] = 'x'
				add(b)
			case 2: // bytes that are not UTF-8
				b = b[:0]
				for range 20 + rng.IntN(180) {
					b = append(b, byte(0x80+rng.IntN(0x80)))
				}
				add(b)
			case 3: // cut short
				add([]byte(`{"jsonrpc":"2.0","method":"blockchain.scripthash.subscribe","id":` + id + `,"params":["` + hexString(rng, 40)))
			case 4:
				add([]byte(`{"jsonrpc":"2.0","id":` + id + `}`))
			case 5:
				add([]byte(`[]`))
			case 6:
				add([]byte(`"` + hexString(rng, 64) + `"`))
			default:
				add([]byte(`{"jsonrpc":"2.0","method":"server.version","id":` + id + `,"params":["electrum/4.3.4","1.4"],}`))
			}
		}
	case kindMissing, kindForged:
		now := time.Now().Unix()
		for i := range n {
			m := methods.pick(rng)
			b = body(b[:0], m, floodIDBase+i, m.params(rng))
			if kind == kindForged {
				var err error
				if b, err = forge(b, plan, now, rng); err != nil {
					return nil, err
				}
			}
			add(b)
		}
	case kindReplay:
		if len(plan.Seeds) == 0 {
			return nil, errors.New("replay flooders need seed lines")
		}
		for _, s := range plan.Seeds {
			add([]byte(s))
		}
	default:
		return nil, fmt.Errorf("unknown flooder kind %q", kind)
	}
	p.off = append(p.off, len(p.buf))
	return p, nil
}

// forge returns request object b with a stamp that is right in every way
// but its digest, which does not prove the work it claims (plan.Price, which
// is at least the price of every method loadbench sends).
func forge(b []byte, plan *floodPlan, now int64, rng *rand.Rand) ([]byte, error) {
	var l rpcline.Line
	if err := rpcline.Scan(b, stamp.Member, &l); err != nil || l.Kind != rpcline.KindObject {
		return nil, fmt.Errorf("forging a stamp for %.100q: not one request object (%v)", b, err)
	}
	st := stamp.Stamp{Work: plan.Price, Time: now, Resource: plan.Resource}
	binary.LittleEndian.PutUint64(st.Salt[:], rng.Uint64())
	binary.LittleEndian.PutUint64(st.Salt[8:], rng.Uint64())
	bodyHash := stamp.BodyHash(rpcline.AppendObjectStripped(nil, b, &l.Objects[0]))
	for tries := 0; ; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("no failing counter for work %d in 1000 tries", plan.Price)
		}
		st.Counter = rng.Uint64()
		if d := st.Digest(&bodyHash, nil); !stamp.Meets(&d, st.Work) {
			break
		}
	}
	return rpcline.AppendWithStamps(nil, b, &l, stamp.Member, []string{st.String()}), nil
}

// reasonKey precedes the refusal reason in an error line.
var reasonKey = []byte(`"reason":"`)

// replyKind names a line a flooder received: "result", the refusal reason,
// or "other".
func replyKind(line []byte) []byte {
	if bytes.HasPrefix(line, resultPrefix) {
		return []byte("result")
	}
	i := bytes.Index(line, reasonKey)
	if i < 0 {
		return []byte("other")
	}
	rest := line[i+len(reasonKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 1 || j > 32 {
		return []byte("other")
	}
	for _, c := range rest[:j] {
		if (c < 'a' || c > 'z') && c != '_' {
			return []byte("other")
		}
	}
	return rest[:j]
}

// flooder is one flooder connection slot: it connects, sends its lines as
// fast as the connection takes them while reading what comes back, and
// connects again when the server ends the connection, until ctx is done.
type flooder struct {
	addr   string
	local  net.IP
	lines  *pool
	window int // most unanswered lines
	// redialWait is how long to wait before connecting again after the
	// server ended a connection.
	redialWait time.Duration
	next       int // the next line to send
	stats      floodStats
	// counts points into stats.Replies, so that counting a reason does
	// not allocate.
	counts map[string]*int64
}

// chunkLines is how many lines a flooder writes at a time.
const chunkLines = 32

func (f *flooder) run(ctx context.Context, dialed func()) {
	f.counts = map[string]*int64{}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: f.local}, Timeout: 3 * time.Second}
	first := true
	for ctx.Err() == nil {
		f.stats.Dials++
		c, err := d.DialContext(ctx, "tcp", f.addr)
		if first {
			dialed()
			first = false
		}
		if err != nil {
			if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
				break // stopping, maybe a moment before ctx says so
			}
			if f.stats.DialErrors++; f.stats.DialError == "" {
				f.stats.DialError = err.Error()
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if f.session(ctx, c) && f.redialWait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(f.redialWait):
			}
		}
	}
	f.stats.Replies = map[string]int64{}
	for k, v := range f.counts {
		f.stats.Replies[k] = *v
	}
}

// session floods one connection until the server ends it or ctx is done,
// closes it, and reports whether the server ended it. At most Window lines are unanswered at a time: every line
// a flooder sends is answered with one line, so lines beyond that would
// only wait in socket buffers, unread.
func (f *flooder) session(ctx context.Context, c net.Conn) (serverEnded bool) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var (
		wg                   sync.WaitGroup
		sentLines, sentBytes atomic.Int64
		tokens               = make(chan struct{}, f.window) // one per unanswered line
		readerDone           = make(chan struct{})
	)
	wg.Go(func() {
		p := f.lines
		for {
			select {
			case tokens <- struct{}{}:
			case <-readerDone:
				return
			}
			k := 1
		more:
			for k < min(chunkLines, p.lines()-f.next) {
				select {
				case tokens <- struct{}{}:
					k++
				default:
					break more
				}
			}
			b := p.buf[p.off[f.next]:p.off[f.next+k]]
			n, err := c.Write(b)
			sentBytes.Add(int64(n))
			if n == len(b) {
				sentLines.Add(int64(k))
				f.next = (f.next + k) % p.lines()
			} else {
				sentLines.Add(int64(countLines(b[:n])))
			}
			if err != nil {
				return
			}
		}
	})
	br := bufio.NewReaderSize(c, 16<<10)
	var (
		received int64
		limited  bool // answered connection_limit
	)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			err = nil // counted as "other" below, the rest as more lines
		}
		if err != nil {
			break
		}
		received++
		kind := replyKind(line)
		limited = limited || string(kind) == "connection_limit"
		n := f.counts[string(kind)]
		if n == nil {
			n = new(int64)
			f.counts[string(kind)] = n
		}
		*n++
		select {
		case <-tokens:
		default: // a line that answers no request, such as connection_limit
		}
	}
	serverEnded = ctx.Err() == nil
	close(readerDone)
	c.Close()
	wg.Wait()
	f.stats.Lines += sentLines.Load()
	f.stats.Bytes += sentBytes.Load()
	switch {
	case limited:
		f.stats.LimitRefused++
	case serverEnded:
		f.stats.ServerClosed++
		f.stats.RepliesAtClose.add(received)
	}
	return serverEnded
}

func countLines(b []byte) int { return bytes.Count(b, []byte{'\n'}) }

// runFlood runs plan's flooders until ctx is done, calling ready once every
// flooder has made its first connection attempt, and returns what they did.
func runFlood(ctx context.Context, plan *floodPlan, ready func()) (*floodReport, error) {
	if len(plan.Kinds) == 0 || plan.Flooders < len(plan.Kinds) {
		return nil, fmt.Errorf("%d flooders cannot cover %d kinds", plan.Flooders, len(plan.Kinds))
	}
	if plan.Window < 1 {
		return nil, fmt.Errorf("flooder window %d is less than 1", plan.Window)
	}
	methods := newPicker(mix())
	lines := map[string]*pool{}
	kindIndex := map[string]int{}
	for _, k := range plan.Kinds {
		if _, dup := lines[k]; dup {
			return nil, fmt.Errorf("flooder kind %q given twice", k)
		}
		p, err := floodLines(k, plan, methods, plan.Lines)
		if err != nil {
			return nil, fmt.Errorf("flooder lines of kind %s: %w", k, err)
		}
		lines[k] = p
		for i, known := range floodKinds {
			if known == k {
				kindIndex[k] = i
			}
		}
	}
	flooders := make([]*flooder, plan.Flooders)
	prefixes := map[string]map[string]bool{}
	for i := range flooders {
		kind := plan.Kinds[i%len(plan.Kinds)]
		ip, err := flooderAddr(kindIndex[kind], i/len(plan.Kinds), plan.PerPrefix)
		if err != nil {
			return nil, err
		}
		if prefixes[kind] == nil {
			prefixes[kind] = map[string]bool{}
		}
		prefixes[kind][ip.Mask(net.CIDRMask(24, 32)).String()] = true
		p := lines[kind]
		flooders[i] = &flooder{addr: plan.Addr, local: ip, lines: p, window: plan.Window, redialWait: plan.Redial, next: (i * 7919) % p.lines()}
		flooders[i].stats.Kind = kind
	}
	var (
		wg      sync.WaitGroup
		pending atomic.Int64
	)
	pending.Store(int64(len(flooders)))
	dialed := func() {
		if pending.Add(-1) == 0 {
			ready()
		}
	}
	start := time.Now()
	cpu0 := selfCPU()
	for _, f := range flooders {
		wg.Go(func() { f.run(ctx, dialed) })
	}
	wg.Wait()
	report := &floodReport{Elapsed: time.Since(start), CPU: selfCPU() - cpu0}
	for _, k := range plan.Kinds {
		s := &floodStats{Kind: k, Prefixes: len(prefixes[k]), Replies: map[string]int64{}}
		for _, f := range flooders {
			if f.stats.Kind == k {
				s.Flooders++
				s.merge(&f.stats)
			}
		}
		report.Kinds = append(report.Kinds, s)
	}
	return report, nil
}

// floodWorker is the flooder process: it reads its plan from the first
// line of in, says "ready" on out once every flooder has dialed, floods
// until in ends (the parent closes it, or exits) or plan.Max has passed,
// and writes its report to out as one JSON line.
func floodWorker(in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	raw, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the flood plan: %w", err)
	}
	var plan floodPlan
	if err := json.Unmarshal(raw, &plan); err != nil {
		return fmt.Errorf("decoding the flood plan: %w", err)
	}
	if plan.Max <= 0 {
		return errors.New("the flood plan has no time limit")
	}
	ctx, cancel := context.WithTimeout(context.Background(), plan.Max)
	defer cancel()
	go func() {
		// The parent closes our input to stop us; this ends with it.
		io.Copy(io.Discard, br)
		cancel()
	}()
	var outMu sync.Mutex
	report, err := runFlood(ctx, &plan, func() {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintln(out, "ready")
	})
	if err != nil {
		return err
	}
	outMu.Lock()
	defer outMu.Unlock()
	if err := json.NewEncoder(out).Encode(report); err != nil {
		return fmt.Errorf("writing the flood report: %w", err)
	}
	return nil
}
