package coord

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"
)

// watchWait is the longest a watch's blocking query waits (Consul's
// default is 5m, its maximum 10m).
const watchWait = 5 * time.Minute

// Snapshot reads the current State: every pointer and every announcement.
func (c *Coordinator) Snapshot(ctx context.Context) (State, error) {
	st, _, _, err := c.snapshot(ctx)
	return st, err
}

func (c *Coordinator) snapshot(ctx context.Context) (State, uint64, uint64, error) {
	pp, pi, err := c.kv.List(ctx, prefixProjects, 0, 0)
	if err != nil {
		return State{}, 0, 0, fmt.Errorf("read pointers: %w", err)
	}
	wp, wi, err := c.kv.List(ctx, prefixWanted, 0, 0)
	if err != nil {
		return State{}, 0, 0, fmt.Errorf("read announcements: %w", err)
	}
	return State{Index: max(pi, wi), Pointers: decodePointers(pp), Wanted: decodeWanted(wp)}, pi, wi, nil
}

type watchUpdate struct {
	pointers bool // else announcements
	pairs    []*Pair
	index    uint64
}

// Watch calls fn with the current State at once, then again after every
// change to a pointer or an announcement, from blocking queries on
// pier/projects/ and pier/wanted/. fn runs on the caller's goroutine, one
// call at a time; a slow fn delays (never drops) the next State. Errors
// are logged and retried with backoff. Watch returns ctx.Err() when ctx
// ends.
func (c *Coordinator) Watch(ctx context.Context, fn func(State)) error {
	bo := backoff{base: c.cfg.PollInterval, limit: 10 * time.Second}
	var st State
	var pi, wi uint64
	for {
		var err error
		if st, pi, wi, err = c.snapshot(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("watch: read state", "err", err)
		if !sleep(ctx, bo.next()) {
			return ctx.Err()
		}
	}
	fn(st)

	var wg sync.WaitGroup
	defer wg.Wait()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates := make(chan watchUpdate)
	wg.Add(2)
	go c.watchPrefix(wctx, &wg, prefixProjects, pi, true, updates)
	go c.watchPrefix(wctx, &wg, prefixWanted, wi, false, updates)

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u := <-updates:
			next := st
			if u.pointers {
				next.Pointers, pi = decodePointers(u.pairs), u.index
			} else {
				next.Wanted, wi = decodeWanted(u.pairs), u.index
			}
			next.Index = max(pi, wi)
			if reflect.DeepEqual(next.Pointers, st.Pointers) && reflect.DeepEqual(next.Wanted, st.Wanted) {
				st.Index = next.Index
				continue // a spurious wake-up
			}
			st = next
			fn(st)
		}
	}
}

// watchPrefix runs blocking queries on prefix from index and sends each
// result whose index moved.
func (c *Coordinator) watchPrefix(ctx context.Context, wg *sync.WaitGroup, prefix string, index uint64, pointers bool, out chan<- watchUpdate) {
	defer wg.Done()
	bo := backoff{base: c.cfg.PollInterval, limit: 10 * time.Second}
	idx := max(index, 1)
	for {
		pairs, next, err := c.kv.List(ctx, prefix, idx, watchWait)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.log.Warn("watch: blocking query", "prefix", prefix, "err", err)
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		bo.reset()
		if next == idx {
			continue // the wait elapsed
		}
		// An index that went backwards (a backend reset) is taken as is:
		// the next query blocks from there.
		idx = max(next, 1)
		select {
		case out <- watchUpdate{pointers: pointers, pairs: pairs, index: next}:
		case <-ctx.Done():
			return
		}
	}
}
