package coordtest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/coord"
)

// runLeader checks Lead: of two candidates on one KV exactly one leads at
// a time, and when the leader steps down (its fn returns) the other takes
// over.
func runLeader(t *testing.T, newKV func(t *testing.T) coord.KV) {
	f := newFixture(t, newKV, nil)
	other := coord.New(coord.Config{SessionTTL: SessionTTL, LockWait: patience, ReadyTimeout: patience,
		PollInterval: 20 * time.Millisecond, Logger: Logger(t)}, f.kv)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	var leading, maxLeading, turns atomic.Int32
	stepDown := make(chan struct{}, 2)
	led := make(chan string, 4)
	var wg sync.WaitGroup
	for i, c := range []*coord.Coordinator{f.c, other} {
		id := []string{"a", "b"}[i]
		wg.Go(func() {
			_ = c.Lead(ctx, "scheduler", id, func(lctx context.Context) {
				n := leading.Add(1)
				if n > maxLeading.Load() {
					maxLeading.Store(n)
				}
				turns.Add(1)
				led <- id
				select {
				case <-stepDown:
				case <-lctx.Done():
				}
				leading.Add(-1)
			})
		})
	}
	first := recv(t, led, "a first leader")
	stepDown <- struct{}{}
	second := recv(t, led, "a second leader after the first stepped down")
	t.Logf("leaders: %s then %s", first, second)
	cancel()
	wg.Wait()
	if maxLeading.Load() != 1 {
		t.Errorf("%d candidates led at once, want 1", maxLeading.Load())
	}
	if turns.Load() < 2 {
		t.Errorf("leadership turns = %d, want at least 2", turns.Load())
	}
}

func recv(t *testing.T, ch <-chan string, what string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience * 3):
		t.Fatalf("timed out waiting for %s", what)
		return ""
	}
}
