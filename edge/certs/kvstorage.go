package certs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/pierhq/pier/edge/coord"
)

// KVStorage is a certmagic.Storage on the coordination KV (Consul KV in
// production), so every edge reads the certificates one of them obtained.
// Keys live under coord.TLSPrefix; values carry their modification time.
// Lock is a session lock (the KV's Acquire) under <prefix>locks/, renewed
// while held and released by Unlock — or by the session's TTL when the
// holder dies — so one edge at a time obtains or renews a name.
//
// Consul limits a value to 512 KiB: far above a certificate chain.
type KVStorage struct {
	kv     coord.KV
	prefix string
	ttl    time.Duration
	poll   time.Duration

	mu    sync.Mutex
	locks map[string]*heldLock
}

type heldLock struct {
	session string
	stop    context.CancelFunc
	done    chan struct{}
}

var _ certmagic.Storage = (*KVStorage)(nil)

// NewKVStorage returns storage under coord.TLSPrefix of kv.
func NewKVStorage(kv coord.KV) *KVStorage {
	return &KVStorage{kv: kv, prefix: coord.TLSPrefix, ttl: 15 * time.Second, poll: 250 * time.Millisecond, locks: map[string]*heldLock{}}
}

type kvValue struct {
	Modified time.Time `json:"modified"`
	Value    []byte    `json:"value"`
}

func (s *KVStorage) key(k string) string { return s.prefix + "data/" + strings.Trim(k, "/") }

// Store writes value at key.
func (s *KVStorage) Store(ctx context.Context, key string, value []byte) error {
	raw, err := json.Marshal(kvValue{Modified: time.Now().UTC(), Value: value})
	if err != nil {
		return err
	}
	if err := s.kv.Put(ctx, s.key(key), raw); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

func (s *KVStorage) load(ctx context.Context, key string) (*kvValue, error) {
	p, err := s.kv.Get(ctx, s.key(key))
	if errors.Is(err, coord.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", key, err)
	}
	var v kvValue
	if err := json.Unmarshal(p.Value, &v); err != nil {
		return nil, fmt.Errorf("load %s: %w", key, err)
	}
	return &v, nil
}

// Load reads key; a missing key wraps fs.ErrNotExist.
func (s *KVStorage) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := s.load(ctx, key)
	if err != nil {
		return nil, err
	}
	return v.Value, nil
}

// Delete removes key and every key under it.
func (s *KVStorage) Delete(ctx context.Context, key string) error {
	if err := s.kv.Delete(ctx, s.key(key)); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	pairs, _, err := s.kv.List(ctx, s.key(key)+"/", 0, 0)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	for _, p := range pairs {
		if err := s.kv.Delete(ctx, p.Key); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	return nil
}

// Exists reports whether key is a value or a prefix of values.
func (s *KVStorage) Exists(ctx context.Context, key string) bool {
	if _, err := s.kv.Get(ctx, s.key(key)); err == nil {
		return true
	}
	pairs, _, err := s.kv.List(ctx, s.key(key)+"/", 0, 0)
	return err == nil && len(pairs) > 0
}

// List returns the keys under path: every one when recursive, else the
// direct children (values and "directories").
func (s *KVStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	base := strings.Trim(path, "/")
	pfx := s.key(base) + "/"
	if base == "" {
		pfx = s.prefix + "data/"
	}
	pairs, _, err := s.kv.List(ctx, pfx, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range pairs {
		rel := strings.TrimPrefix(p.Key, pfx)
		if !recursive {
			rel, _, _ = strings.Cut(rel, "/")
		}
		k := rel
		if base != "" {
			k = base + "/" + rel
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	return out, nil
}

// Stat describes key.
func (s *KVStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	v, err := s.load(ctx, key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: v.Modified, Size: int64(len(v.Value)), IsTerminal: true}, nil
	}
	if errors.Is(err, fs.ErrNotExist) && s.Exists(ctx, key) {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, err
}

func (s *KVStorage) lockKey(name string) string { return s.prefix + "locks/" + strings.Trim(name, "/") }

// Lock blocks until this process holds the named lock or ctx ends.
func (s *KVStorage) Lock(ctx context.Context, name string) error {
	session, err := s.kv.CreateSession(ctx, coord.SessionOptions{Name: "pier-tls " + name, TTL: s.ttl, Behavior: coord.BehaviorDelete})
	if err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	for {
		ok, err := s.kv.Acquire(ctx, s.lockKey(name), []byte(time.Now().UTC().Format(time.RFC3339)), session)
		if err == nil && ok {
			break
		}
		// Held by another edge, or a transient error: wait and try again.
		if errors.Is(err, coord.ErrSessionInvalid) || !sleepCtx(ctx, s.poll) {
			_ = s.kv.DestroySession(context.WithoutCancel(ctx), session)
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("lock %s: %w", name, err)
		}
	}
	rctx, stop := context.WithCancel(context.Background())
	h := &heldLock{session: session, stop: stop, done: make(chan struct{})}
	go func() { // renew while held
		defer close(h.done)
		t := time.NewTicker(s.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if err := s.kv.RenewSession(rctx, session); errors.Is(err, coord.ErrSessionInvalid) {
					return // the lock is gone; certmagic re-checks storage after its work
				}
			}
		}
	}()
	s.mu.Lock()
	s.locks[name] = h
	s.mu.Unlock()
	return nil
}

// Unlock releases a lock Lock took.
func (s *KVStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("unlock %s: not held", name)
	}
	h.stop()
	<-h.done
	// Destroying the session deletes the lock key (BehaviorDelete).
	if err := s.kv.DestroySession(context.WithoutCancel(ctx), h.session); err != nil {
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
