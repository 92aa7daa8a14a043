package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// ErrLockBusy: Promote could not take the project lock within LockWait
// (another cutover of the project is running).
var ErrLockBusy = errors.New("coord: project lock busy")

// Config tunes a Coordinator. Zero fields take DefaultConfig's values.
type Config struct {
	SessionTTL   time.Duration // default 15s: membership and cutover sessions
	LockWait     time.Duration // default 30s: Promote's wait for the project lock
	ReadyTimeout time.Duration // default 60s: Promote's wait for every healthy edge
	PollInterval time.Duration // default 200ms, for waits that are not blocking queries
	Logger       *slog.Logger  // nil: discard
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		SessionTTL:   15 * time.Second,
		LockWait:     30 * time.Second,
		ReadyTimeout: 60 * time.Second,
		PollInterval: 200 * time.Millisecond,
	}
}

// Coordinator runs Pier's coordination protocol over a KV: the control
// side (announce, promote, roll back) and the edge side (watch, join,
// readiness). It holds no state of its own and is safe for concurrent use.
type Coordinator struct {
	cfg Config
	kv  KV
	log *slog.Logger
}

// New returns a Coordinator over kv. It starts nothing; kv is required.
func New(cfg Config, kv KV) *Coordinator {
	if kv == nil {
		panic("coord: New with nil KV")
	}
	def := DefaultConfig()
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = def.SessionTTL
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = def.LockWait
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = def.ReadyTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = def.PollInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{cfg: cfg, kv: kv, log: log.With("component", "coord")}
}

// Pointer is a project environment's active deployment.
type Pointer struct {
	ProjectID    string
	ProjectName  string
	Environment  string
	DeploymentID string
	UpdatedAt    time.Time
	ModifyIndex  uint64
}

// Announcement asks every edge to sync a deployment (pier/wanted/<id>).
type Announcement struct {
	DeploymentID string `json:"deployment_id"`
	ProjectID    string `json:"project_id"`
	ProjectName  string `json:"project_name"`
}

// EdgeInfo describes one edge in the pool (pier/edges/<id>).
type EdgeInfo struct {
	ID       string    `json:"id"`
	Addr     string    `json:"addr"`
	JoinedAt time.Time `json:"joined_at"`
}

// State is what edges watch: every active pointer and every deployment
// they should hold. Index is the KV index it was read at.
type State struct {
	Index    uint64
	Pointers []Pointer      // sorted by project, then environment
	Wanted   []Announcement // sorted by deployment ID
}

// Announce records that edges should sync the deployment.
func (c *Coordinator) Announce(ctx context.Context, a Announcement) error {
	if err := checkIDs("deployment id", a.DeploymentID, "project id", a.ProjectID); err != nil {
		return err
	}
	if err := c.kv.Put(ctx, wantedKey(a.DeploymentID), mustJSON(a)); err != nil {
		return fmt.Errorf("announce %s: %w", a.DeploymentID, err)
	}
	return nil
}

// Retract withdraws the announcement and every edge's readiness key for
// the deployment. It does not touch pointers.
func (c *Coordinator) Retract(ctx context.Context, deploymentID string) error {
	if err := checkID("deployment id", deploymentID); err != nil {
		return err
	}
	if err := c.kv.Delete(ctx, wantedKey(deploymentID)); err != nil {
		return fmt.Errorf("retract %s: %w", deploymentID, err)
	}
	pairs, _, err := c.kv.List(ctx, readyPrefix(deploymentID), 0, 0)
	if err != nil {
		return fmt.Errorf("retract %s: list ready edges: %w", deploymentID, err)
	}
	for _, p := range pairs {
		if err := c.kv.Delete(ctx, p.Key); err != nil {
			return fmt.Errorf("retract %s: %w", deploymentID, err)
		}
	}
	return nil
}

// Pointer returns the active deployment of a project environment, or an
// error wrapping ErrNotFound when none was promoted.
func (c *Coordinator) Pointer(ctx context.Context, projectID, env string) (*Pointer, error) {
	if err := checkIDs("project id", projectID, "environment", env); err != nil {
		return nil, err
	}
	p, err := c.kv.Get(ctx, pointerKey(projectID, env))
	if err != nil {
		return nil, fmt.Errorf("pointer %s/%s: %w", projectID, env, err)
	}
	ptr, ok := decodePointer(p)
	if !ok {
		return nil, fmt.Errorf("pointer %s/%s: unreadable value", projectID, env)
	}
	return &ptr, nil
}

// Pointers returns every environment's pointer of a project, sorted by
// environment.
func (c *Coordinator) Pointers(ctx context.Context, projectID string) ([]Pointer, error) {
	if err := checkID("project id", projectID); err != nil {
		return nil, err
	}
	pairs, _, err := c.kv.List(ctx, projectPrefix(projectID), 0, 0)
	if err != nil {
		return nil, fmt.Errorf("pointers %s: %w", projectID, err)
	}
	return decodePointers(pairs), nil
}

// DeleteProject removes every pointer of the project, so edges stop
// routing it.
func (c *Coordinator) DeleteProject(ctx context.Context, projectID string) error {
	if err := checkID("project id", projectID); err != nil {
		return err
	}
	pairs, _, err := c.kv.List(ctx, projectPrefix(projectID), 0, 0)
	if err != nil {
		return fmt.Errorf("delete project %s: %w", projectID, err)
	}
	for _, p := range pairs {
		if err := c.kv.Delete(ctx, p.Key); err != nil {
			return fmt.Errorf("delete project %s: %w", projectID, err)
		}
	}
	return nil
}

// DeletePointer removes one environment's pointer (a retired preview), so
// edges stop routing <environment>.<project>. A missing pointer is not an
// error. It takes no lock: a cutover racing it loses its check-and-set.
func (c *Coordinator) DeletePointer(ctx context.Context, projectID, env string) error {
	if err := checkIDs("project id", projectID, "environment", env); err != nil {
		return err
	}
	if err := c.kv.Delete(ctx, pointerKey(projectID, env)); err != nil {
		return fmt.Errorf("delete pointer %s/%s: %w", projectID, env, err)
	}
	return nil
}

// MarkReady records that the edge holds the whole deployment.
func (c *Coordinator) MarkReady(ctx context.Context, deploymentID, edgeID string) error {
	if err := checkIDs("deployment id", deploymentID, "edge id", edgeID); err != nil {
		return err
	}
	v := mustJSON(readyValue{ReadyAt: time.Now().UTC()})
	if err := c.kv.Put(ctx, readyKey(deploymentID, edgeID), v); err != nil {
		return fmt.Errorf("mark %s ready on %s: %w", deploymentID, edgeID, err)
	}
	return nil
}

// Unready withdraws the edge's readiness for the deployment (it evicted it).
func (c *Coordinator) Unready(ctx context.Context, deploymentID, edgeID string) error {
	if err := checkIDs("deployment id", deploymentID, "edge id", edgeID); err != nil {
		return err
	}
	if err := c.kv.Delete(ctx, readyKey(deploymentID, edgeID)); err != nil {
		return fmt.Errorf("unready %s on %s: %w", deploymentID, edgeID, err)
	}
	return nil
}

// ReadyEdges returns the IDs of edges that hold the deployment, sorted.
func (c *Coordinator) ReadyEdges(ctx context.Context, deploymentID string) ([]string, error) {
	if err := checkID("deployment id", deploymentID); err != nil {
		return nil, err
	}
	pairs, _, err := c.kv.List(ctx, readyPrefix(deploymentID), 0, 0)
	if err != nil {
		return nil, fmt.Errorf("ready edges of %s: %w", deploymentID, err)
	}
	return readyIDs(deploymentID, pairs), nil
}

func readyIDs(deploymentID string, pairs []*Pair) []string {
	prefix := readyPrefix(deploymentID)
	ids := []string{}
	for _, p := range pairs {
		if id, ok := strings.CutPrefix(p.Key, prefix); ok && id != "" && !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
	}
	return ids
}

// Edges returns the healthy edges: members whose key is held by a live
// session, sorted by ID.
func (c *Coordinator) Edges(ctx context.Context) ([]EdgeInfo, error) {
	pairs, _, err := c.kv.List(ctx, prefixEdges, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("list edges: %w", err)
	}
	out := []EdgeInfo{}
	for _, p := range pairs {
		id, ok := strings.CutPrefix(p.Key, prefixEdges)
		if !ok || id == "" || strings.Contains(id, "/") || p.Session == "" {
			continue
		}
		var e EdgeInfo
		if err := json.Unmarshal(p.Value, &e); err != nil {
			c.log.Warn("unreadable edge membership", "edge", id, "err", err)
		}
		e.ID = id
		out = append(out, e)
	}
	return out, nil
}

// backoff doubles from base up to limit.
type backoff struct {
	base, limit, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.base
	} else {
		b.cur = min(b.cur*2, b.limit)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends, reporting whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
