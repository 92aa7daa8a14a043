// Package warmpool keeps warm, exclusive-use values per key: on the edge, V8
// isolates (edge/isolate Runtimes) per deployment. It owns the global
// capacity (MaxTotal, least-recently-used idle values are closed first), the
// per-key minimum kept warm (SetMinWarm), idle expiry, one cold start at a
// time per key (callers that arrive during a start wait for it, and share its
// failure), and the cold-start / warm-hit / eviction counters.
//
// It knows nothing of V8 and has no cgo: values are anything with Close. It
// imports no platform package; edge/edged (and control/cmd/pier) import it.
package warmpool

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrClosed is returned by Get after Close (or after Run returned).
var ErrClosed = errors.New("warm pool closed")

// Closer is what the pool holds: closed when evicted, expired or discarded.
type Closer interface {
	Close() error
}

// NewFunc starts a value for key: a cold start.
type NewFunc[K comparable, V Closer] func(ctx context.Context, key K) (V, error)

// Config sizes a Pool.
type Config struct {
	// MaxTotal bounds the live values of all keys together: idle, in use and
	// starting. At the bound a cold start first closes the least recently
	// used idle value of a key above its MinWarm, or waits for a release.
	// DefaultConfig: 64.
	MaxTotal int
	// IdleTimeout closes values left idle this long, down to each key's
	// MinWarm (Run does it). 0 keeps idle values until evicted.
	// DefaultConfig: 5m.
	IdleTimeout time.Duration
	// Logger: nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{MaxTotal: 64, IdleTimeout: 5 * time.Minute}
}

// Stats are the pool's counters since New, and its current sizes.
type Stats struct {
	ColdStarts   uint64 // values started for a Get (the caller waited for the start)
	WarmHits     uint64 // Gets served by an idle value
	Prewarms     uint64 // values started by Run to reach a key's MinWarm
	StartErrors  uint64 // failed starts, cold or prewarm
	Evictions    uint64 // idle values closed to make room under MaxTotal
	Expirations  uint64 // idle values closed after IdleTimeout
	Discards     uint64 // values closed by Lease.Discard or after Evict/Close
	Live, Idle   int    // values alive now (idle + in use + starting), and idle now
	Keys, Starts int    // keys tracked, starts in progress
}

// Pool is a keyed pool of exclusive-use values. Get hands a value to one
// caller; Lease.Release returns it. The zero Pool is not usable: use New.
type Pool[K comparable, V Closer] struct {
	cfg    Config
	log    *slog.Logger
	create NewFunc[K, V]

	mu      sync.Mutex
	keys    map[K]*keyState[K, V]
	lru     *list.List // idle entries, most recently used at the front
	live    int
	closed  bool
	changed chan struct{} // closed and replaced on every change: wakes waiters
	wake    chan struct{} // wakes Run on the changes it acts on (not a plain release)
	stats   Stats
	running bool
}

type keyState[K comparable, V Closer] struct {
	idle     []*entry[K, V] // most recently used last
	live     int            // idle + in use + starting
	starting int
	minWarm  int
	waiters  int
	gen      uint64 // bumped by Evict: older values are closed on release
	errGen   uint64 // bumped by a failed start
	err      error  // the last failed start's error
}

type entry[K comparable, V Closer] struct {
	key      K
	v        V
	gen      uint64
	elem     *list.Element
	lastUsed time.Time
}

// New returns a Pool that starts values with create. It starts nothing;
// Run keeps MinWarm values and expires idle ones.
func New[K comparable, V Closer](cfg Config, create NewFunc[K, V]) *Pool[K, V] {
	if create == nil {
		panic("warmpool: nil NewFunc")
	}
	d := DefaultConfig()
	if cfg.MaxTotal <= 0 {
		cfg.MaxTotal = d.MaxTotal
	}
	if cfg.IdleTimeout < 0 {
		cfg.IdleTimeout = 0
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pool[K, V]{
		cfg:     cfg,
		log:     log.With("component", "warmpool"),
		create:  create,
		keys:    map[K]*keyState[K, V]{},
		lru:     list.New(),
		changed: make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
}

// Lease is one caller's exclusive use of a value. Call Release (the value
// is fine) or Discard (it is not) exactly once.
type Lease[K comparable, V Closer] struct {
	p    *Pool[K, V]
	e    *entry[K, V]
	cold bool
	once sync.Once
}

// Value returns the leased value.
func (l *Lease[K, V]) Value() V { return l.e.v }

// Key returns the key the value belongs to.
func (l *Lease[K, V]) Key() K { return l.e.key }

// Cold reports whether Get started the value (a cold start) rather than
// reusing an idle one.
func (l *Lease[K, V]) Cold() bool { return l.cold }

// Release returns the value to its key's idle list (or closes it if the key
// was evicted or the pool closed meanwhile).
func (l *Lease[K, V]) Release() { l.once.Do(func() { l.p.release(l.e, false) }) }

// Discard closes the value instead of keeping it (it is broken).
func (l *Lease[K, V]) Discard() { l.once.Do(func() { l.p.release(l.e, true) }) }

// notifyLocked wakes everyone waiting for a change, and Run.
func (p *Pool[K, V]) notifyLocked() {
	p.notifyWaitersLocked()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// notifyWaitersLocked wakes the callers waiting for a change but not Run:
// a value put back idle is nothing Run acts on, and waking it on every
// request would cost a goroutine switch per request.
func (p *Pool[K, V]) notifyWaitersLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Pool[K, V]) keyLocked(key K) *keyState[K, V] {
	ks := p.keys[key]
	if ks == nil {
		ks = &keyState[K, V]{}
		p.keys[key] = ks
	}
	return ks
}

// forgetLocked drops a key's state once nothing refers to it.
func (p *Pool[K, V]) forgetLocked(key K, ks *keyState[K, V]) {
	if ks.live == 0 && ks.minWarm == 0 && ks.waiters == 0 && ks.starting == 0 {
		delete(p.keys, key)
	}
}

// Get returns an idle value for key, or starts one. At most one start per
// key runs at a time: other callers wait for it (or for a release) and get
// its error if it fails. When MaxTotal values are live, Get closes the least
// recently used evictable idle value first, or waits for a release. Get
// returns ctx's error if ctx ends while it waits or starts.
func (p *Pool[K, V]) Get(ctx context.Context, key K) (*Lease[K, V], error) {
	l, _, err := p.get(ctx, key, true)
	return l, err
}

// TryGet is Get without the waiting: it returns an idle value for key, or
// starts one (and waits for that start only) when key has no start in
// progress and the pool has room or an evictable idle value. Otherwise it
// returns a nil Lease and a channel that is closed at the pool's next
// change (a release, the end of a start, an eviction): try again then.
// It is for callers that hold something other callers need in order to
// finish (a CPU slot): they let go of it before they wait on the channel.
// A start that fails returns its error to this caller only.
func (p *Pool[K, V]) TryGet(ctx context.Context, key K) (*Lease[K, V], <-chan struct{}, error) {
	return p.get(ctx, key, false)
}

func (p *Pool[K, V]) get(ctx context.Context, key K, wait bool) (*Lease[K, V], <-chan struct{}, error) {
	p.mu.Lock()
	ks := p.keyLocked(key)
	ks.waiters++
	defer func() {
		p.mu.Lock()
		ks.waiters--
		p.forgetLocked(key, ks)
		p.mu.Unlock()
	}()
	var seenErr uint64
	watching := false
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, nil, ErrClosed
		}
		if watching && ks.errGen != seenErr {
			err := ks.err
			p.mu.Unlock()
			return nil, nil, err
		}
		if n := len(ks.idle); n > 0 {
			e := ks.idle[n-1]
			ks.idle = ks.idle[:n-1]
			p.lru.Remove(e.elem)
			e.elem = nil
			p.stats.WarmHits++
			p.mu.Unlock()
			return &Lease[K, V]{p: p, e: e}, nil, nil
		}
		if ks.starting == 0 {
			var victims []Closer
			if p.live < p.cfg.MaxTotal || p.evictLocked(&victims) {
				p.stats.ColdStarts++
				ks.starting++
				ks.live++
				p.live++
				gen := ks.gen
				p.mu.Unlock()
				p.retire(victims)
				e, err := p.start(ctx, key, ks, gen)
				if err != nil {
					return nil, nil, err
				}
				return &Lease[K, V]{p: p, e: e, cold: true}, nil, nil
			}
		}
		// Wait for the start in progress, a release or an eviction.
		ch := p.changed
		if !wait {
			p.mu.Unlock()
			return nil, ch, nil
		}
		if ks.starting > 0 && !watching {
			watching, seenErr = true, ks.errGen
		}
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		p.mu.Lock()
	}
}

// start runs one start for key. The caller counted it (ks.starting and the
// live counts) under the lock, within MaxTotal.
func (p *Pool[K, V]) start(ctx context.Context, key K, ks *keyState[K, V], gen uint64) (*entry[K, V], error) {
	v, err := p.create(ctx, key)

	p.mu.Lock()
	defer p.mu.Unlock()
	ks.starting--
	defer p.notifyLocked()
	if err != nil {
		ks.live--
		p.live--
		p.stats.StartErrors++
		// A caller's own cancellation is not the key's failure: waiters
		// retry instead of inheriting it.
		if ctx.Err() == nil {
			ks.errGen++
			ks.err = fmt.Errorf("start %v: %w", key, err)
		}
		return nil, fmt.Errorf("start %v: %w", key, err)
	}
	return &entry[K, V]{key: key, v: v, gen: gen}, nil
}

// evictLocked removes the least recently used idle value whose key keeps
// at least its MinWarm without it, appending it to victims (closed by the
// caller after unlocking). It reports whether it found one.
func (p *Pool[K, V]) evictLocked(victims *[]Closer) bool {
	for el := p.lru.Back(); el != nil; el = el.Prev() {
		e := el.Value.(*entry[K, V])
		ks := p.keys[e.key]
		if ks.live-1 < ks.minWarm {
			continue
		}
		p.removeIdleLocked(ks, e)
		p.stats.Evictions++
		*victims = append(*victims, e.v)
		return true
	}
	return false
}

// removeIdleLocked takes an idle entry away from its key. It still counts
// against MaxTotal until retire has closed it.
func (p *Pool[K, V]) removeIdleLocked(ks *keyState[K, V], e *entry[K, V]) {
	for i, x := range ks.idle {
		if x == e {
			ks.idle = append(ks.idle[:i], ks.idle[i+1:]...)
			break
		}
	}
	p.lru.Remove(e.elem)
	e.elem = nil
	ks.live--
}

func (p *Pool[K, V]) release(e *entry[K, V], discard bool) { p.put(e, discard, false) }

// put returns e to its key's idle list, or closes it (discard, or its key
// was evicted, or the pool closed). wakeRun wakes Run even for a plain
// put (a prewarm: the key may need another).
func (p *Pool[K, V]) put(e *entry[K, V], discard, wakeRun bool) {
	p.mu.Lock()
	ks := p.keyLocked(e.key)
	if discard || p.closed || e.gen != ks.gen {
		ks.live--
		p.stats.Discards++
		p.forgetLocked(e.key, ks)
		p.mu.Unlock()
		p.retire([]Closer{e.v})
		return
	}
	e.lastUsed = time.Now()
	ks.idle = append(ks.idle, e)
	e.elem = p.lru.PushFront(e)
	if wakeRun {
		p.notifyLocked()
	} else {
		p.notifyWaitersLocked()
	}
	p.mu.Unlock()
}

// SetMinWarm asks Run to keep at least n values of key started (idle or in
// use); n <= 0 clears it. Values kept for MinWarm are not evicted for other
// keys nor expired.
func (p *Pool[K, V]) SetMinWarm(key K, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ks := p.keyLocked(key)
	ks.minWarm = max(n, 0)
	p.forgetLocked(key, ks)
	p.notifyLocked()
}

// Evict closes key's idle values and clears its MinWarm; values in use are
// closed when released (a retired deployment).
func (p *Pool[K, V]) Evict(key K) {
	p.mu.Lock()
	ks := p.keys[key]
	if ks == nil {
		p.mu.Unlock()
		return
	}
	var victims []Closer
	for len(ks.idle) > 0 {
		e := ks.idle[len(ks.idle)-1]
		p.removeIdleLocked(ks, e)
		p.stats.Discards++
		victims = append(victims, e.v)
	}
	ks.gen++
	ks.minWarm = 0
	p.forgetLocked(key, ks)
	p.notifyLocked()
	p.mu.Unlock()
	p.retire(victims)
}

// Stats returns the counters and current sizes.
func (p *Pool[K, V]) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Live, s.Idle, s.Keys = p.live, p.lru.Len(), len(p.keys)
	for _, ks := range p.keys {
		s.Starts += ks.starting
	}
	return s
}

// Close closes every idle value; values in use are closed when released,
// and later Gets fail with ErrClosed.
func (p *Pool[K, V]) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var victims []Closer
	for el := p.lru.Front(); el != nil; {
		next := el.Next()
		e := el.Value.(*entry[K, V])
		p.removeIdleLocked(p.keys[e.key], e)
		p.stats.Discards++
		victims = append(victims, e.v)
		el = next
	}
	p.notifyLocked()
	p.mu.Unlock()
	p.retire(victims)
	return nil
}

// Run keeps each key's MinWarm values started and closes values idle past
// IdleTimeout, until ctx ends; then it waits for its starts and closes the
// pool. It returns nil on cancellation.
func (p *Pool[K, V]) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.running || p.closed {
		p.mu.Unlock()
		return errors.New("warmpool: Run called twice or after Close")
	}
	p.running = true
	p.mu.Unlock()

	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		p.Close()
	}()
	period := time.Second
	if t := p.cfg.IdleTimeout; t > 0 && t/4 < period {
		period = max(t/4, time.Millisecond)
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		p.mu.Lock()
		p.expireLocked(time.Now())
		p.prewarmLocked(ctx, &wg)
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-tick.C:
		}
	}
}

// expireLocked closes idle values unused for IdleTimeout, keeping MinWarm.
func (p *Pool[K, V]) expireLocked(now time.Time) {
	if p.cfg.IdleTimeout <= 0 {
		return
	}
	var victims []Closer
	for el := p.lru.Back(); el != nil; {
		prev := el.Prev()
		e := el.Value.(*entry[K, V])
		ks := p.keys[e.key]
		if now.Sub(e.lastUsed) >= p.cfg.IdleTimeout && ks.live-1 >= ks.minWarm {
			p.removeIdleLocked(ks, e)
			p.stats.Expirations++
			victims = append(victims, e.v)
		}
		el = prev
	}
	if len(victims) > 0 {
		go p.retire(victims) // never block Run's loop on a slow Close
	}
}

// prewarmLocked starts one value for each key below its MinWarm with no
// start in progress, within MaxTotal (evicting unprotected idle values).
func (p *Pool[K, V]) prewarmLocked(ctx context.Context, wg *sync.WaitGroup) {
	if ctx.Err() != nil || p.closed {
		return
	}
	for key, ks := range p.keys {
		if ks.live >= ks.minWarm || ks.starting > 0 {
			continue
		}
		var victims []Closer
		if p.live >= p.cfg.MaxTotal && !p.evictLocked(&victims) {
			return
		}
		ks.starting++
		ks.live++
		p.live++
		gen := ks.gen
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.retire(victims)
			v, err := p.create(ctx, key)
			p.mu.Lock()
			ks.starting--
			if err != nil {
				ks.live--
				p.live--
				p.stats.StartErrors++
				p.forgetLocked(key, ks)
				p.notifyWaitersLocked() // callers waiting for this start; Run retries at its next tick
				p.mu.Unlock()
				if ctx.Err() == nil {
					p.log.Warn("prewarm failed", "key", fmt.Sprint(key), "err", err)
				}
				// Retried at the next tick, not in a tight loop.
				return
			}
			p.stats.Prewarms++
			p.mu.Unlock()
			p.put(&entry[K, V]{key: key, v: v, gen: gen}, false, true)
		}()
	}
}

// retire closes values already taken from their keys, then frees their
// places under MaxTotal: a new value never starts before the one it
// replaces is closed.
func (p *Pool[K, V]) retire(cs []Closer) {
	if len(cs) == 0 {
		return
	}
	for _, c := range cs {
		if err := c.Close(); err != nil {
			p.log.Warn("close pooled value", "err", err)
		}
	}
	p.mu.Lock()
	p.live -= len(cs)
	p.notifyLocked()
	p.mu.Unlock()
}
