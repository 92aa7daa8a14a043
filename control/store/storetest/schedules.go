package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
)

// testScheduleRuns pins the runs of scheduled functions: a period is
// claimed once (the second claim wraps ErrConflict, also for another
// deployment), a finish writes the outcome, lists are latest period first,
// per schedule, and runs go with their project.
func testScheduleRuns(t *testing.T, open func(t *testing.T) control.Store) {
	s := open(t)
	ctx := t.Context()
	p := &control.Project{Name: "cron"}
	if err := s.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	at := base.Add(time.Hour)
	r := &control.ScheduleRun{ProjectID: p.ID, DeploymentID: "dpl-1", Schedule: "cleanup", ScheduledAt: at, Trigger: "schedule"}
	if err := s.ClaimScheduleRun(ctx, r); err != nil {
		t.Fatalf("ClaimScheduleRun: %v", err)
	}
	if r.ID == "" || r.State != control.RunRunning || r.StartedAt.IsZero() {
		t.Errorf("claimed run = %+v: want an ID, state running and StartedAt", r)
	}
	again := &control.ScheduleRun{ProjectID: p.ID, DeploymentID: "dpl-2", Schedule: "cleanup", ScheduledAt: at, Trigger: "schedule"}
	if err := s.ClaimScheduleRun(ctx, again); !errors.Is(err, control.ErrConflict) {
		t.Errorf("second claim of a period: %v, want ErrConflict", err)
	}
	other := &control.ScheduleRun{ProjectID: p.ID, DeploymentID: "dpl-1", Schedule: "report", ScheduledAt: at, Trigger: "api"}
	if err := s.ClaimScheduleRun(ctx, other); err != nil {
		t.Errorf("another schedule's claim of the same instant: %v", err)
	}
	later := &control.ScheduleRun{ProjectID: p.ID, DeploymentID: "dpl-1", Schedule: "cleanup", ScheduledAt: at.Add(time.Minute), Trigger: "schedule"}
	if err := s.ClaimScheduleRun(ctx, later); err != nil {
		t.Fatal(err)
	}
	r.State, r.Edge, r.Result, r.Logs = control.RunSucceeded, "edge-1", `{"deleted":3}`, []string{"log deleted 3"}
	if err := s.FinishScheduleRun(ctx, r); err != nil {
		t.Fatalf("FinishScheduleRun: %v", err)
	}
	if err := s.FinishScheduleRun(ctx, &control.ScheduleRun{ID: "run-none", State: control.RunFailed}); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("finish of an unknown run: %v, want ErrNotFound", err)
	}
	runs, err := s.ListScheduleRuns(ctx, p.ID, "cleanup", 0)
	if err != nil || len(runs) != 2 || runs[0].ID != later.ID || runs[1].ID != r.ID {
		t.Fatalf("ListScheduleRuns(cleanup) = %v, %v", runs, err)
	}
	got := runs[1]
	if got.State != control.RunSucceeded || got.Edge != "edge-1" || got.Result != `{"deleted":3}` || !slices.Equal(got.Logs, r.Logs) ||
		!got.ScheduledAt.Equal(at.UTC().Truncate(time.Microsecond)) || got.FinishedAt.IsZero() || got.Trigger != "schedule" {
		t.Errorf("finished run = %+v", got)
	}
	if runs[0].Logs == nil || len(runs[0].Logs) != 0 || !runs[0].FinishedAt.IsZero() {
		t.Errorf("running run = %+v: want empty logs, no FinishedAt", runs[0])
	}
	if all, _ := s.ListScheduleRuns(ctx, p.ID, "", 0); len(all) != 3 {
		t.Errorf("all runs = %d, want 3", len(all))
	}
	if one, _ := s.ListScheduleRuns(ctx, p.ID, "", 1); len(one) != 1 {
		t.Errorf("limit 1 = %d runs", len(one))
	}
	if err := s.ClaimScheduleRun(ctx, &control.ScheduleRun{ProjectID: "prj-none", Schedule: "x", ScheduledAt: at}); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("claim for an unknown project: %v, want ErrNotFound", err)
	}
	if err := s.DeleteProject(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if runs, _ := s.ListScheduleRuns(ctx, p.ID, "", 0); len(runs) != 0 {
		t.Errorf("runs of a deleted project: %d", len(runs))
	}
}
