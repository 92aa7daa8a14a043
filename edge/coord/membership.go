package coord

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Membership is an edge's place in the pool: its key pier/edges/<id>, held
// by a session (BehaviorDelete) that a goroutine renews every TTL/3.
type Membership struct {
	c     *Coordinator
	key   string
	value []byte
	id    string

	mu   sync.Mutex
	sess string

	stopc    chan struct{}
	done     chan struct{}
	lost     chan struct{}
	stopOnce sync.Once
	lostOnce sync.Once
}

// Join registers the edge as healthy. Call it only once the edge holds
// every active deployment. If a previous incarnation's session still holds
// the ID, Join waits (up to three session TTLs) for it to expire.
//
// Renewal runs until Leave or until ctx ends; when ctx ends renewal just
// stops and the membership expires with its session. Lost is closed when
// the membership ends without Leave: the session ended and could not be
// re-created, renewals kept failing for a whole TTL, or the key was
// removed (a cutover drained the edge; it must resync and Join again).
func (c *Coordinator) Join(ctx context.Context, e EdgeInfo) (*Membership, error) {
	if err := checkID("edge id", e.ID); err != nil {
		return nil, err
	}
	if e.JoinedAt.IsZero() {
		e.JoinedAt = time.Now().UTC()
	}
	m := &Membership{
		c:     c,
		key:   edgeKey(e.ID),
		value: mustJSON(e),
		id:    e.ID,
		stopc: make(chan struct{}),
		done:  make(chan struct{}),
		lost:  make(chan struct{}),
	}
	sess, err := m.register(ctx, 3*c.cfg.SessionTTL)
	if err != nil {
		return nil, fmt.Errorf("join edge %s: %w", e.ID, err)
	}
	m.sess = sess
	go m.run(ctx)
	return m, nil
}

// Lost is closed when the membership ended without Leave.
func (m *Membership) Lost() <-chan struct{} { return m.lost }

// Leave stops renewing and destroys the session, which deletes the
// membership key. It is safe to call more than once.
func (m *Membership) Leave(ctx context.Context) error {
	var err error
	m.stopOnce.Do(func() {
		close(m.stopc)
		<-m.done
		if e := m.c.kv.DestroySession(ctx, m.session()); e != nil {
			err = fmt.Errorf("leave edge %s: %w", m.id, e)
		}
	})
	return err
}

func (m *Membership) session() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sess
}

func (m *Membership) markLost() { m.lostOnce.Do(func() { close(m.lost) }) }

// register waits until no live session holds the key (for up to patience),
// then creates a session and acquires the key with it.
func (m *Membership) register(ctx context.Context, patience time.Duration) (string, error) {
	c := m.c
	deadline := time.Now().Add(patience)
	var idx uint64
	var wait time.Duration
	for {
		pairs, next, err := c.kv.List(ctx, m.key, idx, wait)
		if err != nil {
			return "", fmt.Errorf("read membership: %w", err)
		}
		held := false
		for _, p := range pairs {
			held = held || (p.Key == m.key && p.Session != "")
		}
		if !held {
			sess, err := c.kv.CreateSession(ctx, SessionOptions{Name: "pier-edge/" + m.id, TTL: c.cfg.SessionTTL, Behavior: BehaviorDelete})
			if err != nil {
				return "", fmt.Errorf("create session: %w", err)
			}
			ok, err := c.kv.Acquire(ctx, m.key, m.value, sess)
			if err == nil && ok {
				return sess, nil
			}
			if derr := c.kv.DestroySession(context.WithoutCancel(ctx), sess); derr != nil {
				c.log.Warn("destroy unused edge session", "edge", m.id, "err", derr)
			}
			if err != nil {
				return "", fmt.Errorf("acquire membership: %w", err)
			}
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return "", errors.New("the edge id is held by another live session")
		}
		idx = max(next, 1)
		wait = min(remaining, c.recheck())
	}
}

func (m *Membership) run(ctx context.Context) {
	defer close(m.done)
	c := m.c
	ttl := c.cfg.SessionTTL
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.stopc:
			return
		case <-t.C:
		}
		sess := m.session()
		err := c.kv.RenewSession(ctx, sess)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			p, gerr := c.kv.Get(ctx, m.key)
			if gerr != nil && !errors.Is(gerr, ErrNotFound) {
				continue // transient; the next tick retries
			}
			if gerr == nil && p.Session == sess {
				lastOK = time.Now()
				continue
			}
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("edge membership removed (drained); rejoin after resync", "edge", m.id)
			if derr := c.kv.DestroySession(ctx, sess); derr != nil {
				c.log.Warn("destroy edge session", "edge", m.id, "err", derr)
			}
			m.markLost()
			return
		case errors.Is(err, ErrSessionInvalid):
			next, rerr := m.register(ctx, 0)
			if rerr == nil {
				m.mu.Lock()
				m.sess = next
				m.mu.Unlock()
				lastOK = time.Now()
				c.log.Info("edge session ended; membership re-created", "edge", m.id)
				continue
			}
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("edge membership lost", "edge", m.id, "err", rerr)
			m.markLost()
			return
		case time.Since(lastOK) > ttl:
			c.log.Warn("edge membership lost: renewals failing", "edge", m.id, "err", err)
			m.markLost()
			return
		}
	}
}
