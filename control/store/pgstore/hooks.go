package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pierhq/pier/control"
)

// ---- deployment lifecycle hooks ----

// PutHook upserts the hook (project, event).
func (s *Store) PutHook(ctx context.Context, h *control.Hook) error {
	updated := norm(time.Now())
	var created time.Time
	err := s.pool.QueryRow(ctx, `INSERT INTO hooks (project_id, event, code, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (project_id, event) DO UPDATE SET code = excluded.code, updated_at = excluded.updated_at
		RETURNING created_at`,
		h.ProjectID, string(h.Event), h.Code, updated).Scan(&created)
	if pgCode(err) == foreignKeyViolation {
		return fmt.Errorf("project %q: %w", h.ProjectID, control.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put hook: %w", err)
	}
	h.CreatedAt, h.UpdatedAt = created.UTC(), updated
	return nil
}

const hookCols = `project_id, event, code, created_at, updated_at`

func scanHook(row pgx.Row) (*control.Hook, error) {
	var h control.Hook
	if err := row.Scan(&h.ProjectID, &h.Event, &h.Code, &h.CreatedAt, &h.UpdatedAt); err != nil {
		return nil, err
	}
	h.CreatedAt, h.UpdatedAt = h.CreatedAt.UTC(), h.UpdatedAt.UTC()
	return &h, nil
}

// GetHook returns one hook.
func (s *Store) GetHook(ctx context.Context, projectID string, event control.HookEvent) (*control.Hook, error) {
	h, err := scanHook(s.pool.QueryRow(ctx, `SELECT `+hookCols+` FROM hooks WHERE project_id = $1 AND event = $2`,
		projectID, string(event)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("hook %q: %w", event, control.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get hook: %w", err)
	}
	return h, nil
}

// ListHooks lists a project's hooks by event name.
func (s *Store) ListHooks(ctx context.Context, projectID string) ([]*control.Hook, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+hookCols+` FROM hooks WHERE project_id = $1 ORDER BY event`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list hooks: %w", err)
	}
	out, err := collect(rows, scanHook)
	if err != nil {
		return nil, fmt.Errorf("list hooks: %w", err)
	}
	return out, nil
}

// DeleteHook removes a hook.
func (s *Store) DeleteHook(ctx context.Context, projectID string, event control.HookEvent) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM hooks WHERE project_id = $1 AND event = $2`, projectID, string(event))
	if err != nil {
		return fmt.Errorf("delete hook: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("hook %q: %w", event, control.ErrNotFound)
	}
	return nil
}
