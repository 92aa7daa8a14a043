package edged_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/cache/cachetest"
	"github.com/pierhq/pier/edge/edged"
	"github.com/pierhq/pier/edge/edged/edgedtest"
)

var bundles edgedtest.Bundles

func TestMain(m *testing.M) {
	code := m.Run()
	bundles.Cleanup()
	os.Exit(code)
}

// logLines collects the edge's log as JSON lines (and echoes them to t.Log).
type logLines struct {
	mu    sync.Mutex
	t     testing.TB
	lines []map[string]any
	done  bool
}

func newLogLines(t testing.TB) (*logLines, *slog.Logger) {
	l := &logLines{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l, slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logLines) Write(p []byte) (int, error) {
	var v map[string]any
	_ = json.Unmarshal(p, &v)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, v)
	if !l.done {
		l.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// find returns the first record with every key of want equal.
func (l *logLines) find(want map[string]any) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, rec := range l.lines {
		ok := true
		for k, v := range want {
			ok = ok && rec[k] == v
		}
		if ok {
			return rec
		}
	}
	return nil
}

// startCodeEdge runs an edge with deps.Env and isolate settings until the test ends.
func startCodeEdge(t *testing.T, st *stack, log *slog.Logger, env func(context.Context, string) (map[string]string, error), tweak func(*edged.IsolatesConfig)) *edgeProc {
	t.Helper()
	cfg := edged.Config{
		ID: "edge-code", Addr: "127.0.0.1:0", BaseDomain: "localhost", CacheDir: t.TempDir(), Logger: log,
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg.Isolates)
	}
	s, err := edged.New(cfg, edged.Deps{Coord: st.coord, Blobs: st.blobs, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(patience):
			t.Errorf("Run did not return")
		}
	})
	e := &edgeProc{Server: s, id: cfg.ID}
	waitReady(t, e)
	return e
}

func do(t *testing.T, e *edgeProc, method, host, path, body string, hdr map[string]string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+e.Addr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{res.StatusCode, res.Header, string(b)}
}

func stats(t *testing.T, e *edgeProc) edged.IsolateStats {
	t.Helper()
	r := get(t, e, "127.0.0.1", "/stats")
	var v struct{ Isolates edged.IsolateStats }
	if r.status != 200 || json.Unmarshal([]byte(r.body), &v) != nil {
		t.Fatalf("/stats = %d %q", r.status, r.body)
	}
	return v.Isolates
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestServerEntry: a Hono app bundled with esbuild as the server entry of
// a deployment with static files, and a React renderToString page as
// another project's: static files first, everything else to the isolate,
// env from Deps.Env, console lines in the edge log with the request id,
// and the entry file never served.
func TestServerEntry(t *testing.T) {
	hono := bundles.Get(t, edgedtest.Hono)
	react := bundles.Get(t, edgedtest.React)
	st := newStack(t)
	logs, log := newLogLines(t)
	var envCalls sync.Map
	env := func(_ context.Context, id string) (map[string]string, error) {
		envCalls.Store(id, true)
		return map[string]string{"GREETING": "ahoy from " + id}, nil
	}
	e := startCodeEdge(t, st, log, env, nil)

	mHono := edgedtest.PublishCode(t, st.blobs, edgedtest.Code{
		Deployment: cachetest.Deployment{ID: "dpl-hono", ProjectID: "prj-hono", ProjectName: "hono", Files: map[string]cachetest.File{
			"index.html":             {Body: "static home"},
			"assets/app-1a2b3c4d.js": {Body: "static js"},
			"_worker.js":             {Body: string(hono)},
			"robots.txt":             {Body: "static robots"},
			"docs/index.html":        {Body: "static docs"},
		}},
		Server: "_worker.js",
	})
	mReact := edgedtest.PublishCode(t, st.blobs, edgedtest.Code{
		Deployment: cachetest.Deployment{ID: "dpl-react", ProjectID: "prj-react", ProjectName: "react", Files: map[string]cachetest.File{
			"server.js": {Body: string(react)},
		}},
		Server: "server.js",
	})
	promote(t, st.coord, mHono)
	promote(t, st.coord, mReact)
	serving(t, e, "hono.localhost", "/", "static home")

	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"static index first", "GET", "/", "", 200, "static home"},
		{"static file", "GET", "/robots.txt", "", 200, "static robots"},
		{"static pretty url", "GET", "/docs/", "", 200, "static docs"},
		{"app route with env", "GET", "/json/ada?q=1", "", 200, `{"name":"ada","q":"1","greeting":"ahoy from dpl-hono"}`},
		{"post to app", "POST", "/echo", `{"n":[1,2]}`, 201, `{"got":{"n":[1,2]},"type":"application/json"}`},
		{"post on a static path goes to the app", "POST", "/", `{}`, 404, "nothing here"},
		{"app 404", "GET", "/nope", "", 404, "nothing here"},
		{"entry file is not served", "GET", "/_worker.js", "", 404, "nothing here"},
		{"head", "HEAD", "/json/x", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, e, tt.method, "hono.localhost", tt.path, tt.body, map[string]string{"Content-Type": "application/json"})
			if r.status != tt.status || r.body != tt.want {
				t.Fatalf("%s %s = %d %q, want %d %q", tt.method, tt.path, r.status, r.body, tt.status, tt.want)
			}
			if r.header.Get("X-Pier-Deployment") != "dpl-hono" || r.header.Get("X-Pier-Edge") != "edge-code" {
				t.Errorf("headers %v", r.header)
			}
		})
	}

	t.Run("request id", func(t *testing.T) {
		r := do(t, e, "GET", "hono.localhost", "/log", "", map[string]string{"X-Request-Id": "req-from-client"})
		if r.status != 200 || r.body != "logged" || r.header.Get("X-Request-Id") != "req-from-client" {
			t.Fatalf("GET /log = %d %q, request id %q", r.status, r.body, r.header.Get("X-Request-Id"))
		}
		rec := logs.find(map[string]any{"msg": "hono log /log", "request_id": "req-from-client"})
		if rec == nil || rec["deployment"] != "dpl-hono" || rec["level"] != "INFO" {
			t.Fatalf("console line not in the edge log with its request id and deployment: %v", rec)
		}
		r = do(t, e, "GET", "hono.localhost", "/log", "", map[string]string{"X-Request-Id": "bad id\twith spaces"})
		if id := r.header.Get("X-Request-Id"); !hexID.MatchString(id) {
			t.Fatalf("generated request id %q", id)
		}
	})

	t.Run("react ssr", func(t *testing.T) {
		for _, path := range []string{"/", "/blog/hello"} {
			r := get(t, e, "react.localhost", path)
			if r.status != 200 || !strings.Contains(r.body, "<h1>Hello from <!-- -->"+path+"</h1>") ||
				strings.Count(r.body, "<li>") != 20 || r.header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("GET %s = %d %v %q", path, r.status, r.header, r.body)
			}
		}
	})

	t.Run("deployment host", func(t *testing.T) {
		r := get(t, e, "dpl-react.react.localhost", "/x")
		if r.status != 200 || !strings.Contains(r.body, "Hello from <!-- -->/x") {
			t.Fatalf("GET = %d %q", r.status, r.body)
		}
	})

	t.Run("stats", func(t *testing.T) {
		s := stats(t, e)
		// One isolate per deployment was started (requests ran one at a
		// time); every later request was a warm hit. Both scripts were
		// compiled once, when the deployments were synced.
		if s.ColdStarts != 2 || s.WarmHits < 9 || s.Compiled != 2 || s.Live != 2 || s.Idle != 2 ||
			s.StartAvgMs <= 0 || s.CompileAvgMs <= 0 {
			t.Fatalf("stats = %+v", s)
		}
		if _, ok := envCalls.Load("dpl-react"); !ok {
			t.Error("Env was not asked for dpl-react")
		}
	})
}

// TestHostileCode: code that loops, exhausts its heap, throws, does not
// compile, returns nonsense or sends too much gets an error response with
// a request id, and the edge (and the isolate, after a timeout) carries on.
func TestHostileCode(t *testing.T) {
	st := newStack(t)
	logs, log := newLogLines(t)
	e := startCodeEdge(t, st, log, nil, func(c *edged.IsolatesConfig) {
		c.Runtime.Timeout = 1500 * time.Millisecond
		c.Runtime.HeapMB = 32
		c.Runtime.MaxBodyBytes = 1 << 10
	})
	fn := func(body string) cachetest.File { return cachetest.File{Body: body} }
	m := edgedtest.PublishCode(t, st.blobs, edgedtest.Code{
		Deployment: cachetest.Deployment{ID: "dpl-bad", ProjectID: "prj-bad", ProjectName: "bad", Files: map[string]cachetest.File{
			"index.html": fn("home"),
			"_worker.js": fn(`export default { async fetch(req) { const u = new URL(req.url);
				if (u.pathname === "/status") return new Response(null, { status: 204 });
				return new Response("server " + u.pathname + " " + (await req.text()).length) } }`),
			"fn/loop.js":    fn(`export default { fetch() { for (;;) {} } }`),
			"fn/bomb.js":    fn(`export default { fetch() { const a = []; for (;;) a.push(new Array(1e6).fill(1.5)); } }`),
			"fn/throw.js":   fn(`export default { fetch() { throw new Error("secret internals") } }`),
			"fn/broken.js":  fn(`export default { fetch( { `),
			"fn/noentry.js": fn(`export const x = 1`),
			"fn/api.js":     fn(`export default { fetch(req) { return Response.json({ path: new URL(req.url).pathname }) } }`),
			"fn/exact.js":   fn(`export default { fetch() { return new Response("exact") } }`),
		}},
		Server: "_worker.js",
		Functions: map[string]string{
			"/loop": "fn/loop.js", "/bomb": "fn/bomb.js", "/throw": "fn/throw.js", "/broken": "fn/broken.js",
			"/noentry": "fn/noentry.js", "/api/*": "fn/api.js", "/api/exact": "fn/exact.js",
		},
	})
	mHidden := edgedtest.PublishCode(t, st.blobs, edgedtest.Code{
		Deployment: cachetest.Deployment{ID: "dpl-fnonly", ProjectID: "prj-fnonly", ProjectName: "fnonly", Files: map[string]cachetest.File{
			"index.html": fn("fn only"),
			"api.js":     fn(`export default { fetch() { return new Response("api") } }`),
		}},
		Functions: map[string]string{"/api": "api.js"},
	})
	promote(t, st.coord, m)
	promote(t, st.coord, mHidden)
	serving(t, e, "bad.localhost", "/", "home")

	type errBody struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string // error code, or "" for a normal answer
		want                     string
	}{
		{"timeout", "GET", "/loop", "", 504, "timeout", ""},
		{"timeout again, same isolate", "GET", "/loop", "", 504, "timeout", ""},
		{"heap limit", "GET", "/bomb", "", 500, "memory_limit", ""},
		{"throws", "GET", "/throw", "", 500, "script_error", ""},
		{"does not compile", "GET", "/broken", "", 500, "script_error", ""},
		{"no fetch", "GET", "/noentry", "", 500, "no_entry", ""},
		{"request too large", "POST", "/upload", strings.Repeat("x", 2<<10), 413, "too_large", ""},
		{"prefix function", "GET", "/api/users/1", "", 200, "", `{"path":"/api/users/1"}`},
		{"prefix function base", "GET", "/api", "", 200, "", `{"path":"/api"}`},
		{"exact beats prefix", "GET", "/api/exact", "", 200, "", "exact"},
		{"server entry", "POST", "/upload", "abc", 200, "", "server /upload 3"},
		{"function file goes to the server", "GET", "/fn/loop.js", "", 200, "", "server /fn/loop.js 0"},
		{"no content", "GET", "/status", "", 204, "", ""},
		{"alive after all that", "GET", "/api/ok", "", 200, "", `{"path":"/api/ok"}`},
	}
	var loopColds uint64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, e, tt.method, "bad.localhost", tt.path, tt.body, nil)
			if r.status != tt.status {
				t.Fatalf("%s %s = %d %q, want %d", tt.method, tt.path, r.status, r.body, tt.status)
			}
			if tt.code == "" {
				if r.body != tt.want {
					t.Fatalf("body %q, want %q", r.body, tt.want)
				}
				return
			}
			var b errBody
			if err := json.Unmarshal([]byte(r.body), &b); err != nil || b.Error.Code != tt.code ||
				b.Error.RequestID == "" || b.Error.RequestID != r.header.Get("X-Request-Id") {
				t.Fatalf("error body %q (%v), want code %q with the request id %q", r.body, err, tt.code, r.header.Get("X-Request-Id"))
			}
			if strings.Contains(r.body, "secret internals") {
				t.Fatalf("the script's error text reached the client: %q", r.body)
			}
			switch tt.name {
			case "timeout":
				loopColds = stats(t, e).ColdStarts
			case "timeout again, same isolate":
				if got := stats(t, e).ColdStarts; got != loopColds {
					t.Fatalf("cold starts %d after a second timeout, want %d: the isolate did not survive", got, loopColds)
				}
			case "throws":
				if logs.find(map[string]any{"msg": "server code error", "request_id": b.Error.RequestID}) == nil {
					t.Fatal("the script error is not in the edge log with the request id")
				}
			}
		})
	}

	t.Run("code file without a server is hidden", func(t *testing.T) {
		if r := get(t, e, "fnonly.localhost", "/api.js"); r.status != 404 || strings.Contains(r.body, "export") {
			t.Fatalf("GET /api.js = %d %q", r.status, r.body)
		}
		if r := get(t, e, "fnonly.localhost", "/api"); r.status != 200 || r.body != "api" {
			t.Fatalf("GET /api = %d %q", r.status, r.body)
		}
		if r := get(t, e, "fnonly.localhost", "/"); r.status != 200 || r.body != "fn only" {
			t.Fatalf("GET / = %d %q", r.status, r.body)
		}
	})

	t.Run("broken code compiled once", func(t *testing.T) {
		before := stats(t, e)
		for range 3 {
			if r := do(t, e, "GET", "bad.localhost", "/broken", "", nil); r.status != 500 || !strings.Contains(r.body, "script_error") {
				t.Fatalf("GET /broken = %d %q", r.status, r.body)
			}
		}
		// The kept compile error answers before any isolate starts.
		if after := stats(t, e); after.CompileErrors != before.CompileErrors || after.StartErrors != before.StartErrors {
			t.Fatalf("stats before %+v, after %+v", before, after)
		}
	})
}

// TestIsolatePool: the global capacity evicts the least recently used idle
// isolate, a project's minimum stays warm (and follows its pointer), and a
// deployment that leaves the edge takes its isolates along.
func TestIsolatePool(t *testing.T) {
	st := newStack(t)
	_, log := newLogLines(t)
	e := startCodeEdge(t, st, log, nil, func(c *edged.IsolatesConfig) {
		c.Capacity = 2
		c.ProjectMinWarm = map[string]int{"warm": 1}
	})
	app := func(id, project, text string) *edgedtest.Code {
		return &edgedtest.Code{
			Deployment: cachetest.Deployment{ID: id, ProjectID: "prj-" + project, ProjectName: project, Files: map[string]cachetest.File{
				"_worker.js": {Body: `export default { fetch() { return new Response("` + text + `") } }`},
			}},
			Server: "_worker.js",
		}
	}
	for _, c := range []*edgedtest.Code{app("dpl-w1", "warm", "w1"), app("dpl-b", "b", "b"), app("dpl-c", "c", "c")} {
		promote(t, st.coord, edgedtest.PublishCode(t, st.blobs, *c))
	}
	eventually(t, "the warm project prewarmed", func() bool { return stats(t, e).Prewarms == 1 })

	serving(t, e, "warm.localhost", "/", "w1")
	if s := stats(t, e); s.ColdStarts != 0 || s.WarmHits != 1 {
		t.Fatalf("first request to a prewarmed deployment: %+v", s)
	}
	serving(t, e, "b.localhost", "/", "b")
	serving(t, e, "c.localhost", "/", "c") // capacity 2: b's idle isolate goes, not warm's
	if s := stats(t, e); s.ColdStarts != 2 || s.Evictions != 1 || s.Live != 2 {
		t.Fatalf("after b and c: %+v", s)
	}
	serving(t, e, "warm.localhost", "/", "w1")
	if s := stats(t, e); s.ColdStarts != 2 || s.WarmHits != 2 {
		t.Fatalf("the warm project's isolate was evicted: %+v", s)
	}

	// A new deployment of the warm project: the minimum follows the pointer.
	promote(t, st.coord, edgedtest.PublishCode(t, st.blobs, *app("dpl-w2", "warm", "w2")))
	eventually(t, "the new deployment prewarmed", func() bool { return stats(t, e).Prewarms == 2 })
	serving(t, e, "warm.localhost", "/", "w2")
	if s := stats(t, e); s.ColdStarts != 2 {
		t.Fatalf("the new deployment of the warm project started cold: %+v", s)
	}
}

// TestAdmission: requests take a CPU slot before they lease an isolate.
// With more concurrent clients than slots and than the pool's capacity,
// mixing CPU-bound calls, calls that wait on timers (which give their slot
// back while they wait) and calls with a body, every request is answered
// (no deadlock between gate waits and pool waits) and every slot comes
// back. CPU-bound traffic starts no more isolates than there are slots.
func TestAdmission(t *testing.T) {
	const worker = `export default {
  async fetch(req) {
    const u = new URL(req.url);
    const spin = () => { let x = 0; for (let i = 0; i < 20000; i++) x += i % 7; return x; };
    if (u.pathname === "/io") {
      await new Promise((r) => setTimeout(r, 5));
      spin();
      await new Promise((r) => setTimeout(r, 5));
    }
    if (u.pathname === "/echo") return new Response("echo " + (await req.text()).length);
    return new Response("ok " + spin());
  },
};`
	app := func(project string) edgedtest.Code {
		return edgedtest.Code{
			Deployment: cachetest.Deployment{ID: "dpl-" + project, ProjectID: "prj-" + project, ProjectName: project,
				Files: map[string]cachetest.File{"_worker.js": {Body: worker}}},
			Server: "_worker.js",
		}
	}
	run := func(t *testing.T, e *edgeProc, clients, each int, pick func(client, i int) (method, host, path, body string)) {
		t.Helper()
		errs := make(chan string, clients*each)
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				for i := range each {
					method, host, path, body := pick(c, i)
					req, _ := http.NewRequestWithContext(t.Context(), method, "http://"+e.Addr()+path, strings.NewReader(body))
					req.Host = host
					res, err := http.DefaultTransport.RoundTrip(req)
					if err != nil {
						errs <- err.Error()
						return
					}
					b, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						errs <- fmt.Sprintf("%s %s%s = %d %s", method, host, path, res.StatusCode, b)
					}
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute): // a hang, not a timing assertion
			t.Fatal("requests still unanswered after 2 minutes: gate and pool waits deadlocked")
		}
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}

	t.Run("more clients than slots and capacity", func(t *testing.T) {
		st := newStack(t)
		_, log := newLogLines(t)
		e := startCodeEdge(t, st, log, nil, func(c *edged.IsolatesConfig) { c.CPUSlots, c.Capacity = 1, 2 })
		for _, p := range []string{"one", "two", "three"} {
			promote(t, st.coord, edgedtest.PublishCode(t, st.blobs, app(p)))
		}
		serving(t, e, "three.localhost", "/", "ok 59997")
		hosts := []string{"one.localhost", "two.localhost", "three.localhost"}
		run(t, e, 24, 6, func(c, i int) (string, string, string, string) {
			host := hosts[(c+i)%len(hosts)]
			switch c % 3 {
			case 0:
				return "GET", host, "/io", ""
			case 1:
				return "POST", host, "/echo", strings.Repeat("x", 1000)
			}
			return "GET", host, "/", ""
		})
		s := stats(t, e)
		if s.CPURunning != 0 || s.Live > 2 {
			t.Errorf("stats %+v: want every slot back and at most 2 isolates", s)
		}
		if s.CPUWaits == 0 {
			t.Errorf("stats %+v: 24 clients through one slot never queued", s)
		}
	})

	t.Run("CPU-bound traffic uses as many isolates as slots", func(t *testing.T) {
		st := newStack(t)
		_, log := newLogLines(t)
		e := startCodeEdge(t, st, log, nil, func(c *edged.IsolatesConfig) { c.CPUSlots = 2 })
		promote(t, st.coord, edgedtest.PublishCode(t, st.blobs, app("render")))
		run(t, e, 8, 30, func(int, int) (string, string, string, string) { return "GET", "render.localhost", "/", "" })
		s := stats(t, e)
		if s.ColdStarts > 2 || s.CPURunning != 0 {
			t.Errorf("stats %+v: 8 clients of CPU-bound calls through 2 slots started %d isolates, want at most 2", s, s.ColdStarts)
		}
		t.Logf("isolate stats: %+v", s)
	})
}
