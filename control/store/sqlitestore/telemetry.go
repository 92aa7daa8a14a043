package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/pierhq/pier/control"
)

// ---- runtime logs and request metrics ----

// AppendLogs inserts the records in one transaction and sets their IDs.
func (s *Store) AppendLogs(ctx context.Context, entries []control.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO runtime_logs (project_id, deployment_id, edge_id, at, kind, level,
			request_id, message, method, host, path, status, duration_us, start)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range entries {
			e := &entries[i]
			if err := st.QueryRowContext(ctx, e.ProjectID, e.DeploymentID, e.Edge, e.Time.UnixNano(), e.Kind, e.Level,
				e.RequestID, e.Message, e.Method, e.Host, e.Path, e.Status, e.DurationUS, e.Start).Scan(&e.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append runtime logs: %w", err)
	}
	return nil
}

// QueryLogs selects runtime log records.
func (s *Store) QueryLogs(ctx context.Context, q control.LogQuery) ([]control.LogEntry, error) {
	where := []string{"project_id = ?"}
	args := []any{q.ProjectID}
	if q.DeploymentID != "" {
		where, args = append(where, "deployment_id = ?"), append(args, q.DeploymentID)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		where, args = append(where, "at < ?"), append(args, q.Until.UnixNano())
	}
	if len(q.Levels) > 0 {
		where = append(where, "level IN (?"+strings.Repeat(", ?", len(q.Levels)-1)+")")
		for _, l := range q.Levels {
			args = append(args, l)
		}
	}
	if q.Text != "" {
		where, args = append(where, `instr(lower(message), lower(?)) > 0`), append(args, q.Text)
	}
	order := "DESC"
	if q.AfterID > 0 {
		where, args, order = append(where, "id > ?"), append(args, q.AfterID), "ASC"
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, project_id, deployment_id, edge_id, at, kind, level, request_id, message,
		method, host, path, status, duration_us, start FROM runtime_logs WHERE `+strings.Join(where, " AND ")+
		` ORDER BY id `+order+` LIMIT ?`, append(args, limit)...)
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

// AppendMetrics inserts metric rows in one transaction.
func (s *Store) AppendMetrics(ctx context.Context, rows []control.MetricRow) error {
	if len(rows) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, r := range rows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO metric_buckets (project_id, deployment_id, edge_id, bucket, data)
				VALUES (?, ?, ?, ?, ?)`, r.ProjectID, r.DeploymentID, r.Edge, r.Bucket.UnixNano(), r.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append metrics: %w", err)
	}
	return nil
}

// QueryMetrics returns a project's metric rows in [since, until).
func (s *Store) QueryMetrics(ctx context.Context, projectID, deploymentID string, since, until time.Time) ([]control.MetricRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT project_id, deployment_id, edge_id, bucket, data FROM metric_buckets
		WHERE project_id = ? AND (? = '' OR deployment_id = ?) AND bucket >= ? AND bucket < ?
		ORDER BY bucket, id`, projectID, deploymentID, deploymentID, since.UnixNano(), until.UnixNano())
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
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM runtime_logs WHERE at < ?`, `DELETE FROM metric_buckets WHERE bucket < ?`} {
			res, err := tx.ExecContext(ctx, q, before.UnixNano())
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune telemetry: %w", err)
	}
	return n, nil
}
