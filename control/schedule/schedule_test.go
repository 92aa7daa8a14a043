package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

type fakeProjects struct{ active map[string]string }

func (f *fakeProjects) Projects(context.Context) ([]*control.Project, error) {
	var out []*control.Project
	for id := range f.active {
		out = append(out, &control.Project{ID: id, Name: id})
	}
	return out, nil
}
func (f *fakeProjects) Active(_ context.Context, id string) (string, error) { return f.active[id], nil }

type fakeManifests map[string]*edge.Manifest

func (f fakeManifests) Manifest(_ context.Context, id string) (*edge.Manifest, error) {
	if m, ok := f[id]; ok {
		return m, nil
	}
	return nil, control.ErrNotFound
}

type fakeRunner struct {
	mu   sync.Mutex
	reqs []edge.RunRequest
	fail bool
}

func (f *fakeRunner) Run(_ context.Context, req edge.RunRequest) (*edge.RunResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if f.fail {
		return &edge.RunResult{Edge: "e1", Error: "boom", Logs: []edge.RunLog{{Level: "error", Message: "about to fail"}}}, nil
	}
	return &edge.RunResult{Edge: "e1", Result: json.RawMessage(`{"ok":true}`), Logs: []edge.RunLog{{Level: "log", Message: "cleaned"}}}, nil
}

func (f *fakeRunner) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// memStore is control.ScheduleStore in memory, with the same claim rule.
type memStore struct {
	mu   sync.Mutex
	runs map[string]*control.ScheduleRun
}

func (m *memStore) ClaimScheduleRun(_ context.Context, r *control.ScheduleRun) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.runs {
		if x.ProjectID == r.ProjectID && x.Schedule == r.Schedule && x.ScheduledAt.Equal(r.ScheduledAt) {
			return control.ErrConflict
		}
	}
	r.ID, r.State = control.NewID("run"), control.RunRunning
	c := *r
	m.runs[r.ID] = &c
	return nil
}

func (m *memStore) FinishScheduleRun(_ context.Context, r *control.ScheduleRun) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *r
	m.runs[r.ID] = &c
	return nil
}

func (m *memStore) ListScheduleRuns(_ context.Context, p, s string, _ int) ([]*control.ScheduleRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*control.ScheduleRun
	for _, r := range m.runs {
		if r.ProjectID == p && (s == "" || r.Schedule == s) {
			c := *r
			out = append(out, &c)
		}
	}
	return out, nil
}

type noLeader struct{}

func (noLeader) Lead(ctx context.Context, _, _ string, fn func(context.Context)) error {
	fn(ctx)
	return ctx.Err()
}

func newTest(t *testing.T, store *memStore, runner *fakeRunner) *Scheduler {
	m := fakeManifests{"dpl-1": {DeploymentID: "dpl-1", Schedules: []edge.Schedule{
		{Name: "cleanup", Cron: "rate(10 seconds)", Function: "cleanup"},
		{Name: "hourly", Cron: "0 * * * *"},
	}}}
	return New(Config{Tick: time.Second}, Deps{Projects: &fakeProjects{active: map[string]string{"prj-1": "dpl-1"}},
		Manifests: m, Runner: runner, Leader: noLeader{}, Store: store})
}

func TestParse(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		expr, next string
		bad        bool
	}{
		{expr: "*/5 * * * *", next: "2026-01-02T03:05:00Z"},
		{expr: "*/2 * * * * *", next: "2026-01-02T03:04:06Z"},
		{expr: "@hourly", next: "2026-01-02T04:00:00Z"},
		{expr: "rate(1 hour)", next: "2026-01-02T04:00:00Z"},
		{expr: "rate(10 seconds)", next: "2026-01-02T03:04:10Z"},
		{expr: "rate(7 minutes)", next: "2026-01-02T03:11:00Z"}, // multiples of 7 min since 1970
		{expr: "rate(0 hours)", bad: true},
		{expr: "rate(1 fortnight)", bad: true},
		{expr: "rate(1 hour", bad: true},
		{expr: "61 * * * *", bad: true},
		{expr: "every day", bad: true},
	} {
		s, err := Parse(tc.expr)
		if tc.bad {
			var ve *control.ValidationError
			if !errors.As(err, &ve) {
				t.Errorf("Parse(%q) = %v, want a ValidationError", tc.expr, err)
			}
			continue
		}
		if err != nil || s.Next(at).Format(time.RFC3339) != tc.next {
			t.Errorf("Parse(%q).Next = %v, %v; want %s", tc.expr, s, err, tc.next)
		}
	}
}

// TestOncePerPeriod: ticks within a period fire it once; two schedulers
// (two controls, or one restarted) on one store never fire a period twice;
// missed periods fire only the latest; runs record result, logs, errors.
func TestOncePerPeriod(t *testing.T) {
	store := &memStore{runs: map[string]*control.ScheduleRun{}}
	runner := &fakeRunner{}
	a, b := newTest(t, store, runner), newTest(t, store, runner)
	ctx := t.Context()
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC) // a period of rate(10 seconds) starts
	for i := range 3 {
		now := t0.Add(time.Duration(i) * 300 * time.Millisecond)
		a.tick(ctx, now)
		b.tick(ctx, now)
	}
	a.wg.Wait()
	b.wg.Wait()
	if n := runner.count(); n != 1 {
		t.Fatalf("runs after three ticks of two schedulers in one period = %d, want 1", n)
	}
	// A restart: a new scheduler in the same period fires nothing.
	c := newTest(t, store, runner)
	c.tick(ctx, t0.Add(500*time.Millisecond))
	c.wg.Wait()
	if n := runner.count(); n != 1 {
		t.Errorf("runs after a restart in the same period = %d, want 1", n)
	}
	// 35 s later: three periods passed, one fires.
	a.tick(ctx, t0.Add(35*time.Second))
	a.wg.Wait()
	if n := runner.count(); n != 2 {
		t.Errorf("runs after missed periods = %d, want 2", n)
	}
	runs, _ := store.ListScheduleRuns(ctx, "prj-1", "cleanup", 0)
	for _, r := range runs {
		if r.State != control.RunSucceeded || r.Result != `{"ok":true}` || len(r.Logs) != 1 || r.Logs[0] != "log cleaned" || r.Edge != "e1" {
			t.Errorf("run = %+v", r)
		}
	}
	var ev Event
	if err := json.Unmarshal(runner.reqs[1].Event, &ev); err != nil || ev.Schedule != "cleanup" || !ev.ScheduledAt.Equal(t0.Add(30*time.Second)) || runner.reqs[1].Function != "cleanup" {
		t.Errorf("second run: %+v %+v %v", runner.reqs[1], ev, err)
	}

	// A failing function: state failed, its error and logs kept.
	runner.fail = true
	a.tick(ctx, t0.Add(40*time.Second))
	a.wg.Wait()
	runs, _ = store.ListScheduleRuns(ctx, "prj-1", "cleanup", 0)
	failed := 0
	for _, r := range runs {
		if r.State == control.RunFailed && r.Error == "boom" && fmt.Sprint(r.Logs) == "[error about to fail]" {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("failed runs recorded = %d, want 1: %+v", failed, runs)
	}

	// Trigger: an explicit period fires once, an unknown schedule is 404.
	p := &control.Project{ID: "prj-1", Name: "prj-1"}
	at := t0.Add(time.Hour)
	if _, err := a.Trigger(ctx, p, "hourly", at); err != nil {
		t.Fatalf("Trigger: %v", err)
	}
	if _, err := a.Trigger(ctx, p, "hourly", at); !errors.Is(err, control.ErrConflict) {
		t.Errorf("second Trigger of one period: %v, want ErrConflict", err)
	}
	if _, err := a.Trigger(ctx, p, "nope", at); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("Trigger of an unknown schedule: %v, want ErrNotFound", err)
	}
	a.wg.Wait()
	if runner.reqs[len(runner.reqs)-1].Function != "scheduled" {
		t.Errorf("a schedule without function runs %q, want scheduled", runner.reqs[len(runner.reqs)-1].Function)
	}
}
