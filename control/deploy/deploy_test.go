package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/secrets/localkeyring"
	"github.com/pierhq/pier/control/store/sqlitestore"
	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/raftkv"
	"github.com/pierhq/pier/jobs"
)

// scripted is a Dispatcher whose builds do what the test says; the real
// dispatchers are tested in their own packages and end to end.
type scripted struct {
	mu    sync.Mutex
	calls []jobs.BuildRequest
	fn    func(req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error)
}

func (s *scripted) Dispatch(ctx context.Context, req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error) {
	s.mu.Lock()
	s.calls = append(s.calls, req)
	s.mu.Unlock()
	return s.fn(req, log)
}

func (s *scripted) requests() []jobs.BuildRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]jobs.BuildRequest(nil), s.calls...)
}

func ok(req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error) {
	fmt.Fprintln(log, "building", req.Ref)
	return &jobs.BuildResult{DeploymentID: req.DeploymentID, CommitSHA: strings.Repeat("a", 40), Framework: "static",
		ManifestKey: "manifests/" + req.DeploymentID + ".json", Files: 1}, nil
}

// router adapts coord to deploy.Router as main does (a copy of the
// composition root's few lines, since tests cannot import package main).
type router struct {
	c  *coord.Coordinator
	kv coord.KV
}

// Retire is main's: delete the environment's pointer key.
func (r router) Retire(ctx context.Context, pid, env string) error {
	return r.kv.Delete(ctx, "pier/projects/"+pid+"/"+env)
}

func (r router) Announce(ctx context.Context, pid, pname, did string) error {
	return r.c.Announce(ctx, coord.Announcement{DeploymentID: did, ProjectID: pid, ProjectName: pname})
}
func (r router) Retract(ctx context.Context, did string) error { return r.c.Retract(ctx, did) }
func (r router) Promote(ctx context.Context, pid, pname, env, did string) (*deploy.Cutover, error) {
	c, err := r.c.Promote(ctx, coord.PromoteRequest{ProjectID: pid, ProjectName: pname, Environment: env, DeploymentID: did})
	if err != nil {
		return nil, err
	}
	return &deploy.Cutover{DeploymentID: c.DeploymentID, Previous: c.Previous, Total: c.Total}, nil
}
func (r router) Active(ctx context.Context, pid, env string) (string, error) {
	p, err := r.c.Pointer(ctx, pid, env)
	if errors.Is(err, coord.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return p.DeploymentID, nil
}
func (r router) Forget(ctx context.Context, pid string) error { return r.c.DeleteProject(ctx, pid) }

type env struct {
	keys  *localkeyring.Keyring
	svc   *deploy.Service
	store control.Store
	disp  *scripted
	coord *coord.Coordinator
	blobs *dirblob.Store
}

func newEnv(t *testing.T, fn func(jobs.BuildRequest, io.Writer) (*jobs.BuildResult, error)) *env {
	return newEnvWith(t, fn, nil)
}

// newEnvWith builds the service on real adapters; deps fills in the
// optional ports (Status).
func newEnvWith(t *testing.T, fn func(jobs.BuildRequest, io.Writer) (*jobs.BuildResult, error), deps func(*deploy.Deps)) *env {
	t.Helper()
	return newEnvCfg(t, fn, deps, nil)
}

// newEnvCfg is newEnvWith with a callback on the service's Config too.
func newEnvCfg(t *testing.T, fn func(jobs.BuildRequest, io.Writer) (*jobs.BuildResult, error), deps func(*deploy.Deps), tune func(*deploy.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "control.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var keys *localkeyring.Keyring
	kv, err := raftkv.Open(raftkv.Config{Dir: filepath.Join(dir, "raft")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	keys, err = localkeyring.Open(filepath.Join(dir, "keyring"))
	if err != nil {
		t.Fatal(err)
	}
	c := coord.New(coord.Config{ReadyTimeout: 5 * time.Second}, kv)
	blobs, err := dirblob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	d := &scripted{fn: fn}
	cfg := deploy.DefaultConfig()
	cfg.PollInterval = 20 * time.Millisecond
	cfg.BaseDomain, cfg.EdgeScheme = "pier.test", "https"
	dd := deploy.Deps{Store: store, Dispatcher: d, Router: router{c, kv}, Sealer: keys, Blobs: blobs}
	if deps != nil {
		deps(&dd)
	}
	if tune != nil {
		tune(&cfg)
	}
	svc := deploy.New(cfg, dd)
	return &env{keys: keys, svc: svc, store: store, disp: d, coord: c, blobs: blobs}
}

func (e *env) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (e *env) wait(t *testing.T, id string) *control.Deployment {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := e.svc.Deployment(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.State.Final() {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s still %s", id, d.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls cond (a liveness bound, not a timing assertion).
func (e *env) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitActive waits until id is the live production deployment: a build is
// recorded ready before its promotion runs.
func (e *env) waitActive(t *testing.T, projectID, id string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		active, err := e.svc.Active(context.Background(), projectID)
		if err != nil {
			t.Fatal(err)
		}
		if active == id {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("active = %q, want %s", active, id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func project(t *testing.T, e *env, name string) *control.Project {
	t.Helper()
	p, err := e.svc.CreateProject(context.Background(), deploy.ProjectInput{Name: name, RepoURL: "https://git.example.test/" + name + ".git", GitToken: "tok-" + name})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCreateProjectValidation(t *testing.T) {
	e := newEnv(t, ok)
	ctx := context.Background()
	tests := []struct {
		name  string
		in    deploy.ProjectInput
		field string
	}{
		{"empty name", deploy.ProjectInput{RepoURL: "https://x.test/a.git"}, "name"},
		{"uppercase", deploy.ProjectInput{Name: "Site", RepoURL: "https://x.test/a.git"}, "name"},
		{"leading dash", deploy.ProjectInput{Name: "-a", RepoURL: "https://x.test/a.git"}, "name"},
		{"too long", deploy.ProjectInput{Name: strings.Repeat("a", 64), RepoURL: "https://x.test/a.git"}, "name"},
		{"double dash (flat host names)", deploy.ProjectInput{Name: "a--b", RepoURL: "https://x.test/a.git"}, "name"},
		{"file repo", deploy.ProjectInput{Name: "a", RepoURL: "file:///etc"}, "repo_url"},
		{"local path", deploy.ProjectInput{Name: "a", RepoURL: "/srv/repo"}, "repo_url"},
		{"ext transport", deploy.ProjectInput{Name: "a", RepoURL: "ext::sh -c id"}, "repo_url"},
		{"credentials", deploy.ProjectInput{Name: "a", RepoURL: "https://u:p@x.test/a.git"}, "repo_url"},
		{"branch dots", deploy.ProjectInput{Name: "a", RepoURL: "https://x.test/a.git", Branch: "a..b"}, "branch"},
		{"branch option", deploy.ProjectInput{Name: "a", RepoURL: "https://x.test/a.git", Branch: "-upload-pack=x"}, "branch"},
		{"framework", deploy.ProjectInput{Name: "a", RepoURL: "https://x.test/a.git", Framework: "rails"}, "framework"},
		{"output escapes", deploy.ProjectInput{Name: "a", RepoURL: "https://x.test/a.git", OutputDir: "../x"}, "output_dir"},
		{"output absolute", deploy.ProjectInput{Name: "a", RepoURL: "https://x.test/a.git", OutputDir: "/etc"}, "output_dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.CreateProject(ctx, tt.in)
			var ve *control.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Errorf("err = %v, want a validation error on %s", err, tt.field)
			}
		})
	}
	p := project(t, e, "site")
	if p.Branch != "main" || p.Framework != "auto" {
		t.Errorf("defaults: branch %q framework %q", p.Branch, p.Framework)
	}
	if string(p.GitToken) == "tok-site" || !strings.HasPrefix(string(p.GitToken), "pier:v") {
		t.Errorf("git token stored as %q, want sealed", p.GitToken)
	}
	if _, err := e.svc.CreateProject(ctx, deploy.ProjectInput{Name: "site", RepoURL: "https://x.test/a.git"}); !errors.Is(err, control.ErrConflict) {
		t.Errorf("duplicate: %v, want ErrConflict", err)
	}
}

func TestBuildPromoteRollback(t *testing.T) {
	e := newEnv(t, ok)
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "site")

	d1, err := e.svc.CreateDeployment(ctx, p.Name, deploy.DeployInput{})
	if err != nil {
		t.Fatal(err)
	}
	if d1.Ref != "main" || d1.State != control.StateQueued || d1.Environment != control.Production {
		t.Errorf("new deployment: %+v", d1)
	}
	if got := e.wait(t, d1.ID); got.State != control.StateReady || got.CommitSHA == "" || got.StartedAt.IsZero() || got.FinishedAt.IsZero() {
		t.Fatalf("deployment 1: %+v", got)
	}
	e.waitActive(t, p.ID, d1.ID) // production builds go live
	req := e.disp.requests()[0]
	if req.GitToken != "tok-site" || req.ProjectName != "site" || req.Timeout != 15*time.Minute {
		t.Errorf("build request: %+v", req)
	}
	log, err := e.svc.Log(ctx, d1.ID, 0)
	if err != nil || !strings.Contains(string(log), "building main") || !strings.Contains(string(log), "build ready") {
		t.Errorf("log = %q, %v", log, err)
	}

	d2, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{Ref: strings.Repeat("b", 40)})
	e.wait(t, d2.ID)
	e.waitActive(t, p.ID, d2.ID)

	// A preview is built but does not go live.
	d3, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{Ref: "feature/x", Environment: "preview"})
	if got := e.wait(t, d3.ID); got.State != control.StateReady {
		t.Fatalf("preview: %+v", got)
	}
	if active, _ := e.svc.Active(ctx, p.ID); active != d2.ID {
		t.Errorf("a preview went live: active %q", active)
	}

	cut, err := e.svc.Rollback(ctx, p.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	if cut.DeploymentID != d1.ID || cut.Previous != d2.ID {
		t.Errorf("rollback %s -> %s, want %s -> %s", cut.Previous, cut.DeploymentID, d2.ID, d1.ID)
	}
	if n := len(e.disp.requests()); n != 3 {
		t.Errorf("%d builds, want 3: a rollback never rebuilds", n)
	}
	if _, err := e.svc.Rollback(ctx, p.Name, ""); !errors.Is(err, control.ErrConflict) {
		t.Errorf("rollback past the oldest: %v, want ErrConflict", err)
	}
	if _, err := e.svc.Promote(ctx, d2.ID); err != nil {
		t.Errorf("promote forward again: %v", err)
	}
}

func TestFailedBuildKeepsLiveDeployment(t *testing.T) {
	fail := false
	e := newEnv(t, func(req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error) {
		if fail {
			fmt.Fprintln(log, "npm ERR! missing script: build")
			return &jobs.BuildResult{DeploymentID: req.DeploymentID, Error: "build failed: exit status 1"}, nil
		}
		return ok(req, log)
	})
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "site")
	d1, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	e.wait(t, d1.ID)
	e.waitActive(t, p.ID, d1.ID)
	fail = true
	d2, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	got := e.wait(t, d2.ID)
	if got.State != control.StateFailed || got.Error != "build failed: exit status 1" {
		t.Fatalf("deployment 2: %+v", got)
	}
	if active, _ := e.svc.Active(ctx, p.ID); active != d1.ID {
		t.Errorf("active = %q after a failed build, want %s", active, d1.ID)
	}
	if _, err := e.svc.Promote(ctx, d2.ID); !errors.Is(err, control.ErrConflict) {
		t.Errorf("promoting a failed deployment: %v, want ErrConflict", err)
	}
	log, _ := e.svc.Log(ctx, d2.ID, 0)
	if !strings.Contains(string(log), "missing script") || !strings.Contains(string(log), "build failed") {
		t.Errorf("log = %q", log)
	}
}

func TestInfrastructureFailureRetriedOnce(t *testing.T) {
	e := newEnv(t, func(req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error) {
		return nil, errors.New("allocation lost")
	})
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "site")
	d, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	got := e.wait(t, d.ID)
	if got.State != control.StateFailed || !strings.Contains(got.Error, "after 2 attempts") {
		t.Fatalf("deployment: %+v", got)
	}
	if n := len(e.disp.requests()); n != 2 {
		t.Errorf("dispatched %d times, want 2 (one retry)", n)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, ok) // the workers are not running: the deployment stays queued
	ctx := context.Background()
	p := project(t, e, "site")

	// Canceled while queued: never built.
	q, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	if got, err := e.svc.Cancel(ctx, q.ID); err != nil || got.State != control.StateCanceled {
		t.Fatalf("cancel queued: %+v %v", got, err)
	}
	if _, err := e.svc.Cancel(ctx, q.ID); !errors.Is(err, control.ErrConflict) {
		t.Errorf("second cancel: %v, want ErrConflict", err)
	}
	e.run(t)
	time.Sleep(200 * time.Millisecond) // the workers skip the canceled job
	if n := len(e.disp.requests()); n != 0 {
		t.Errorf("a canceled deployment was built %d times", n)
	}
}

func TestDeleteProject(t *testing.T) {
	e := newEnv(t, ok)
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "site")
	d, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	e.wait(t, d.ID)
	e.waitActive(t, p.ID, d.ID)
	if err := e.svc.DeleteProject(ctx, p.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Project(ctx, p.ID); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("deleted project: %v", err)
	}
	if _, err := e.coord.Pointer(ctx, p.ID, control.Production); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("pointer of a deleted project: %v, want gone", err)
	}
}

func TestRewrapAfterRotation(t *testing.T) {
	e := newEnv(t, ok)
	ctx := context.Background()
	p := project(t, e, "site")
	project(t, e, "other")
	if _, err := e.svc.SetEnv(ctx, p.ID, deploy.EnvInput{Name: "API_KEY", Value: "k1"}); err != nil {
		t.Fatal(err)
	}
	before, _ := e.store.ListEnvVars(ctx, p.ID)
	if !strings.HasPrefix(string(p.GitToken), "pier:v1:") {
		t.Fatalf("sealed as %q", p.GitToken)
	}
	hooked, err := e.svc.CreateProject(ctx, deploy.ProjectInput{Name: "gh", RepoURL: "https://github.com/acme/gh.git"})
	if err != nil || len(hooked.WebhookSecret) == 0 || len(p.WebhookSecret) != 0 {
		t.Fatalf("webhook secrets: on GitHub %q (%v), elsewhere %q", hooked.WebhookSecret, err, p.WebhookSecret)
	}
	if err := e.keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// Two git tokens, one webhook secret, one variable.
	n, err := e.svc.RewrapSecrets(ctx)
	if err != nil || n != 4 {
		t.Fatalf("RewrapSecrets = %d, %v; want 4", n, err)
	}
	after, _ := e.store.ListEnvVars(ctx, p.ID)
	if !strings.HasPrefix(after[0].Sealed, "pier:v2:") || !after[0].UpdatedAt.Equal(before[0].UpdatedAt) {
		t.Errorf("variable after rewrap: %q updated %v; want pier:v2: and updated_at kept (%v)", after[0].Sealed, after[0].UpdatedAt, before[0].UpdatedAt)
	}
	if got, _ := e.svc.Project(ctx, hooked.ID); !strings.HasPrefix(string(got.WebhookSecret), "pier:v2:") {
		t.Errorf("webhook secret after rewrap: %q, want pier:v2:", got.WebhookSecret)
	}
	got, _ := e.svc.Project(ctx, p.ID)
	if !strings.HasPrefix(string(got.GitToken), "pier:v2:") {
		t.Fatalf("after rewrap: %q, want pier:v2:", got.GitToken)
	}
	pt, err := e.keys.Unseal(ctx, string(got.GitToken))
	if err != nil || string(pt) != "tok-site" {
		t.Errorf("rewrapped token opens to %q, %v", pt, err)
	}
	if n, _ := e.svc.RewrapSecrets(ctx); n != 0 {
		t.Errorf("a second sweep rewrote %d values, want 0", n)
	}
}
