package ops

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/pierhq/pier/control/dispatch/nomaddispatch"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/consulkv"
	"github.com/pierhq/pier/jobs"
	"github.com/pierhq/pier/jobs/specs"
	"github.com/pierhq/pier/tests/testenv"
)

// nomadClient is a client of the test binary's Nomad agent (nomad agent
// -dev with raw_exec, tests/testenv).
func nomadClient(t *testing.T) (testenv.NomadAgent, *nomad.Client) {
	t.Helper()
	agent := testenv.Nomad(t)
	c, err := nomad.NewClient(&nomad.Config{Address: agent.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return agent, c
}

// suffix makes job IDs unique to a run: the agent may be shared.
func suffix() string { return uuid()[:8] }

// TestSpecsThroughNomad: every spec, in each driver variant, is parsed,
// validated and planned by a real Nomad agent. The agent's node has
// raw_exec (and exec where the kernel allows it) but no Docker engine, so
// docker variants are validated and planned, not placed.
func TestSpecsThroughNomad(t *testing.T) {
	_, nc := nomadClient(t)
	sfx := suffix()
	cfg := "control {\n  base_domain = \"pier.test\"\n}\n"
	render := map[string]func() ([]byte, error){
		"build docker": func() ([]byte, error) {
			return specs.Render(specs.BuildVars{Image: "ghcr.io/pierhq/pier:1.0.0"})
		},
		"build exec": func() ([]byte, error) {
			return specs.Render(specs.BuildVars{Driver: specs.DriverExec, User: "nobody"})
		},
		"control docker": func() ([]byte, error) {
			return specs.RenderControl(specs.ControlVars{JobID: "pier-control-d-" + sfx, Image: "ghcr.io/pierhq/pier:1.0.0",
				Config: cfg, Secrets: true, Provider: specs.ProviderNomad}) // VaultRole: TestNomadPolicies (this agent has no Vault)
		},
		"control raw_exec": func() ([]byte, error) {
			return specs.RenderControl(specs.ControlVars{JobID: "pier-control-r-" + sfx, Driver: specs.DriverRawExec,
				PierPath: "/usr/local/bin/pier", Count: 1, Port: -1, Config: cfg, Provider: specs.ProviderNomad})
		},
		"edge docker": func() ([]byte, error) {
			return specs.RenderEdge(specs.EdgeVars{JobID: "pier-edge-d-" + sfx, Image: "ghcr.io/pierhq/pier:1.0.0",
				Config: cfg, Secrets: true, Provider: specs.ProviderNomad})
		},
		"edge exec": func() ([]byte, error) {
			return specs.RenderEdge(specs.EdgeVars{JobID: "pier-edge-e-" + sfx, Driver: specs.DriverExec, Port: -1,
				Provider: specs.ProviderNomad})
		},
		"cron docker": func() ([]byte, error) {
			return specs.RenderCron(specs.CronVars{JobID: "pier-cron-d-" + sfx, Schedule: "*/5 * * * *",
				URL: "https://shop.pier.example.com/api/cron", Image: "docker.io/curlimages/curl:8.11.1", Secrets: true})
		},
		"cron raw_exec": func() ([]byte, error) {
			return specs.RenderCron(specs.CronVars{JobID: "pier-cron-r-" + sfx, Schedule: "0 3 * * *", TimeZone: "Australia/Sydney",
				URL: "http://127.0.0.1:9/api/cron", Host: "shop.pier.test", Driver: specs.DriverRawExec})
		},
	}
	for name, r := range render {
		t.Run(name, func(t *testing.T) {
			spec, err := r()
			if err != nil {
				t.Fatal(err)
			}
			job, err := nc.Jobs().ParseHCLOpts(&nomad.JobsParseRequest{JobHCL: string(spec)})
			if err != nil {
				t.Fatalf("/v1/jobs/parse: %v\n%s", err, spec)
			}
			resp, _, err := nc.Jobs().Validate(job, nil)
			if err != nil {
				t.Fatalf("/v1/validate/job: %v", err)
			}
			if len(resp.ValidationErrors) > 0 || resp.Error != "" {
				t.Fatalf("/v1/validate/job: %v %s\n%s", resp.ValidationErrors, resp.Error, spec)
			}
			if resp.Warnings != "" {
				t.Errorf("/v1/validate/job warnings: %s", resp.Warnings)
			}
			plan, _, err := nc.Jobs().Plan(job, true, nil)
			if err != nil {
				t.Fatalf("/v1/job/%s/plan: %v", *job.ID, err)
			}
			if plan.Warnings != "" {
				t.Errorf("plan warnings: %s", plan.Warnings)
			}
			if strings.Contains(name, "raw_exec") && len(plan.FailedTGAllocs) > 0 {
				for tg, m := range plan.FailedTGAllocs {
					t.Errorf("plan: group %s cannot be placed: %+v", tg, m)
				}
			}
		})
	}
}

// putVariable writes the Nomad Variable nomad/jobs/<jobID>, as an
// operator does for a job's secrets.
func putVariable(t *testing.T, nc *nomad.Client, jobID string, items map[string]string) {
	t.Helper()
	v := &nomad.Variable{Path: specs.SecretsVariable(jobID), Items: items}
	if _, _, err := nc.Variables().Create(v, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Variables().Delete(v.Path, nil) })
}

// runJob registers spec and removes the job (waiting for its allocations
// to stop) when the test ends.
func runJob(t *testing.T, nc *nomad.Client, spec []byte) *nomad.Job {
	t.Helper()
	job, err := nc.Jobs().ParseHCLOpts(&nomad.JobsParseRequest{JobHCL: string(spec)})
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, spec)
	}
	if _, _, err := nc.Jobs().Register(job, nil); err != nil {
		t.Fatalf("register %s: %v", *job.ID, err)
	}
	t.Cleanup(func() { stopJob(t, nc, *job.ID) })
	return job
}

// stopJob purges a job and waits until none of its allocations (nor those
// of jobs launched from it) still runs.
func stopJob(t *testing.T, nc *nomad.Client, id string) {
	running := func() []*nomad.AllocationListStub {
		var out []*nomad.AllocationListStub
		stubs, _, _ := nc.Allocations().List(&nomad.QueryOptions{Prefix: ""})
		for _, a := range stubs {
			if (a.JobID == id || strings.HasPrefix(a.JobID, id+"/")) && a.ClientStatus != "complete" && a.ClientStatus != "failed" && a.ClientStatus != "lost" {
				out = append(out, a)
			}
		}
		return out
	}
	children, _, _ := nc.Jobs().PrefixList(id + "/")
	for _, c := range children {
		nc.Jobs().Deregister(c.ID, true, nil)
	}
	nc.Jobs().Deregister(id, true, nil)
	deadline := time.Now().Add(45 * time.Second)
	for len(running()) > 0 {
		if time.Now().After(deadline) {
			t.Errorf("job %s: allocations still running 45s after it was stopped", id)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// allocLogs returns a task's stdout and stderr, for failure messages.
func allocLogs(nc *nomad.Client, jobID, task string) string {
	var b strings.Builder
	stubs, _, _ := nc.Jobs().Allocations(jobID, true, nil)
	for _, s := range stubs {
		alloc, _, err := nc.Allocations().Info(s.ID, nil)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "alloc %s (%s):\n", s.ID[:8], s.ClientStatus)
		if ts := s.TaskStates[task]; ts != nil {
			for _, e := range ts.Events {
				fmt.Fprintf(&b, "  event %s: %s\n", e.Type, e.DisplayMessage)
			}
		}
		for _, typ := range []string{"stdout", "stderr"} {
			cancel := make(chan struct{})
			frames, errs := nc.AllocFS().Logs(alloc, false, task, typ, "start", 0, cancel, nil)
			fmt.Fprintf(&b, "  %s:\n", typ)
		read:
			for {
				select {
				case f, ok := <-frames:
					if !ok {
						break read
					}
					b.Write(f.Data)
				case <-errs:
					break read
				case <-time.After(5 * time.Second):
					break read
				}
			}
			close(cancel)
		}
	}
	return b.String()
}

// TestCronJobRuns: a scheduled function's periodic job, launched by Nomad
// (forced instead of waiting for its tick), calls the function once with
// the schedule's headers and the secret from its Nomad Variable.
func TestCronJobRuns(t *testing.T) {
	_, nc := nomadClient(t)
	type call struct{ method, path, host, auth, cron string }
	calls := make(chan call, 10)
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls <- call{r.Method, r.URL.Path, r.Host, r.Header.Get("Authorization"), r.Header.Get("X-Pier-Cron")}
		io.WriteString(w, "cleaned 3 carts\n")
	}))
	t.Cleanup(fn.Close)

	id := "pier-cron-shop-cleanup-" + suffix()
	putVariable(t, nc, id, map[string]string{specs.CronSecretKey: "cron-s3cret"})
	spec, err := specs.RenderCron(specs.CronVars{JobID: id, Schedule: "0 0 1 1 *", URL: fn.URL + "/api/cron/cleanup",
		Host: "shop.pier.test", Driver: specs.DriverRawExec, Secrets: true, Project: "shop", Name: "cleanup"})
	if err != nil {
		t.Fatal(err)
	}
	runJob(t, nc, spec)
	if _, _, err := nc.Jobs().PeriodicForce(id, nil); err != nil {
		t.Fatalf("periodic force: %v", err)
	}
	select {
	case c := <-calls:
		want := call{"POST", "/api/cron/cleanup", "shop.pier.test", "Bearer cron-s3cret", id}
		if c != want {
			t.Errorf("call = %+v, want %+v", c, want)
		}
	case <-time.After(60 * time.Second):
		children, _, _ := nc.Jobs().PrefixList(id + "/")
		var logs string
		for _, c := range children {
			logs += allocLogs(nc, c.ID, "call")
		}
		t.Fatalf("the function was not called within 60s\n%s", logs)
	}
	// The run ends successfully, and it is the only one.
	waitFor(t, 30*time.Second, "the launched run to complete", func() bool {
		children, _, err := nc.Jobs().PrefixList(id + "/periodic-")
		if err != nil || len(children) != 1 {
			return false
		}
		s := children[0].JobSummary
		return s != nil && s.Summary["call"].Complete == 1
	})
	select {
	case c := <-calls:
		t.Errorf("a second call: %+v", c)
	default:
	}
}

// TestEdgeAndBuildOnNomad runs Pier the way docs/operations.md sets it up,
// on real agents: the edge job (`pier serve --roles edge`, raw_exec here)
// on Nomad with its secrets from a Nomad Variable, talking to its local
// Consul client agent with a token that has only consul/policies/pier-edge.hcl,
// the agent talking to the Consul server over TLS; the build job dispatched
// on Nomad, uploading to S3 (MinIO); then a cutover with a token that has
// only pier-control.hcl, after which the edge serves the build.
func TestEdgeAndBuildOnNomad(t *testing.T) {
	t.Parallel()
	c := startConsulACL(t)
	agent, nc := nomadClient(t)
	s3 := testenv.MinIO(t)
	bucket := s3.NewBucket(t)
	pier := testenv.PierBinary(t)
	edgeToken := c.policyToken(t, "pier-edge")
	controlToken := c.policyToken(t, "pier-control")

	// The edge job.
	port := ports(t, 1)[0]
	id := "pier-edge-" + suffix()
	putVariable(t, nc, id, map[string]string{"PIER_CONSUL_TOKEN": edgeToken, "PIER_S3_SECRET_KEY": s3.SecretKey})
	cfg := fmt.Sprintf(`log_level = "debug"
control {
  base_domain = "pier.test"
}
s3 {
  endpoint   = %q
  bucket     = %q
  region     = %q
  access_key = %q
}
consul {
  address = %q
}
`, s3.URL, bucket, s3.Region, s3.AccessKey, c.ClientHTTP)
	spec, err := specs.RenderEdge(specs.EdgeVars{JobID: id, Driver: specs.DriverRawExec, PierPath: pier, Port: port,
		CPU: 200, MemoryMB: 256, CacheMB: 200, Provider: specs.ProviderNomad, Config: cfg, Secrets: true})
	if err != nil {
		t.Fatal(err)
	}
	runJob(t, nc, spec)
	edgeURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	hc := c.pki.client()
	waitFor(t, 90*time.Second, "the edge to register as a healthy pier-edge in Consul", func() bool {
		var entries []struct{ Service struct{ ID string } }
		code, _ := api(t, hc, "GET", c.HTTPS+"/v1/health/service/pier-edge?passing", "X-Consul-Token", c.Management, nil, &entries)
		if code == 200 && len(entries) == 1 {
			return true
		}
		if stubs, _, _ := nc.Jobs().Allocations(id, true, nil); len(stubs) > 0 && stubs[0].ClientStatus == "failed" {
			t.Fatalf("the edge failed:\n%s", allocLogs(nc, id, "edge"))
		}
		return false
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("edge:\n%s", allocLogs(nc, id, "edge"))
		}
	})

	// A build on Nomad, as control dispatches it.
	git := testenv.GitServer(t, "git-token")
	repo, sha := git.CreateRepo(t, "site", map[string]string{"index.html": "<!doctype html><h1>Pier on Nomad</h1>\n"})
	buildSpec, err := specs.Render(specs.BuildVars{Driver: specs.DriverRawExec, PierPath: pier,
		Args: []string{"--s3-endpoint", s3.URL, "--s3-bucket", bucket, "--s3-region", s3.Region, "--s3-access-key", s3.AccessKey,
			"--work-dir", t.TempDir(), "--sandbox", "none"},
		Env: map[string]string{"PIER_S3_SECRET_KEY": s3.SecretKey}, CPU: 200, MemoryMB: 256, DiskMB: 100})
	if err != nil {
		t.Fatal(err)
	}
	buildID := "pier-build-" + suffix()
	d, err := nomaddispatch.New(nomaddispatch.Config{Address: agent.Addr, JobSpec: buildSpec, JobID: buildID,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	t.Cleanup(func() { stopJob(t, nc, buildID) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log lockedBuffer
	res, err := d.Dispatch(ctx, jobs.BuildRequest{DeploymentID: "dep_ops1", ProjectID: "prj_ops", ProjectName: "site",
		RepoURL: repo, Ref: sha, GitToken: "git-token", Timeout: time.Minute}, &log)
	if err != nil {
		t.Fatalf("dispatch: %v\n%s", err, log.String())
	}
	if !res.OK() || res.Files != 1 {
		t.Fatalf("build = %+v\n%s", res, log.String())
	}

	// The cutover, with control's token.
	kv, err := consulkv.New(consulkv.Config{Address: c.ServerHTTP, Token: controlToken})
	if err != nil {
		t.Fatal(err)
	}
	co := coord.New(coord.Config{ReadyTimeout: time.Minute}, kv)
	cut, err := co.Promote(ctx, coord.PromoteRequest{ProjectID: "prj_ops", ProjectName: "site", Environment: "production", DeploymentID: "dep_ops1"})
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if len(cut.Edges) != 1 {
		t.Errorf("cutover edges = %+v, want the one edge", cut.Edges)
	}
	waitFor(t, 30*time.Second, "the edge to serve the deployment", func() bool {
		req, _ := http.NewRequest("GET", edgeURL+"/", nil)
		req.Host = "site.pier.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(body), "Pier on Nomad")
	})

	// The edge's own token cannot move the pointer it serves.
	edgeKV, err := consulkv.New(consulkv.Config{Address: c.ServerHTTP, Token: edgeToken})
	if err != nil {
		t.Fatal(err)
	}
	err = edgeKV.Put(ctx, "pier/projects/prj_ops/production", []byte(`{"deployment_id":"dep_evil"}`))
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("edge token writing the pointer: err = %v, want a 403", err)
	}
	if p, err := co.Pointer(ctx, "prj_ops", "production"); err != nil || p.DeploymentID != "dep_ops1" {
		t.Errorf("pointer = %+v, %v; want dep_ops1", p, err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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
