package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	v8 "github.com/tommie/v8go"
)

// A Runtime is what edge/warmpool holds.
var _ io.Closer = (*Runtime)(nil)

// Response is what the script's fetch handler returned.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Stats describes a Runtime's life so far.
type Stats struct {
	// ColdStart is how long the current isolate took to start: isolate,
	// context, prelude, compile (from the code cache) and top-level run.
	ColdStart time.Duration
	// Starts counts isolate starts: 1, plus one per replacement after the
	// heap limit was hit.
	Starts int
	// Calls, Timeouts and HeapLimits count Serve and Invoke calls, and how
	// many of them ended by timeout or at the heap limit.
	Calls, Timeouts, HeapLimits int
}

// Runtime is one deployment's isolate and context with its script loaded.
// A Runtime admits one call at a time (calls are serialised).
type Runtime struct {
	cfg    Config
	script *Script
	envJS  string
	bindJS string // {"DATA":["get",…]}: the bindings' methods
	log    *slog.Logger
	fetch  *fetcher

	mu     sync.Mutex // held for a whole call: one goroutine inside at a time
	closed bool
	vm     *vm   // nil after a heap-limit failure until the next call starts one
	cur    *call // the call in progress, read by the native callbacks

	statsMu sync.Mutex // not mu: Stats must not wait for a call
	stats   Stats
}

// vm is one isolate, its context and the prelude's internals.
type vm struct {
	iso           *v8.Isolate
	ctx           *v8.Context
	undef         *v8.Value
	fn            map[string]*v8.Function // prelude internals: bind, serve, invoke, runTimers, fetchDone, reset, alloc
	entries       string                  // "fetch,handler" as reported by bind
	spent         bool                    // terminated at the heap limit: dispose at the end of the call
	cacheRejected int                     // code caches V8 refused at start (tests expect 0)
	baseLimit     uint64                  // heap size limit at start; growth means the near-heap-limit callback fired
}

// New starts an isolate for script with env as the deployment's runtime
// variables: it creates the context, installs the Web globals, runs the
// script's top level (bounded by cfg.Timeout) and resolves its entry points.
func New(cfg Config, script *Script, env map[string]string) (*Runtime, error) {
	return NewContext(context.Background(), cfg, script, env)
}

// NewContext is New for a caller admitted through the CPU gate: the start
// runs in the Slot ctx carries (WithSlot), if any, and returns it to the
// Slot when done. ctx's cancellation does not stop the start; cfg.Timeout
// does.
func NewContext(ctx context.Context, cfg Config, script *Script, env map[string]string) (*Runtime, error) {
	if script == nil {
		return nil, errors.New("new runtime: nil script")
	}
	cfg = cfg.withDefaults()
	if env == nil {
		env = map[string]string{}
	}
	envJS, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("new runtime: encode env: %w", err)
	}
	methods := map[string][]string{}
	for name, b := range cfg.Bindings {
		methods[name] = b.Methods()
	}
	bindJS, err := json.Marshal(methods)
	if err != nil {
		return nil, fmt.Errorf("new runtime: encode bindings: %w", err)
	}
	r := &Runtime{
		cfg:    cfg,
		script: script,
		envJS:  string(envJS),
		bindJS: string(bindJS),
		log:    cfg.Logger.With("component", "isolate", "script", script.name),
		fetch:  newFetcher(cfg.Fetch),
	}
	if err := r.start(context.WithoutCancel(ctx), false); err != nil {
		r.fetch.close()
		return nil, err
	}
	return r, nil
}

// Stats returns counters about the Runtime. It does not wait for a call in
// progress.
func (r *Runtime) Stats() Stats {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	return r.stats
}

// Close disposes the isolate. It waits for a call in progress.
func (r *Runtime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.dispose()
	r.fetch.close()
	return nil
}

func (r *Runtime) dispose() {
	if r.vm == nil {
		return
	}
	r.vm.ctx.Close()
	r.vm.iso.Dispose()
	r.vm = nil
}

// start creates the isolate and loads the script. With wantCache it returns
// after filling r.script's code caches (Compile uses it).
func (r *Runtime) start(ctx context.Context, wantCache bool) (err error) {
	t0 := time.Now()
	heap := uint64(r.cfg.HeapMB) << 20
	initial := min(heap/8, 16<<20)
	iso := v8.NewIsolate(v8.WithResourceConstraints(initial, heap))
	m := &vm{iso: iso, ctx: v8.NewContext(iso), undef: v8.Undefined(iso), fn: map[string]*v8.Function{}}
	r.vm = m
	defer func() {
		if err != nil {
			r.dispose()
		}
	}()
	m.baseLimit = iso.GetHeapStatistics().HeapSizeLimit

	c := r.begin(ctx, "")
	defer r.end(c)
	if err := r.hold(c); err != nil {
		return fmt.Errorf("start isolate: %w", err)
	}

	native, err := r.nativeObject(m)
	if err != nil {
		return fmt.Errorf("start isolate: %w", err)
	}
	defer native.Release()

	prelude, err := r.compile(m, preludeSource, "pier:prelude.js", &r.script.preludeCache, wantCache)
	if err != nil {
		return fmt.Errorf("start isolate: compile prelude: %w", err)
	}
	setup, err := r.run(c, func() (*v8.Value, error) { return prelude.Run(m.ctx) })
	if err != nil {
		return fmt.Errorf("start isolate: prelude: %w", err)
	}
	defer setup.Release()
	setupFn, err := setup.AsFunction()
	if err != nil {
		return fmt.Errorf("start isolate: prelude: %w", err)
	}
	internals, err := r.run(c, func() (*v8.Value, error) { return setupFn.Call(m.undef, native) })
	if err != nil {
		return fmt.Errorf("start isolate: prelude: %w", err)
	}
	obj, err := internals.AsObject()
	if err != nil {
		return fmt.Errorf("start isolate: prelude: %w", err)
	}
	for _, name := range []string{"bind", "serve", "invoke", "dispatch", "runTimers", "fetchDone", "reset", "alloc"} {
		v, err := obj.Get(name)
		if err != nil {
			return fmt.Errorf("start isolate: prelude: %w", err)
		}
		f, err := v.AsFunction()
		if err != nil {
			return fmt.Errorf("start isolate: prelude %s: %w", name, err)
		}
		m.fn[name] = f
	}
	internals.Release()

	us, err := r.compile(m, r.script.source, r.script.name, &r.script.cache, false)
	if err != nil {
		return err
	}
	top, err := r.run(c, func() (*v8.Value, error) { return us.Run(m.ctx) })
	if err != nil {
		return fmt.Errorf("run top level of %s: %w", r.script.name, err)
	}
	defer top.Release()
	moduleFn := m.undef
	if r.script.module {
		moduleFn = top
	}
	envV, err := v8.NewValue(iso, r.envJS)
	if err != nil {
		return fmt.Errorf("start isolate: %w", err)
	}
	defer envV.Release()
	bindV, err := v8.NewValue(iso, r.bindJS)
	if err != nil {
		return fmt.Errorf("start isolate: %w", err)
	}
	defer bindV.Release()
	kinds, err := r.run(c, func() (*v8.Value, error) { return m.fn["bind"].Call(m.undef, moduleFn, envV, bindV) })
	if err != nil {
		return fmt.Errorf("run module %s: %w", r.script.name, err)
	}
	m.entries = kinds.String()
	kinds.Release()
	if wantCache {
		r.script.cache = us.CreateCodeCache().Bytes
	}
	r.statsMu.Lock()
	r.stats.ColdStart = time.Since(t0)
	r.stats.Starts++
	r.statsMu.Unlock()
	return nil
}

// compile compiles source with *cache, or fills *cache when fill is set.
func (r *Runtime) compile(m *vm, source, origin string, cache *[]byte, fill bool) (*v8.UnboundScript, error) {
	opts := v8.CompileOptions{}
	if len(*cache) > 0 {
		opts.CachedData = &v8.CompilerCachedData{Bytes: *cache}
	}
	us, err := m.iso.CompileUnboundScript(source, origin, opts)
	if err != nil {
		return nil, scriptError(err)
	}
	if opts.CachedData != nil && opts.CachedData.Rejected {
		m.cacheRejected++
		r.log.Warn("v8 code cache rejected", "origin", origin)
	}
	if fill {
		*cache = us.CreateCodeCache().Bytes
	}
	return us, nil
}

// call is the state of one Serve, Invoke or start: its deadline, its
// fetches, and the termination handshake with the watchdog.
type call struct {
	id        string
	limit     time.Duration
	ctx       context.Context // cancelled when the call ends: stops its fetches
	cancel    context.CancelFunc
	events    chan fetchResult // made by the first fetch (nil: none started; receiving blocks)
	fetches   int              // started
	hostCalls int              // binding calls started
	waiting   int              // started and not yet delivered
	dirty     bool
	held      bool  // holds a slot of the Runtime's Gate
	slot      *Slot // the caller's slot this call runs in (WithSlot): its slot goes back there at the end

	mu      sync.Mutex
	inJS    bool
	tripped bool
	reason  error
	done    chan struct{} // closed when tripped
	stop    func()
}

// begin sets up r.cur with a watchdog: at the deadline, or when ctx is
// cancelled, it terminates the running script (if any) and wakes the loop.
func (r *Runtime) begin(ctx context.Context, id string) *call {
	limit := r.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < limit {
		limit = max(time.Until(dl), 0)
	}
	c := &call{id: id, limit: limit, done: make(chan struct{})}
	left := limit
	if s := slotFrom(ctx); s.lend(r.cfg.Gate) {
		// Admitted ahead of the call: run in the caller's slot; the wait
		// for it counts against the limit.
		c.held, c.slot = true, s
		left = max(limit-time.Since(s.since), 0)
	}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	iso := r.vm.iso
	timer := time.AfterFunc(left, func() { c.trip(iso, &TimeoutError{Limit: limit}) })
	stopCtx := context.AfterFunc(ctx, func() {
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = &TimeoutError{Limit: limit}
		}
		c.trip(iso, err)
	})
	c.stop = func() { timer.Stop(); stopCtx() }
	r.cur = c
	return c
}

func (c *call) trip(iso *v8.Isolate, reason error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tripped {
		return
	}
	c.tripped, c.reason = true, reason
	close(c.done)
	if c.inJS {
		iso.TerminateExecution()
	}
}

// end stops the watchdog and fetches and leaves the isolate clean for the
// next call: a termination requested as the script was returning is
// absorbed, and leftover timers and fetch callbacks are dropped.
func (r *Runtime) end(c *call) {
	defer r.finish(c) // after the cleanup below, which runs JS
	c.stop()
	c.cancel()
	r.cur = nil
	m := r.vm
	if m == nil {
		return
	}
	c.mu.Lock()
	tripped := c.tripped
	c.mu.Unlock()
	if tripped && !m.spent {
		for range 3 {
			v, err := m.ctx.RunScript("0", "pier:drain.js")
			if err == nil {
				v.Release()
				break
			}
		}
	}
	if (tripped || c.dirty) && !m.spent {
		if v, err := m.fn["reset"].Call(m.undef); err == nil {
			v.Release()
		}
	}
	hs := m.iso.GetHeapStatistics()
	if m.spent || hs.HeapSizeLimit > m.baseLimit || hs.ExternalMemory > uint64(r.cfg.HeapMB)<<20 {
		// The near-heap-limit callback fired (and raised the limit to let
		// the script unwind), or ArrayBuffers outside the heap hold more
		// than the heap limit: this isolate is spent. Disposing it here,
		// after the call released its values, is safe; the next call starts
		// a new one.
		r.dispose()
	}
}

// run enters JS through f under the watchdog and classifies its error.
func (r *Runtime) run(c *call, f func() (*v8.Value, error)) (*v8.Value, error) {
	if err := r.hold(c); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.tripped {
		c.mu.Unlock()
		return nil, c.reason
	}
	c.inJS = true
	c.mu.Unlock()
	v, err := f()
	c.mu.Lock()
	c.inJS = false
	tripped, reason := c.tripped, c.reason
	c.mu.Unlock()
	if err == nil {
		return v, nil
	}
	if tripped {
		return nil, reason
	}
	var je *v8.JSError
	if errors.As(err, &je) && strings.HasPrefix(je.Message, "ExecutionTerminated") {
		// Only the near-heap-limit callback terminates without our watchdog.
		r.vm.spent = true
		return nil, ErrHeapLimit
	}
	return nil, scriptError(err)
}

// hold takes a slot of the CPU gate for c, unless it holds one already,
// before it enters JS. Waiting for the slot counts against the call's
// deadline: a call tripped while it waits gets its reason back.
func (r *Runtime) hold(c *call) error {
	if c.held || r.cfg.Gate == nil {
		return nil
	}
	if !r.cfg.Gate.enter(c.done) {
		return c.reason
	}
	c.held = true
	return nil
}

// yield gives c's gate slot back while the call waits on fetches and
// timers.
func (r *Runtime) yield(c *call) {
	if c.held {
		c.held = false
		r.cfg.Gate.leave()
	}
}

// finish gives c's gate slot back when the call ends: to the caller's Slot
// if the call ran in one (the caller releases it once the isolate is back
// in its pool), else to the gate.
func (r *Runtime) finish(c *call) {
	if c.held && c.slot != nil {
		c.held = false
		c.slot.held = true
		return
	}
	r.yield(c)
}

func scriptError(err error) error {
	var je *v8.JSError
	if errors.As(err, &je) {
		return &ScriptError{Message: je.Message, Stack: je.StackTrace}
	}
	return &ScriptError{Message: err.Error()}
}

// acquire locks the Runtime for one call and makes sure an isolate is up
// (after a heap-limit failure the next call starts a new one).
func (r *Runtime) acquire(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if r.vm == nil {
		if err := r.start(ctx, false); err != nil {
			r.mu.Unlock()
			return err
		}
	}
	return nil
}

func (r *Runtime) count(err error) {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	r.stats.Calls++
	switch {
	case errors.Is(err, ErrTimeout):
		r.stats.Timeouts++
	case errors.Is(err, ErrHeapLimit):
		r.stats.HeapLimits++
	}
}

// Serve runs the script's fetch handler for req. requestID tags the console
// output of this call. The error is a *TimeoutError (ErrTimeout), ErrHeapLimit,
// a *ScriptError, ErrNoEntry, ErrBodyTooLarge, ErrClosed or ctx's error;
// after any of them the Runtime serves the next request.
func (r *Runtime) Serve(ctx context.Context, req *http.Request, requestID string) (res *Response, err error) {
	body, err := readBody(req, r.cfg.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	meta, err := json.Marshal(requestMeta(req))
	if err != nil {
		return nil, fmt.Errorf("serve: encode request: %w", err)
	}
	if err := r.acquire(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	defer func() { r.count(err) }()
	if !strings.Contains(r.vm.entries, "fetch") {
		return nil, fmt.Errorf("serve: %w: the script does not export default { fetch }", ErrNoEntry)
	}
	c := r.begin(ctx, requestID)
	defer r.end(c)
	if err := r.hold(c); err != nil {
		return nil, err
	}
	m := r.vm

	metaV, err := v8.NewValue(m.iso, string(meta))
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	defer metaV.Release()
	bodyV := m.undef
	if len(body) > 0 {
		if bodyV, err = r.shared(c, body); err != nil {
			return nil, err
		}
		defer bodyV.Release()
	}
	p, err := r.run(c, func() (*v8.Value, error) { return m.fn["serve"].Call(m.undef, metaV, bodyV) })
	if err != nil {
		return nil, err
	}
	defer p.Release()
	out, err := r.await(c, p)
	if err != nil {
		return nil, err
	}
	defer out.Release()
	return r.response(out)
}

// Invoke runs the script's handler(data, env) with input (JSON; empty means
// null) and returns its result as JSON. Errors are as for Serve.
func (r *Runtime) Invoke(ctx context.Context, input json.RawMessage) (_ json.RawMessage, err error) {
	if len(strings.TrimSpace(string(input))) == 0 {
		input = json.RawMessage("null")
	}
	if !json.Valid(input) {
		return nil, errors.New("invoke: input is not valid JSON")
	}
	if int64(len(input)) > r.cfg.MaxBodyBytes {
		return nil, fmt.Errorf("invoke: input: %w", ErrBodyTooLarge)
	}
	if err := r.acquire(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	defer func() { r.count(err) }()
	if !strings.Contains(r.vm.entries, "handler") {
		return nil, fmt.Errorf("invoke: %w: the script does not define handler(data)", ErrNoEntry)
	}
	c := r.begin(ctx, "")
	defer r.end(c)
	if err := r.hold(c); err != nil {
		return nil, err
	}
	m := r.vm
	in, err := v8.NewValue(m.iso, string(input))
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	defer in.Release()
	p, err := r.run(c, func() (*v8.Value, error) { return m.fn["invoke"].Call(m.undef, in) })
	if err != nil {
		return nil, err
	}
	defer p.Release()
	out, err := r.await(c, p)
	if err != nil {
		return nil, err
	}
	defer out.Release()
	s := out.String()
	if int64(len(s)) > r.cfg.MaxBodyBytes {
		return nil, fmt.Errorf("invoke: result: %w", ErrBodyTooLarge)
	}
	return json.RawMessage(s), nil
}

// Call runs a named function of the server entry with event (JSON) as
// its first argument, env second and a ctx with waitUntil third: a named
// export fn of the module, else the method fn of its default export
// (Workers style: export default { scheduled(event, env, ctx) }). It
// returns the function's result as JSON. requestID tags its console
// output. A module with neither wraps ErrNoEntry; other errors are as
// for Serve.
func (r *Runtime) Call(ctx context.Context, fn string, event json.RawMessage, requestID string) (_ json.RawMessage, err error) {
	if len(strings.TrimSpace(string(event))) == 0 {
		event = json.RawMessage("null")
	}
	if !json.Valid(event) {
		return nil, errors.New("call: event is not valid JSON")
	}
	if int64(len(event)) > r.cfg.MaxBodyBytes {
		return nil, fmt.Errorf("call: event: %w", ErrBodyTooLarge)
	}
	if err := r.acquire(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	defer func() { r.count(err) }()
	c := r.begin(ctx, requestID)
	defer r.end(c)
	if err := r.hold(c); err != nil {
		return nil, err
	}
	m := r.vm
	nameV, err := v8.NewValue(m.iso, fn)
	if err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	defer nameV.Release()
	in, err := v8.NewValue(m.iso, string(event))
	if err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	defer in.Release()
	p, err := r.run(c, func() (*v8.Value, error) { return m.fn["dispatch"].Call(m.undef, nameV, in) })
	if err != nil {
		return nil, err
	}
	defer p.Release()
	out, err := r.await(c, p)
	if err != nil {
		var se *ScriptError
		if errors.As(err, &se) && strings.Contains(se.Message, noExportMarker) {
			return nil, fmt.Errorf("call %s: %w: %s", fn, ErrNoEntry, strings.TrimPrefix(se.Message, "TypeError: "))
		}
		return nil, err
	}
	defer out.Release()
	s := out.String()
	if int64(len(s)) > r.cfg.MaxBodyBytes {
		return nil, fmt.Errorf("call: result: %w", ErrBodyTooLarge)
	}
	return json.RawMessage(s), nil
}

// noExportMarker is in the prelude's error for a function Call cannot find.
const noExportMarker = "the server entry exports no function"

// await runs the event loop until the promise v settles: due timers run,
// finished fetches are delivered, and the call's deadline is honoured.
func (r *Runtime) await(c *call, v *v8.Value) (*v8.Value, error) {
	if !v.IsPromise() {
		return nil, &ScriptError{Message: "internal: expected a promise"}
	}
	p, err := v.AsPromise()
	if err != nil {
		return nil, scriptError(err)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	recheck := true
	for {
		if r.vm.spent {
			return nil, ErrHeapLimit
		}
		switch p.State() {
		case v8.Fulfilled:
			return p.Result(), nil
		case v8.Rejected:
			return nil, r.rejection(p.Result())
		}
		next, err := r.run(c, func() (*v8.Value, error) { return r.vm.fn["runTimers"].Call(r.vm.undef) })
		if err != nil {
			return nil, err
		}
		ms := next.Number()
		next.Release()
		if ms >= 0 {
			c.dirty = true
		}
		if p.State() != v8.Pending {
			continue
		}
		if ms < 0 && c.waiting == 0 {
			// The continuations of the timers runTimers just ran are
			// microtasks, run when it returned: they may have set new
			// timers (await sleep(1); await sleep(1)). Look once more.
			if recheck {
				recheck = false
				continue
			}
			return nil, &ScriptError{Message: "the script's promise will never settle: nothing is pending (no fetch, no timer)"}
		}
		recheck = true
		// A fetch that has finished, or a timer due now, is the next turn:
		// keep the gate slot for it. Otherwise give the slot back while
		// the call waits; the next entry into JS (run) takes one again.
		select {
		case res := <-c.events:
			c.waiting--
			if err := r.deliver(c, res); err != nil {
				return nil, err
			}
			continue
		case <-c.done:
			return nil, c.reason
		default:
		}
		if ms == 0 {
			continue
		}
		r.yield(c)
		var tick <-chan time.Time
		if ms > 0 {
			d := time.Duration(ms * float64(time.Millisecond))
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			tick = timer.C
		}
		select {
		case res := <-c.events:
			c.waiting--
			if err := r.deliver(c, res); err != nil {
				return nil, err
			}
		case <-tick:
		case <-c.done:
			return nil, c.reason
		}
	}
}

// rejection turns a rejected promise's value into a ScriptError.
func (r *Runtime) rejection(v *v8.Value) error {
	defer v.Release()
	e := &ScriptError{Message: v.String()}
	if obj, err := v.AsObject(); err == nil {
		if st, err := obj.Get("stack"); err == nil {
			if st.IsString() {
				e.Stack = st.String()
			}
			st.Release()
		}
	}
	if v.IsNativeError() || v.IsObject() {
		return e
	}
	e.Message = "Uncaught (in promise) " + e.Message
	return e
}

// deliver hands a finished fetch to JS.
func (r *Runtime) deliver(c *call, res fetchResult) error {
	m := r.vm
	var args [4]*v8.Value
	var err error
	if args[0], err = v8.NewValue(m.iso, int32(res.id)); err != nil {
		return err
	}
	defer args[0].Release()
	if args[1], err = v8.NewValue(m.iso, string(res.meta)); err != nil {
		return err
	}
	defer args[1].Release()
	args[2] = m.undef
	if len(res.body) > 0 {
		if args[2], err = r.shared(c, res.body); err != nil {
			return err
		}
		defer args[2].Release()
	}
	if args[3], err = v8.NewValue(m.iso, res.err); err != nil {
		return err
	}
	defer args[3].Release()
	v, err := r.run(c, func() (*v8.Value, error) {
		return m.fn["fetchDone"].Call(m.undef, args[0], args[1], args[2], args[3])
	})
	if err != nil {
		return err
	}
	v.Release()
	return nil
}

// shared copies b into a new SharedArrayBuffer in the isolate.
func (r *Runtime) shared(c *call, b []byte) (*v8.Value, error) {
	m := r.vm
	n, err := v8.NewValue(m.iso, uint32(len(b)))
	if err != nil {
		return nil, err
	}
	defer n.Release()
	sab, err := r.run(c, func() (*v8.Value, error) { return m.fn["alloc"].Call(m.undef, n) })
	if err != nil {
		return nil, err
	}
	buf, release, err := sab.SharedArrayBufferGetContents()
	if err != nil {
		sab.Release()
		return nil, err
	}
	copy(buf, b)
	release()
	return sab, nil
}

// response converts serve's record into a Response: a string (the meta
// JSON, then a newline and the text body if there is one) or, for a
// binary body, {meta, body: SharedArrayBuffer}.
func (r *Runtime) response(out *v8.Value) (*Response, error) {
	if out.IsString() {
		meta, body, hasBody := strings.Cut(out.String(), "\n")
		res, err := decodeMeta(meta)
		if err != nil {
			return nil, err
		}
		if hasBody {
			res.Body = []byte(body)
		}
		if int64(len(res.Body)) > r.cfg.MaxBodyBytes {
			return nil, fmt.Errorf("serve: response: %w", ErrBodyTooLarge)
		}
		return res, nil
	}
	obj, err := out.AsObject()
	if err != nil {
		return nil, scriptError(err)
	}
	metaV, err := obj.Get("meta")
	if err != nil {
		return nil, scriptError(err)
	}
	res, err := decodeMeta(metaV.String())
	metaV.Release()
	if err != nil {
		return nil, err
	}
	bodyV, err := obj.Get("body")
	if err != nil {
		return nil, scriptError(err)
	}
	defer bodyV.Release()
	switch {
	case bodyV.IsString():
		res.Body = []byte(bodyV.String())
	case bodyV.IsSharedArrayBuffer():
		buf, release, err := bodyV.SharedArrayBufferGetContents()
		if err != nil {
			return nil, scriptError(err)
		}
		res.Body = append([]byte(nil), buf...)
		release()
	}
	if int64(len(res.Body)) > r.cfg.MaxBodyBytes {
		return nil, fmt.Errorf("serve: response: %w", ErrBodyTooLarge)
	}
	return res, nil
}

// decodeMeta reads the status and headers of a response record. The
// prelude writes it with JSON.stringify in one fixed shape, which
// fastMeta reads without reflection; anything else goes through
// encoding/json.
func decodeMeta(raw string) (*Response, error) {
	if res, ok := fastMeta(raw); ok {
		return res, nil
	}
	var meta struct {
		Status  int         `json:"status"`
		Headers [][2]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		return nil, fmt.Errorf("serve: decode response: %w", err)
	}
	res := &Response{Status: meta.Status, Header: make(http.Header, len(meta.Headers))}
	for _, h := range meta.Headers {
		res.Header.Add(h[0], h[1])
	}
	return res, nil
}

// fastMeta reads {"status":N,"statusText":"…","headers":[["k","v"],…]},
// exactly as JSON.stringify writes it (no spaces). ok is false for any
// other input.
func fastMeta(raw string) (res *Response, ok bool) {
	rest, ok := strings.CutPrefix(raw, `{"status":`)
	if !ok {
		return nil, false
	}
	i := 0
	for i < len(rest) && i < 4 && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 {
		return nil, false
	}
	status, _ := strconv.Atoi(rest[:i])
	if rest, ok = strings.CutPrefix(rest[i:], `,"statusText":`); !ok {
		return nil, false
	}
	if _, rest, ok = jsonString(rest); !ok {
		return nil, false
	}
	if rest, ok = strings.CutPrefix(rest, `,"headers":[`); !ok {
		return nil, false
	}
	res = &Response{Status: status, Header: make(http.Header, 4)}
	for first := true; ; first = false {
		if rest == "]}" {
			return res, true
		}
		if !first {
			if rest, ok = strings.CutPrefix(rest, ","); !ok {
				return nil, false
			}
		}
		var k, v string
		if rest, ok = strings.CutPrefix(rest, "["); !ok {
			return nil, false
		}
		if k, rest, ok = jsonString(rest); !ok {
			return nil, false
		}
		if rest, ok = strings.CutPrefix(rest, ","); !ok {
			return nil, false
		}
		if v, rest, ok = jsonString(rest); !ok {
			return nil, false
		}
		if rest, ok = strings.CutPrefix(rest, "]"); !ok {
			return nil, false
		}
		res.Header.Add(k, v)
	}
}

// jsonString reads the JSON string at the start of s. Strings without
// escapes (the usual header) are sliced, not copied; escaped ones go
// through encoding/json.
func jsonString(s string) (v, rest string, ok bool) {
	if len(s) == 0 || s[0] != '"' {
		return "", s, false
	}
	escaped := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			escaped = true
			i++ // skip the escaped byte (a quote or a backslash among them)
		case '"':
			if !escaped {
				return s[1:i], s[i+1:], true
			}
			if err := json.Unmarshal([]byte(s[:i+1]), &v); err != nil {
				return "", s, false
			}
			return v, s[i+1:], true
		}
	}
	return "", s, false
}

// requestMeta is the request as the prelude's serve() reads it.
func requestMeta(req *http.Request) any {
	u := *req.URL
	if !u.IsAbs() {
		u.Scheme = "http"
		if req.TLS != nil {
			u.Scheme = "https"
		}
		u.Host = req.Host
	}
	headers := make([][2]string, 0, len(req.Header))
	for k, vs := range req.Header {
		for _, v := range vs {
			headers = append(headers, [2]string{k, v})
		}
	}
	if req.Host != "" && req.Header.Get("Host") == "" {
		headers = append(headers, [2]string{"Host", req.Host})
	}
	return struct {
		Method  string      `json:"method"`
		URL     string      `json:"url"`
		Headers [][2]string `json:"headers"`
	}{req.Method, u.String(), headers}
}

func readBody(req *http.Request, limit int64) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("serve: read request body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("serve: request: %w", ErrBodyTooLarge)
	}
	return b, nil
}
