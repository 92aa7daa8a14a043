package build_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/jobs"
	"github.com/pierhq/pier/jobs/build"
	"github.com/pierhq/pier/tests/testenv"
)

var _ build.Uploader = (*dirblob.Store)(nil)

// syncBuffer is a build log sink the test can read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	git   *testenv.Git
	store *dirblob.Store
	work  string
}

func newEnv(t *testing.T, token string) *env {
	t.Helper()
	store, err := dirblob.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return &env{git: testenv.GitServer(t, token), store: store, work: t.TempDir()}
}

func (e *env) config(sandbox string) (build.Config, *syncBuffer) {
	log := new(syncBuffer)
	return build.Config{WorkDir: e.work, Sandbox: sandbox, Log: log}, log
}

// run builds req with the default sandbox, checks the work dir is left
// empty, and returns the result and the build log.
func (e *env) run(t *testing.T, cfg build.Config, req jobs.BuildRequest) (*jobs.BuildResult, string) {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = new(syncBuffer)
	}
	res := build.Run(t.Context(), cfg, e.store, req)
	log := cfg.Log.(*syncBuffer).String()
	t.Logf("build log:\n%s", log)
	if res.DeploymentID != req.DeploymentID {
		t.Errorf("result deployment id = %q, want %q", res.DeploymentID, req.DeploymentID)
	}
	if res.Duration <= 0 {
		t.Errorf("result duration = %v, want > 0", res.Duration)
	}
	ents, err := os.ReadDir(cfg.WorkDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("work dir not cleaned up: %d entries left", len(ents))
	}
	return res, log
}

func (e *env) manifest(t *testing.T, id string) *edge.Manifest {
	t.Helper()
	rc, err := e.store.Get(t.Context(), edge.ManifestKey(id))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	defer rc.Close()
	var m edge.Manifest
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		t.Fatalf("decode manifest: %v", err)
	}
	return &m
}

func (e *env) blob(t *testing.T, sum string) []byte {
	t.Helper()
	rc, err := e.store.Get(t.Context(), edge.BlobKey(sum))
	if err != nil {
		t.Fatalf("blob %s: %v", sum, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
		t.Fatalf("blob %s holds content with hash %x", sum, got)
	}
	return b
}

func wantOK(t *testing.T, res *jobs.BuildResult) {
	t.Helper()
	if !res.OK() {
		t.Fatalf("build failed: %q", res.Error)
	}
}

func wantError(t *testing.T, res *jobs.BuildResult, want string) {
	t.Helper()
	if res.OK() {
		t.Fatalf("build succeeded, want error %q", want)
	}
	if !strings.Contains(res.Error, want) {
		t.Fatalf("error = %q, want it to contain %q", res.Error, want)
	}
	if res.ManifestKey != "" {
		t.Fatalf("failed build reports manifest %q", res.ManifestKey)
	}
}

var css = strings.Repeat(".button { color: #336699; margin: 0 auto; padding: 4px 8px; }\n", 100)

var staticSite = map[string]string{
	"index.html":       "<!doctype html><title>Pier</title><link rel=stylesheet href=/assets/site.css>" + strings.Repeat("<p>hello pier</p>\n", 100),
	"404.html":         "<!doctype html><title>Not found</title>",
	"assets/site.css":  css,
	"assets/app.js":    "console.log('hi')\n",
	"assets/data.json": `{"a":1}`,
	"assets/blob.bin":  "\x00\x01\x02\x03binary",
}

func TestStaticSite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha := e.git.CreateRepo(t, "site", staticSite)
	cfg, _ := e.config("")
	res, log := e.run(t, cfg, jobs.BuildRequest{
		DeploymentID: "dpl-static", ProjectID: "prj-1", ProjectName: "site", RepoURL: url, Ref: sha,
	})
	wantOK(t, res)
	if res.CommitSHA != sha || res.Framework != build.FrameworkStatic {
		t.Fatalf("commit %q framework %q; want %q static", res.CommitSHA, res.Framework, sha)
	}
	if res.ManifestKey != edge.ManifestKey("dpl-static") {
		t.Fatalf("manifest key %q", res.ManifestKey)
	}
	if res.Files != len(staticSite) {
		t.Fatalf("files = %d, want %d", res.Files, len(staticSite))
	}
	for _, want := range []string{"==> Cloning", "==> Framework: static (detected)", "==> Deployed"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}

	m := e.manifest(t, "dpl-static")
	if m.Version != edge.ManifestVersion || m.DeploymentID != "dpl-static" || m.ProjectID != "prj-1" ||
		m.ProjectName != "site" || m.CommitSHA != sha || m.Framework != "static" || m.CreatedAt.IsZero() {
		t.Fatalf("manifest header = %+v", m)
	}
	if m.NotFound != "404.html" || m.SPA {
		t.Fatalf("NotFound %q SPA %v; want 404.html, false", m.NotFound, m.SPA)
	}
	var names []string
	var total int64
	for name, f := range m.Files {
		names = append(names, name)
		total += f.Size
		if got := e.blob(t, f.SHA256); string(got) != staticSite[name] || f.Size != int64(len(got)) {
			t.Errorf("%s: blob content differs from the committed file", name)
		}
	}
	slices.Sort(names)
	want := slices.Sorted(func(yield func(string) bool) {
		for k := range staticSite {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(names, want) {
		t.Fatalf("manifest files = %v, want %v (no .git)", names, want)
	}
	if total != res.Bytes {
		t.Errorf("result bytes %d, manifest total %d", res.Bytes, total)
	}

	types := map[string]string{
		"index.html":       "text/html; charset=utf-8",
		"assets/site.css":  "text/css; charset=utf-8",
		"assets/app.js":    "text/javascript; charset=utf-8",
		"assets/data.json": "application/json",
		"assets/blob.bin":  "application/octet-stream",
	}
	for name, want := range types {
		if got := m.Files[name].Type; got != want {
			t.Errorf("%s: type %q, want %q", name, got, want)
		}
	}

	// Large text files get both precompressed variants; small ones none.
	for _, name := range []string{"index.html", "assets/site.css"} {
		f := m.Files[name]
		if f.Gzip == nil || f.Brotli == nil {
			t.Fatalf("%s: gzip %v brotli %v; want both", name, f.Gzip, f.Brotli)
		}
		zr, err := gzip.NewReader(bytes.NewReader(e.blob(t, f.Gzip.SHA256)))
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(zr); err != nil || string(b) != staticSite[name] {
			t.Errorf("%s: gzip variant does not decompress to the file (%v)", name, err)
		}
		if b, err := io.ReadAll(brotli.NewReader(bytes.NewReader(e.blob(t, f.Brotli.SHA256)))); err != nil || string(b) != staticSite[name] {
			t.Errorf("%s: brotli variant does not decompress to the file (%v)", name, err)
		}
		if f.Brotli.Size >= f.Size || f.Gzip.Size >= f.Size {
			t.Errorf("%s: variants not smaller than %d bytes: gzip %d, br %d", name, f.Size, f.Gzip.Size, f.Brotli.Size)
		}
	}
	for _, name := range []string{"404.html", "assets/app.js", "assets/blob.bin"} {
		if f := m.Files[name]; f.Gzip != nil || f.Brotli != nil {
			t.Errorf("%s: small file got precompressed variants", name)
		}
	}
	if want := len(m.Blobs()); res.Uploaded != want {
		t.Errorf("uploaded = %d, want %d (every blob of the manifest)", res.Uploaded, want)
	}
}

func TestRefs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha1 := e.git.CreateRepo(t, "app", map[string]string{"index.html": "one"})
	sha2 := e.git.Commit(t, "app", map[string]string{"index.html": "two"})
	sha3 := e.git.Commit(t, "app", map[string]string{"index.html": "three"})
	tests := []struct {
		name    string
		ref     string
		wantSHA string
		want    string
	}{
		{"non-tip sha", sha2, sha2, "two"},
		{"first sha", sha1, sha1, "one"},
		{"branch", "main", sha3, "three"},
		{"full branch ref", "refs/heads/main", sha3, "three"},
		{"default branch", "", sha3, "three"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := e.config("")
			id := "dpl-ref-" + string(rune('a'+i))
			res, _ := e.run(t, cfg, jobs.BuildRequest{DeploymentID: id, RepoURL: url, Ref: tt.ref})
			wantOK(t, res)
			if res.CommitSHA != tt.wantSHA {
				t.Fatalf("commit = %s, want %s", res.CommitSHA, tt.wantSHA)
			}
			if got := e.blob(t, e.manifest(t, id).Files["index.html"].SHA256); string(got) != tt.want {
				t.Fatalf("index.html = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPrivateRepo(t *testing.T) {
	t.Parallel()
	const token = "ghs_Secr3tTokenValue0123456789"
	e := newEnv(t, token)
	url, sha := e.git.CreateRepo(t, "private", map[string]string{"index.html": "<h1>private</h1>"})
	secrets := []string{token, base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))}

	tests := []struct {
		name    string
		token   string
		url     string
		wantErr string
	}{
		{"right token", token, url, ""},
		{"wrong token", "ghs_wrong", url, "clone failed: authentication failed"},
		{"no token", "", url, "clone failed: authentication failed"},
		{"token in the url", "", strings.Replace(url, "http://", "http://x-access-token:"+token+"@", 1), ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := e.config("")
			id := "dpl-private-" + string(rune('a'+i))
			// The build publishes what it can see of git's config and its
			// environment, to prove the token is in neither.
			res, log := e.run(t, cfg, jobs.BuildRequest{
				DeploymentID: id, RepoURL: tt.url, Ref: sha, GitToken: tt.token,
				BuildCommand: "mkdir -p out && cp index.html out/ && cp .git/config out/gitconfig.txt && env > out/env.txt && (cat .git/FETCH_HEAD; ls -la .git) > out/git.txt",
				OutputDir:    "out",
			})
			for _, s := range secrets {
				if strings.Contains(log, s) {
					t.Fatalf("the build log contains the token")
				}
			}
			if tt.wantErr != "" {
				wantError(t, res, tt.wantErr)
				return
			}
			wantOK(t, res)
			m := e.manifest(t, id)
			for _, name := range []string{"gitconfig.txt", "env.txt", "git.txt"} {
				b := e.blob(t, m.Files[name].SHA256)
				for _, s := range secrets {
					if bytes.Contains(b, []byte(s)) {
						t.Errorf("%s (what the build could see) contains the token", name)
					}
				}
			}
		})
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha := e.git.CreateRepo(t, "app", map[string]string{
		"index.html": "<h1>hi</h1>",
		"dist/.keep": "",
	})
	tests := []struct {
		name    string
		req     jobs.BuildRequest
		wantErr string
		wantLog string
	}{
		{"install fails", jobs.BuildRequest{InstallCommand: "echo installing; exit 1", BuildCommand: "echo never"},
			"install failed: exit status 1", "installing"},
		{"build fails", jobs.BuildRequest{BuildCommand: "echo boom >&2; exit 3"},
			"build failed: exit status 3", "boom"},
		{"output dir missing", jobs.BuildRequest{OutputDir: "dist/public"},
			`output directory "dist/public" not found`, ""},
		{"output dir empty", jobs.BuildRequest{BuildCommand: "rm dist/.keep", OutputDir: "dist"},
			`output directory "dist" is empty`, ""},
		{"output dir is a file", jobs.BuildRequest{OutputDir: "index.html"},
			`output directory "index.html" is not a directory`, ""},
		{"output dir escapes with ..", jobs.BuildRequest{OutputDir: "../"},
			`invalid output directory "../"`, ""},
		{"output dir escapes deeper", jobs.BuildRequest{OutputDir: "dist/../../etc"},
			`invalid output directory`, ""},
		{"output dir absolute", jobs.BuildRequest{OutputDir: "/etc"},
			`invalid output directory "/etc"`, ""},
		{"output dir symlink out", jobs.BuildRequest{BuildCommand: "ln -s /etc out", OutputDir: "out"},
			`invalid output directory "out"`, ""},
		{"missing ref", jobs.BuildRequest{Ref: "no-such-branch"},
			`clone failed: ref "no-such-branch" not found`, ""},
		{"option as ref", jobs.BuildRequest{Ref: "--upload-pack=touch /tmp/pwned"},
			`invalid git ref`, ""},
		{"file url", jobs.BuildRequest{RepoURL: "file:///etc"},
			"repository URL must start with https://", ""},
		{"ext url", jobs.BuildRequest{RepoURL: "ext::sh -c touch% /tmp/pwned"},
			"repository URL must start with https://", ""},
		{"missing repo", jobs.BuildRequest{RepoURL: e.git.RepoURL("nope")},
			"clone failed: repository not found", ""},
		{"unknown framework", jobs.BuildRequest{Framework: "rails"},
			`unknown framework "rails"`, ""},
		{"bad env", jobs.BuildRequest{Env: map[string]string{"A=B": "x"}},
			`invalid build environment variable "A=B"`, ""},
		{"bad deployment id", jobs.BuildRequest{DeploymentID: "../../etc"},
			"invalid deployment id", ""},
		{"empty url", jobs.BuildRequest{RepoURL: "-"}, "invalid repository URL", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			if req.DeploymentID == "" {
				req.DeploymentID = "dpl-fail-" + string(rune('a'+i))
			}
			switch req.RepoURL {
			case "":
				req.RepoURL = url
			case "-":
				req.RepoURL = ""
			}
			if req.Ref == "" {
				req.Ref = sha
			}
			cfg, _ := e.config("")
			res, log := e.run(t, cfg, req)
			wantError(t, res, tt.wantErr)
			if !strings.Contains(log, "==> error: "+res.Error) {
				t.Errorf("log lacks the error line")
			}
			if tt.wantLog != "" && !strings.Contains(log, tt.wantLog) {
				t.Errorf("log lacks the command output %q", tt.wantLog)
			}
			if strings.Contains(res.Error, e.work) {
				t.Errorf("error %q leaks a builder path", res.Error)
			}
		})
	}
	if _, err := os.Stat("/tmp/pwned"); err == nil {
		t.Fatal("a crafted ref or URL ran a command")
	}
}

func TestNotDetected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha := e.git.CreateRepo(t, "bare", map[string]string{"README.md": "nothing to serve"})
	cfg, _ := e.config("")
	res, _ := e.run(t, cfg, jobs.BuildRequest{DeploymentID: "dpl-nd", RepoURL: url, Ref: sha})
	wantError(t, res, "could not detect the framework")

	// With an explicit output directory, no detection is needed.
	cfg, _ = e.config("")
	res, _ = e.run(t, cfg, jobs.BuildRequest{DeploymentID: "dpl-nd2", RepoURL: url, Ref: sha,
		BuildCommand: "mkdir -p site && echo hi > site/index.html", OutputDir: "site"})
	wantOK(t, res)
	if res.Framework != build.FrameworkOther || res.Files != 1 {
		t.Fatalf("framework %q files %d; want other, 1", res.Framework, res.Files)
	}
}

// sandboxes lists the sandbox modes this machine can test.
func sandboxes(t *testing.T) []string {
	modes := []string{build.SandboxNone}
	if _, err := exec.LookPath("bwrap"); err == nil {
		modes = append(modes, build.SandboxBwrap)
	} else {
		t.Log("bwrap not installed: testing without a sandbox only")
	}
	return modes
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha := e.git.CreateRepo(t, "hang", map[string]string{"index.html": "x"})
	for _, sb := range sandboxes(t) {
		t.Run(sb, func(t *testing.T) {
			t.Parallel()
			cfg, _ := e.config(sb)
			cfg.WorkDir = t.TempDir()
			res, log := e.run(t, cfg, jobs.BuildRequest{
				DeploymentID: "dpl-hang-" + sb, RepoURL: url, Ref: sha, Timeout: 2 * time.Second,
				// A background child holding the output pipe must die too.
				BuildCommand: "echo started; (sleep 600; echo late) & sleep 600",
			})
			wantError(t, res, "build timed out after 2s")
			if res.Error != "build timed out after 2s" {
				t.Fatalf("error = %q", res.Error)
			}
			if !strings.Contains(log, "\nstarted\n") || strings.Contains(log, "\nlate\n") {
				t.Fatalf("log does not show the hung build's output as expected")
			}
		})
	}
}

// A command that leaves a process behind does not keep the build waiting.
func TestBackgroundProcessDoesNotHang(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha := e.git.CreateRepo(t, "bg", map[string]string{"index.html": "x"})
	for _, sb := range sandboxes(t) {
		t.Run(sb, func(t *testing.T) {
			cfg, _ := e.config(sb)
			res, _ := e.run(t, cfg, jobs.BuildRequest{
				DeploymentID: "dpl-bg-" + sb, RepoURL: url, Ref: sha, Timeout: time.Minute,
				BuildCommand: "sleep 600 & echo left a process behind",
			})
			wantOK(t, res)
		})
	}
}

func TestSymlinks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha := e.git.CreateRepo(t, "links", map[string]string{"secret.txt": "repo secret", "page.html": "<p>page</p>"})
	cfg, _ := e.config("")
	res, log := e.run(t, cfg, jobs.BuildRequest{
		DeploymentID: "dpl-links", RepoURL: url, Ref: sha, OutputDir: "dist",
		BuildCommand: strings.Join([]string{
			"mkdir -p dist/sub",
			"cp page.html dist/index.html",
			"ln -s /etc/passwd dist/passwd",
			"ln -s ../secret.txt dist/up.txt",
			"ln -s index.html dist/alias.html",
			"ln -s ../index.html dist/sub/alias.html",
			"ln -s /etc dist/etc",
			"ln -s sub dist/subdir",
			"ln -s missing dist/dangling",
		}, " && "),
	})
	wantOK(t, res)
	m := e.manifest(t, "dpl-links")
	var names []string
	for n := range m.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"alias.html", "index.html", "sub/alias.html"}; !slices.Equal(names, want) {
		t.Fatalf("published %v, want %v", names, want)
	}
	if m.Files["alias.html"].SHA256 != m.Files["index.html"].SHA256 {
		t.Error("a symlink inside the output dir did not publish its target's content")
	}
	for _, name := range []string{"passwd", "up.txt", "etc", "subdir", "dangling"} {
		if !strings.Contains(log, "warning: skipping symlink "+name) {
			t.Errorf("log lacks a warning for %s", name)
		}
	}
}

func TestIncrementalUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha1 := e.git.CreateRepo(t, "inc", staticSite)
	cfg, _ := e.config("")
	res1, _ := e.run(t, cfg, jobs.BuildRequest{DeploymentID: "dpl-inc-1", RepoURL: url, Ref: sha1})
	wantOK(t, res1)
	if res1.Uploaded == 0 {
		t.Fatal("first build uploaded nothing")
	}

	// The same commit again: every blob is already stored.
	res2, _ := e.run(t, cfg, jobs.BuildRequest{DeploymentID: "dpl-inc-2", RepoURL: url, Ref: sha1})
	wantOK(t, res2)
	if res2.Uploaded != 0 {
		t.Fatalf("rebuild of the same commit uploaded %d blobs, want 0", res2.Uploaded)
	}

	// One small file changed, one large file added: 1 + 3 blobs
	// (identity, gzip, brotli).
	sha2 := e.git.Commit(t, "inc", map[string]string{
		"assets/app.js":    "console.log('changed')\n",
		"assets/extra.css": css + "/* extra */\n",
	})
	res3, _ := e.run(t, cfg, jobs.BuildRequest{DeploymentID: "dpl-inc-3", RepoURL: url, Ref: sha2})
	wantOK(t, res3)
	if res3.Uploaded != 4 {
		t.Fatalf("build after a change uploaded %d blobs, want 4", res3.Uploaded)
	}
	m1, m3 := e.manifest(t, "dpl-inc-1"), e.manifest(t, "dpl-inc-3")
	if !reflect.DeepEqual(m1.Files["index.html"], m3.Files["index.html"]) {
		t.Error("unchanged index.html has a different manifest entry")
	}
	if m1.Files["assets/app.js"].SHA256 == m3.Files["assets/app.js"].SHA256 {
		t.Error("changed app.js kept its hash")
	}
}

func TestSandboxHidesDirs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap not installed")
	}
	e := newEnv(t, "")
	dataDir := t.TempDir()
	keyring := filepath.Join(dataDir, "keyring.key")
	if err := os.WriteFile(keyring, []byte("TOP-SECRET-KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "hidden-marker"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "control.db")
	if err := os.WriteFile(other, []byte("TOP-SECRET-DB"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, sha := e.git.CreateRepo(t, "sb", map[string]string{"index.html": "x"})
	cfg, log := e.config(build.SandboxBwrap)
	cfg.HideDirs = []string{dataDir, other, filepath.Join(dataDir, "does-not-exist")}
	// The scratch space inside a hidden dir (as in <data-dir>/builds)
	// still shows through for the checkout and HOME.
	cfg.WorkDir = filepath.Join(dataDir, "builds")
	script := strings.Join([]string{
		"mkdir -p out && cp index.html out/",
		"(cat " + keyring + "; cat " + other + "; ls -a " + dataDir + ") > out/seen.txt 2>&1 || true",
		// Writes outside the checkout, HOME and /tmp land in throwaway
		// tmpfs mounts at most, never on the host (checked below).
		"touch " + filepath.Join(dataDir, "planted") + " " + filepath.Join(cfg.WorkDir, "planted") + " 2>/dev/null || true",
		"touch $HOME/ok /tmp/ok",
	}, "; ")
	res, _ := e.run(t, cfg, jobs.BuildRequest{DeploymentID: "dpl-sb", RepoURL: url, Ref: sha, BuildCommand: script, OutputDir: "out"})
	wantOK(t, res)
	seen := string(e.blob(t, e.manifest(t, "dpl-sb").Files["seen.txt"].SHA256))
	t.Logf("what the build saw:\n%s", seen)
	for _, leak := range []string{"TOP-SECRET-KEY", "TOP-SECRET-DB", "hidden-marker"} {
		if strings.Contains(seen, leak) || strings.Contains(log.String(), leak) {
			t.Errorf("the sandboxed build could see or do %s", leak)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "planted")); err == nil {
		t.Error("the build wrote into a hidden dir")
	}
	if !strings.Contains(log.String(), "sandbox: bubblewrap") {
		t.Error("log does not say the build ran in bubblewrap")
	}
}

func TestSandboxModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha := e.git.CreateRepo(t, "modes", map[string]string{"index.html": "x"})
	tests := []struct {
		name     string
		mode     string
		bwrap    string
		wantErr  string
		wantWarn string
	}{
		{"none", build.SandboxNone, "", "", "sandbox disabled"},
		{"auto without bwrap", build.SandboxAuto, "/nonexistent/bwrap", "", "bubblewrap is not available"},
		{"bwrap without bwrap", build.SandboxBwrap, "/nonexistent/bwrap", "bubblewrap sandbox unavailable", ""},
		{"unknown", "chroot", "", `unknown sandbox mode "chroot"`, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := e.config(tt.mode)
			cfg.Bwrap = tt.bwrap
			res, log := e.run(t, cfg, jobs.BuildRequest{DeploymentID: "dpl-mode-" + string(rune('a'+i)), RepoURL: url, Ref: sha, BuildCommand: "true"})
			if tt.wantErr != "" {
				wantError(t, res, tt.wantErr)
				return
			}
			wantOK(t, res)
			if !strings.Contains(log, "==> warning: "+tt.wantWarn) {
				t.Errorf("log lacks the warning %q", tt.wantWarn)
			}
		})
	}
}

func TestBuildEnv(t *testing.T) {
	e := newEnv(t, "")
	url, sha := e.git.CreateRepo(t, "env", map[string]string{"index.html": "x"})
	t.Setenv("PIER_TEST_BUILDER_SECRET", "builder-only")
	for _, sb := range sandboxes(t) {
		t.Run(sb, func(t *testing.T) {
			cfg, _ := e.config(sb)
			id := "dpl-env-" + sb
			res, _ := e.run(t, cfg, jobs.BuildRequest{
				DeploymentID: id, RepoURL: url, Ref: sha, OutputDir: "out",
				Env:          map[string]string{"API_URL": "https://api.example.test", "CI": "true"},
				BuildCommand: "mkdir -p out && env | sort > out/env.txt && pwd > out/pwd.txt",
			})
			wantOK(t, res)
			m := e.manifest(t, id)
			got := string(e.blob(t, m.Files["env.txt"].SHA256))
			for _, want := range []string{"API_URL=https://api.example.test", "CI=true", "NEXT_TELEMETRY_DISABLED=1", "HOME=" + e.work + "/"} {
				if !strings.Contains(got, want) {
					t.Errorf("build env lacks %q:\n%s", want, got)
				}
			}
			for _, bad := range []string{"PIER_TEST_BUILDER_SECRET", "NODE_ENV"} {
				if strings.Contains(got, bad) {
					t.Errorf("build env has %s", bad)
				}
			}
		})
	}
}

// A store that fails takes the build down with a user-safe reason and no
// manifest.
func TestUploadFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha := e.git.CreateRepo(t, "up", map[string]string{"index.html": "x"})
	// Break the real store: its temp folder becomes a file.
	tmp := filepath.Join(e.store.Dir(), ".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := e.config("")
	res, log := e.run(t, cfg, jobs.BuildRequest{DeploymentID: "dpl-up", RepoURL: url, Ref: sha})
	wantError(t, res, "upload failed")
	if res.Error != "upload failed" || strings.Contains(log, e.store.Dir()) {
		t.Fatalf("error %q, or the log shows store internals", res.Error)
	}
	if ok, _ := e.store.Exists(t.Context(), edge.ManifestKey("dpl-up")); ok {
		t.Fatal("a manifest was written for a failed upload")
	}
}

// A build that prints a build-scoped variable shows "***" in the log, not
// the value; the build itself still sees the value.
func TestBuildEnvMaskedInLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	url, sha := e.git.CreateRepo(t, "mask", map[string]string{"index.html": "x"})
	cfg, _ := e.config("")
	res, log := e.run(t, cfg, jobs.BuildRequest{
		DeploymentID: "dpl-mask", RepoURL: url, Ref: sha, OutputDir: "out",
		Env:          map[string]string{"STRIPE_KEY": "sk_live_0123456789abcdef", "CI": "1"},
		BuildCommand: `mkdir -p out && echo "key is $STRIPE_KEY" && printf %s "$STRIPE_KEY" > out/key.txt`,
	})
	wantOK(t, res)
	if strings.Contains(log, "sk_live_0123456789abcdef") || !strings.Contains(log, "key is ***") {
		t.Errorf("build log does not mask the variable:\n%s", log)
	}
	m := e.manifest(t, "dpl-mask")
	if got := string(e.blob(t, m.Files["key.txt"].SHA256)); got != "sk_live_0123456789abcdef" {
		t.Errorf("the build saw %q, want the real value", got)
	}
}
