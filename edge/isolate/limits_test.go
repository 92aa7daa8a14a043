package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// hostile is a deployment whose routes misbehave on purpose.
const hostile = `
let hits = 0;
export default {
  async fetch(req) {
    hits++;
    switch (new URL(req.url).pathname) {
    case "/loop": while (true) {}
    case "/loop-after-await": await null; for (;;) {}
    case "/sleep": await new Promise((r) => setTimeout(r, 3600e3)); return new Response("late");
    case "/never": return new Promise(() => {});
    case "/recurse": { const f = (n) => f(n + 1) + 1; return new Response(String(f(0))); }
    case "/atomics-wait": Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); return new Response("woke");
    case "/bomb": { const a = []; for (;;) a.push(new Array(1e5).fill({x: 1})); }
    case "/string-bomb": { let s = "x"; const keep = []; for (;;) { s = s + s.slice(0, 1e5) + Math.random(); keep.push(s); } }
    case "/globals":
      return Response.json({require: typeof require, process: typeof process, Deno: typeof Deno, Bun: typeof Bun,
        module: typeof module, exports: typeof exports, native: typeof __pier_native, fs: typeof fs,
        importScripts: typeof importScripts, Buffer: typeof Buffer, env: typeof env, hasOwnEnv: "env" in globalThis});
    }
    return new Response("ok " + hits);
  },
};`

func TestTimeoutKeepsRuntime(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.Timeout = 150 * time.Millisecond
	r := start(t, cfg, hostile, nil)
	for _, path := range []string{"/loop", "/loop-after-await", "/sleep", "/atomics-wait", "/loop"} {
		t.Run(path, func(t *testing.T) {
			_, err := serve(t, r, "GET", "http://a.example"+path, "")
			var te *TimeoutError
			if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || err.Error() != "Execution timeout (150ms)" {
				t.Fatalf("got %v, want Execution timeout (150ms)", err)
			}
			res := mustServe(t, r, "GET", "http://a.example/", "")
			if !strings.HasPrefix(string(res.Body), "ok ") {
				t.Errorf("after timeout: %q", res.Body)
			}
		})
	}
	st := r.Stats()
	if st.Timeouts != 5 || st.Starts != 1 {
		t.Errorf("stats %+v: want 5 timeouts on the one isolate", st)
	}
}

func TestContextCancel(t *testing.T) {
	r := start(t, testConfig(t, nil), hostile, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := r.Serve(ctx, newRequest("GET", "http://a.example/loop", ""), "c"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := r.Serve(ctx, newRequest("GET", "http://a.example/loop", ""), "d"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout from the context deadline", err)
	}
	mustServe(t, r, "GET", "http://a.example/", "")
}

func TestScriptFailures(t *testing.T) {
	r := start(t, testConfig(t, nil), hostile, nil)
	tests := []struct{ path, want string }{
		{"/never", "the script's promise will never settle: nothing is pending (no fetch, no timer)"},
		{"/recurse", "RangeError: Maximum call stack size exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := serve(t, r, "GET", "http://a.example"+tt.path, "")
			var se *ScriptError
			if !errors.As(err, &se) || se.Message != tt.want {
				t.Fatalf("got %v, want a ScriptError %q", err, tt.want)
			}
			mustServe(t, r, "GET", "http://a.example/", "")
		})
	}
}

func TestHeapLimit(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.HeapMB = 32
	r := start(t, cfg, hostile, nil)
	for _, path := range []string{"/bomb", "/string-bomb", "/bomb"} {
		t.Run(path, func(t *testing.T) {
			if _, err := serve(t, r, "GET", "http://a.example"+path, ""); !errors.Is(err, ErrHeapLimit) {
				t.Fatalf("got %v, want ErrHeapLimit", err)
			}
			// The process is alive and the Runtime serves again, on a new isolate
			// (so module state starts over).
			if res := mustServe(t, r, "GET", "http://a.example/", ""); string(res.Body) != "ok 1" {
				t.Errorf("after heap limit: %q", res.Body)
			}
		})
	}
	if st := r.Stats(); st.HeapLimits != 3 || st.Starts != 4 {
		t.Errorf("stats %+v: want 3 heap-limit failures and 4 isolate starts", st)
	}
}

func TestNoAmbientAuthority(t *testing.T) {
	r := start(t, testConfig(t, nil), hostile, map[string]string{"SECRET": "s"})
	res := mustServe(t, r, "GET", "http://a.example/globals", "")
	var got map[string]any
	if err := json.Unmarshal(res.Body, &got); err != nil {
		t.Fatal(err)
	}
	for k, v := range got {
		if v != "undefined" && v != false {
			t.Errorf("%s: %v, want undefined", k, v)
		}
	}
}

// TestIsolation: two deployments in one process see neither each other's
// globals (or prototype changes) nor each other's env.
func TestIsolation(t *testing.T) {
	a := start(t, testConfig(t, nil), `
globalThis.shared = "from A";
Object.prototype.polluted = "yes";
Math.random = () => 4;
export default { fetch(req, env) { return Response.json({env, shared: globalThis.shared}); } };`,
		map[string]string{"TOKEN": "a-token"})
	bSrc := `
export default { fetch(req, env) {
  let threw = false;
  try { env.TOKEN = "changed"; } catch (e) { threw = e instanceof TypeError; }
  return Response.json({env, shared: typeof globalThis.shared, polluted: ({}).polluted ?? null, random: Math.random() !== 4, frozen: Object.isFrozen(env) && threw});
} };`
	b := start(t, testConfig(t, nil), bSrc, map[string]string{"TOKEN": "b-token"})
	c := start(t, testConfig(t, nil), bSrc, nil)

	tests := []struct {
		name string
		r    *Runtime
		want string
	}{
		{"a", a, `{"env":{"TOKEN":"a-token"},"shared":"from A"}`},
		{"b", b, `{"env":{"TOKEN":"b-token"},"shared":"undefined","polluted":null,"random":true,"frozen":true}`},
		{"c same script no env", c, `{"env":{},"shared":"undefined","polluted":null,"random":true,"frozen":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 {
				if res := mustServe(t, tt.r, "GET", "http://x.example/", ""); string(res.Body) != tt.want {
					t.Errorf("got %s, want %s", res.Body, tt.want)
				}
			}
		})
	}
}

func TestInvoke(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.Timeout = 100 * time.Millisecond
	tests := []struct {
		name, src, input, want, err string
	}{
		{"sync", `function handler(data) { return {sum: data.a + data.b}; }`, `{"a":1,"b":2}`, `{"sum":3}`, ""},
		{"async", `async function handler(data) { await new Promise((r) => setTimeout(r, 1)); return [data]; }`, `"x"`, `["x"]`, ""},
		{"env", `function handler(data, env) { return env.K; }`, ``, `"v"`, ""},
		{"undefined result", `function handler() {}`, `null`, `null`, ""},
		{"module handler", `export function handler(d) { return d * 2; }`, `21`, `42`, ""},
		{"module default function", `export default async (d) => d + "!"`, `"hi"`, `"hi!"`, ""},
		{"throws", `function handler() { throw new TypeError("bad input"); }`, `1`, "", "script error: TypeError: bad input"},
		{"rejects", `async function handler() { throw "plain"; }`, `1`, "", "script error: Uncaught (in promise) plain"},
		{"timeout", `function handler() { for (;;) {} }`, `1`, "", "Execution timeout (100ms)"},
		{"no handler", `const x = 1;`, `1`, "", "invoke: script has no matching entry point: the script does not define handler(data)"},
		{"invalid input", `function handler(d) { return d; }`, `{`, "", "invoke: input is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, cfg, tt.src, map[string]string{"K": "v"})
			got, err := r.Invoke(context.Background(), json.RawMessage(tt.input))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("got %s, %v; want error %q", got, err, tt.err)
				}
				// The worker is kept after an error.
				if _, err := r.Invoke(context.Background(), json.RawMessage(`1`)); errors.Is(err, ErrClosed) {
					t.Errorf("runtime closed after an error")
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"syntax", `function (`, "SyntaxError"},
		{"module syntax", "export default {\n  fetch( {\n}", "SyntaxError: test.js:3:"},
		{"import", `import x from "left-pad"; export default { fetch() { return new Response(x) } }`, "bundle the code"},
		{"top level throw", `throw new Error("at load")`, "Error: at load"},
		{"top level await", `await 1; export default {}`, "Top-level await"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(context.Background(), "test.js", []byte(tt.src))
			var se *ScriptError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a ScriptError containing %q", err, tt.want)
			}
		})
	}
	t.Run("top level timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := Compile(ctx, "t.js", []byte(`for (;;) {}`)); !errors.Is(err, ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
	})
}

// TestNoValueLeak: many requests leave v8go's per-context value table (and
// the module's memory) where it was.
func TestNoValueLeak(t *testing.T) {
	r := start(t, testConfig(t, nil), `
export default { async fetch(req) {
  const u = new URL(req.url);
  await new Promise((res) => setTimeout(res, 0));
  console.log(u.pathname, crypto.randomUUID());
  return new Response(new Uint8Array(await req.arrayBuffer()));
} };`, nil)
	warm := func() int {
		for range 50 {
			mustServe(t, r, "POST", "http://a.example/p", "body")
		}
		return r.vm.ctx.RetainedValueCount()
	}
	before := warm()
	for range 4 {
		warm()
	}
	if after := r.vm.ctx.RetainedValueCount(); after != before {
		t.Errorf("retained values grew from %d to %d over 200 requests", before, after)
	}
}

func TestClosed(t *testing.T) {
	r := start(t, testConfig(t, nil), hostile, nil)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := serve(t, r, "GET", "http://a.example/", ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

func TestBodyLimits(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.MaxBodyBytes = 8
	r := start(t, cfg, `export default { async fetch(req) { return new Response((await req.text()) + "0123456789"); } }`, nil)
	if _, err := serve(t, r, "POST", "http://a.example/", "0123456789"); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("request: got %v, want ErrBodyTooLarge", err)
	}
	if _, err := serve(t, r, "POST", "http://a.example/", "x"); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("response: got %v, want ErrBodyTooLarge", err)
	}
}

// TestExternalMemoryRecycles: ArrayBuffers live outside the V8 heap limit;
// a Runtime whose buffers outgrow HeapMB is replaced after the call.
func TestExternalMemoryRecycles(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.HeapMB = 32
	r := start(t, cfg, `
const keep = [];
export default { fetch() { keep.push(new Uint8Array(12 << 20)); return new Response(String(keep.length)); } };`, nil)
	var got []string
	for range 4 {
		got = append(got, string(mustServe(t, r, "GET", "http://a.example/", "").Body))
	}
	if want := "1 2 3 1"; strings.Join(got, " ") != want {
		t.Errorf("buffers kept per request: %v, want %s (replaced once past 32 MB)", got, want)
	}
	if st := r.Stats(); st.Starts != 2 {
		t.Errorf("stats %+v, want 2 starts", st)
	}
}

// TestConcurrentCalls: calls from many goroutines are serialised, and Stats
// answers while a call runs.
func TestConcurrentCalls(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.Timeout = 2 * time.Second
	r := start(t, cfg, `
let inside = 0;
export default { async fetch(req) {
  if (inside++) throw new Error("two calls inside one runtime");
  await new Promise((res) => setTimeout(res, 1));
  inside--;
  return new Response("ok");
} };`, nil)
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			_, err := serve(t, r, "GET", "http://a.example/", "")
			errs <- err
		}()
	}
	_ = r.Stats()
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if st := r.Stats(); st.Calls != 16 {
		t.Errorf("stats %+v", st)
	}
}
