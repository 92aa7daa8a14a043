package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// workerJS is a Workers-style server entry (_worker.js at the output root):
// static files first, everything else comes here.
const workerJS = `export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/api/loop") { while (true) {} }
    if (url.pathname.startsWith("/api/")) {
      console.log("api hit", url.pathname);
      return Response.json({
        path: url.pathname,
        method: request.method,
        greeting: env.GREETING ?? null,
        buildOnly: env.BUILD_ONLY ?? null,
        hasProcess: typeof process !== "undefined",
      });
    }
    return new Response("no such page", { status: 404 });
  },
};
`

// TestDevSSR deploys a site with a server entry through pier dev: static
// files are served as files, other paths run in a V8 isolate that sees the
// project's runtime-scoped variables and not its build-scoped ones, a
// runaway request is cut off (504) and the isolate serves the next one.
func TestDevSSR(t *testing.T) {
	git := testenv.GitServer(t, gitToken)
	url, sha := git.CreateRepo(t, "ssr", map[string]string{
		"index.html": "<h1>static home</h1>",
		"_worker.js": workerJS,
	})
	dev := testenv.StartDev(t, t.TempDir(), "--isolate-timeout", "2s")
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": "ssr", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	for name, body := range map[string]map[string]any{
		"GREETING":   {"value": "hello from the runtime", "scope": "runtime"},
		"BUILD_ONLY": {"value": "build secret", "scope": "build"},
	} {
		if code := dev.API(t, "PUT", "/v1/projects/ssr/env/"+name, body, nil); code != 200 {
			t.Fatalf("set %s: %d", name, code)
		}
	}
	d := deploy(t, dev, "ssr", sha, 2*time.Minute)
	if d.State != "ready" {
		t.Fatalf("deploy: %s (%s)\n%s", d.State, d.Error, buildLog(t, dev, d.ID))
	}
	host := "ssr." + dev.BaseDomain
	testenv.WaitFor(t, 10*time.Second, "ssr live", func() bool {
		return dev.Get(t, 0, host, "/").StatusCode == 200
	})

	if body := readBody(t, dev.Get(t, 0, host, "/")); !strings.Contains(body, "static home") {
		t.Errorf("/ = %q, want the static file", body)
	}
	resp := dev.Get(t, 0, host, "/api/hello")
	raw := readBody(t, resp)
	var got struct {
		Path, Method, Greeting string
		BuildOnly              *string
		HasProcess             bool
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/api/hello = %d %q: %v", resp.StatusCode, raw, err)
	}
	if got.Path != "/api/hello" || got.Greeting != "hello from the runtime" || got.BuildOnly != nil || got.HasProcess {
		t.Errorf("isolate saw %+v: want the runtime variable only, and no process", got)
	}
	if resp.Header.Get("X-Pier-Deployment") != d.ID {
		t.Errorf("X-Pier-Deployment = %q", resp.Header.Get("X-Pier-Deployment"))
	}
	if resp := dev.Get(t, 0, host, "/_worker.js"); readBody(t, resp) == workerJS {
		t.Error("the server entry's source is served as a file")
	}

	resp = dev.Get(t, 0, host, "/api/loop")
	readBody(t, resp)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("runaway request = %d, want 504", resp.StatusCode)
	}
	if resp := dev.Get(t, 0, host, "/api/after"); resp.StatusCode != 200 {
		t.Errorf("after a timeout = %d, want 200 (the edge and its isolates survive)", resp.StatusCode)
	} else {
		readBody(t, resp)
	}
	// The build log never shows the build-scoped value.
	if log := buildLog(t, dev, d.ID); strings.Contains(log, "build secret") {
		t.Errorf("build log leaks a variable:\n%s", log)
	}
}
