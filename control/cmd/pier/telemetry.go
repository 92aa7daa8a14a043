package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pierhq/pier/control/config"
	"github.com/pierhq/pier/edge/edged"
	etelemetry "github.com/pierhq/pier/edge/telemetry"
)

// edgeTelemetry wires the edges' collectors to control: every edge ships
// to control's API (POST /v1/telemetry) with the telemetry token, also
// when control runs in the same process (then with a random token, and
// once control listens).
type edgeTelemetry struct {
	rt           *config.Runtime
	log          *slog.Logger
	sink         *etelemetry.HTTPSink // nil: no shipping
	controlToken string               // what control accepts
	collectors   []*etelemetry.Collector
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
		t.sink = &etelemetry.HTTPSink{URL: rt.Edge.ControlURL, Token: rt.Edge.TelemetryToken}
	case rt.RunControl:
		t.sink = &etelemetry.HTTPSink{Token: t.controlToken} // URL: local
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
func (t *edgeTelemetry) local(apiURL string) {
	if t.sink != nil && t.sink.URL == "" {
		t.sink.URL = apiURL
	}
}

// run starts the shippers (after control listens, when it is local).
func (t *edgeTelemetry) run(ctx context.Context, wg *sync.WaitGroup) {
	if t.sink == nil || t.sink.URL == "" {
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
