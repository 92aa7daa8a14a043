package edged

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/cache"
	"github.com/pierhq/pier/edge/coord"
)

// model is what the edge knows, guarded by Server.mu. Requests never read
// it: every change is published as an immutable table.
type model struct {
	held    map[string]*edge.Manifest // whole in the cache, synced for the coordination state
	lazy    map[string]*lazyDep       // whole in the cache, synced for a deployment-id host
	pending map[string]*edge.Manifest // lazy syncs in progress (kept from pruning)
	marked  map[string]bool           // readiness written for these

	pointers []coord.Pointer      // the last applied
	active   map[string]string    // project/env -> the pointer's deployment
	serving  map[string]string    // project/env -> the held deployment served (lags active while syncing)
	history  map[string][]string  // project -> formerly active deployments, newest first
	pruned   bool                 // the cache was pruned once since start
	names    map[string]string    // project -> name, from pointers and announcements
	wanted   []coord.Announcement // the last applied
}

func newModel() model {
	return model{
		held:    make(map[string]*edge.Manifest),
		lazy:    make(map[string]*lazyDep),
		pending: make(map[string]*edge.Manifest),
		marked:  make(map[string]bool),
		active:  make(map[string]string),
		serving: make(map[string]string),
		history: make(map[string][]string),
		names:   make(map[string]string),
	}
}

type lazyDep struct {
	m    *edge.Manifest
	used atomic.Int64 // unix nanos of the last request
}

// want is a deployment the coordination state asks the edge to hold.
type want struct{ id, projectID string }

// setState applies a new coordination state to the route table at once:
// pointers whose deployment is held switch now (a rollback is instant);
// the rest switch when reconcile has synced them.
func (s *Server) setState(st coord.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setPointers(st.Pointers)
	s.wanted = st.Wanted
	for _, a := range st.Wanted {
		if _, ok := s.names[a.ProjectID]; !ok && a.ProjectName != "" {
			s.names[a.ProjectID] = strings.ToLower(a.ProjectName)
		}
	}
	s.publish()
}

// reconcile brings the cache in line with the last state: sync what is
// missing, mark it ready, evict what is no longer needed. It reports
// whether everything succeeded; failures are logged and retried by the
// caller.
func (s *Server) reconcile(ctx context.Context) bool {
	s.mu.Lock()
	need := s.missing()
	s.mu.Unlock()

	ok := s.syncAll(ctx, need)

	s.mu.Lock()
	s.publish()
	var mark []string
	for _, w := range s.desired() {
		if s.held[w.id] != nil && !s.marked[w.id] {
			mark = append(mark, w.id)
		}
	}
	s.mu.Unlock()

	for _, id := range mark {
		if err := s.deps.Coord.MarkReady(ctx, id, s.cfg.ID); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("mark deployment ready", "deployment", id, "err", err)
			}
			ok = false
			continue
		}
		s.mu.Lock()
		s.marked[id] = true
		s.mu.Unlock()
		s.log.Debug("deployment ready", "deployment", id)
	}

	if ctx.Err() == nil {
		s.evict()
	}
	return ok
}

// setPointers records the new pointers and, for every project environment
// whose deployment changed, the one it replaced.
func (s *Server) setPointers(ptrs []coord.Pointer) {
	seen := make(map[string]bool, len(ptrs))
	for _, p := range ptrs {
		k := p.ProjectID + "/" + p.Environment
		seen[k] = true
		if prev, ok := s.active[k]; ok && prev != p.DeploymentID {
			s.pushHistory(p.ProjectID, prev)
			s.log.Info("pointer moved", "project", p.ProjectID, "environment", p.Environment,
				"from", prev, "deployment", p.DeploymentID)
		}
		s.active[k] = p.DeploymentID
		if p.ProjectName != "" {
			s.names[p.ProjectID] = strings.ToLower(p.ProjectName)
		}
	}
	live := make(map[string]bool, len(ptrs))
	for _, p := range ptrs {
		live[p.ProjectID] = true
	}
	for k := range s.active {
		if !seen[k] {
			delete(s.active, k)
			delete(s.serving, k)
		}
	}
	for projectID := range s.history {
		if !live[projectID] { // the project was deleted
			delete(s.history, projectID)
		}
	}
	s.pointers = ptrs
}

func (s *Server) pushHistory(projectID, id string) {
	h := slices.DeleteFunc(s.history[projectID], func(x string) bool { return x == id })
	h = slices.Insert(h, 0, id)
	if len(h) > s.cfg.KeepPrevious {
		h = h[:s.cfg.KeepPrevious]
	}
	s.history[projectID] = h
}

// desired lists every deployment the state asks for, pointed ones first.
func (s *Server) desired() []want {
	seen := make(map[string]bool)
	var out []want
	for _, p := range s.pointers {
		if !seen[p.DeploymentID] {
			seen[p.DeploymentID] = true
			out = append(out, want{id: p.DeploymentID, projectID: p.ProjectID})
		}
	}
	for _, a := range s.wanted {
		if !seen[a.DeploymentID] {
			seen[a.DeploymentID] = true
			out = append(out, want{id: a.DeploymentID, projectID: a.ProjectID})
		}
	}
	return out
}

// missing lists the desired deployments not held, adopting lazily loaded
// ones (already whole) on the way.
func (s *Server) missing() []want {
	var need []want
	for _, w := range s.desired() {
		if s.held[w.id] != nil {
			continue
		}
		if l := s.lazy[w.id]; l != nil {
			s.held[w.id] = l.m
			delete(s.lazy, w.id)
			continue
		}
		need = append(need, w)
	}
	return need
}

// syncAll syncs need, SyncConcurrency at a time, and reports whether all succeeded.
func (s *Server) syncAll(ctx context.Context, need []want) bool {
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, s.cfg.SyncConcurrency)
		bad atomic.Bool
	)
	for _, w := range need {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			m, st, err := s.syncOne(ctx, w)
			if err != nil {
				bad.Store(true)
				if ctx.Err() == nil {
					s.log.Warn("sync deployment", "deployment", w.id, "project", w.projectID, "err", err)
				}
				return
			}
			// Code compiles before the deployment counts as held, so the
			// switch to it finds its scripts ready; a failure is served as
			// an error later and never holds the deployment back.
			s.code.precompile(ctx, m)
			s.mu.Lock()
			s.held[w.id] = m
			s.mu.Unlock()
			s.log.Info("deployment synced", "deployment", w.id, "project", w.projectID,
				"fetched", st.Fetched, "bytes", st.Bytes, "held", st.Held, "took", time.Since(start))
		})
	}
	wg.Wait()
	return !bad.Load()
}

func (s *Server) syncOne(ctx context.Context, w want) (*edge.Manifest, cache.SyncStats, error) {
	m, err := s.cache.Manifest(ctx, w.id)
	if err != nil {
		return nil, cache.SyncStats{}, err
	}
	if w.projectID != "" && m.ProjectID != w.projectID {
		return nil, cache.SyncStats{}, fmt.Errorf("manifest of %s names project %q, not %q", w.id, m.ProjectID, w.projectID)
	}
	st, err := s.cache.Sync(ctx, m)
	return m, st, err
}

// joinable reports whether the edge may join the pool: it holds, and has
// marked ready, every deployment a pointer names.
func (s *Server) joinable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pointers {
		if s.held[p.DeploymentID] == nil || !s.marked[p.DeploymentID] {
			return false
		}
	}
	return true
}

// evict drops deployments nothing needs any more (not pointed, announced,
// served, among the last KeepPrevious of their project, nor among the
// MaxLazy most recently used lazy ones) and prunes the cache. Readiness
// keys need no withdrawal: a deployment stops being wanted only when
// control retracts it, which deletes them. The first call after start prunes regardless, to clear
// what a previous run left.
func (s *Server) evict() {
	s.mu.Lock()
	keep := make(map[string]bool)
	for _, w := range s.desired() {
		keep[w.id] = true
	}
	for _, id := range s.serving {
		keep[id] = true
	}
	for _, h := range s.history {
		for _, id := range h {
			keep[id] = true
		}
	}
	for id := range s.pending {
		keep[id] = true
	}
	lazy := make([]string, 0, len(s.lazy))
	for id := range s.lazy {
		lazy = append(lazy, id)
	}
	slices.SortFunc(lazy, func(a, b string) int { return cmp.Compare(s.lazy[b].used.Load(), s.lazy[a].used.Load()) })
	for i, id := range lazy {
		if i < s.cfg.MaxLazy {
			keep[id] = true
		}
	}

	var evicted []string
	for id := range s.held {
		if !keep[id] {
			delete(s.held, id)
			evicted = append(evicted, id)
		}
	}
	for id := range s.lazy {
		if !keep[id] {
			delete(s.lazy, id)
			evicted = append(evicted, id)
		}
	}
	for _, id := range evicted {
		delete(s.marked, id) // if it is wanted again, it is synced and marked again
	}
	s.code.retain(func(id string) bool {
		return s.held[id] != nil || s.lazy[id] != nil || s.pending[id] != nil || keep[id]
	})
	if len(evicted) == 0 && s.pruned {
		s.mu.Unlock()
		return
	}
	s.publish()
	var all []*edge.Manifest
	for _, m := range s.held {
		all = append(all, m)
	}
	for _, l := range s.lazy {
		all = append(all, l.m)
	}
	for _, m := range s.pending {
		all = append(all, m)
	}
	err := s.cache.Prune(all)
	s.pruned = true
	s.mu.Unlock()

	if err != nil {
		s.log.Warn("prune cache", "err", err)
	}
	if len(evicted) > 0 {
		slices.Sort(evicted)
		s.log.Info("deployments evicted", "deployments", evicted)
	}
}

// publish builds the route table from the model and swaps it in. The
// caller holds s.mu.
func (s *Server) publish() {
	t := &table{
		projects:    make(map[string]*site),
		deployments: make(map[string]*deployment, len(s.held)+len(s.lazy)),
	}
	for id, m := range s.held {
		t.deployments[id] = &deployment{m: m}
	}
	for id, l := range s.lazy {
		t.deployments[id] = &deployment{m: l.m, used: &l.used}
	}
	for _, p := range s.pointers {
		k := p.ProjectID + "/" + p.Environment
		if s.held[p.DeploymentID] != nil {
			if prev := s.serving[k]; prev != p.DeploymentID {
				s.serving[k] = p.DeploymentID
			}
		} else if prev := s.serving[k]; prev != "" && s.held[prev] == nil {
			delete(s.serving, k)
		}
		d := t.deployments[s.serving[k]]
		name := s.names[p.ProjectID]
		if d == nil || name == "" {
			continue
		}
		st := t.projects[name]
		if st == nil {
			st = &site{projectID: p.ProjectID, envs: make(map[string]*deployment)}
			t.projects[name] = st
		} else if st.projectID != p.ProjectID {
			s.log.Warn("two projects share a name; routing the first", "project", p.ProjectID, "name", name, "other", st.projectID)
			continue
		}
		st.envs[p.Environment] = d
	}
	for _, st := range t.projects {
		for _, d := range t.deployments {
			if d.m.ProjectID == st.projectID {
				st.all = append(st.all, d)
			}
		}
		slices.SortFunc(st.all, func(a, b *deployment) int {
			return cmp.Or(b.m.CreatedAt.Compare(a.m.CreatedAt), strings.Compare(a.m.DeploymentID, b.m.DeploymentID))
		})
	}
	t.count = len(t.deployments)
	s.table.Store(t)
	s.code.setMinWarm(t, s.cfg.Isolates)
}

var (
	// errNoDeployment: the host names no deployment of that project.
	errNoDeployment = errors.New("no such deployment")
	// errStopping: the edge is shutting down.
	errStopping = errors.New("edge is shutting down")
)

type flight struct {
	done chan struct{}
	d    *deployment
	err  error
}

// lazyLoad returns deployment id of project (a host label) for a
// deployment-id host, syncing it on first use. Concurrent requests share
// one load; it runs on the edge's context, not the request's.
func (s *Server) lazyLoad(ctx context.Context, id, project string) (*deployment, error) {
	key := id + "@" + project
	s.flightMu.Lock()
	f := s.flights[key]
	if f == nil {
		if s.stopping {
			s.flightMu.Unlock()
			return nil, errStopping
		}
		f = &flight{done: make(chan struct{})}
		s.flights[key] = f
		s.lazyWG.Go(func() {
			f.d, f.err = s.lazySync(id, project)
			s.flightMu.Lock()
			delete(s.flights, key)
			s.flightMu.Unlock()
			close(f.done)
		})
	}
	s.flightMu.Unlock()
	select {
	case <-f.done:
		return f.d, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Server) lazySync(id, project string) (*deployment, error) {
	ctx, cancel := context.WithTimeout(s.runCtx, s.cfg.LazyTimeout)
	defer cancel()
	m, err := s.cache.Manifest(ctx, id)
	if errors.Is(err, edge.ErrNotExist) || errors.Is(err, cache.ErrInvalidManifest) {
		return nil, errNoDeployment
	}
	if err != nil {
		return nil, err
	}
	if !s.table.Load().belongs(m, project) {
		return nil, errNoDeployment
	}

	s.mu.Lock()
	s.pending[id] = m
	s.mu.Unlock()
	start := time.Now()
	st, err := s.cache.Sync(ctx, m)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, id)
	if err != nil {
		return nil, err
	}
	if s.held[id] == nil && s.lazy[id] == nil {
		l := &lazyDep{m: m}
		l.used.Store(time.Now().UnixNano())
		s.lazy[id] = l
		s.publish()
		s.log.Info("deployment synced on demand", "deployment", id, "project", m.ProjectID,
			"fetched", st.Fetched, "bytes", st.Bytes, "took", time.Since(start))
	}
	return s.table.Load().deployments[id], nil
}
