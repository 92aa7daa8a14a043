package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Custom domains and certificates, under their own prefixes:
//
//	pier/domains/<domain>  a verified custom domain: the project it serves (JSON)
//	pier/tls/...           certificate storage shared by every edge (edge/certs)
const (
	prefixDomains = "pier/domains/"
	// TLSPrefix is where edge/certs keeps certificates, keys, ACME
	// accounts and its issuance locks.
	TLSPrefix = "pier/tls/"
)

// DomainRoute is a verified custom domain and the project it serves.
type DomainRoute struct {
	Domain      string `json:"-"`
	ProjectID   string `json:"project_id"`
	ProjectName string `json:"project_name"`
}

// PutDomain publishes a verified domain: every edge serves the project's
// production deployment at it from then on.
func (c *Coordinator) PutDomain(ctx context.Context, r DomainRoute) error {
	if err := checkIDs("domain", r.Domain, "project id", r.ProjectID); err != nil {
		return err
	}
	if err := c.kv.Put(ctx, prefixDomains+strings.ToLower(r.Domain), mustJSON(r)); err != nil {
		return fmt.Errorf("put domain %s: %w", r.Domain, err)
	}
	return nil
}

// DeleteDomain stops every edge serving a domain; a missing one is not an
// error.
func (c *Coordinator) DeleteDomain(ctx context.Context, domain string) error {
	if err := checkID("domain", domain); err != nil {
		return err
	}
	if err := c.kv.Delete(ctx, prefixDomains+strings.ToLower(domain)); err != nil {
		return fmt.Errorf("delete domain %s: %w", domain, err)
	}
	return nil
}

// Domains lists every published domain, by name.
func (c *Coordinator) Domains(ctx context.Context) ([]DomainRoute, error) {
	pairs, _, err := c.kv.List(ctx, prefixDomains, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("read domains: %w", err)
	}
	return decodeDomains(pairs), nil
}

// WatchDomains calls fn with the published domains at once, then after
// every change, from blocking queries on pier/domains/. Errors are logged
// and retried with backoff; it returns ctx.Err() when ctx ends.
func (c *Coordinator) WatchDomains(ctx context.Context, fn func([]DomainRoute)) error {
	bo := backoff{base: c.cfg.PollInterval, limit: 10 * time.Second}
	var (
		last  []DomainRoute
		index uint64
		first = true
	)
	for {
		pairs, next, err := c.kv.List(ctx, prefixDomains, index, watchWait)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			c.log.Warn("watch domains", "err", err)
			if !sleep(ctx, bo.next()) {
				return ctx.Err()
			}
			continue
		}
		bo.reset()
		index = max(next, 1)
		routes := decodeDomains(pairs)
		if first || !reflect.DeepEqual(routes, last) {
			first, last = false, routes
			fn(routes)
		}
	}
}

func decodeDomains(pairs []*Pair) []DomainRoute {
	out := []DomainRoute{}
	for _, p := range pairs {
		name, ok := strings.CutPrefix(p.Key, prefixDomains)
		if !ok || name == "" || strings.Contains(name, "/") {
			continue
		}
		var r DomainRoute
		if err := json.Unmarshal(p.Value, &r); err != nil || r.ProjectName == "" {
			continue
		}
		r.Domain = name
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}
