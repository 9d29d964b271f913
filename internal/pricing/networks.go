package pricing

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Quote is what a network's requests cost now.
type Quote struct {
	// Level is the effective level: the network's own level plus the global
	// level, capped at MaxLevel.
	Level int
	// Unit is Unit(Level): the price of a cost-1.0 request now. The price of
	// a request is PriceOf(cost, Unit); see (Quote).Price.
	Unit uint64
	// MinUnit is the least unit price accepted now: the unit of the
	// effective level before the latest rise, if that rise happened within
	// Tolerance, else Unit. The network's level and the global level are
	// taken each at its value before its own latest rise, if that rise was
	// within Tolerance. It is never above Unit.
	MinUnit uint64
	// NextFall is the earliest time the effective level may fall by one if
	// the network spends nothing more (and, for the global part, the
	// server's load stays low), assuming ticks every Config.Tick from the
	// latest. It is the zero time at calm.
	NextFall time.Time
}

// Price returns the price of a request of the given cost at this quote:
// PriceOf(cost, q.Unit). This is the price to ask for in a refusal.
func (q Quote) Price(cost float64) uint64 { return PriceOf(cost, q.Unit) }

// MinPrice returns the least work a stamp for a request of the given cost
// may claim now: PriceOf(cost, q.MinUnit).
func (q Quote) MinPrice(cost float64) uint64 { return PriceOf(cost, q.MinUnit) }

// Change is a crossing between calm and above calm, reported once by Tick:
// when a network (or the global level) rises from level 0 to 1, and when it
// returns to 0.
type Change struct {
	// Prefix is the network; the zero Prefix when Global.
	Prefix netip.Prefix
	// Global is true for the global level.
	Global bool
	// From and To are the levels before and after: 0 and 1 for a rise from
	// calm, 1 and 0 for a return (To is 0, From may be higher, when a network
	// was Dropped or a lowered max clamped it).
	From, To int
	// Peak is the highest level reached since the rise from calm (on a
	// return; 1 on a rise).
	Peak int
	// Since is when the network (or the global level) rose from calm.
	Since time.Time
	// Rate is the network's spending during the tick, in cost units per
	// second (refused requests counted at RefusedWeight); 0 for the global
	// level and for dropped networks.
	Rate float64
	// Dropped is true when a network above calm was dropped to make room in
	// the table: it quotes calm again.
	Dropped bool
}

// Snapshot is the state of a Networks for metrics and administration.
type Snapshot struct {
	GlobalLevel int    // the global level
	InFlight    int    // the pressure signal: requests forwarded and not answered
	MaxLevel    int    // the configured MaxLevel
	Tracked     int    // networks tracked now
	Highest     int    // the highest own level of any network (0 when all are calm)
	Evicted     uint64 // networks dropped to make room since NewNetworks
	// Networks lists the networks above calm, highest level first, then
	// fastest spending.
	Networks []NetworkState
}

// NetworkState is one network above calm in a Snapshot.
type NetworkState struct {
	Prefix    netip.Prefix
	Level     int       // the network's own level
	Effective int       // its level plus the global level, capped at MaxLevel
	Unit      uint64    // Unit(Effective)
	Rate      float64   // cost units per second taken from its bucket during the last tick
	Tokens    float64   // its bucket at the snapshot's time, in cost units (below 0: in debt)
	Since     time.Time // when it rose from calm
}

// Networks keeps a token bucket and a price level for each client network,
// and the global level. It is safe for concurrent use. Quote and Spend lock
// one of 64 shards for a map lookup; Tick visits every network once.
// Create it with NewNetworks.
type Networks struct {
	cfg    atomic.Pointer[settings]
	global atomic.Pointer[globalState]

	inFlight atomic.Int64
	tickMin  atomic.Int64 // the least inFlight since the last Tick
	tickMax  atomic.Int64 // the most inFlight since the last Tick

	count   atomic.Int64 // networks in all shards
	evicted atomic.Uint64

	tickMu sync.Mutex // serializes Tick and Configure

	evictMu  sync.Mutex // serializes makeRoom
	evictBuf []coldKey  // makeRoom's scratch, under evictMu

	pendingMu sync.Mutex
	pending   []Change // drops and clamps to report at the next Tick

	shards [numShards]shard
}

const numShards = 64

// epsilon is how far below 0 a bucket may be and still count as paid up, so
// that rounding in the bucket's arithmetic decides nothing.
const epsilon = 1e-6

type shard struct {
	mu     sync.Mutex
	index  map[netip.Prefix]int32
	meters []meter
	_      [64 - 8 - 8 - 24]byte // keep shards on separate cache lines
}

// meter is one network's state. Times are Unix nanoseconds.
type meter struct {
	prefix    netip.Prefix
	tokens    float64 // the bucket at time at: -Burst..Burst, below 0 in debt
	at        int64   // the last refill
	lastSpend int64   // the latest Spend: how warm the network is
	spent     float64 // cost units taken since the last Tick
	local     float64 // cost units Spend took since the last DrainLocal
	since     int64   // when it rose from calm
	roseAt    int64   // its latest rise
	rate      float32 // spent/tick length at the last Tick
	level     int32
	prevLevel int32 // the level before the latest rise
	peak      int32 // the highest level since it rose from calm
	calmRun   int32 // consecutive ticks within budget
}

// settings is a validated Config with what the hot paths need precomputed.
type settings struct {
	c         Config
	units     []uint64 // Unit(0..maxLevel)
	maxLevel  int
	tolerance int64   // ns; -1 when off, so that no time since a rise is within it
	tick      int64   // ns
	refused   float64 // RefusedWeight, 0 when negative
	budgetNs  float64 // Budget per nanosecond
}

// drainTicks: above PressureTarget, the global level holds instead of
// rising while the backlog above the target shrank, over the latest tick, by
// at least 1/drainTicks of what is left of it (so it would be gone within
// drainTicks ticks at that pace).
const drainTicks = 10

// globalState is replaced, never changed, so that Quote reads it with one
// atomic load.
type globalState struct {
	level    int
	prev     int   // the level before the latest rise
	roseAt   int64 // the latest rise
	since    int64 // when it rose from calm
	peak     int
	calmRun  int
	lastTick int64
	ticked   bool
	// inFlight is the pressure signal at the latest tick: above the
	// target, the level holds while the signal falls fast enough (see
	// drainTicks).
	inFlight int64
}

func newSettings(c Config) *settings {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		panic("pricing: invalid Config: " + err.Error())
	}
	s := &settings{c: c, maxLevel: c.MaxLevel(), tick: int64(c.Tick), refused: max(c.RefusedWeight, 0),
		tolerance: max(int64(c.Tolerance), -1), budgetNs: c.Budget / 1e9}
	s.units = make([]uint64, s.maxLevel+1)
	for l := range s.units {
		s.units[l] = c.Unit(l)
	}
	return s
}

// NewNetworks returns an empty table at calm. c should have had WithDefaults
// applied and passed Validate; NewNetworks applies WithDefaults again and
// panics if c is invalid.
func NewNetworks(c Config) *Networks {
	n := &Networks{}
	n.cfg.Store(newSettings(c))
	n.global.Store(&globalState{})
	for i := range n.shards {
		n.shards[i].index = make(map[netip.Prefix]int32)
	}
	return n
}

// Configure applies a new Config (a reload). Networks, their buckets and
// levels, and the global level are kept; levels above the new MaxLevel are
// lowered to it, and the table is cut to the new MaxNetworks. Like
// NewNetworks it panics if c is invalid.
func (n *Networks) Configure(c Config) {
	st := newSettings(c)
	n.tickMu.Lock()
	defer n.tickMu.Unlock()
	n.cfg.Store(st)
	ml := int32(st.maxLevel)
	g := *n.global.Load()
	if g.level > st.maxLevel {
		if st.maxLevel == 0 {
			n.addPending(Change{Global: true, From: g.level, To: 0, Peak: g.peak, Since: time.Unix(0, g.since)})
		}
		g.level = st.maxLevel
		g.prev = min(g.prev, g.level)
		n.global.Store(&g)
	}
	for i := range n.shards {
		s := &n.shards[i]
		s.mu.Lock()
		for j := range s.meters {
			m := &s.meters[j]
			if m.level > ml {
				if ml == 0 {
					n.addPending(Change{Prefix: m.prefix, From: int(m.level), To: 0, Peak: int(m.peak),
						Since: time.Unix(0, m.since)})
				}
				m.level = ml
				m.prevLevel = min(m.prevLevel, ml)
			}
		}
		s.mu.Unlock()
	}
	if n.count.Load() > int64(st.c.MaxNetworks) {
		n.makeRoom(st, false)
	}
}

// Config returns the Config in force, with defaults applied.
func (n *Networks) Config() Config { return n.cfg.Load().c }

func (n *Networks) shardOf(p netip.Prefix) *shard {
	a := p.Addr().As16()
	x := binary.LittleEndian.Uint64(a[:8])*0x9E3779B97F4A7C15 ^
		binary.LittleEndian.Uint64(a[8:])*0xC2B2AE3D27D4EB4F ^ uint64(p.Bits()+1)
	x *= 0x165667B19E3779F9
	return &n.shards[x>>58]
}

// Quote returns what requests from network p cost at time now. p should be
// the network as connlimit.Rule.PrefixOf gives it (masked). A network not in
// the table is at calm; Quote adds nothing to the table.
func (n *Networks) Quote(p netip.Prefix, now time.Time) Quote {
	st := n.cfg.Load()
	g := n.global.Load()
	t := now.UnixNano()
	var level, minLevel, calmRun int
	var tokens float64
	var at int64
	s := n.shardOf(p)
	s.mu.Lock()
	if i, ok := s.index[p]; ok {
		m := &s.meters[i]
		level, minLevel, calmRun = int(m.level), int(m.level), int(m.calmRun)
		if m.prevLevel < m.level && t-m.roseAt <= st.tolerance {
			minLevel = int(m.prevLevel)
		}
		tokens, at = m.tokens, m.at
	}
	s.mu.Unlock()

	gMin := g.level
	if g.prev < g.level && t-g.roseAt <= st.tolerance {
		gMin = g.prev
	}
	eff := min(level+g.level, st.maxLevel)
	q := Quote{Level: eff, Unit: st.units[eff], MinUnit: st.units[min(minLevel+gMin, eff)]}
	if eff > 0 {
		base := t
		if g.ticked {
			base = g.lastTick
		}
		next := int64(math.MaxInt64)
		if level > 0 {
			ticks := int64(max(st.c.CalmTicks-calmRun, 1))
			if base > at {
				tokens = min(st.c.Burst, tokens+float64(base-at)*st.budgetNs)
			}
			if debt := -tokens - epsilon; debt > 0 {
				// The first tick within budget is the one by which the debt
				// is paid back, if the network spends nothing more.
				perTick := st.c.Budget * float64(st.tick) / 1e9
				ticks = int64(math.Ceil(debt/perTick)) + int64(st.c.CalmTicks) - 1
			}
			next = base + ticks*st.tick
		}
		if g.level > 0 {
			next = min(next, base+int64(max(st.c.CalmTicks-g.calmRun, 1))*st.tick)
		}
		q.NextFall = time.Unix(0, next)
	}
	return q
}

// Spend takes a request's cost, in cost units, from network p's bucket: all
// of it when the request was accepted, RefusedWeight of it when it was
// refused. A network not in the table is added at calm with a full bucket,
// dropping the coldest networks first when the table is full.
func (n *Networks) Spend(p netip.Prefix, cost float64, accepted bool, now time.Time) {
	st := n.cfg.Load()
	w := cost
	if !accepted {
		w *= st.refused
	}
	if !(w > 0) { // also NaN
		return
	}
	n.take(p, min(w, maxCost), true, now, st)
}

// SpendElsewhere takes cost units that network p spent at other instances
// (as another instance's DrainLocal reported them) from its bucket, as
// Spend takes an accepted request's, so that every instance prices the
// network by its spending at all of them. DrainLocal does not report them.
func (n *Networks) SpendElsewhere(p netip.Prefix, cost float64, now time.Time) {
	if !(cost > 0) { // also NaN
		return
	}
	n.take(p, min(cost, maxCost), false, now, n.cfg.Load())
}

// Spending is what one network spent, in cost units.
type Spending struct {
	Prefix netip.Prefix
	Cost   float64
}

// DrainLocal appends to buf what each network has spent through Spend
// since the last DrainLocal (refused requests weighted as Spend weighs
// them), and starts those counts again. A network dropped from the table
// in between loses its count.
func (n *Networks) DrainLocal(buf []Spending) []Spending {
	for si := range n.shards {
		s := &n.shards[si]
		s.mu.Lock()
		for i := range s.meters {
			if m := &s.meters[i]; m.local > 0 {
				buf = append(buf, Spending{Prefix: m.prefix, Cost: m.local})
				m.local = 0
			}
		}
		s.mu.Unlock()
	}
	return buf
}

// take takes w cost units from network p's bucket, adding the network if
// it is not in the table; local counts them for DrainLocal.
func (n *Networks) take(p netip.Prefix, w float64, local bool, now time.Time, st *settings) {
	t := now.UnixNano()
	s := n.shardOf(p)
	s.mu.Lock()
	i, ok := s.index[p]
	if !ok {
		if n.count.Load() >= int64(st.c.MaxNetworks) {
			s.mu.Unlock()
			n.makeRoom(st, true)
			s.mu.Lock()
			i, ok = s.index[p]
		}
		if !ok {
			i = int32(len(s.meters))
			s.meters = append(s.meters, meter{prefix: p, tokens: st.c.Burst, at: t, lastSpend: t})
			s.index[p] = i
			n.count.Add(1)
		}
	}
	m := &s.meters[i]
	m.refill(t, st)
	m.tokens = max(m.tokens-w, -st.c.Burst)
	m.spent += w
	if local {
		m.local += w
	}
	m.lastSpend = max(m.lastSpend, t)
	s.mu.Unlock()
}

func (m *meter) refill(t int64, st *settings) {
	if t > m.at {
		m.tokens = min(st.c.Burst, m.tokens+float64(t-m.at)*st.budgetNs)
		m.at = t
	}
}

// AddInFlight adds delta to the count of requests forwarded and not yet
// answered, the pressure signal for the global level: +1 when a request is
// forwarded, −1 when its answer comes back (or its connection closes). The
// count never goes below 0.
func (n *Networks) AddInFlight(delta int) {
	if delta == 0 {
		return
	}
	var v int64
	for {
		old := n.inFlight.Load()
		v = max(old+int64(delta), 0)
		if n.inFlight.CompareAndSwap(old, v) {
			break
		}
	}
	for {
		lo := n.tickMin.Load()
		if v >= lo || n.tickMin.CompareAndSwap(lo, v) {
			break
		}
	}
	for {
		hi := n.tickMax.Load()
		if v <= hi || n.tickMax.CompareAndSwap(hi, v) {
			break
		}
	}
}

// InFlight returns the count AddInFlight keeps.
func (n *Networks) InFlight() int { return int(n.inFlight.Load()) }

// GlobalLevel returns the global level, which is added to every network's.
func (n *Networks) GlobalLevel() int { return n.global.Load().level }

// Tick moves the levels; call it every Config.Tick with the current time,
// from one goroutine. Each network is judged on the tick that ended:
//
//   - in debt (its bucket below 0) and it spent more than Budget × the time
//     since the last Tick: it rises one level, up to MaxLevel;
//   - not in debt and it spent at most that: the tick is within budget, and
//     after CalmTicks consecutive ticks within budget it falls one level;
//   - otherwise (paying a debt back, or spending saved tokens) its level
//     stays and its run of ticks within budget starts again;
//   - a network at level 0 with a full bucket is forgotten: it is the same
//     as a network never seen.
//
// The global level rises by one when the in-flight count stayed above
// PressureTarget since the last Tick, and falls by one after CalmTicks
// consecutive ticks throughout which it was at most PressureTarget/2 (or
// PressureTarget is 0).
//
// Tick returns the crossings between calm and above calm (see Change),
// including those of networks dropped or clamped since the last Tick, or nil.
func (n *Networks) Tick(now time.Time) []Change {
	n.tickMu.Lock()
	defer n.tickMu.Unlock()
	st := n.cfg.Load()
	t := now.UnixNano()
	g := *n.global.Load()
	dt := st.tick
	if g.ticked && t > g.lastTick {
		dt = t - g.lastTick
	}
	dtSec := float64(dt) / 1e9
	var changes []Change

	n.pendingMu.Lock()
	if len(n.pending) > 0 {
		changes = append(changes, n.pending...)
		n.pending = n.pending[:0]
	}
	n.pendingMu.Unlock()

	// The global level.
	cur := n.inFlight.Load()
	lo := min(n.tickMin.Swap(cur), cur)
	hi := max(n.tickMax.Swap(cur), cur)
	target := int64(st.c.PressureTarget)
	switch {
	case target > 0 && lo > target && (g.inFlight-cur)*drainTicks >= cur-target:
		// Above the target but draining fast enough to be back under it
		// within drainTicks ticks: the level reached holds the load below
		// what the server serves; rising further while the backlog
		// drains would overshoot.
		g.calmRun = 0
	case target > 0 && lo > target:
		g.calmRun = 0
		if g.level < st.maxLevel {
			g.prev = g.level
			g.level++
			g.roseAt = t
			g.peak = max(g.peak, g.level)
			if g.level == 1 {
				g.since, g.peak = t, 1
				changes = append(changes, Change{Global: true, From: 0, To: 1, Peak: 1, Since: now})
			}
		}
	case target == 0 || hi <= target/2:
		if g.level > 0 {
			g.calmRun++
			if g.calmRun >= st.c.CalmTicks {
				g.level--
				g.calmRun = 0
				if g.level == 0 {
					changes = append(changes, Change{Global: true, From: 1, To: 0, Peak: g.peak, Since: time.Unix(0, g.since)})
				}
			}
		}
	default:
		g.calmRun = 0
	}
	g.lastTick, g.ticked, g.inFlight = t, true, cur
	n.global.Store(&g)

	// The networks.
	budget := st.c.Budget * dtSec * (1 + 1e-9)
	ml := int32(st.maxLevel)
	calmTicks := int32(st.c.CalmTicks)
	for si := range n.shards {
		s := &n.shards[si]
		s.mu.Lock()
		for i := len(s.meters) - 1; i >= 0; i-- {
			m := &s.meters[i]
			m.refill(t, st)
			m.rate = float32(m.spent / dtSec)
			switch {
			case m.tokens < -epsilon && m.spent > budget: // in debt and not paying it back
				m.calmRun = 0
				if m.level < ml {
					m.prevLevel = m.level
					m.level++
					m.roseAt = t
					m.peak = max(m.peak, m.level)
					if m.level == 1 {
						m.since, m.peak = t, 1
						changes = append(changes, Change{Prefix: m.prefix, From: 0, To: 1, Peak: 1, Since: now, Rate: float64(m.rate)})
					}
				}
			case m.tokens >= -epsilon && m.spent <= budget: // within budget
				if m.level > 0 {
					m.calmRun++
					if m.calmRun >= calmTicks {
						m.level--
						m.calmRun = 0
						if m.level == 0 {
							changes = append(changes, Change{Prefix: m.prefix, From: 1, To: 0, Peak: int(m.peak),
								Since: time.Unix(0, m.since), Rate: float64(m.rate)})
						}
					}
				}
			default: // paying a debt back, or spending its savings
				m.calmRun = 0
			}
			m.spent = 0
			if m.level == 0 && m.tokens >= st.c.Burst {
				s.remove(int32(i))
				n.count.Add(-1)
			}
		}
		s.shrink()
		s.mu.Unlock()
	}
	return changes
}

// remove deletes meter i, moving the last one into its place.
func (s *shard) remove(i int32) {
	last := int32(len(s.meters) - 1)
	delete(s.index, s.meters[i].prefix)
	if i != last {
		s.meters[i] = s.meters[last]
		s.index[s.meters[i].prefix] = i
	}
	s.meters[last] = meter{}
	s.meters = s.meters[:last]
}

// shrink gives memory back after a flood of networks has passed. Go maps
// never shrink, so the index is rebuilt too.
func (s *shard) shrink() {
	if cap(s.meters) < 256 || len(s.meters) > cap(s.meters)/4 {
		return
	}
	s.meters = slices.Clip(slices.Clone(s.meters))
	s.index = make(map[netip.Prefix]int32, len(s.meters))
	for i := range s.meters {
		s.index[s.meters[i].prefix] = int32(i)
	}
}

func (n *Networks) addPending(c Change) {
	n.pendingMu.Lock()
	if len(n.pending) < maxPending {
		n.pending = append(n.pending, c)
	}
	n.pendingMu.Unlock()
}

// coldKey orders networks for dropping: calm ones first, then the least
// recently spending.
type coldKey struct {
	above     bool
	lastSpend int64
}

func compareCold(a, b coldKey) int {
	if a.above != b.above {
		if b.above {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.lastSpend, b.lastSpend)
}

// makeRoom drops the coldest networks: for an insert into a full table,
// max_networks/64 of them (at least one), so that the work of finding them
// is shared by that many inserts; after a lowered max_networks, down to it.
func (n *Networks) makeRoom(st *settings, forInsert bool) {
	n.evictMu.Lock()
	defer n.evictMu.Unlock()
	limit := int64(st.c.MaxNetworks)
	target := limit
	if forInsert {
		if n.count.Load() < limit {
			return // another goroutine made room
		}
		target = limit - max(limit/evictDivisor, 1)
	}
	keys := n.evictBuf[:0]
	for i := range n.shards {
		s := &n.shards[i]
		s.mu.Lock()
		for j := range s.meters {
			keys = append(keys, coldKey{s.meters[j].level > 0, s.meters[j].lastSpend})
		}
		s.mu.Unlock()
	}
	drop := len(keys) - int(target)
	if drop <= 0 {
		n.evictBuf = keys[:0]
		return
	}
	slices.SortFunc(keys, compareCold)
	threshold := keys[drop-1]
	n.evictBuf = keys[:0]
	if cap(keys) > 4*int(limit) {
		n.evictBuf = nil
	}
	for i := range n.shards {
		if drop == 0 {
			break
		}
		s := &n.shards[i]
		s.mu.Lock()
		for j := len(s.meters) - 1; j >= 0 && drop > 0; j-- {
			m := &s.meters[j]
			if compareCold(coldKey{m.level > 0, m.lastSpend}, threshold) > 0 {
				continue
			}
			if m.level > 0 {
				n.addPending(Change{Prefix: m.prefix, From: int(m.level), To: 0, Peak: int(m.peak),
					Since: time.Unix(0, m.since), Dropped: true})
			}
			s.remove(int32(j))
			n.count.Add(-1)
			n.evicted.Add(1)
			drop--
		}
		s.mu.Unlock()
	}
}

// Snapshot returns the state of the table at time now: the global level, the
// in-flight count, how many networks are tracked, and the networks above
// calm. It visits every network, so it is for metrics and administration,
// not for each request.
func (n *Networks) Snapshot(now time.Time) Snapshot {
	t := now.UnixNano()
	st := n.cfg.Load()
	g := n.global.Load()
	snap := Snapshot{GlobalLevel: g.level, InFlight: n.InFlight(), MaxLevel: st.maxLevel, Evicted: n.evicted.Load()}
	for i := range n.shards {
		s := &n.shards[i]
		s.mu.Lock()
		snap.Tracked += len(s.meters)
		for j := range s.meters {
			m := &s.meters[j]
			if m.level == 0 {
				continue
			}
			snap.Highest = max(snap.Highest, int(m.level))
			eff := min(int(m.level)+g.level, st.maxLevel)
			tokens := m.tokens
			if t > m.at {
				tokens = min(st.c.Burst, tokens+float64(t-m.at)*st.budgetNs)
			}
			snap.Networks = append(snap.Networks, NetworkState{Prefix: m.prefix, Level: int(m.level), Effective: eff,
				Unit: st.units[eff], Rate: float64(m.rate), Tokens: tokens, Since: time.Unix(0, m.since)})
		}
		s.mu.Unlock()
	}
	slices.SortFunc(snap.Networks, func(a, b NetworkState) int {
		if c := cmp.Compare(b.Level, a.Level); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Rate, a.Rate); c != 0 {
			return c
		}
		return a.Prefix.Addr().Compare(b.Prefix.Addr())
	})
	return snap
}

// String describes a change for a log line.
func (c Change) String() string {
	what := c.Prefix.String()
	if c.Global {
		what = "global level"
	}
	switch {
	case c.Dropped:
		return fmt.Sprintf("%s dropped at level %d (peak %d, above calm since %s)", what, c.From, c.Peak, c.Since.UTC().Format(time.RFC3339))
	case c.To > c.From && c.Global:
		return "global level rose above calm: the server's load passed max_in_flight"
	case c.To > c.From:
		return fmt.Sprintf("%s rose above calm (%.1f cost units/s)", what, c.Rate)
	default:
		return fmt.Sprintf("%s back to calm (peak level %d, above calm since %s)", what, c.Peak, c.Since.UTC().Format(time.RFC3339))
	}
}
