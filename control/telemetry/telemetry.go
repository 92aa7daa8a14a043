// Package telemetry is control's side of runtime logs and request metrics:
// it ingests the batches edges ship (edge.TelemetryBatch), stores them
// through the store's Telemetry part, answers log queries and merges the
// edges' DDSketches into metric series, and prunes what is older than the
// retention.
//
// Imports: control, edge (the wire contract) and sketches-go. Reached by
// control/api; main runs its pruner.
package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

// Store is what the service needs of the metadata store;
// control.Store satisfies it.
type Store interface {
	control.Telemetry
}

// Config configures the service.
type Config struct {
	// Retention is how long logs and metrics are kept; default 7 days.
	Retention time.Duration
	// PruneInterval is how often Run prunes; default 10 minutes.
	PruneInterval time.Duration
	// MaxBatchLogs and MaxBatchBuckets bound one edge batch.
	MaxBatchLogs    int
	MaxBatchBuckets int
	// MaxMessage bounds a stored log message, in bytes (longer is cut).
	MaxMessage int
	Logger     *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Retention: 7 * 24 * time.Hour, PruneInterval: 10 * time.Minute,
		MaxBatchLogs: 20000, MaxBatchBuckets: 20000, MaxMessage: 8 << 10}
}

// Service ingests and queries telemetry.
type Service struct {
	cfg   Config
	store Store
	log   *slog.Logger
}

// New returns a Service; it starts nothing.
func New(cfg Config, store Store) *Service {
	if store == nil {
		panic("telemetry.New: nil store")
	}
	def := DefaultConfig()
	if cfg.Retention <= 0 {
		cfg.Retention = def.Retention
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = def.PruneInterval
	}
	if cfg.MaxBatchLogs <= 0 {
		cfg.MaxBatchLogs = def.MaxBatchLogs
	}
	if cfg.MaxBatchBuckets <= 0 {
		cfg.MaxBatchBuckets = def.MaxBatchBuckets
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = def.MaxMessage
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, store: store, log: cfg.Logger.With("component", "control.telemetry")}
}

// Run prunes rows older than the retention every PruneInterval (and once
// at start) until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		if n, err := s.Prune(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("prune telemetry", "err", err)
		} else if n > 0 {
			s.log.Debug("pruned telemetry", "rows", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Prune deletes what is older than now minus the retention.
func (s *Service) Prune(ctx context.Context, now time.Time) (int64, error) {
	return s.store.PruneTelemetry(ctx, now.Add(-s.cfg.Retention))
}

var levels = map[string]bool{"debug": true, "info": true, "warn": true, "error": true}

// Ingest validates and stores one batch from an edge. A bad batch is
// refused whole (a *control.ValidationError) and nothing of it is stored.
func (s *Service) Ingest(ctx context.Context, b *edge.TelemetryBatch) error {
	if b.Edge == "" || len(b.Edge) > 128 {
		return control.Invalid("edge", "is required (at most 128 characters)")
	}
	if len(b.Logs) > s.cfg.MaxBatchLogs {
		return control.Invalid("logs", "at most %d records per batch", s.cfg.MaxBatchLogs)
	}
	if len(b.Metrics) > s.cfg.MaxBatchBuckets {
		return control.Invalid("metrics", "at most %d buckets per batch", s.cfg.MaxBatchBuckets)
	}
	entries := make([]control.LogEntry, 0, len(b.Logs))
	for i, r := range b.Logs {
		field := "logs[" + strconv.Itoa(i) + "]"
		switch {
		case r.Kind != edge.LogConsole && r.Kind != edge.LogAccess:
			return control.Invalid(field+".kind", "must be console or access, not %q", r.Kind)
		case !levels[r.Level]:
			return control.Invalid(field+".level", "must be debug, info, warn or error, not %q", r.Level)
		case r.ProjectID == "" || r.DeploymentID == "":
			return control.Invalid(field, "project_id and deployment_id are required")
		case r.Time.IsZero():
			return control.Invalid(field+".time", "is required")
		}
		msg := r.Message
		if len(msg) > s.cfg.MaxMessage {
			msg = msg[:s.cfg.MaxMessage]
		}
		entries = append(entries, control.LogEntry{ProjectID: r.ProjectID, DeploymentID: r.DeploymentID, Edge: b.Edge,
			Time: r.Time.UTC(), Kind: r.Kind, Level: r.Level, RequestID: cut(r.RequestID, 128), Message: msg,
			Method: cut(r.Method, 16), Host: cut(r.Host, 255), Path: cut(r.Path, 2048), Status: r.Status,
			DurationUS: r.DurationUS, Start: cut(r.Start, 8)})
	}
	rows := make([]control.MetricRow, 0, len(b.Metrics))
	for i, m := range b.Metrics {
		field := "metrics[" + strconv.Itoa(i) + "]"
		if m.ProjectID == "" || m.DeploymentID == "" || m.Start.IsZero() || m.WidthSeconds <= 0 || m.Requests < 0 {
			return control.Invalid(field, "project_id, deployment_id, start, a positive width_s and requests are required")
		}
		for name, sk := range map[string][]byte{"latency": m.Latency, "cold_sketch": m.ColdSketch, "warm_sketch": m.WarmSketch} {
			if _, err := decode(sk); err != nil {
				return control.Invalid(field+"."+name, "is not a DDSketch: %v", err)
			}
		}
		m.Start = m.Start.UTC()
		raw, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		rows = append(rows, control.MetricRow{ProjectID: m.ProjectID, DeploymentID: m.DeploymentID, Edge: b.Edge, Bucket: m.Start, Data: raw})
	}
	if err := s.store.AppendMetrics(ctx, rows); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if err := s.store.AppendLogs(ctx, entries); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if b.Dropped > 0 {
		s.log.Warn("an edge dropped runtime log records (its buffer was full)", "edge", b.Edge, "dropped", b.Dropped)
	}
	return nil
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// decode decodes a shipped sketch; an empty one is nil.
func decode(b []byte) (sk *ddsketch.DDSketch, err error) {
	if len(b) == 0 {
		return nil, nil
	}
	defer func() {
		if r := recover(); r != nil { // the decoder trusts its input
			sk, err = nil, fmt.Errorf("corrupt sketch: %v", r)
		}
	}()
	return ddsketch.DecodeDDSketch(b, store.BufferedPaginatedStoreConstructor, nil)
}

// MaxLogLimit bounds one log query.
const MaxLogLimit = 1000

// Logs answers a log query (q.ProjectID must be a project ID).
func (s *Service) Logs(ctx context.Context, q control.LogQuery) ([]control.LogEntry, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if q.Limit > MaxLogLimit {
		return nil, control.Invalid("limit", "at most %d", MaxLogLimit)
	}
	for _, l := range q.Levels {
		if !levels[l] {
			return nil, control.Invalid("level", "must be debug, info, warn or error, not %q", l)
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return nil, control.Invalid("since", "must be before until")
	}
	out, err := s.store.QueryLogs(ctx, q)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []control.LogEntry{}
	}
	return out, nil
}

// MetricsQuery selects a metric series.
type MetricsQuery struct {
	ProjectID    string // a project ID
	DeploymentID string // "": every deployment of the project
	Since, Until time.Time
	Step         time.Duration
}

// MaxPoints bounds a series.
const MaxPoints = 1000

// Quantiles are latency percentiles in milliseconds, within the sketches'
// relative accuracy.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// Point is the metrics of one step, merged over every edge.
type Point struct {
	Start        time.Time        `json:"start"`
	Requests     int64            `json:"requests"`
	Rate         float64          `json:"rate"` // requests per second over the step
	Status       map[string]int64 `json:"status"`
	Errors       int64            `json:"errors"` // 5xx
	LatencyMs    *Quantiles       `json:"latency_ms,omitempty"`
	ColdStarts   int64            `json:"cold_starts"`
	ColdMs       *Quantiles       `json:"cold_ms,omitempty"` // time to get a freshly started isolate
	WarmStarts   int64            `json:"warm_starts"`
	WarmMs       *Quantiles       `json:"warm_ms,omitempty"` // time to get an idle isolate
	Static       int64            `json:"static"`
	StaticHits   int64            `json:"static_hits"`
	CacheHitRate *float64         `json:"cache_hit_rate,omitempty"`
	Edges        []string         `json:"edges,omitempty"`
}

// Series is a metric series with its total over the whole range.
type Series struct {
	ProjectID    string    `json:"project_id"`
	DeploymentID string    `json:"deployment_id,omitempty"`
	Since        time.Time `json:"since"`
	Until        time.Time `json:"until"`
	StepSeconds  int       `json:"step_s"`
	Points       []Point   `json:"points"`
	Total        Point     `json:"total"`
}

// acc accumulates the buckets of one point.
type acc struct {
	p               Point
	lat, cold, warm *ddsketch.DDSketch
	edges           map[string]bool
}

func (a *acc) add(row control.MetricRow, m *edge.MetricBucket) error {
	a.p.Requests += m.Requests
	for code, n := range m.Status {
		a.p.Status[code] += int64(n)
		if strings.HasPrefix(code, "5") {
			a.p.Errors += int64(n)
		}
	}
	a.p.ColdStarts += m.Cold
	a.p.WarmStarts += m.Warm
	a.p.Static += m.Static
	a.p.StaticHits += m.StaticHits
	a.edges[row.Edge] = true
	for _, x := range []struct {
		dst **ddsketch.DDSketch
		b   []byte
	}{{&a.lat, m.Latency}, {&a.cold, m.ColdSketch}, {&a.warm, m.WarmSketch}} {
		sk, err := decode(x.b)
		if err != nil || sk == nil {
			continue // validated on ingest
		}
		if *x.dst == nil {
			*x.dst = sk
		} else if err := (*x.dst).MergeWith(sk); err != nil {
			return fmt.Errorf("merge sketches: %w", err)
		}
	}
	return nil
}

func quantiles(sk *ddsketch.DDSketch) *Quantiles {
	if sk == nil || sk.IsEmpty() {
		return nil
	}
	v, err := sk.GetValuesAtQuantiles([]float64{0.5, 0.95, 0.99})
	if err != nil {
		return nil
	}
	return &Quantiles{P50: v[0], P95: v[1], P99: v[2]}
}

func (a *acc) finish(seconds float64) Point {
	p := a.p
	if seconds > 0 {
		p.Rate = float64(p.Requests) / seconds
	}
	p.LatencyMs, p.ColdMs, p.WarmMs = quantiles(a.lat), quantiles(a.cold), quantiles(a.warm)
	if p.Static > 0 {
		r := float64(p.StaticHits) / float64(p.Static)
		p.CacheHitRate = &r
	}
	for e := range a.edges {
		p.Edges = append(p.Edges, e)
	}
	sort.Strings(p.Edges)
	return p
}

func newAcc(start time.Time) *acc {
	return &acc{p: Point{Start: start, Status: map[string]int64{}}, edges: map[string]bool{}}
}

// Metrics merges every edge's buckets into a series of q.Step steps.
// Since is aligned down to a multiple of the step; a bucket counts in the
// step its start falls in.
func (s *Service) Metrics(ctx context.Context, q MetricsQuery) (*Series, error) {
	now := time.Now().UTC()
	if q.Until.IsZero() {
		q.Until = now
	}
	if q.Since.IsZero() {
		q.Since = q.Until.Add(-time.Hour)
	}
	if !q.Since.Before(q.Until) {
		return nil, control.Invalid("since", "must be before until")
	}
	if q.Step == 0 {
		q.Step = max(10*time.Second, (q.Until.Sub(q.Since) / 60).Round(10*time.Second))
	}
	if q.Step < time.Second || q.Step%time.Second != 0 {
		return nil, control.Invalid("step", "must be a whole number of seconds, at least 1s")
	}
	q.Since = q.Since.Truncate(q.Step)
	n := int((q.Until.Sub(q.Since) + q.Step - 1) / q.Step)
	if n > MaxPoints {
		return nil, control.Invalid("step", "the range has %d steps of %s; at most %d: use a larger step", n, q.Step, MaxPoints)
	}
	rows, err := s.store.QueryMetrics(ctx, q.ProjectID, q.DeploymentID, q.Since, q.Until)
	if err != nil {
		return nil, err
	}
	points := make([]*acc, n)
	for i := range points {
		points[i] = newAcc(q.Since.Add(time.Duration(i) * q.Step))
	}
	total := newAcc(q.Since)
	for _, row := range rows {
		var m edge.MetricBucket
		if err := json.Unmarshal(row.Data, &m); err != nil {
			s.log.Warn("unreadable metric row", "project", row.ProjectID, "err", err)
			continue
		}
		i := int(row.Bucket.Sub(q.Since) / q.Step)
		if i < 0 || i >= n {
			continue
		}
		if err := points[i].add(row, &m); err != nil {
			return nil, err
		}
		if err := total.add(row, &m); err != nil {
			return nil, err
		}
	}
	out := &Series{ProjectID: q.ProjectID, DeploymentID: q.DeploymentID, Since: q.Since, Until: q.Until,
		StepSeconds: int(q.Step / time.Second), Points: make([]Point, n)}
	for i, a := range points {
		out.Points[i] = a.finish(q.Step.Seconds())
	}
	out.Total = total.finish(q.Until.Sub(q.Since).Seconds())
	return out, nil
}
