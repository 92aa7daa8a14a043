package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// obsWorker answers /api/status/<code> with that status, logs a marker at
// error level on /api/hello, and floods the console on /api/flood.
const obsWorker = `export default {
  async fetch(request) {
    const url = new URL(request.url);
    const m = url.pathname.match(/^\/api\/status\/(\d+)$/);
    if (m) {
      console.log("status route", m[1]);
      return new Response("status " + m[1], { status: Number(m[1]) });
    }
    if (url.pathname === "/api/hello") {
      console.error("marker " + url.searchParams.get("m"));
      return new Response("hi");
    }
    if (url.pathname === "/api/flood") {
      for (let i = 0; i < 1000; i++) console.log("flood line " + i);
      return new Response("flooded");
    }
    return new Response("no such page", { status: 404 });
  },
};
`

const buildSecret = "bs-9d1e7a3c5f2b4d6e8a0c"

// sseEvent is one server-sent event.
type sseEvent struct{ ID, Name, Data string }

// follow reads the server-sent events of path into a channel until ctx
// ends or the stream does.
func follow(ctx context.Context, t *testing.T, base, token, path string, header ...string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("follow %s: %v", path, err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("follow %s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	ch := make(chan sseEvent, 1024)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" {
					select {
					case ch <- ev:
					case <-ctx.Done():
						return
					}
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.Data += line[6:]
			}
		}
	}()
	return ch
}

// next returns the next event, failing the test after timeout.
func next(t *testing.T, ch <-chan sseEvent, timeout time.Duration, what string) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("stream ended waiting for %s", what)
		}
		return ev
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
	return sseEvent{}
}

type accessRecord struct {
	ID         int64  `json:"id"`
	Kind       string `json:"kind"`
	Level      string `json:"level"`
	Message    string `json:"message"`
	Edge       string `json:"edge"`
	RequestID  string `json:"request_id"`
	Path       string `json:"path"`
	Status     int    `json:"status"`
	DurationUS int64  `json:"duration_us"`
	Start      string `json:"start"`
}

type quantiles struct{ P50, P95, P99 float64 }

type metricPoint struct {
	Requests     int64            `json:"requests"`
	Status       map[string]int64 `json:"status"`
	Errors       int64            `json:"errors"`
	LatencyMs    *quantiles       `json:"latency_ms"`
	ColdStarts   int64            `json:"cold_starts"`
	ColdMs       *quantiles       `json:"cold_ms"`
	WarmStarts   int64            `json:"warm_starts"`
	WarmMs       *quantiles       `json:"warm_ms"`
	Static       int64            `json:"static"`
	StaticHits   int64            `json:"static_hits"`
	CacheHitRate *float64         `json:"cache_hit_rate"`
	Edges        []string         `json:"edges"`
}

type series struct {
	StepSeconds int           `json:"step_s"`
	Points      []metricPoint `json:"points"`
	Total       metricPoint   `json:"total"`
}

// lowerQuantile is the DDSketch's definition of a quantile: the value of
// rank floor(q*(n-1)) in sorted order.
func lowerQuantile(sorted []float64, q float64) float64 {
	return sorted[int(math.Floor(q*float64(len(sorted)-1)))]
}

// TestDevObservability runs pier dev with two edges and checks the whole
// path: the build log reaches control while the build runs and follows
// live over SSE with the build secret masked; known traffic spread over
// both edges comes back from control's metrics API with exact counts, the
// exact status breakdown and percentiles within the sketches' 1 %
// relative accuracy of the exact percentiles of the durations the edges
// recorded (their access records); runtime logs follow live; `pier logs`
// prints both.
func TestDevObservability(t *testing.T) {
	git := testenv.GitServer(t, gitToken)
	url, sha := git.CreateRepo(t, "obs", map[string]string{
		"index.html":                "<h1>observed</h1>",
		"assets/app.0a1b2c3d4e.css": "body{}",
		"_worker.js":                obsWorker,
	})
	gate := filepath.Join(t.TempDir(), "go-on")
	// The build prints the secret, then waits for the test: the log must
	// reach the follower while the build is still running.
	buildCmd := fmt.Sprintf(`echo "token=$BUILD_SECRET"; i=0; while [ ! -f %s ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo "gate passed"; mkdir -p out && cp -r index.html _worker.js assets out/`, gate)
	dev := testenv.StartDev(t, t.TempDir(), "--edges", "2", "--sandbox", "none")
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": "obs", "repo_url": url, "git_token": gitToken,
		"framework": "static", "build_command": buildCmd, "output_dir": "out"}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	if code := dev.API(t, "PUT", "/v1/projects/obs/env/BUILD_SECRET", map[string]any{"value": buildSecret, "scope": "build"}, nil); code != 200 {
		t.Fatalf("set BUILD_SECRET: %d", code)
	}
	var d deployment
	if code := dev.API(t, "POST", "/v1/projects/obs/deployments", map[string]string{"ref": sha}, &d); code != 201 {
		t.Fatalf("create deployment: %d", code)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var buildText strings.Builder
	t.Run("BuildLogLive", func(t *testing.T) {
		events := follow(ctx, t, dev.APIURL, dev.Token, "/v1/deployments/"+d.ID+"/logs?follow=1")
		lastID := ""
		for !strings.Contains(buildText.String(), "token=") {
			ev := next(t, events, 2*time.Minute, "the build's first output")
			if ev.Name != "log" {
				t.Fatalf("event %q before the build's output: %s", ev.Name, ev.Data)
			}
			var chunk struct {
				Offset int64
				Text   string
			}
			if err := json.Unmarshal([]byte(ev.Data), &chunk); err != nil {
				t.Fatal(err)
			}
			if chunk.Offset != int64(buildText.Len()) {
				t.Errorf("chunk at offset %d, want %d", chunk.Offset, buildText.Len())
			}
			buildText.WriteString(chunk.Text)
			lastID = ev.ID
		}
		var now deployment
		dev.API(t, "GET", "/v1/deployments/"+d.ID, nil, &now)
		if now.State != "building" {
			t.Errorf("the build output arrived with the deployment %s; want it while building", now.State)
		}
		// A second follower resuming from the first one's last event gets
		// only what came after.
		resumed := follow(ctx, t, dev.APIURL, dev.Token, "/v1/deployments/"+d.ID+"/logs?follow=1", "Last-Event-ID", lastID)
		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		var end sseEvent
		for end.Name != "end" {
			ev := next(t, events, 2*time.Minute, "the end of the build")
			if ev.Name == "log" {
				var chunk struct{ Text string }
				_ = json.Unmarshal([]byte(ev.Data), &chunk)
				buildText.WriteString(chunk.Text)
			}
			end = ev
		}
		var final struct{ State string }
		_ = json.Unmarshal([]byte(end.Data), &final)
		if final.State != "ready" {
			t.Fatalf("build ended %s:\n%s", final.State, buildText.String())
		}
		log := buildText.String()
		if !strings.Contains(log, "token=***") || strings.Contains(log, buildSecret) || !strings.Contains(log, "gate passed") {
			t.Errorf("followed build log: want token=*** and the rest, never the secret:\n%s", log)
		}
		if stored := buildLog(t, dev, d.ID); stored != log {
			t.Errorf("the stored log differs from the followed one:\nstored:\n%s\nfollowed:\n%s", stored, log)
		}
		var rest strings.Builder
		for {
			ev := next(t, resumed, time.Minute, "the resumed stream's end")
			if ev.Name == "end" {
				break
			}
			var chunk struct{ Text string }
			_ = json.Unmarshal([]byte(ev.Data), &chunk)
			rest.WriteString(chunk.Text)
		}
		if i := strings.Index(log, "gate passed"); i < 0 || !strings.HasSuffix(log, rest.String()) || strings.Contains(rest.String(), "token=") {
			t.Errorf("resumed stream = %q; want exactly the output after the first event", rest.String())
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	host := "obs." + dev.BaseDomain
	// Requests that reached the deployment count in its metrics, also
	// those that wait for it to go live.
	served := 0
	get := func(edge int, path string) int {
		resp := dev.Get(t, edge, host, path)
		readBody(t, resp)
		if resp.Header.Get("X-Pier-Deployment") != "" {
			served++
		}
		return resp.StatusCode
	}
	testenv.WaitFor(t, 30*time.Second, "obs live on both edges", func() bool {
		return get(0, "/") == 200 && get(1, "/") == 200
	})
	warmup := served

	// Follow error-level runtime logs with "marker" before the traffic.
	marker := fmt.Sprintf("m%d", time.Now().UnixNano())
	runtime := follow(ctx, t, dev.APIURL, dev.Token, "/v1/projects/obs/logs?follow=1&level=error&q=marker&since=1m")

	// Known traffic over both edges, a few requests at a time.
	type req struct {
		path   string
		status int
		n      int
	}
	traffic := []req{{"/api/status/200", 200, 120}, {"/api/status/404", 404, 30}, {"/api/status/503", 503, 20}, {"/", 200, 30}}
	var jobs []req
	for _, r := range traffic {
		for range r.n {
			jobs = append(jobs, r)
		}
	}
	before := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	var mu sync.Mutex
	var clientMs []float64
	for w := range 4 {
		wg.Go(func() {
			for i := range work {
				start := time.Now()
				resp := dev.Get(t, (i+w)%2, host, jobs[i].path)
				readBody(t, resp)
				mu.Lock()
				clientMs = append(clientMs, float64(time.Since(start).Microseconds())/1000)
				mu.Unlock()
				if resp.StatusCode != jobs[i].status {
					t.Errorf("GET %s = %d, want %d", jobs[i].path, resp.StatusCode, jobs[i].status)
				}
			}
		})
	}
	for i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
	resp := dev.Get(t, 1, host, "/api/hello?m="+marker)
	readBody(t, resp)
	helloID := resp.Header.Get("X-Request-Id")
	total := len(jobs) + 1 + warmup // the warm-up requests were static
	t.Logf("%d requests in %s", total, time.Since(before).Round(time.Millisecond))

	t.Run("RuntimeLogFollow", func(t *testing.T) {
		ev := next(t, runtime, time.Minute, "the console.error marker")
		var rec accessRecord
		if err := json.Unmarshal([]byte(ev.Data), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Kind != "console" || rec.Level != "error" || rec.Message != "marker "+marker || rec.RequestID != helloID || rec.Edge != "edge-2" {
			t.Errorf("followed record %+v; want the console.error marker with request id %s from edge-2", rec, helloID)
		}
	})

	var s series
	testenv.WaitFor(t, time.Minute, "control to hold every request's metrics", func() bool {
		dev.API(t, "GET", "/v1/projects/obs/metrics?since=10m&step=1m", nil, &s)
		return s.Total.Requests >= int64(total)
	})
	t.Run("Counts", func(t *testing.T) {
		tot := s.Total
		want := map[string]int64{"200": int64(120 + 30 + 1 + warmup), "404": 30, "503": 20}
		if tot.Requests != int64(total) || !mapsEqual(tot.Status, want) || tot.Errors != 20 {
			t.Errorf("total: %d requests, status %v, %d errors; want %d, %v, 20", tot.Requests, tot.Status, tot.Errors, total, want)
		}
		static := int64(30 + warmup)
		if tot.Static != static || tot.StaticHits != static || tot.CacheHitRate == nil || *tot.CacheHitRate != 1 {
			t.Errorf("static %d, hits %d; want %d of %d", tot.Static, tot.StaticHits, static, static)
		}
		if code := int64(total) - static; tot.ColdStarts+tot.WarmStarts != code || tot.ColdStarts < 2 || tot.ColdMs == nil || tot.WarmMs == nil {
			t.Errorf("isolates: %d cold + %d warm, want %d with a cold start on each edge", tot.ColdStarts, tot.WarmStarts, code)
		}
		if !slices.Equal(tot.Edges, []string{"edge-1", "edge-2"}) {
			t.Errorf("edges %v, want both", tot.Edges)
		}
		var sum int64
		for _, p := range s.Points {
			sum += p.Requests
		}
		if sum != tot.Requests || s.StepSeconds != 60 {
			t.Errorf("points sum to %d (step %ds), total %d", sum, s.StepSeconds, tot.Requests)
		}
		t.Logf("latency p50/p95/p99 %.3f/%.3f/%.3f ms; cold %d (p50 %.2f ms), warm %d (p50 %.3f ms)",
			tot.LatencyMs.P50, tot.LatencyMs.P95, tot.LatencyMs.P99, tot.ColdStarts, tot.ColdMs.P50, tot.WarmStarts, tot.WarmMs.P50)
	})

	t.Run("Percentiles", func(t *testing.T) {
		// The sketches saw the durations the edges recorded, which are the
		// access records' durations: compare with their exact percentiles.
		var out struct{ Logs []accessRecord }
		dev.API(t, "GET", "/v1/projects/obs/logs?limit=1000&since=10m", nil, &out)
		var ms []float64
		for _, r := range out.Logs {
			if r.Kind == "access" {
				ms = append(ms, float64(r.DurationUS)/1000)
			}
		}
		if len(ms) != total {
			t.Fatalf("%d access records, want %d", len(ms), total)
		}
		slices.Sort(ms)
		slices.Sort(clientMs)
		const alpha = 0.01
		for _, c := range []struct {
			q   float64
			got float64
		}{{0.5, s.Total.LatencyMs.P50}, {0.95, s.Total.LatencyMs.P95}, {0.99, s.Total.LatencyMs.P99}} {
			exact := lowerQuantile(ms, c.q)
			t.Logf("p%v: sketch %.4f ms, exact %.4f ms (client-side %.4f ms)", c.q*100, c.got, exact, lowerQuantile(clientMs, c.q))
			if math.Abs(c.got-exact) > alpha*exact+1e-9 {
				t.Errorf("p%v = %.4f ms, exact %.4f ms: off by more than %.0f %%", c.q*100, c.got, exact, alpha*100)
			}
		}
	})

	t.Run("CLI", func(t *testing.T) {
		out, err := exec.Command(testenv.PierBinary(t), "logs", d.ID, "--api", dev.APIURL, "--token", dev.Token).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "token=***") || strings.Contains(string(out), buildSecret) {
			t.Errorf("pier logs %s: %v\n%s", d.ID, err, out)
		}
		out, err = exec.Command(testenv.PierBinary(t), "logs", d.ID, "--follow", "--api", dev.APIURL, "--token", dev.Token).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "gate passed") {
			t.Errorf("pier logs %s --follow (a finished build: prints it and ends): %v\n%s", d.ID, err, out)
		}
		out, err = exec.Command(testenv.PierBinary(t), "logs", "--project", "obs", "--level", "error", "--q", marker, "--json",
			"--api", dev.APIURL, "--token", dev.Token).CombinedOutput()
		var rec accessRecord
		if err != nil || json.Unmarshal(out, &rec) != nil || rec.Message != "marker "+marker {
			t.Errorf("pier logs --project obs --json: %v\n%s", err, out)
		}
		cctx, ccancel := context.WithTimeout(ctx, time.Minute)
		defer ccancel()
		cmd := exec.CommandContext(cctx, testenv.PierBinary(t), "logs", "--project", "obs", "--follow", "--q", "follow-cli",
			"--api", dev.APIURL, "--token", dev.Token)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		lines := bufio.NewScanner(stdout)
		go func() {
			time.Sleep(500 * time.Millisecond)
			readBody(t, dev.Get(t, 0, host, "/api/hello?m=follow-cli"))
		}()
		if !lines.Scan() || !strings.Contains(lines.Text(), "marker follow-cli") {
			t.Errorf("pier logs --project --follow printed %q", lines.Text())
		}
	})

	t.Run("BadQueries", func(t *testing.T) {
		for _, path := range []string{
			"/v1/projects/obs/logs?level=loud", "/v1/projects/obs/logs?limit=0", "/v1/projects/obs/logs?limit=5000",
			"/v1/projects/obs/logs?since=yesterday", "/v1/projects/obs/logs?after=-3",
			"/v1/projects/obs/metrics?step=0.5s", "/v1/projects/obs/metrics?since=30d&step=1s", "/v1/projects/obs/metrics?since=1m&until=2m",
		} {
			var e apiError
			if code := dev.API(t, "GET", path, nil, &e); code != 400 || e.Error.Message == "" {
				t.Errorf("GET %s = %d %+v, want 400 with a message", path, code, e)
			}
		}
		if code := dev.API(t, "GET", "/v1/projects/nope/logs", nil, nil); code != 404 {
			t.Errorf("logs of an unknown project = %d, want 404", code)
		}
		for _, tok := range []string{"", dev.Token} { // an API token is not a telemetry token
			req, _ := http.NewRequest("POST", dev.APIURL+"/v1/telemetry", strings.NewReader(`{"edge":"x"}`))
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readBody(t, resp)
			if resp.StatusCode != 401 {
				t.Errorf("POST /v1/telemetry with token %q = %d, want 401", tok, resp.StatusCode)
			}
		}
	})
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDevLogFlood gives each edge a tiny log buffer (100 records) and
// sends requests that each log 1,000 console lines: every request is
// answered, records beyond the buffer are dropped and counted in the
// edge's Prometheus metrics, and what was kept still reaches control.
func TestDevLogFlood(t *testing.T) {
	git := testenv.GitServer(t, gitToken)
	url, sha := git.CreateRepo(t, "flood", map[string]string{"index.html": "<h1>flood</h1>", "_worker.js": obsWorker})
	dev := testenv.StartDev(t, t.TempDir(), "--telemetry-buffer", "100")
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": "flood", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	if d := deploy(t, dev, "flood", sha, 2*time.Minute); d.State != "ready" {
		t.Fatalf("deploy: %s (%s)", d.State, d.Error)
	}
	host := "flood." + dev.BaseDomain
	warmup := 0
	testenv.WaitFor(t, 30*time.Second, "flood live", func() bool {
		resp := dev.Get(t, 0, host, "/")
		readBody(t, resp)
		if resp.Header.Get("X-Pier-Deployment") != "" {
			warmup++
		}
		return resp.StatusCode == 200
	})

	const n = 20
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range n / 4 {
				resp := dev.Get(t, 0, host, "/api/flood")
				if body := readBody(t, resp); resp.StatusCode != 200 || body != "flooded" {
					t.Errorf("GET /api/flood = %d %q", resp.StatusCode, body)
				}
			}
		})
	}
	wg.Wait()
	flood := time.Since(start)
	start = time.Now()
	resp := dev.Get(t, 0, host, "/api/status/200")
	readBody(t, resp)
	t.Logf("%d requests logging 1,000 lines each: %s; a request right after: %s", n, flood.Round(time.Millisecond), time.Since(start).Round(time.Microsecond))
	if resp.StatusCode != 200 {
		t.Errorf("a request after the flood = %d", resp.StatusCode)
	}

	metric := func(name string) float64 {
		resp := dev.Get(t, 0, "127.0.0.1", "/metrics")
		body := readBody(t, resp)
		for line := range strings.SplitSeq(body, "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				var f float64
				fmt.Sscan(v, &f)
				return f
			}
		}
		t.Fatalf("no %s in /metrics:\n%s", name, body)
		return 0
	}
	dropped := metric("pier_edge_telemetry_logs_dropped_total")
	t.Logf("dropped %.0f of %d console records", dropped, n*1000)
	if dropped < n*1000/2 || dropped > n*1000+n+1 {
		t.Errorf("dropped %.0f records; want most of the %d (the buffer holds 100)", dropped, n*1000)
	}
	testenv.WaitFor(t, time.Minute, "shipped records to reach control", func() bool {
		return metric("pier_edge_telemetry_logs_shipped_total") > 0
	})
	var out struct{ Logs []accessRecord }
	dev.API(t, "GET", "/v1/projects/flood/logs?q=flood%20line&limit=1000", nil, &out)
	if len(out.Logs) == 0 {
		t.Error("no flood line reached control")
	}
	var s series
	testenv.WaitFor(t, time.Minute, "metrics of every request", func() bool {
		dev.API(t, "GET", "/v1/projects/flood/metrics?since=10m", nil, &s)
		return s.Total.Requests >= int64(n+1+warmup)
	})
	if want := int64(n + 1 + warmup); s.Total.Requests != want || s.Total.Status["200"] != want {
		t.Errorf("metrics: %d requests %v; want %d, all 200 (metrics are never dropped)", s.Total.Requests, s.Total.Status, want)
	}
}

// TestProductionMetrics runs the split production setup (control and two
// edge processes, PostgreSQL, MinIO, Consul, Vault, Nomad): the build log
// of a Nomad build follows over SSE, and known traffic sent to each edge
// comes back merged from control with exact counts per status and edge
// and percentiles within 1 % of the edges' recorded durations.
func TestProductionMetrics(t *testing.T) {
	st := startProd(t, prodOptions{edges: 2})
	git := testenv.GitServer(t, gitToken)
	url, sha := git.CreateRepo(t, "obs", map[string]string{"index.html": "<h1>prod obs</h1>", "_worker.js": obsWorker})
	if code := st.call(t, "POST", "/v1/projects", map[string]any{"name": "obs", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	var d deployment
	if code := st.call(t, "POST", "/v1/projects/obs/deployments", map[string]string{"ref": sha}, &d); code != 201 {
		t.Fatalf("deploy: %d", code)
	}
	events := follow(t.Context(), t, st.api, st.token, "/v1/deployments/"+d.ID+"/logs?follow=1")
	var text strings.Builder
	for {
		ev := next(t, events, 4*time.Minute, "the Nomad build's end")
		if ev.Name == "end" {
			if !strings.Contains(ev.Data, `"state":"ready"`) {
				t.Fatalf("build ended %s:\n%s", ev.Data, text.String())
			}
			break
		}
		var chunk struct{ Text string }
		_ = json.Unmarshal([]byte(ev.Data), &chunk)
		text.WriteString(chunk.Text)
	}
	if !strings.Contains(text.String(), "==> pier: live at") {
		t.Errorf("the followed Nomad build log lacks the end of the deployment:\n%s", text.String())
	}
	served := 0
	get := func(addr, path string) int {
		code, _, h := edgeGet(t, addr, "obs.pier.test", path)
		if h.Get("X-Pier-Deployment") != "" {
			served++
		}
		return code
	}
	for _, e := range st.edges {
		testenv.WaitFor(t, 30*time.Second, "obs on "+e.id, func() bool { return get(e.addr, "/") == 200 })
	}
	warmup := served
	want := map[string]int64{"200": int64(warmup)}
	perEdge := []int{40, 60}
	for i, e := range st.edges {
		for k := range perEdge[i] {
			path, code := "/api/status/200", 200
			if k%4 == 3 {
				path, code = "/api/status/500", 500
			}
			if got := get(e.addr, path); got != code {
				t.Errorf("%s %s = %d, want %d", e.id, path, got, code)
			}
			want[fmt.Sprint(code)]++
		}
	}
	total := int64(warmup + 100)
	var s series
	defer func() {
		if t.Failed() {
			for _, e := range st.edges {
				_, body, _ := edgeGet(t, e.addr, "127.0.0.1", "/metrics")
				for line := range strings.SplitSeq(body, "\n") {
					if strings.HasPrefix(line, "pier_edge_telemetry") || strings.HasPrefix(line, "pier_edge_requests") {
						t.Logf("%s: %s", e.id, line)
					}
				}
			}
		}
	}()
	testenv.WaitFor(t, time.Minute, "control to hold both edges' metrics", func() bool {
		st.call(t, "GET", "/v1/projects/obs/metrics?since=10m&step=1m", nil, &s)
		return s.Total.Requests >= total
	})
	if s.Total.Requests != total || !mapsEqual(s.Total.Status, want) || !slices.Equal(s.Total.Edges, []string{"edge-a", "edge-b"}) {
		t.Errorf("total %d %v from %v; want %d %v from both edges", s.Total.Requests, s.Total.Status, s.Total.Edges, total, want)
	}
	var out struct{ Logs []accessRecord }
	st.call(t, "GET", "/v1/projects/obs/logs?limit=1000&since=10m", nil, &out)
	var ms []float64
	byEdge := map[string]int{}
	for _, r := range out.Logs {
		if r.Kind == "access" {
			ms = append(ms, float64(r.DurationUS)/1000)
			byEdge[r.Edge]++
		}
	}
	if int64(len(ms)) != total {
		t.Fatalf("%d access records (%v), want %d", len(ms), byEdge, total)
	}
	slices.Sort(ms)
	for _, c := range []struct{ q, got float64 }{{0.5, s.Total.LatencyMs.P50}, {0.95, s.Total.LatencyMs.P95}, {0.99, s.Total.LatencyMs.P99}} {
		exact := lowerQuantile(ms, c.q)
		t.Logf("p%v: sketch %.4f ms, exact %.4f ms", c.q*100, c.got, exact)
		if math.Abs(c.got-exact) > 0.01*exact+1e-9 {
			t.Errorf("p%v = %.4f ms, exact %.4f ms: off by more than 1 %%", c.q*100, c.got, exact)
		}
	}
}
