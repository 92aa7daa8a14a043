package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// dataWorkerJS exercises env.DATA from a server entry.
const dataWorkerJS = `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const q = (k) => url.searchParams.get(k);
    try {
      switch (url.pathname) {
        case "/set": {
          const labels = q("labels") ? q("labels").split(",") : undefined;
          const ttl = q("ttl") ? Number(q("ttl")) : undefined;
          return Response.json(await env.DATA.set(q("k"), await request.json(), { labels, ttl }));
        }
        case "/get": return Response.json({ value: await env.DATA.get(q("k")) });
        case "/meta": return Response.json(await env.DATA.get(q("k"), { meta: true }));
        case "/list": return Response.json(await env.DATA.list(q("p")));
        case "/label": return Response.json(await env.DATA.list({ label: q("l"), prefix: q("p") || "" }));
        case "/delete": return Response.json({ deleted: await env.DATA.delete(q("k")) });
        case "/big": await env.DATA.set("big", "x".repeat(300 * 1024)); return Response.json({ ok: true });
        case "/badkey": await env.DATA.set("", 1); return Response.json({ ok: true });
      }
      return new Response("no such page", { status: 404 });
    } catch (e) {
      return Response.json({ error: e.message }, { status: 400 });
    }
  },
};
`

// TestDevData deploys a server entry that uses env.DATA through pier dev:
// get/set/delete, prefix and label lists, TTL, the size bound with a clear
// error, isolation between stages (production and staging of one project)
// and between projects, and the same data through the API.
func TestDevData(t *testing.T) {
	git := testenv.GitServer(t, gitToken)
	url, sha := git.CreateRepo(t, "data", map[string]string{"index.html": "<h1>data</h1>", "_worker.js": dataWorkerJS})
	dev := testenv.StartDev(t, t.TempDir())
	for _, name := range []string{"kv", "kv2"} {
		if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": name, "repo_url": url, "git_token": gitToken}, nil); code != 201 {
			t.Fatalf("create project %s: %d", name, code)
		}
		if d := deploy(t, dev, name, sha, 2*time.Minute); d.State != "ready" {
			t.Fatalf("deploy %s: %s (%s)\n%s", name, d.State, d.Error, buildLog(t, dev, d.ID))
		}
	}
	var staged deployment
	if code := dev.API(t, "POST", "/v1/projects/kv/deployments", map[string]string{"ref": sha, "environment": "staging"}, &staged); code != http.StatusCreated {
		t.Fatalf("staging deployment: %d", code)
	}
	prod, staging, other := "kv."+dev.BaseDomain, "staging.kv."+dev.BaseDomain, "kv2."+dev.BaseDomain
	for _, h := range []string{prod, staging, other} {
		testenv.WaitFor(t, 2*time.Minute, h+" live", func() bool { return dev.Get(t, 0, h, "/").StatusCode == 200 })
	}
	call := func(method, host, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, dev.EdgeURLs[0]+path, strings.NewReader(body))
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw := readBody(t, resp)
		var out map[string]any
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("%s %s%s = %d %q", method, host, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, out
	}
	keysOf := func(out map[string]any) []string {
		var ks []string
		items, _ := out["items"].([]any)
		for _, it := range items {
			ks = append(ks, it.(map[string]any)["key"].(string))
		}
		return ks
	}

	for _, k := range []string{"user:1", "user:2", "order:1"} {
		labels := ""
		if k != "user:2" {
			labels = "&labels=vip"
		}
		if code, out := call("POST", prod, "/set?k="+k+labels, `{"name":"`+k+`"}`); code != 200 || out["key"] != k {
			t.Fatalf("set %s: %d %v", k, code, out)
		}
	}
	if _, out := call("GET", prod, "/get?k=user:1", ""); out["value"].(map[string]any)["name"] != "user:1" {
		t.Errorf("get user:1 = %v", out)
	}
	if _, out := call("GET", prod, "/get?k=nope", ""); out["value"] != nil {
		t.Errorf("get of a missing key = %v, want null", out)
	}
	if _, out := call("GET", prod, "/list?p=user:*", ""); strings.Join(keysOf(out), ",") != "user:1,user:2" {
		t.Errorf("list user:* = %v", keysOf(out))
	}
	if _, out := call("GET", prod, "/label?l=vip", ""); strings.Join(keysOf(out), ",") != "order:1,user:1" {
		t.Errorf("list by label vip = %v", keysOf(out))
	}

	// Stages and projects are isolated.
	for _, h := range []string{staging, other} {
		if _, out := call("GET", h, "/get?k=user:1", ""); out["value"] != nil {
			t.Errorf("%s sees production's user:1: %v", h, out)
		}
		if _, out := call("GET", h, "/list?p=*", ""); len(keysOf(out)) != 0 {
			t.Errorf("%s lists %v, want nothing", h, keysOf(out))
		}
	}
	call("POST", staging, "/set?k=user:1", `"staged"`)
	if _, out := call("GET", prod, "/get?k=user:1", ""); out["value"].(map[string]any)["name"] != "user:1" {
		t.Errorf("production's user:1 after a staging write: %v", out)
	}

	// The API sees the same data, per stage.
	var page struct {
		Items []struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		} `json:"items"`
	}
	if code := dev.API(t, "GET", "/v1/projects/kv/data?stage=staging", nil, &page); code != 200 || len(page.Items) != 1 || string(page.Items[0].Value) != `"staged"` {
		t.Errorf("API list of staging = %d %+v", code, page)
	}
	if code := dev.API(t, "PUT", "/v1/projects/kv/data/config:theme", map[string]any{"value": "dark"}, nil); code != 200 {
		t.Errorf("API put: %d", code)
	}
	if _, out := call("GET", prod, "/get?k=config:theme", ""); out["value"] != "dark" {
		t.Errorf("function reads the API's write: %v", out)
	}
	if code := dev.API(t, "GET", "/v1/projects/kv/data?stage=bogus", nil, nil); code != 400 {
		t.Errorf("API list of stage bogus = %d, want 400", code)
	}

	// Delete.
	if _, out := call("POST", prod, "/delete?k=user:2", ""); out["deleted"] != true {
		t.Errorf("delete user:2 = %v", out)
	}
	if _, out := call("POST", prod, "/delete?k=user:2", ""); out["deleted"] != false {
		t.Errorf("second delete user:2 = %v", out)
	}

	// TTL.
	if code, out := call("POST", prod, "/set?k=session:1&ttl=1", `"s"`); code != 200 || out["expires_at"] == nil {
		t.Fatalf("set with a TTL: %d %v", code, out)
	}
	testenv.WaitFor(t, 30*time.Second, "session:1 to expire", func() bool {
		_, out := call("GET", prod, "/get?k=session:1", "")
		return out["value"] == nil
	})

	// Bad input: a clear error, nothing stored.
	code, out := call("GET", prod, "/big", "")
	if msg, _ := out["error"].(string); code != 400 || !strings.Contains(msg, "larger than the limit of 262144 bytes") {
		t.Errorf("a 300 KB value: %d %v", code, out)
	}
	if _, out := call("GET", prod, "/get?k=big", ""); out["value"] != nil {
		t.Errorf("the oversized value was stored: %v", out)
	}
	code, out = call("GET", prod, "/badkey", "")
	if msg, _ := out["error"].(string); code != 400 || !strings.Contains(msg, "key") {
		t.Errorf("an empty key: %d %v", code, out)
	}
	code, out = call("GET", prod, "/list?p=a*b*", "")
	if msg, _ := out["error"].(string); code != 400 || !strings.Contains(msg, "wildcard") {
		t.Errorf("a pattern with an inner *: %d %v", code, out)
	}
}
