// Package data is the per-project key-value data store that server code
// reaches as env.DATA: validation, scoping (a deployment reaches only its
// project's data of its own stage) and expiry. It stores through the
// control.DataStore port (sqlitestore embedded, pgstore in production).
package data

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pierhq/pier/control"
)

// Store is the part of the metadata store the data service uses.
type Store interface {
	GetDeployment(ctx context.Context, id string) (*control.Deployment, error)
	control.DataStore
}

// Config configures the service.
type Config struct {
	// PruneEvery is how often Run deletes expired items. Default 1m.
	PruneEvery time.Duration
	// MaxTTL bounds a TTL. Default 10 years.
	MaxTTL time.Duration
	Logger *slog.Logger
}

// Service is the data store's logic.
type Service struct {
	cfg   Config
	store Store
	log   *slog.Logger

	mu     sync.Mutex
	scopes map[string]control.DataScope // deployment → scope (deployments never change stage)
}

// New returns the service; it starts nothing.
func New(cfg Config, store Store) *Service {
	if store == nil {
		panic("data.New: nil store")
	}
	if cfg.PruneEvery <= 0 {
		cfg.PruneEvery = time.Minute
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 10 * 365 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, store: store, log: cfg.Logger.With("component", "data"), scopes: map[string]control.DataScope{}}
}

// ScopeOf returns the scope of a deployment's code: its project, its stage.
func (s *Service) ScopeOf(ctx context.Context, deploymentID string) (control.DataScope, error) {
	s.mu.Lock()
	sc, ok := s.scopes[deploymentID]
	s.mu.Unlock()
	if ok {
		return sc, nil
	}
	d, err := s.store.GetDeployment(ctx, deploymentID)
	if err != nil {
		return sc, err
	}
	sc = control.DataScope{ProjectID: d.ProjectID, Stage: control.DataStage(d)}
	s.mu.Lock()
	if len(s.scopes) > 100_000 {
		clear(s.scopes)
	}
	s.scopes[deploymentID] = sc
	s.mu.Unlock()
	return sc, nil
}

// ParseStage checks a stage named by an API client: production, staging,
// preview or sandbox:<name>.
func ParseStage(v string) (string, error) {
	switch {
	case v == "":
		return control.Production, nil
	case v == control.Production, v == control.Staging, v == control.Preview:
		return v, nil
	case strings.HasPrefix(v, control.SandboxPrefix):
		name := strings.TrimPrefix(v, control.SandboxPrefix)
		if name != "" && len(name) <= 32 && !strings.HasPrefix(name, "-") && !strings.HasSuffix(name, "-") &&
			!strings.ContainsFunc(name, func(r rune) bool { return !(r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
			return v, nil
		}
	}
	return "", control.Invalid("stage", "want production, staging, preview or sandbox:<name>, not %q", v)
}

// Get returns a live item.
func (s *Service) Get(ctx context.Context, sc control.DataScope, key string) (*control.DataItem, error) {
	if err := control.ValidateDataKey("key", key); err != nil {
		return nil, err
	}
	return s.store.DataGet(ctx, sc, key)
}

// Set validates and stores an item; ttl > 0 makes it expire.
func (s *Service) Set(ctx context.Context, sc control.DataScope, item *control.DataItem, ttl time.Duration) error {
	if ttl < 0 || ttl > s.cfg.MaxTTL {
		return control.Invalid("ttl", "a TTL is a positive number of seconds up to %d", int64(s.cfg.MaxTTL.Seconds()))
	}
	if err := control.ValidateDataItem(item); err != nil {
		return err
	}
	item.ExpiresAt = time.Time{}
	if ttl > 0 {
		item.ExpiresAt = time.Now().Add(ttl)
	}
	return s.store.DataSet(ctx, sc, item)
}

// Delete removes a key, reporting whether it existed.
func (s *Service) Delete(ctx context.Context, sc control.DataScope, key string) (bool, error) {
	if err := control.ValidateDataKey("key", key); err != nil {
		return false, err
	}
	return s.store.DataDelete(ctx, sc, key)
}

// List returns a page of items and the cursor of the next page ("" at
// the end).
func (s *Service) List(ctx context.Context, sc control.DataScope, q control.DataQuery) ([]control.DataItem, string, error) {
	if err := control.ValidateDataKey("prefix", q.Prefix); err != nil {
		return nil, "", err
	}
	if q.Limit < 0 || q.Limit > control.MaxDataList {
		return nil, "", control.Invalid("limit", "1 to %d (0: %d)", control.MaxDataList, control.MaxDataList)
	}
	if q.Limit == 0 {
		q.Limit = control.MaxDataList
	}
	items, err := s.store.DataList(ctx, sc, q)
	if err != nil {
		return nil, "", err
	}
	cursor := ""
	if len(items) == q.Limit {
		cursor = items[len(items)-1].Key
	}
	return items, cursor, nil
}

// Run deletes expired items every PruneEvery until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n, err := s.store.PruneData(ctx, time.Now())
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("prune expired data", "err", err)
			case n > 0:
				s.log.Debug("pruned expired data", "items", n)
			}
		}
	}
}

// Do runs one env.DATA call of a deployment's code and returns its
// JSON-ready result.
func (s *Service) Do(ctx context.Context, call Call) (any, error) {
	sc, err := s.ScopeOf(ctx, call.DeploymentID)
	if err != nil {
		return nil, fmt.Errorf("deployment %q: %w", call.DeploymentID, err)
	}
	switch call.Method {
	case "get":
		it, err := s.Get(ctx, sc, call.Key)
		if err != nil {
			return nil, err
		}
		return it, nil
	case "set":
		it := &control.DataItem{Key: call.Key, Value: call.Value, Labels: call.Labels}
		if err := s.Set(ctx, sc, it, time.Duration(call.TTL*float64(time.Second))); err != nil {
			return nil, err
		}
		return it, nil
	case "delete":
		return s.Delete(ctx, sc, call.Key)
	case "list":
		items, cursor, err := s.List(ctx, sc, control.DataQuery{Prefix: call.Prefix, Label: call.Label, After: call.After, Limit: call.Limit})
		if err != nil {
			return nil, err
		}
		return Page{Items: items, Cursor: cursor}, nil
	}
	return nil, control.Invalid("method", "want get, set, delete or list, not %q", call.Method)
}

// Call is Do's input (the fields of edge.DataCall, which control/api
// decodes).
type Call struct {
	DeploymentID, Method string
	Key                  string
	Value                []byte
	Labels               []string
	TTL                  float64
	Prefix, Label, After string
	Limit                int
}

// Page is a list's result.
type Page struct {
	Items  []control.DataItem `json:"items"`
	Cursor string             `json:"cursor,omitempty"`
}
