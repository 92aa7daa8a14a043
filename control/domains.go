package control

import (
	"context"
	"time"
)

// DomainState is where a custom domain is in its verification.
type DomainState string

// Custom domain states: pending until its DNS proves ownership and points
// at the edges, then verified (served, with a certificate).
const (
	DomainPending  DomainState = "pending"
	DomainVerified DomainState = "verified"
)

// Domain is a custom domain a project is served at. Name is lowercase,
// without a trailing dot, and unique across projects.
type Domain struct {
	Name      string `json:"name"`
	ProjectID string `json:"project_id"`
	// Token is the value the TXT record _pier-challenge.<name> must hold.
	Token      string      `json:"token"`
	State      DomainState `json:"state"`
	CreatedAt  time.Time   `json:"created_at"`
	VerifiedAt time.Time   `json:"verified_at,omitzero"`
}

// DomainStore is the part of the Store that keeps custom domains.
type DomainStore interface {
	// CreateDomain inserts d. A name any project already claims wraps
	// ErrConflict; an unknown project wraps ErrNotFound.
	CreateDomain(ctx context.Context, d *Domain) error
	// GetDomain finds a domain by name; none wraps ErrNotFound.
	GetDomain(ctx context.Context, name string) (*Domain, error)
	// ListDomains lists a project's domains ("" for every project's),
	// ordered by name.
	ListDomains(ctx context.Context, projectID string) ([]*Domain, error)
	// MarkDomainVerified moves the project's domain to verified at the
	// given time. An unknown (project, name) wraps ErrNotFound.
	MarkDomainVerified(ctx context.Context, projectID, name string, at time.Time) error
	// DeleteDomain removes the project's domain; an unknown one wraps
	// ErrNotFound.
	DeleteDomain(ctx context.Context, projectID, name string) error
	// DeleteStaleDomain removes name if it is still pending and was
	// created before the given time (a claim nobody verified), reporting
	// whether it did; a verified or newer claim is left alone.
	DeleteStaleDomain(ctx context.Context, name string, before time.Time) (bool, error)
}
