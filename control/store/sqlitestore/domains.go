package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pierhq/pier/control"
)

// ---- custom domains ----

var _ control.DomainStore = (*Store)(nil)

// CreateDomain inserts a domain; the name is the primary key.
func (s *Store) CreateDomain(ctx context.Context, d *control.Domain) error {
	d.CreatedAt = normOrNow(d.CreatedAt)
	d.VerifiedAt = norm(d.VerifiedAt)
	_, err := s.w.ExecContext(ctx, `INSERT INTO domains (name, project_id, token, state, created_at, verified_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		d.Name, d.ProjectID, d.Token, string(d.State), formatTime(d.CreatedAt), nullTime(d.VerifiedAt))
	switch {
	case isForeignKey(err):
		return fmt.Errorf("project %q: %w", d.ProjectID, control.ErrNotFound)
	case isUnique(err):
		return fmt.Errorf("domain %q is already claimed: %w", d.Name, control.ErrConflict)
	case err != nil:
		return fmt.Errorf("create domain: %w", err)
	}
	return nil
}

const domainCols = `name, project_id, token, state, created_at, verified_at`

func scanDomain(row scanner) (*control.Domain, error) {
	var d control.Domain
	if err := row.Scan(&d.Name, &d.ProjectID, &d.Token, &d.State, timeCol{&d.CreatedAt}, timeCol{&d.VerifiedAt}); err != nil {
		return nil, err
	}
	return &d, nil
}

// GetDomain returns one domain by name.
func (s *Store) GetDomain(ctx context.Context, name string) (*control.Domain, error) {
	d, err := scanDomain(s.r.QueryRowContext(ctx, `SELECT `+domainCols+` FROM domains WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("domain %q: %w", name, control.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get domain: %w", err)
	}
	return d, nil
}

// ListDomains lists a project's domains, or every domain, by name.
func (s *Store) ListDomains(ctx context.Context, projectID string) ([]*control.Domain, error) {
	q, args := `SELECT `+domainCols+` FROM domains ORDER BY name`, []any{}
	if projectID != "" {
		q, args = `SELECT `+domainCols+` FROM domains WHERE project_id = ? ORDER BY name`, []any{projectID}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	defer rows.Close()
	out := []*control.Domain{}
	for rows.Next() {
		d, err := scanDomain(rows)
		if err != nil {
			return nil, fmt.Errorf("list domains: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	return out, nil
}

// MarkDomainVerified sets a domain verified.
func (s *Store) MarkDomainVerified(ctx context.Context, projectID, name string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE domains SET state = ?, verified_at = ? WHERE project_id = ? AND name = ?`,
		string(control.DomainVerified), formatTime(normOrNow(at)), projectID, name)
	if err != nil {
		return fmt.Errorf("verify domain: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("verify domain: %w", err)
	} else if n == 0 {
		return fmt.Errorf("domain %q: %w", name, control.ErrNotFound)
	}
	return nil
}

// DeleteDomain removes a project's domain.
func (s *Store) DeleteStaleDomain(ctx context.Context, name string, before time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM domains WHERE name = ? AND state = ? AND created_at < ?`,
		name, string(control.DomainPending), formatTime(before))
	if err != nil {
		return false, fmt.Errorf("delete stale domain: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete stale domain: %w", err)
	}
	return n > 0, nil
}

func (s *Store) DeleteDomain(ctx context.Context, projectID, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM domains WHERE project_id = ? AND name = ?`, projectID, name)
	if err != nil {
		return fmt.Errorf("delete domain: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete domain: %w", err)
	} else if n == 0 {
		return fmt.Errorf("domain %q: %w", name, control.ErrNotFound)
	}
	return nil
}
