package api

import (
	"compress/gzip"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/telemetry"
	"github.com/pierhq/pier/edge"
)

// Runtime logs, request metrics, and the live build log.
//
//	POST /v1/telemetry                 an edge's batch (bearer: the telemetry token)
//	GET  /v1/projects/{p}/logs         runtime logs; ?follow=1 streams them (SSE)
//	GET  /v1/projects/{p}/metrics      request metrics series
//	GET  /v1/deployments/{d}/logs?follow=1   the build log as SSE until the build ends

// maxTelemetryBody bounds an edge batch after decompression.
const maxTelemetryBody = 64 << 20

// followPoll is how often a follower looks for new records.
const followPoll = 300 * time.Millisecond

// followPing is how often an idle stream gets a comment, so proxies and
// clients see it alive.
const followPing = 15 * time.Second

func (s *Server) routeTelemetry(e *gin.Engine, read *gin.RouterGroup) {
	if s.deps.Telemetry == nil {
		return
	}
	e.POST("/v1/telemetry", s.telemetryAuth, s.handle(s.ingestTelemetry))
	read.GET("/projects/:project/logs", s.runtimeLogs)
	read.GET("/projects/:project/metrics", s.handle(s.metrics))
}

// telemetryAuth admits edges: their bearer token is the configured
// telemetry token (never an API token, which could do more).
func (s *Server) telemetryAuth(c *gin.Context) {
	tok, _ := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if s.cfg.TelemetryToken == "" || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.cfg.TelemetryToken)) != 1 {
		c.Header("WWW-Authenticate", `Bearer realm="pier-telemetry"`)
		writeError(c, http.StatusUnauthorized, "unauthorized", "missing or wrong telemetry token (edge.telemetry_token must equal control.telemetry_token)")
		c.Abort()
		return
	}
	c.Next()
}

func (s *Server) ingestTelemetry(c *gin.Context) (int, any, error) {
	var body io.Reader = http.MaxBytesReader(c.Writer, c.Request.Body, maxTelemetryBody)
	if strings.EqualFold(c.GetHeader("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: %v", errBadJSON, err)
		}
		defer zr.Close()
		body = io.LimitReader(zr, maxTelemetryBody+1)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return 0, nil, fmt.Errorf("a telemetry batch is at most %d bytes: %w", maxTelemetryBody, errTooLarge)
		}
		return 0, nil, fmt.Errorf("%w: %v", errBadJSON, err)
	}
	if len(raw) > maxTelemetryBody {
		return 0, nil, fmt.Errorf("a telemetry batch is at most %d bytes: %w", maxTelemetryBody, errTooLarge)
	}
	var b edge.TelemetryBatch
	if err := json.Unmarshal(raw, &b); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", errBadJSON, err)
	}
	if err := s.deps.Telemetry.Ingest(c.Request.Context(), &b); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// parseTime reads an RFC 3339 time or a duration before now ("15m").
func parseTime(field, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, control.Invalid(field, "want an RFC 3339 time or a duration before now like 15m, not %q", v)
	}
	return t, nil
}

func (s *Server) logQuery(c *gin.Context) (control.LogQuery, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return control.LogQuery{}, err
	}
	now := time.Now()
	q := control.LogQuery{ProjectID: p.ID, DeploymentID: c.Query("deployment"), Text: c.Query("q")}
	if q.Since, err = parseTime("since", c.Query("since"), now); err != nil {
		return q, err
	}
	if q.Until, err = parseTime("until", c.Query("until"), now); err != nil {
		return q, err
	}
	if v := c.Query("level"); v != "" {
		for l := range strings.SplitSeq(v, ",") {
			q.Levels = append(q.Levels, strings.ToLower(strings.TrimSpace(l)))
		}
	}
	n, err := queryLimit(c, 0, 0)
	if err != nil {
		return q, err
	}
	q.Limit = n
	cursor := c.Query("after")
	if id := c.GetHeader("Last-Event-ID"); id != "" {
		cursor = id
	}
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 0 {
			return q, control.Invalid("after", "must be a log record id (a non-negative number)")
		}
		q.AfterID = n
	}
	return q, nil
}

// runtimeLogs answers a log query as JSON, or with ?follow=1 streams the
// matching records as server-sent events (event "log", id = record id,
// data = the record as JSON) until the client goes: the newest records
// first (up to limit), then every new one. A client reconnecting with
// Last-Event-ID (or ?after=ID) resumes after that record.
func (s *Server) runtimeLogs(c *gin.Context) {
	q, err := s.logQuery(c)
	if err == nil && q.Limit == 0 {
		q.Limit = 100
	}
	var entries []control.LogEntry
	if err == nil {
		entries, err = s.deps.Telemetry.Logs(c.Request.Context(), q)
	}
	if err != nil {
		code, kind, msg := s.statusOf(c, err)
		writeError(c, code, kind, msg)
		return
	}
	if !isFollow(c) {
		c.JSON(http.StatusOK, gin.H{"logs": entries})
		return
	}
	ctx := c.Request.Context()
	sse := startSSE(c)
	poll := time.NewTicker(followPoll)
	defer poll.Stop()
	for {
		for _, e := range entries {
			raw, _ := json.Marshal(e)
			sse.event("log", strconv.FormatInt(e.ID, 10), raw)
			q.AfterID = e.ID
		}
		sse.flush()
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		sse.pingIfIdle()
		// With no record seen yet (AfterID 0) this asks for the newest:
		// all of them are new.
		if entries, err = s.deps.Telemetry.Logs(ctx, q); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("follow runtime logs", "err", err)
				sse.event("error", "", []byte(`{"message":"internal error; see the control log"}`))
			}
			return
		}
	}
}

func isFollow(c *gin.Context) bool { return c.Query("follow") == "1" || c.Query("follow") == "true" }

func (s *Server) metrics(c *gin.Context) (int, any, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	now := time.Now()
	q := telemetry.MetricsQuery{ProjectID: p.ID, DeploymentID: c.Query("deployment")}
	if q.Since, err = parseTime("since", c.Query("since"), now); err != nil {
		return 0, nil, err
	}
	if q.Until, err = parseTime("until", c.Query("until"), now); err != nil {
		return 0, nil, err
	}
	if v := c.Query("step"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, nil, control.Invalid("step", "want a duration like 10s or 1m, not %q", v)
		}
		q.Step = d
	}
	series, err := s.deps.Telemetry.Metrics(c.Request.Context(), q)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, series, nil
}

// followBuildLog streams a deployment's build log as server-sent events
// from offset: event "log" with id = the byte offset after the chunk and
// data {"offset":start,"text":chunk}, then event "end" with the
// deployment's final state once the build is over and the log drained.
// Last-Event-ID (an offset) resumes a dropped stream.
func (s *Server) followBuildLog(c *gin.Context, id string, offset int64) {
	ctx := c.Request.Context()
	if v := c.GetHeader("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(c, http.StatusBadRequest, "invalid", "Last-Event-ID: must be a log offset (a non-negative number)")
			return
		}
		offset = n
	}
	chunk, err := s.deps.Deploy.Log(ctx, id, offset)
	if err != nil {
		code, kind, msg := s.statusOf(c, err)
		writeError(c, code, kind, msg)
		return
	}
	sse := startSSE(c)
	poll := time.NewTicker(followPoll)
	defer poll.Stop()
	for {
		if len(chunk) > 0 {
			raw, _ := json.Marshal(struct {
				Offset int64  `json:"offset"`
				Text   string `json:"text"`
			}{offset, string(chunk)})
			offset += int64(len(chunk))
			sse.event("log", strconv.FormatInt(offset, 10), raw)
		}
		sse.flush()
		d, err := s.deps.Deploy.Deployment(ctx, id)
		if err != nil {
			return
		}
		final := d.State.Final()
		if chunk, err = s.deps.Deploy.Log(ctx, id, offset); err != nil {
			return
		}
		if final && len(chunk) == 0 {
			raw, _ := json.Marshal(gin.H{"state": d.State, "error": d.Error, "offset": offset})
			sse.event("end", strconv.FormatInt(offset, 10), raw)
			sse.flush()
			return
		}
		if len(chunk) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		sse.pingIfIdle()
		if chunk, err = s.deps.Deploy.Log(ctx, id, offset); err != nil {
			return
		}
	}
}

// sseWriter writes server-sent events.
type sseWriter struct {
	c    *gin.Context
	last time.Time
}

func startSSE(c *gin.Context) *sseWriter {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	c.Writer.Flush()
	return &sseWriter{c: c, last: time.Now()}
}

// event writes one event; data must hold no newline (JSON does not).
func (w *sseWriter) event(name, id string, data []byte) {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("event: " + name + "\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	_, _ = w.c.Writer.WriteString(b.String())
	w.last = time.Now()
}

func (w *sseWriter) flush() { w.c.Writer.Flush() }

func (w *sseWriter) pingIfIdle() {
	if time.Since(w.last) >= followPing {
		_, _ = w.c.Writer.WriteString(": ping\n\n")
		w.c.Writer.Flush()
		w.last = time.Now()
	}
}
