// Package coord is Pier's coordination protocol: the active-deployment
// pointers, deployment announcements, per-edge readiness keys, edge
// membership and the per-project cutover lock, all laid out over a small
// Consul-shaped key/value port (KV).
//
// Two adapters implement KV: coord/consulkv (Consul KV + sessions, in
// production) and coord/raftkv (single-node hashicorp/raft persisted in the
// data dir, the embedded default). coord/coordtest is the conformance suite
// both pass. The protocol itself (Coordinator) is written once, here, so
// the same cutover runs on either backend.
//
// Key layout (the only code that knows it):
//
//	pier/edges/<edge-id>                              membership, bound to the edge's session (deleted when it expires)
//	pier/wanted/<deployment-id>                       announcement: edges should sync this deployment
//	pier/deployments/<deployment-id>/ready/<edge-id>  written by an edge once it holds the whole deployment
//	pier/projects/<project-id>/<environment>          the active-deployment pointer
//	pier/locks/project/<project-id>                   the cutover lock (session lock)
//	pier/domains/<domain>                             a verified custom domain and its project (domains.go)
//	pier/tls/...                                      certificates shared by every edge (edge/certs)
//
// Imports: edge, the standard library.
package coord

import (
	"context"
	"errors"
	"time"
)

// Errors callers branch on.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("coord: key not found")
	// ErrSessionInvalid: the session expired or was destroyed.
	ErrSessionInvalid = errors.New("coord: session invalid")
	// ErrCASFailed: a check-and-set lost (the pointer moved).
	ErrCASFailed = errors.New("coord: check-and-set failed")
	// ErrLockLost: the cutover lock was lost while held.
	ErrLockLost = errors.New("coord: lock lost")
	// ErrNotReady: not every healthy edge confirmed by the deadline.
	ErrNotReady = errors.New("coord: edges not ready")
)

// Pair is one key/value entry, with Consul's indexes.
type Pair struct {
	Key         string
	Value       []byte
	CreateIndex uint64
	ModifyIndex uint64
	LockIndex   uint64
	Session     string // holder, when locked
}

// Behavior is what happens to keys a session holds when it ends.
type Behavior string

const (
	BehaviorRelease Behavior = "release" // keys stay, unlocked
	BehaviorDelete  Behavior = "delete"  // keys are deleted
)

// SessionOptions configure a new session.
type SessionOptions struct {
	Name     string
	TTL      time.Duration // 10s..24h; the holder must Renew within it
	Behavior Behavior
}

// KV is the coordination port: Consul's KV and session semantics. Indexes
// only grow. A write that changes a pair sets its ModifyIndex above every
// earlier one (a write that changes nothing may leave it, as Consul does);
// List's index is at least the highest ModifyIndex under the prefix (the
// prefix's own index in Consul, the store's in raftkv).
type KV interface {
	// Get returns the pair at key or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (*Pair, error)
	// List returns every pair under prefix and an index for it. With
	// waitIndex > 0 it blocks until something under prefix changes past
	// waitIndex, wait elapses, or ctx ends (Consul blocking query); on a
	// timeout it returns the unchanged pairs and index without error.
	List(ctx context.Context, prefix string, waitIndex uint64, wait time.Duration) ([]*Pair, uint64, error)
	// Put writes key unconditionally.
	Put(ctx context.Context, key string, value []byte) error
	// CAS writes key only if its ModifyIndex is index (0: only if absent).
	// It reports whether the write happened.
	CAS(ctx context.Context, key string, value []byte, index uint64) (bool, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// CreateSession starts a session that ends unless renewed within TTL.
	CreateSession(ctx context.Context, opts SessionOptions) (string, error)
	// RenewSession extends it; ErrSessionInvalid once it has ended.
	RenewSession(ctx context.Context, id string) error
	// DestroySession ends it now, applying its Behavior to held keys.
	DestroySession(ctx context.Context, id string) error
	// Acquire writes key with the session as holder, if no other live
	// session holds it. It reports whether the lock was taken.
	Acquire(ctx context.Context, key string, value []byte, session string) (bool, error)
	// Release gives the key up if session holds it.
	Release(ctx context.Context, key string, session string) (bool, error)
}
