package edge

import "time"

// The telemetry contract: what an edge ships to control (POST
// /v1/telemetry, JSON), produced by edge/telemetry and consumed by
// control/telemetry.

// TelemetryBatch is one shipment of an edge's logs and metrics.
type TelemetryBatch struct {
	Edge    string         `json:"edge"`
	Logs    []LogRecord    `json:"logs,omitempty"`
	Metrics []MetricBucket `json:"metrics,omitempty"`
	// Dropped counts log records the edge dropped since its last
	// shipment (its buffer was full): they are lost, the count is not.
	Dropped int64 `json:"dropped,omitempty"`
}

// Log record kinds.
const (
	LogConsole = "console" // console.* from a deployment's server code
	LogAccess  = "access"  // one request served by the edge
)

// LogRecord is one runtime log line: a console call or an access record.
type LogRecord struct {
	Time         time.Time `json:"time"`
	Kind         string    `json:"kind"`  // LogConsole or LogAccess
	Level        string    `json:"level"` // debug, info, warn, error (console); info or error (access)
	ProjectID    string    `json:"project_id"`
	DeploymentID string    `json:"deployment_id"`
	RequestID    string    `json:"request_id,omitempty"`
	Message      string    `json:"message"`
	// Access records only.
	Method     string `json:"method,omitempty"`
	Host       string `json:"host,omitempty"`
	Path       string `json:"path,omitempty"`
	Status     int    `json:"status,omitempty"`
	DurationUS int64  `json:"duration_us,omitempty"`
	// Start is how the request got its isolate: "cold", "warm", or ""
	// (no server code ran).
	Start string `json:"start,omitempty"`
}

// MetricBucket is what one edge measured for one deployment during one
// time bucket [Start, Start+Width). Sketches are DDSketches
// (github.com/DataDog/sketches-go) in their binary encoding, values in
// milliseconds; merging buckets merges their sketches.
type MetricBucket struct {
	ProjectID    string         `json:"project_id"`
	DeploymentID string         `json:"deployment_id"`
	Start        time.Time      `json:"start"`
	WidthSeconds int            `json:"width_s"`
	Requests     int64          `json:"requests"`
	Status       map[string]int `json:"status,omitempty"` // "200": n
	Latency      []byte         `json:"latency,omitempty"`
	// Isolate acquisition: time from the request's arrival until it held
	// an isolate, cold (the isolate was started for it) or warm (an idle
	// one was reused).
	Cold       int64  `json:"cold,omitempty"`
	ColdSketch []byte `json:"cold_sketch,omitempty"`
	Warm       int64  `json:"warm,omitempty"`
	WarmSketch []byte `json:"warm_sketch,omitempty"`
	Static     int64  `json:"static,omitempty"`      // static file responses
	StaticHits int64  `json:"static_hits,omitempty"` // of which served from the edge's cache
}
