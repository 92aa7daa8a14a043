package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pierhq/pier/control"
)

// ---- custom domains ----

var _ control.DomainStore = (*Store)(nil)

// CreateDomain inserts a domain; the name is the primary key.
func (s *Store) CreateDomain(ctx context.Context, d *control.Domain) error {
	d.CreatedAt = normOrNow(d.CreatedAt)
	d.VerifiedAt = norm(d.VerifiedAt)
	var verified *time.Time
	if !d.VerifiedAt.IsZero() {
		verified = &d.VerifiedAt
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO domains (name, project_id, token, state, created_at, verified_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		d.Name, d.ProjectID, d.Token, string(d.State), d.CreatedAt, verified)
	switch {
	case pgCode(err) == foreignKeyViolation:
		return fmt.Errorf("project %q: %w", d.ProjectID, control.ErrNotFound)
	case pgCode(err) == uniqueViolation:
		return fmt.Errorf("domain %q is already claimed: %w", d.Name, control.ErrConflict)
	case err != nil:
		return fmt.Errorf("create domain: %w", err)
	}
	return nil
}

const domainCols = `name, project_id, token, state, created_at, verified_at`

func scanDomain(row pgx.Row) (*control.Domain, error) {
	var d control.Domain
	var verified *time.Time
	if err := row.Scan(&d.Name, &d.ProjectID, &d.Token, &d.State, &d.CreatedAt, &verified); err != nil {
		return nil, err
	}
	d.CreatedAt = d.CreatedAt.UTC()
	if verified != nil {
		d.VerifiedAt = verified.UTC()
	}
	return &d, nil
}

// GetDomain returns one domain by name.
func (s *Store) GetDomain(ctx context.Context, name string) (*control.Domain, error) {
	d, err := scanDomain(s.pool.QueryRow(ctx, `SELECT `+domainCols+` FROM domains WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
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
		q, args = `SELECT `+domainCols+` FROM domains WHERE project_id = $1 ORDER BY name`, []any{projectID}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	out, err := collect(rows, scanDomain)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	if out == nil {
		out = []*control.Domain{}
	}
	return out, nil
}

// MarkDomainVerified sets a domain verified.
func (s *Store) MarkDomainVerified(ctx context.Context, projectID, name string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE domains SET state = $1, verified_at = $2 WHERE project_id = $3 AND name = $4`,
		string(control.DomainVerified), normOrNow(at), projectID, name)
	if err != nil {
		return fmt.Errorf("verify domain: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("domain %q: %w", name, control.ErrNotFound)
	}
	return nil
}

// DeleteDomain removes a project's domain.
func (s *Store) DeleteStaleDomain(ctx context.Context, name string, before time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM domains WHERE name = $1 AND state = $2 AND created_at < $3`,
		name, string(control.DomainPending), before.UTC())
	if err != nil {
		return false, fmt.Errorf("delete stale domain: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

func (s *Store) DeleteDomain(ctx context.Context, projectID, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM domains WHERE project_id = $1 AND name = $2`, projectID, name)
	if err != nil {
		return fmt.Errorf("delete domain: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("domain %q: %w", name, control.ErrNotFound)
	}
	return nil
}
