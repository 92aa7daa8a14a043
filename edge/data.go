package edge

import (
	"encoding/json"
	"time"
)

// The data-store contract: what an edge sends to control (POST
// /v1/edge/data, JSON, with the telemetry token) when server code calls
// env.DATA. Control finds the project and stage from the deployment, so an
// edge can only ever reach the data of the deployment it runs.

// MaxDataValueBytes bounds one value as JSON; control enforces the same
// bound (control.MaxDataValueBytes), the edge checks it first to spare the
// round trip.
const MaxDataValueBytes = 256 << 10

// Data call methods.
const (
	DataGet    = "get"
	DataSet    = "set"
	DataDelete = "delete"
	DataList   = "list"
)

// DataCall is one env.DATA call.
type DataCall struct {
	DeploymentID string          `json:"deployment_id"`
	Method       string          `json:"method"`
	Key          string          `json:"key,omitempty"`
	Value        json.RawMessage `json:"value,omitempty"`
	Labels       []string        `json:"labels,omitempty"`
	// TTL in seconds (set); 0: never expires.
	TTL float64 `json:"ttl,omitempty"`
	// List: keys starting with Prefix, carrying Label, after After.
	Prefix string `json:"prefix,omitempty"`
	Label  string `json:"label,omitempty"`
	After  string `json:"after,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// DataItem is one item as env.DATA returns it.
type DataItem struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Labels    []string        `json:"labels"`
	ExpiresAt *time.Time      `json:"expires_at"` // null: never
	UpdatedAt time.Time       `json:"updated_at"`
}

// DataPage is a list's result; Cursor, when set, is the After of the next
// page.
type DataPage struct {
	Items  []DataItem `json:"items"`
	Cursor string     `json:"cursor,omitempty"`
}
