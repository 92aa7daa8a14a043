package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pierhq/pier/control"
)

// ---- runs of scheduled functions ----

// ClaimScheduleRun inserts a running run; a claimed period wraps ErrConflict.
func (s *Store) ClaimScheduleRun(ctx context.Context, r *control.ScheduleRun) error {
	if r.ID == "" {
		r.ID = control.NewID("run")
	}
	r.StartedAt = normOrNow(r.StartedAt)
	r.ScheduledAt = norm(r.ScheduledAt)
	r.State = control.RunRunning
	if r.Logs == nil {
		r.Logs = []string{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO schedule_runs (id, project_id, deployment_id, schedule, scheduled_at, started_at,
		finished_at, state, edge, error, result, logs, trigger_kind) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, '', '', '', '[]', $8)`,
		r.ID, r.ProjectID, r.DeploymentID, r.Schedule, r.ScheduledAt.UnixNano(), r.StartedAt.UnixNano(), r.State, r.Trigger)
	switch {
	case pgCode(err) == uniqueViolation:
		return fmt.Errorf("schedule %q at %s: already claimed: %w", r.Schedule, r.ScheduledAt.Format(time.RFC3339), control.ErrConflict)
	case pgCode(err) == foreignKeyViolation:
		return fmt.Errorf("project %q: %w", r.ProjectID, control.ErrNotFound)
	case err != nil:
		return fmt.Errorf("claim schedule run: %w", err)
	}
	return nil
}

// FinishScheduleRun writes a run's outcome.
func (s *Store) FinishScheduleRun(ctx context.Context, r *control.ScheduleRun) error {
	r.FinishedAt = normOrNow(r.FinishedAt)
	logs, err := json.Marshal(nonNil(r.Logs))
	if err != nil {
		return fmt.Errorf("finish schedule run: %w", err)
	}
	res, err := s.pool.Exec(ctx, `UPDATE schedule_runs SET finished_at = $1, state = $2, edge = $3, error = $4, result = $5, logs = $6
		WHERE id = $7`, r.FinishedAt.UnixNano(), r.State, r.Edge, r.Error, r.Result, string(logs), r.ID)
	if err != nil {
		return fmt.Errorf("finish schedule run: %w", err)
	}
	if res.RowsAffected() == 0 {
		return fmt.Errorf("run %q: %w", r.ID, control.ErrNotFound)
	}
	return nil
}

// ListScheduleRuns lists runs, latest period first.
func (s *Store) ListScheduleRuns(ctx context.Context, projectID, schedule string, limit int) ([]*control.ScheduleRun, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT id, project_id, deployment_id, schedule, scheduled_at, started_at, finished_at,
		state, edge, error, result, logs, trigger_kind FROM schedule_runs
		WHERE project_id = $1 AND ($2 = '' OR schedule = $2) ORDER BY scheduled_at DESC, started_at DESC LIMIT $3`,
		projectID, schedule, limit)
	if err != nil {
		return nil, fmt.Errorf("list schedule runs: %w", err)
	}
	defer rows.Close()
	out := []*control.ScheduleRun{}
	for rows.Next() {
		var (
			r                  control.ScheduleRun
			sched, start, done int64
			logs               string
		)
		if err := rows.Scan(&r.ID, &r.ProjectID, &r.DeploymentID, &r.Schedule, &sched, &start, &done, &r.State, &r.Edge,
			&r.Error, &r.Result, &logs, &r.Trigger); err != nil {
			return nil, fmt.Errorf("list schedule runs: %w", err)
		}
		r.ScheduledAt, r.StartedAt, r.FinishedAt = fromUnixNano(sched), fromUnixNano(start), fromUnixNano(done)
		if err := json.Unmarshal([]byte(logs), &r.Logs); err != nil {
			return nil, fmt.Errorf("list schedule runs: %w", err)
		}
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list schedule runs: %w", err)
	}
	return out, nil
}
