package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/jobs"
)

// hookRunner is a scripted deploy.HookRunner that records every run; the
// real one (V8, in control/cmd/pier) is exercised end to end.
type hookRunner struct {
	mu    sync.Mutex
	calls []hookCall
	// fn runs a hook; nil: print "ran <code>" and succeed.
	fn func(ctx context.Context, hc deploy.HookContext, log io.Writer) error
}

type hookCall struct {
	code string
	in   deploy.HookContext
}

func (h *hookRunner) RunHook(ctx context.Context, code string, input json.RawMessage, log io.Writer) error {
	var hc deploy.HookContext
	if err := json.Unmarshal(input, &hc); err != nil {
		return fmt.Errorf("hook input is not a HookContext: %w", err)
	}
	h.mu.Lock()
	h.calls = append(h.calls, hookCall{code: code, in: hc})
	h.mu.Unlock()
	if h.fn == nil {
		fmt.Fprintf(log, "ran %s\nsecond line\n", code)
		return nil
	}
	return h.fn(ctx, hc, log)
}

// find returns the runs of event for deployment id.
func (h *hookRunner) find(event control.HookEvent, id string) []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookCall
	for _, c := range h.calls {
		if c.in.Event == event && c.in.Deployment.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// checkingRunner also checks code before it is stored.
type checkingRunner struct{ hookRunner }

func (*checkingRunner) CheckHook(_ context.Context, code string) error {
	if strings.Contains(code, "{{") {
		return errors.New("SyntaxError: Unexpected token '{'\n    at hook.js:1:1")
	}
	return nil
}

var _ deploy.HookChecker = (*checkingRunner)(nil)

func hooksEnv(t *testing.T, h deploy.HookRunner, fn func(jobs.BuildRequest, io.Writer) (*jobs.BuildResult, error), tune func(*deploy.Config)) *env {
	t.Helper()
	return newEnvCfg(t, fn, func(d *deploy.Deps) { d.Hooks = h }, tune)
}

func setHooks(t *testing.T, e *env, projectID string, events ...control.HookEvent) {
	t.Helper()
	for _, ev := range events {
		if _, err := e.svc.SetHook(context.Background(), projectID, ev, "code-"+string(ev)); err != nil {
			t.Fatalf("SetHook(%s): %v", ev, err)
		}
	}
}

// waitLog waits until d's build log contains every one of want.
func (e *env) waitLog(t *testing.T, id string, want ...string) string {
	t.Helper()
	var log []byte
	e.waitFor(t, fmt.Sprintf("%q in the build log of %s", want, id), func() bool {
		log, _ = e.svc.Log(context.Background(), id, 0)
		for _, w := range want {
			if !strings.Contains(string(log), w) {
				return false
			}
		}
		return true
	})
	return string(log)
}

func TestHooksFireWithContext(t *testing.T) {
	var fail atomic.Bool
	h := &hookRunner{}
	e := hooksEnv(t, h, func(req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error) {
		if fail.Load() {
			return &jobs.BuildResult{DeploymentID: req.DeploymentID, Error: "build failed: exit status 1"}, nil
		}
		return ok(req, log)
	}, nil)
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "site")
	setHooks(t, e, p.ID, control.HookEvents()...)

	d1, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	e.wait(t, d1.ID)
	e.waitActive(t, p.ID, d1.ID)
	d2, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{Ref: strings.Repeat("b", 40)})
	e.wait(t, d2.ID)
	e.waitActive(t, p.ID, d2.ID)
	fail.Store(true)
	d3, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	e.wait(t, d3.ID)
	if _, err := e.svc.Rollback(ctx, p.Name, ""); err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("a", 40)
	tests := []struct {
		name  string
		event control.HookEvent
		id    string
		want  deploy.HookDeployment
		prev  string
	}{
		{"pre-build", control.HookPreBuild, d1.ID, deploy.HookDeployment{ID: d1.ID, Ref: "main",
			Environment: control.Production, State: control.StateBuilding}, ""},
		{"post-deploy first", control.HookPostDeploy, d1.ID, deploy.HookDeployment{ID: d1.ID, Ref: "main", CommitSHA: sha,
			Environment: control.Production, State: control.StateReady}, ""},
		{"post-deploy second", control.HookPostDeploy, d2.ID, deploy.HookDeployment{ID: d2.ID, Ref: strings.Repeat("b", 40),
			CommitSHA: sha, Environment: control.Production, State: control.StateReady}, d1.ID},
		{"deploy-failed", control.HookDeployFailed, d3.ID, deploy.HookDeployment{ID: d3.ID, Ref: "main",
			Environment: control.Production, State: control.StateFailed, Error: "build failed: exit status 1"}, ""},
		{"post-rollback", control.HookPostRollback, d1.ID, deploy.HookDeployment{ID: d1.ID, Ref: "main", CommitSHA: sha,
			Environment: control.Production, State: control.StateReady}, d2.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []hookCall
			e.waitFor(t, string(tt.event)+" hook of "+tt.id, func() bool {
				calls = h.find(tt.event, tt.id)
				return len(calls) > 0
			})
			if len(calls) != 1 {
				t.Errorf("%d runs, want 1", len(calls))
			}
			c := calls[0]
			if c.code != "code-"+string(tt.event) {
				t.Errorf("code = %q, want the stored hook's", c.code)
			}
			tt.want.URL = "https://" + tt.id + ".site.pier.test"
			got := c.in
			if got.Deployment != tt.want || got.PreviousDeploymentID != tt.prev ||
				got.Project != (deploy.HookProject{ID: p.ID, Name: "site"}) || got.Time.IsZero() {
				t.Errorf("context = %+v\nwant deployment %+v, previous %q, project %s/site", got, tt.want, tt.prev, p.ID)
			}
		})
	}
	log := e.waitLog(t, d1.ID, "==> hook post-deploy: ok (", "==> hook post-rollback: ok (")
	// A pre-build hook runs beside the build, so its lines interleave with
	// the build's: each hook's own lines must be whole and in order.
	for _, event := range []string{"pre-build", "post-deploy"} {
		got := hookLines(log, event)
		want := []string{"ran code-" + event, "second line"}
		if len(got) < 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s hook lines = %q, want %q first:\n%s", event, got, want, log)
		}
	}
}

// hookLines returns the lines event's hook wrote into a build log, without
// their "==> hook <event>: " prefix.
func hookLines(log, event string) []string {
	prefix := "==> hook " + event + ": "
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			lines = append(lines, rest)
		}
	}
	return lines
}

// TestHooksNeverBlockOrFail: a hook that hangs does not hold the build or
// the promotion back, and hooks that fail leave the deployment as it was.
func TestHooksNeverBlockOrFail(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var returned atomic.Bool
	h := &hookRunner{fn: func(ctx context.Context, hc deploy.HookContext, log io.Writer) error {
		switch hc.Event {
		case control.HookPreBuild:
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
			}
			returned.Store(true)
			fmt.Fprintln(log, "late output")
			return errors.New("Error: pre-build failed late\n    at handler (hook.js:3:9)")
		case control.HookPostDeploy:
			return errors.New("TypeError: hook exploded")
		}
		return nil
	}}
	e := hooksEnv(t, h, ok, func(c *deploy.Config) { c.HookTimeout = time.Minute })
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "site")
	setHooks(t, e, p.ID, control.HookPreBuild, control.HookPostDeploy)

	d, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the pre-build hook never ran")
	}
	if got := e.wait(t, d.ID); got.State != control.StateReady {
		t.Fatalf("deployment = %+v, want ready", got)
	}
	e.waitActive(t, p.ID, d.ID)
	if returned.Load() {
		t.Fatal("the pre-build hook returned before the deployment went live: the test proves nothing")
	}
	log := e.waitLog(t, d.ID, "==> hook post-deploy: failed")
	if !strings.Contains(log, "==> hook post-deploy: failed (the deployment is not affected): TypeError: hook exploded\n") {
		t.Errorf("build log:\n%s", log)
	}
	close(release)
	log = e.waitLog(t, d.ID, "==> hook pre-build: failed (the deployment is not affected): Error: pre-build failed late\n",
		"==> hook pre-build: late output\n")
	if strings.Contains(log, "at handler") {
		t.Errorf("the build log carries the stack, want the first line only:\n%s", log)
	}
	if got, _ := e.svc.Deployment(ctx, d.ID); got.State != control.StateReady || got.Error != "" {
		t.Errorf("after the hooks: %+v, want ready with no error", got)
	}
	if active, _ := e.svc.Active(ctx, p.ID); active != d.ID {
		t.Errorf("active = %q, want %s", active, d.ID)
	}
}

// TestHookTimeout: a hook past its timeout is cut off and reported; its
// output is bounded.
func TestHookTimeout(t *testing.T) {
	h := &hookRunner{fn: func(ctx context.Context, hc deploy.HookContext, log io.Writer) error {
		for range 1000 {
			fmt.Fprintln(log, strings.Repeat("x", 100))
		}
		<-ctx.Done()
		return ctx.Err()
	}}
	e := hooksEnv(t, h, func(req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error) {
		return &jobs.BuildResult{DeploymentID: req.DeploymentID, Error: "build failed: exit status 2"}, nil
	}, func(c *deploy.Config) { c.HookTimeout = 200 * time.Millisecond })
	e.run(t)
	p := project(t, e, "site")
	setHooks(t, e, p.ID, control.HookDeployFailed)
	d, _ := e.svc.CreateDeployment(context.Background(), p.ID, deploy.DeployInput{})
	e.wait(t, d.ID)
	log := e.waitLog(t, d.ID, "==> hook deploy-failed: timed out after 200ms", "==> hook deploy-failed: (output truncated)\n")
	if n := strings.Count(log, "==> hook deploy-failed: xxx"); n == 0 || n >= 1000 {
		t.Errorf("%d output lines in the log, want some, bounded", n)
	}
	if got, _ := e.svc.Deployment(context.Background(), d.ID); got.State != control.StateFailed || got.Error != "build failed: exit status 2" {
		t.Errorf("after the hook: %+v", got)
	}
}

// TestHookConcurrencyBound: with every slot taken, a hook waits for one
// within its timeout, then is skipped and says so.
func TestHookConcurrencyBound(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var target atomic.Value // the deployment whose post-deploy hook blocks
	target.Store("")
	h := &hookRunner{fn: func(ctx context.Context, hc deploy.HookContext, log io.Writer) error {
		if hc.Event == control.HookPostDeploy && hc.Deployment.ID == target.Load() {
			close(entered)
			<-release // a runner that ignores its deadline keeps its slot
		}
		return nil
	}}
	e := hooksEnv(t, h, ok, func(c *deploy.Config) { c.MaxHooks, c.HookTimeout = 1, 300*time.Millisecond })
	e.run(t)
	t.Cleanup(func() { close(release) }) // before the service stops (cleanups run last first)
	ctx := context.Background()
	p := project(t, e, "site")
	d1, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	e.wait(t, d1.ID)
	d2, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	e.wait(t, d2.ID)
	e.waitActive(t, p.ID, d2.ID)
	setHooks(t, e, p.ID, control.HookPostDeploy, control.HookPostRollback)
	target.Store(d1.ID)
	if _, err := e.svc.Promote(ctx, d1.ID); err != nil {
		t.Fatal(err)
	}
	<-entered
	if _, err := e.svc.Rollback(ctx, p.ID, d2.ID); err != nil {
		t.Fatal(err)
	}
	e.waitLog(t, d2.ID, "==> hook post-rollback: skipped: too many hooks running (at most 1 at once)\n")
	if n := len(h.find(control.HookPostRollback, d2.ID)); n != 0 {
		t.Errorf("the skipped hook ran %d times", n)
	}
}

func TestSetHookValidation(t *testing.T) {
	h := &checkingRunner{}
	e := hooksEnv(t, h, ok, nil)
	ctx := context.Background()
	p := project(t, e, "site")
	tests := []struct {
		name, project string
		event         control.HookEvent
		code          string
		field         string
		want          error
	}{
		{"unknown event", p.ID, "post-build", "function handler() {}", "event", nil},
		{"empty code", p.Name, control.HookPreBuild, " \n", "code", nil},
		{"too large", p.ID, control.HookPreBuild, strings.Repeat("/", deploy.MaxHookCode+1), "code", nil},
		{"NUL", p.ID, control.HookPreBuild, "function handler() {}\x00", "code", nil},
		{"does not compile", p.ID, control.HookPreBuild, "function handler() {{", "code", nil},
		{"unknown project", "nope", control.HookPreBuild, "function handler() {}", "", control.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.SetHook(ctx, tt.project, tt.event, tt.code)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
				return
			}
			var ve *control.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Errorf("err = %v, want a validation error on %s", err, tt.field)
			}
			if ve != nil && strings.Contains(ve.Message, "at hook.js") {
				t.Errorf("message %q carries the stack", ve.Message)
			}
		})
	}
	hk, err := e.svc.SetHook(ctx, p.Name, control.HookPostDeploy, "async function handler(ctx) {}")
	if err != nil || hk.ProjectID != p.ID || hk.CreatedAt.IsZero() {
		t.Fatalf("SetHook = %+v, %v", hk, err)
	}
	if hs, err := e.svc.Hooks(ctx, p.Name); err != nil || len(hs) != 1 || hs[0].Event != control.HookPostDeploy {
		t.Errorf("Hooks = %+v, %v", hs, err)
	}
	if err := e.svc.DeleteHook(ctx, p.Name, control.HookPostDeploy); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteHook(ctx, p.Name, control.HookPostDeploy); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("delete again = %v, want ErrNotFound", err)
	}
}
