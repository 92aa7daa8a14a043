package isolate

import (
	"runtime"
	"sync/atomic"
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
