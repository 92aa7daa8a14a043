// Package bench compares Pier's edge runtime with other JavaScript
// runtimes on the same bundle. It holds benchmarks only, never timed tests:
//
//	go test -run '^$' -bench SSR -benchtime 1x ./tests/bench
//
// BenchmarkSSR builds the React renderToString page of
// edge/isolate/testdata/bundles with esbuild and serves it from two
// separate processes: the real pier binary (`pier dev` on the embedded
// backends, the bundle deployed through the control API as a repository
// whose _worker.js is the page), workerd (Cloudflare's runtime, npm
// package workerd, a minimal capnp config on 127.0.0.1) and Deno (npm
// package deno, the handler under Deno.serve). This process only
// generates load: the same Go HTTP loop drives all three (1 and 8 clients, then
// a second 8-client pass) and the benchmark prints warm p50/p99 latency,
// requests/s, the CPU time and the context switches each server process
// spent per request, side by side, plus Pier's cold start for the ~218 KB bundle. It needs git,
// node and npm; the figures are in docs/runtime.md.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/edged/edgedtest"
	"github.com/pierhq/pier/edge/isolate"
	"github.com/pierhq/pier/tests/testenv"
)

// The npm versions of the runtimes compared against.
const (
	workerdVersion = "1.20261117.1"
	denoVersion    = "2.9.5"
)

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

	pier := startPier(b, bundle)
	workerd := startWorkerd(b, dir, bundlePath)
	deno := startDeno(b, dir, bundlePath)
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
		{"pier edge (pier dev process)", nil},
		{"workerd " + workerdVersion, nil},
		{"deno " + denoVersion + " (Deno.serve)", nil},
		{"Go net/http, fixed page (HTTP floor)", nil},
	}
	targets := []target{pier, workerd, deno, floor}
	for _, c := range levels {
		for i, tg := range targets {
			rows[i].res = append(rows[i].res, load(b, tg, c))
		}
	}
	// A second pass at the highest concurrency: by then every isolate Pier
	// uses has served its share of the first pass.
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
	fmt.Fprintf(&out, "%-40s %8s %10s %10s %10s %14s %10s\n", "runtime", "clients", "p50", "p99", "req/s", "server CPU/req", "switch/req")
	for _, r := range rows {
		for i := range passes {
			res := r.res[i]
			cpu := "-"
			if res.cpu > 0 {
				cpu = ms(res.cpu)
			}
			sw := "-"
			if res.switches > 0 {
				sw = fmt.Sprintf("%.1f", res.switches)
			}
			fmt.Fprintf(&out, "%-40s %8s %10s %10s %10.0f %14s %10s\n", r.name, label(i), ms(res.p50), ms(res.p99), res.rps, cpu, sw)
		}
	}
	for _, other := range []int{1, 2} {
		name := strings.Fields(rows[other].name)[0]
		for i := range passes {
			p, w := rows[0].res[i], rows[other].res[i]
			fmt.Fprintf(&out, "pier/%s at %s clients: p50 %.2fx, p99 %.2fx, throughput %.2fx, CPU per request %.2fx\n",
				name, label(i), ratio(p.p50, w.p50), ratio(p.p99, w.p99), p.rps/w.rps, ratio(p.cpu, w.cpu))
		}
	}
	fmt.Fprintf(&out, "render in the isolate, no HTTP (Runtime.Serve): p50 %s, p99 %s\n", ms(direct.p50), ms(direct.p99))
	fmt.Fprintf(&out, "pier platform overhead over the render (1 client, p50): %s\n", ms(rows[0].res[0].p50-direct.p50))
	fmt.Fprintf(&out, "pier cold start (isolate.New from the code cache): p50 %s, p99 %s over %d starts\n", ms(cold.p50), ms(cold.p99), cold.n)
	if st, err := edgeStats(pier); err == nil {
		fmt.Fprintf(&out, "pier edge /stats after the run: %s\n", st)
	}
	// Printed, not logged: benchmark logs are cut after ten lines.
	fmt.Print(out.String())

	b.ReportMetric(float64(rows[0].res[0].p50.Microseconds()), "pier-p50-µs")
	b.ReportMetric(float64(rows[1].res[0].p50.Microseconds()), "workerd-p50-µs")
	b.ReportMetric(rows[0].res[len(levels)-1].rps/rows[1].res[len(levels)-1].rps, "throughput-ratio")
	b.ReportMetric(float64(cold.p50.Microseconds()), "cold-start-µs")
}

type target struct {
	name  string
	url   string // the page
	host  string // Host header ("" for the URL's)
	pid   int    // the server process, for its CPU time (0: this process)
	stats string // the edge's /stats URL, if any
}

// startPier runs the real pier binary (`pier dev`, embedded backends, a
// separate process) and deploys the bundle as the server entry
// (_worker.js) of project "bench" through the control API, from a git
// repository, the way a user deploys.
func startPier(b *testing.B, bundle []byte) target {
	const token = "bench-git-token"
	git := testenv.GitServer(b, token)
	// The index.html only makes the build see a static site; /bench is
	// not a file, so the server entry answers it.
	url, sha := git.CreateRepo(b, "bench", map[string]string{"_worker.js": string(bundle), "index.html": "<h1>bench</h1>"})
	// The last --log-level wins: StartDev asks for debug, which would log
	// every request. The functions API is off (it listens on a fixed port).
	// PIER_BENCH_ENV ("GOGC=200 GOMAXPROCS=1") adds environment variables
	// to the pier process only: for experiments with the Go runtime's
	// settings, without touching the load generator or the other servers.
	for _, kv := range strings.Fields(os.Getenv("PIER_BENCH_ENV")) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			b.Setenv(k, v)
		}
	}
	dev := testenv.StartDev(b, b.TempDir(), "--log-level", "warn", "--functions-addr", "")
	for _, kv := range strings.Fields(os.Getenv("PIER_BENCH_ENV")) {
		if k, _, ok := strings.Cut(kv, "="); ok {
			os.Unsetenv(k)
		}
	}
	if code := dev.API(b, "POST", "/v1/projects", map[string]any{"name": "bench", "repo_url": url, "git_token": token}, nil); code != http.StatusCreated {
		b.Fatalf("create project: status %d", code)
	}
	var d struct{ ID, State, Error string }
	if code := dev.API(b, "POST", "/v1/projects/bench/deployments", map[string]string{"ref": sha}, &d); code != http.StatusCreated {
		b.Fatalf("create deployment: status %d", code)
	}
	testenv.WaitFor(b, 3*time.Minute, "deployment "+d.ID, func() bool {
		dev.API(b, "GET", "/v1/deployments/"+d.ID, nil, &d)
		return d.State == "ready" || d.State == "failed" || d.State == "canceled"
	})
	if d.State != "ready" {
		b.Fatalf("deployment %s: %s (%s)", d.ID, d.State, d.Error)
	}
	tg := target{name: "pier", url: dev.EdgeURLs[0] + "/bench", host: "bench." + dev.BaseDomain, pid: dev.PID,
		stats: dev.EdgeURLs[0] + "/stats"}
	waitPage(b, tg)
	return tg
}

// edgeStats returns the isolate counters of the edge's /stats.
func edgeStats(tg target) (string, error) {
	body, err := get(http.DefaultClient, target{url: tg.stats})
	if err != nil {
		return "", err
	}
	var st struct {
		Isolates json.RawMessage `json:"isolates"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return "", err
	}
	return string(st.Isolates), nil
}

// startWorkerd installs workerd from npm and serves the bundle with a
// minimal config.
func startWorkerd(b *testing.B, dir, bundlePath string) target {
	wd := npmInstall(b, dir, "workerd", workerdVersion)
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
	tg := target{name: "workerd", url: fmt.Sprintf("http://127.0.0.1:%d/bench", port), pid: srv.Pid()}
	if err := srv.WaitHTTP(tg.url, time.Minute, nil); err != nil {
		b.Fatal(err)
	}
	waitPage(b, tg)
	return tg
}

// npmInstall installs name@version from npm into dir/name and returns
// that directory.
func npmInstall(b *testing.B, dir, name, version string) string {
	npm, err := exec.LookPath("npm")
	if err != nil {
		testenv.Unavailable(b, "npm not found: the benchmark installs %s from npm", name)
	}
	wd := filepath.Join(dir, name)
	if err := os.MkdirAll(wd, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := edgedtest.Run(wd, npm, "install", "--no-audit", "--no-fund", "--loglevel=error", name+"@"+version); err != nil {
		testenv.Unavailable(b, "install %s: %v", name, err)
	}
	return wd
}

// startDeno installs Deno from npm and serves the bundle's fetch handler
// with Deno.serve, the way a Workers-style module runs on Deno.
func startDeno(b *testing.B, dir, bundlePath string) target {
	wd := npmInstall(b, dir, "deno", denoVersion)
	port, err := testenv.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	main := filepath.Join(wd, "main.js")
	src := fmt.Sprintf(`import page from %q;
const ctx = { waitUntil() {}, passThroughOnException() {} };
Deno.serve({ hostname: "127.0.0.1", port: %d, onListen() {} }, (req) => page.fetch(req, {}, ctx));
`, "file://"+bundlePath, port)
	if err := os.WriteFile(main, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	srv, err := testenv.StartServer("deno", []string{filepath.Join(wd, "node_modules", ".bin", "deno"), "run",
		fmt.Sprintf("--allow-net=127.0.0.1:%d", port), "--no-prompt", main},
		[]string{"DENO_NO_UPDATE_CHECK=1", "DENO_DIR=" + filepath.Join(wd, "cache"), "NO_COLOR=1"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	tg := target{name: "deno", url: fmt.Sprintf("http://127.0.0.1:%d/bench", port), pid: srv.Pid()}
	if err := srv.WaitHTTP(tg.url, time.Minute, nil); err != nil {
		b.Fatalf("deno: %v\n%s", err, srv.Log())
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
	cpu      time.Duration // server CPU time (user + system) per request; 0 if not measured
	switches float64       // server context switches (voluntary + not) per request; 0 if not measured
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
	cpu0, sw0 := groupCPU(tg.pid), groupSwitches(tg.pid)
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
	cpu1, sw1 := groupCPU(tg.pid), groupSwitches(tg.pid)
	if firstErr != nil {
		b.Fatalf("%s under load: %v", tg.name, firstErr)
	}
	res := summarize(lat, took)
	if cpu1 > cpu0 && res.n > 0 {
		res.cpu = (cpu1 - cpu0) / time.Duration(res.n)
	}
	if sw1 > sw0 && res.n > 0 {
		res.switches = float64(sw1-sw0) / float64(res.n)
	}
	return res
}

// groupSwitches is the number of context switches (voluntary and
// involuntary) of the live threads of the processes in the process group
// pgid, from /proc/<pid>/task/<tid>/status; 0 for pgid 0. Every switch is
// a thread that went to sleep or was preempted: on a VM, waking a thread
// on another core costs tens of microseconds of CPU.
func groupSwitches(pgid int) int64 {
	if pgid == 0 {
		return 0
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var n int64
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		if pg, err := syscall.Getpgid(mustAtoi(d.Name())); err != nil || pg != pgid {
			continue
		}
		tasks, _ := os.ReadDir(filepath.Join("/proc", d.Name(), "task"))
		for _, t := range tasks {
			raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "task", t.Name(), "status"))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(raw), "\n") {
				if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
					x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					n += x
				} else if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
					x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					n += x
				}
			}
		}
	}
	return n
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// groupCPU is the CPU time (user + system) spent so far by the processes
// of the process group pgid (the server and any children it started, e.g.
// workerd's npm launcher and the binary it runs), from /proc. It returns 0
// for pgid 0 or where /proc is missing.
func groupCPU(pgid int) time.Duration {
	if pgid == 0 {
		return 0
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name (field 2) may hold spaces: fields count from
		// the last ')'.
		i := strings.LastIndexByte(string(raw), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(raw[i+1:]))
		// f[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
		if len(f) < 13 {
			continue
		}
		if pg, _ := strconv.Atoi(f[2]); pg != pgid {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	// USER_HZ is 100 on every Linux build Go supports.
	return time.Duration(ticks) * (time.Second / 100)
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
