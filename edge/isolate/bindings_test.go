package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

// memBinding is a Binding over a map, recording its calls.
type memBinding struct {
	mu    sync.Mutex
	data  map[string]json.RawMessage
	calls []string
}

func (b *memBinding) Methods() []string { return []string{"get", "set", "fail"} }

func (b *memBinding) Call(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error) {
	var a []json.RawMessage
	if err := json.Unmarshal(args, &a); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, method+string(args))
	switch method {
	case "get":
		var k string
		_ = json.Unmarshal(a[0], &k)
		if v, ok := b.data[k]; ok {
			return v, nil
		}
		return json.RawMessage("null"), nil
	case "set":
		var k string
		_ = json.Unmarshal(a[0], &k)
		b.data[k] = a[1]
		return nil, nil
	}
	return nil, errors.New("value: too large")
}

func TestBindings(t *testing.T) {
	b := &memBinding{data: map[string]json.RawMessage{}}
	cfg := testConfig(t, nil)
	cfg.Bindings = map[string]Binding{"DATA": b}
	src := `export default {
		async fetch(req, env) {
			const before = await env.DATA.get("n");
			await env.DATA.set("n", { count: (before ? before.count : 0) + 1 });
			const [a, bb] = await Promise.all([env.DATA.get("n"), env.DATA.get("missing")]);
			let err = "";
			try { await env.DATA.fail(1) } catch (e) { err = e.constructor.name + ": " + e.message }
			return Response.json({ a, bb, err, frozen: Object.isFrozen(env.DATA), other: typeof env.OTHER, v: env.V })
		},
		async scheduled(event, env, ctx) {
			ctx.waitUntil(env.DATA.set("ran", event.cron));
			return "ok:" + event.cron
		},
	};
	export async function cleanup(event, env) { await env.DATA.set("cleaned", true); return 7 }`
	r := start(t, cfg, src, map[string]string{"V": "x", "DATA": "hidden"})
	res := mustServe(t, r, "GET", "http://app.example/", "")
	want := `{"a":{"count":1},"bb":null,"err":"Error: DATA.fail: value: too large","frozen":true,"other":"undefined","v":"x"}`
	if got := string(res.Body); got != want {
		t.Errorf("body = %s\nwant   %s", got, want)
	}
	res = mustServe(t, r, "GET", "http://app.example/", "")
	if !strings.Contains(string(res.Body), `"a":{"count":2}`) {
		t.Errorf("second request: %s", res.Body)
	}

	out, err := r.Call(t.Context(), "scheduled", json.RawMessage(`{"cron":"*/5 * * * *"}`), "run-1")
	if err != nil || string(out) != `"ok:*/5 * * * *"` || string(b.data["ran"]) != `"*/5 * * * *"` {
		t.Errorf("Call(scheduled) = %s, %v; ran = %s", out, err, b.data["ran"])
	}
	out, err = r.Call(t.Context(), "cleanup", nil, "run-2")
	if err != nil || string(out) != `7` || string(b.data["cleaned"]) != `true` {
		t.Errorf("Call(cleanup) = %s, %v", out, err)
	}
	if _, err := r.Call(t.Context(), "nope", nil, "run-3"); !errors.Is(err, ErrNoEntry) {
		t.Errorf("Call(nope) = %v, want ErrNoEntry", err)
	}
	// A runtime without the binding: the name is a plain variable.
	r2 := start(t, testConfig(t, nil), `export default { fetch: (req, env) => new Response(String(env.DATA)) }`, map[string]string{"DATA": "plain"})
	if res := mustServe(t, r2, "GET", "http://app.example/", ""); string(res.Body) != "plain" {
		t.Errorf("without bindings: %s", res.Body)
	}
}
