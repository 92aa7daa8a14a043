package coordtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/coord"
)

const (
	project = "p1"
	env     = "production"
	lockKey = "pier/locks/project/" + project
)

type fixture struct {
	t  *testing.T
	kv coord.KV
	c  *coord.Coordinator
}

func newFixture(t *testing.T, newKV func(t *testing.T) coord.KV, edit func(*coord.Config)) *fixture {
	t.Helper()
	cfg := coord.Config{
		SessionTTL:   SessionTTL,
		LockWait:     patience,
		ReadyTimeout: patience,
		PollInterval: 20 * time.Millisecond,
		Logger:       Logger(t),
	}
	if edit != nil {
		edit(&cfg)
	}
	kv := newKV(t)
	return &fixture{t: t, kv: kv, c: coord.New(cfg, kv)}
}

func (f *fixture) join(id string) *coord.Membership {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(f.t.Context()))
	m, err := f.c.Join(ctx, coord.EdgeInfo{ID: id, Addr: "127.0.0.1:1"})
	if err != nil {
		cancel()
		f.t.Fatalf("Join(%s): %v", id, err)
	}
	f.t.Cleanup(func() {
		_ = m.Leave(context.Background())
		cancel()
	})
	return m
}

func (f *fixture) ready(deploymentID string, edges ...string) {
	f.t.Helper()
	for _, e := range edges {
		must(f.t, f.c.MarkReady(f.t.Context(), deploymentID, e))
	}
}

func (f *fixture) promote(deploymentID string, edit func(*coord.PromoteRequest)) (*coord.Cutover, error) {
	req := coord.PromoteRequest{ProjectID: project, ProjectName: "Project One", Environment: env, DeploymentID: deploymentID}
	if edit != nil {
		edit(&req)
	}
	return f.c.Promote(f.t.Context(), req)
}

func (f *fixture) mustPromote(deploymentID string) *coord.Cutover {
	f.t.Helper()
	cut, err := f.promote(deploymentID, nil)
	if err != nil {
		f.t.Fatalf("Promote(%s): %v", deploymentID, err)
	}
	return cut
}

func (f *fixture) pointer() string {
	f.t.Helper()
	p, err := f.c.Pointer(f.t.Context(), project, env)
	if errors.Is(err, coord.ErrNotFound) {
		return ""
	}
	must(f.t, err)
	return p.DeploymentID
}

func (f *fixture) edgeIDs() []string {
	f.t.Helper()
	edges, err := f.c.Edges(f.t.Context())
	must(f.t, err)
	ids := []string{}
	for _, e := range edges {
		ids = append(ids, e.ID)
	}
	return ids
}

func cutEdges(c *coord.Cutover) []string {
	ids := []string{}
	for _, e := range c.Edges {
		ids = append(ids, e.EdgeID)
	}
	return ids
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func runProtocol(t *testing.T, newKV func(t *testing.T) coord.KV) {
	t.Run("PromoteThenWatch", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		f.join("e1")
		f.ready("d1", "e1")

		ctx, cancel := context.WithCancel(t.Context())
		states := make(chan coord.State, 16)
		done := background(func() (struct{}, error) {
			return struct{}{}, f.c.Watch(ctx, func(st coord.State) {
				select {
				case states <- st:
				case <-ctx.Done():
				}
			})
		})
		first := <-states
		if len(first.Pointers) != 0 || len(first.Wanted) != 0 {
			t.Fatalf("first state of an empty store: %+v", first)
		}
		cut := f.mustPromote("d1")
		if cut.DeploymentID != "d1" || cut.Previous != "" {
			t.Fatalf("cutover: %+v", cut)
		}
		if len(cut.Edges) != 1 || cut.Edges[0] != (coord.EdgeReady{EdgeID: "e1"}) {
			t.Fatalf("cutover edges = %+v, want e1 already ready", cut.Edges)
		}
		if cut.Total < cut.LockWait || cut.Total < cut.ReadyWait {
			t.Fatalf("cutover timings: %+v", cut)
		}
		var last coord.State
		for {
			last = <-states
			if len(last.Pointers) == 1 && len(last.Wanted) == 1 {
				break
			}
		}
		p := last.Pointers[0]
		if p.ProjectID != project || p.Environment != env || p.DeploymentID != "d1" || p.ProjectName != "Project One" ||
			p.UpdatedAt.IsZero() || p.ModifyIndex == 0 || last.Index < p.ModifyIndex {
			t.Fatalf("watched pointer: %+v (state index %d)", p, last.Index)
		}
		if want := (coord.Announcement{DeploymentID: "d1", ProjectID: project, ProjectName: "Project One"}); last.Wanted[0] != want {
			t.Fatalf("watched announcement: %+v", last.Wanted[0])
		}
		got, err := f.c.Pointer(t.Context(), project, env)
		must(t, err)
		if *got != p {
			t.Fatalf("Pointer = %+v, watched %+v", got, p)
		}

		f.ready("d2", "e1")
		f.mustPromote("d2")
		for last.Pointers[0].DeploymentID != "d2" {
			last = <-states
		}
		snap, err := f.c.Snapshot(t.Context())
		must(t, err)
		if len(snap.Pointers) != 1 || snap.Pointers[0].DeploymentID != "d2" || len(snap.Wanted) != 2 {
			t.Fatalf("Snapshot: %+v", snap)
		}
		cancel()
		if _, err := wait(t, done); !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch returned %v, want context.Canceled", err)
		}
	})

	t.Run("ZeroEdges", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		cut := f.mustPromote("d1")
		if len(cut.Edges) != 0 || f.pointer() != "d1" {
			t.Fatalf("cutover %+v, pointer %q", cut, f.pointer())
		}
	})

	t.Run("WaitsForReadiness", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		f.join("e1")
		f.join("e2")
		f.ready("d1", "e1")
		res := background(func() (*coord.Cutover, error) { return f.promote("d1", nil) })
		// e2 syncs once the deployment is announced, like an edge.
		eventually(t, "d1 is announced", func() bool {
			st, err := f.c.Snapshot(t.Context())
			must(t, err)
			return len(st.Wanted) == 1
		})
		if f.pointer() != "" {
			t.Fatal("pointer written before every edge was ready")
		}
		f.ready("d1", "e2")
		cut, err := wait(t, res)
		must(t, err)
		equal(t, "cutover edges", cutEdges(cut), []string{"e1", "e2"})
		if cut.Edges[0].Wait != 0 || cut.Edges[1].Wait > cut.ReadyWait {
			t.Fatalf("edge waits %+v, ready wait %s", cut.Edges, cut.ReadyWait)
		}
		if f.pointer() != "d1" {
			t.Fatalf("pointer = %q, want d1", f.pointer())
		}
	})

	t.Run("ConcurrentPromotesSerialize", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		f.join("e1")
		deps := []string{"d1", "d2", "d3"}
		f.ready("d0", "e1")
		f.ready("d1", "e1")
		f.ready("d2", "e1")
		f.ready("d3", "e1")
		f.mustPromote("d0")
		var chans []<-chan result[*coord.Cutover]
		for _, d := range deps {
			chans = append(chans, background(func() (*coord.Cutover, error) { return f.promote(d, nil) }))
		}
		// Serialized cutovers form a chain: each saw the previous one's
		// pointer, so every Previous is distinct.
		prev := map[string]string{} // previous -> deployment
		for _, ch := range chans {
			cut, err := wait(t, ch)
			must(t, err)
			if other, dup := prev[cut.Previous]; dup {
				t.Fatalf("%s and %s both replaced %s: the cutovers interleaved", other, cut.DeploymentID, cut.Previous)
			}
			prev[cut.Previous] = cut.DeploymentID
		}
		at := "d0"
		for range deps {
			next, ok := prev[at]
			if !ok {
				t.Fatalf("no cutover replaced %s: %v", at, prev)
			}
			at = next
		}
		if f.pointer() != at {
			t.Fatalf("pointer = %q, want the last of the chain %q", f.pointer(), at)
		}
	})

	t.Run("NotReadyKeepsPointer", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		f.join("e1")
		f.ready("d1", "e1")
		f.mustPromote("d1")
		f.join("e2")
		f.ready("d2", "e1")
		_, err := f.promote("d2", func(r *coord.PromoteRequest) { r.ReadyTimeout = 300 * time.Millisecond })
		if !errors.Is(err, coord.ErrNotReady) {
			t.Fatalf("err = %v, want ErrNotReady", err)
		}
		var nre *coord.NotReadyError
		if !errors.As(err, &nre) || nre.DeploymentID != "d2" {
			t.Fatalf("err = %#v, want *NotReadyError for d2", err)
		}
		equal(t, "missing", nre.Missing, []string{"e2"})
		if f.pointer() != "d1" {
			t.Fatalf("pointer = %q, want d1 kept", f.pointer())
		}
		if p := get(t, f.kv, lockKey); p.Session != "" {
			t.Fatalf("lock still held after the failed cutover: %+v", p)
		}
		equal(t, "edges", f.edgeIDs(), []string{"e1", "e2"})
	})

	t.Run("DrainNotReady", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		f.join("e1")
		m2 := f.join("e2")
		f.ready("d1", "e1")
		cut, err := f.promote("d1", func(r *coord.PromoteRequest) {
			r.ReadyTimeout = 300 * time.Millisecond
			r.DrainNotReady = true
		})
		must(t, err)
		equal(t, "cutover edges", cutEdges(cut), []string{"e1"})
		if f.pointer() != "d1" {
			t.Fatalf("pointer = %q, want d1", f.pointer())
		}
		equal(t, "edges", f.edgeIDs(), []string{"e1"})
		eventually(t, "the drained edge sees its membership lost", func() bool { return isClosed(m2.Lost()) })
	})

	t.Run("LostLockAborts", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		f.mustPromote("d1")
		f.join("e1") // never ready for d2
		res := background(func() (*coord.Cutover, error) { return f.promote("d2", nil) })
		var holder string
		eventually(t, "the cutover holds the project lock", func() bool {
			p, err := f.kv.Get(t.Context(), lockKey)
			if err == nil {
				holder = p.Session
			}
			return holder != ""
		})
		must(t, f.kv.DestroySession(t.Context(), holder))
		_, err := wait(t, res)
		if !errors.Is(err, coord.ErrLockLost) {
			t.Fatalf("err = %v, want ErrLockLost", err)
		}
		if f.pointer() != "d1" {
			t.Fatalf("pointer = %q, want d1 kept", f.pointer())
		}
	})

	t.Run("LockBusy", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, func(c *coord.Config) { c.LockWait = 300 * time.Millisecond })
		sess := newSession(t, f.kv, LongTTL, coord.BehaviorRelease)
		ok, err := f.kv.Acquire(t.Context(), lockKey, nil, sess)
		must(t, err)
		if !ok {
			t.Fatal("Acquire failed")
		}
		if _, err := f.promote("d1", nil); !errors.Is(err, coord.ErrLockBusy) {
			t.Fatalf("err = %v, want ErrLockBusy", err)
		}
		if f.pointer() != "" {
			t.Fatal("pointer written without the lock")
		}
		released, err := f.kv.Release(t.Context(), lockKey, sess)
		must(t, err)
		if !released {
			t.Fatal("Release failed")
		}
		must(t, f.kv.DestroySession(t.Context(), sess))
		f.mustPromote("d1")
	})

	t.Run("Membership", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		crashed, err := f.c.Join(ctx, coord.EdgeInfo{ID: "crashed", Addr: "127.0.0.1:2"})
		must(t, err)
		left := f.join("left")
		kept := f.join("kept")
		edges, err := f.c.Edges(t.Context())
		must(t, err)
		if len(edges) != 3 || edges[0].ID != "crashed" || edges[0].Addr != "127.0.0.1:2" || edges[0].JoinedAt.IsZero() {
			t.Fatalf("Edges = %+v", edges)
		}

		must(t, left.Leave(t.Context()))
		equal(t, "edges after Leave", f.edgeIDs(), []string{"crashed", "kept"})
		if isClosed(left.Lost()) {
			t.Fatal("Leave closed Lost")
		}

		// The holder of "kept" loses its session: the membership is re-created.
		p := get(t, f.kv, "pier/edges/kept")
		must(t, f.kv.DestroySession(t.Context(), p.Session))
		eventually(t, "the membership is re-created", func() bool {
			p2, err := f.kv.Get(t.Context(), "pier/edges/kept")
			return err == nil && p2.Session != "" && p2.Session != p.Session
		})

		cancel() // the crashed edge stops renewing: its session expires
		eventually(t, "the crashed edge leaves the pool", func() bool {
			return slices.Equal(f.edgeIDs(), []string{"kept"})
		})
		if isClosed(kept.Lost()) || isClosed(crashed.Lost()) {
			t.Fatal("Lost closed without a lost membership")
		}
		// The same edge can join again once its old session is gone.
		f.join("crashed")
		equal(t, "edges after rejoin", f.edgeIDs(), []string{"crashed", "kept"})
	})

	t.Run("Rollback", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		f.join("e1")
		f.ready("d1", "e1")
		f.ready("d2", "e1")
		f.mustPromote("d1")
		f.mustPromote("d2")
		cut := f.mustPromote("d1")
		if cut.Previous != "d2" || f.pointer() != "d1" {
			t.Fatalf("rollback: %+v, pointer %q", cut, f.pointer())
		}
		if len(cut.Edges) != 1 || cut.Edges[0].Wait != 0 {
			t.Fatalf("rollback waited for edges: %+v", cut.Edges)
		}
	})

	t.Run("RetractAndDeleteProject", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		ctx := t.Context()
		f.ready("d1", "e1", "e2")
		f.mustPromote("d1")
		_, err := f.promote("d1", func(r *coord.PromoteRequest) { r.Environment = "preview-x" })
		must(t, err)
		ids, err := f.c.ReadyEdges(ctx, "d1")
		must(t, err)
		equal(t, "ready edges", ids, []string{"e1", "e2"})
		must(t, f.c.Unready(ctx, "d1", "e2"))
		ids, err = f.c.ReadyEdges(ctx, "d1")
		must(t, err)
		equal(t, "ready edges after Unready", ids, []string{"e1"})

		ptrs, err := f.c.Pointers(ctx, project)
		must(t, err)
		if len(ptrs) != 2 || ptrs[0].Environment != "preview-x" || ptrs[1].Environment != env {
			t.Fatalf("Pointers = %+v", ptrs)
		}
		must(t, f.c.Retract(ctx, "d1"))
		st, err := f.c.Snapshot(ctx)
		must(t, err)
		if len(st.Wanted) != 0 {
			t.Fatalf("wanted after Retract: %+v", st.Wanted)
		}
		ids, err = f.c.ReadyEdges(ctx, "d1")
		must(t, err)
		equal(t, "ready edges after Retract", ids, []string{})

		must(t, f.c.DeleteProject(ctx, project))
		ptrs, err = f.c.Pointers(ctx, project)
		must(t, err)
		if len(ptrs) != 0 {
			t.Fatalf("Pointers after DeleteProject = %+v", ptrs)
		}
		if _, err := f.c.Pointer(ctx, project, env); !errors.Is(err, coord.ErrNotFound) {
			t.Fatalf("Pointer after DeleteProject: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("InvalidIDs", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newKV, nil)
		tests := []struct {
			name string
			req  coord.PromoteRequest
		}{
			{"empty project", coord.PromoteRequest{Environment: env, DeploymentID: "d1"}},
			{"slash in project", coord.PromoteRequest{ProjectID: "a/b", Environment: env, DeploymentID: "d1"}},
			{"slash in environment", coord.PromoteRequest{ProjectID: project, Environment: "preview/x", DeploymentID: "d1"}},
			{"control character", coord.PromoteRequest{ProjectID: project, Environment: env, DeploymentID: "d\n1"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := f.c.Promote(t.Context(), tt.req); err == nil {
					t.Fatal("Promote accepted an invalid id")
				}
			})
		}
		if err := f.c.MarkReady(t.Context(), "d1", "../e1"); err == nil {
			t.Fatal("MarkReady accepted an invalid edge id")
		}
	})
}
