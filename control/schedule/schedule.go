// Package schedule fires scheduled functions: the schedules a project's
// production deployment declares (pier.json "schedules", carried in its
// manifest) run once per period across the cluster, on an edge isolate.
//
// Once per period: the Scheduler runs only while it holds the
// "scheduler" leadership (edge/coord's session lock, through Leader),
// and every period is claimed in the store (ClaimScheduleRun, unique per
// project, schedule and instant) before it fires, so neither a second
// control nor a restarted one fires it again. Periods missed while no
// control led are not replayed; the next one fires.
//
// With Config.Timer = TimerNomad, production leaves the timing to Nomad:
// the leader keeps one periodic job per schedule (Deps.Periodic, a
// PeriodicJob with the schedule's cron and a CronToken) in step with the
// live deployments, and the builtin timer no longer fires the schedules
// whose job is registered. Each launch calls the API's run endpoint with
// its launch id (TriggerLaunch), which names the period, so a launch that
// is retried or duplicated fires once. Schedules Nomad cannot time
// (seconds, rates with no cron equivalent: NomadCron) stay on the builtin
// timer, and List says so.
package schedule

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

// Projects lists the projects and their live production deployments
// (deploy.Service).
type Projects interface {
	Projects(ctx context.Context) ([]*control.Project, error)
	Active(ctx context.Context, projectID string) (string, error)
}

// Manifests reads a deployment's manifest (its schedules). Manifests
// never change: implementations may keep them (pier keeps one shared copy).
type Manifests interface {
	Manifest(ctx context.Context, deploymentID string) (*edge.Manifest, error)
}

// Runner runs one function on an edge that holds the deployment.
type Runner interface {
	Run(ctx context.Context, req edge.RunRequest) (*edge.RunResult, error)
}

// Leader runs fn while this process leads (coord.Coordinator.Lead).
type Leader interface {
	Lead(ctx context.Context, name, id string, fn func(ctx context.Context)) error
}

// Store is the part of the metadata store the scheduler uses.
type Store interface {
	control.ScheduleStore
}

// Config configures the scheduler.
type Config struct {
	// ID names this control in the leadership lock.
	ID string
	// Tick is how often the leader looks for due periods. Default 1s.
	Tick time.Duration
	// RunTimeout bounds one run. Default 5m.
	RunTimeout time.Duration
	// Timer is TimerBuiltin (default) or TimerNomad (needs
	// Deps.Periodic and TokenKey).
	Timer string
	// TokenKey signs the periodic jobs' bearer tokens (CronToken); every
	// control must have the same one.
	TokenKey string
	// Resync is how often the leader syncs the periodic jobs even when
	// the schedules did not change (to repair jobs changed by hand);
	// default 1m.
	Resync time.Duration
	Logger *slog.Logger
}

// Deps are the scheduler's ports; all are required.
type Deps struct {
	Projects  Projects
	Manifests Manifests
	Runner    Runner
	Leader    Leader
	Store     Store
	// Periodic keeps the Nomad periodic jobs; required with TimerNomad,
	// unused otherwise.
	Periodic PeriodicJobs
}

// Scheduler fires the schedules.
type Scheduler struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	mu   sync.Mutex
	next map[string]time.Time // project/schedule/expr → next period
	wg   sync.WaitGroup

	// TimerNomad: what the last successful Sync registered (project
	// id/schedule/expr keys, which the builtin timer then leaves alone),
	// its fingerprint, and when it ran.
	handed   map[string]bool
	synced   string
	syncedAt time.Time
	failedAt time.Time
}

// New returns a scheduler; it starts nothing.
func New(cfg Config, deps Deps) *Scheduler {
	if deps.Projects == nil || deps.Manifests == nil || deps.Runner == nil || deps.Leader == nil || deps.Store == nil {
		panic("schedule.New: nil dependency")
	}
	switch cfg.Timer {
	case "":
		cfg.Timer = TimerBuiltin
	case TimerBuiltin:
	case TimerNomad:
		if deps.Periodic == nil || cfg.TokenKey == "" {
			panic("schedule.New: the nomad timer needs Deps.Periodic and Config.TokenKey")
		}
	default:
		panic("schedule.New: unknown timer " + cfg.Timer)
	}
	if cfg.Resync <= 0 {
		cfg.Resync = time.Minute
	}
	if cfg.ID == "" {
		cfg.ID = "control"
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.RunTimeout <= 0 {
		cfg.RunTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg, deps: deps, log: cfg.Logger.With("component", "schedule"),
		next: map[string]time.Time{}, handed: map[string]bool{}}
}

// parser reads cron expressions as the builder validates them.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// epochRate fires every d since the Unix epoch, so every control computes
// the same periods.
type epochRate time.Duration

func (r epochRate) Next(t time.Time) time.Time {
	d, n := int64(r), t.UnixNano()
	k := n / d
	if n < 0 && n%d != 0 {
		k-- // floor, before 1970
	}
	return time.Unix(0, (k+1)*d).UTC()
}

// Parse parses a schedule's expression: cron (5 or 6 fields, or a
// descriptor), or rate(N unit). Times are UTC.
func Parse(expr string) (cron.Schedule, error) {
	if d, ok, err := edge.ParseRate(expr); ok {
		if err != nil {
			return nil, control.Invalid("cron", "%v", err)
		}
		return epochRate(d), nil
	}
	s, err := parser.Parse(expr)
	if err != nil {
		return nil, control.Invalid("cron", "%q: %v", expr, err)
	}
	return s, nil
}

// Run campaigns for leadership and, while leading, fires due periods
// every Tick until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.wg.Wait()
	err := s.deps.Leader.Lead(ctx, "scheduler", s.cfg.ID, func(lctx context.Context) {
		s.mu.Lock()
		clear(s.next) // a new term: start from now
		s.synced = "" // and sync the periodic jobs at once
		s.mu.Unlock()
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			now := time.Now()
			// Wake at the earliest next period, or after Tick to see new
			// deployments and schedules.
			wake := now.Add(s.cfg.Tick)
			if next := s.tick(lctx, now); !next.IsZero() && next.Before(wake) {
				wake = next
			}
			t.Reset(max(time.Until(wake), time.Millisecond))
		}
	})
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

// tick fires every period due at now and returns the earliest next
// period (zero: none).
func (s *Scheduler) tick(ctx context.Context, now time.Time) (earliest time.Time) {
	projects, err := s.deps.Projects.Projects(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("list projects", "err", err)
		}
		return time.Time{}
	}
	type live struct {
		p      *control.Project
		dep    string
		scheds []edge.Schedule
	}
	var lives []live
	var want []PeriodicJob
	complete := true // every project's schedules were read
	for _, p := range projects {
		dep, scheds, err := s.schedules(ctx, p.ID)
		if err != nil {
			complete = false
			if ctx.Err() == nil {
				s.log.Warn("schedules of project", "project", p.Name, "err", err)
			}
			continue
		}
		lives = append(lives, live{p, dep, scheds})
		if s.cfg.Timer != TimerNomad {
			continue
		}
		for _, sc := range scheds {
			if c, _ := NomadCron(sc.Cron); c != "" {
				want = append(want, PeriodicJob{ID: JobID(p.ID, p.Name, sc.Name), Project: p.Name, ProjectID: p.ID,
					Schedule: sc.Name, Expr: sc.Cron, Cron: c, Token: CronToken(s.cfg.TokenKey, p.ID, sc.Name)})
			}
		}
	}
	// Hand the schedules to Nomad first, so the builtin timer leaves a
	// new one alone from its first tick (unless the sync fails). A
	// partial view never syncs: it would purge the unread projects' jobs.
	if s.cfg.Timer == TimerNomad && complete {
		s.syncJobs(ctx, now, want)
	}
	for _, l := range lives {
		for _, sc := range l.scheds {
			cs, err := Parse(sc.Cron)
			if err != nil {
				continue // the builder refused it already
			}
			key := l.p.ID + "/" + sc.Name + "/" + sc.Cron
			s.mu.Lock()
			if s.handed[key] {
				s.mu.Unlock()
				continue // Nomad times it
			}
			next, ok := s.next[key]
			if !ok {
				// Start with the current period if it began within the
				// last tick (the store's claim stops a double fire), else
				// with the next one.
				next = cs.Next(now.Add(-s.cfg.Tick - time.Second))
			}
			due := !now.Before(next)
			if due {
				for n := cs.Next(next); !now.Before(n); n = cs.Next(n) {
					next = n // periods missed: only the latest fires
				}
				s.next[key] = cs.Next(next)
			} else {
				s.next[key] = next
			}
			if n := s.next[key]; earliest.IsZero() || n.Before(earliest) {
				earliest = n
			}
			s.mu.Unlock()
			if due {
				s.fire(ctx, l.p, l.dep, sc, next, TriggerSchedule)
			}
		}
	}
	return earliest
}

// syncJobs hands want to Deps.Periodic when it differs from what was last
// synced, when the last sync is older than Resync, or (after a failure)
// every 5 s. Until a schedule's job is synced, the builtin timer fires it:
// a launch and the builtin timer name the same periods, so the store's
// claim lets only one of them fire each period.
func (s *Scheduler) syncJobs(ctx context.Context, now time.Time, want []PeriodicJob) {
	var fp strings.Builder
	for _, j := range want {
		fmt.Fprintf(&fp, "%s %s %s\n", j.ID, j.Cron, j.Token)
	}
	s.mu.Lock()
	stale := fp.String() != s.synced || now.Sub(s.syncedAt) >= s.cfg.Resync
	retry := now.Sub(s.failedAt) >= 5*time.Second
	s.mu.Unlock()
	if !stale || !retry {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.deps.Periodic.Sync(sctx, want); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("sync the nomad periodic jobs (the builtin timer fires the schedules not yet handed over)", "err", err)
		}
		s.mu.Lock()
		s.failedAt = now
		s.mu.Unlock()
		return
	}
	handed := make(map[string]bool, len(want))
	s.mu.Lock()
	defer s.mu.Unlock()
	if fp.String() != s.synced {
		s.log.Info("nomad periodic jobs synced", "jobs", len(want))
	}
	for _, j := range want {
		handed[j.ProjectID+"/"+j.Schedule+"/"+j.Expr] = true
	}
	s.handed, s.synced, s.syncedAt = handed, fp.String(), now
}

// schedules returns the project's live production deployment and its
// schedules.
func (s *Scheduler) schedules(ctx context.Context, projectID string) (string, []edge.Schedule, error) {
	dep, err := s.deps.Projects.Active(ctx, projectID)
	if err != nil || dep == "" {
		return "", nil, err
	}
	m, err := s.deps.Manifests.Manifest(ctx, dep)
	if err != nil {
		return "", nil, fmt.Errorf("manifest of %s: %w", dep, err)
	}
	return dep, m.Schedules, nil
}

// fire claims the period and runs it in the background.
func (s *Scheduler) fire(ctx context.Context, p *control.Project, dep string, sc edge.Schedule, at time.Time, trigger string) *control.ScheduleRun {
	run := &control.ScheduleRun{ProjectID: p.ID, DeploymentID: dep, Schedule: sc.Name, ScheduledAt: at, Trigger: trigger}
	if err := s.deps.Store.ClaimScheduleRun(ctx, run); err != nil {
		if !errors.Is(err, control.ErrConflict) && ctx.Err() == nil {
			s.log.Warn("claim scheduled run", "project", p.Name, "schedule", sc.Name, "err", err)
		}
		return nil
	}
	s.log.Info("scheduled function fires", "project", p.Name, "schedule", sc.Name, "period", at, "run", run.ID)
	s.wg.Go(func() { s.execute(context.WithoutCancel(ctx), p, sc, run) })
	return run
}

// Event is what the function receives as its first argument.
type Event struct {
	Schedule    string    `json:"schedule"`
	Cron        string    `json:"cron"`
	ScheduledAt time.Time `json:"scheduledTime"`
	RunID       string    `json:"runId"`
	Project     string    `json:"project"`
}

// maxResult and maxLogs bound what a run record keeps.
const (
	maxResult = 4 << 10
	maxLogs   = 200
	maxLine   = 2 << 10
)

func (s *Scheduler) execute(ctx context.Context, p *control.Project, sc edge.Schedule, run *control.ScheduleRun) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RunTimeout)
	defer cancel()
	fn := sc.Function
	if fn == "" {
		fn = "scheduled"
	}
	ev, _ := json.Marshal(Event{Schedule: sc.Name, Cron: sc.Cron, ScheduledAt: run.ScheduledAt, RunID: run.ID, Project: p.Name})
	res, err := s.deps.Runner.Run(ctx, edge.RunRequest{DeploymentID: run.DeploymentID, Function: fn, Event: ev, RunID: run.ID})
	run.State = control.RunSucceeded
	switch {
	case err != nil:
		run.State, run.Error = control.RunFailed, err.Error()
	case res.Error != "":
		run.State, run.Error = control.RunFailed, res.Error
	}
	if res != nil {
		run.Edge = res.Edge
		run.Result = truncate(string(res.Result), maxResult)
		run.Logs = []string{}
		for i, l := range res.Logs {
			if i == maxLogs {
				run.Logs = append(run.Logs, fmt.Sprintf("(%d more lines)", len(res.Logs)-maxLogs))
				break
			}
			run.Logs = append(run.Logs, truncate(l.Level+" "+l.Message, maxLine))
		}
	}
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer fcancel()
	if err := s.deps.Store.FinishScheduleRun(fctx, run); err != nil {
		s.log.Warn("record scheduled run", "run", run.ID, "err", err)
	}
	s.log.Info("scheduled function ran", "project", p.Name, "schedule", sc.Name, "run", run.ID, "state", run.State, "edge", run.Edge, "error", run.Error)
}

func truncate(v string, n int) string {
	if len(v) <= n {
		return v
	}
	return strings.ToValidUTF8(v[:n], "") + "…"
}

// ScheduleInfo is a schedule of a project's live deployment.
type ScheduleInfo struct {
	edge.Schedule
	Function     string    `json:"function"`
	DeploymentID string    `json:"deployment_id"`
	Next         time.Time `json:"next"`
	// Timer is what times it: "builtin" or "nomad" (Config.Timer, and
	// whether Nomad can time this expression).
	Timer string `json:"timer"`
	// NomadJob and NomadCron are its periodic job and that job's cron
	// (timer "nomad").
	NomadJob  string `json:"nomad_job,omitempty"`
	NomadCron string `json:"nomad_cron,omitempty"`
	// Note says why a schedule stays on the builtin timer in nomad mode.
	Note string `json:"note,omitempty"`
}

// List returns the schedules of the project's live production deployment
// with their next period and their timer.
func (s *Scheduler) List(ctx context.Context, projectID string) ([]ScheduleInfo, error) {
	dep, scheds, err := s.schedules(ctx, projectID)
	if err != nil {
		return nil, err
	}
	p, err := s.project(ctx, projectID)
	if err != nil {
		return nil, err
	}
	out := []ScheduleInfo{}
	now := time.Now()
	for _, sc := range scheds {
		info := ScheduleInfo{Schedule: sc, Function: sc.Function, DeploymentID: dep, Timer: TimerBuiltin}
		if info.Function == "" {
			info.Function = "scheduled"
		}
		if cs, err := Parse(sc.Cron); err == nil {
			info.Next = cs.Next(now).UTC()
		}
		if s.cfg.Timer == TimerNomad {
			c, why := NomadCron(sc.Cron)
			if c != "" {
				info.Timer, info.NomadJob, info.NomadCron = TimerNomad, JobID(projectID, p.Name, sc.Name), c
			} else {
				info.Note = "stays on the builtin timer: " + why
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// project finds a project by id among Projects.
func (s *Scheduler) project(ctx context.Context, projectID string) (*control.Project, error) {
	ps, err := s.deps.Projects.Projects(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.ID == projectID {
			return p, nil
		}
	}
	return nil, fmt.Errorf("project %s: %w", projectID, control.ErrNotFound)
}

// Trigger fires a schedule now, outside its periods (the API's run
// endpoint). at names the period: a caller that retries with the same at
// fires it once; zero means now.
func (s *Scheduler) Trigger(ctx context.Context, p *control.Project, name string, at time.Time) (*control.ScheduleRun, error) {
	return s.trigger(ctx, p, name, at, TriggerAPI)
}

// TriggerLaunch fires the period of a Nomad periodic launch: launch is
// the launched child's job id ("<job>/periodic-<unix seconds>"), whose
// parent must be the schedule's job (JobID). A launch that is retried or
// duplicated fires once (control.ErrConflict the second time); the run
// records the trigger "nomad".
func (s *Scheduler) TriggerLaunch(ctx context.Context, p *control.Project, name, launch string) (*control.ScheduleRun, error) {
	parent, at, err := ParseLaunch(launch)
	if err != nil {
		return nil, err
	}
	if want := JobID(p.ID, p.Name, name); parent != want {
		return nil, control.Invalid("launch", "%q was launched by the job %q, not by this schedule's job %q", launch, parent, want)
	}
	return s.trigger(ctx, p, name, at, TriggerNomad)
}

// CronTokenValid reports whether token is the periodic job's bearer for
// the project's schedule (CronToken). It is false without a TokenKey.
func (s *Scheduler) CronTokenValid(projectID, name, token string) bool {
	if s.cfg.TokenKey == "" {
		return false
	}
	return hmac.Equal([]byte(token), []byte(CronToken(s.cfg.TokenKey, projectID, name)))
}

func (s *Scheduler) trigger(ctx context.Context, p *control.Project, name string, at time.Time, trigger string) (*control.ScheduleRun, error) {
	dep, scheds, err := s.schedules(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	if dep == "" {
		return nil, fmt.Errorf("project %q has no live production deployment: %w", p.Name, control.ErrNotFound)
	}
	for _, sc := range scheds {
		if sc.Name != name {
			continue
		}
		if at.IsZero() {
			at = time.Now()
		}
		run := &control.ScheduleRun{ProjectID: p.ID, DeploymentID: dep, Schedule: sc.Name, ScheduledAt: at, Trigger: trigger}
		if err := s.deps.Store.ClaimScheduleRun(ctx, run); err != nil {
			return nil, err
		}
		s.log.Info("scheduled function fires", "project", p.Name, "schedule", sc.Name, "period", at, "run", run.ID, "trigger", trigger)
		s.wg.Go(func() { s.execute(context.WithoutCancel(ctx), p, sc, run) })
		return run, nil
	}
	return nil, fmt.Errorf("schedule %q: %w", name, control.ErrNotFound)
}

// Runs lists a project's runs (of one schedule when name is set).
func (s *Scheduler) Runs(ctx context.Context, projectID, name string, limit int) ([]*control.ScheduleRun, error) {
	return s.deps.Store.ListScheduleRuns(ctx, projectID, name, limit)
}
