package build_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/jobs"
	"github.com/pierhq/pier/jobs/build"
)

// TestViteReact builds a real Vite + React app from tests/testdata/vite-react:
// npm install from the registry, then vite build, in the sandbox. About
// 10-20 s; skipped with -short or without npm.
func TestViteReact(t *testing.T) {
	if testing.Short() {
		t.Skip("real npm build: skipped with -short")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed")
	}
	t.Parallel()
	e := newEnv(t, "")
	sha := e.git.CopyDir(t, "vite", "../../tests/testdata/vite-react")
	cfg, _ := e.config(build.SandboxAuto)
	res, log := e.run(t, cfg, jobs.BuildRequest{
		DeploymentID: "dpl-vite", RepoURL: e.git.RepoURL("vite"), Ref: "main", Timeout: 5 * time.Minute,
	})
	wantOK(t, res)
	if res.CommitSHA != sha || res.Framework != build.FrameworkVite {
		t.Fatalf("commit %s framework %q; want %s vite", res.CommitSHA, res.Framework, sha)
	}
	for _, want := range []string{"==> Running install", "npm install --no-audit --no-fund", "vite build", "==> Deployed"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	m := e.manifest(t, "dpl-vite")
	if !m.SPA || m.NotFound != "" {
		t.Errorf("SPA %v NotFound %q; want a SPA without a 404 page", m.SPA, m.NotFound)
	}
	index, ok := m.Files["index.html"]
	if !ok || index.Type != "text/html; charset=utf-8" {
		t.Fatalf("index.html: %+v, present %v", index, ok)
	}
	if !strings.Contains(string(e.blob(t, index.SHA256)), "/assets/") {
		t.Error("index.html does not reference the built assets")
	}
	var js int
	for name, f := range m.Files {
		if strings.HasPrefix(name, "assets/") && strings.HasSuffix(name, ".js") {
			js++
			if f.Type != "text/javascript; charset=utf-8" || f.Brotli == nil || f.Gzip == nil || f.Brotli.Size >= f.Gzip.Size {
				t.Errorf("%s: %+v; want javascript with brotli smaller than gzip", name, f)
			}
		}
	}
	if js == 0 {
		t.Fatalf("no assets/*.js in %d files", len(m.Files))
	}
}
