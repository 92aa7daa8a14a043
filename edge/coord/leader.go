package coord

import (
	"context"
	"time"
)

// prefixLeaders holds one lock per leadership (pier/locks/leader/<name>):
// the holder of pier/locks/leader/scheduler fires scheduled functions.
const prefixLeaders = "pier/locks/leader/"

// Lead campaigns for the leadership name until ctx ends: whenever this
// process holds the lock pier/locks/leader/<name> (a session lock, as the
// cutover's), it runs fn with a context that is cancelled as soon as the
// lock may be lost (session ended, renewals failing for a TTL, the key
// taken or deleted). fn must stop acting when its context ends; when it
// returns, the lock is released and the campaign starts over. id names the
// candidate in the lock's value. Lead returns ctx's error.
func (c *Coordinator) Lead(ctx context.Context, name, id string, fn func(ctx context.Context)) error {
	if err := checkIDs("leadership", name, "candidate", id); err != nil {
		return err
	}
	key := prefixLeaders + name
	for ctx.Err() == nil {
		sess, err := c.kv.CreateSession(ctx, SessionOptions{Name: "pier-leader/" + name, TTL: c.cfg.SessionTTL, Behavior: BehaviorRelease})
		if err != nil {
			c.log.Debug("leader session", "leadership", name, "err", err)
			sleep(ctx, c.cfg.PollInterval)
			continue
		}
		h := c.hold(ctx, key, sess)
		acquired := c.campaign(h, key, mustJSON(lockValue{DeploymentID: id, Since: time.Now().UTC()}), sess)
		if acquired {
			c.log.Info("leadership acquired", "leadership", name, "id", id)
			h.watch()
			fn(h.ctx)
			c.log.Info("leadership ended", "leadership", name, "id", id, "lost", h.lost())
		}
		h.stop()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if acquired {
			_, _ = c.kv.Release(cctx, key, sess)
		}
		_ = c.kv.DestroySession(cctx, sess)
		cancel()
	}
	return ctx.Err()
}

// campaign tries to take key until it does or h's context ends, sleeping
// in blocking queries on the key so a release wakes it at once.
func (c *Coordinator) campaign(h *holder, key string, value []byte, sess string) bool {
	var idx uint64
	for h.ctx.Err() == nil {
		ok, err := c.kv.Acquire(h.ctx, key, value, sess)
		if err == nil && ok {
			return true
		}
		if err != nil {
			sleep(h.ctx, c.cfg.PollInterval)
			continue
		}
		_, next, err := c.kv.List(h.ctx, key, idx, c.recheck())
		if err != nil {
			sleep(h.ctx, c.cfg.PollInterval)
			continue
		}
		idx = max(next, 1)
	}
	return false
}
