// Package telemetry is the edge's collector of runtime logs and request
// metrics, and the shipper that sends them to control in batches.
//
// Logs (console.* of server code, one access record per request) go into a
// bounded buffer: when it is full a record is dropped and counted, so a
// flood of logs never stalls a request. Metrics are aggregated as they come
// per (project, deployment, time bucket): counts by status, DDSketches of
// latency and of isolate acquisition (cold and warm), static cache hits.
// Both are shipped together every FlushInterval through a Sink (an HTTP
// POST to control's /v1/telemetry in every setup).
//
// Imports: edge (the wire contract), sketches-go and client_golang.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierhq/pier/edge"
)

// Sink delivers a batch to control.
type Sink interface {
	Ship(ctx context.Context, b *edge.TelemetryBatch) error
}

// Config configures a Collector. Zero fields take DefaultConfig's values,
// except Edge, which is required.
type Config struct {
	Edge string // the edge's ID, stamped on every batch
	// BufferSize bounds the log records held between shipments; more are
	// dropped and counted.
	BufferSize int
	// FlushInterval is how often a batch is shipped.
	FlushInterval time.Duration
	// MaxBatch bounds the log records of one batch.
	MaxBatch int
	// Bucket is the width of a metrics time bucket.
	Bucket time.Duration
	// RelativeAccuracy is the sketches' relative error bound (0.01 = 1 %).
	RelativeAccuracy float64
	// MaxMessage bounds a console message, in bytes.
	MaxMessage int
	// MaxPending bounds the metric buckets kept while control is
	// unreachable; older ones are dropped and counted.
	MaxPending int
	Logger     *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		BufferSize:       10000,
		FlushInterval:    2 * time.Second,
		MaxBatch:         5000,
		Bucket:           10 * time.Second,
		RelativeAccuracy: 0.01,
		MaxMessage:       8 << 10,
		MaxPending:       10000,
	}
}

// Console is one console.* call of a deployment's server code.
type Console struct {
	Time         time.Time
	ProjectID    string
	DeploymentID string
	RequestID    string
	Level        string // log, info, debug, warn, error
	Message      string
}

// Access is one request an edge served for a deployment.
type Access struct {
	Time         time.Time // when it arrived
	ProjectID    string
	DeploymentID string
	RequestID    string
	Method       string
	Host         string
	Path         string
	Status       int
	Duration     time.Duration
	// Code: server code answered; Cold reports a cold isolate start and
	// Acquire the wait for the isolate.
	Code    bool
	Cold    bool
	Acquire time.Duration
	// Static: a static file answered; CacheHit reports that the edge held
	// the deployment already (no on-demand load from the object store).
	Static   bool
	CacheHit bool
}

// Collector collects and ships. Create it with New, start it with Run.
type Collector struct {
	cfg  Config
	sink Sink
	log  *slog.Logger
	m    *metrics

	logs chan edge.LogRecord

	mu      sync.Mutex
	buckets map[bucketKey]*bucket
	pending []edge.MetricBucket // encoded, not yet delivered
	dropped int64               // log records dropped since the last shipment
}

type bucketKey struct {
	project, deployment string
	start               int64 // unix seconds
}

type bucket struct {
	requests     int64
	status       map[string]int
	latency      *ddsketch.DDSketch
	cold, warm   int64
	coldS, warmS *ddsketch.DDSketch
	static, hits int64
}

// New returns a Collector registering its metrics with reg (nil: none).
// It starts nothing.
func New(cfg Config, sink Sink, reg prometheus.Registerer) (*Collector, error) {
	if sink == nil {
		panic("telemetry.New: nil sink")
	}
	def := DefaultConfig()
	if cfg.Edge == "" {
		return nil, errors.New("telemetry: an edge id is required")
	}
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = def.BufferSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = def.FlushInterval
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = def.MaxBatch
	}
	if cfg.Bucket < time.Second {
		cfg.Bucket = def.Bucket
	}
	if cfg.RelativeAccuracy <= 0 || cfg.RelativeAccuracy >= 1 {
		cfg.RelativeAccuracy = def.RelativeAccuracy
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = def.MaxMessage
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = def.MaxPending
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := ddsketch.NewDefaultDDSketch(cfg.RelativeAccuracy); err != nil {
		return nil, fmt.Errorf("telemetry: relative accuracy %v: %w", cfg.RelativeAccuracy, err)
	}
	c := &Collector{
		cfg:     cfg,
		sink:    sink,
		log:     cfg.Logger.With("component", "edge.telemetry"),
		logs:    make(chan edge.LogRecord, cfg.BufferSize),
		buckets: make(map[bucketKey]*bucket),
	}
	c.m = newMetrics(reg, func() float64 { return float64(len(c.logs)) })
	return c, nil
}

// Console records a console call. It never blocks.
func (c *Collector) Console(e Console) {
	if e.ProjectID == "" || e.DeploymentID == "" {
		return // a deployment that left the edge: nobody to attribute it to
	}
	level := e.Level
	if level == "log" || level == "" {
		level = "info"
	}
	msg := e.Message
	if len(msg) > c.cfg.MaxMessage {
		msg = msg[:c.cfg.MaxMessage] + "…"
	}
	c.enqueue(edge.LogRecord{Time: e.Time.UTC(), Kind: edge.LogConsole, Level: level, ProjectID: e.ProjectID,
		DeploymentID: e.DeploymentID, RequestID: e.RequestID, Message: msg})
}

// Request records a served request: its access log record (dropped when
// the buffer is full) and its metrics (never dropped). It never blocks on
// I/O.
func (c *Collector) Request(a Access) {
	status := strconv.Itoa(a.Status)
	c.m.requests.WithLabelValues(statusClass(a.Status)).Inc()
	c.m.duration.Observe(a.Duration.Seconds())
	if a.Code {
		if a.Cold {
			c.m.isolateStarts.WithLabelValues("cold").Inc()
		} else {
			c.m.isolateStarts.WithLabelValues("warm").Inc()
		}
	}
	if a.Static {
		if a.CacheHit {
			c.m.staticRequests.WithLabelValues("hit").Inc()
		} else {
			c.m.staticRequests.WithLabelValues("miss").Inc()
		}
	}

	ms := float64(a.Duration.Microseconds()) / 1000
	start := a.Time.Truncate(c.cfg.Bucket).Unix()
	c.mu.Lock()
	k := bucketKey{a.ProjectID, a.DeploymentID, start}
	b := c.buckets[k]
	if b == nil {
		b = &bucket{status: map[string]int{}, latency: c.sketch()}
		c.buckets[k] = b
	}
	b.requests++
	b.status[status]++
	_ = b.latency.Add(ms)
	if a.Code {
		acq := float64(a.Acquire.Nanoseconds()) / 1e6
		if a.Cold {
			b.cold++
			if b.coldS == nil {
				b.coldS = c.sketch()
			}
			_ = b.coldS.Add(acq)
		} else {
			b.warm++
			if b.warmS == nil {
				b.warmS = c.sketch()
			}
			_ = b.warmS.Add(acq)
		}
	}
	if a.Static {
		b.static++
		if a.CacheHit {
			b.hits++
		}
	}
	c.mu.Unlock()

	level := "info"
	if a.Status >= 500 {
		level = "error"
	}
	c.enqueue(edge.LogRecord{Time: a.Time.UTC(), Kind: edge.LogAccess, Level: level, ProjectID: a.ProjectID,
		DeploymentID: a.DeploymentID, RequestID: a.RequestID,
		Message: a.Method + " " + a.Path + " " + status,
		Method:  a.Method, Host: a.Host, Path: a.Path, Status: a.Status, DurationUS: a.Duration.Microseconds(),
		Start: startKind(a)})
}

func startKind(a Access) string {
	switch {
	case !a.Code:
		return ""
	case a.Cold:
		return "cold"
	}
	return "warm"
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

// sketch returns an empty sketch; the accuracy was checked by New.
func (c *Collector) sketch() *ddsketch.DDSketch {
	s, _ := ddsketch.NewDefaultDDSketch(c.cfg.RelativeAccuracy)
	return s
}

func (c *Collector) enqueue(r edge.LogRecord) {
	select {
	case c.logs <- r:
	default:
		c.m.dropped.Inc()
		c.mu.Lock()
		c.dropped++
		c.mu.Unlock()
	}
}

// Stats are the collector's counters.
type Stats struct {
	Buffered int   // log records waiting
	Dropped  int64 // not yet reported to control
}

// Stats returns the collector's counters.
func (c *Collector) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Buffered: len(c.logs), Dropped: c.dropped}
}

// Run ships a batch every FlushInterval until ctx ends, then makes one
// last attempt (bounded) to ship what is left.
func (c *Collector) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			c.Flush(fctx, true)
			cancel()
			return nil
		case <-t.C:
			c.Flush(ctx, false)
		}
	}
}

// Flush ships what has been collected: every closed metric bucket (all of
// them when final) and up to MaxBatch log records. A failed shipment keeps
// the metrics for the next one (up to MaxPending buckets); its log records
// are lost and counted as dropped.
func (c *Collector) Flush(ctx context.Context, final bool) {
	now := time.Now()
	c.mu.Lock()
	for k, b := range c.buckets {
		if !final && now.Before(time.Unix(k.start, 0).Add(c.cfg.Bucket)) {
			continue // still filling
		}
		c.pending = append(c.pending, c.encode(k, b))
		delete(c.buckets, k)
	}
	if over := len(c.pending) - c.cfg.MaxPending; over > 0 {
		c.m.droppedBuckets.Add(float64(over))
		c.pending = append([]edge.MetricBucket(nil), c.pending[over:]...)
	}
	batch := &edge.TelemetryBatch{Edge: c.cfg.Edge, Metrics: c.pending, Dropped: c.dropped}
	c.pending = nil
	c.dropped = 0
	c.mu.Unlock()

drain:
	for len(batch.Logs) < c.cfg.MaxBatch {
		select {
		case r := <-c.logs:
			batch.Logs = append(batch.Logs, r)
		default:
			break drain
		}
	}
	if len(batch.Logs) == 0 && len(batch.Metrics) == 0 && batch.Dropped == 0 {
		return
	}
	err := c.sink.Ship(ctx, batch)
	if err == nil {
		c.m.shippedLogs.Add(float64(len(batch.Logs)))
		c.m.shippedBuckets.Add(float64(len(batch.Metrics)))
		return
	}
	c.m.shipErrors.Inc()
	if ctx.Err() == nil {
		c.log.Warn("ship telemetry to control", "logs", len(batch.Logs), "buckets", len(batch.Metrics), "err", err)
	}
	c.m.dropped.Add(float64(len(batch.Logs)))
	c.mu.Lock()
	c.pending = append(batch.Metrics, c.pending...)
	c.dropped += batch.Dropped + int64(len(batch.Logs))
	c.mu.Unlock()
}

func (c *Collector) encode(k bucketKey, b *bucket) edge.MetricBucket {
	mb := edge.MetricBucket{ProjectID: k.project, DeploymentID: k.deployment, Start: time.Unix(k.start, 0).UTC(),
		WidthSeconds: int(c.cfg.Bucket / time.Second), Requests: b.requests, Status: b.status,
		Cold: b.cold, Warm: b.warm, Static: b.static, StaticHits: b.hits}
	b.latency.Encode(&mb.Latency, false)
	if b.coldS != nil {
		b.coldS.Encode(&mb.ColdSketch, false)
	}
	if b.warmS != nil {
		b.warmS.Encode(&mb.WarmSketch, false)
	}
	return mb
}
