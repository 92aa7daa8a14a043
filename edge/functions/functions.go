// Package functions is the seed's functions API, served on the edge's V8
// runtime (edge/isolate) with warm isolates per function (edge/warmpool):
//
//	POST   /deploy       {"code": "function handler(data) { … }"} (or the
//	                     code itself as the body) → {"id": "…"}; the function
//	                     is compiled and one isolate started before it answers
//	POST   /invoke/{id}  a JSON body → the handler's JSON result
//	DELETE /delete/{id}  → {"success": true}; frees its isolates
//	GET    /functions    → {"functions": [{"id", "created_at", "invocations"}]}
//
// The code defines handler(data) (sync or async; a classic script or a
// module exporting handler). Errors are {"error": "…"} with the script's
// own message (the caller is the code's author): a timeout answers 504
// {"error": "Execution timeout (30s)"} and the function's isolate serves the
// next call. Functions live in memory: they do not survive a restart.
//
// The API runs arbitrary code: serve it on loopback, behind the control
// API's authentication, or with Config.Token. Only control/cmd/pier and
// tests import it. Imports: edge/isolate, edge/warmpool.
package functions

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pierhq/pier/edge/isolate"
	"github.com/pierhq/pier/edge/warmpool"
)

// Config configures the API.
type Config struct {
	// Runtime holds the limits of every function's isolates. Zero fields
	// take isolate.DefaultConfig's (a 30 s timeout, 128 MB of heap, public
	// outbound fetch only). Runtime.Gate, when set, is the CPU gate the
	// functions share with the rest of the process (the edge's): calls are
	// admitted through it before they lease an isolate, and compiles and
	// cold starts run under it. nil: no limit.
	Runtime isolate.Config
	// Pool sizes the warm isolates of all functions together
	// (warmpool.DefaultConfig: 64, idle ones closed after 5 minutes).
	Pool warmpool.Config
	// MaxFunctions bounds the functions deployed at once. Default 1,000.
	MaxFunctions int
	// MaxCodeBytes bounds the code of one function. Default 5 MiB.
	MaxCodeBytes int64
	// DeployTimeout bounds compiling a function and running its top level.
	// Default 10 s.
	DeployTimeout time.Duration
	// Token, if set, must come as "Authorization: Bearer <Token>" on every
	// request.
	Token string
	// Logger: nil discards. Console output of functions goes here at debug
	// level, with the function id.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Runtime:       isolate.DefaultConfig(),
		Pool:          warmpool.DefaultConfig(),
		MaxFunctions:  1000,
		MaxCodeBytes:  5 << 20,
		DeployTimeout: 10 * time.Second,
	}
}

// API is the functions API, an http.Handler. Create it with New, run its
// pool with Run.
type API struct {
	cfg  Config
	log  *slog.Logger
	pool *warmpool.Pool[string, *isolate.Runtime]
	mux  *http.ServeMux

	mu    sync.Mutex
	funcs map[string]*function
}

type function struct {
	id          string
	script      *isolate.Script
	created     time.Time
	invocations atomic.Int64
}

var _ http.Handler = (*API)(nil)

// New returns an API. It starts nothing.
func New(cfg Config) *API {
	def := DefaultConfig()
	if cfg.Runtime.Timeout <= 0 {
		cfg.Runtime.Timeout = def.Runtime.Timeout
	}
	if cfg.Runtime.MaxBodyBytes <= 0 {
		cfg.Runtime.MaxBodyBytes = def.Runtime.MaxBodyBytes
	}
	if cfg.MaxFunctions <= 0 {
		cfg.MaxFunctions = def.MaxFunctions
	}
	if cfg.MaxCodeBytes <= 0 {
		cfg.MaxCodeBytes = def.MaxCodeBytes
	}
	if cfg.DeployTimeout <= 0 {
		cfg.DeployTimeout = def.DeployTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, log: log.With("component", "functions"), funcs: make(map[string]*function)}
	a.cfg.Runtime.Logger = a.log
	a.cfg.Pool.Logger = a.log
	a.pool = warmpool.New(a.cfg.Pool, a.start)
	a.mux = http.NewServeMux()
	a.mux.HandleFunc("POST /deploy", a.deploy)
	a.mux.HandleFunc("POST /invoke/{id}", a.invoke)
	a.mux.HandleFunc("DELETE /delete/{id}", a.remove)
	a.mux.HandleFunc("GET /functions", a.list)
	return a
}

// Run keeps the warm pool (expiring idle isolates) until ctx ends, then
// closes every isolate. It returns nil on cancellation.
func (a *API) Run(ctx context.Context) error { return a.pool.Run(ctx) }

// Close closes every isolate now; later calls fail with 503.
func (a *API) Close() error { return a.pool.Close() }

// Stats returns the warm pool's counters: cold starts and warm hits are
// counted separately.
func (a *API) Stats() warmpool.Stats { return a.pool.Stats() }

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
	}
	a.mux.ServeHTTP(w, r)
}

// start is the pool's NewFunc: a cold start of one isolate for function
// id, in the caller's CPU slot if it has one.
func (a *API) start(ctx context.Context, id string) (*isolate.Runtime, error) {
	a.mu.Lock()
	f := a.funcs[id]
	a.mu.Unlock()
	if f == nil {
		return nil, errNotFound
	}
	cfg := a.cfg.Runtime
	log := a.log.With("function", id)
	cfg.OnLog = func(e isolate.LogEntry) { log.Debug(e.Message, "console", e.Level) }
	return isolate.NewContext(ctx, cfg, f.script, nil)
}

var errNotFound = errors.New("function not found")

type deployRequest struct {
	Code string `json:"code"`
}

type deployResponse struct {
	ID string `json:"id"`
}

func (a *API) deploy(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, a.cfg.MaxCodeBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "Could not read the request body")
		return
	}
	if int64(len(body)) > a.cfg.MaxCodeBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Code is larger than %d bytes", a.cfg.MaxCodeBytes))
		return
	}
	code := string(body)
	// {"code": ...} is JSON whatever the Content-Type says (curl -d sends a
	// form type); no JavaScript program can begin that way.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" || strings.HasPrefix(strings.TrimSpace(code), "{\"code\"") {
		var req deployRequest
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, `Body must be {"code": "..."}`)
			return
		}
		code = req.Code
	}
	if strings.TrimSpace(code) == "" {
		writeError(w, http.StatusBadRequest, "No code given")
		return
	}

	id := newID()
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.DeployTimeout)
	defer cancel()
	ccfg := a.cfg.Runtime // its limits and CPU gate, the deploy's time limit
	ccfg.Timeout = a.cfg.DeployTimeout
	script, err := isolate.CompileWith(ctx, ccfg, "function-"+id+".js", []byte(code))
	if err != nil {
		a.fail(w, r, id, err)
		return
	}
	f := &function{id: id, script: script, created: time.Now().UTC()}
	a.mu.Lock()
	if len(a.funcs) >= a.cfg.MaxFunctions {
		a.mu.Unlock()
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("Too many functions deployed (%d): delete some first", a.cfg.MaxFunctions))
		return
	}
	a.funcs[id] = f
	a.mu.Unlock()

	// Ready means warm: one isolate is started before the id is returned.
	lease, err := a.pool.Get(ctx, id)
	if err != nil {
		a.drop(id)
		a.fail(w, r, id, err)
		return
	}
	lease.Release()
	a.log.Info("function deployed", "function", id, "bytes", len(code), "compile", script.CompileTime())
	writeJSON(w, http.StatusOK, deployResponse{ID: id})
}

func (a *API) invoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a.mu.Lock()
	f := a.funcs[id]
	a.mu.Unlock()
	if f == nil {
		writeError(w, http.StatusNotFound, "Function not found")
		return
	}
	input, err := io.ReadAll(io.LimitReader(r.Body, a.cfg.Runtime.MaxBodyBytes+1))
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, "Could not read the request body")
		return
	case int64(len(input)) > a.cfg.Runtime.MaxBodyBytes:
		writeError(w, http.StatusRequestEntityTooLarge, "Request body too large")
		return
	case len(strings.TrimSpace(string(input))) > 0 && !json.Valid(input):
		writeError(w, http.StatusBadRequest, "Body must be JSON")
		return
	}
	// Admission through the CPU gate before the lease, as on the edge
	// (isolate.Admit): the body is read already, so no slow client holds a
	// slot.
	ctx := r.Context()
	lease, slot, err := isolate.Admit(ctx, a.cfg.Runtime.Gate, a.cfg.Runtime.Timeout,
		func(ctx context.Context) (*warmpool.Lease[string, *isolate.Runtime], <-chan struct{}, error) {
			return a.pool.TryGet(ctx, id)
		})
	if err != nil {
		a.fail(w, r, id, err)
		return
	}
	f.invocations.Add(1)
	out, err := lease.Value().Invoke(isolate.WithSlot(ctx, slot), input)
	if errors.Is(err, isolate.ErrClosed) {
		lease.Discard()
	} else {
		lease.Release()
	}
	slot.Release() // after the isolate is back: the next call finds it idle
	if err != nil {
		a.fail(w, r, id, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(out)
}

func (a *API) remove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !a.drop(id) {
		writeError(w, http.StatusNotFound, "Function not found")
		return
	}
	a.log.Info("function deleted", "function", id)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "id": id})
}

// drop forgets function id and closes its isolates (busy ones when their
// call ends). It reports whether the function existed.
func (a *API) drop(id string) bool {
	a.mu.Lock()
	_, ok := a.funcs[id]
	delete(a.funcs, id)
	a.mu.Unlock()
	if ok {
		a.pool.Evict(id)
	}
	return ok
}

type listEntry struct {
	ID          string    `json:"id"`
	CreatedAt   time.Time `json:"created_at"`
	Invocations int64     `json:"invocations"`
}

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	out := make([]listEntry, 0, len(a.funcs))
	for _, f := range a.funcs {
		out = append(out, listEntry{ID: f.id, CreatedAt: f.created, Invocations: f.invocations.Load()})
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y listEntry) int { return x.CreatedAt.Compare(y.CreatedAt) })
	writeJSON(w, http.StatusOK, map[string]any{"functions": out})
}

// fail is the one place an error becomes a response. The script's own
// messages are shown: the caller is the code's author.
func (a *API) fail(w http.ResponseWriter, r *http.Request, id string, err error) {
	var se *isolate.ScriptError
	code, msg := http.StatusInternalServerError, "Internal error"
	switch {
	case r.Context().Err() != nil:
		return // the client is gone
	case errors.Is(err, errNotFound):
		code, msg = http.StatusNotFound, "Function not found"
	case errors.Is(err, isolate.ErrTimeout):
		code, msg = http.StatusGatewayTimeout, timeoutText(err)
	case errors.Is(err, isolate.ErrHeapLimit):
		msg = "Memory limit exceeded"
	case errors.Is(err, isolate.ErrNoEntry):
		code, msg = http.StatusBadRequest, "The code does not define handler(data)"
	case errors.Is(err, isolate.ErrBodyTooLarge):
		msg = "Result too large"
	case errors.Is(err, warmpool.ErrClosed):
		code, msg = http.StatusServiceUnavailable, "Shutting down"
	case errors.As(err, &se):
		msg = se.Message
		if r.URL.Path == "/deploy" {
			code = http.StatusBadRequest
		}
	case errors.Is(err, context.DeadlineExceeded):
		code, msg = http.StatusGatewayTimeout, fmt.Sprintf("Execution timeout (%s)", a.cfg.DeployTimeout)
	}
	if code >= 500 {
		a.log.Warn("function call failed", "function", id, "path", r.URL.Path, "err", err)
	} else {
		a.log.Debug("function call refused", "function", id, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, msg)
}

// timeoutText is the seed's message, "Execution timeout (30s)".
func timeoutText(err error) string {
	var te *isolate.TimeoutError
	if errors.As(err, &te) {
		return te.Error()
	}
	return "Execution timeout"
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
