package control

import (
	"context"
	"time"
)

// Run states of a scheduled function's run.
const (
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
)

// ScheduleRun is one firing of a scheduled function. (ProjectID,
// Schedule, ScheduledAt) is unique: the claim that makes a period fire
// once across the cluster and across restarts.
type ScheduleRun struct {
	ID           string    `json:"id"`
	ProjectID    string    `json:"project_id"`
	DeploymentID string    `json:"deployment_id"`
	Schedule     string    `json:"schedule"`
	ScheduledAt  time.Time `json:"scheduled_at"` // the period's instant
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
	State        string    `json:"state"` // RunRunning, RunSucceeded or RunFailed
	Edge         string    `json:"edge,omitempty"`
	Error        string    `json:"error,omitempty"`
	Result       string    `json:"result,omitempty"` // the function's JSON result, truncated
	// Logs are the run's console lines ("<level> <message>"), truncated.
	Logs []string `json:"logs"`
	// Trigger is "schedule", or "api" for a run asked for through the API
	// (POST .../schedules/{name}/run, what a Nomad periodic job calls).
	Trigger string `json:"trigger"`
}

// ScheduleStore is the store's part for scheduled functions' runs.
type ScheduleStore interface {
	// ClaimScheduleRun inserts r (state running; ID and StartedAt filled
	// in when empty). A run of the same project, schedule and ScheduledAt
	// wraps ErrConflict: that period has fired already.
	ClaimScheduleRun(ctx context.Context, r *ScheduleRun) error
	// FinishScheduleRun writes r's final state, FinishedAt, Edge, Error,
	// Result and Logs. An unknown run wraps ErrNotFound.
	FinishScheduleRun(ctx context.Context, r *ScheduleRun) error
	// ListScheduleRuns lists a project's runs, of one schedule when
	// schedule is set, latest ScheduledAt first; limit <= 0: 100.
	ListScheduleRuns(ctx context.Context, projectID, schedule string, limit int) ([]*ScheduleRun, error)
}
