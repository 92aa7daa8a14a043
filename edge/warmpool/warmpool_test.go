package warmpool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkLeaks fails when goroutines of this package outlive the tests.
func checkLeaks() error {
	var last string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		last = ""
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "edge/warmpool.") && !strings.Contains(g, "TestMain") && !strings.Contains(g, "checkLeaks") {
				last += g + "\n\n"
			}
		}
		if last == "" {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("leaked goroutines:\n%s", last)
}

// fake is a pooled value that checks exclusive use and single Close.
type fake struct {
	key    string
	id     int64
	inUse  atomic.Bool
	closed atomic.Bool
	f      *factory
}

func (v *fake) Close() error {
	if v.closed.Swap(true) {
		v.f.t.Errorf("%s#%d closed twice", v.key, v.id)
	}
	v.f.live.Add(-1)
	return nil
}

// use marks v in use for the duration of a lease.
func (v *fake) use(t testing.TB) func() {
	if v.closed.Load() {
		t.Errorf("%s#%d used after Close", v.key, v.id)
	}
	if v.inUse.Swap(true) {
		t.Errorf("%s#%d handed to two callers at once", v.key, v.id)
	}
	return func() { v.inUse.Store(false) }
}

// factory starts fakes; gate (if set) blocks starts until a value is sent,
// fail (if set) makes a start fail.
type factory struct {
	t          testing.TB
	seq        atomic.Int64
	live       atomic.Int64 // started and not closed
	maxLive    atomic.Int64
	starting   atomic.Int64
	maxStarted atomic.Int64 // max concurrent starts
	gate       chan error
	calls      atomic.Int64
}

func newFactory(t testing.TB) *factory { return &factory{t: t} }

func (f *factory) new(ctx context.Context, key string) (*fake, error) {
	f.calls.Add(1)
	n := f.starting.Add(1)
	defer f.starting.Add(-1)
	for {
		m := f.maxStarted.Load()
		if n <= m || f.maxStarted.CompareAndSwap(m, n) {
			break
		}
	}
	if f.gate != nil {
		select {
		case err := <-f.gate:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l := f.live.Add(1)
	for {
		m := f.maxLive.Load()
		if l <= m || f.maxLive.CompareAndSwap(m, l) {
			break
		}
	}
	return &fake{key: key, id: f.seq.Add(1), f: f}, nil
}

func newPool(t testing.TB, cfg Config, f *factory) *Pool[string, *fake] {
	p := New(cfg, f.new)
	t.Cleanup(func() { p.Close() })
	return p
}

func get(t testing.TB, p *Pool[string, *fake], key string) *Lease[string, *fake] {
	t.Helper()
	l, err := p.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return l
}

func TestWarmReuse(t *testing.T) {
	f := newFactory(t)
	p := newPool(t, Config{MaxTotal: 4}, f)
	a := get(t, p, "a")
	if !a.Cold() || a.Key() != "a" {
		t.Fatalf("first Get: cold=%v key=%s", a.Cold(), a.Key())
	}
	first := a.Value()
	a.Release()
	a.Release() // a second Release is a no-op
	b := get(t, p, "a")
	if b.Cold() || b.Value() != first {
		t.Errorf("second Get: cold=%v, same value=%v", b.Cold(), b.Value() == first)
	}
	other := get(t, p, "b")
	if !other.Cold() || other.Value() == first {
		t.Errorf("key b got a's value")
	}
	b.Release()
	other.Release()
	st := p.Stats()
	if st.ColdStarts != 2 || st.WarmHits != 1 || st.Live != 2 || st.Idle != 2 || st.Keys != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestTryGet: TryGet hands out an idle value (a warm hit) or starts one
// when the key has none starting and the pool has room; otherwise it
// returns no value at once, with a channel closed at the pool's next
// change: the end of the start in progress, or a release at capacity.
func TestTryGet(t *testing.T) {
	ctx := context.Background()
	f := newFactory(t)
	f.gate = make(chan error)
	p := newPool(t, Config{MaxTotal: 2}, f)

	type got struct {
		l   *Lease[string, *fake]
		err error
	}
	started := make(chan got)
	go func() {
		l, ch, err := p.TryGet(ctx, "a")
		if ch != nil {
			t.Error("TryGet that started a value also returned a channel")
		}
		started <- got{l, err}
	}()
	waitFor(t, "a start in progress", func() bool { return p.Stats().Starts == 1 })
	l, changed, err := p.TryGet(ctx, "a")
	if l != nil || err != nil || changed == nil {
		t.Fatalf("TryGet during a start = %v, %v, %v; want no value and a channel", l, changed, err)
	}
	select {
	case <-changed:
		t.Fatal("the channel closed before anything changed")
	default:
	}
	f.gate <- nil
	first := <-started
	if first.err != nil || !first.l.Cold() {
		t.Fatalf("the starting TryGet: %v, cold=%v", first.err, first.l != nil && first.l.Cold())
	}
	<-changed // the start ended

	// "a" has no idle value and no start: TryGet starts a second one.
	go func() {
		l, _, err := p.TryGet(ctx, "a")
		started <- got{l, err}
	}()
	f.gate <- nil
	second := <-started
	if second.err != nil || !second.l.Cold() {
		t.Fatalf("second start: %v", second.err)
	}
	// At capacity with nothing idle: no value, no start, a channel that
	// closes at the next release.
	l, changed, err = p.TryGet(ctx, "b")
	if l != nil || err != nil || changed == nil {
		t.Fatalf("TryGet at capacity = %v, %v, %v", l, changed, err)
	}
	first.l.Release()
	<-changed
	l, _, err = p.TryGet(ctx, "a")
	if err != nil || l == nil || l.Cold() || l.Value() != first.l.Value() {
		t.Fatalf("TryGet after a release = %v, %v; want the released value as a warm hit", l, err)
	}
	done := l.Value().use(t)
	done()
	l.Release()
	second.l.Release()
	if st := p.Stats(); st.ColdStarts != 2 || st.WarmHits != 1 || f.calls.Load() != 2 {
		t.Errorf("stats %+v, %d starts", st, f.calls.Load())
	}

	f.gate = nil
	boom := errors.New("boom")
	fail := New(Config{MaxTotal: 2}, func(context.Context, string) (*fake, error) { return nil, boom })
	defer fail.Close()
	if _, _, err := fail.TryGet(ctx, "x"); !errors.Is(err, boom) {
		t.Errorf("TryGet with a failing start = %v, want its error", err)
	}
	p.Close()
	if _, _, err := p.TryGet(ctx, "a"); !errors.Is(err, ErrClosed) {
		t.Errorf("TryGet after Close = %v, want ErrClosed", err)
	}
}

func TestLRUEviction(t *testing.T) {
	tests := []struct {
		name    string
		minWarm map[string]int
		order   []string // release order: last is most recent
		evicted string
	}{
		{"least recent goes", nil, []string{"a", "b"}, "a"},
		{"order matters", nil, []string{"b", "a"}, "b"},
		{"min warm protected", map[string]int{"a": 1}, []string{"a", "b"}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFactory(t)
			p := newPool(t, Config{MaxTotal: 2}, f)
			for k, n := range tt.minWarm {
				p.SetMinWarm(k, n)
			}
			leases := map[string]*Lease[string, *fake]{"a": get(t, p, "a"), "b": get(t, p, "b")}
			vals := map[string]*fake{"a": leases["a"].Value(), "b": leases["b"].Value()}
			for _, k := range tt.order {
				leases[k].Release()
			}
			c := get(t, p, "c")
			defer c.Release()
			for k, v := range vals {
				if got := v.closed.Load(); got != (k == tt.evicted) {
					t.Errorf("%s closed=%v, want %v", k, got, k == tt.evicted)
				}
			}
			if st := p.Stats(); st.Evictions != 1 || st.Live != 2 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestCapacityWait(t *testing.T) {
	f := newFactory(t)
	p := newPool(t, Config{MaxTotal: 1}, f)
	a := get(t, p, "a")

	// Everything is in use: a Get for another key waits, bounded by its ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}

	got := make(chan *Lease[string, *fake])
	go func() {
		l, err := p.Get(context.Background(), "b")
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	aVal := a.Value()
	a.Release()
	b := <-got
	defer b.Release()
	if !aVal.closed.Load() || b.Key() != "b" || f.maxLive.Load() != 1 {
		t.Errorf("a closed=%v, b key=%s, max live %d", aVal.closed.Load(), b.Key(), f.maxLive.Load())
	}
}

func TestSingleflight(t *testing.T) {
	t.Run("one start at a time", func(t *testing.T) {
		f := newFactory(t)
		f.gate = make(chan error)
		p := newPool(t, Config{MaxTotal: 10}, f)
		const n = 5
		var wg sync.WaitGroup
		leases := make(chan *Lease[string, *fake], n)
		for range n {
			wg.Go(func() {
				l, err := p.Get(context.Background(), "k")
				if err != nil {
					t.Error(err)
					return
				}
				leases <- l
			})
		}
		for range n {
			f.gate <- nil // let one start finish; the next waiter starts another
		}
		wg.Wait()
		close(leases)
		for l := range leases {
			l.Release()
		}
		if m := f.maxStarted.Load(); m != 1 {
			t.Errorf("%d concurrent starts for one key, want 1", m)
		}
		if st := p.Stats(); st.ColdStarts != n {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("failure shared", func(t *testing.T) {
		f := newFactory(t)
		f.gate = make(chan error)
		p := newPool(t, Config{MaxTotal: 10}, f)
		const n = 5
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := p.Get(context.Background(), "bad")
				errs <- err
			}()
		}
		// Wait until every caller is in Get (one starting, the rest waiting).
		for p.Stats().Starts != 1 || waiters(p, "bad") != n {
			runtime.Gosched()
		}
		boom := errors.New("compile failed")
		f.gate <- boom
		for range n {
			if err := <-errs; !errors.Is(err, boom) {
				t.Errorf("got %v, want %v", err, boom)
			}
		}
		if c := f.calls.Load(); c != 1 {
			t.Errorf("%d starts, want 1 shared by all callers", c)
		}
	})
	t.Run("canceled start not shared", func(t *testing.T) {
		f := newFactory(t)
		f.gate = make(chan error)
		p := newPool(t, Config{MaxTotal: 10}, f)
		ctx, cancel := context.WithCancel(context.Background())
		first := make(chan error)
		go func() {
			_, err := p.Get(ctx, "k")
			first <- err
		}()
		for p.Stats().Starts != 1 {
			runtime.Gosched()
		}
		second := make(chan *Lease[string, *fake])
		go func() {
			l, err := p.Get(context.Background(), "k")
			if err != nil {
				t.Error(err)
			}
			second <- l
		}()
		for waiters(p, "k") != 2 {
			runtime.Gosched()
		}
		cancel()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Errorf("first: %v", err)
		}
		f.gate <- nil // the second caller starts its own
		l := <-second
		l.Release()
	})
}

func waiters(p *Pool[string, *fake], key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ks := p.keys[key]; ks != nil {
		return ks.waiters
	}
	return 0
}

func TestDiscardEvictClose(t *testing.T) {
	f := newFactory(t)
	p := New(Config{MaxTotal: 10}, f.new)

	d := get(t, p, "a")
	d.Discard()
	if !d.Value().closed.Load() {
		t.Error("Discard did not close")
	}

	idle, busy := get(t, p, "a"), get(t, p, "a")
	idleV := idle.Value()
	idle.Release()
	p.SetMinWarm("a", 3)
	p.Evict("a")
	if !idleV.closed.Load() {
		t.Error("Evict did not close the idle value")
	}
	busy.Release()
	if !busy.Value().closed.Load() {
		t.Error("a value in use during Evict was kept on release")
	}
	if st := p.Stats(); st.Live != 0 || st.Keys != 0 {
		t.Errorf("after Evict: %+v", st)
	}

	x, y := get(t, p, "b"), get(t, p, "c")
	x.Release()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if !x.Value().closed.Load() {
		t.Error("Close did not close an idle value")
	}
	if _, err := p.Get(context.Background(), "b"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	y.Release()
	if !y.Value().closed.Load() || f.live.Load() != 0 {
		t.Errorf("after Close and release: live %d", f.live.Load())
	}
}

func TestRunMinWarmAndExpiry(t *testing.T) {
	f := newFactory(t)
	p := New(Config{MaxTotal: 10, IdleTimeout: 20 * time.Millisecond}, f.new)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()

	p.SetMinWarm("warm", 2)
	waitFor(t, "two prewarmed values", func() bool { s := p.Stats(); return s.Prewarms == 2 && s.Idle == 2 })
	l := get(t, p, "warm")
	if l.Cold() {
		t.Error("Get after prewarm was a cold start")
	}
	l.Release()

	// An idle value above MinWarm expires; the MinWarm ones stay.
	get(t, p, "cold").Release()
	waitFor(t, "expiry", func() bool { s := p.Stats(); return s.Expirations == 1 && s.Live == 2 })
	if n := f.live.Load(); n != 2 {
		t.Errorf("after expiry: %d values alive, want the 2 kept warm", n)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := f.live.Load(); n != 0 {
		t.Errorf("%d values alive after Run returned", n)
	}
	if _, err := p.Get(context.Background(), "warm"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Run: %v", err)
	}
}

func TestRunPrewarmFailureRetries(t *testing.T) {
	var fails atomic.Int64
	f := newFactory(t)
	p := New(Config{MaxTotal: 4, IdleTimeout: 4 * time.Millisecond}, func(ctx context.Context, key string) (*fake, error) {
		if fails.Add(1) <= 2 {
			return nil, errors.New("not yet")
		}
		return f.new(ctx, key)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	p.SetMinWarm("k", 1)
	waitFor(t, "prewarm after failures", func() bool { return p.Stats().Prewarms == 1 })
	if s := p.Stats(); s.StartErrors != 2 {
		t.Errorf("stats %+v", s)
	}
	cancel()
	<-done
}

// TestConcurrent: many callers over few slots never share a value, never
// exceed MaxTotal, and leave nothing alive after Close.
func TestConcurrent(t *testing.T) {
	f := newFactory(t)
	p := New(Config{MaxTotal: 3}, f.new)
	keys := []string{"a", "b", "c", "d", "e"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				key := keys[(g+i)%len(keys)]
				l, err := p.Get(context.Background(), key)
				if err != nil {
					t.Error(err)
					return
				}
				done := l.Value().use(t)
				if l.Value().key != key {
					t.Errorf("got %s's value for %s", l.Value().key, key)
				}
				runtime.Gosched()
				done()
				if i%50 == 0 {
					l.Discard()
				} else {
					l.Release()
				}
			}
		})
	}
	wg.Wait()
	if m := f.maxLive.Load(); m > 3 {
		t.Errorf("%d values alive at once, MaxTotal 3", m)
	}
	st := p.Stats()
	if st.ColdStarts+st.WarmHits != 8*200 {
		t.Errorf("stats %+v", st)
	}
	p.Close()
	if n := f.live.Load(); n != 0 {
		t.Errorf("%d values alive after Close", n)
	}
}

func TestNewPanicsOnNilFunc(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(nil) did not panic")
		}
	}()
	New[string, *fake](DefaultConfig(), nil)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
