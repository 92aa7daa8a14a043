package edged

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/isolate"
	"github.com/pierhq/pier/edge/static"
	"github.com/pierhq/pier/edge/warmpool"
)

// IsolatesConfig configures where deployments' server code runs: V8
// isolates (edge/isolate), kept warm per deployment in one pool
// (edge/warmpool) with a global capacity.
type IsolatesConfig struct {
	// Runtime holds the limits of every isolate: timeout, heap, body sizes
	// and the outbound fetch policy. Zero fields take
	// isolate.DefaultConfig's; OnLog and Logger are set by the edge.
	Runtime isolate.Config
	// Capacity bounds the isolates of all deployments together (idle,
	// busy and starting); at the bound the least recently used idle one is
	// closed first. Default 64.
	Capacity int
	// IdleTimeout closes isolates idle this long, down to each live
	// deployment's minimum. Default 5m.
	IdleTimeout time.Duration
	// MinWarm is how many isolates the edge keeps started for the server
	// entry of every deployment a project's environment points to.
	// Default 0 (isolates start on the first request).
	MinWarm int
	// ProjectMinWarm overrides MinWarm per project, by project ID or name.
	ProjectMinWarm map[string]int
	// CPUSlots bounds how many isolates run JavaScript at the same time
	// (isolate.Gate): requests beyond it queue for a slot, while calls
	// waiting on fetch or timers hold none. Default 0 means GOMAXPROCS;
	// negative means no limit. Ignored when Runtime.Gate is set (a gate
	// shared with other isolate users of the process).
	CPUSlots int
}

// maxScriptBytes bounds a code file the edge will compile.
const maxScriptBytes = 32 << 20

// maxCompileTime bounds a compile and its top-level run (and so the delay
// a looping top level adds to its deployment's sync).
const maxCompileTime = 10 * time.Second

// codeKey is a pool key: one code file of one deployment.
type codeKey struct{ deployment, file string }

// errPermanent marks compile failures that retrying cannot fix.
var errPermanent = errors.New("permanent")

// errGone: the deployment left the edge while a request for it waited.
var errGone = errors.New("deployment no longer held")

// errRequestTooLarge: the request body exceeded the runtime's limit.
var errRequestTooLarge = errors.New("request body too large")

// scriptSlot is one compile of a code file, shared by everyone who needs it.
type scriptSlot struct {
	done   chan struct{}
	script *isolate.Script
	err    error
}

// runner is the edge's code runtime: compiled scripts per code file and
// a warm pool of isolates over them.
type runner struct {
	s    *Server
	cfg  isolate.Config
	pool *warmpool.Pool[codeKey, *isolate.Runtime]
	log  *slog.Logger
	wg   sync.WaitGroup // compiles in flight

	mu      sync.Mutex
	scripts map[codeKey]*scriptSlot
	minWarm map[codeKey]int

	coldStarts atomic.Int64 // isolates started (cold or prewarm) and their total start time
	coldNanos  atomic.Int64
	compiles   atomic.Int64
	compileNs  atomic.Int64
	compileErr atomic.Int64
}

func newRunner(s *Server, ic IsolatesConfig, log *slog.Logger) *runner {
	r := &runner{
		s:       s,
		cfg:     ic.Runtime,
		log:     log,
		scripts: make(map[codeKey]*scriptSlot),
		minWarm: make(map[codeKey]int),
	}
	r.cfg.Logger = log.With("component", "edge.isolate")
	r.cfg.OnLog = nil
	if r.cfg.Timeout <= 0 {
		r.cfg.Timeout = isolate.DefaultConfig().Timeout
	}
	if r.cfg.MaxBodyBytes <= 0 {
		r.cfg.MaxBodyBytes = isolate.DefaultConfig().MaxBodyBytes
	}
	if r.cfg.Gate == nil && ic.CPUSlots >= 0 {
		r.cfg.Gate = isolate.NewGate(ic.CPUSlots)
	}
	r.pool = warmpool.New(warmpool.Config{MaxTotal: ic.Capacity, IdleTimeout: ic.IdleTimeout, Logger: log}, r.start)
	return r
}

// script returns the compiled code file of key, compiling it once per
// edge. m is the deployment's manifest; nil means the route table's. A
// failure that retrying cannot fix (the code does not compile, or throws
// or loops at its top level) is kept and returned to every later caller;
// others are retried by the next caller.
func (r *runner) script(ctx context.Context, key codeKey, m *edge.Manifest) (*isolate.Script, error) {
	sl, err := r.slot(key, m)
	if err != nil {
		return nil, err
	}
	select {
	case <-sl.done:
		return sl.script, sl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// slot returns key's compile, starting it if there is none.
func (r *runner) slot(key codeKey, m *edge.Manifest) (*scriptSlot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sl := r.scripts[key]; sl != nil {
		return sl, nil
	}
	if m == nil {
		if d := r.s.table.Load().deployments[key.deployment]; d != nil {
			m = d.m
		}
	}
	if m == nil {
		return nil, fmt.Errorf("deployment %s: %w", key.deployment, errGone)
	}
	sl := &scriptSlot{done: make(chan struct{})}
	r.scripts[key] = sl
	r.wg.Go(func() { r.compile(key, m, sl) })
	return sl, nil
}

func (r *runner) compile(key codeKey, m *edge.Manifest, sl *scriptSlot) {
	defer close(sl.done)
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.s.runCtx, min(r.cfg.Timeout, maxCompileTime))
	defer cancel()
	sl.script, sl.err = r.compileFile(ctx, m, key.file)
	permanent := errors.Is(sl.err, errPermanent) || errors.As(sl.err, new(*isolate.ScriptError)) ||
		errors.Is(sl.err, isolate.ErrTimeout) || errors.Is(sl.err, isolate.ErrHeapLimit)
	switch {
	case sl.err == nil:
		r.compiles.Add(1)
		r.compileNs.Add(int64(time.Since(start)))
		r.log.Debug("code compiled", "deployment", key.deployment, "file", key.file,
			"bytes", m.Files[key.file].Size, "code_cache", sl.script.CodeCacheBytes(), "took", time.Since(start))
	case permanent:
		r.compileErr.Add(1)
		r.log.Warn("deployment code does not load", "deployment", key.deployment, "file", key.file, "err", sl.err)
	default:
		r.mu.Lock()
		if r.scripts[key] == sl {
			delete(r.scripts, key) // the next caller tries again
		}
		r.mu.Unlock()
	}
}

// compileFile reads a code file from the local cache and compiles it.
func (r *runner) compileFile(ctx context.Context, m *edge.Manifest, name string) (*isolate.Script, error) {
	f, ok := m.Files[name]
	switch {
	case !ok:
		return nil, fmt.Errorf("code file %q is not a file of deployment %s: %w", name, m.DeploymentID, errPermanent)
	case f.Size > maxScriptBytes:
		return nil, fmt.Errorf("code file %q is larger than %d bytes: %w", name, maxScriptBytes, errPermanent)
	}
	fh, err := r.s.cache.Open(f.SHA256)
	if err != nil {
		return nil, fmt.Errorf("open code file %q: %w", name, err)
	}
	src, err := io.ReadAll(io.LimitReader(fh, f.Size+1))
	fh.Close()
	if err != nil {
		return nil, fmt.Errorf("read code file %q: %w", name, err)
	}
	return isolate.CompileWith(ctx, r.cfg, name, src)
}

// lease admits a request for key through the CPU gate and leases it an
// isolate (isolate.Admit): the request waits for a slot (counted against
// its timeout), then takes an idle isolate or starts one in that slot, so
// that CPU-bound traffic keeps about as many isolates busy as there are
// slots, and they stay hot, instead of one isolate per concurrent request.
// The slot goes with the call (isolate.WithSlot) and comes back to the
// caller, who releases it after the isolate is back in the pool. Calls
// that wait on fetch or timers give their slot back meanwhile, so
// I/O-bound traffic still gets an isolate per request. No slot is held
// while waiting on the pool, nor for the compile (which takes one itself).
func (r *runner) lease(ctx context.Context, key codeKey) (*warmpool.Lease[codeKey, *isolate.Runtime], *isolate.Slot, error) {
	if _, err := r.script(ctx, key, nil); err != nil {
		return nil, nil, err
	}
	return isolate.Admit(ctx, r.cfg.Gate, r.cfg.Timeout, func(ctx context.Context) (*warmpool.Lease[codeKey, *isolate.Runtime], <-chan struct{}, error) {
		return r.pool.TryGet(ctx, key)
	})
}

// start is the pool's NewFunc: a cold start of one isolate for key.
func (r *runner) start(ctx context.Context, key codeKey) (*isolate.Runtime, error) {
	script, err := r.script(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	if r.s.deps.Env != nil {
		if env, err = r.s.deps.Env(ctx, key.deployment); err != nil {
			return nil, fmt.Errorf("runtime variables of %s: %w", key.deployment, err)
		}
	}
	cfg := r.cfg
	if r.s.deps.Bindings != nil {
		cfg.Bindings = r.s.deps.Bindings(key.deployment)
	}
	console := r.log.With("component", "edge.console", "deployment", key.deployment)
	cfg.OnLog = func(e isolate.LogEntry) {
		console.Log(context.Background(), consoleLevel(e.Level), e.Message, "request_id", e.RequestID, "console", e.Level)
	}
	if sink := r.s.consoleSink(key.deployment); sink != nil {
		cfg.OnLog = sink // to control, not the edge's own log
	}
	cfg.OnLog = r.s.captureLogs(cfg.OnLog)               // and to the runs in progress
	rt, err := isolate.NewContext(ctx, cfg, script, env) // in the caller's CPU slot, if it has one
	if err != nil {
		return nil, err
	}
	r.coldStarts.Add(1)
	r.coldNanos.Add(int64(rt.Stats().ColdStart))
	return rt, nil
}

func consoleLevel(l string) slog.Level {
	switch l {
	case "error":
		return slog.LevelError
	case "warn":
		return slog.LevelWarn
	case "debug":
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// precompile compiles the code files of m ahead of its first request.
// Failures are logged (by compile) and served as errors later; they never
// hold the deployment back.
func (r *runner) precompile(ctx context.Context, m *edge.Manifest) {
	var slots []*scriptSlot
	for _, f := range codeFiles(m) {
		if sl, err := r.slot(codeKey{m.DeploymentID, f}, m); err == nil {
			slots = append(slots, sl)
		}
	}
	for _, sl := range slots {
		select {
		case <-sl.done:
		case <-ctx.Done():
			return
		}
	}
}

// codeFiles lists the code files of m, the server entry first.
func codeFiles(m *edge.Manifest) []string {
	var out []string
	if m.Server != nil {
		out = append(out, m.Server.Entry)
	}
	for _, f := range m.Functions {
		if m.Server == nil || f != m.Server.Entry {
			out = append(out, f)
		}
	}
	return out
}

// retain drops the scripts and isolates of every deployment keep refuses.
// The caller holds s.mu.
func (r *runner) retain(keep func(deploymentID string) bool) {
	r.mu.Lock()
	var drop []codeKey
	for k := range r.scripts {
		if !keep(k.deployment) {
			drop = append(drop, k)
			delete(r.scripts, k)
		}
	}
	for k := range r.minWarm {
		if !keep(k.deployment) {
			delete(r.minWarm, k)
		}
	}
	r.mu.Unlock()
	for _, k := range drop {
		r.pool.Evict(k)
	}
}

// setMinWarm applies the warm minimums for the deployments the projects'
// environments point to (their server entries), clearing the others.
func (r *runner) setMinWarm(t *table, ic IsolatesConfig) {
	want := make(map[codeKey]int)
	for name, st := range t.projects {
		n, ok := ic.ProjectMinWarm[st.projectID]
		if !ok {
			n, ok = ic.ProjectMinWarm[name]
		}
		if !ok {
			n = ic.MinWarm
		}
		if n <= 0 {
			continue
		}
		for _, d := range st.envs {
			if d.m.Server != nil {
				k := codeKey{d.m.DeploymentID, d.m.Server.Entry}
				want[k] = max(want[k], n)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.minWarm {
		if _, ok := want[k]; !ok {
			delete(r.minWarm, k)
			r.pool.SetMinWarm(k, 0)
		}
	}
	for k, n := range want {
		if r.minWarm[k] != n {
			r.minWarm[k] = n
			r.pool.SetMinWarm(k, n)
		}
	}
}

// IsolateStats describes the edge's code runtime since it started.
type IsolateStats struct {
	// ColdStarts counts isolates started for a request (the request waited);
	// WarmHits counts requests served by an idle isolate; Prewarms counts
	// isolates started ahead of requests to keep MinWarm.
	ColdStarts  uint64 `json:"cold_starts"`
	WarmHits    uint64 `json:"warm_hits"`
	Prewarms    uint64 `json:"prewarms"`
	StartErrors uint64 `json:"start_errors"`
	Evictions   uint64 `json:"evictions"`   // idle isolates closed to stay within Capacity
	Expirations uint64 `json:"expirations"` // idle isolates closed after IdleTimeout
	Discards    uint64 `json:"discards"`    // isolates closed because their deployment left the edge
	Live        int    `json:"live"`        // isolates now: idle, busy and starting
	Idle        int    `json:"idle"`
	// StartAvgMs is the mean start time of an isolate (cold or prewarm):
	// context, Web globals, script from the code cache and its top level.
	StartAvgMs float64 `json:"start_avg_ms"`
	// Compiled counts code files compiled on this edge, CompileAvgMs their
	// mean compile time (once per deployment per edge). CompileErrors
	// counts code files that failed to load (kept, not retried).
	Compiled      int64   `json:"compiled"`
	CompileAvgMs  float64 `json:"compile_avg_ms"`
	CompileErrors int64   `json:"compile_errors"`
	// CPUSlots is the capacity of the CPU gate (0: no gate), CPURunning
	// the slots held now and CPUWaits how many entries into JavaScript
	// found every slot taken and queued.
	CPUSlots   int    `json:"cpu_slots"`
	CPURunning int    `json:"cpu_running"`
	CPUWaits   uint64 `json:"cpu_waits"`
}

// IsolateStats returns the counters of the edge's code runtime.
func (s *Server) IsolateStats() IsolateStats {
	r := s.code
	ps := r.pool.Stats()
	st := IsolateStats{
		ColdStarts: ps.ColdStarts, WarmHits: ps.WarmHits, Prewarms: ps.Prewarms, StartErrors: ps.StartErrors,
		Evictions: ps.Evictions, Expirations: ps.Expirations, Discards: ps.Discards, Live: ps.Live, Idle: ps.Idle,
		Compiled: r.compiles.Load(), CompileErrors: r.compileErr.Load(),
	}
	gs := r.cfg.Gate.Stats()
	st.CPUSlots, st.CPURunning, st.CPUWaits = gs.Slots, gs.Running, gs.Waits
	if n := r.coldStarts.Load(); n > 0 {
		st.StartAvgMs = float64(r.coldNanos.Load()) / float64(n) / 1e6
	}
	if st.Compiled > 0 {
		st.CompileAvgMs = float64(r.compileNs.Load()) / float64(st.Compiled) / 1e6
	}
	return st
}

// codeFor picks what answers r in deployment m: a code file to run, or
// "" for the static files. Static files come first for GET and HEAD (a
// path that names a file is served as that file, unless the file is
// code); then the longest matching function route; then the server entry.
// hidden reports a path that names a code file and that no code answers:
// it must be a 404, never the file.
func codeFor(m *edge.Manifest, r *http.Request) (file string, hidden bool) {
	if m.Server == nil && len(m.Functions) == 0 {
		return "", false
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if name, ok := static.Lookup(m, r.URL.Path); ok {
			if !m.Code(name) {
				return "", false
			}
			hidden = true
		}
	}
	if f := matchFunction(m.Functions, r.URL.Path); f != "" {
		return f, false
	}
	if m.Server != nil {
		return m.Server.Entry, false
	}
	return "", hidden
}

// matchFunction returns the file of the route that matches urlPath best:
// an exact route, else the prefix route ("/api/*") with the longest base.
func matchFunction(routes map[string]string, urlPath string) string {
	if len(routes) == 0 {
		return ""
	}
	p := path.Clean("/" + urlPath)
	if f, ok := routes[p]; ok && !strings.HasSuffix(p, "/*") {
		return f
	}
	best, bestLen := "", -1
	for route, f := range routes {
		base, ok := strings.CutSuffix(route, "/*")
		if !ok || len(base) <= bestLen {
			continue
		}
		if base == "" || p == base || strings.HasPrefix(p, base+"/") {
			best, bestLen = f, len(base)
		}
	}
	return best
}

// serveCode runs code file of deployment m for the request and writes its
// response, or an error with the request id.
func (s *Server) serveCode(w http.ResponseWriter, r *http.Request, m *edge.Manifest, file string) {
	reqID := requestID(r)
	r.Header.Set("X-Request-Id", reqID)
	w.Header().Set("X-Request-Id", reqID)
	ctx := r.Context()
	key := codeKey{m.DeploymentID, file}

	// The body is read before the request takes a CPU slot, so that a
	// slow client never holds one.
	if r.Body != nil && r.Body != http.NoBody {
		limit := s.code.cfg.MaxBodyBytes
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err == nil && int64(len(body)) > limit {
			err = errRequestTooLarge
		}
		if err != nil {
			s.codeError(w, r, m, reqID, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	acquire := time.Now()
	lease, slot, err := s.code.lease(ctx, key)
	if err != nil {
		s.codeError(w, r, m, reqID, err)
		return
	}
	noteCode(r, reqID, lease.Cold(), time.Since(acquire))
	res, err := lease.Value().Serve(isolate.WithSlot(ctx, slot), r, reqID)
	if errors.Is(err, isolate.ErrClosed) {
		lease.Discard()
	} else {
		lease.Release()
	}
	slot.Release() // after the isolate is back: the next request finds it idle
	if err != nil {
		s.codeError(w, r, m, reqID, err)
		return
	}
	if res.Status < 200 || res.Status > 599 {
		s.codeError(w, r, m, reqID, fmt.Errorf("response status %d: %w", res.Status, errBadResponse))
		return
	}
	h := w.Header()
	for k, vs := range res.Header {
		if !hopByHop[http.CanonicalHeaderKey(k)] {
			h[http.CanonicalHeaderKey(k)] = vs
		}
	}
	h.Set("X-Pier-Edge", s.cfg.ID)
	h.Set("X-Pier-Deployment", m.DeploymentID)
	h.Set("X-Request-Id", reqID)
	if res.Status == http.StatusNoContent || res.Status == http.StatusNotModified {
		h.Del("Content-Length")
		w.WriteHeader(res.Status)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(res.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(res.Body)
	}
}

// errBadResponse: the script answered with something HTTP cannot carry.
var errBadResponse = errors.New("invalid response from the server code")

// hopByHop are the headers a response from deployment code may not set:
// they describe the connection, which the edge owns.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Connection": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

// codeError is the one place a code runtime error becomes a response.
// Bodies never carry the script's own error text (it is the deployment
// owner's, and goes to the edge log with the request id).
func (s *Server) codeError(w http.ResponseWriter, r *http.Request, m *edge.Manifest, reqID string, err error) {
	log := s.log.With("deployment", m.DeploymentID, "request_id", reqID, "host", r.Host, "path", r.URL.Path)
	var (
		code      = http.StatusInternalServerError
		kind, msg = "internal", "internal error"
		level     = slog.LevelError
		scriptErr *isolate.ScriptError
		gone      = r.Context().Err() != nil
	)
	switch {
	case gone:
		log.Debug("request canceled while running server code", "err", err)
		return // nobody is listening
	case errors.Is(err, isolate.ErrTimeout):
		code, kind, msg, level = http.StatusGatewayTimeout, "timeout", "the server code did not answer in time", slog.LevelWarn
	case errors.Is(err, isolate.ErrHeapLimit):
		kind, msg, level = "memory_limit", "the server code exceeded its memory limit", slog.LevelWarn
	case errors.Is(err, errRequestTooLarge):
		code, kind, msg, level = http.StatusRequestEntityTooLarge, "too_large", "the request body is too large", slog.LevelInfo
	case errors.Is(err, isolate.ErrBodyTooLarge):
		kind, msg, level = "response_too_large", "the server code's response is too large", slog.LevelWarn
	case errors.Is(err, isolate.ErrNoEntry):
		kind, msg, level = "no_entry", "the server code has no fetch handler (export default { fetch })", slog.LevelWarn
	case errors.Is(err, errBadResponse):
		kind, msg, level = "bad_response", "the server code returned an invalid response", slog.LevelWarn
	case errors.As(err, &scriptErr):
		kind, msg, level = "script_error", "the server code failed", slog.LevelWarn
	case errors.Is(err, warmpool.ErrClosed), errors.Is(err, errStopping), errors.Is(err, errGone):
		code, kind, msg, level = http.StatusServiceUnavailable, "unavailable", "this edge is shutting down, try again", slog.LevelInfo
		w.Header().Set("Retry-After", "1")
	}
	if scriptErr != nil {
		log.Log(r.Context(), level, "server code error", "err", err, "stack", scriptErr.Stack)
	} else {
		log.Log(r.Context(), level, "server code error", "err", err)
	}
	writeJSON(w, code, errorBody{Error: errorDetail{Code: kind, Message: msg, RequestID: reqID}})
}

// requestID returns the request's X-Request-Id when it is a sane token,
// else a new random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 && !strings.ContainsFunc(id, func(c rune) bool {
		return c <= ' ' || c >= 0x7f || c == '"' || c == '\\'
	}) {
		return id
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
