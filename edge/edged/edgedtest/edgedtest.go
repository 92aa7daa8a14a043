// Package edgedtest is test support for deployments with server code:
// real JavaScript bundles (a Hono app and a React renderToString page,
// from edge/isolate/testdata/bundles, built with npm and esbuild at the
// versions its package-lock.json pins) and PublishCode, which stores a
// deployment with a server entry and functions the way jobs/build does.
//
// Only tests and benchmarks import it. Imports: edge, edge/cache/cachetest.
package edgedtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/cache/cachetest"
)

// Bundle names.
const (
	Hono  = "hono"  // edge/isolate/testdata/bundles/src/hono.js
	React = "react" // edge/isolate/testdata/bundles/src/react.jsx (~218 KB minified)
)

// Bundles builds the real bundles once per process (npm ci and esbuild in
// a temporary directory, about 4 s with a warm npm cache). Call Cleanup
// from TestMain to remove the directory.
type Bundles struct {
	once  sync.Once
	dir   string
	skip  string
	err   error
	files map[string][]byte
}

// Get returns the bundle called name (Hono, React). It skips the test
// when npm is missing, unless PIER_REQUIRE_SERVERS=1.
func (b *Bundles) Get(t testing.TB, name string) []byte {
	t.Helper()
	b.once.Do(b.build)
	if b.skip != "" {
		if os.Getenv("PIER_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%s (PIER_REQUIRE_SERVERS=1)", b.skip)
		}
		t.Skip(b.skip)
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	src, ok := b.files[name]
	if !ok {
		t.Fatalf("no bundle %q", name)
	}
	return src
}

// NodeModules returns the node_modules directory of the build (esbuild
// is in its .bin), or "" before a successful Get.
func (b *Bundles) NodeModules() string {
	if b.dir == "" || b.err != nil || b.skip != "" {
		return ""
	}
	return filepath.Join(b.dir, "node_modules")
}

// Cleanup removes the build directory.
func (b *Bundles) Cleanup() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// sourceDir is edge/isolate/testdata/bundles, found from this file.
func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "isolate", "testdata", "bundles")
}

func (b *Bundles) build() {
	npm, err := exec.LookPath("npm")
	if err != nil {
		b.skip = "npm not found: the bundle tests need node and npm"
		return
	}
	if b.dir, b.err = os.MkdirTemp("", "pier-edged-bundles-"); b.err != nil {
		return
	}
	src := sourceDir()
	for _, p := range []string{"package.json", "package-lock.json", "src/hono.js", "src/react.jsx"} {
		data, err := os.ReadFile(filepath.Join(src, p))
		if err != nil {
			b.err = err
			return
		}
		dst := filepath.Join(b.dir, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			b.err = err
			return
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			b.err = err
			return
		}
	}
	if b.err = Run(b.dir, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"); b.err != nil {
		return
	}
	esbuild := filepath.Join(b.dir, "node_modules", ".bin", "esbuild")
	b.files = map[string][]byte{}
	for name, entry := range map[string]string{Hono: "src/hono.js", React: "src/react.jsx"} {
		out := filepath.Join("out", name+".js")
		if b.err = Run(b.dir, esbuild, entry, "--outfile="+out, "--jsx=automatic", "--bundle", "--minify",
			"--format=esm", "--platform=browser", `--define:process.env.NODE_ENV="production"`); b.err != nil {
			return
		}
		if b.files[name], b.err = os.ReadFile(filepath.Join(b.dir, out)); b.err != nil {
			return
		}
	}
}

// Run runs a command in dir (bounded to three minutes) and returns an
// error carrying its output when it fails.
func Run(dir, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return nil
}

// Code is a deployment with server code.
type Code struct {
	cachetest.Deployment
	// Server is the manifest path of the server entry ("" for none); it
	// must be a key of Files.
	Server string
	// Functions maps routes to manifest paths of Files.
	Functions map[string]string
}

// PublishCode stores dep's blobs and then its manifest (with the server
// entry and functions marked) in dst, and returns the manifest.
func PublishCode(t testing.TB, dst cachetest.Putter, dep Code) *edge.Manifest {
	t.Helper()
	m, blobs := cachetest.Build(dep.Deployment)
	if dep.Server != "" {
		m.Server = &edge.ServerEntry{Entry: dep.Server}
	}
	m.Functions = dep.Functions
	if _, ok := m.Files[dep.Server]; dep.Server != "" && !ok {
		t.Fatalf("server entry %q is not among the files", dep.Server)
	}
	for route, f := range dep.Functions {
		if err := edge.ValidRoute(route); err != nil {
			t.Fatal(err)
		}
		if _, ok := m.Files[f]; !ok {
			t.Fatalf("function file %q is not among the files", f)
		}
	}
	ctx := context.Background()
	for h, b := range blobs {
		if err := dst.Put(ctx, edge.BlobKey(h), bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatalf("publish blob: %v", err)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("publish manifest: %v", err)
	}
	if err := dst.Put(ctx, edge.ManifestKey(m.DeploymentID), bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("publish manifest: %v", err)
	}
	return m
}
