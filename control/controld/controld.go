// Package controld is the control role: it serves the REST API and runs
// the deployment workers until its context ends, then shuts both down
// gracefully.
//
// Imports: control/deploy. Started by control/cmd/pier.
package controld

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pierhq/pier/control/deploy"
)

// Config tunes the control role.
type Config struct {
	// ShutdownTimeout bounds the graceful stop of the HTTP server; default 10s.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
}

// Deps are what the role runs.
type Deps struct {
	API    http.Handler
	Deploy *deploy.Service
}

// Server is the control role.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
}

// New returns a Server; Run starts it.
func New(cfg Config, deps Deps) *Server {
	if deps.API == nil || deps.Deploy == nil {
		panic("controld.New: nil dependency")
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, deps: deps, log: cfg.Logger.With("component", "controld")}
}

// Run serves the API on ln and runs the build workers until ctx ends.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.deps.API,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.log.Info("api listening", "addr", ln.Addr().String())
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	go func() {
		defer wg.Done()
		if err := s.deps.Deploy.Run(wctx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- err
		}
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopWorkers()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
	}
	wg.Wait()
	return err
}
