// Package hosts is the edge's table of verified custom domains: which
// project each serves. It is fed from the coordination state
// (coord.Coordinator.WatchDomains) and read on every request that is not
// under the base domain, and by edge/certs to decide which names may get
// a certificate. Reads take no locks.
//
// Imports: edge/coord (for DomainRoute).
package hosts

import (
	"net"
	"strings"
	"sync/atomic"

	"github.com/pierhq/pier/edge/coord"
)

// Table maps verified custom domains to project names. The zero value is
// an empty table, ready to use.
type Table struct {
	m      atomic.Pointer[map[string]string]
	loaded atomic.Bool
}

// Set replaces the table with routes.
func (t *Table) Set(routes []coord.DomainRoute) {
	m := make(map[string]string, len(routes))
	for _, r := range routes {
		m[strings.ToLower(r.Domain)] = strings.ToLower(r.ProjectName)
	}
	t.m.Store(&m)
	t.loaded.Store(true)
}

// Loaded reports whether Set was called once.
func (t *Table) Loaded() bool { return t.loaded.Load() }

// Project returns the name of the project a host (with or without a
// port, any case, a trailing dot allowed) serves.
func (t *Table) Project(host string) (string, bool) {
	m := t.m.Load()
	if m == nil {
		return "", false
	}
	p, ok := (*m)[normalize(host)]
	return p, ok
}

// Verified reports whether host is a verified custom domain.
func (t *Table) Verified(host string) bool {
	_, ok := t.Project(host)
	return ok
}

func normalize(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
