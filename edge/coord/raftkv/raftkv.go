// Package raftkv is the embedded coordination backend: coord.KV on a
// single-node hashicorp/raft log, persisted in a directory (a BoltDB log and
// stable store plus file snapshots), so every key, lock and session survives
// a restart. It is what `pier dev` and the tests use in place of Consul.
//
// Every mutation (put, check-and-set, delete, acquire, release, session
// create, destroy and expiry) is a raft log entry and indexes are raft log
// indexes. Session TTLs are tracked by the leader in memory, by wall clock:
// when one lapses the leader applies an "expire session" entry, so the FSM
// stays deterministic. Sessions restored after a restart get a fresh TTL
// from the time they are first seen, so sessions whose holders are gone
// still expire.
//
// Only the composition root (control/cmd/pier) and test-support packages
// import it; everyone else codes against coord.KV. Imports: edge/coord.
package raftkv

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/pierhq/pier/edge/coord"
)

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("raftkv: store closed")

const (
	// DefaultMinSessionTTL is Consul's minimum session TTL.
	DefaultMinSessionTTL = 10 * time.Second
	// MaxSessionTTL is Consul's maximum session TTL.
	MaxSessionTTL = 24 * time.Hour

	defaultWait    = 5 * time.Minute // blocking List with wait <= 0
	defaultTimeout = 30 * time.Second
	nodeID         = "pier"
	boltFile       = "raft.db"
)

// Config configures a Store.
type Config struct {
	// Dir holds the raft log (raft.db) and snapshots; created if missing.
	Dir string
	// MinSessionTTL is the shortest TTL CreateSession accepts. Zero means
	// DefaultMinSessionTTL; tests lower it (e.g. to 1s) to run quickly.
	MinSessionTTL time.Duration
	// Logger receives the store's logs; raft's own output is logged at
	// debug (warnings and errors at their level). Nil discards.
	Logger *slog.Logger
}

// Store is a coord.KV backed by a single-node raft. It is safe for
// concurrent use. Open starts it; Close stops it.
type Store struct {
	cfg    Config
	log    *slog.Logger
	raft   *raft.Raft
	fsm    *fsm
	bolt   *raftboltdb.BoltStore
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu        sync.Mutex
	deadlines map[string]time.Time // session -> expiry (leader-local, wall clock)
}

var _ coord.KV = (*Store)(nil)

// Open opens (bootstrapping on first use) the store in cfg.Dir and waits
// until it is the leader and has applied its whole log.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("raftkv: data directory is required")
	}
	if cfg.MinSessionTTL <= 0 {
		cfg.MinSessionTTL = DefaultMinSessionTTL
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "raftkv")
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftkv: create data directory: %w", err)
	}

	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.Dir, boltFile),
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("raftkv: data directory %s is in use by another process: %w", cfg.Dir, err)
		}
		return nil, fmt.Errorf("raftkv: open raft log: %w", err)
	}
	s, err := open(cfg, logger, bolt)
	if err != nil {
		_ = bolt.Close()
		return nil, err
	}
	return s, nil
}

func open(cfg Config, logger *slog.Logger, bolt *raftboltdb.BoltStore) (*Store, error) {
	hl := newHCLogger(logger)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		return nil, fmt.Errorf("raftkv: open snapshot store: %w", err)
	}
	logs, err := raft.NewLogCache(256, bolt)
	if err != nil {
		return nil, fmt.Errorf("raftkv: log cache: %w", err)
	}
	addr, trans := raft.NewInmemTransport(nodeID)

	rc := raft.DefaultConfig()
	rc.LocalID = nodeID
	rc.Logger = hl
	// One node and no network: the leader only ever counts itself (it
	// cannot lose its lease), so short timeouts just shorten the election
	// at start-up.
	rc.HeartbeatTimeout = 20 * time.Millisecond
	rc.ElectionTimeout = 20 * time.Millisecond
	rc.LeaderLeaseTimeout = 20 * time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond

	existing, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return nil, fmt.Errorf("raftkv: inspect raft state: %w", err)
	}
	if !existing {
		conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: nodeID, Address: addr}}}
		if err := raft.BootstrapCluster(rc, logs, bolt, snaps, trans, conf); err != nil {
			return nil, fmt.Errorf("raftkv: bootstrap: %w", err)
		}
	}
	f := newFSM()
	r, err := raft.NewRaft(rc, f, logs, bolt, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("raftkv: start raft: %w", err)
	}
	s := &Store{
		cfg:       cfg,
		log:       logger,
		raft:      r,
		fsm:       f,
		bolt:      bolt,
		closed:    make(chan struct{}),
		deadlines: make(map[string]time.Time),
	}
	if err := s.waitLeader(10 * time.Second); err != nil {
		_ = r.Shutdown().Error()
		return nil, err
	}
	s.wg.Add(1)
	go s.expireLoop()
	return s, nil
}

// waitLeader waits for the single node to elect itself and apply its log.
func (s *Store) waitLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for s.raft.State() != raft.Leader {
		if time.Now().After(deadline) {
			return errors.New("raftkv: timed out waiting for leadership")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.raft.Barrier(timeout).Error(); err != nil {
		return fmt.Errorf("raftkv: replay raft log: %w", err)
	}
	return nil
}

// Close stops the store; keys and sessions persist in Dir. It is safe to
// call more than once.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		s.wg.Wait()
		if e := s.raft.Shutdown().Error(); e != nil {
			err = fmt.Errorf("raftkv: shut down raft: %w", e)
		}
		if e := s.bolt.Close(); e != nil && err == nil {
			err = fmt.Errorf("raftkv: close raft log: %w", e)
		}
	})
	return err
}

// Snapshot takes a raft snapshot now (raft also takes them on its own).
func (s *Store) Snapshot() error {
	if err := s.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raftkv: snapshot: %w", err)
	}
	return nil
}

// usable reports ErrClosed after Close, else ctx's error.
func (s *Store) usable(ctx context.Context) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
		return ctx.Err()
	}
}

// apply commits c and returns the FSM's result.
func (s *Store) apply(ctx context.Context, c command) (bool, error) {
	if err := s.usable(ctx); err != nil {
		return false, err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return false, fmt.Errorf("raftkv: encode %s: %w", c.Op, err)
	}
	timeout := defaultTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	fut := s.raft.Apply(data, timeout)
	if err := fut.Error(); err != nil {
		if errors.Is(err, raft.ErrRaftShutdown) {
			return false, ErrClosed
		}
		return false, fmt.Errorf("raftkv: apply %s: %w", c.Op, err)
	}
	res, _ := fut.Response().(result)
	return res.ok, res.err
}

// Get implements coord.KV.
func (s *Store) Get(ctx context.Context, key string) (*coord.Pair, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	p, ok := s.fsm.get(key)
	if !ok {
		return nil, fmt.Errorf("get %q: %w", key, coord.ErrNotFound)
	}
	return p, nil
}

// List implements coord.KV. The index returned is the store index; with
// waitIndex > 0 it blocks until a key under prefix is written or deleted
// at an index above waitIndex (or wait elapses; wait <= 0 means 5m).
func (s *Store) List(ctx context.Context, prefix string, waitIndex uint64, wait time.Duration) ([]*coord.Pair, uint64, error) {
	var timeout <-chan time.Time
	if waitIndex > 0 {
		if wait <= 0 {
			wait = defaultWait
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		if err := s.usable(ctx); err != nil {
			return nil, 0, err
		}
		pairs, index, changed, next := s.fsm.list(prefix, waitIndex)
		if waitIndex == 0 || changed {
			return pairs, index, nil
		}
		select {
		case <-next:
		case <-timeout:
			pairs, index, _, _ = s.fsm.list(prefix, waitIndex)
			return pairs, index, nil
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-s.closed:
			return nil, 0, ErrClosed
		}
	}
}

// Put implements coord.KV.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	_, err := s.apply(ctx, command{Op: opPut, Key: key, Value: value})
	return err
}

// CAS implements coord.KV.
func (s *Store) CAS(ctx context.Context, key string, value []byte, index uint64) (bool, error) {
	return s.apply(ctx, command{Op: opCAS, Key: key, Value: value, Index: index})
}

// Delete implements coord.KV.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.apply(ctx, command{Op: opDelete, Key: key})
	return err
}

// CreateSession implements coord.KV. The TTL must lie between
// Config.MinSessionTTL and 24h.
func (s *Store) CreateSession(ctx context.Context, opts coord.SessionOptions) (string, error) {
	if opts.TTL < s.cfg.MinSessionTTL || opts.TTL > MaxSessionTTL {
		return "", fmt.Errorf("session ttl %s must be between %s and %s", opts.TTL, s.cfg.MinSessionTTL, MaxSessionTTL)
	}
	switch opts.Behavior {
	case "":
		opts.Behavior = coord.BehaviorRelease
	case coord.BehaviorRelease, coord.BehaviorDelete:
	default:
		return "", fmt.Errorf("unknown session behavior %q", opts.Behavior)
	}
	id := newID()
	if _, err := s.apply(ctx, command{Op: opCreateSession, Session: id, Name: opts.Name, TTL: opts.TTL, Behavior: opts.Behavior}); err != nil {
		return "", err
	}
	s.mu.Lock()
	s.deadlines[id] = time.Now().Add(opts.TTL)
	s.mu.Unlock()
	return id, nil
}

// RenewSession implements coord.KV. Renewal is leader-local (it changes
// no replicated state, as in Consul it bumps no index).
func (s *Store) RenewSession(ctx context.Context, id string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	ttl, ok := s.fsm.sessionTTL(id)
	if !ok {
		return fmt.Errorf("renew session %s: %w", id, coord.ErrSessionInvalid)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, seen := s.deadlines[id]; seen && now.After(d) {
		return fmt.Errorf("renew session %s: %w", id, coord.ErrSessionInvalid)
	}
	s.deadlines[id] = now.Add(ttl)
	return nil
}

// DestroySession implements coord.KV. Destroying an unknown or ended
// session is not an error.
func (s *Store) DestroySession(ctx context.Context, id string) error {
	_, err := s.apply(ctx, command{Op: opDestroySession, Session: id})
	return err
}

// Acquire implements coord.KV; an unknown or ended session gives an error
// wrapping coord.ErrSessionInvalid.
func (s *Store) Acquire(ctx context.Context, key string, value []byte, session string) (bool, error) {
	ok, err := s.apply(ctx, command{Op: opAcquire, Key: key, Value: value, Session: session})
	if err != nil {
		return false, fmt.Errorf("acquire %q: %w", key, err)
	}
	return ok, nil
}

// Release implements coord.KV.
func (s *Store) Release(ctx context.Context, key string, session string) (bool, error) {
	return s.apply(ctx, command{Op: opRelease, Key: key, Session: session})
}

// expireLoop is the leader's session reaper: it gives sessions it has not
// seen (restored from disk) a fresh deadline and applies an expiry entry
// for every session whose deadline has passed.
func (s *Store) expireLoop() {
	defer s.wg.Done()
	tick := min(max(s.cfg.MinSessionTTL/10, 50*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		if s.raft.State() != raft.Leader {
			continue
		}
		for _, id := range s.expired(time.Now()) {
			ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
			ok, err := s.apply(ctx, command{Op: opExpireSession, Session: id})
			cancel()
			switch {
			case errors.Is(err, ErrClosed):
				return
			case err != nil:
				s.log.Warn("expire session", "session", id, "err", err)
			case ok:
				s.log.Debug("session expired", "session", id)
			}
		}
	}
}

// expired returns the sessions whose deadline is before now, and syncs the
// deadline table with the FSM's live sessions.
func (s *Store) expired(now time.Time) []string {
	live := s.fsm.sessionTTLs()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, ttl := range live {
		d, seen := s.deadlines[id]
		switch {
		case !seen:
			s.deadlines[id] = now.Add(ttl)
		case now.After(d):
			out = append(out, id)
		}
	}
	for id := range s.deadlines {
		if _, ok := live[id]; !ok {
			delete(s.deadlines, id)
		}
	}
	return out
}

// newID returns a random UUID-shaped session id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
