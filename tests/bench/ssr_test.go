// Package bench compares Pier's edge runtime with other JavaScript
// runtimes on the same bundle. It holds benchmarks only, never timed tests:
//
//	go test -run '^$' -bench SSR -benchtime 1x ./tests/bench
//
// BenchmarkSSR installs workerd (Cloudflare's runtime, npm package
// workerd) into a temporary directory, builds the React renderToString
// page of edge/isolate/testdata/bundles with esbuild, serves it from
// workerd (a minimal capnp config on 127.0.0.1) and from two Pier edges (on
// the embedded backends; one with the default CPU gate, one without),
// drives all of them with the same Go HTTP load loop (1 and 8 clients, then
// a second 8-client pass) and prints warm p50/p99 latency and requests/s
// side by side, plus Pier's cold start for the ~218 KB bundle. It needs node and npm; the figures
// are in docs/runtime.md.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/edge/cache/cachetest"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/raftkv"
	"github.com/pierhq/pier/edge/edged"
	"github.com/pierhq/pier/edge/edged/edgedtest"
	"github.com/pierhq/pier/edge/isolate"
	"github.com/pierhq/pier/tests/testenv"
)

// workerdVersion is the npm version of workerd compared against.
const workerdVersion = "1.20261117.1"

// Load shape: every level sends at most requests requests and runs at most
// maxTime, after warmup requests that are not measured.
const (
	warmup   = 300
	requests = 4000
	maxTime  = 15 * time.Second
)

var levels = []int{1, 8} // concurrent clients

var bundles edgedtest.Bundles

func TestMain(m *testing.M) {
	code := m.Run()
	bundles.Cleanup()
	testenv.StopAll()
	os.Exit(code)
}

func BenchmarkSSR(b *testing.B) {
	bundle := bundles.Get(b, edgedtest.React)
	dir := b.TempDir()
	bundlePath := filepath.Join(dir, "react.js")
	if err := os.WriteFile(bundlePath, bundle, 0o644); err != nil {
		b.Fatal(err)
	}

	pier := startPier(b, bundle, 0)
	ungated := startPier(b, bundle, -1)
	workerd := startWorkerd(b, dir, bundlePath)
	floor := startFloor(b, pier)

	// The page's own render, in one isolate without HTTP: the floor Pier's
	// HTTP path adds its overhead to.
	direct, cold := measureIsolate(b, bundle)

	b.ResetTimer()
	type row struct {
		name string
		res  []result
	}
	rows := []row{
		{"pier edge", nil},
		{"workerd " + workerdVersion, nil},
		{"pier edge, no CPU gate", nil},
		{"Go net/http, fixed page (HTTP floor)", nil},
	}
	targets := []target{pier, workerd, ungated, floor}
	for _, c := range levels {
		for i, tg := range targets {
			rows[i].res = append(rows[i].res, load(b, tg, c))
		}
	}
	// A second pass at the highest concurrency: by then each of Pier's
	// isolates (one per concurrent request) has served its share of the
	// first pass, so its JIT is as warm as workerd's single isolate.
	top := levels[len(levels)-1]
	for i, tg := range targets {
		rows[i].res = append(rows[i].res, load(b, tg, top))
	}
	b.StopTimer()
	passes := append(slices.Clone(levels), top)
	label := func(i int) string {
		if i >= len(levels) {
			return fmt.Sprintf("%d, 2nd", top)
		}
		return fmt.Sprint(levels[i])
	}

	var out strings.Builder
	fmt.Fprintf(&out, "\nReact renderToString page, %d KB bundle, %d requests or %s per level after %d warm-up requests, loopback\n",
		len(bundle)>>10, requests, maxTime, warmup)
	fmt.Fprintf(&out, "%-40s %8s %10s %10s %10s\n", "runtime", "clients", "p50", "p99", "req/s")
	for _, r := range rows {
		for i := range passes {
			res := r.res[i]
			fmt.Fprintf(&out, "%-40s %8s %10s %10s %10.0f\n", r.name, label(i), ms(res.p50), ms(res.p99), res.rps)
		}
	}
	for i := range passes {
		p, w := rows[0].res[i], rows[1].res[i]
		fmt.Fprintf(&out, "pier/workerd at %s clients: p50 %.2fx, p99 %.2fx, throughput %.2fx\n",
			label(i), ratio(p.p50, w.p50), ratio(p.p99, w.p99), p.rps/w.rps)
	}
	for i := range passes {
		p, u := rows[0].res[i], rows[2].res[i]
		fmt.Fprintf(&out, "pier with/without the CPU gate at %s clients: p99 %.2fx, throughput %.2fx\n",
			label(i), ratio(p.p99, u.p99), p.rps/u.rps)
	}
	fmt.Fprintf(&out, "render in the isolate, no HTTP (Runtime.Serve): p50 %s, p99 %s\n", ms(direct.p50), ms(direct.p99))
	fmt.Fprintf(&out, "pier platform overhead over the render (1 client, p50): %s\n", ms(rows[0].res[0].p50-direct.p50))
	fmt.Fprintf(&out, "pier cold start (isolate.New from the code cache): p50 %s, p99 %s over %d starts\n", ms(cold.p50), ms(cold.p99), cold.n)
	// Printed, not logged: benchmark logs are cut after ten lines.
	fmt.Print(out.String())

	b.ReportMetric(float64(rows[0].res[0].p50.Microseconds()), "pier-p50-µs")
	b.ReportMetric(float64(rows[1].res[0].p50.Microseconds()), "workerd-p50-µs")
	b.ReportMetric(rows[0].res[len(levels)-1].rps/rows[1].res[len(levels)-1].rps, "throughput-ratio")
	b.ReportMetric(float64(cold.p50.Microseconds()), "cold-start-µs")
}

type target struct {
	name string
	url  string // the page
	host string // Host header ("" for the URL's)
}

// startPier runs an edge on the embedded backends with the bundle as the
// server entry of project "bench", live. cpuSlots is the edge's
// Isolates.CPUSlots: 0 for the default gate (GOMAXPROCS), -1 for none.
func startPier(b *testing.B, bundle []byte, cpuSlots int) target {
	kv, err := raftkv.Open(raftkv.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { kv.Close() })
	blobs, err := dirblob.New(filepath.Join(b.TempDir(), "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	c := coord.New(coord.Config{ReadyTimeout: time.Minute}, kv)
	e, err := edged.New(edged.Config{ID: "edge-bench", Addr: "127.0.0.1:0", BaseDomain: "localhost",
		CacheDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler), Isolates: edged.IsolatesConfig{CPUSlots: cpuSlots}},
		edged.Deps{Coord: c, Blobs: blobs})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-e.Ready():
	case <-time.After(time.Minute):
		b.Fatal("edge not ready")
	}
	m := edgedtest.PublishCode(b, blobs, edgedtest.Code{
		Deployment: cachetest.Deployment{ID: "dpl-bench", ProjectID: "prj-bench", ProjectName: "bench",
			Files: map[string]cachetest.File{"server.js": {Body: string(bundle)}}},
		Server: "server.js",
	})
	if _, err := c.Promote(context.Background(), coord.PromoteRequest{ProjectID: m.ProjectID, ProjectName: m.ProjectName,
		Environment: edged.Production, DeploymentID: m.DeploymentID}); err != nil {
		b.Fatal(err)
	}
	tg := target{name: "pier", url: "http://" + e.Addr() + "/bench", host: "bench.localhost"}
	waitPage(b, tg)
	return tg
}

// startWorkerd installs workerd from npm and serves the bundle with a
// minimal config.
func startWorkerd(b *testing.B, dir, bundlePath string) target {
	npm, err := exec.LookPath("npm")
	if err != nil {
		testenv.Unavailable(b, "npm not found: the benchmark installs workerd from npm")
	}
	wd := filepath.Join(dir, "workerd")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := edgedtest.Run(wd, npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "workerd@"+workerdVersion); err != nil {
		testenv.Unavailable(b, "install workerd: %v", err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	rel, err := filepath.Rel(wd, bundlePath) // embed paths are relative to the config file
	if err != nil {
		b.Fatal(err)
	}
	// React's scheduler wants MessageChannel, which workerd exposes behind a flag.
	config := fmt.Sprintf(`using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .page) ],
  sockets = [ (name = "http", address = "127.0.0.1:%d", http = (), service = "main") ],
);
const page :Workerd.Worker = (
  modules = [ (name = "react.js", esModule = embed %q) ],
  compatibilityDate = "2025-01-01",
  compatibilityFlags = ["expose_global_message_channel"],
);
`, port, rel)
	cfgPath := filepath.Join(wd, "config.capnp")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		b.Fatal(err)
	}
	srv, err := testenv.StartServer("workerd", []string{filepath.Join(wd, "node_modules", ".bin", "workerd"), "serve", cfgPath}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	tg := target{name: "workerd", url: fmt.Sprintf("http://127.0.0.1:%d/bench", port)}
	if err := srv.WaitHTTP(tg.url, time.Minute, nil); err != nil {
		b.Fatal(err)
	}
	waitPage(b, tg)
	return tg
}

// startFloor serves the page Pier renders as a fixed body from a plain Go
// handler: the cost of loopback HTTP and the load loop alone.
func startFloor(b *testing.B, pier target) target {
	page := fetchPage(b, pier)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return target{name: "floor", url: "http://" + ln.Addr().String() + "/bench"}
}

func waitPage(b *testing.B, tg target) {
	deadline := time.Now().Add(time.Minute)
	for {
		body, err := get(http.DefaultClient, tg)
		if err == nil && strings.Contains(body, "Hello from <!-- -->/bench") {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s never served the page: %v %q", tg.name, err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fetchPage(b *testing.B, tg target) string {
	body, err := get(http.DefaultClient, tg)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func get(c *http.Client, tg target) (string, error) {
	req, err := http.NewRequest(http.MethodGet, tg.url, nil)
	if err != nil {
		return "", err
	}
	if tg.host != "" {
		req.Host = tg.host
	}
	res, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", res.StatusCode)
	}
	return string(body), err
}

type result struct {
	n        int
	p50, p99 time.Duration
	rps      float64
}

// load sends requests to tg from clients concurrent clients on kept-alive
// connections, bounded in count and time, and fails on any error.
func load(b *testing.B, tg target, clients int) result {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	// Warm up at the measured concurrency, so that Pier has started its
	// isolates (one per concurrent request) before the clock runs.
	var wu sync.WaitGroup
	for range clients {
		wu.Go(func() {
			for range warmup / clients {
				if _, err := get(c, tg); err != nil {
					b.Errorf("%s warm-up: %v", tg.name, err)
					return
				}
			}
		})
	}
	wu.Wait()
	if b.Failed() {
		b.FailNow()
	}
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, requests)
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan struct{}, requests)
	)
	for range requests {
		next <- struct{}{}
	}
	close(next)
	stop := time.Now().Add(maxTime)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			mine := make([]time.Duration, 0, requests/clients+1)
			for range next {
				if time.Now().After(stop) {
					break
				}
				t0 := time.Now()
				if _, err := get(c, tg); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	took := time.Since(start)
	if firstErr != nil {
		b.Fatalf("%s under load: %v", tg.name, firstErr)
	}
	return summarize(lat, took)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func summarize(lat []time.Duration, took time.Duration) result {
	slices.Sort(lat)
	r := result{n: len(lat)}
	if len(lat) == 0 {
		return r
	}
	r.p50 = lat[len(lat)/2]
	r.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	if took > 0 {
		r.rps = float64(len(lat)) / took.Seconds()
	}
	return r
}

// measureIsolate times the render through Runtime.Serve (one warm isolate,
// no HTTP) and cold starts of new isolates from the compiled script.
func measureIsolate(b *testing.B, bundle []byte) (warm, cold result) {
	script, err := isolate.Compile(context.Background(), "react.js", bundle)
	if err != nil {
		b.Fatal(err)
	}
	cfg := isolate.DefaultConfig()
	var starts []time.Duration
	for range 40 {
		t0 := time.Now()
		rt, err := isolate.New(cfg, script, nil)
		if err != nil {
			b.Fatal(err)
		}
		starts = append(starts, time.Since(t0))
		rt.Close()
	}
	cold = summarize(starts, 0)

	rt, err := isolate.New(cfg, script, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	var lat []time.Duration
	for i := range warmup + requests {
		req, _ := http.NewRequest(http.MethodGet, "http://bench.localhost/bench", nil)
		t0 := time.Now()
		if _, err := rt.Serve(context.Background(), req, "bench"); err != nil {
			b.Fatal(err)
		}
		if i >= warmup {
			lat = append(lat, time.Since(t0))
		}
	}
	return summarize(lat, 0), cold
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
