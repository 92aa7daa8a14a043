package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pierhq/pier/control"
)

// ---- the per-project data store ----

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

const dataCols = `key, value, labels, expires_at, updated_at`

func scanData(row scanner) (control.DataItem, error) {
	var (
		it              control.DataItem
		value, labels   string
		expires, update int64
	)
	if err := row.Scan(&it.Key, &value, &labels, &expires, &update); err != nil {
		return it, err
	}
	it.Value = json.RawMessage(value)
	if err := json.Unmarshal([]byte(labels), &it.Labels); err != nil {
		return it, err
	}
	it.ExpiresAt, it.UpdatedAt = fromUnixNano(expires), fromUnixNano(update)
	return it, nil
}

// DataGet returns one live item.
func (s *Store) DataGet(ctx context.Context, scope control.DataScope, key string) (*control.DataItem, error) {
	it, err := scanData(s.r.QueryRowContext(ctx, `SELECT `+dataCols+` FROM data_items
		WHERE project_id = ? AND stage = ? AND key = ? AND (expires_at = 0 OR expires_at > ?)`,
		scope.ProjectID, scope.Stage, key, time.Now().UnixNano()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("key %q: %w", key, control.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("data get: %w", err)
	}
	return &it, nil
}

// DataSet upserts an item and its labels in one transaction.
func (s *Store) DataSet(ctx context.Context, scope control.DataScope, item *control.DataItem) error {
	labels, err := json.Marshal(nonNil(item.Labels))
	if err != nil {
		return fmt.Errorf("data set: %w", err)
	}
	updated := norm(time.Now())
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO data_items (project_id, stage, key, value, labels, expires_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (project_id, stage, key) DO UPDATE SET value = excluded.value, labels = excluded.labels,
				expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
			scope.ProjectID, scope.Stage, item.Key, string(item.Value), string(labels), unixNano(norm(item.ExpiresAt)), updated.UnixNano()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM data_labels WHERE project_id = ? AND stage = ? AND key = ?`,
			scope.ProjectID, scope.Stage, item.Key); err != nil {
			return err
		}
		for _, l := range item.Labels {
			if _, err := tx.ExecContext(ctx, `INSERT INTO data_labels (project_id, stage, label, key) VALUES (?, ?, ?, ?)`,
				scope.ProjectID, scope.Stage, l, item.Key); err != nil {
				return err
			}
		}
		return nil
	})
	if isForeignKey(err) {
		return fmt.Errorf("project %q: %w", scope.ProjectID, control.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("data set: %w", err)
	}
	item.UpdatedAt, item.ExpiresAt, item.Labels = updated, norm(item.ExpiresAt), nonNil(item.Labels)
	return nil
}

// DataDelete removes a key.
func (s *Store) DataDelete(ctx context.Context, scope control.DataScope, key string) (bool, error) {
	var expires int64
	err := s.w.QueryRowContext(ctx, `DELETE FROM data_items WHERE project_id = ? AND stage = ? AND key = ? RETURNING expires_at`,
		scope.ProjectID, scope.Stage, key).Scan(&expires)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("data delete: %w", err)
	}
	return expires == 0 || expires > time.Now().UnixNano(), nil
}

// DataList lists live items by key.
func (s *Store) DataList(ctx context.Context, scope control.DataScope, q control.DataQuery) ([]control.DataItem, error) {
	limit := q.Limit
	if limit <= 0 || limit > control.MaxDataList {
		limit = control.MaxDataList
	}
	now := time.Now().UnixNano()
	var rows *sql.Rows
	var err error
	if q.Label == "" {
		rows, err = s.r.QueryContext(ctx, `SELECT `+dataCols+` FROM data_items
			WHERE project_id = ?1 AND stage = ?2 AND key > ?3 AND substr(key, 1, length(?4)) = ?4
				AND (expires_at = 0 OR expires_at > ?5)
			ORDER BY key LIMIT ?6`, scope.ProjectID, scope.Stage, q.After, q.Prefix, now, limit)
	} else {
		rows, err = s.r.QueryContext(ctx, `SELECT i.key, i.value, i.labels, i.expires_at, i.updated_at
			FROM data_labels l JOIN data_items i ON i.project_id = l.project_id AND i.stage = l.stage AND i.key = l.key
			WHERE l.project_id = ?1 AND l.stage = ?2 AND l.label = ?7 AND l.key > ?3 AND substr(l.key, 1, length(?4)) = ?4
				AND (i.expires_at = 0 OR i.expires_at > ?5)
			ORDER BY l.key LIMIT ?6`, scope.ProjectID, scope.Stage, q.After, q.Prefix, now, limit, q.Label)
	}
	if err != nil {
		return nil, fmt.Errorf("data list: %w", err)
	}
	defer rows.Close()
	out := []control.DataItem{}
	for rows.Next() {
		it, err := scanData(rows)
		if err != nil {
			return nil, fmt.Errorf("data list: %w", err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("data list: %w", err)
	}
	return out, nil
}

// PruneData deletes expired items.
func (s *Store) PruneData(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM data_items WHERE expires_at > 0 AND expires_at <= ?`, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune data: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
