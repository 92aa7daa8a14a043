package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierhq/pier/control/config"
	ctelemetry "github.com/pierhq/pier/control/telemetry"
	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/edged"
	etelemetry "github.com/pierhq/pier/edge/telemetry"
)

// edgeTelemetry wires the edges' collectors to control: an edge ships to
// control's API (POST /v1/telemetry) with the telemetry token, or, when
// control runs in the same process and the edge was given no other,
// hands its batches to control's telemetry service directly (no JSON,
// gzip or loopback HTTP for what never leaves the process; once control
// is up). A random telemetry token is made for a local control all the
// same: env.DATA, env.QUEUE and the scheduler's runs use it.
type edgeTelemetry struct {
	rt           *config.Runtime
	log          *slog.Logger
	sink         etelemetry.Sink // nil: no shipping
	remote       *etelemetry.HTTPSink
	inProcess    *inProcessSink
	controlToken string // what control accepts
	collectors   []*etelemetry.Collector
}

// inProcessSink delivers batches to the telemetry service of the control
// in this process, exactly as the API's POST /v1/telemetry would (same
// validation, same store), minus the encoding and the round trip.
type inProcessSink struct {
	svc *ctelemetry.Service // set by local, before the collectors run
}

var _ etelemetry.Sink = (*inProcessSink)(nil)

func (s *inProcessSink) Ship(ctx context.Context, b *edge.TelemetryBatch) error {
	if err := s.svc.Ingest(ctx, b); err != nil {
		return fmt.Errorf("ship telemetry to the local control: %w", err)
	}
	return nil
}

func newEdgeTelemetry(rt *config.Runtime, logger *slog.Logger) (*edgeTelemetry, error) {
	t := &edgeTelemetry{rt: rt, log: logger, controlToken: rt.Control.TelemetryToken}
	if rt.RunControl && t.controlToken == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		t.controlToken = base64.RawURLEncoding.EncodeToString(b)
	}
	switch {
	case !rt.RunEdge:
	case rt.Edge.ControlURL != "":
		t.remote = &etelemetry.HTTPSink{URL: rt.Edge.ControlURL, Token: rt.Edge.TelemetryToken}
		t.sink = t.remote
	case rt.RunControl:
		t.inProcess = &inProcessSink{} // svc: once control is built
		t.sink = t.inProcess
	default:
		logger.Warn("edge.control_url is not set: this edge's runtime logs and metrics stay here (Prometheus /metrics only)")
	}
	return t, nil
}

// attach gives edge id its metrics registry and, when shipping, its collector.
func (t *edgeTelemetry) attach(id string, deps *edged.Deps) error {
	deps.Metrics = prometheus.NewRegistry()
	if t.sink == nil {
		return nil
	}
	cfg := etelemetry.DefaultConfig()
	cfg.Edge, cfg.Logger = id, t.log
	if t.rt.Edge.TelemetryBuffer > 0 {
		cfg.BufferSize = t.rt.Edge.TelemetryBuffer
	}
	c, err := etelemetry.New(cfg, t.sink, deps.Metrics)
	if err != nil {
		return err
	}
	t.collectors = append(t.collectors, c)
	deps.Telemetry = c
	return nil
}

// local points the edges of this process at the control it runs, unless
// they were given another.
func (t *edgeTelemetry) local(svc *ctelemetry.Service) {
	if t.inProcess != nil {
		t.inProcess.svc = svc
	}
}

// run starts the shippers (after control is built, when it is local).
func (t *edgeTelemetry) run(ctx context.Context, wg *sync.WaitGroup) {
	if t.sink == nil || (t.inProcess != nil && t.inProcess.svc == nil) {
		return
	}
	for _, c := range t.collectors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Run(ctx)
		}()
	}
}
