package edged

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/isolate"
	"github.com/pierhq/pier/edge/telemetry"
)

// Telemetry receives what the edge observes: one record per request served
// for a deployment, and the console calls of its server code. Both calls
// must return at once (no I/O); *telemetry.Collector satisfies it.
type Telemetry interface {
	Request(a telemetry.Access)
	Console(c telemetry.Console)
}

var _ Telemetry = (*telemetry.Collector)(nil)

// reqNote collects what the handlers learn about a request (which
// deployment answered, how) for its access record.
type reqNote struct {
	projectID, deploymentID string
	requestID               string
	code, cold              bool
	acquire                 time.Duration
	static, lazy            bool
}

type reqNoteKey struct{}

func noteOf(r *http.Request) *reqNote {
	n, _ := r.Context().Value(reqNoteKey{}).(*reqNote)
	return n
}

// noteDeployment records the deployment that answers r.
func noteDeployment(r *http.Request, m *edge.Manifest, static bool) {
	if n := noteOf(r); n != nil {
		n.projectID, n.deploymentID, n.static = m.ProjectID, m.DeploymentID, static
	}
}

// noteLazy records that r waited for its deployment to be loaded.
func noteLazy(r *http.Request) {
	if n := noteOf(r); n != nil {
		n.lazy = true
	}
}

// noteCode records how server code got its isolate.
func noteCode(r *http.Request, requestID string, cold bool, acquire time.Duration) {
	if n := noteOf(r); n != nil {
		n.code, n.cold, n.acquire, n.requestID = true, cold, acquire, requestID
	}
}

// observe wraps a request so that, when it is done, its access record
// goes to the telemetry collector (requests that reached no deployment,
// like /healthz, are not recorded).
func (s *Server) observe(lw *logWriter, r *http.Request, start time.Time) (*http.Request, func()) {
	n := &reqNote{}
	r = r.WithContext(context.WithValue(r.Context(), reqNoteKey{}, n))
	return r, func() {
		if n.deploymentID == "" {
			return
		}
		s.deps.Telemetry.Request(telemetry.Access{
			Time: start, ProjectID: n.projectID, DeploymentID: n.deploymentID, RequestID: n.requestID,
			Method: r.Method, Host: r.Host, Path: r.URL.Path, Status: lw.status, Duration: time.Since(start),
			Code: n.code, Cold: n.cold, Acquire: n.acquire, Static: n.static, CacheHit: !n.lazy,
		})
	}
}

// consoleSink returns the OnLog hook of an isolate of deploymentID: its
// console calls go to the collector with the request id.
func (s *Server) consoleSink(deploymentID string) func(isolate.LogEntry) {
	if s.deps.Telemetry == nil {
		return nil
	}
	var project atomic.Pointer[string]
	return func(e isolate.LogEntry) {
		p := project.Load()
		if p == nil {
			id := ""
			if d := s.table.Load().deployments[deploymentID]; d != nil {
				id = d.m.ProjectID
			}
			p = &id
			if id != "" {
				project.Store(p)
			}
		}
		s.deps.Telemetry.Console(telemetry.Console{Time: e.Time, ProjectID: *p, DeploymentID: deploymentID,
			RequestID: e.RequestID, Level: e.Level, Message: e.Message})
	}
}
