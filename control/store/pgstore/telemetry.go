package pgstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pierhq/pier/control"
)

// ---- runtime logs and request metrics ----

// AppendLogs inserts the records in one batch and sets their IDs.
func (s *Store) AppendLogs(ctx context.Context, entries []control.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for i := range entries {
			e := &entries[i]
			b.Queue(`INSERT INTO runtime_logs (project_id, deployment_id, edge_id, at, kind, level,
				request_id, message, method, host, path, status, duration_us, start)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`,
				e.ProjectID, e.DeploymentID, e.Edge, e.Time.UnixNano(), e.Kind, e.Level,
				e.RequestID, e.Message, e.Method, e.Host, e.Path, e.Status, e.DurationUS, e.Start).
				QueryRow(func(row pgx.Row) error { return row.Scan(&e.ID) })
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("append runtime logs: %w", err)
	}
	return nil
}

// QueryLogs selects runtime log records.
func (s *Store) QueryLogs(ctx context.Context, q control.LogQuery) ([]control.LogEntry, error) {
	args := []any{q.ProjectID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := []string{"project_id = $1"}
	if q.DeploymentID != "" {
		where = append(where, "deployment_id = "+arg(q.DeploymentID))
	}
	if !q.Since.IsZero() {
		where = append(where, "at >= "+arg(q.Since.UnixNano()))
	}
	if !q.Until.IsZero() {
		where = append(where, "at < "+arg(q.Until.UnixNano()))
	}
	if len(q.Levels) > 0 {
		where = append(where, "level = ANY("+arg(q.Levels)+")")
	}
	if q.Text != "" {
		where = append(where, "strpos(lower(message), lower("+arg(q.Text)+")) > 0")
	}
	order := "DESC"
	if q.AfterID > 0 {
		where, order = append(where, "id > "+arg(q.AfterID)), "ASC"
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT id, project_id, deployment_id, edge_id, at, kind, level, request_id, message,
		method, host, path, status, duration_us, start FROM runtime_logs WHERE `+strings.Join(where, " AND ")+
		` ORDER BY id `+order+` LIMIT `+arg(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("query runtime logs: %w", err)
	}
	defer rows.Close()
	var out []control.LogEntry
	for rows.Next() {
		var e control.LogEntry
		var at int64
		if err := rows.Scan(&e.ID, &e.ProjectID, &e.DeploymentID, &e.Edge, &at, &e.Kind, &e.Level, &e.RequestID, &e.Message,
			&e.Method, &e.Host, &e.Path, &e.Status, &e.DurationUS, &e.Start); err != nil {
			return nil, fmt.Errorf("query runtime logs: %w", err)
		}
		e.Time = time.Unix(0, at).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query runtime logs: %w", err)
	}
	if order == "DESC" {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

// AppendMetrics inserts metric rows in one batch.
func (s *Store) AppendMetrics(ctx context.Context, rows []control.MetricRow) error {
	if len(rows) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, r := range rows {
		b.Queue(`INSERT INTO metric_buckets (project_id, deployment_id, edge_id, bucket, data) VALUES ($1, $2, $3, $4, $5)`,
			r.ProjectID, r.DeploymentID, r.Edge, r.Bucket.UnixNano(), r.Data)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		return fmt.Errorf("append metrics: %w", err)
	}
	return nil
}

// QueryMetrics returns a project's metric rows in [since, until).
func (s *Store) QueryMetrics(ctx context.Context, projectID, deploymentID string, since, until time.Time) ([]control.MetricRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT project_id, deployment_id, edge_id, bucket, data FROM metric_buckets
		WHERE project_id = $1 AND ($2 = '' OR deployment_id = $2) AND bucket >= $3 AND bucket < $4
		ORDER BY bucket, id`, projectID, deploymentID, since.UnixNano(), until.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("query metrics: %w", err)
	}
	defer rows.Close()
	var out []control.MetricRow
	for rows.Next() {
		var r control.MetricRow
		var b int64
		if err := rows.Scan(&r.ProjectID, &r.DeploymentID, &r.Edge, &b, &r.Data); err != nil {
			return nil, fmt.Errorf("query metrics: %w", err)
		}
		r.Bucket = time.Unix(0, b).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query metrics: %w", err)
	}
	return out, nil
}

// PruneTelemetry deletes records older than before.
func (s *Store) PruneTelemetry(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, q := range []string{`DELETE FROM runtime_logs WHERE at < $1`, `DELETE FROM metric_buckets WHERE bucket < $1`} {
			tag, err := tx.Exec(ctx, q, before.UnixNano())
			if err != nil {
				return err
			}
			n += tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune telemetry: %w", err)
	}
	return n, nil
}
