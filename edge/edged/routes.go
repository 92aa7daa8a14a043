package edged

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/static"
)

// table is an immutable routing snapshot: requests load it atomically
// and take no locks.
type table struct {
	projects    map[string]*site       // by lowercase project name
	deployments map[string]*deployment // every whole deployment the edge holds, by ID
	count       int
}

var emptyTable = &table{projects: map[string]*site{}, deployments: map[string]*deployment{}}

// site is one routed project.
type site struct {
	projectID string
	envs      map[string]*deployment // environment -> served deployment
	all       []*deployment          // every deployment of the project held, newest first
}

type deployment struct {
	m    *edge.Manifest
	used *atomic.Int64 // lazily loaded ones: last use, for eviction
}

// belongs reports whether m is a deployment of the project named by a
// host label.
func (t *table) belongs(m *edge.Manifest, project string) bool {
	if st := t.projects[project]; st != nil {
		return m.ProjectID == st.projectID
	}
	return m.ProjectName != "" && strings.EqualFold(m.ProjectName, project)
}

// ServeHTTP routes by Host:
//
//	<project>.<base>                  the project's production deployment
//	<environment>.<project>.<base>    another environment's deployment
//	<deployment-id>.<project>.<base>  that deployment, if it is the project's
//	anything else                     /healthz, or 404 "no such project"
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// One status-recording writer serves both the debug log and the
	// access record.
	debug := s.log.Enabled(r.Context(), slog.LevelDebug)
	if debug || s.deps.Telemetry != nil {
		lw := &logWriter{ResponseWriter: w, status: http.StatusOK}
		w = lw
		start := time.Now()
		if debug {
			defer func() {
				s.log.Debug("request", "method", r.Method, "host", r.Host, "path", r.URL.Path,
					"status", lw.status, "deployment", lw.Header().Get("X-Pier-Deployment"),
					"bytes", lw.n, "took", time.Since(start))
			}()
		}
		if s.deps.Telemetry != nil {
			var done func()
			r, done = s.observe(lw, r, start) // access records: telemetry.go
			defer done()
		}
	}
	w.Header().Set("X-Pier-Edge", s.cfg.ID)

	labels, ok := s.siteLabels(r.Host)
	if !ok {
		labels, ok = s.customSite(r.Host)
	}
	t := s.table.Load()
	if len(labels) == 1 && t.projects[labels[0]] == nil {
		// The flat form <sub>--<project>.<base>: one label, so the
		// operator's *.<base> certificate covers it.
		if sub, project, found := strings.Cut(labels[0], edge.FlatSeparator); found && sub != "" && project != "" {
			labels = []string{sub, project}
		}
	}
	switch {
	case !ok:
		s.serveEdge(w, r)
	case len(labels) == 1:
		st := t.projects[labels[0]]
		if st == nil {
			s.noProject(w)
			return
		}
		d := st.envs[Production]
		if d == nil {
			writeError(w, http.StatusNotFound, "not_found", "this project has no production deployment")
			return
		}
		s.serveSite(w, r, d, st)
	case len(labels) == 2:
		s.serveSub(w, r, t, labels[0], labels[1])
	default:
		s.noProject(w)
	}
}

// siteLabels returns the labels of host before the base domain; ok is
// false for hosts outside it (IP addresses, the base domain itself).
func (s *Server) siteLabels(host string) ([]string, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	rest, ok := strings.CutSuffix(host, "."+s.cfg.BaseDomain)
	if !ok || rest == "" {
		return nil, false
	}
	labels := strings.Split(rest, ".")
	for _, l := range labels {
		if l == "" {
			return []string{}, true // "a..localhost": routes nowhere
		}
	}
	return labels, true
}

// serveSub serves <sub>.<project>.<base>: an environment, else a deployment ID.
func (s *Server) serveSub(w http.ResponseWriter, r *http.Request, t *table, sub, project string) {
	st := t.projects[project]
	if st != nil {
		if d := st.envs[sub]; d != nil {
			s.serveSite(w, r, d, st)
			return
		}
	}
	d := t.deployments[sub]
	if d == nil {
		var err error
		d, err = s.lazyLoad(r.Context(), sub, project)
		switch {
		case errors.Is(err, errNoDeployment):
			writeError(w, http.StatusNotFound, "not_found", "no such deployment")
			return
		case err != nil:
			if r.Context().Err() == nil {
				s.log.Warn("load deployment on demand", "deployment", sub, "host", r.Host, "err", err)
			}
			w.Header().Set("Retry-After", "2")
			writeError(w, http.StatusServiceUnavailable, "unavailable", "this deployment is not available yet, try again shortly")
			return
		}
		noteLazy(r)
	} else if !t.belongs(d.m, project) {
		writeError(w, http.StatusNotFound, "not_found", "no such deployment")
		return
	}
	if d.used != nil {
		d.used.Store(time.Now().UnixNano())
	}
	s.serveDeployment(w, r, d.m)
}

// serveDeployment answers r from deployment m: a static file, else its
// server code (see codeFor), else the static fallbacks (SPA, 404 page).
func (s *Server) serveDeployment(w http.ResponseWriter, r *http.Request, m *edge.Manifest) {
	w.Header().Set("X-Pier-Deployment", m.DeploymentID)
	file, hidden := codeFor(m, r)
	noteDeployment(r, m, file == "")
	switch {
	case file != "":
		s.serveCode(w, r, m, file)
	case hidden:
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.Error(w, "not found", http.StatusNotFound)
	default:
		static.Serve(w, r, m, s.cache)
	}
}

// serveSite serves a project's active deployment d with skew protection:
// a hashed asset that d lacks is served from the newest other deployment
// of the project this edge holds that has it, so HTML from just before a
// switch still gets its own assets.
func (s *Server) serveSite(w http.ResponseWriter, r *http.Request, d *deployment, st *site) {
	if len(st.all) > 1 && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if _, ok := static.Lookup(d.m, r.URL.Path); !ok && static.Hashed(strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")) {
			for _, o := range st.all {
				if o == d {
					continue
				}
				if name, ok := static.Lookup(o.m, r.URL.Path); ok && !o.m.Code(name) {
					w.Header().Set("X-Pier-Deployment", o.m.DeploymentID)
					noteDeployment(r, o.m, true)
					static.Serve(w, r, o.m, s.cache)
					return
				}
			}
		}
	}
	s.serveDeployment(w, r, d.m)
}

// serveEdge answers requests that name no site: /healthz, /stats, else 404.
func (s *Server) serveEdge(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		s.health(w)
	case "/metrics":
		s.metrics.ServeHTTP(w, r)
	case runPath:
		s.serveRun(w, r)
	case "/stats":
		writeJSON(w, http.StatusOK, statsBody{Edge: s.cfg.ID, Deployments: s.table.Load().count, Isolates: s.IsolateStats()})
	default:
		s.noProject(w)
	}
}

type statsBody struct {
	Edge        string       `json:"edge"`
	Deployments int          `json:"deployments"`
	Isolates    IsolateStats `json:"isolates"`
}

func (s *Server) noProject(w http.ResponseWriter) {
	if !s.isReady.Load() {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "starting", "this edge is starting")
		return
	}
	writeError(w, http.StatusNotFound, "not_found", "no such project")
}

type healthBody struct {
	Status      string `json:"status"` // "ok" or "starting"
	Edge        string `json:"edge"`
	Deployments int    `json:"deployments"`
}

func (s *Server) health(w http.ResponseWriter) {
	b := healthBody{Status: "ok", Edge: s.cfg.ID, Deployments: s.table.Load().count}
	code := http.StatusOK
	if !s.isReady.Load() && !s.synced.Load() {
		b.Status, code = "starting", http.StatusServiceUnavailable
	}
	writeJSON(w, code, b)
}

// errorBody is every error the edge answers itself:
// {"error":{"code":"…","message":"…","request_id":"…"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

func writeError(w http.ResponseWriter, code int, kind, msg string) {
	writeJSON(w, code, errorBody{Error: errorDetail{Code: kind, Message: msg}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// logWriter records the status and size of a response for the debug
// request log. It forwards ReadFrom so files still go out with sendfile.
type logWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	n           int64
}

func (l *logWriter) WriteHeader(code int) {
	if !l.wroteHeader {
		l.status, l.wroteHeader = code, true
	}
	l.ResponseWriter.WriteHeader(code)
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.wroteHeader = true
	n, err := l.ResponseWriter.Write(b)
	l.n += int64(n)
	return n, err
}

func (l *logWriter) ReadFrom(src io.Reader) (int64, error) {
	l.wroteHeader = true
	n, err := io.Copy(l.ResponseWriter, src)
	l.n += n
	return n, err
}

func (l *logWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }
