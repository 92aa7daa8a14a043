// Package coordtest is the conformance suite for coord.KV backends
// (raftkv, consulkv): Consul's KV and session semantics, then Pier's
// coordination protocol (coord.Coordinator) run over the backend.
//
// A backend's test calls Run with a constructor. The constructor is called
// once per subtest, possibly in parallel, and must return an empty,
// independent store (registering its own cleanup with t.Cleanup). The
// backend must accept session TTLs of SessionTTL (raftkv:
// Config.MinSessionTTL; Consul: session_ttl_min) and may expire a session
// any time between its TTL and twice its TTL, as Consul does.
//
// Test-support package: imported only by tests. Imports: edge/coord.
package coordtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/coord"
)

// SessionTTL is the short TTL the suite gives the sessions it expects to
// expire; other sessions use LongTTL.
const (
	SessionTTL = time.Second
	LongTTL    = 30 * time.Second
)

// patience bounds every "eventually" in the suite: a liveness bound, far
// above what a correct backend needs, not a performance assertion.
const patience = 20 * time.Second

// Run runs the whole suite against the backend newKV builds.
func Run(t *testing.T, newKV func(t *testing.T) coord.KV) {
	t.Run("KV", func(t *testing.T) { runKV(t, newKV) })
	t.Run("Protocol", func(t *testing.T) { runProtocol(t, newKV) })
	t.Run("Domains", func(t *testing.T) { runDomains(t, newKV) })
	t.Run("Leader", func(t *testing.T) { runLeader(t, newKV) })
}

// Logger returns a logger writing to t.Log that goes quiet once the test
// and its cleanups are over (goroutines may still be unwinding).
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close) // registered first, so it runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

var _ io.Writer = (*testWriter)(nil)

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Log(string(p[:len(p)-min(len(p), 1)]))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// eventually polls cond until it holds or patience runs out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func keys(pairs []*coord.Pair) []string {
	out := []string{}
	for _, p := range pairs {
		out = append(out, p.Key)
	}
	return out
}

func newSession(t testing.TB, kv coord.KV, ttl time.Duration, b coord.Behavior) string {
	t.Helper()
	id, err := kv.CreateSession(t.Context(), coord.SessionOptions{Name: "coordtest", TTL: ttl, Behavior: b})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if id == "" {
		t.Fatal("CreateSession returned an empty id")
	}
	return id
}

func get(t testing.TB, kv coord.KV, key string) *coord.Pair {
	t.Helper()
	p, err := kv.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return p
}

func absent(t testing.TB, kv coord.KV, key string) bool {
	t.Helper()
	_, err := kv.Get(t.Context(), key)
	if err != nil && !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return err != nil
}

func equal[T comparable](t testing.TB, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// background runs fn in a goroutine and returns a channel with its result.
func background[T any](fn func() (T, error)) <-chan result[T] {
	ch := make(chan result[T], 1)
	go func() {
		v, err := fn()
		ch <- result[T]{v, err}
	}()
	return ch
}

type result[T any] struct {
	v   T
	err error
}

func wait[T any](t testing.TB, ch <-chan result[T]) (T, error) {
	t.Helper()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(patience):
		t.Fatal("timed out waiting for a background call")
		var zero T
		return zero, context.DeadlineExceeded
	}
}
