package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// TestDevHooks sets deployment lifecycle hooks through pier dev and deploys:
// the post-deploy hook runs in a V8 isolate with the deployment's context
// and its console output lands in the build log; a pre-build hook that
// throws is reported there too, and the deployment still goes live.
func TestDevHooks(t *testing.T) {
	git := testenv.GitServer(t, gitToken)
	url, sha := git.CreateRepo(t, "hooked", map[string]string{"index.html": "<h1>hooked</h1>"})
	dev := testenv.StartDev(t, t.TempDir())
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": "hooked", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	hooks := map[string]string{
		"post-deploy": `async function handler(ctx) {
  await new Promise((resolve) => setTimeout(resolve, 5));
  console.log("hook-marker", ctx.event, ctx.deployment.id, ctx.deployment.state, ctx.project.name, typeof process);
  console.warn("careful");
}`,
		"pre-build": `async function handler(ctx) { throw new Error("pre-build hook says no to " + ctx.deployment.ref); }`,
	}
	for event, code := range hooks {
		if st := dev.API(t, "PUT", "/v1/projects/hooked/hooks/"+event, map[string]string{"code": code}, nil); st != http.StatusOK {
			t.Fatalf("set %s hook: %d", event, st)
		}
	}
	var bad apiError
	if st := dev.API(t, "PUT", "/v1/projects/hooked/hooks/deploy-failed", map[string]string{"code": "function handler( {"}, &bad); st != http.StatusBadRequest ||
		bad.Error.Code != "invalid" || !strings.Contains(bad.Error.Message, "does not compile") {
		t.Errorf("a hook with a syntax error: %d %+v, want 400 invalid", st, bad)
	}
	var list struct {
		Hooks []struct{ Event, Code string } `json:"hooks"`
	}
	if st := dev.API(t, "GET", "/v1/projects/hooked/hooks", nil, &list); st != 200 || len(list.Hooks) != 2 {
		t.Fatalf("list hooks: %d %+v", st, list)
	}

	d := deploy(t, dev, "hooked", sha, 2*time.Minute)
	if d.State != "ready" {
		t.Fatalf("deploy: %s (%s)\n%s", d.State, d.Error, buildLog(t, dev, d.ID))
	}
	want := []string{
		"==> hook post-deploy: hook-marker post-deploy " + d.ID + " ready hooked undefined\n",
		"==> hook post-deploy: [warn] careful\n",
		"==> hook post-deploy: ok (",
		"==> hook pre-build: failed (the deployment is not affected): ",
		"pre-build hook says no to " + sha,
	}
	var log string
	testenv.WaitFor(t, 30*time.Second, "the hooks' lines in the build log", func() bool {
		log = buildLog(t, dev, d.ID)
		for _, w := range want {
			if !strings.Contains(log, w) {
				return false
			}
		}
		return true
	})
	var p project
	dev.API(t, "GET", "/v1/projects/hooked", nil, &p)
	dev.API(t, "GET", "/v1/deployments/"+d.ID, nil, &d)
	if p.ActiveDeployment != d.ID || d.State != "ready" || !d.Live {
		t.Errorf("after the hooks: active %q, deployment %+v; want it ready and live\n%s", p.ActiveDeployment, d, log)
	}
	if body := readBody(t, dev.Get(t, 0, "hooked."+dev.BaseDomain, "/")); !strings.Contains(body, "hooked") {
		t.Errorf("GET / = %q", body)
	}
}
