package isolate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds; it fails the test after a minute (a
// hang, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkGateFree fails the test if a slot is still held.
func checkGateFree(t *testing.T, g *Gate) {
	t.Helper()
	if st := g.Stats(); st.Running != 0 {
		t.Errorf("gate %+v: a slot is still held after every call ended", st)
	}
}

func TestGateDefaults(t *testing.T) {
	if got, want := NewGate(0).Slots(), runtime.GOMAXPROCS(0); got != want {
		t.Errorf("NewGate(0).Slots() = %d, want GOMAXPROCS %d", got, want)
	}
	if got := NewGate(3).Slots(); got != 3 {
		t.Errorf("NewGate(3).Slots() = %d", got)
	}
	var nilGate *Gate
	if nilGate.Slots() != 0 || nilGate.Stats() != (GateStats{}) {
		t.Error("a nil gate reports a limit")
	}
}

// TestGateRunawayReleases: with one slot, a script that never yields holds
// the gate only until it is stopped (timeout, cancellation or heap limit);
// the request queued behind it is then served, and every slot comes back.
func TestGateRunawayReleases(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		timeout time.Duration
		heapMB  int
		cancel  bool // stop the runaway by cancelling its ctx once the other request queued
		want    error
	}{
		{name: "timeout", path: "/loop", timeout: 500 * time.Millisecond, want: ErrTimeout},
		{name: "timeout after await", path: "/loop-after-await", timeout: 500 * time.Millisecond, want: ErrTimeout},
		{name: "cancelled", path: "/loop", timeout: time.Minute, cancel: true, want: context.Canceled},
		{name: "heap limit", path: "/bomb", timeout: time.Minute, heapMB: 32, want: ErrHeapLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := NewGate(1)
			cfg := testConfig(t, nil)
			cfg.Gate, cfg.Timeout = gate, tt.timeout
			if tt.heapMB > 0 {
				cfg.HeapMB = tt.heapMB
			}
			runaway := start(t, cfg, hostile, nil)
			cfg = testConfig(t, nil)
			cfg.Gate, cfg.Timeout = gate, time.Minute
			good := start(t, cfg, `export default { fetch: () => new Response("ok") }`, nil)
			checkGateFree(t, gate) // New gave its slot back

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			runawayErr := make(chan error, 1)
			go func() {
				_, err := runaway.Serve(ctx, newRequest("GET", "http://a.example"+tt.path, ""), "runaway")
				runawayErr <- err
			}()
			if tt.path != "/bomb" { // a bomb may end before we look
				waitFor(t, "the runaway holds the slot", func() bool { return gate.Stats().Running == 1 })
			}
			waits := gate.Stats().Waits
			goodDone := make(chan error, 1)
			go func() {
				res, err := good.Serve(context.Background(), newRequest("GET", "http://b.example/", ""), "good")
				if err == nil && string(res.Body) != "ok" {
					err = fmt.Errorf("body %q", res.Body)
				}
				goodDone <- err
			}()
			if tt.cancel {
				waitFor(t, "the good request queues", func() bool { return gate.Stats().Waits > waits })
				cancel()
			}
			if err := <-goodDone; err != nil {
				t.Fatalf("request behind the runaway: %v", err)
			}
			if err := <-runawayErr; !errors.Is(err, tt.want) {
				t.Fatalf("runaway: got %v, want %v", err, tt.want)
			}
			checkGateFree(t, gate)
			// The runaway's Runtime serves again, through the gate.
			if res := mustServe(t, runaway, "GET", "http://a.example/", ""); !strings.HasPrefix(string(res.Body), "ok ") {
				t.Errorf("runaway's next request: %q", res.Body)
			}
			checkGateFree(t, gate)
		})
	}
}

// TestGateWaitCountsAgainstTimeout: a call that cannot get a slot before
// its deadline fails with its own timeout, and leaves no slot behind.
func TestGateWaitCountsAgainstTimeout(t *testing.T) {
	gate := NewGate(1)
	cfg := testConfig(t, nil)
	cfg.Gate = gate
	runaway := start(t, cfg, hostile, nil)
	cfg.Timeout = 100 * time.Millisecond
	short := start(t, cfg, `export default { fetch: () => new Response("ok") }`, nil)

	ctx, cancel := context.WithCancel(context.Background())
	runawayErr := make(chan error, 1)
	go func() {
		_, err := runaway.Serve(ctx, newRequest("GET", "http://a.example/loop", ""), "runaway")
		runawayErr <- err
	}()
	waitFor(t, "the runaway holds the slot", func() bool { return gate.Stats().Running == 1 })

	_, err := serve(t, short, "GET", "http://b.example/", "")
	if !errors.Is(err, ErrTimeout) || err.Error() != "Execution timeout (100ms)" {
		t.Errorf("queued call: got %v, want Execution timeout (100ms)", err)
	}
	if st := short.Stats(); st.Timeouts != 1 {
		t.Errorf("stats %+v: want the queued call counted as a timeout", st)
	}
	ctxC, cancelC := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelC()
	cc := cfg
	cc.Timeout = time.Minute
	if _, err := CompileWith(ctxC, cc, "queued.js", []byte(`export default {}`)); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrTimeout) {
		t.Errorf("compile behind a full gate: got %v, want the context's deadline", err)
	}

	cancel()
	if err := <-runawayErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("runaway: got %v", err)
	}
	checkGateFree(t, gate)
	mustServe(t, short, "GET", "http://b.example/", "")
	if _, err := CompileWith(context.Background(), cc, "free.js", []byte(`export default {}`)); err != nil {
		t.Errorf("compile through a free gate: %v", err)
	}
	checkGateFree(t, gate)
}

// TestGateIONotSerialized: handlers waiting on fetch and timers hold no
// slot, so n of them make progress together through a one-slot gate. The
// upstream answers only once all n requests have reached it: if the gate
// serialised them, none would be answered and the fetches would time out.
func TestGateIONotSerialized(t *testing.T) {
	const n = 8
	var (
		mu      sync.Mutex
		arrived int
		all     = make(chan struct{})
	)
	srv := localServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		if arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			fmt.Fprint(w, "together")
		case <-r.Context().Done():
		}
	}))

	gate := NewGate(1)
	cfg := testConfig(t, nil)
	cfg.Gate = gate
	cfg.Fetch.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.Timeout = 10 * time.Second // a serialised run fails here, not in a hang
	cfg.Fetch.Timeout = 5 * time.Second
	src := `export default {
  async fetch(req) {
    await new Promise((r) => setTimeout(r, 5));
    const res = await fetch(new URL(req.url).searchParams.get("u"));
    return new Response(await res.text());
  },
};`
	script := compile(t, "io.js", src)
	rts := make([]*Runtime, n)
	for i := range rts {
		rt, err := New(cfg, script, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close() })
		rts[i] = rt
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, rt := range rts {
		wg.Go(func() {
			res, err := rt.Serve(context.Background(), newRequest("GET", "http://io.example/?u="+srv.URL, ""), fmt.Sprint("io-", i))
			if err == nil && string(res.Body) != "together" {
				err = fmt.Errorf("body %q", res.Body)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("handler: %v", err)
		}
	}
	checkGateFree(t, gate)
}

// TestSlotAdmission: a caller admitted ahead of its call (Gate.Acquire)
// lends its slot to the call through WithSlot. Through a one-slot gate the
// call runs in it (it would wait forever for a second one), gives it back
// to the gate while it waits on a timer (another call runs meanwhile), and
// returns one to the caller when it ends: the gate stays full until the
// caller releases it. An isolate restarted after the heap limit starts in
// the lent slot too.
func TestSlotAdmission(t *testing.T) {
	gate := NewGate(1)
	cfg := testConfig(t, nil)
	cfg.Gate, cfg.Timeout, cfg.HeapMB = gate, 10*time.Second, 32
	rt := start(t, cfg, `export default {
  async fetch(req) {
    const u = new URL(req.url);
    if (u.pathname === "/sleep") await new Promise((r) => setTimeout(r, 200));
    if (u.pathname === "/bomb") { const a = []; for (;;) a.push(new Array(1e6).fill(1)); }
    return new Response("ok " + u.pathname);
  },
};`, nil)
	other := start(t, cfg, `export default { fetch: () => new Response("other") }`, nil)

	admitted := func() *Slot {
		t.Helper()
		s, err := gate.Acquire(context.Background(), time.Now(), time.Minute)
		if err != nil || s == nil {
			t.Fatalf("Acquire: %v", err)
		}
		return s
	}
	for _, path := range []string{"/", "/bomb", "/after-bomb"} {
		s := admitted()
		res, err := rt.Serve(WithSlot(context.Background(), s), newRequest("GET", "http://a.example"+path, ""), "admitted")
		switch {
		case path == "/bomb" && !errors.Is(err, ErrHeapLimit):
			t.Fatalf("%s: got %v, want ErrHeapLimit", path, err)
		case path != "/bomb" && (err != nil || string(res.Body) != "ok "+path):
			t.Fatalf("%s: %v %v", path, res, err)
		}
		if st := gate.Stats(); st.Running != 1 {
			t.Errorf("%s: gate %+v after the call: want the slot back with the caller", path, st)
		}
		s.Release()
		s.Release() // a second Release is a no-op
		checkGateFree(t, gate)
	}
	if st := rt.Stats(); st.Starts != 2 {
		t.Errorf("stats %+v: want a restart after the bomb", st)
	}
	// A cold start in the caller's slot.
	s := admitted()
	started, err := NewContext(WithSlot(context.Background(), s), cfg, compile(t, "cold.js", `export default { fetch: () => new Response("cold") }`), nil)
	if err != nil {
		t.Fatalf("NewContext in a slot: %v", err)
	}
	t.Cleanup(func() { started.Close() })
	if st := gate.Stats(); st.Running != 1 {
		t.Errorf("gate %+v after NewContext: want the slot back with the caller", st)
	}
	s.Release()
	checkGateFree(t, gate)

	s = admitted()
	done := make(chan error, 1)
	go func() {
		_, err := rt.Serve(WithSlot(context.Background(), s), newRequest("GET", "http://a.example/sleep", ""), "sleeper")
		done <- err
	}()
	// While the sleeper waits on its timer, the one slot is free for others.
	if res := mustServe(t, other, "GET", "http://b.example/", ""); string(res.Body) != "other" {
		t.Errorf("other = %q", res.Body)
	}
	if err := <-done; err != nil {
		t.Fatalf("sleeper: %v", err)
	}
	s.Release()
	checkGateFree(t, gate)

	// A slot of another gate is not lent: the call takes its own.
	foreign := NewGate(1)
	fs, _ := foreign.Acquire(context.Background(), time.Now(), time.Minute)
	if _, err := rt.Serve(WithSlot(context.Background(), fs), newRequest("GET", "http://a.example/", ""), "foreign"); err != nil {
		t.Fatalf("Serve with a foreign slot: %v", err)
	}
	checkGateFree(t, gate)
	if foreign.Stats().Running != 1 {
		t.Error("the foreign slot was taken from its caller")
	}
	fs.Release()

	var nilGate *Gate
	if s, err := nilGate.Acquire(context.Background(), time.Now(), time.Second); s != nil || err != nil {
		t.Errorf("nil gate Acquire = %v, %v; want nothing", s, err)
	}
	var nilSlot *Slot
	nilSlot.Release()
	if ctx := WithSlot(context.Background(), nil); ctx != context.Background() {
		t.Error("WithSlot(nil) changed the context")
	}
}

// TestSlotAcquireTimeout: Acquire behind a full gate ends with the calls'
// timeout error (its wait counts against the limit) or the context's.
func TestSlotAcquireTimeout(t *testing.T) {
	gate := NewGate(1)
	held, err := gate.Acquire(context.Background(), time.Now(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gate.Acquire(context.Background(), time.Now(), 50*time.Millisecond); !errors.Is(err, ErrTimeout) || err.Error() != "Execution timeout (50ms)" {
		t.Errorf("Acquire behind a full gate: got %v, want Execution timeout (50ms)", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := gate.Acquire(ctx, time.Now(), time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a cancelled ctx: got %v", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if _, err := gate.Acquire(dctx, time.Now(), time.Minute); !errors.Is(err, ErrTimeout) {
		t.Errorf("Acquire past the ctx deadline: got %v, want ErrTimeout", err)
	}
	// A retry whose first wait began a limit ago times out at once.
	if _, err := gate.Acquire(context.Background(), time.Now().Add(-time.Second), time.Second); !errors.Is(err, ErrTimeout) {
		t.Errorf("Acquire past its limit: got %v, want ErrTimeout", err)
	}
	if st := gate.Stats(); st.Running != 1 || st.Waits != 3 {
		t.Errorf("gate %+v: want the first slot held and three waits", st)
	}
	held.Release()
	checkGateFree(t, gate)
}
