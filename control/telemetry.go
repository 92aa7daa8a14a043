package control

import (
	"context"
	"time"
)

// LogEntry is one stored runtime log record of a deployment: a console.*
// call of its server code or an edge's access record.
type LogEntry struct {
	ID           int64     `json:"id"` // ascending in insertion order: the follow cursor
	ProjectID    string    `json:"project_id"`
	DeploymentID string    `json:"deployment_id"`
	Edge         string    `json:"edge"`
	Time         time.Time `json:"time"`
	Kind         string    `json:"kind"`  // "console" or "access"
	Level        string    `json:"level"` // debug, info, warn, error
	RequestID    string    `json:"request_id,omitempty"`
	Message      string    `json:"message"`
	Method       string    `json:"method,omitempty"`
	Host         string    `json:"host,omitempty"`
	Path         string    `json:"path,omitempty"`
	Status       int       `json:"status,omitempty"`
	DurationUS   int64     `json:"duration_us,omitempty"`
	Start        string    `json:"start,omitempty"` // "cold", "warm" or ""
}

// LogQuery selects runtime log records of one project. Zero fields do not
// filter.
type LogQuery struct {
	ProjectID    string // required
	DeploymentID string
	Since, Until time.Time // Time in [Since, Until)
	Levels       []string  // any of
	Text         string    // case-insensitive substring of Message
	AfterID      int64     // ID > AfterID
	// Limit bounds the result. With AfterID set the oldest matching
	// records are returned, else the newest; either way in ID order.
	Limit int
}

// MetricRow is one edge's metrics of one deployment for one time bucket,
// as shipped (edge.MetricBucket, JSON in Data). Rows are append-only;
// readers merge them.
type MetricRow struct {
	ProjectID    string
	DeploymentID string
	Edge         string
	Bucket       time.Time
	Data         []byte
}

// Telemetry is the store's part for runtime logs and request metrics.
type Telemetry interface {
	// AppendLogs stores log records, assigning their IDs.
	AppendLogs(ctx context.Context, entries []LogEntry) error
	// QueryLogs returns the records q selects, in ID order.
	QueryLogs(ctx context.Context, q LogQuery) ([]LogEntry, error)
	// AppendMetrics stores metric rows.
	AppendMetrics(ctx context.Context, rows []MetricRow) error
	// QueryMetrics returns a project's rows with Bucket in [since, until),
	// of one deployment when deploymentID is set, ordered by bucket.
	QueryMetrics(ctx context.Context, projectID, deploymentID string, since, until time.Time) ([]MetricRow, error)
	// PruneTelemetry deletes log records and metric rows older than
	// before, returning how many went.
	PruneTelemetry(ctx context.Context, before time.Time) (int64, error)
}
