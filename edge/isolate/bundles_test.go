package isolate

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixtures builds the real bundles of testdata/bundles once per test binary:
// npm ci (esbuild, hono, react, react-dom at the versions of package.json)
// in a temporary directory, then esbuild.
var fixtures = &bundleFixtures{}

type bundleFixtures struct {
	once    sync.Once
	dir     string
	skip    string
	err     error
	bundles map[string][]byte
}

func (f *bundleFixtures) cleanup() {
	if f.dir != "" {
		os.RemoveAll(f.dir)
	}
}

// get returns the bundle called name ("hono", "react"), skipping the test
// when npm is missing unless PIER_REQUIRE_SERVERS=1.
func (f *bundleFixtures) get(t testing.TB, name string) []byte {
	t.Helper()
	f.once.Do(f.build)
	if f.skip != "" {
		if os.Getenv("PIER_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%s (PIER_REQUIRE_SERVERS=1)", f.skip)
		}
		t.Skip(f.skip)
	}
	if f.err != nil {
		t.Fatal(f.err)
	}
	return f.bundles[name]
}

func (f *bundleFixtures) build() {
	npm, err := exec.LookPath("npm")
	if err != nil {
		f.skip = "npm not found: the Hono and React bundle tests need node and npm"
		return
	}
	dir, err := os.MkdirTemp("", "pier-isolate-bundles-")
	if err != nil {
		f.err = err
		return
	}
	f.dir = dir
	for _, p := range []string{"package.json", "package-lock.json", "src/hono.js", "src/react.jsx"} {
		b, err := os.ReadFile(filepath.Join("testdata", "bundles", p))
		if err != nil {
			f.err = err
			return
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			f.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			f.err = err
			return
		}
	}
	run := func(name string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return &exec.Error{Name: name + " " + strings.Join(args, " ") + ": " + out.String(), Err: err}
		}
		return nil
	}
	if err := run(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"); err != nil {
		f.err = err
		return
	}
	esbuild := filepath.Join(dir, "node_modules", ".bin", "esbuild")
	common := []string{"--bundle", "--minify", "--format=esm", "--platform=browser", "--define:process.env.NODE_ENV=\"production\""}
	f.bundles = map[string][]byte{}
	for name, src := range map[string]string{"hono": "src/hono.js", "react": "src/react.jsx"} {
		out := filepath.Join("out", name+".js")
		args := append([]string{src, "--outfile=" + out, "--jsx=automatic"}, common...)
		if err := run(esbuild, args...); err != nil {
			f.err = err
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, out))
		if err != nil {
			f.err = err
			return
		}
		f.bundles[name] = b
	}
}

func TestHonoBundle(t *testing.T) {
	src := fixtures.get(t, "hono")
	logs := &logSink{}
	r, err := New(testConfig(t, logs), compile(t, "hono.js", string(src)), map[string]string{"GREETING": "ahoy"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	tests := []struct {
		name, method, target, body string
		status                     int
		want                       string
	}{
		{"text", "GET", "http://app.example/", "", 200, "hello hono"},
		{"params query env", "GET", "http://app.example/json/ada?q=1", "", 200, `{"name":"ada","q":"1","greeting":"ahoy"}`},
		{"post json", "POST", "http://app.example/echo", `{"n":[1,2]}`, 201, `{"got":{"n":[1,2]},"type":"application/json"}`},
		{"not found", "GET", "http://app.example/nope", "", 404, "nothing here"},
		{"console", "GET", "http://app.example/log", "", 200, "logged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(tt.method, tt.target, tt.body)
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			res, err := r.Serve(context.Background(), req, "hono-"+tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.status || string(res.Body) != tt.want {
				t.Errorf("got %d %q, want %d %q", res.Status, res.Body, tt.status, tt.want)
			}
		})
	}
	found := false
	for _, e := range logs.all() {
		found = found || (e.RequestID == "hono-console" && e.Message == "hono log /log")
	}
	if !found {
		t.Errorf("console output not captured with its request id: %+v", logs.all())
	}
}

func TestReactBundle(t *testing.T) {
	src := fixtures.get(t, "react")
	s := compile(t, "react.js", string(src))
	t.Logf("react bundle: %d bytes, code cache %d bytes, compile %v", len(src), s.CodeCacheBytes(), s.CompileTime())
	r, err := New(testConfig(t, nil), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	t.Logf("cold start with code cache: %v", r.Stats().ColdStart)
	if r.vm.cacheRejected != 0 {
		t.Errorf("%d code caches rejected", r.vm.cacheRejected)
	}
	for _, path := range []string{"/", "/blog/hello"} {
		res := mustServe(t, r, "GET", "http://app.example"+path, "")
		body := string(res.Body)
		if res.Status != 200 || !strings.HasPrefix(body, "<!doctype html><html>") ||
			!strings.Contains(body, "<h1>Hello from <!-- -->"+path+"</h1>") || strings.Count(body, "<li>") != 20 {
			t.Errorf("GET %s: %d %q", path, res.Status, body)
		}
		if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
			t.Errorf("content-type %q", got)
		}
	}
}

// TestBundleRuntimesIndependent: many Runtimes from one Script (what the
// warm pool does) each serve correctly.
func TestBundleRuntimesIndependent(t *testing.T) {
	s := compile(t, "hono.js", string(fixtures.get(t, "hono")))
	for i := range 3 {
		env := map[string]string{"GREETING": strings.Repeat("x", i+1)}
		r, err := New(testConfig(t, nil), s, env)
		if err != nil {
			t.Fatal(err)
		}
		res := mustServe(t, r, "GET", "http://a.example/json/n", "")
		var got struct{ Greeting string }
		if err := json.Unmarshal(res.Body, &got); err != nil || got.Greeting != env["GREETING"] {
			t.Errorf("runtime %d: %s (%v)", i, res.Body, err)
		}
		r.Close()
	}
}

func BenchmarkReactColdStart(b *testing.B) {
	s := compile(b, "react.js", string(fixtures.get(b, "react")))
	cfg := testConfig(b, nil)
	b.ResetTimer()
	for b.Loop() {
		r, err := New(cfg, s, nil)
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

func BenchmarkReactWarmServe(b *testing.B) {
	r, err := New(testConfig(b, nil), compile(b, "react.js", string(fixtures.get(b, "react"))), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Serve(context.Background(), newRequest("GET", "http://a.example/p", ""), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHonoWarmServe(b *testing.B) {
	r, err := New(testConfig(b, nil), compile(b, "hono.js", string(fixtures.get(b, "hono"))), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Serve(context.Background(), newRequest("GET", "http://a.example/json/x?q=1", ""), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}
