// Package edged is the edge role: one HTTP server that routes by Host to
// the active deployment of a project and serves its files from the local
// content-addressed cache. "Spin up, sync, serve": it listens first (with
// /healthz answering 503), syncs every active and every announced
// deployment, marks each ready, joins the edge pool, and only then reports
// healthy; afterwards it follows the coordination state, syncing new
// deployments and switching an immutable route table atomically.
//
// One process may run several edges, each with its own ID, port and cache
// directory. Only the composition root (control/cmd/pier) and tests import
// it. Imports: edge, edge/cache, edge/static, edge/coord (for its types),
// edge/isolate and edge/warmpool.
//
// Deployments with server code (edge.Manifest Server and Functions) are
// served "static first": a GET or HEAD whose path names a file gets the
// file; anything else runs the matching function, else the server entry,
// in a V8 isolate kept warm per deployment (code.go).
package edged

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierhq/pier/edge/cache"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/isolate"
	"github.com/pierhq/pier/edge/warmpool"
)

// Production is the environment a bare <project>.<base> host serves.
const Production = "production"

// Config configures one edge. Zero fields take DefaultConfig's values,
// except ID and CacheDir, which are required.
type Config struct {
	ID         string
	Addr       string // listen address, e.g. "127.0.0.1:8080" or ":0"
	HTTPSAddr  string // HTTPS listen address; "" or no Deps.TLS: none
	BaseDomain string // "localhost" in dev: <project>.localhost, <deployment-id>.<project>.localhost
	CacheDir   string
	Logger     *slog.Logger // nil: discard

	// SyncConcurrency bounds the deployments synced at once (each Sync
	// also fetches up to 16 blobs at once).
	SyncConcurrency int
	// KeepPrevious is how many formerly active deployments per project
	// stay cached, for instant rollback and skew protection.
	KeepPrevious int
	// MaxLazy is how many deployments reached only through
	// <deployment-id>.<project> hosts stay cached (least recently used go).
	MaxLazy int
	// LazyTimeout bounds the sync behind a first request to a
	// deployment-id host.
	LazyTimeout time.Duration
	// RetryMin and RetryMax bound the backoff for failed syncs, readiness
	// writes and joins.
	RetryMin, RetryMax time.Duration
	// ShutdownTimeout bounds the graceful shutdown of the HTTP server.
	ShutdownTimeout time.Duration
	// Isolates configures the runtime of deployments' server code.
	Isolates IsolatesConfig
	// RunToken is the bearer token of POST /_pier/run, through which
	// control runs scheduled functions on this edge; "" disables it.
	RunToken string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Addr:            ":8080",
		BaseDomain:      "localhost",
		SyncConcurrency: 4,
		KeepPrevious:    3,
		MaxLazy:         32,
		LazyTimeout:     time.Minute,
		RetryMin:        250 * time.Millisecond,
		RetryMax:        30 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		Isolates: IsolatesConfig{
			Runtime:     isolate.DefaultConfig(),
			Capacity:    warmpool.DefaultConfig().MaxTotal,
			IdleTimeout: warmpool.DefaultConfig().IdleTimeout,
		},
	}
}

// Coordinator is the edge's view of edge/coord; *coord.Coordinator
// satisfies it.
type Coordinator interface {
	Snapshot(ctx context.Context) (coord.State, error)
	Watch(ctx context.Context, fn func(coord.State)) error
	Join(ctx context.Context, e coord.EdgeInfo) (*coord.Membership, error)
	MarkReady(ctx context.Context, deploymentID, edgeID string) error
}

var _ Coordinator = (*coord.Coordinator)(nil)

// Deps are the edge's ports; Coord and Blobs are required.
type Deps struct {
	Coord Coordinator
	Blobs cache.Source
	// Env returns the runtime variables of a deployment, handed to its
	// server code as env (never as globals). It is called for every
	// isolate start. nil: an empty env.
	Env func(ctx context.Context, deploymentID string) (map[string]string, error)
	// Bindings returns the env bindings (env.DATA, …) of a deployment's
	// server code, called for every isolate start. nil: none.
	Bindings func(deploymentID string) map[string]isolate.Binding
	// Hosts routes verified custom domains; nil: none. TLS serves HTTPS
	// on HTTPSAddr; nil: plain HTTP only (https.go).
	Hosts Hosts
	TLS   TLS
	// Telemetry receives access records and console logs; nil: none.
	Telemetry Telemetry
	// Metrics is the registry the edge's Prometheus metrics join and
	// /metrics serves; nil: a registry of its own.
	Metrics *prometheus.Registry
}

// Server is one edge. Create it with New and start it with Run.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	cache *cache.Cache // set by Run before anything uses it
	table atomic.Pointer[table]
	code  *runner

	metrics http.Handler // /metrics
	runs    sync.Map     // run id → *runLogs: console capture of runs in progress

	addr      atomic.Pointer[string]
	httpsAddr atomic.Pointer[string]
	ready     chan struct{}
	readyOnce sync.Once
	// synced: every live deployment was held once; /healthz answers 200
	// from then on (the edge can serve), even before it joins the pool.
	synced  atomic.Bool
	isReady atomic.Bool
	started atomic.Bool

	runCtx context.Context // for lazy syncs, which outlive their request

	mu sync.Mutex // guards the model below; never held while serving
	model

	flightMu sync.Mutex
	flights  map[string]*flight // lazy loads in progress, by deployment ID and project
	lazyWG   sync.WaitGroup
	stopping bool
}

// New validates cfg and returns an edge. It starts nothing and does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Coord == nil || deps.Blobs == nil {
		panic("edged: New with nil Coord or Blobs")
	}
	def := DefaultConfig()
	if cfg.ID == "" {
		return nil, errors.New("edged: an edge id is required")
	}
	if cfg.CacheDir == "" {
		return nil, errors.New("edged: a cache directory is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = def.Addr
	}
	cfg.BaseDomain = strings.Trim(strings.ToLower(cfg.BaseDomain), ".")
	if cfg.BaseDomain == "" {
		cfg.BaseDomain = def.BaseDomain
	}
	if cfg.SyncConcurrency <= 0 {
		cfg.SyncConcurrency = def.SyncConcurrency
	}
	if cfg.KeepPrevious <= 0 {
		cfg.KeepPrevious = def.KeepPrevious
	}
	if cfg.MaxLazy <= 0 {
		cfg.MaxLazy = def.MaxLazy
	}
	if cfg.LazyTimeout <= 0 {
		cfg.LazyTimeout = def.LazyTimeout
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = def.RetryMin
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = def.RetryMax
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = def.ShutdownTimeout
	}
	if cfg.Isolates.Capacity <= 0 {
		cfg.Isolates.Capacity = def.Isolates.Capacity
	}
	if cfg.Isolates.IdleTimeout <= 0 {
		cfg.Isolates.IdleTimeout = def.Isolates.IdleTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg,
		deps:    deps,
		log:     log.With("component", "edge", "edge", cfg.ID),
		ready:   make(chan struct{}),
		flights: make(map[string]*flight),
		model:   newModel(),
	}
	s.code = newRunner(s, cfg.Isolates, s.log)
	s.metrics = newMetrics(deps.Metrics, s)
	s.table.Store(emptyTable)
	return s, nil
}

// Addr is the address the edge listens on ("" until it does); it is set
// before Ready is closed.
func (s *Server) Addr() string {
	if p := s.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Ready is closed once the edge listens, holds every active deployment
// and has joined the pool.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run listens, syncs, joins and serves until ctx ends, then leaves the
// pool and shuts the HTTP server down gracefully. It returns nil after a
// clean shutdown, or the error that stopped it.
//
// Run may be called once per Server.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("edged: Run called twice")
	}
	c, err := cache.New(cache.Config{Dir: s.cfg.CacheDir, Logger: s.log}, s.deps.Blobs)
	if err != nil {
		return fmt.Errorf("edge %s: %w", s.cfg.ID, err)
	}
	s.cache = c

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("edge %s: listen on %s: %w", s.cfg.ID, s.cfg.Addr, err)
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.runCtx = ctx

	srv := &http.Server{
		Handler:           s.plainHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	s.log.Info("edge listening", "addr", addr, "base_domain", s.cfg.BaseDomain)
	stopHTTPS, err := s.serveHTTPS(ctx, serveErr)
	if err != nil {
		_ = srv.Close()
		return err
	}

	// The isolate pool outlives the loop: it closes after the HTTP server
	// has finished the requests in flight.
	poolCtx, stopPool := context.WithCancel(context.WithoutCancel(ctx))
	poolDone := make(chan struct{})
	go func() {
		defer close(poolDone)
		_ = s.code.pool.Run(poolCtx)
	}()
	defer func() {
		stopPool()
		<-poolDone
		s.code.wg.Wait()
	}()

	var wg sync.WaitGroup
	loopErr := make(chan error, 1)
	wg.Go(func() { loopErr <- s.loop(ctx, &wg) })

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("edge %s: serve: %w", s.cfg.ID, err)
		cancel()
	}
	wg.Wait() // the loop leaves the pool before returning
	s.flightMu.Lock()
	s.stopping = true // no lazy load starts after this
	s.flightMu.Unlock()
	s.lazyWG.Wait()
	if err := <-loopErr; err != nil && runErr == nil {
		runErr = err
	}

	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("graceful shutdown cut short", "err", err)
		_ = srv.Close()
	}
	stopHTTPS(sctx)
	s.log.Info("edge stopped")
	return runErr
}

// loop owns the coordination side: watch, sync, mark ready, join, rejoin.
func (s *Server) loop(ctx context.Context, wg *sync.WaitGroup) error {
	states := newMailbox()

	// The initial snapshot: the watch below also starts with the current
	// state, but a snapshot failure is worth retrying on its own.
	bo := s.backoff()
	for {
		st, err := s.deps.Coord.Snapshot(ctx)
		if err == nil {
			states.put(st)
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("read coordination state", "err", err)
		if !sleep(ctx, bo.next()) {
			return nil
		}
	}

	wg.Go(func() {
		bo := s.backoff()
		for {
			err := s.deps.Coord.Watch(ctx, states.put)
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("coordination watch ended; restarting", "err", err)
			if !sleep(ctx, bo.next()) {
				return
			}
		}
	})

	// The reconciler syncs, marks ready and evicts in the background, so
	// pointer switches to deployments already held never wait for a sync.
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	results := make(chan bool)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
			}
			ok := s.reconcile(ctx)
			select {
			case results <- ok:
			case <-ctx.Done():
				return
			}
		}
	})

	var (
		retry      = s.backoff()
		retryTimer *time.Timer
		retryC     <-chan time.Time
		member     *coord.Membership
		lost       <-chan struct{}
		joining    bool
		joined     = make(chan *coord.Membership, 1)
	)
	defer func() {
		if retryTimer != nil {
			retryTimer.Stop()
		}
		if member != nil {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := member.Leave(lctx); err != nil {
				s.log.Warn("leave edge pool", "err", err)
			} else {
				s.log.Info("left edge pool")
			}
		}
	}()

	for {
		select {
		case <-ctx.Done():
			// A join in flight ends with ctx; if it succeeded first, leave.
			if joining {
				if m := <-joined; m != nil {
					member = m
				}
			}
			return nil
		case <-states.notify:
			s.setState(states.take())
			poke()
			continue
		case <-retryC:
			retryC = nil
			poke()
			continue
		case ok := <-results:
			if ok {
				retry.reset()
			} else if ctx.Err() == nil && retryC == nil {
				retryC = s.schedule(&retryTimer, retry.next())
			}
		case m := <-joined:
			joining = false
			if m == nil { // the join failed; retry after a pause
				if retryC == nil {
					retryC = s.schedule(&retryTimer, retry.next())
				}
				continue
			}
			member, lost = m, m.Lost()
			s.log.Info("joined edge pool", "addr", s.Addr())
			s.readyOnce.Do(func() {
				s.isReady.Store(true)
				close(s.ready)
			})
			continue
		case <-lost:
			s.log.Warn("edge pool membership lost; resyncing and rejoining")
			member, lost = nil, nil
			s.mu.Lock()
			clear(s.marked) // re-confirm readiness before rejoining
			s.mu.Unlock()
			poke()
			continue
		}
		// A reconcile finished: join once every live deployment is held.
		// Health turns green first: a pool that admits only healthy edges
		// (Consul sessions bound to the edge's health check) needs it so.
		if !s.synced.Load() && s.joinable() {
			s.synced.Store(true)
		}
		if member == nil && !joining && s.joinable() {
			joining = true
			wg.Go(func() { joined <- s.join(ctx) })
		}
	}
}

func (s *Server) join(ctx context.Context) *coord.Membership {
	m, err := s.deps.Coord.Join(ctx, coord.EdgeInfo{ID: s.cfg.ID, Addr: s.Addr(), JoinedAt: time.Now().UTC()})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("join edge pool", "err", err)
		}
		return nil
	}
	return m
}

func (s *Server) schedule(t **time.Timer, d time.Duration) <-chan time.Time {
	if *t == nil {
		*t = time.NewTimer(d)
	} else {
		(*t).Reset(d)
	}
	return (*t).C
}

// mailbox hands the newest coordination state to the loop: put never
// blocks, and states the loop had no time for are skipped.
type mailbox struct {
	mu     sync.Mutex
	st     coord.State
	notify chan struct{}
}

func newMailbox() *mailbox { return &mailbox{notify: make(chan struct{}, 1)} }

func (m *mailbox) put(st coord.State) {
	m.mu.Lock()
	m.st = st
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

func (m *mailbox) take() coord.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

type backoff struct{ min, max, cur time.Duration }

func (s *Server) backoff() *backoff { return &backoff{min: s.cfg.RetryMin, max: s.cfg.RetryMax} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
