package isolate

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestWebAPIs runs each case as the body of an async handler (function mode)
// and compares its JSON result.
func TestWebAPIs(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"text encoder", `return [...new TextEncoder().encode("h€😀")]`, `[104,226,130,172,240,159,152,128]`},
		{"text decoder", `return new TextDecoder().decode(new Uint8Array([104,226,130,172,240,159,152,128]))`, `"h€😀"`},
		{"text decoder stream", `const d = new TextDecoder(); const b = new TextEncoder().encode("€"); return d.decode(b.subarray(0,1), {stream:true}) + d.decode(b.subarray(1))`, `"€"`},
		{"text decoder invalid", `return new TextDecoder().decode(new Uint8Array([0xff, 0x41]))`, `"�A"`},
		{"text decoder fatal", `try { new TextDecoder("utf-8", {fatal:true}).decode(new Uint8Array([0xc3])); return "no" } catch (e) { return e.name }`, `"TypeError"`},
		{"encodeInto", `const a = new Uint8Array(4); return new TextEncoder().encodeInto("a€b", a)`, `{"read":2,"written":4}`},
		{"btoa atob", `return [btoa("hello"), atob("aGVsbG8="), atob(btoa("\xff\x00"))==="\xff\x00"]`, `["aGVsbG8=","hello",true]`},
		{"atob invalid", `try { atob("*"); return "no" } catch (e) { return e.name }`, `"InvalidCharacterError"`},
		{"url parts", `const u = new URL("HTTPS://User:pw@Example.COM:443/a/./b/../c?x=1&y=2#frag"); return [u.href, u.protocol, u.username, u.host, u.pathname, u.search, u.hash, u.origin]`,
			`["https://User:pw@example.com/a/c?x=1&y=2#frag","https:","User","example.com","/a/c","?x=1&y=2","#frag","https://example.com"]`},
		{"url relative", `return new URL("../x?q#h", "http://a.example/b/c/d").href`, `"http://a.example/b/x?q#h"`},
		{"url invalid", `try { new URL("/relative"); return "no" } catch (e) { return [e.name, URL.canParse("nope"), URL.canParse("http://x")] }`, `["TypeError",false,true]`},
		{"url port ipv6", `const u = new URL("http://[::1]:8080/"); return [u.hostname, u.port, u.host]`, `["[::1]","8080","[::1]:8080"]`},
		{"url setters", `const u = new URL("http://a.example/p?x=1"); u.searchParams.append("y", "a b"); u.pathname = "q"; u.hash = "h"; return u.href`, `"http://a.example/q?x=1&y=a+b#h"`},
		{"url spaces", `return new URL("http://a.example/a b?c d").href`, `"http://a.example/a%20b?c%20d"`},
		{"search params", `const p = new URLSearchParams("a=1&b=2&a=3&c=%20x+y"); p.delete("b"); p.set("d", "é"); return [p.getAll("a"), p.get("c"), p.has("b"), p.toString(), [...p.keys()]]`,
			`[["1","3"]," x y",false,"a=1&a=3&c=+x+y&d=%C3%A9",["a","a","c","d"]]`},
		{"search params init", `return [new URLSearchParams({a: 1, b: "x"}).toString(), new URLSearchParams([["k","v"]]).toString()]`, `["a=1&b=x","k=v"]`},
		{"headers", `const h = new Headers({"Content-Type": "text/html"}); h.append("X-A", "1"); h.append("x-a", "2"); h.append("Set-Cookie", "a=1"); h.append("Set-Cookie", "b=2");
			return [h.get("content-type"), h.get("X-A"), h.has("x-b"), [...h], h.getSetCookie()]`,
			`["text/html","1, 2",false,[["content-type","text/html"],["set-cookie","a=1"],["set-cookie","b=2"],["x-a","1, 2"]],["a=1","b=2"]]`},
		{"headers invalid name", `try { new Headers({"bad name": "x"}); return "no" } catch (e) { return e.name }`, `"TypeError"`},
		{"response", `const r = new Response("hi", {status: 201, headers: {"x": "y"}}); return [r.status, r.ok, r.headers.get("x"), r.headers.get("content-type"), await r.text(), r.bodyUsed]`,
			`[201,true,"y","text/plain;charset=UTF-8","hi",true]`},
		{"response json static", `const r = Response.json({a: 1}, {status: 400}); return [r.status, r.headers.get("content-type"), await r.json()]`, `[400,"application/json",{"a":1}]`},
		{"response redirect", `const r = Response.redirect("http://a.example/x", 301); return [r.status, r.headers.get("location")]`, `[301,"http://a.example/x"]`},
		{"response bad status", `try { new Response("x", {status: 99}); return "no" } catch (e) { return e.name }`, `"RangeError"`},
		{"body used twice", `const r = new Response("x"); await r.text(); try { await r.text(); return "no" } catch (e) { return e.name }`, `"TypeError"`},
		{"response bytes", `const r = new Response(new Uint8Array([1,2,3])); return [...new Uint8Array(await r.arrayBuffer())]`, `[1,2,3]`},
		{"response clone", `const a = new Response("x"); const b = a.clone(); return [await a.text(), await b.text()]`, `["x","x"]`},
		{"request", `const r = new Request("http://a.example/p", {method: "post", body: JSON.stringify({a:1}), headers: {"content-type": "application/json"}});
			return [r.method, r.url, await r.json(), r.headers.get("content-type")]`, `["POST","http://a.example/p",{"a":1},"application/json"]`},
		{"request get body", `try { new Request("http://a.example/", {body: "x"}); return "no" } catch (e) { return e.name }`, `"TypeError"`},
		{"readable stream", `const s = new ReadableStream({start(c) { c.enqueue(new TextEncoder().encode("a")); c.enqueue("b"); c.close(); }}); return await new Response(s).text()`, `"ab"`},
		{"crypto uuid", `const u = crypto.randomUUID(); return [/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(u), u !== crypto.randomUUID()]`, `[true,true]`},
		{"crypto random", `const a = crypto.getRandomValues(new Uint32Array(8)); return [a.length, a.some((x) => x !== 0)]`, `[8,true]`},
		{"crypto random too big", `try { crypto.getRandomValues(new Uint8Array(70000)); return "no" } catch (e) { return e.name }`, `"QuotaExceededError"`},
		{"timers order", `const out = []; await new Promise((res) => { setTimeout(() => out.push("b"), 20); setTimeout(() => out.push("a"), 5); const id = setTimeout(() => out.push("never"), 10); clearTimeout(id); setTimeout(res, 40); }); return out`, `["a","b"]`},
		{"url parsed again is a fresh copy", `const a = new URL("http://a.example/p?x=1"); a.searchParams.set("x", "2"); a.hash = "h"; const b = new URL("http://a.example/p?x=1"); const c = new URL("p?x=1", "http://a.example/"); return [a.href, b.href, b.search, c.href]`, `["http://a.example/p?x=2#h","http://a.example/p?x=1","?x=1","http://a.example/p?x=1"]`},
		{"sleep after sleep", `const sleep = (ms) => new Promise((r) => setTimeout(r, ms)); await sleep(2); await sleep(2); await sleep(0); return "slept"`, `"slept"`},
		{"interval", `let n = 0; await new Promise((res) => { const id = setInterval(() => { if (++n === 3) { clearInterval(id); res(); } }, 1); }); return n`, `3`},
		{"microtask", `const out = []; queueMicrotask(() => out.push(1)); await null; return out`, `[1]`},
		{"abort", `const c = new AbortController(); let fired = false; c.signal.addEventListener("abort", () => fired = true); c.abort(); return [c.signal.aborted, fired, c.signal.reason.name]`, `[true,true,"AbortError"]`},
		{"structuredClone performance", `return [structuredClone({a: [1]}), typeof performance.now()]`, `[{"a":[1]},"number"]`},
		{"message channel", `return await new Promise((res) => { const c = new MessageChannel(); c.port1.onmessage = (e) => res(e.data); c.port2.postMessage("m"); })`, `"m"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, testConfig(t, nil), "async function handler(data) {\n"+tt.body+"\n}", nil)
			got, err := r.Invoke(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("result %s: %v", got, err)
			}
			if err := json.Unmarshal([]byte(tt.want), &w); err != nil {
				t.Fatalf("want %s: %v", tt.want, err)
			}
			if diff := cmp.Diff(w, g); diff != "" {
				t.Errorf("got %s, want %s (-want +got):\n%s", got, tt.want, diff)
			}
		})
	}
}

func TestServeRequestAndResponse(t *testing.T) {
	r := start(t, testConfig(t, nil), `
export default {
  async fetch(req, env, ctx) {
    const url = new URL(req.url);
    switch (url.pathname) {
    case "/echo":
      return new Response(JSON.stringify({method: req.method, url: req.url, ua: req.headers.get("user-agent"), body: await req.text()}),
        {status: 202, headers: {"content-type": "application/json", "x-multi": "a"}});
    case "/binary": {
      const b = new Uint8Array(await req.arrayBuffer());
      return new Response(b.map((x) => 255 - x));
    }
    case "/stream":
      return new Response(new ReadableStream({ async pull(c) { await null; c.enqueue("chunk"); c.close(); } }));
    case "/cookies": {
      const h = new Headers(); h.append("set-cookie", "a=1"); h.append("set-cookie", "b=2");
      return new Response(null, {status: 204, headers: h});
    }
    case "/wait": {
      let done = false;
      ctx.waitUntil(new Promise((res) => setTimeout(() => { done = true; res(); }, 5)));
      globalThis.waited = () => done;
      return new Response("ok");
    }
    case "/waited":
      return new Response(String(globalThis.waited && globalThis.waited()));
    case "/throw":
      throw new Error("boom");
    case "/notresponse":
      return {status: 200};
    }
    return new Response("not found", {status: 404});
  },
};`, nil)

	t.Run("echo", func(t *testing.T) {
		req := newRequest("POST", "https://app.example/echo?x=1", "payload")
		req.Header.Set("User-Agent", "tester")
		res, err := r.Serve(context.Background(), req, "r1")
		if err != nil {
			t.Fatal(err)
		}
		want := `{"method":"POST","url":"https://app.example/echo?x=1","ua":"tester","body":"payload"}`
		if res.Status != 202 || string(res.Body) != want || res.Header.Get("X-Multi") != "a" {
			t.Errorf("got %d %q %v", res.Status, res.Body, res.Header)
		}
	})
	t.Run("relative request url", func(t *testing.T) {
		req := newRequest("GET", "/echo", "")
		req.RequestURI, req.URL.Scheme, req.URL.Host, req.Host = "/echo", "", "", "site.example"
		res, err := r.Serve(context.Background(), req, "r2")
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(res.Body) || !contains(string(res.Body), `"url":"http://site.example/echo"`) {
			t.Errorf("got %s", res.Body)
		}
	})
	t.Run("binary", func(t *testing.T) {
		res := mustServe(t, r, "POST", "http://a.example/binary", "\x00\x01\xff")
		if string(res.Body) != "\xff\xfe\x00" {
			t.Errorf("got %q", res.Body)
		}
	})
	t.Run("stream", func(t *testing.T) {
		if res := mustServe(t, r, "GET", "http://a.example/stream", ""); string(res.Body) != "chunk" {
			t.Errorf("got %q", res.Body)
		}
	})
	t.Run("set-cookie", func(t *testing.T) {
		res := mustServe(t, r, "GET", "http://a.example/cookies", "")
		if res.Status != 204 || len(res.Header.Values("Set-Cookie")) != 2 {
			t.Errorf("got %d %v", res.Status, res.Header)
		}
	})
	t.Run("waitUntil", func(t *testing.T) {
		mustServe(t, r, "GET", "http://a.example/wait", "")
		if res := mustServe(t, r, "GET", "http://a.example/waited", ""); string(res.Body) != "true" {
			t.Errorf("waitUntil promise not awaited: %q", res.Body)
		}
	})
	t.Run("throw", func(t *testing.T) {
		_, err := serve(t, r, "GET", "http://a.example/throw", "")
		var se *ScriptError
		if !asScriptError(err, &se) || se.Message != "Error: boom" || !contains(se.Stack, "test.js") {
			t.Errorf("got %#v", err)
		}
	})
	t.Run("not a response", func(t *testing.T) {
		_, err := serve(t, r, "GET", "http://a.example/notresponse", "")
		var se *ScriptError
		if !asScriptError(err, &se) || !contains(se.Message, "must return a Response") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("invoke without handler", func(t *testing.T) {
		if _, err := r.Invoke(context.Background(), nil); !isErr(err, ErrNoEntry) {
			t.Errorf("got %v, want ErrNoEntry", err)
		}
	})
}

func TestConsole(t *testing.T) {
	logs := &logSink{}
	cfg := testConfig(t, logs)
	cfg.MaxLogBytes = 64
	r := start(t, cfg, `
console.log("top level");
export default { fetch(req) {
  console.log("a", 1, {b: [2]}, null);
  console.info("%s is %d", "x", 42);
  console.warn(new Error("w"));
  console.error("e");
  console.debug("x".repeat(100));
  return new Response("ok");
} }`, nil)
	mustServe(t, r, "GET", "http://a.example/", "")
	var got []LogEntry
	for _, e := range logs.all() {
		e.Time = e.Time.Truncate(0)
		if e.Level == "warn" {
			e.Message = e.Message[:len("Error: w")]
		}
		e.Time = time.Time{}
		got = append(got, e)
	}
	want := []LogEntry{
		{RequestID: "", Level: "log", Message: "top level"},
		{RequestID: "req-GET", Level: "log", Message: `a 1 { b: [ 2 ] } null`},
		{RequestID: "req-GET", Level: "info", Message: "x is 42"},
		{RequestID: "req-GET", Level: "warn", Message: "Error: w"},
		{RequestID: "req-GET", Level: "error", Message: "e"},
		{RequestID: "req-GET", Level: "debug", Message: strings.Repeat("x", 64) + "…(truncated)"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("console (-want +got):\n%s", diff)
	}
}
