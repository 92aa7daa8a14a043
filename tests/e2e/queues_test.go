package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

const queuesPierJSON = `{
  "server": "_worker.js",
  "queues": [
    {"name": "jobs", "function": "consume", "batch_size": 5, "max_attempts": 3, "retry_delay": 1, "visibility_timeout": 8}
  ]
}`

const queuesWorkerJS = `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/send") {
        const n = Number(url.searchParams.get("n") || 1), mode = url.searchParams.get("mode") || "ok", from = Number(url.searchParams.get("from") || 0);
        const bodies = [];
        for (let i = 0; i < n; i++) bodies.push({ i: from + i, mode });
        const ids = n === 1 ? [await env.QUEUE.send("jobs", bodies[0])] : await env.QUEUE.sendBatch("jobs", bodies);
        return Response.json({ ids });
      }
      if (url.pathname === "/send-nope") { await env.QUEUE.send("nope", 1); return Response.json({}); }
      if (url.pathname === "/send-big") { await env.QUEUE.send("jobs", "x".repeat(200 * 1024)); return Response.json({}); }
      if (url.pathname === "/done") return Response.json(await env.DATA.list("done:*"));
      if (url.pathname === "/get") return Response.json({ value: await env.DATA.get(url.searchParams.get("k")) });
      return new Response("no", { status: 404 });
    } catch (e) {
      return Response.json({ error: e.message }, { status: 400 });
    }
  },
};
export async function consume(batch, env) {
  const retry = [];
  for (const m of batch.messages) {
    const b = m.body;
    if (b.mode === "slow") {
      await env.DATA.set("started:" + b.i, m.attempts);
      if (m.attempts === 1) await new Promise((r) => setTimeout(r, 60000)); // killed meanwhile
    }
    if (b.mode === "fail" || (b.mode === "flaky" && m.attempts === 1)) { retry.push(m.id); continue; }
    if (b.mode === "throw") throw new Error("consumer blew up");
    await env.DATA.set("done:" + b.i, { attempts: m.attempts, mode: b.mode });
  }
  console.log("batch of", batch.messages.length, "retry", retry.length);
  return { retry };
}
`

// TestDevQueues declares a queue with a consumer and deploys it through
// pier dev: messages sent from the server code and through the API are
// delivered in batches; a partial failure retries only the failed ones
// (with backoff) and a message that keeps failing lands in the dead
// letters after max_attempts; bad sends get clear errors. Then pier dev
// is killed (SIGKILL) while the consumer holds a batch: after a restart
// on the same data dir the batch is delivered again once its visibility
// timeout ends (at least once, nothing lost).
func TestDevQueues(t *testing.T) {
	git := testenv.GitServer(t, gitToken)
	url, sha := git.CreateRepo(t, "queues", map[string]string{
		"index.html": "<h1>q</h1>", "_worker.js": queuesWorkerJS, "pier.json": queuesPierJSON,
	})
	dir := t.TempDir()
	dev := testenv.StartDev(t, dir)
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": "q", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	if d := deploy(t, dev, "q", sha, 2*time.Minute); d.State != "ready" {
		t.Fatalf("deploy: %s (%s)\n%s", d.State, d.Error, buildLog(t, dev, d.ID))
	}
	host := "q." + dev.BaseDomain
	testenv.WaitFor(t, 30*time.Second, "site live", func() bool { return dev.Get(t, 0, host, "/").StatusCode == 200 })
	get := func(path string) (int, map[string]any) {
		t.Helper()
		resp := dev.Get(t, 0, host, path)
		raw := readBody(t, resp)
		var out map[string]any
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("%s = %d %q", path, resp.StatusCode, raw)
		}
		return resp.StatusCode, out
	}
	doneKeys := func() map[string]float64 {
		_, out := get("/done")
		got := map[string]float64{}
		items, _ := out["items"].([]any)
		for _, it := range items {
			m := it.(map[string]any)
			got[m["key"].(string)] = m["value"].(map[string]any)["attempts"].(float64)
		}
		return got
	}

	if code, out := get("/send?n=12&from=0"); code != 200 || len(out["ids"].([]any)) != 12 {
		t.Fatalf("sendBatch: %d %v", code, out)
	}
	get("/send?n=1&from=100&mode=flaky")
	get("/send?n=1&from=200&mode=fail")
	var sent struct{ IDs []string }
	if code := dev.API(t, "POST", "/v1/projects/q/queues/jobs/messages", map[string]any{"messages": []any{map[string]any{"i": 300, "mode": "ok"}, map[string]any{"i": 301, "mode": "ok"}}}, &sent); code != 202 || len(sent.IDs) != 2 {
		t.Fatalf("send through the API: %d %+v", code, sent)
	}
	testenv.WaitFor(t, 60*time.Second, "every good message processed", func() bool {
		d := doneKeys()
		for _, i := range []int{0, 5, 11, 100, 300, 301} {
			if _, ok := d["done:"+strconv.Itoa(i)]; !ok {
				return false
			}
		}
		return len(d) == 15
	})
	d := doneKeys()
	if d["done:0"] != 1 || d["done:100"] != 2 {
		t.Errorf("attempts: ok message %v (want 1), flaky message %v (want 2)", d["done:0"], d["done:100"])
	}
	var dead struct {
		Messages []struct {
			Body      json.RawMessage `json:"body"`
			Attempts  int             `json:"attempts"`
			LastError string          `json:"last_error"`
		}
	}
	testenv.WaitFor(t, 60*time.Second, "the failing message in the dead letters", func() bool {
		return dev.API(t, "GET", "/v1/projects/q/queues/jobs/messages?state=dead", nil, &dead) == 200 && len(dead.Messages) == 1
	})
	if m := dead.Messages[0]; m.Attempts != 3 || !strings.Contains(string(m.Body), `"i":200`) || m.LastError == "" {
		t.Errorf("dead letter = %+v, want i 200 after 3 attempts", m)
	}

	// Bad input: clear errors, nothing sent.
	if code, out := get("/send-nope"); code != 400 || !strings.Contains(out["error"].(string), "not declared") {
		t.Errorf("send to an undeclared queue: %d %v", code, out)
	}
	if code, out := get("/send-big"); code != 400 || !strings.Contains(out["error"].(string), "larger than the limit") {
		t.Errorf("a 200 KB message: %d %v", code, out)
	}
	if code := dev.API(t, "POST", "/v1/projects/q/queues/nope/messages", map[string]any{"messages": []any{1}}, nil); code != http.StatusNotFound {
		t.Errorf("API send to an undeclared queue: %d, want 404", code)
	}
	if code := dev.API(t, "POST", "/v1/projects/q/queues/jobs/messages", map[string]any{"messages": []any{}}, nil); code != http.StatusBadRequest {
		t.Errorf("API send of nothing: %d, want 400", code)
	}

	// Kill pier dev while the consumer holds a batch.
	get("/send?n=1&from=500&mode=slow")
	testenv.WaitFor(t, 60*time.Second, "the slow message's first delivery", func() bool {
		_, out := get("/get?k=started:500")
		return out["value"] != nil
	})
	killedAt := time.Now()
	dev.Kill(t)
	dev = testenv.StartDev(t, dir)
	testenv.WaitFor(t, 90*time.Second, "the slow message delivered again after the restart", func() bool {
		_, out := get("/get?k=done:500")
		return out["value"] != nil
	})
	_, out := get("/get?k=done:500")
	if a := out["value"].(map[string]any)["attempts"].(float64); a != 2 {
		t.Errorf("the killed batch's message was delivered on attempt %v, want 2", a)
	}
	t.Logf("redelivered %.1fs after the kill (visibility timeout 8s)", time.Since(killedAt).Seconds())
}
