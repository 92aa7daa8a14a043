package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/pierhq/pier/tests/testenv"
)

const nomadCronPierJSON = `{
  "server": "_worker.js",
  "schedules": [
    {"name": "cleanup", "cron": "rate(1 minute)", "function": "cleanup"},
    {"name": "fast", "cron": "rate(20 seconds)"}
  ]
}`

const nomadCronWorkerJS = `export default {
  async fetch(request, env) { return new Response("cron on nomad"); },
  async scheduled(event) { console.log("fast at", event.scheduledTime); },
};
export async function cleanup(event, env) {
  console.log("cleanup for", event.scheduledTime);
  return { period: event.scheduledTime };
}
`

// TestProductionSchedulesOnNomad: with schedules.timer = "nomad", control
// (on the production stack, Nomad with raw_exec) registers a periodic job
// for a deployed schedule with its cron and writes its token to the job's
// Nomad Variable; a forced launch calls control's run endpoint through
// curl with its launch id, and exactly one run is recorded for that
// period, with its logs and the trigger "nomad"; replaying the launch id
// gets 409; the builtin timer fires only the schedule Nomad cannot time
// (rate(20 seconds)); a redeploy without the schedules purges the job and
// its Variable.
func TestProductionSchedulesOnNomad(t *testing.T) {
	st := startProd(t, prodOptions{edges: 1, extra: `
schedules {
  timer       = "nomad"
  control_url = "{{api}}"
  driver      = "raw_exec"
  curl_path   = "/usr/bin/curl"
  token_key   = "pier_e2e_schedules_token_key_0123456789"
}
`})
	nc, err := nomad.NewClient(&nomad.Config{Address: testenv.Nomad(t).Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	git := testenv.GitServer(t, gitToken)
	url, sha1 := git.CreateRepo(t, "nomadcron", map[string]string{
		"index.html": "<h1>cron</h1>", "_worker.js": nomadCronWorkerJS, "pier.json": nomadCronPierJSON,
	})
	if code := st.call(t, "POST", "/v1/projects", map[string]any{"name": "nomadcron", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	if d := st.deploy(t, "nomadcron", sha1); d.State != "ready" {
		t.Fatalf("deploy: %s (%s)\n%s", d.State, d.Error, st.log(t, d.ID))
	}

	// The listing says who times what.
	type listed struct {
		Name, Cron, Timer, Note string
		NomadJob                string `json:"nomad_job"`
		NomadCron               string `json:"nomad_cron"`
	}
	var list struct{ Schedules []listed }
	testenv.WaitFor(t, 60*time.Second, "schedules listed", func() bool {
		return st.call(t, "GET", "/v1/projects/nomadcron/schedules", nil, &list) == 200 && len(list.Schedules) == 2
	})
	cleanup, fast := list.Schedules[0], list.Schedules[1]
	if cleanup.Timer != "nomad" || cleanup.NomadCron != "* * * * *" || !strings.HasPrefix(cleanup.NomadJob, "pier-cron-nomadcron-cleanup-") {
		t.Errorf("cleanup listed as %+v", cleanup)
	}
	if fast.Timer != "builtin" || !strings.Contains(fast.Note, "not whole minutes") {
		t.Errorf("fast listed as %+v", fast)
	}
	id := cleanup.NomadJob

	// The periodic job, with the right cron, and its token in the Variable.
	var job *nomad.Job
	testenv.WaitFor(t, 30*time.Second, "periodic job "+id+" registered", func() bool {
		job, _, err = nc.Jobs().Info(id, nil)
		return err == nil
	})
	if job.Periodic == nil || len(job.Periodic.Specs) != 1 || job.Periodic.Specs[0] != "* * * * *" || !*job.Periodic.ProhibitOverlap ||
		job.Meta["pier_project"] != "nomadcron" || job.Meta["pier_schedule"] != "cleanup" {
		t.Errorf("periodic job = %+v meta %v", job.Periodic, job.Meta)
	}
	v, _, err := nc.Variables().Read("nomad/jobs/"+id, nil)
	if err != nil || !strings.HasPrefix(v.Items["PIER_CRON_SECRET"], "pcron_") {
		t.Fatalf("the job's variable: %+v, %v", v, err)
	}
	cronToken := v.Items["PIER_CRON_SECRET"]

	// Force a launch: one run for its period, from Nomad, with its logs.
	forced := time.Now()
	if _, _, err := nc.Jobs().PeriodicForce(id, nil); err != nil {
		t.Fatalf("periodic force: %v", err)
	}
	var run scheduleRun
	testenv.WaitFor(t, 90*time.Second, "the forced launch's run", func() bool {
		for _, r := range prodRuns(t, st, "cleanup") {
			if r.Trigger == "nomad" && !r.ScheduledAt.Before(forced.Truncate(time.Second)) && r.State == "succeeded" {
				run = r
				return true
			}
		}
		return false
	})
	recorded := time.Since(forced)
	launch := id + "/periodic-" + strconv.FormatInt(run.ScheduledAt.Unix(), 10)
	t.Logf("PeriodicForce → run recorded (finished) within %v: Nomad placement, raw_exec curl, control, edge isolate; run %v after its period, took %v",
		recorded.Round(time.Millisecond), run.StartedAt.Sub(run.ScheduledAt).Round(time.Millisecond), run.FinishedAt.Sub(run.StartedAt).Round(time.Millisecond))
	if len(run.Logs) != 1 || !strings.HasPrefix(run.Logs[0], "log cleanup for ") || run.Edge != "edge-a" {
		t.Errorf("forced run = %+v", run)
	}
	if _, _, err := nc.Jobs().Info(launch, nil); err != nil {
		t.Errorf("the run's period names no launch of Nomad's (%s): %v", launch, err)
	}
	same := 0
	for _, r := range prodRuns(t, st, "cleanup") {
		if r.ScheduledAt.Equal(run.ScheduledAt) {
			same++
		}
	}
	if same != 1 {
		t.Errorf("%d runs for the forced period, want 1", same)
	}

	// Replays of the launch: 409 with the cron token or an admin token.
	body := map[string]string{"launch": launch}
	if code := testenv.CallAPI(t, st.api, cronToken, "POST", "/v1/projects/nomadcron/schedules/cleanup/run", body, nil); code != http.StatusConflict {
		t.Errorf("the launch again with the cron token: %d, want 409", code)
	}
	if code := st.call(t, "POST", "/v1/projects/nomadcron/schedules/cleanup/run", body, nil); code != http.StatusConflict {
		t.Errorf("the launch again with an admin token: %d, want 409", code)
	}
	// The cron token opens nothing else.
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"POST", "/v1/projects/nomadcron/schedules/fast/run", map[string]string{"launch": launch}, http.StatusUnauthorized},
		{"POST", "/v1/projects/nomadcron/schedules/cleanup/run", map[string]string{}, http.StatusBadRequest},
		{"GET", "/v1/projects", nil, http.StatusUnauthorized},
		{"GET", "/v1/projects/nomadcron/schedules/runs", nil, http.StatusUnauthorized},
	} {
		if code := testenv.CallAPI(t, st.api, cronToken, c.method, c.path, c.body, nil); code != c.want {
			t.Errorf("cron token: %s %s = %d, want %d", c.method, c.path, code, c.want)
		}
	}
	// A launch id of another job is refused.
	other := map[string]string{"launch": "pier-cron-elsewhere/periodic-1700000000"}
	if code := st.call(t, "POST", "/v1/projects/nomadcron/schedules/cleanup/run", other, nil); code != http.StatusBadRequest {
		t.Errorf("another job's launch: %d, want 400", code)
	}

	// The builtin timer fires fast (20 s periods), never cleanup.
	testenv.WaitFor(t, 60*time.Second, "a builtin run of fast", func() bool {
		return len(finished(prodRuns(t, st, "fast"), "succeeded")) >= 1
	})
	for _, r := range prodRuns(t, st, "cleanup") {
		if r.Trigger != "nomad" {
			t.Errorf("a cleanup run not from Nomad: %+v", r)
		}
		t.Logf("cleanup run: period %s trigger %s state %s", r.ScheduledAt.Format(time.TimeOnly), r.Trigger, r.State)
	}
	if r := prodRuns(t, st, "fast"); len(r) == 0 || r[0].Trigger != "schedule" {
		t.Errorf("fast runs = %+v, want the builtin timer's", r)
	}

	// A redeploy without schedules: the job and its variable are gone.
	sha2 := git.Commit(t, "nomadcron", map[string]string{"pier.json": `{"server": "_worker.js"}`})
	if d := st.deploy(t, "nomadcron", sha2); d.State != "ready" {
		t.Fatalf("redeploy: %s (%s)\n%s", d.State, d.Error, st.log(t, d.ID))
	}
	purged := time.Now()
	testenv.WaitFor(t, 60*time.Second, "periodic job "+id+" purged", func() bool {
		_, _, err := nc.Jobs().Info(id, nil)
		return err != nil && strings.Contains(err.Error(), "404")
	})
	t.Logf("redeploy live → periodic job purged within %v", time.Since(purged).Round(time.Millisecond))
	if v, _, err := nc.Variables().Peek("nomad/jobs/"+id, nil); err != nil || v != nil {
		t.Errorf("the job's variable after the purge: %+v, %v", v, err)
	}
}

func prodRuns(t *testing.T, st *prodStack, schedule string) []scheduleRun {
	t.Helper()
	var out struct{ Runs []scheduleRun }
	if code := st.call(t, "GET", "/v1/projects/nomadcron/schedules/runs?limit=1000&schedule="+schedule, nil, &out); code != 200 {
		t.Fatalf("list runs: %d", code)
	}
	return out.Runs
}
