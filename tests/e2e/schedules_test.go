package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

const schedulesPierJSON = `{
  "server": "_worker.js",
  "schedules": [
    {"cron": "* * * * * *", "function": "tick"},
    {"name": "every2s", "cron": "rate(2 seconds)"},
    {"name": "broken", "cron": "rate(3 seconds)", "function": "broken"}
  ]
}`

const schedulesWorkerJS = `export default {
  async fetch(request, env) {
    return Response.json({ ticks: await env.DATA.get("ticks") });
  },
  async scheduled(event, env) {
    console.log("every2s at", event.scheduledTime);
    return { schedule: event.schedule };
  },
};
export async function tick(event, env, ctx) {
  const n = (await env.DATA.get("ticks")) || 0;
  await env.DATA.set("ticks", n + 1);
  console.log("tick", n + 1, event.cron);
  return n + 1;
}
export function broken() { throw new Error("the database is on fire"); }
`

type scheduleRun struct {
	ID          string    `json:"id"`
	Schedule    string    `json:"schedule"`
	ScheduledAt time.Time `json:"scheduled_at"`
	StartedAt   time.Time `json:"started_at"`
	FinishedAt  time.Time `json:"finished_at"`
	State       string    `json:"state"`
	Error       string    `json:"error"`
	Result      string    `json:"result"`
	Logs        []string  `json:"logs"`
	Trigger     string    `json:"trigger"`
	Edge        string    `json:"edge"`
}

func runsOf(t *testing.T, dev *testenv.Dev, project, schedule string) []scheduleRun {
	t.Helper()
	var out struct{ Runs []scheduleRun }
	if code := dev.API(t, "GET", "/v1/projects/"+project+"/schedules/runs?limit=1000&schedule="+schedule, nil, &out); code != 200 {
		t.Fatalf("list runs: %d", code)
	}
	return out.Runs
}

func finished(runs []scheduleRun, state string) []scheduleRun {
	var out []scheduleRun
	for _, r := range runs {
		if r.State == state {
			out = append(out, r)
		}
	}
	return out
}

// TestDevSchedules declares three schedules in pier.json and deploys them
// through pier dev: they fire on an edge isolate once per period (named
// exports and the default export's scheduled), reach env.DATA, their
// results, errors and console output are listed through the API, a run
// can be asked for through the API, and after a restart of pier dev
// (same data dir) they go on with no period fired twice.
func TestDevSchedules(t *testing.T) {
	git := testenv.GitServer(t, gitToken)
	url, sha := git.CreateRepo(t, "cron", map[string]string{
		"index.html": "<h1>cron</h1>", "_worker.js": schedulesWorkerJS, "pier.json": schedulesPierJSON,
	})
	dir := t.TempDir()
	dev := testenv.StartDev(t, dir)
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": "cron", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	if d := deploy(t, dev, "cron", sha, 2*time.Minute); d.State != "ready" {
		t.Fatalf("deploy: %s (%s)\n%s", d.State, d.Error, buildLog(t, dev, d.ID))
	}

	var list struct {
		Schedules []struct {
			Name, Cron, Function string
			Next                 time.Time
		}
	}
	testenv.WaitFor(t, 30*time.Second, "schedules listed", func() bool {
		return dev.API(t, "GET", "/v1/projects/cron/schedules", nil, &list) == 200 && len(list.Schedules) == 3
	})
	if s := list.Schedules[1]; s.Name != "every2s" || s.Function != "scheduled" || s.Next.IsZero() {
		t.Errorf("schedule 2 = %+v", s)
	}

	testenv.WaitFor(t, 60*time.Second, "3 tick runs, 2 every2s runs and a broken run", func() bool {
		return len(finished(runsOf(t, dev, "cron", "tick"), "succeeded")) >= 3 &&
			len(finished(runsOf(t, dev, "cron", "every2s"), "succeeded")) >= 2 &&
			len(finished(runsOf(t, dev, "cron", "broken"), "failed")) >= 1
	})
	for _, r := range finished(runsOf(t, dev, "cron", "tick"), "succeeded") {
		t.Logf("tick %s: started %v after its period, ran %v (edge round trip, isolate, two env.DATA calls)",
			r.ScheduledAt.Format("15:04:05"), r.StartedAt.Sub(r.ScheduledAt).Round(time.Millisecond), r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
	}
	tick := finished(runsOf(t, dev, "cron", "tick"), "succeeded")[0]
	if len(tick.Logs) != 1 || !strings.HasPrefix(tick.Logs[0], "log tick ") || tick.Edge == "" || tick.Trigger != "schedule" {
		t.Errorf("a tick run = %+v", tick)
	}
	every := finished(runsOf(t, dev, "cron", "every2s"), "succeeded")[0]
	if every.Result != `{"schedule":"every2s"}` || every.ScheduledAt.Unix()%2 != 0 {
		t.Errorf("an every2s run = %+v (periods are multiples of 2 s since the epoch)", every)
	}
	broken := finished(runsOf(t, dev, "cron", "broken"), "failed")[0]
	if !strings.Contains(broken.Error, "the database is on fire") {
		t.Errorf("a broken run = %+v", broken)
	}
	// The ticks reached env.DATA (the site reads the counter).
	if body := readBody(t, dev.Get(t, 0, "cron."+dev.BaseDomain, "/api")); !strings.Contains(body, `"ticks":`) || strings.Contains(body, `"ticks":null`) {
		t.Errorf("site after ticks: %s", body)
	}

	// A run through the API (a Nomad periodic job's call): one per period.
	period := map[string]string{"period": "2030-01-01T00:00:00Z"}
	var run scheduleRun
	if code := dev.API(t, "POST", "/v1/projects/cron/schedules/every2s/run", period, &run); code != http.StatusAccepted || run.Trigger != "api" {
		t.Fatalf("run through the API: %d %+v", code, run)
	}
	if code := dev.API(t, "POST", "/v1/projects/cron/schedules/every2s/run", period, nil); code != http.StatusConflict {
		t.Errorf("the same period again: %d, want 409", code)
	}
	if code := dev.API(t, "POST", "/v1/projects/cron/schedules/nope/run", nil, nil); code != http.StatusNotFound {
		t.Errorf("an unknown schedule: %d, want 404", code)
	}

	// Restart: the schedules go on, no period fires twice.
	before := len(runsOf(t, dev, "cron", "tick"))
	dev.Stop(t)
	dev = testenv.StartDev(t, dir)
	testenv.WaitFor(t, 60*time.Second, "ticks after the restart", func() bool {
		return len(runsOf(t, dev, "cron", "tick")) >= before+3
	})
	for _, name := range []string{"tick", "every2s", "broken"} {
		seen := map[time.Time]bool{}
		for _, r := range runsOf(t, dev, "cron", name) {
			if seen[r.ScheduledAt] {
				t.Errorf("%s: period %s fired twice", name, r.ScheduledAt)
			}
			seen[r.ScheduledAt] = true
		}
	}
	t.Logf("tick runs: %d before the restart, %d after", before, len(runsOf(t, dev, "cron", "tick")))
}
