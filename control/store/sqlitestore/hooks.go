package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pierhq/pier/control"
)

// ---- deployment lifecycle hooks ----

// PutHook upserts the hook (project, event).
func (s *Store) PutHook(ctx context.Context, h *control.Hook) error {
	updated := norm(time.Now())
	var created string
	err := s.w.QueryRowContext(ctx, `INSERT INTO hooks (project_id, event, code, created_at, updated_at)
		VALUES (?1, ?2, ?3, ?4, ?4)
		ON CONFLICT (project_id, event) DO UPDATE SET code = excluded.code, updated_at = excluded.updated_at
		RETURNING created_at`,
		h.ProjectID, string(h.Event), h.Code, formatTime(updated)).Scan(&created)
	if isForeignKey(err) {
		return fmt.Errorf("project %q: %w", h.ProjectID, control.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put hook: %w", err)
	}
	var createdAt time.Time
	if err := (timeCol{&createdAt}).Scan(created); err != nil {
		return fmt.Errorf("put hook: %w", err)
	}
	h.CreatedAt, h.UpdatedAt = createdAt, updated
	return nil
}

const hookCols = `project_id, event, code, created_at, updated_at`

func scanHook(row scanner) (*control.Hook, error) {
	var h control.Hook
	if err := row.Scan(&h.ProjectID, &h.Event, &h.Code, timeCol{&h.CreatedAt}, timeCol{&h.UpdatedAt}); err != nil {
		return nil, err
	}
	return &h, nil
}

// GetHook returns one hook.
func (s *Store) GetHook(ctx context.Context, projectID string, event control.HookEvent) (*control.Hook, error) {
	h, err := scanHook(s.r.QueryRowContext(ctx, `SELECT `+hookCols+` FROM hooks WHERE project_id = ? AND event = ?`,
		projectID, string(event)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("hook %q: %w", event, control.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get hook: %w", err)
	}
	return h, nil
}

// ListHooks lists a project's hooks by event name.
func (s *Store) ListHooks(ctx context.Context, projectID string) ([]*control.Hook, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+hookCols+` FROM hooks WHERE project_id = ? ORDER BY event`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list hooks: %w", err)
	}
	defer rows.Close()
	out := []*control.Hook{}
	for rows.Next() {
		h, err := scanHook(rows)
		if err != nil {
			return nil, fmt.Errorf("list hooks: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hooks: %w", err)
	}
	return out, nil
}

// DeleteHook removes a hook.
func (s *Store) DeleteHook(ctx context.Context, projectID string, event control.HookEvent) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM hooks WHERE project_id = ? AND event = ?`, projectID, string(event))
	if err != nil {
		return fmt.Errorf("delete hook: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete hook: %w", err)
	} else if n == 0 {
		return fmt.Errorf("hook %q: %w", event, control.ErrNotFound)
	}
	return nil
}
