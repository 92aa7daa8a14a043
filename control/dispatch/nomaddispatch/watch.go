package nomaddispatch

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/pierhq/pier/jobs"
)

// watch follows one dispatched job to its end.
type watch struct {
	d     *Dispatcher
	jobID string
	out   *output
	log   *slog.Logger

	allocID   string // the allocation followed, once there is one
	placement string // why the job is not placed, when Nomad says so
}

// Timings of the watch. Not tunable: they bound waits on Nomad, never the
// build.
const (
	explainEvery = 5 * time.Second // at most one evaluation lookup per interval
	retryMin     = 250 * time.Millisecond
	retryMax     = 5 * time.Second
	drainTimeout = 30 * time.Second // reading the rest of the logs after the task ended
)

// run waits for the job's allocation, streams its task's logs, and
// returns the result once the allocation is terminal. wctx carries the
// build's deadline; ctx is the caller's (the log drain after the task
// ended is bounded separately, so a build that finished just before its
// deadline still reports).
func (w *watch) run(ctx, wctx context.Context) (*jobs.BuildResult, error) {
	stub, err := w.firstAlloc(wctx)
	if err != nil {
		return nil, err
	}
	w.allocID = stub.ID
	w.log = w.log.With("alloc", stub.ID)

	streamCtx, cancelStreams := context.WithCancel(ctx)
	defer cancelStreams()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	started := false
	startStreams := func(alloc *api.Allocation, task string) {
		started = true
		for _, typ := range []string{"stdout", "stderr"} {
			s := &stream{d: w.d, alloc: alloc, task: task, typ: typ, lines: w.out.splitter(typ == "stdout"), log: w.log}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.follow(streamCtx, stop)
				dctx, cancel := context.WithTimeout(streamCtx, drainTimeout)
				defer cancel()
				s.drain(dctx)
			}()
		}
	}
	abort := func() {
		cancelStreams()
		if !started {
			return
		}
		close(stop)
		wg.Wait()
		w.out.flush()
	}

	var (
		index uint64
		task  string
		delay = retryMin
	)
	for {
		alloc, meta, err := w.d.allocs.Info(stub.ID, w.d.query(wctx, index))
		if err != nil {
			if wctx.Err() != nil {
				abort()
				return nil, wctx.Err()
			}
			if !retryable(err) {
				abort()
				return nil, explain("watch build allocation "+stub.ID, err)
			}
			w.log.Warn("watch build allocation: retrying", "err", err)
			if !sleep(wctx, delay) {
				abort()
				return nil, wctx.Err()
			}
			delay = min(2*delay, retryMax)
			continue
		}
		delay = retryMin
		index = nextIndex(index, meta)
		if task == "" && alloc.Job != nil {
			if task, err = taskOf(alloc.Job, alloc.TaskGroup); err != nil {
				abort()
				return nil, fmt.Errorf("build job %s: %w", w.jobID, err)
			}
		}
		if !started && taskStarted(alloc, task) {
			startStreams(alloc, task)
		}
		if alloc.ClientTerminalStatus() {
			close(stop) // the streams read what is left, then end
			wg.Wait()
			w.out.flush()
			cancelStreams()
			res, err := w.out.result()
			if res != nil {
				return res, nil
			}
			return nil, fmt.Errorf("build job %s ended without a result (allocation %s %s%s)%s",
				w.jobID, shortID(alloc.ID), alloc.ClientStatus, taskSummary(alloc, task), resultProblem(err))
		}
	}
}

// firstAlloc waits until the dispatched job has an allocation. While it
// has none, it looks at the job's evaluations to say why (no node with
// the driver, the pool full, ...), logging it once.
func (w *watch) firstAlloc(ctx context.Context) (*api.AllocationListStub, error) {
	var (
		index     uint64
		delay     = retryMin
		explained time.Time
	)
	for {
		// Short waits while unplaced, so the reason is logged as it changes.
		q := w.d.query(ctx, index)
		q.WaitTime = min(q.WaitTime, explainEvery)
		stubs, meta, err := w.d.jobs.Allocations(w.jobID, true, q)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !retryable(err) {
				return nil, explain("watch build job "+w.jobID, err)
			}
			w.log.Warn("watch build job: retrying", "err", err)
			if !sleep(ctx, delay) {
				return nil, ctx.Err()
			}
			delay = min(2*delay, retryMax)
			continue
		}
		delay = retryMin
		if len(stubs) > 0 {
			first := stubs[0]
			for _, s := range stubs[1:] {
				if s.CreateIndex < first.CreateIndex {
					first = s
				}
			}
			return first, nil
		}
		index = nextIndex(index, meta)
		if time.Since(explained) >= explainEvery {
			explained = time.Now()
			w.explainPlacement(ctx)
		}
	}
}

// explainPlacement records why the job is not placed, from the failed
// allocation metrics of its latest evaluation.
func (w *watch) explainPlacement(ctx context.Context) {
	evals, _, err := w.d.jobs.Evaluations(w.jobID, w.d.query(ctx, 0))
	if err != nil {
		return
	}
	var latest *api.Evaluation
	for _, e := range evals {
		if len(e.FailedTGAllocs) > 0 && (latest == nil || e.CreateIndex > latest.CreateIndex) {
			latest = e
		}
	}
	if latest == nil {
		return
	}
	var parts []string
	for _, tg := range slices.Sorted(maps.Keys(latest.FailedTGAllocs)) {
		parts = append(parts, placementText(latest.FailedTGAllocs[tg]))
	}
	why := strings.Join(parts, "; ")
	if why != w.placement {
		w.placement = why
		w.log.Warn("build job cannot be placed yet", "reason", why)
	}
}

// placementText summarises a placement failure: "no node in pool
// default can run it (1 nodes filtered: missing drivers)".
func placementText(m *api.AllocationMetric) string {
	if m == nil {
		return "no node can run it"
	}
	var reasons []string
	add := func(counts map[string]int) {
		for _, k := range slices.Sorted(maps.Keys(counts)) {
			reasons = append(reasons, fmt.Sprintf("%s ×%d", k, counts[k]))
		}
	}
	add(m.ConstraintFiltered)
	add(m.ClassFiltered)
	add(m.DimensionExhausted)
	pool := ""
	if m.NodePool != "" {
		pool = " in node pool " + m.NodePool
	}
	text := fmt.Sprintf("no node%s can run it (%d evaluated, %d filtered, %d exhausted)",
		pool, m.NodesEvaluated, m.NodesFiltered, m.NodesExhausted)
	if m.NodesEvaluated == 0 {
		text = fmt.Sprintf("no eligible node%s", pool)
	}
	if len(reasons) > 0 {
		text += ": " + strings.Join(reasons, ", ")
	}
	return text
}

func taskStarted(a *api.Allocation, task string) bool {
	ts := a.TaskStates[task]
	return ts != nil && !ts.StartedAt.IsZero()
}

// taskSummary is the task's last events, for an allocation that ended
// without a result: ", task build: Terminated (Exit Code: 2)".
func taskSummary(a *api.Allocation, task string) string {
	ts := a.TaskStates[task]
	if ts == nil {
		return ""
	}
	events := ts.Events
	if len(events) > 3 {
		events = events[len(events)-3:]
	}
	var parts []string
	for _, e := range events {
		msg := e.Type
		if e.DisplayMessage != "" {
			msg += " (" + e.DisplayMessage + ")"
		}
		parts = append(parts, msg)
	}
	if len(parts) == 0 {
		return ""
	}
	return ", task " + task + ": " + strings.Join(parts, ", ")
}

func resultProblem(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func nextIndex(prev uint64, meta *api.QueryMeta) uint64 {
	if meta == nil || meta.LastIndex < prev {
		return 0 // the index went backwards (a new leader's snapshot): start over
	}
	return meta.LastIndex
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// sleep waits d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
