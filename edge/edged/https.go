package edged

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Hosts maps verified custom domains to the project they serve
// (edge/hosts.Table satisfies it). Hosts are asked lowercase, without a
// port or a trailing dot.
type Hosts interface {
	Project(host string) (name string, ok bool)
}

// TLS gives the edge its HTTPS side (edge/certs.Manager satisfies it): the
// listener's TLS config (certificates by SNI) and a wrapper for the plain
// HTTP handler (ACME HTTP-01 challenges, redirects to HTTPS).
type TLS interface {
	TLSConfig() *tls.Config
	HTTPHandler(next http.Handler) http.Handler
}

// customSite routes a custom domain to its project's production
// deployment, as if it were <project>.<base>.
func (s *Server) customSite(host string) ([]string, bool) {
	if s.deps.Hosts == nil {
		return nil, false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if name, ok := s.deps.Hosts.Project(strings.TrimSuffix(strings.ToLower(host), ".")); ok {
		return []string{name}, true
	}
	return nil, false
}

// plainHandler is the handler of the HTTP listener.
func (s *Server) plainHandler() http.Handler {
	if s.deps.TLS == nil || s.cfg.HTTPSAddr == "" {
		return s
	}
	return s.deps.TLS.HTTPHandler(s)
}

// HTTPSAddr is the address the HTTPS listener listens on ("" when there
// is none, or until it does).
func (s *Server) HTTPSAddr() string {
	if p := s.httpsAddr.Load(); p != nil {
		return *p
	}
	return ""
}

// serveHTTPS starts the HTTPS listener when one is configured, reporting
// a serve error on errc. The returned function shuts it down.
func (s *Server) serveHTTPS(ctx context.Context, errc chan<- error) (func(context.Context), error) {
	if s.deps.TLS == nil || s.cfg.HTTPSAddr == "" {
		return func(context.Context) {}, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.HTTPSAddr)
	if err != nil {
		return nil, fmt.Errorf("edge %s: listen on %s: %w", s.cfg.ID, s.cfg.HTTPSAddr, err)
	}
	addr := ln.Addr().String()
	s.httpsAddr.Store(&addr)
	srv := &http.Server{
		Handler:           s,
		TLSConfig:         s.deps.TLS.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
			select {
			case errc <- fmt.Errorf("edge %s: serve https: %w", s.cfg.ID, err):
			default: // the plain listener failed first
			}
		}
	}()
	s.log.Info("edge listening (https)", "addr", addr)
	return func(ctx context.Context) {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
	}, nil
}
