// Package consulkv is the production coordination backend: coord.KV over
// Consul's KV store and sessions (github.com/hashicorp/consul/api), plus
// an edge's registration as the Consul service "pier-edge" with an HTTP
// health check that the edge's membership session can be bound to, so an
// edge whose /healthz goes critical loses its membership key on its own.
//
// A Store talks to one Consul agent's HTTP API, normally the local agent
// (sessions are created on the agent's node, and a session can only be
// bound to checks of that node). Consul semantics the protocol relies on:
//   - sessions are created with LockDelay 0, so a key freed by an ended
//     session can be taken again at once (Consul's default is 15s);
//   - session TTLs must lie within the agent's session_ttl_min (default
//     10s; tests run with 1s) and 24h; Consul expires a session between
//     TTL and 2×TTL after its last renewal;
//   - every session is also bound to the node's serfHealth check, as
//     Consul does by default, and to Config.SessionChecks.
//   - a write that changes nothing (same value, flags and holder) is
//     skipped by Consul: the pair keeps its ModifyIndex and no blocking
//     query wakes;
//   - List's index is the prefix's own (the highest write or delete under
//     it), not the store's: right for a blocking List of the same prefix.
//
// Vendor errors are translated at the boundary: a missing key is
// coord.ErrNotFound, an ended or unknown session coord.ErrSessionInvalid.
//
// ACLs: with ACLs enabled the token (Config.Token, or the agent's default
// token) needs, for the control plane (consul/policies/pier-control.hcl)
//
//	key_prefix "pier/"     { policy = "write" }  // Config.KeyPrefix + "pier/" when prefixed
//	session_prefix ""      { policy = "write" }  // sessions on the agent's node
//	service "pier-edge"    { policy = "read" }   // HealthyEdges
//	node_prefix ""         { policy = "read" }
//
// and for an edge (consul/policies/pier-edge.hcl) read on "pier/", write on
// "pier/edges/" and "pier/deployments/", session write, write on the
// service "pier-edge" (RegisterEdge, DeregisterEdge) and node read
// (RegisterEdge waits on the catalog's view of its check).
//
// Only the composition root (control/cmd/pier) and test-support packages
// import it; everyone else codes against coord.KV. This is the only home
// of github.com/hashicorp/consul/api. Imports: edge/coord.
package consulkv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pierhq/pier/edge/coord"
)

// DefaultRequestTimeout is Config.RequestTimeout's default.
const DefaultRequestTimeout = 10 * time.Second

// consulDefaultWait is what Consul waits in a blocking query without a
// wait time.
const consulDefaultWait = 5 * time.Minute

// Config configures a Store.
type Config struct {
	// Address of the Consul agent's HTTP API: "host:port", or a URL
	// ("https://host:8501"). Empty: CONSUL_HTTP_ADDR, else 127.0.0.1:8500.
	Address string
	// Token is the ACL token. Empty: CONSUL_HTTP_TOKEN, else the agent's
	// default token.
	Token string
	// Datacenter to talk to. Empty: the agent's own.
	Datacenter string
	// KeyPrefix is prepended to every key the Store reads or writes and
	// stripped from every key it returns (e.g. "pier-staging/" to share a
	// Consul cluster; tests give each store its own). Empty in production.
	KeyPrefix string
	// SessionChecks are health check IDs of the agent's node (e.g. the
	// edge's check from RegisterEdge) that every session the Store creates
	// is bound to, besides serfHealth: the session ends, and its keys are
	// released or deleted, as soon as one of them goes critical.
	SessionChecks []string
	// RequestTimeout bounds each request, so a hung connection to the
	// agent surfaces as an error; a blocking List gets its wait on top.
	// Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Logger receives the store's logs. Nil discards.
	Logger *slog.Logger
}

// Store is a coord.KV on a Consul agent. It is safe for concurrent use and
// holds no resources besides idle HTTP connections; it has no Close.
type Store struct {
	cfg    Config
	client *api.Client
	log    *slog.Logger
}

var _ coord.KV = (*Store)(nil)

// New returns a Store for the agent at cfg.Address. It does no I/O.
// Fields left empty fall back to the consul CLI's environment variables
// (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT, CONSUL_HTTP_SSL,
// ...), as Nomad-run tasks expect.
func New(cfg Config) (*Store, error) {
	if strings.HasPrefix(cfg.KeyPrefix, "/") {
		return nil, errors.New("consulkv: key prefix must not start with a slash")
	}
	for _, id := range cfg.SessionChecks {
		if id == "" {
			return nil, errors.New("consulkv: empty session check id")
		}
	}
	cfg.SessionChecks = slices.Clone(cfg.SessionChecks)
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	ac := api.DefaultConfig()
	if cfg.Address != "" {
		ac.Address = cfg.Address
	}
	if cfg.Token != "" {
		ac.Token = cfg.Token
	}
	if cfg.Datacenter != "" {
		ac.Datacenter = cfg.Datacenter
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consulkv: consul client: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{cfg: cfg, client: client, log: log.With("component", "consulkv")}, nil
}

// WithSessionChecks returns a Store sharing s's client whose sessions are
// also bound to checkIDs (in addition to s's own SessionChecks). An edge
// passes the result to coord.New, so its membership session ends when its
// health check goes critical.
func (s *Store) WithSessionChecks(checkIDs ...string) *Store {
	c := *s
	c.cfg.SessionChecks = append(slices.Clone(s.cfg.SessionChecks), checkIDs...)
	return &c
}

func (s *Store) key(k string) string { return s.cfg.KeyPrefix + k }

func (s *Store) unkey(k string) string { return strings.TrimPrefix(k, s.cfg.KeyPrefix) }

func (s *Store) pair(p *api.KVPair) *coord.Pair {
	return &coord.Pair{
		Key:         s.unkey(p.Key),
		Value:       p.Value,
		CreateIndex: p.CreateIndex,
		ModifyIndex: p.ModifyIndex,
		LockIndex:   p.LockIndex,
		Session:     p.Session,
	}
}

func checkKey(key string) error {
	if key == "" {
		return errors.New("consulkv: empty key")
	}
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("consulkv: key %q must not start with a slash", key)
	}
	return nil
}

// bound limits ctx to the request timeout plus extra (a blocking wait).
func (s *Store) bound(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.RequestTimeout+extra)
}

func query(ctx context.Context) *api.QueryOptions { return (&api.QueryOptions{}).WithContext(ctx) }

func write(ctx context.Context) *api.WriteOptions { return (&api.WriteOptions{}).WithContext(ctx) }

// Get returns the pair at key or an error wrapping coord.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (*coord.Pair, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	p, _, err := s.client.KV().Get(s.key(key), query(ctx))
	if err != nil {
		return nil, wrap("get", key, err)
	}
	if p == nil {
		return nil, fmt.Errorf("consulkv: get %s: %w", key, coord.ErrNotFound)
	}
	return s.pair(p), nil
}

// List returns the pairs under prefix, sorted by key, and Consul's index
// for the prefix (its highest write or delete). With waitIndex > 0 it is a Consul blocking query: it
// returns when the prefix changes past waitIndex, after wait (Consul adds
// up to wait/16 of jitter; wait <= 0 means Consul's default, 5m), or when
// ctx ends.
func (s *Store) List(ctx context.Context, prefix string, waitIndex uint64, wait time.Duration) ([]*coord.Pair, uint64, error) {
	if strings.HasPrefix(prefix, "/") {
		return nil, 0, fmt.Errorf("consulkv: prefix %q must not start with a slash", prefix)
	}
	var extra time.Duration
	if waitIndex > 0 {
		wait = max(wait, 0)
		extra = wait
		if wait == 0 {
			extra = consulDefaultWait
		}
		extra += extra / 16 // Consul's jitter
	}
	ctx, cancel := s.bound(ctx, extra)
	defer cancel()
	q := query(ctx)
	if waitIndex > 0 {
		q.WaitIndex = waitIndex
		q.WaitTime = wait
	}
	pairs, meta, err := s.client.KV().List(s.key(prefix), q)
	if err != nil {
		return nil, 0, wrap("list", prefix, err)
	}
	out := make([]*coord.Pair, 0, len(pairs))
	for _, p := range pairs {
		out = append(out, s.pair(p))
	}
	return out, meta.LastIndex, nil
}

// Put writes key unconditionally.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	if _, err := s.client.KV().Put(&api.KVPair{Key: s.key(key), Value: value}, write(ctx)); err != nil {
		return wrap("put", key, err)
	}
	return nil
}

// CAS writes key only if its ModifyIndex is index (0: only if absent).
func (s *Store) CAS(ctx context.Context, key string, value []byte, index uint64) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	ok, _, err := s.client.KV().CAS(&api.KVPair{Key: s.key(key), Value: value, ModifyIndex: index}, write(ctx))
	if err != nil {
		return false, wrap("check-and-set", key, err)
	}
	return ok, nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	if _, err := s.client.KV().Delete(s.key(key), write(ctx)); err != nil {
		return wrap("delete", key, err)
	}
	return nil
}

// CreateSession creates a session on the agent's node with LockDelay 0,
// bound to serfHealth and to the Store's SessionChecks.
func (s *Store) CreateSession(ctx context.Context, opts coord.SessionOptions) (string, error) {
	if opts.TTL <= 0 {
		return "", errors.New("consulkv: create session: a positive TTL is required")
	}
	behavior := api.SessionBehaviorRelease
	switch opts.Behavior {
	case "", coord.BehaviorRelease:
	case coord.BehaviorDelete:
		behavior = api.SessionBehaviorDelete
	default:
		return "", fmt.Errorf("consulkv: create session: unknown behavior %q", opts.Behavior)
	}
	// api.Session.Create omits a zero LockDelay (so Consul applies its 15s
	// default): write the body ourselves.
	body := map[string]any{
		"Name":      opts.Name,
		"LockDelay": "0s",
		"Behavior":  behavior,
		"TTL":       opts.TTL.String(),
	}
	if len(s.cfg.SessionChecks) > 0 {
		checks := make([]api.ServiceCheck, 0, len(s.cfg.SessionChecks))
		for _, id := range s.cfg.SessionChecks {
			checks = append(checks, api.ServiceCheck{ID: id})
		}
		body["ServiceChecks"] = checks
	}
	var out struct{ ID string }
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	if _, err := s.client.Raw().Write("/v1/session/create", body, &out, write(ctx)); err != nil {
		return "", wrap("create session", opts.Name, err)
	}
	if out.ID == "" {
		return "", errors.New("consulkv: create session: consul returned no session id")
	}
	return out.ID, nil
}

// RenewSession renews the session's TTL; coord.ErrSessionInvalid once it
// has ended.
func (s *Store) RenewSession(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("consulkv: renew session: empty id: %w", coord.ErrSessionInvalid)
	}
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	entry, _, err := s.client.Session().Renew(id, write(ctx))
	if err != nil {
		return wrap("renew session", id, err)
	}
	if entry == nil {
		return fmt.Errorf("consulkv: renew session %s: %w", id, coord.ErrSessionInvalid)
	}
	return nil
}

// DestroySession ends the session now; its keys are released or deleted
// by its Behavior. An unknown session is not an error.
func (s *Store) DestroySession(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	if _, err := s.client.Session().Destroy(id, write(ctx)); err != nil {
		return wrap("destroy session", id, err)
	}
	return nil
}

// Acquire writes key with session as its holder if no other session
// holds it (Consul's ?acquire=).
func (s *Store) Acquire(ctx context.Context, key string, value []byte, session string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	if session == "" {
		return false, fmt.Errorf("consulkv: acquire %s: empty session: %w", key, coord.ErrSessionInvalid)
	}
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	ok, _, err := s.client.KV().Acquire(&api.KVPair{Key: s.key(key), Value: value, Session: session}, write(ctx))
	if err != nil {
		return false, wrap("acquire", key, err)
	}
	return ok, nil
}

// releaseAttempts bounds Release's retries when the key's value changes
// between the read and the unlock.
const releaseAttempts = 10

// Release gives key up if session holds it, keeping its value. Consul's
// ?release= would replace the value with the request body, so Release
// reads the key and unlocks it in a transaction that checks the key did
// not change meanwhile.
func (s *Store) Release(ctx context.Context, key string, session string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	full := s.key(key)
	ctx, cancel := s.bound(ctx, 0)
	defer cancel()
	for range releaseAttempts {
		p, _, err := s.client.KV().Get(full, query(ctx))
		if err != nil {
			return false, wrap("release", key, err)
		}
		if p == nil || p.Session == "" || p.Session != session {
			return false, nil
		}
		ops := api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: full, Index: p.ModifyIndex}},
			{KV: &api.KVTxnOp{Verb: api.KVUnlock, Key: full, Value: p.Value, Flags: p.Flags, Session: session}},
		}
		ok, resp, _, err := s.client.Txn().Txn(ops, query(ctx))
		if err != nil {
			return false, wrap("release", key, err)
		}
		if ok {
			return true, nil
		}
		if resp != nil && len(resp.Errors) > 0 && resp.Errors[0].OpIndex != 0 {
			return false, nil // the unlock failed: not the holder any more
		}
		// The key changed between the read and the transaction: read again.
	}
	return false, fmt.Errorf("consulkv: release %s: the key kept changing", key)
}

// wrap translates a Consul error: 404 is coord.ErrNotFound, an unknown or
// ended session coord.ErrSessionInvalid; anything else is wrapped as is.
func wrap(op, subject string, err error) error {
	if sentinel := translate(err); sentinel != nil {
		return fmt.Errorf("consulkv: %s %s: %w", op, subject, sentinel)
	}
	return fmt.Errorf("consulkv: %s %s: %w", op, subject, err)
}

func translate(err error) error {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		if isSessionError(se.Body) {
			return coord.ErrSessionInvalid
		}
		return coord.ErrNotFound
	}
	if isSessionError(err.Error()) {
		return coord.ErrSessionInvalid
	}
	return nil
}

// isSessionError matches Consul's messages for a session that does not
// exist (any more): `invalid session "<id>"` (KV acquire, lock in a txn)
// and `Session id '<id>' not found` (renew).
func isSessionError(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "invalid session \"") ||
		(strings.Contains(m, "session id") && strings.Contains(m, "not found"))
}
