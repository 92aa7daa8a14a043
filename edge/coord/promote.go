package coord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// PromoteRequest asks for DeploymentID to become the active deployment of
// a project environment. Rollback is the same request with an older
// deployment.
type PromoteRequest struct {
	ProjectID    string
	ProjectName  string
	Environment  string
	DeploymentID string
	// ReadyTimeout bounds the wait for every healthy edge (0: the
	// Coordinator's ReadyTimeout).
	ReadyTimeout time.Duration
	// DrainNotReady: edges still not ready at the deadline are drained
	// (their membership key is deleted, so they are no longer healthy and
	// must rejoin) and the cutover proceeds without them. When false, such
	// edges fail the cutover with a *NotReadyError.
	DrainNotReady bool
}

// EdgeReady is one edge's readiness in a cutover.
type EdgeReady struct {
	EdgeID string
	// Wait is how long after the announcement (the start of the ready wait)
	// the edge was seen ready; 0 if it already was.
	Wait time.Duration
}

// Cutover reports a finished promotion.
type Cutover struct {
	DeploymentID string
	Previous     string      // the deployment the pointer held before ("" if none)
	Edges        []EdgeReady // the healthy edges that were ready, sorted by ID
	LockWait     time.Duration
	ReadyWait    time.Duration
	Total        time.Duration
}

// NotReadyError is returned by Promote when healthy edges did not confirm
// the deployment by the deadline (and were not drained). The pointer was
// not touched.
type NotReadyError struct {
	DeploymentID string
	Missing      []string // edge IDs, sorted
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("coord: deployment %s not ready on %d edge(s): %s",
		e.DeploymentID, len(e.Missing), strings.Join(e.Missing, ", "))
}

// Unwrap makes errors.Is(err, ErrNotReady) hold.
func (e *NotReadyError) Unwrap() error { return ErrNotReady }

// Promote performs the atomic cutover:
//
//  1. create a session (BehaviorRelease) and take the project lock
//     pier/locks/project/<id>, retrying for up to LockWait (ErrLockBusy
//     after that); the session is renewed and the lock watched while held;
//  2. announce the deployment and read the pointer and its ModifyIndex;
//  3. wait, up to the ready timeout, until every healthy edge has written
//     its readiness key (edges that leave the pool meanwhile stop counting);
//  4. if some are missing: fail with *NotReadyError, or with DrainNotReady
//     drain them and go on;
//  5. check the lock is still held and write the pointer with
//     check-and-set on the index read in step 2 (ErrCASFailed if it moved).
//
// If the lock is lost at any point Promote returns an error wrapping
// ErrLockLost and does not write. The lock is released and the session
// destroyed on every path. With no healthy edges the pointer is written at
// once: edges that join later sync it before they register.
func (c *Coordinator) Promote(ctx context.Context, req PromoteRequest) (*Cutover, error) {
	if err := checkIDs("project id", req.ProjectID, "environment", req.Environment, "deployment id", req.DeploymentID); err != nil {
		return nil, err
	}
	start := time.Now()
	key := lockKey(req.ProjectID)
	sess, err := c.kv.CreateSession(ctx, SessionOptions{
		Name:     "pier-cutover/" + req.ProjectID,
		TTL:      c.cfg.SessionTTL,
		Behavior: BehaviorRelease,
	})
	if err != nil {
		return nil, fmt.Errorf("promote %s: create session: %w", req.DeploymentID, err)
	}
	h := c.hold(ctx, key, sess)
	acquired := false
	defer func() {
		h.stop()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		// Release before destroying: Consul applies its lock-delay to keys
		// freed by a destroyed session, not to released ones.
		if acquired {
			if _, err := c.kv.Release(cctx, key, sess); err != nil {
				c.log.Warn("release project lock", "project", req.ProjectID, "err", err)
			}
		}
		if err := c.kv.DestroySession(cctx, sess); err != nil {
			c.log.Warn("destroy cutover session", "project", req.ProjectID, "err", err)
		}
	}()

	value := mustJSON(lockValue{DeploymentID: req.DeploymentID, Since: start.UTC()})
	if err := c.acquire(h.ctx, key, value, sess); err != nil {
		if lost := h.lost(); lost != nil {
			return nil, fmt.Errorf("promote %s: %w", req.DeploymentID, lost)
		}
		return nil, fmt.Errorf("promote %s: %w", req.DeploymentID, err)
	}
	acquired = true
	h.watch()
	lockWait := time.Since(start)

	cut, err := c.cutover(h, req)
	if lost := h.lost(); lost != nil {
		return nil, fmt.Errorf("promote %s: %w", req.DeploymentID, lost)
	}
	if err != nil {
		var nre *NotReadyError
		if errors.As(err, &nre) {
			return nil, err
		}
		return nil, fmt.Errorf("promote %s: %w", req.DeploymentID, err)
	}
	cut.LockWait = lockWait
	cut.Total = time.Since(start)
	c.log.Info("cutover done", "project", req.ProjectID, "environment", req.Environment,
		"deployment", req.DeploymentID, "previous", cut.Previous, "edges", len(cut.Edges),
		"lock_wait", cut.LockWait, "ready_wait", cut.ReadyWait, "total", cut.Total)
	return cut, nil
}

// acquire takes the lock, retrying until LockWait; it sleeps in blocking
// queries on the lock key, so a release wakes it at once.
func (c *Coordinator) acquire(ctx context.Context, key string, value []byte, sess string) error {
	deadline := time.Now().Add(c.cfg.LockWait)
	var idx uint64
	for {
		ok, err := c.kv.Acquire(ctx, key, value, sess)
		if err != nil {
			return fmt.Errorf("acquire project lock: %w", err)
		}
		if ok {
			return nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return ErrLockBusy
		}
		_, next, err := c.kv.List(ctx, key, idx, min(remaining, c.recheck()))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			sleep(ctx, c.cfg.PollInterval)
			continue
		}
		idx = max(next, 1)
	}
}

// recheck bounds blocking waits on one prefix while another condition
// (membership, the lock deadline) may also change.
func (c *Coordinator) recheck() time.Duration { return 5 * c.cfg.PollInterval }

// cutover runs steps 2 to 5 under the lock.
func (c *Coordinator) cutover(h *holder, req PromoteRequest) (*Cutover, error) {
	ctx := h.ctx
	// The announcement is what makes edges fetch the deployment, and a new
	// write of it wakes an edge that is backing off after a failed sync.
	// When it is already announced and every healthy edge already holds the
	// deployment — a rollback's usual case — it is skipped: one fsync'd
	// write less between the request and the pointer.
	if !c.settled(ctx, req.DeploymentID) {
		err := c.Announce(ctx, Announcement{DeploymentID: req.DeploymentID, ProjectID: req.ProjectID, ProjectName: req.ProjectName})
		if err != nil {
			return nil, err
		}
	}
	cut := &Cutover{DeploymentID: req.DeploymentID}
	ptrKey := pointerKey(req.ProjectID, req.Environment)
	var index uint64
	switch p, err := c.kv.Get(ctx, ptrKey); {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("read pointer: %w", err)
	default:
		index = p.ModifyIndex
		if ptr, ok := decodePointer(p); ok {
			cut.Previous = ptr.DeploymentID
		}
	}

	timeout := req.ReadyTimeout
	if timeout <= 0 {
		timeout = c.cfg.ReadyTimeout
	}
	readyStart := time.Now()
	ready, missing, err := c.waitReady(ctx, req.DeploymentID, readyStart, timeout)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		if !req.DrainNotReady {
			return nil, &NotReadyError{DeploymentID: req.DeploymentID, Missing: missing}
		}
		for _, id := range missing {
			c.log.Warn("draining edge not ready for cutover", "edge", id,
				"project", req.ProjectID, "deployment", req.DeploymentID)
			if err := c.kv.Delete(ctx, edgeKey(id)); err != nil {
				return nil, fmt.Errorf("drain edge %s: %w", id, err)
			}
		}
	}
	cut.Edges = ready
	cut.ReadyWait = time.Since(readyStart)

	// Fence: the lock can be lost at any time; make sure it is ours right
	// before the write, and let the CAS catch anyone who wrote meanwhile.
	if err := h.check(ctx); err != nil {
		return nil, err
	}
	value := mustJSON(pointerValue{ProjectName: req.ProjectName, DeploymentID: req.DeploymentID, UpdatedAt: time.Now().UTC()})
	ok, err := c.kv.CAS(ctx, ptrKey, value, index)
	if err != nil {
		return nil, fmt.Errorf("write pointer: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("write pointer %s/%s: %w", req.ProjectID, req.Environment, ErrCASFailed)
	}
	return cut, nil
}

// waitReady waits until every healthy edge has the deployment or the
// deadline passes. It returns the ready healthy edges and the missing ones.
// settled reports whether deploymentID is announced and every healthy
// edge has confirmed it. Errors count as "no": the caller then announces.
func (c *Coordinator) settled(ctx context.Context, deploymentID string) bool {
	if _, err := c.kv.Get(ctx, wantedKey(deploymentID)); err != nil {
		return false
	}
	ready, err := c.ReadyEdges(ctx, deploymentID)
	if err != nil {
		return false
	}
	edges, err := c.Edges(ctx)
	if err != nil || len(edges) == 0 {
		return false
	}
	for _, e := range edges {
		if !slices.Contains(ready, e.ID) {
			return false
		}
	}
	return true
}

func (c *Coordinator) waitReady(ctx context.Context, deploymentID string, start time.Time, timeout time.Duration) ([]EdgeReady, []string, error) {
	deadline := start.Add(timeout)
	prefix := readyPrefix(deploymentID)
	seen := make(map[string]time.Duration) // edge -> when first seen ready
	var idx uint64
	var wait time.Duration
	for first := true; ; first = false {
		pairs, next, err := c.kv.List(ctx, prefix, idx, wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("list ready edges: %w", err)
			}
			c.log.Warn("list ready edges", "deployment", deploymentID, "err", err)
			sleep(ctx, c.cfg.PollInterval)
			continue
		}
		now := time.Now()
		readyNow := make(map[string]bool)
		for _, id := range readyIDs(deploymentID, pairs) {
			readyNow[id] = true
			if _, ok := seen[id]; !ok {
				seen[id] = 0
				if !first {
					seen[id] = now.Sub(start)
				}
			}
		}
		edges, err := c.Edges(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			if time.Now().After(deadline) {
				return nil, nil, err
			}
			c.log.Warn("list edges", "err", err)
			sleep(ctx, c.cfg.PollInterval)
			continue
		}
		var ready []EdgeReady
		var missing []string
		for _, e := range edges {
			if readyNow[e.ID] {
				ready = append(ready, EdgeReady{EdgeID: e.ID, Wait: seen[e.ID]})
			} else {
				missing = append(missing, e.ID)
			}
		}
		remaining := time.Until(deadline)
		if len(missing) == 0 || remaining <= 0 {
			slices.SortFunc(ready, func(a, b EdgeReady) int { return strings.Compare(a.EdgeID, b.EdgeID) })
			slices.Sort(missing)
			return ready, missing, nil
		}
		idx = max(next, 1)
		wait = min(remaining, c.recheck())
	}
}

// holder keeps a cutover session alive and, once the lock is taken,
// watches the lock key. Losing either cancels ctx with an ErrLockLost
// cause.
type holder struct {
	c      *Coordinator
	key    string
	sess   string
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
}

func (c *Coordinator) hold(ctx context.Context, key, sess string) *holder {
	hctx, cancel := context.WithCancelCause(ctx)
	h := &holder{c: c, key: key, sess: sess, ctx: hctx, cancel: cancel}
	h.wg.Add(1)
	go h.renew()
	return h
}

func (h *holder) loseLock(why string) {
	h.cancel(fmt.Errorf("project lock %s: %s: %w", h.key, why, ErrLockLost))
}

// lost returns the ErrLockLost cause, if the lock was lost.
func (h *holder) lost() error {
	if cause := context.Cause(h.ctx); errors.Is(cause, ErrLockLost) {
		return cause
	}
	return nil
}

func (h *holder) stop() {
	h.cancel(nil)
	h.wg.Wait()
}

// renew renews the session every TTL/3; the session ending (or renewals
// failing for a whole TTL) loses the lock.
func (h *holder) renew() {
	defer h.wg.Done()
	ttl := h.c.cfg.SessionTTL
	lastOK := time.Now()
	for sleep(h.ctx, ttl/3) {
		err := h.c.kv.RenewSession(h.ctx, h.sess)
		switch {
		case err == nil:
			lastOK = time.Now()
		case h.ctx.Err() != nil:
			return
		case errors.Is(err, ErrSessionInvalid):
			h.loseLock("session ended")
			return
		case time.Since(lastOK) > ttl:
			h.loseLock("session renewal failing: " + err.Error())
			return
		}
	}
}

// watch starts watching the lock key with blocking queries: a holder
// other than our session, or no key, loses the lock.
func (h *holder) watch() {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		var idx uint64
		for h.ctx.Err() == nil {
			pairs, next, err := h.c.kv.List(h.ctx, h.key, idx, h.c.cfg.SessionTTL)
			if err != nil {
				sleep(h.ctx, h.c.cfg.PollInterval)
				continue
			}
			if !h.holds(pairs) {
				h.loseLock("held by another session or deleted")
				return
			}
			idx = max(next, 1)
		}
	}()
}

func (h *holder) holds(pairs []*Pair) bool {
	for _, p := range pairs {
		if p.Key == h.key {
			return p.Session == h.sess
		}
	}
	return false
}

// check confirms synchronously that the lock is still held.
func (h *holder) check(ctx context.Context) error {
	if lost := h.lost(); lost != nil {
		return lost
	}
	p, err := h.c.kv.Get(ctx, h.key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("check project lock: %w", err)
	}
	if err != nil || p.Session != h.sess {
		h.loseLock("held by another session or deleted")
		return h.lost()
	}
	return nil
}
