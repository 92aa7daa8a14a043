package nomaddispatch_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/dispatch/nomaddispatch"
	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/jobs"
	"github.com/pierhq/pier/jobs/specs"
	"github.com/pierhq/pier/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var _ deploy.Dispatcher = (*nomaddispatch.Dispatcher)(nil)

// env is what one test needs: the agent, the real worker binary, a git
// server with a static site, and the worker's object store.
type env struct {
	agent   testenv.NomadAgent
	nomad   *api.Client
	pier    string
	repoURL string
	sha     string
	blobDir string
	workDir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	agent := testenv.Nomad(t)
	client, err := api.NewClient(&api.Config{Address: agent.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	git := testenv.GitServer(t, "s3cret-token")
	url, sha := git.CreateRepo(t, "site", map[string]string{
		"index.html": "<!doctype html><h1>Pier on Nomad</h1>\n",
		"about.html": "<!doctype html><p>about</p>\n",
		"style.css":  "h1 { color: teal }\n",
	})
	return &env{
		agent: agent, nomad: client, pier: testenv.PierBinary(t),
		repoURL: url, sha: sha,
		blobDir: filepath.Join(t.TempDir(), "blobs"), workDir: t.TempDir(),
	}
}

// vars renders the build job for the raw_exec driver, running the real
// worker against a local object store.
func (e *env) vars(extraArgs ...string) specs.BuildVars {
	return specs.BuildVars{
		Driver:   specs.DriverRawExec,
		PierPath: e.pier,
		Args:     append([]string{"--blob-dir", e.blobDir, "--work-dir", e.workDir, "--sandbox", "none"}, extraArgs...),
		CPU:      100,
		MemoryMB: 256,
		DiskMB:   100,
	}
}

// uniqueID makes a job ID unique to this run: tests share the agent, which
// may outlive one run (PIER_NOMAD_ADDR, -count).
func uniqueID(name string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return name + "-" + hex.EncodeToString(b)
}

// dispatcher renders v, and returns a dispatcher for it as job jobID,
// registered when register is set.
func (e *env) dispatcher(t *testing.T, jobID string, v specs.BuildVars, register bool, tweak ...func(*nomaddispatch.Config)) *nomaddispatch.Dispatcher {
	t.Helper()
	spec, err := specs.Render(v)
	if err != nil {
		t.Fatal(err)
	}
	cfg := nomaddispatch.Config{
		Address: e.agent.Addr,
		JobSpec: spec,
		JobID:   jobID,
		Grace:   time.Minute,
		Logger:  slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range tweak {
		f(&cfg)
	}
	d, err := nomaddispatch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if register {
		if err := d.Register(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (e *env) request(id string) jobs.BuildRequest {
	return jobs.BuildRequest{
		DeploymentID: id,
		ProjectID:    "prj_1",
		ProjectName:  "site",
		RepoURL:      e.repoURL,
		Ref:          e.sha,
		GitToken:     "s3cret-token",
		Timeout:      2 * time.Minute,
	}
}

// children lists the jobs dispatched from jobID.
func (e *env) children(t *testing.T, jobID string) []*api.JobListStub {
	t.Helper()
	stubs, _, err := e.nomad.Jobs().PrefixList(jobID + "/dispatch-")
	if err != nil {
		t.Fatal(err)
	}
	return stubs
}

func TestSpecThroughAgent(t *testing.T) {
	e := newEnv(t)
	tricky := []string{`--label=say "hi"`, `--path=C:\dir`, "--tpl=%{ if x }", "--literal=$${x}", "--work-dir=${NOMAD_TASK_DIR}/work"}
	tests := []struct {
		name string
		vars specs.BuildVars
	}{
		{"docker", specs.BuildVars{Image: "ghcr.io/pierhq/pier:0.3.0", Args: tricky, NodePool: "default"}},
		{"exec", specs.BuildVars{Driver: specs.DriverExec, Args: tricky}},
		{"raw_exec", e.vars(tricky...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := specs.Render(tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			job, err := e.nomad.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(spec)})
			if err != nil {
				t.Fatalf("/v1/jobs/parse: %v\n%s", err, spec)
			}
			resp, _, err := e.nomad.Jobs().Validate(job, nil)
			if err != nil {
				t.Fatalf("/v1/validate/job: %v", err)
			}
			if len(resp.ValidationErrors) > 0 || resp.Error != "" {
				t.Fatalf("/v1/validate/job: %v %s", resp.ValidationErrors, resp.Error)
			}

			if got := *job.ID; got != "pier-build" {
				t.Errorf("job ID = %q, want pier-build", got)
			}
			if job.ParameterizedJob == nil || job.ParameterizedJob.Payload != "required" ||
				!slices.Equal(job.ParameterizedJob.MetaRequired, []string{"deployment_id"}) {
				t.Errorf("parameterized = %+v, want payload required, meta deployment_id", job.ParameterizedJob)
			}
			tg := job.TaskGroups[0]
			if *tg.RestartPolicy.Attempts != 0 || *tg.ReschedulePolicy.Attempts != 0 || *tg.ReschedulePolicy.Unlimited {
				t.Errorf("restart/reschedule = %d/%d (unlimited %v), want 0/0", *tg.RestartPolicy.Attempts,
					*tg.ReschedulePolicy.Attempts, *tg.ReschedulePolicy.Unlimited)
			}
			task := tg.Tasks[0]
			if task.Driver != tt.vars.Driver && !(tt.vars.Driver == "" && task.Driver == "docker") {
				t.Errorf("driver = %q", task.Driver)
			}
			if task.DispatchPayload == nil || task.DispatchPayload.File != "request.json" {
				t.Errorf("dispatch_payload = %+v, want request.json", task.DispatchPayload)
			}
			var args []string
			for _, a := range task.Config["args"].([]any) {
				args = append(args, a.(string))
			}
			// Every value comes through the parser exactly as given;
			// ${NOMAD_TASK_DIR} stays for the client to interpolate.
			want := append([]string{"build", "--request", "${NOMAD_TASK_DIR}/request.json", "--result", "-"}, tt.vars.Args...)
			if !slices.Equal(args, want) {
				t.Errorf("args =\n%q, want\n%q", args, want)
			}
		})
	}
}

func TestRegisterIdempotent(t *testing.T) {
	e := newEnv(t)
	jobID := uniqueID("pier-build-register")
	d := e.dispatcher(t, jobID, e.vars(), true)
	first, _, err := e.nomad.Jobs().Info(jobID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	second, _, err := e.nomad.Jobs().Info(jobID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *second.Version != *first.Version {
		t.Errorf("version after registering the same spec again = %d, want %d", *second.Version, *first.Version)
	}
	if second.ParameterizedJob == nil || *second.Type != "batch" || *second.Status == "" {
		t.Errorf("registered job = type %s, parameterized %v", *second.Type, second.ParameterizedJob)
	}
	if got := len(e.children(t, jobID)); got != 0 {
		t.Errorf("%d dispatched jobs after Register, want 0", got)
	}
}

func TestDispatch(t *testing.T) {
	e := newEnv(t)
	d := e.dispatcher(t, uniqueID("pier-build-dispatch"), e.vars(), true)

	tests := []struct {
		name    string
		id      string
		tweak   func(*jobs.BuildRequest)
		wantErr string   // in the result's Error; "" = success
		wantLog []string // in the streamed log
	}{
		{
			name:    "static site",
			id:      "dep_static",
			wantLog: []string{"==> "},
		},
		{
			name:    "failing build",
			id:      "dep_fail",
			tweak:   func(r *jobs.BuildRequest) { r.BuildCommand = "echo about to fail; exit 3" },
			wantErr: "exit status 3",
			wantLog: []string{"about to fail"},
		},
		{
			name:    "bad ref",
			id:      "dep_badref",
			tweak:   func(r *jobs.BuildRequest) { r.Ref = strings.Repeat("0", 40) },
			wantErr: "clone",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := e.request(tt.id)
			if tt.tweak != nil {
				tt.tweak(&req)
			}
			var log lockedBuffer
			res, err := d.Dispatch(context.Background(), req, &log)
			if err != nil {
				t.Fatalf("Dispatch: %v\nlog:\n%s", err, log.String())
			}
			if res.DeploymentID != tt.id {
				t.Errorf("result deployment = %q, want %q", res.DeploymentID, tt.id)
			}
			text := log.String()
			for _, w := range tt.wantLog {
				if !strings.Contains(text, w) {
					t.Errorf("log lacks %q:\n%s", w, text)
				}
			}
			if strings.Contains(text, "PIER_RESULT") {
				t.Errorf("the result line was not stripped from the log:\n%s", text)
			}
			if strings.Contains(text, "s3cret-token") {
				t.Errorf("the git token leaked into the log:\n%s", text)
			}
			if tt.wantErr != "" {
				if res.OK() || !strings.Contains(res.Error, tt.wantErr) {
					t.Errorf("result error = %q, want one containing %q", res.Error, tt.wantErr)
				}
				return
			}
			if !res.OK() {
				t.Fatalf("build failed: %s\nlog:\n%s", res.Error, text)
			}
			if res.CommitSHA != e.sha || res.Framework != "static" || res.Files != 3 {
				t.Errorf("result = %+v, want commit %s, static, 3 files", res, e.sha)
			}
			raw, err := os.ReadFile(filepath.Join(e.blobDir, filepath.FromSlash(res.ManifestKey)))
			if err != nil {
				t.Fatalf("manifest %s not in the object store: %v", res.ManifestKey, err)
			}
			var m edge.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("manifest: %v", err)
			}
			if m.DeploymentID != tt.id || len(m.Files) != 3 {
				t.Errorf("manifest = deployment %q, %d files; want %q, 3", m.DeploymentID, len(m.Files), tt.id)
			}
		})
	}
}

// TestDispatchConcurrent: two builds at once are two dispatched jobs with
// one allocation each, and each gets its own result.
func TestDispatchConcurrent(t *testing.T) {
	e := newEnv(t)
	jobID := uniqueID("pier-build-concurrent")
	d := e.dispatcher(t, jobID, e.vars(), true)

	ids := []string{"dep_a", "dep_b"}
	results := make([]*jobs.BuildResult, len(ids))
	errs := make([]error, len(ids))
	logs := make([]lockedBuffer, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { results[i], errs[i] = d.Dispatch(context.Background(), e.request(id), &logs[i]) })
	}
	wg.Wait()
	for i, id := range ids {
		if errs[i] != nil {
			t.Fatalf("Dispatch %s: %v\nlog:\n%s", id, errs[i], logs[i].String())
		}
		if !results[i].OK() || results[i].DeploymentID != id {
			t.Errorf("result %d = %+v, want success for %s", i, results[i], id)
		}
	}

	children := e.children(t, jobID)
	if len(children) != 2 {
		t.Fatalf("%d dispatched jobs, want 2", len(children))
	}
	allocs := map[string]string{}
	for _, c := range children {
		as, _, err := e.nomad.Jobs().Allocations(c.ID, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) != 1 {
			t.Fatalf("job %s has %d allocations, want 1", c.ID, len(as))
		}
		if as[0].ClientStatus != api.AllocClientStatusComplete {
			t.Errorf("allocation of %s is %s, want complete", c.ID, as[0].ClientStatus)
		}
		job, _, err := e.nomad.Jobs().Info(c.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		allocs[job.Meta["deployment_id"]] = as[0].ID
	}
	if len(allocs) != 2 || allocs["dep_a"] == allocs["dep_b"] {
		t.Errorf("allocations by deployment = %v, want two distinct", allocs)
	}
}

// TestWorkerDiesWithoutResult: a worker that exits without reporting (here
// on a flag it does not know) is an error, with its output in the log. The
// job is not registered beforehand: Dispatch registers it.
func TestWorkerDiesWithoutResult(t *testing.T) {
	e := newEnv(t)
	d := e.dispatcher(t, uniqueID("pier-build-dies"), e.vars("--no-such-flag"), false)
	var log lockedBuffer
	res, err := d.Dispatch(context.Background(), e.request("dep_dies"), &log)
	if err == nil {
		t.Fatalf("Dispatch succeeded with %+v", res)
	}
	t.Logf("error: %v\nlog:\n%s", err, log.String())
	if !strings.Contains(err.Error(), "without a result") {
		t.Errorf("error = %v, want one saying the job ended without a result", err)
	}
	if !strings.Contains(log.String(), "no-such-flag") {
		t.Errorf("log lacks the worker's complaint:\n%s", log.String())
	}
}

// TestTimeout: a worker still running at the request's timeout plus the
// grace is stopped, and Dispatch fails.
func TestTimeout(t *testing.T) {
	e := newEnv(t)
	hang := filepath.Join(t.TempDir(), "hang.sh")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\necho worker hanging\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	v := e.vars()
	v.PierPath = hang
	jobID := uniqueID("pier-build-timeout")
	d := e.dispatcher(t, jobID, v, true, func(c *nomaddispatch.Config) { c.Grace = time.Second })
	req := e.request("dep_hang")
	req.Timeout = time.Second
	var log lockedBuffer
	_, err := d.Dispatch(context.Background(), req, &log)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no result after") {
		t.Fatalf("Dispatch error = %v, want a deadline", err)
	}
	children := e.children(t, jobID)
	if len(children) != 1 {
		t.Fatalf("%d dispatched jobs, want 1", len(children))
	}
	job, _, err := e.nomad.Jobs().Info(children[0].ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !*job.Stop {
		t.Errorf("the timed-out job %s was not stopped", children[0].ID)
	}
}

// TestNotPlaced: a job no node can run (no Docker here) fails at the
// deadline, saying why.
func TestNotPlaced(t *testing.T) {
	e := newEnv(t)
	v := specs.BuildVars{Image: "ghcr.io/pierhq/pier:0.3.0", CPU: 100, MemoryMB: 128, DiskMB: 100}
	d := e.dispatcher(t, uniqueID("pier-build-unplaced"), v, true, func(c *nomaddispatch.Config) { c.Grace = time.Second })
	req := e.request("dep_unplaced")
	req.Timeout = time.Second
	_, err := d.Dispatch(context.Background(), req, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not placed") {
		t.Fatalf("Dispatch error = %v, want not placed", err)
	}
	if !strings.Contains(err.Error(), "driver") {
		t.Errorf("error = %v, want the missing driver named", err)
	}
}

// TestCancel: cancelling the context stops the dispatched job.
func TestCancel(t *testing.T) {
	e := newEnv(t)
	hang := filepath.Join(t.TempDir(), "hang.sh")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\necho worker started\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	v := e.vars()
	v.PierPath = hang
	jobID := uniqueID("pier-build-cancel")
	d := e.dispatcher(t, jobID, v, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &notifyBuffer{match: "worker started", seen: make(chan struct{})}
	go func() {
		select {
		case <-log.seen: // the log streams while the task runs
		case <-time.After(time.Minute):
		}
		cancel()
	}()
	_, err := d.Dispatch(ctx, e.request("dep_cancel"), log)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dispatch error = %v, want canceled", err)
	}
	if !strings.Contains(log.String(), "worker started") {
		t.Errorf("the log did not stream while the task ran:\n%s", log.String())
	}
	children := e.children(t, jobID)
	if len(children) != 1 {
		t.Fatalf("%d dispatched jobs, want 1", len(children))
	}
	job, _, err := e.nomad.Jobs().Info(children[0].ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !*job.Stop {
		t.Errorf("the canceled job %s was not stopped", children[0].ID)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// notifyBuffer closes seen when match is written.
type notifyBuffer struct {
	lockedBuffer
	match string
	seen  chan struct{}
	once  sync.Once
}

func (n *notifyBuffer) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(n.match)) {
		n.once.Do(func() { close(n.seen) })
	}
	return n.lockedBuffer.Write(p)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
