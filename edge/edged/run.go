package edged

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/isolate"
)

// runPath is the edge's endpoint for control to run one function of a
// deployment it holds (scheduled functions): POST with an
// edge.RunRequest, bearer Config.RunToken. It is answered only on hosts
// that name no project, like /healthz.
const runPath = "/_pier/run"

// maxRunLogs bounds the console lines a run returns.
const maxRunLogs = 200

// runLogs collects the console output of one run.
type runLogs struct {
	mu   sync.Mutex
	logs []edge.RunLog
	lost int
}

func (l *runLogs) add(e isolate.LogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.logs) >= maxRunLogs {
		l.lost++
		return
	}
	l.logs = append(l.logs, edge.RunLog{Time: e.Time, Level: e.Level, Message: e.Message})
}

// captureLogs wraps an isolate's OnLog so that the console calls of runs
// in progress (by request id) also go to their collectors.
func (s *Server) captureLogs(next func(isolate.LogEntry)) func(isolate.LogEntry) {
	return func(e isolate.LogEntry) {
		if e.RequestID != "" {
			if l, ok := s.runs.Load(e.RequestID); ok {
				l.(*runLogs).add(e)
			}
		}
		if next != nil {
			next(e)
		}
	}
}

func (s *Server) serveRun(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.cfg.RunToken == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.RunToken)) != 1 {
		writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong run token")
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "POST only")
		return
	}
	var req edge.RunRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, s.code.cfg.MaxBodyBytes+1))
	if err == nil && int64(len(body)) > s.code.cfg.MaxBodyBytes {
		err = errors.New("too large")
	}
	if err != nil || json.Unmarshal(body, &req) != nil || req.DeploymentID == "" || req.Function == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "want {deployment_id, function, event, run_id}")
		return
	}
	d := s.table.Load().deployments[req.DeploymentID]
	if d == nil || d.m.Server == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("deployment %s: %v", req.DeploymentID, edge.ErrNoSuchDeployment))
		return
	}
	if req.RunID == "" {
		req.RunID = requestID(r)
	}
	logs := &runLogs{}
	s.runs.Store(req.RunID, logs)
	defer s.runs.Delete(req.RunID)

	start := time.Now()
	res := edge.RunResult{Edge: s.cfg.ID}
	lease, slot, err := s.code.lease(r.Context(), codeKey{d.m.DeploymentID, d.m.Server.Entry})
	if err == nil {
		var out json.RawMessage
		out, err = lease.Value().Call(isolate.WithSlot(r.Context(), slot), req.Function, req.Event, req.RunID)
		if errors.Is(err, isolate.ErrClosed) {
			lease.Discard()
		} else {
			lease.Release()
		}
		slot.Release()
		res.Result = out
	}
	res.Duration = time.Since(start)
	if err != nil {
		res.Error = runError(err)
		s.log.Info("run failed", "deployment", req.DeploymentID, "function", req.Function, "run", req.RunID, "err", err)
	}
	logs.mu.Lock()
	res.Logs = append([]edge.RunLog{}, logs.logs...)
	if logs.lost > 0 {
		res.Logs = append(res.Logs, edge.RunLog{Time: time.Now(), Level: "warn", Message: fmt.Sprintf("(%d more console lines dropped)", logs.lost)})
	}
	logs.mu.Unlock()
	writeJSON(w, http.StatusOK, res)
}

// runError is the user-safe text of a run's failure: the deployment's
// own error (it is the owner's code), or the kind of limit it hit.
func runError(err error) string {
	var se *isolate.ScriptError
	switch {
	case errors.As(err, &se):
		return se.Message
	case errors.Is(err, isolate.ErrTimeout):
		return "the function did not finish in time"
	case errors.Is(err, isolate.ErrHeapLimit):
		return "the function exceeded its memory limit"
	case errors.Is(err, isolate.ErrNoEntry):
		return err.Error()
	}
	return "the function could not run on this edge"
}
