package isolate

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// Gate bounds how many isolates run JavaScript at the same time, across
// every Runtime whose Config shares it. Each isolate runs on its own OS
// thread (a cgo call, outside GOMAXPROCS): without a gate, eight concurrent
// requests are eight V8 threads competing for the cores with each other and
// with the Go HTTP server, which costs throughput and tail latency.
//
// A call holds one slot while JavaScript runs: compiling and running the
// script's top level, the fetch handler's synchronous part, every
// microtask checkpoint and every timer or fetch callback turn. It gives
// the slot back while it waits for an outbound fetch or a timer, so
// I/O-bound code is not throttled, and always when it ends (a timeout, a
// cancellation and the heap limit included). Time spent waiting for a slot
// counts against the call's timeout, which stays wall-clock. Waiters are
// served in arrival order.
//
// A Gate is safe for concurrent use. The zero value is not usable; use
// NewGate. A nil *Gate admits everyone.
type Gate struct {
	slots chan struct{}
	waits atomic.Uint64
}

// GateStats describes a Gate.
type GateStats struct {
	Slots   int    // capacity
	Running int    // slots held now
	Waits   uint64 // entries that found every slot taken and queued
}

// NewGate returns a gate with n slots; n <= 0 means runtime.GOMAXPROCS(0)
// (the CPUs this process may use, cgroup limits included).
func NewGate(n int) *Gate {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &Gate{slots: make(chan struct{}, n)}
}

// Slots returns the gate's capacity; 0 for a nil gate (no limit).
func (g *Gate) Slots() int {
	if g == nil {
		return 0
	}
	return cap(g.slots)
}

// Stats returns the gate's counters; the zero GateStats for a nil gate.
func (g *Gate) Stats() GateStats {
	if g == nil {
		return GateStats{}
	}
	return GateStats{Slots: cap(g.slots), Running: len(g.slots), Waits: g.waits.Load()}
}

// enter takes a slot, or gives up when done is closed first.
func (g *Gate) enter(done <-chan struct{}) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	g.waits.Add(1)
	select {
	case g.slots <- struct{}{}:
		return true
	case <-done:
		return false
	}
}

// leave gives a slot back.
func (g *Gate) leave() { <-g.slots }

// A Slot is one slot of a Gate taken ahead of a call, before the caller
// leases (or starts) an isolate (Gate.Acquire): admission first, so that CPU-bound
// traffic keeps about as many isolates busy as the gate has slots instead
// of one per concurrent request. Hand it to the call with WithSlot: the
// call runs its JavaScript in it instead of queueing for another, gives it
// back to the gate while it waits on a fetch or a timer like any call,
// and returns a slot to the Slot when it ends, so that the caller can put
// its isolate back in the pool before it lets the next request in. The
// caller always ends with Release.
//
// Never hold a Slot while waiting for something a call needs a slot to
// finish (an isolate another call holds, a cold start): release it first.
//
// A Slot belongs to one goroutine (the request's). A nil *Slot holds
// nothing.
type Slot struct {
	g     *Gate
	since time.Time // when the caller started waiting: counts against the call's timeout
	held  bool      // the caller holds a slot of g (not lent to a call, not released)
}

// Acquire waits for a slot of g for a call that must start by
// since+limit: since is when the request began to wait (a caller that
// retries passes the same since each time) and limit the calls' timeout,
// which the wait counts against. It returns a *TimeoutError for limit when
// that passes first, and ctx's error when ctx ends first (a *TimeoutError
// for its deadline). A nil Gate returns a nil Slot and no error.
func (g *Gate) Acquire(ctx context.Context, since time.Time, limit time.Duration) (*Slot, error) {
	if g == nil {
		return nil, nil
	}
	s := &Slot{g: g, since: since}
	select {
	case g.slots <- struct{}{}:
		s.held = true
		return s, nil
	default:
	}
	left := time.Until(since.Add(limit))
	if left <= 0 {
		return nil, &TimeoutError{Limit: limit}
	}
	g.waits.Add(1)
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		s.held = true
		return s, nil
	case <-t.C:
		return nil, &TimeoutError{Limit: limit}
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &TimeoutError{Limit: limit}
		}
		return nil, ctx.Err()
	}
}

// Release gives the slot back to the gate, unless a call still has it or
// it was released already.
func (s *Slot) Release() {
	if s != nil && s.held {
		s.held = false
		s.g.leave()
	}
}

// lend hands the held slot to a call of a Runtime on gate g.
func (s *Slot) lend(g *Gate) bool {
	if s == nil || s.g != g || !s.held {
		return false
	}
	s.held = false
	return true
}

type slotKey struct{}

// WithSlot returns ctx carrying s for the next Serve, Invoke or
// NewContext called with it (and for the isolate start a Serve or Invoke
// may need first). A nil s returns ctx.
func WithSlot(ctx context.Context, s *Slot) context.Context {
	if s == nil {
		return ctx
	}
	return context.WithValue(ctx, slotKey{}, s)
}

func slotFrom(ctx context.Context) *Slot {
	s, _ := ctx.Value(slotKey{}).(*Slot)
	return s
}

// Admit admits a request through g before it leases an isolate: it waits
// for a slot (counted against limit, the calls' timeout), then calls try
// with a ctx carrying the slot (WithSlot), which returns a lease from the
// caller's pool: an idle isolate, or one it started in the slot (see
// edge/warmpool's Pool.TryGet). The lease and the slot are returned
// together; pass the slot to the call (WithSlot) and release it after the
// isolate is back in its pool, so that the next request finds it idle.
//
// When try cannot lease without waiting (another start in progress, the
// pool full of busy isolates), it returns a channel that closes when that
// changes: Admit gives the slot back before it waits there, because the
// calls holding those isolates may need a slot to finish, then queues
// again. A nil g admits at once (the Slot is nil).
func Admit[L any](ctx context.Context, g *Gate, limit time.Duration, try func(context.Context) (L, <-chan struct{}, error)) (L, *Slot, error) {
	var zero L
	since := time.Now()
	for {
		slot, err := g.Acquire(ctx, since, limit)
		if err != nil {
			return zero, nil, err
		}
		l, changed, err := try(WithSlot(ctx, slot))
		if err != nil {
			slot.Release()
			return zero, nil, err
		}
		if changed == nil {
			return l, slot, nil
		}
		slot.Release()
		select {
		case <-changed:
		case <-ctx.Done():
			return zero, nil, ctx.Err()
		}
	}
}
