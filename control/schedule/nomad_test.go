package schedule

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

func TestNomadCron(t *testing.T) {
	tests := []struct {
		expr, want string
		why        string // part of the reason when want is ""
	}{
		{expr: "*/5 * * * *", want: "*/5 * * * *"},
		{expr: "0 3 * * MON-FRI", want: "0 3 * * MON-FRI"},
		{expr: "0 */15 * * * *", want: "*/15 * * * *"}, // seconds field 0
		{expr: "@hourly", want: "0 * * * *"},
		{expr: "@daily", want: "0 0 * * *"},
		{expr: "@weekly", want: "0 0 * * 0"},
		{expr: "rate(1 minute)", want: "* * * * *"},
		{expr: "rate(60 seconds)", want: "* * * * *"},
		{expr: "rate(5 minutes)", want: "*/5 * * * *"},
		{expr: "rate(30 minutes)", want: "*/30 * * * *"},
		{expr: "rate(60 minutes)", want: "0 * * * *"},
		{expr: "rate(1 hour)", want: "0 * * * *"},
		{expr: "rate(2 hours)", want: "0 */2 * * *"},
		{expr: "rate(120 minutes)", want: "0 */2 * * *"},
		{expr: "rate(6 hours)", want: "0 */6 * * *"},
		{expr: "rate(1 day)", want: "0 0 * * *"},
		{expr: "rate(24 hours)", want: "0 0 * * *"},
		{expr: "rate(7 days)", want: "0 0 * * 4"},
		{expr: "rate(7 minutes)", why: "no cron expression"},
		{expr: "rate(5 hours)", why: "no cron expression"},
		{expr: "rate(2 days)", why: "no cron expression"},
		{expr: "rate(30 seconds)", why: "not whole minutes"},
		{expr: "rate(90 seconds)", why: "not whole minutes"},
		{expr: "*/10 * * * * *", why: "more often than once a minute"},
		{expr: "@every 1h", why: "@every"},
		{expr: "61 * * * *", why: "61"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, why := NomadCron(tt.expr)
			if got != tt.want || (tt.want == "" && !strings.Contains(why, tt.why)) {
				t.Errorf("NomadCron(%q) = %q, %q; want %q (reason mentioning %q)", tt.expr, got, why, tt.want, tt.why)
			}
			if got == "" {
				return
			}
			// The cron fires at the same instants as the expression.
			a, err1 := Parse(tt.expr)
			b, err2 := Parse(got)
			if err1 != nil || err2 != nil {
				t.Fatalf("parse: %v, %v", err1, err2)
			}
			at, bt := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
			for range 20 {
				at, bt = a.Next(at), b.Next(bt)
				if !at.Equal(bt) {
					t.Fatalf("%q fires at %v, %q at %v", tt.expr, at, got, bt)
				}
			}
		})
	}
}

func TestParseLaunch(t *testing.T) {
	tests := []struct {
		launch, parent string
		period         int64
		bad            string
	}{
		{launch: "pier-cron-shop-cleanup-1a2b3c4d/periodic-1700000000", parent: "pier-cron-shop-cleanup-1a2b3c4d", period: 1700000000},
		{launch: "a/b/periodic-60", parent: "a/b", period: 60},
		{launch: "", bad: "not a Nomad periodic launch id"},
		{launch: "pier-cron-x", bad: "not a Nomad periodic launch id"},
		{launch: "/periodic-1700000000", bad: "not a Nomad periodic launch id"},
		{launch: "pier-cron-x/periodic-", bad: "does not end in a launch time"},
		{launch: "pier-cron-x/periodic-soon", bad: "does not end in a launch time"},
		{launch: "pier-cron-x/periodic--5", bad: "does not end in a launch time"},
		{launch: "pier-cron-x/periodic-99999999999999999999", bad: "does not end in a launch time"},
		{launch: "pier-cron-x/dispatch-1700000000-abcd", bad: "not a Nomad periodic launch id"},
	}
	for _, tt := range tests {
		t.Run(tt.launch, func(t *testing.T) {
			parent, at, err := ParseLaunch(tt.launch)
			if tt.bad != "" {
				var ve *control.ValidationError
				if !errors.As(err, &ve) || !strings.Contains(err.Error(), tt.bad) {
					t.Errorf("ParseLaunch(%q) = %v, want a ValidationError mentioning %q", tt.launch, err, tt.bad)
				}
				return
			}
			if err != nil || parent != tt.parent || at.Unix() != tt.period || at.Location() != time.UTC {
				t.Errorf("ParseLaunch(%q) = %q, %v, %v; want %q, %d", tt.launch, parent, at, err, tt.parent, tt.period)
			}
		})
	}
}

func TestJobIDAndToken(t *testing.T) {
	a, b := JobID("prj-1", "a-b", "c"), JobID("prj-2", "a", "b-c")
	if a == b || !strings.HasPrefix(a, "pier-cron-a-b-c-") || !strings.HasPrefix(b, "pier-cron-a-b-c-") {
		t.Errorf("look-alike pairs: %q, %q", a, b)
	}
	long := JobID("prj-1", strings.Repeat("p", 63), strings.Repeat("S", 64))
	if len(long) > 100 || strings.ContainsAny(long, "S /\"") {
		t.Errorf("long id = %q (%d characters)", long, len(long))
	}
	if JobID("prj-1", "shop", "cleanup") != JobID("prj-1", "shop", "cleanup") {
		t.Error("JobID is not stable")
	}
	tok := CronToken("key-0123456789abcdef01234", "prj-1", "cleanup")
	if !strings.HasPrefix(tok, CronTokenPrefix) || tok == CronToken("key-0123456789abcdef01234", "prj-1", "other") ||
		tok == CronToken("another-key-0123456789abcd", "prj-1", "cleanup") {
		t.Errorf("tokens do not differ per schedule and key: %q", tok)
	}
}

// fakePeriodic records what the scheduler hands to Nomad.
type fakePeriodic struct {
	mu    sync.Mutex
	syncs [][]PeriodicJob
	fail  bool
}

func (f *fakePeriodic) Sync(_ context.Context, want []PeriodicJob) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("nomad is down")
	}
	f.syncs = append(f.syncs, append([]PeriodicJob(nil), want...))
	return nil
}

// TestNomadTimer: with the nomad timer the leader hands the schedules
// Nomad can time to Deps.Periodic, syncs again only when they change, and
// the builtin timer stops firing them once they are handed over (it keeps
// firing a seconds schedule, and every schedule while Nomad refuses).
// A launch fires its period once, with the trigger "nomad"; a launch of
// another job is refused; cron tokens open only their schedule.
func TestNomadTimer(t *testing.T) {
	store := &memStore{runs: map[string]*control.ScheduleRun{}}
	runner := &fakeRunner{}
	periodic := &fakePeriodic{fail: true}
	m := fakeManifests{"dpl-1": {DeploymentID: "dpl-1", Schedules: []edge.Schedule{
		{Name: "cleanup", Cron: "rate(1 minute)", Function: "cleanup"},
		{Name: "fast", Cron: "*/10 * * * * *"},
	}}}
	projects := &fakeProjects{active: map[string]string{"prj-1": "dpl-1"}}
	s := New(Config{Tick: time.Second, Timer: TimerNomad, TokenKey: "key-0123456789abcdef01234"},
		Deps{Projects: projects, Manifests: m, Runner: runner, Leader: noLeader{}, Store: store, Periodic: periodic})
	ctx := t.Context()
	fired := func(name string) int {
		s.wg.Wait()
		runs, _ := store.ListScheduleRuns(ctx, "prj-1", name, 0)
		return len(runs)
	}

	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC) // a minute and a 10 s period start
	s.tick(ctx, t0)
	if fired("cleanup") != 1 || fired("fast") != 1 {
		t.Fatalf("while Nomad refuses, the builtin timer fires both: cleanup %d, fast %d", fired("cleanup"), fired("fast"))
	}
	periodic.mu.Lock()
	periodic.fail = false
	periodic.mu.Unlock()
	s.tick(ctx, t0.Add(6*time.Second)) // past the 5 s retry delay
	if len(periodic.syncs) != 1 || len(periodic.syncs[0]) != 1 {
		t.Fatalf("syncs = %+v, want one with the cleanup job only", periodic.syncs)
	}
	j := periodic.syncs[0][0]
	if j.ID != JobID("prj-1", "prj-1", "cleanup") || j.Cron != "* * * * *" || j.Project != "prj-1" || j.Token != CronToken("key-0123456789abcdef01234", "prj-1", "cleanup") {
		t.Errorf("job = %+v", j)
	}
	// The next minute: Nomad's, not the builtin timer's; fast goes on.
	s.tick(ctx, t0.Add(60*time.Second))
	if fired("cleanup") != 1 || fired("fast") != 2 {
		t.Errorf("after the handover: cleanup %d (want 1), fast %d (want 2)", fired("cleanup"), fired("fast"))
	}
	if len(periodic.syncs) != 1 {
		t.Errorf("an unchanged set synced again: %d syncs", len(periodic.syncs))
	}
	// A redeploy without the schedule: synced away.
	m["dpl-2"] = &edge.Manifest{DeploymentID: "dpl-2", Schedules: []edge.Schedule{{Name: "fast", Cron: "*/10 * * * * *"}}}
	projects.active["prj-1"] = "dpl-2"
	s.tick(ctx, t0.Add(61*time.Second))
	if len(periodic.syncs) != 2 || len(periodic.syncs[1]) != 0 {
		t.Errorf("syncs after the schedule went away = %+v, want a second, empty one", periodic.syncs)
	}
	projects.active["prj-1"] = "dpl-1"

	// List says who times what.
	list, err := s.List(ctx, "prj-1")
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if l := list[0]; l.Timer != TimerNomad || l.NomadJob != j.ID || l.NomadCron != "* * * * *" || l.Note != "" {
		t.Errorf("cleanup listed as %+v", l)
	}
	if l := list[1]; l.Timer != TimerBuiltin || !strings.Contains(l.Note, "stays on the builtin timer") {
		t.Errorf("fast listed as %+v", l)
	}

	// Launches.
	p := &control.Project{ID: "prj-1", Name: "prj-1"}
	launch := j.ID + "/periodic-1767323100"
	run, err := s.TriggerLaunch(ctx, p, "cleanup", launch)
	if err != nil || run.Trigger != TriggerNomad || run.ScheduledAt.Unix() != 1767323100 {
		t.Fatalf("TriggerLaunch = %+v, %v", run, err)
	}
	if _, err := s.TriggerLaunch(ctx, p, "cleanup", launch); !errors.Is(err, control.ErrConflict) {
		t.Errorf("the same launch again: %v, want ErrConflict", err)
	}
	var ve *control.ValidationError
	if _, err := s.TriggerLaunch(ctx, p, "cleanup", JobID("prj-1", "prj-1", "fast")+"/periodic-1767323100"); !errors.As(err, &ve) || !strings.Contains(err.Error(), "not by this schedule's job") {
		t.Errorf("a launch of another job: %v", err)
	}
	if !s.CronTokenValid("prj-1", "cleanup", j.Token) || s.CronTokenValid("prj-1", "fast", j.Token) || s.CronTokenValid("prj-2", "cleanup", j.Token) {
		t.Error("a cron token opens another schedule, or not its own")
	}
	s.wg.Wait()
}
