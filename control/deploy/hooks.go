package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/pierhq/pier/control"
)

// HookRunner runs a project's lifecycle hook: code is a script defining
// `async function handler(ctx)`, called once with input (a HookContext as
// JSON). Console output is written to log, one line per message. It
// returns when the handler's promise settles or ctx ends. main implements
// it over edge/isolate.
type HookRunner interface {
	RunHook(ctx context.Context, code string, input json.RawMessage, log io.Writer) error
}

// HookChecker is implemented by HookRunners that can check a hook's code
// (syntax, top level) before it is stored; SetHook then refuses code that
// does not compile.
type HookChecker interface {
	CheckHook(ctx context.Context, code string) error
}

// MaxHookCode bounds a hook's code.
const MaxHookCode = 256 << 10

// maxHookLog bounds what one hook run may write into a build log.
const maxHookLog = 64 << 10

// HookContext is the input of a hook: what happened, to which deployment.
type HookContext struct {
	Event      control.HookEvent `json:"event"`
	Project    HookProject       `json:"project"`
	Deployment HookDeployment    `json:"deployment"`
	// PreviousDeploymentID is the deployment that was live before
	// (post-deploy, post-rollback), when there was one.
	PreviousDeploymentID string    `json:"previous_deployment_id,omitempty"`
	Time                 time.Time `json:"time"`
}

// HookProject identifies the project in a HookContext.
type HookProject struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// HookDeployment is the deployment in a HookContext, as it was when the
// event happened.
type HookDeployment struct {
	ID          string        `json:"id"`
	Ref         string        `json:"ref"`
	CommitSHA   string        `json:"commit_sha,omitempty"`
	Environment string        `json:"environment"`
	State       control.State `json:"state"`
	URL         string        `json:"url"`
	Error       string        `json:"error,omitempty"`
}

// SetHook stores (creates or replaces) the project's hook for event.
func (s *Service) SetHook(ctx context.Context, projectID string, event control.HookEvent, code string) (*control.Hook, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	if err := validEvent(event); err != nil {
		return nil, err
	}
	switch {
	case strings.TrimSpace(code) == "":
		return nil, control.Invalid("code", "is required: a script defining async function handler(ctx)")
	case len(code) > MaxHookCode:
		return nil, control.Invalid("code", "is larger than %d KiB", MaxHookCode>>10)
	case strings.ContainsRune(code, 0):
		return nil, control.Invalid("code", "contains NUL")
	}
	if c, ok := s.deps.Hooks.(HookChecker); ok {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.HookTimeout)
		err := c.CheckHook(cctx, code)
		cancel()
		if err != nil {
			return nil, control.Invalid("code", "does not compile: %s", userMessage(err))
		}
	}
	h := &control.Hook{ProjectID: p.ID, Event: event, Code: code}
	if err := s.deps.Store.PutHook(ctx, h); err != nil {
		return nil, fmt.Errorf("set hook %s: %w", event, err)
	}
	s.log.Info("hook set", "project", p.ID, "event", event, "bytes", len(code))
	return h, nil
}

// Hooks lists a project's hooks.
func (s *Service) Hooks(ctx context.Context, projectID string) ([]*control.Hook, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	return s.deps.Store.ListHooks(ctx, p.ID)
}

// DeleteHook removes the project's hook for event.
func (s *Service) DeleteHook(ctx context.Context, projectID string, event control.HookEvent) error {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return err
	}
	if err := validEvent(event); err != nil {
		return err
	}
	return s.deps.Store.DeleteHook(ctx, p.ID, event)
}

func validEvent(e control.HookEvent) error {
	if e.Valid() {
		return nil
	}
	names := make([]string, 0, 4)
	for _, e := range control.HookEvents() {
		names = append(names, string(e))
	}
	return control.Invalid("event", "must be one of %s", strings.Join(names, ", "))
}

// userMessage is the first line of err, bounded: the author's own script
// error, shown back to them.
func userMessage(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

// fireHook runs the project's hook for event, if any, in the background:
// it never waits for the hook, and the hook's outcome never touches the
// deployment. The outcome goes to d's build log ("==> hook <event>: ...")
// and to the service log. At most cfg.MaxHooks hooks run at once; a hook
// that finds no free slot within its timeout is skipped.
func (s *Service) fireHook(p *control.Project, d *control.Deployment, event control.HookEvent, previous, reason string) {
	if s.deps.Hooks == nil {
		return
	}
	hc := HookContext{
		Event:   event,
		Project: HookProject{ID: p.ID, Name: p.Name},
		Deployment: HookDeployment{ID: d.ID, Ref: d.Ref, CommitSHA: d.CommitSHA, Environment: d.Environment,
			State: d.State, URL: s.URL(d.ID, p.Name), Error: d.Error},
		PreviousDeploymentID: previous,
		Time:                 time.Now().UTC(),
	}
	if reason != "" {
		hc.Deployment.Error = reason
	}
	input, err := json.Marshal(hc)
	if err != nil { // plain strings and times: cannot happen
		s.log.Error("encode hook context", "err", err)
		return
	}
	s.hookMu.Lock()
	if s.hooksStopped {
		s.hookMu.Unlock()
		return
	}
	s.hookWG.Add(1)
	s.hookMu.Unlock()
	go func() {
		defer s.hookWG.Done()
		s.runHook(p.ID, d.ID, event, input)
	}()
}

func (s *Service) runHook(projectID, deploymentID string, event control.HookEvent, input json.RawMessage) {
	ctx, cancel := context.WithTimeout(s.hookCtx, s.cfg.HookTimeout)
	defer cancel()
	log := s.log.With("project", projectID, "deployment", deploymentID, "event", event)
	h, err := s.deps.Store.GetHook(ctx, projectID, event)
	if errors.Is(err, control.ErrNotFound) {
		return
	}
	if err != nil {
		log.Warn("hook not run: load it", "err", err)
		return
	}
	// The build log outlives the hook's deadline: its last line is written
	// after the timeout.
	lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer lcancel()
	out := &hookLog{w: &storeLog{ctx: lctx, store: s.deps.Store, id: deploymentID}, prefix: "==> hook " + string(event) + ": "}
	select {
	case s.hookSlots <- struct{}{}:
		defer func() { <-s.hookSlots }()
	case <-ctx.Done():
		log.Warn("hook skipped: too many hooks running", "max", s.cfg.MaxHooks)
		out.result(fmt.Sprintf("skipped: too many hooks running (at most %d at once)", s.cfg.MaxHooks))
		return
	}
	start := time.Now()
	err = s.deps.Hooks.RunHook(ctx, h.Code, input, out)
	out.flush()
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case err == nil:
		log.Info("hook ran", "took", took)
		out.result(fmt.Sprintf("ok (%s)", took))
	case ctx.Err() != nil && s.hookCtx.Err() == nil:
		log.Warn("hook timed out", "timeout", s.cfg.HookTimeout)
		out.result(fmt.Sprintf("timed out after %s (the deployment is not affected)", s.cfg.HookTimeout))
	case s.hookCtx.Err() != nil:
		log.Info("hook stopped: shutting down")
		out.result("stopped: control is shutting down")
	default:
		log.Warn("hook failed", "err", err)
		out.result(fmt.Sprintf("failed (the deployment is not affected): %s", userMessage(err)))
	}
}

// stopHooks cancels the hooks in flight and waits for them, at most
// HookTimeout (a runner that ignores its context is left behind); no hook
// starts afterwards.
func (s *Service) stopHooks() {
	s.hookMu.Lock()
	s.hooksStopped = true
	s.hookMu.Unlock()
	s.cancelHooks()
	done := make(chan struct{})
	go func() { s.hookWG.Wait(); close(done) }()
	t := time.NewTimer(s.cfg.HookTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("hooks still running at shutdown: not waiting for them")
	}
}

// hookLog writes a hook's console output into a build log, each line
// prefixed and appended whole, at most maxHookLog bytes.
type hookLog struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	buf     []byte
	written int
	cut     bool
}

func (l *hookLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > maxHookLog { // one endless line
		l.flushLocked()
	}
	return len(p), nil
}

func (l *hookLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *hookLog) flushLocked() {
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
}

// line appends one prefixed line of output (l.mu held); past the budget it writes one
// notice and drops the rest.
func (l *hookLog) line(s string) {
	if l.written+len(s) > maxHookLog {
		if !l.cut {
			l.cut = true
			l.write("(output truncated)")
		}
		return
	}
	l.written += len(s)
	l.write(strings.TrimRight(s, "\r"))
}

// result appends one prefixed line, outside the budget: the outcome.
func (l *hookLog) result(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.write(s)
}

func (l *hookLog) write(s string) {
	l.w.Write([]byte(l.prefix + s + "\n")) //nolint:errcheck // a lost log line is not worth more than a lost hook
}
