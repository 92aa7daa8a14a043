package edged

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newMetrics registers the edge's own metrics (namespace pier, subsystem
// edge) with reg, read from its counters when scraped, and returns the
// /metrics handler. A nil reg means a registry of the edge's own. The
// request and telemetry metrics come from edge/telemetry, registered by
// whoever builds the collector.
func newMetrics(reg *prometheus.Registry, s *Server) http.Handler {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "pier", Subsystem: "edge", Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "pier", Subsystem: "edge", Name: name, Help: help}, f)
	}
	pool := func(f func(IsolateStats) float64) func() float64 {
		return func() float64 { return f(s.IsolateStats()) }
	}
	reg.MustRegister(
		gauge("deployments", "Deployments this edge holds.", func() float64 { return float64(s.table.Load().count) }),
		gauge("ready", "1 once the edge holds every live deployment and joined the pool.", func() float64 {
			if s.isReady.Load() {
				return 1
			}
			return 0
		}),
		gauge("isolates_live", "Isolates now: idle, busy and starting.", pool(func(st IsolateStats) float64 { return float64(st.Live) })),
		gauge("isolates_idle", "Idle warm isolates.", pool(func(st IsolateStats) float64 { return float64(st.Idle) })),
		counter("isolate_cold_starts_total", "Isolates started for a request.", pool(func(st IsolateStats) float64 { return float64(st.ColdStarts) })),
		counter("isolate_warm_hits_total", "Requests served by an idle isolate.", pool(func(st IsolateStats) float64 { return float64(st.WarmHits) })),
		counter("isolate_prewarms_total", "Isolates started ahead of requests (min_warm).", pool(func(st IsolateStats) float64 { return float64(st.Prewarms) })),
		counter("isolate_start_errors_total", "Isolate starts that failed.", pool(func(st IsolateStats) float64 { return float64(st.StartErrors) })),
		counter("isolate_evictions_total", "Idle isolates closed to stay within capacity.", pool(func(st IsolateStats) float64 { return float64(st.Evictions) })),
		gauge("isolate_start_avg_seconds", "Mean isolate start time.", pool(func(st IsolateStats) float64 { return st.StartAvgMs / 1000 })),
		counter("isolate_cpu_waits_total", "Entries into JavaScript that queued for a CPU slot.", pool(func(st IsolateStats) float64 { return float64(st.CPUWaits) })),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
