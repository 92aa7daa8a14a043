package telemetry

import "github.com/prometheus/client_golang/prometheus"

// metrics are the collector's Prometheus metrics (namespace pier,
// subsystem edge).
type metrics struct {
	requests       *prometheus.CounterVec
	duration       prometheus.Histogram
	isolateStarts  *prometheus.CounterVec
	staticRequests *prometheus.CounterVec
	dropped        prometheus.Counter
	droppedBuckets prometheus.Counter
	shippedLogs    prometheus.Counter
	shippedBuckets prometheus.Counter
	shipErrors     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, buffered func() float64) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pier", Subsystem: "edge",
			Name: "requests_total", Help: "Requests served for deployments, by status class."}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "pier", Subsystem: "edge",
			Name: "request_duration_seconds", Help: "Time to serve a deployment's request.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		isolateStarts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pier", Subsystem: "edge",
			Name: "isolate_requests_total", Help: "Requests answered by server code, by how they got their isolate (cold or warm)."}, []string{"start"}),
		staticRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pier", Subsystem: "edge",
			Name: "static_requests_total", Help: "Static file responses: hit (the edge held the deployment) or miss (loaded on demand)."}, []string{"cache"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pier", Subsystem: "edge",
			Name: "telemetry_logs_dropped_total", Help: "Log records dropped: the buffer was full, or their shipment failed."}),
		droppedBuckets: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pier", Subsystem: "edge",
			Name: "telemetry_buckets_dropped_total", Help: "Metric buckets dropped while control was unreachable."}),
		shippedLogs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pier", Subsystem: "edge",
			Name: "telemetry_logs_shipped_total", Help: "Log records delivered to control."}),
		shippedBuckets: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pier", Subsystem: "edge",
			Name: "telemetry_buckets_shipped_total", Help: "Metric buckets delivered to control."}),
		shipErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pier", Subsystem: "edge",
			Name: "telemetry_ship_errors_total", Help: "Failed shipments to control."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.isolateStarts, m.staticRequests, m.dropped, m.droppedBuckets,
			m.shippedLogs, m.shippedBuckets, m.shipErrors,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "pier", Subsystem: "edge",
				Name: "telemetry_logs_buffered", Help: "Log records waiting to be shipped."}, buffered))
	}
	return m
}
