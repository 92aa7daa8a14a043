// Package e2e runs the real `pier` binary end to end: `pier dev` on random
// loopback ports, real git repositories over smart HTTP, real builds (a
// plain static site and a Vite + React app built with npm), and real HTTP
// against the edge.
package e2e

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

type project struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	URL              string `json:"url"`
	ActiveDeployment string `json:"active_deployment_id"`
	HasGitToken      bool   `json:"has_git_token"`
}

type deployment struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	CommitSHA string `json:"commit_sha"`
	Framework string `json:"framework"`
	Error     string `json:"error"`
	URL       string `json:"url"`
	Live      bool   `json:"live"`
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

const gitToken = "e2e-git-token"

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// deploy queues a deployment and waits for a final state.
func deploy(t *testing.T, dev *testenv.Dev, projectName, ref string, timeout time.Duration) deployment {
	t.Helper()
	var d deployment
	if code := dev.API(t, "POST", "/v1/projects/"+projectName+"/deployments", map[string]string{"ref": ref}, &d); code != http.StatusCreated {
		t.Fatalf("create deployment: status %d", code)
	}
	if d.State != "queued" {
		t.Errorf("new deployment state = %q, want queued", d.State)
	}
	testenv.WaitFor(t, timeout, "deployment "+d.ID+" to finish", func() bool {
		dev.API(t, "GET", "/v1/deployments/"+d.ID, nil, &d)
		return d.State == "ready" || d.State == "failed" || d.State == "canceled"
	})
	return d
}

func buildLog(t *testing.T, dev *testenv.Dev, id string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", dev.APIURL+"/v1/deployments/"+id+"/logs", nil)
	req.Header.Set("Authorization", "Bearer "+dev.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readBody(t, resp)
}

func TestDevStaticSite(t *testing.T) {
	git := testenv.GitServer(t, gitToken)
	url, sha1 := git.CreateRepo(t, "site", map[string]string{
		"index.html":                "<!doctype html><title>v1</title><h1>version one</h1>",
		"about.html":                "<h1>about</h1>",
		"404.html":                  "<h1>custom not found</h1>",
		"assets/app.3f2a9c1e7b.css": strings.Repeat("body { color: #333; }\n", 200),
	})
	dataDir := t.TempDir()
	dev := testenv.StartDev(t, dataDir)
	host := "site." + dev.BaseDomain

	var p project
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{
		"name": "site", "repo_url": url, "git_token": gitToken,
	}, &p); code != http.StatusCreated {
		t.Fatalf("create project: status %d", code)
	}
	if !p.HasGitToken {
		t.Error("project does not report its git token")
	}

	d1 := deploy(t, dev, "site", sha1, 2*time.Minute)
	if d1.State != "ready" {
		t.Fatalf("deployment 1: %s (%s)\n%s", d1.State, d1.Error, buildLog(t, dev, d1.ID))
	}
	if d1.CommitSHA != sha1 || d1.Framework != "static" {
		t.Errorf("deployment 1: commit %s framework %q, want %s static", d1.CommitSHA, d1.Framework, sha1)
	}
	if log := buildLog(t, dev, d1.ID); strings.Contains(log, gitToken) {
		t.Errorf("the build log contains the git token:\n%s", log)
	}
	testenv.WaitFor(t, 10*time.Second, "deployment 1 live", func() bool {
		dev.API(t, "GET", "/v1/projects/site", nil, &p)
		return p.ActiveDeployment == d1.ID
	})

	t.Run("serves files", func(t *testing.T) {
		resp := dev.Get(t, 0, host, "/")
		body := readBody(t, resp)
		if resp.StatusCode != 200 || !strings.Contains(body, "version one") {
			t.Fatalf("GET / = %d %q", resp.StatusCode, body)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "must-revalidate") {
			t.Errorf("HTML Cache-Control = %q, want revalidation", cc)
		}
		etag := resp.Header.Get("ETag")
		if !strings.HasPrefix(etag, `"`) {
			t.Errorf("ETag = %q, want a strong ETag", etag)
		}
		resp = dev.Get(t, 0, host, "/", "If-None-Match", etag)
		readBody(t, resp)
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("conditional GET = %d, want 304", resp.StatusCode)
		}
		resp = dev.Get(t, 0, host, "/about")
		if body := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(body, "about") {
			t.Errorf("GET /about = %d %q", resp.StatusCode, body)
		}
	})
	t.Run("hashed assets are immutable, compressed and ranged", func(t *testing.T) {
		resp := dev.Get(t, 0, host, "/assets/app.3f2a9c1e7b.css")
		readBody(t, resp)
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "31536000") {
			t.Errorf("asset Cache-Control = %q", cc)
		}
		for _, enc := range []string{"br", "gzip"} {
			resp = dev.Get(t, 0, host, "/assets/app.3f2a9c1e7b.css", "Accept-Encoding", enc)
			readBody(t, resp)
			if got := resp.Header.Get("Content-Encoding"); got != enc {
				t.Errorf("Accept-Encoding %s: Content-Encoding = %q", enc, got)
			}
		}
		resp = dev.Get(t, 0, host, "/assets/app.3f2a9c1e7b.css", "Range", "bytes=0-3")
		if body := readBody(t, resp); resp.StatusCode != http.StatusPartialContent || body != "body" {
			t.Errorf("Range = %d %q, want 206 \"body\"", resp.StatusCode, body)
		}
	})
	t.Run("404 page and no traversal", func(t *testing.T) {
		resp := dev.Get(t, 0, host, "/no/such/page.html")
		if body := readBody(t, resp); resp.StatusCode != 404 || !strings.Contains(body, "custom not found") {
			t.Errorf("missing page = %d %q, want the custom 404", resp.StatusCode, body)
		}
		for _, path := range []string{"/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/..%2f..%2f..%2fetc/passwd"} {
			resp := dev.Get(t, 0, host, path)
			body := readBody(t, resp)
			if strings.Contains(body, "root:") || resp.StatusCode == 200 {
				t.Errorf("GET %s = %d, leaked %q", path, resp.StatusCode, body)
			}
		}
		resp = dev.Get(t, 0, "nosuchproject."+dev.BaseDomain, "/")
		if readBody(t, resp); resp.StatusCode != 404 {
			t.Errorf("unknown project = %d, want 404", resp.StatusCode)
		}
	})

	// A second version, then a failing build, then rollback.
	sha2 := git.Commit(t, "site", map[string]string{"index.html": "<!doctype html><title>v2</title><h1>version two</h1>"})
	d2 := deploy(t, dev, "site", "main", 2*time.Minute)
	if d2.State != "ready" || d2.CommitSHA != sha2 {
		t.Fatalf("deployment 2 of branch main: %s %s (%s), want ready at %s", d2.State, d2.CommitSHA, d2.Error, sha2)
	}
	testenv.WaitFor(t, 10*time.Second, "version two live", func() bool {
		return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "version two")
	})
	t.Run("deployment URL keeps serving its own version", func(t *testing.T) {
		resp := dev.Get(t, 0, d1.ID+"."+host, "/")
		if body := readBody(t, resp); !strings.Contains(body, "version one") {
			t.Errorf("deployment 1 URL = %d %q, want version one", resp.StatusCode, body)
		}
	})

	t.Run("failing build leaves the live deployment", func(t *testing.T) {
		git.Commit(t, "site", map[string]string{"package.json": `{"scripts":{"build":"echo the build broke >&2; exit 3"}}`})
		d3 := deploy(t, dev, "site", "main", 2*time.Minute)
		if d3.State != "failed" || d3.Error == "" {
			t.Fatalf("deployment 3 = %s (%q), want failed with a reason", d3.State, d3.Error)
		}
		if log := buildLog(t, dev, d3.ID); !strings.Contains(log, "the build broke") {
			t.Errorf("build log lacks the build's output:\n%s", log)
		}
		if body := readBody(t, dev.Get(t, 0, host, "/")); !strings.Contains(body, "version two") {
			t.Errorf("after a failed build the site serves %q, want version two", body)
		}
	})

	t.Run("rollback is a pointer move", func(t *testing.T) {
		var cut struct {
			DeploymentID string  `json:"deployment_id"`
			Previous     string  `json:"previous_deployment_id"`
			TotalMS      float64 `json:"total_ms"`
		}
		if code := dev.API(t, "POST", "/v1/projects/site/rollback", map[string]string{}, &cut); code != 200 {
			t.Fatalf("rollback: status %d", code)
		}
		if cut.DeploymentID != d1.ID || cut.Previous != d2.ID {
			t.Errorf("rollback went %s -> %s, want %s -> %s", cut.Previous, cut.DeploymentID, d2.ID, d1.ID)
		}
		t.Logf("rollback took %.2f ms", cut.TotalMS)
		testenv.WaitFor(t, 5*time.Second, "version one live again", func() bool {
			return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "version one")
		})
	})

	t.Run("state survives a restart", func(t *testing.T) {
		dev.Stop(t)
		dev2 := testenv.StartDev(t, dataDir)
		if dev2.Token != dev.Token {
			t.Error("the dev token changed across a restart")
		}
		var got project
		if code := dev2.API(t, "GET", "/v1/projects/site", nil, &got); code != 200 || got.ActiveDeployment != d1.ID {
			t.Fatalf("after restart: status %d, active %q, want %s", code, got.ActiveDeployment, d1.ID)
		}
		resp := dev2.Get(t, 0, "site."+dev2.BaseDomain, "/")
		if body := readBody(t, resp); !strings.Contains(body, "version one") {
			t.Errorf("after restart / = %d %q", resp.StatusCode, body)
		}
	})
}

func TestDevViteReactSPA(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		if os.Getenv("PIER_REQUIRE_SERVERS") == "1" {
			t.Fatal("npm is not installed and PIER_REQUIRE_SERVERS=1")
		}
		t.Skip("npm is not installed")
	}
	files := map[string]string{}
	root := filepath.Join("..", "testdata", "vite-react")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		rel, _ := filepath.Rel(root, path)
		files[filepath.ToSlash(rel)] = string(raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	git := testenv.GitServer(t, gitToken)
	url, sha := git.CreateRepo(t, "spa", files)
	dev := testenv.StartDev(t, t.TempDir())
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": "spa", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	d := deploy(t, dev, "spa", sha, 5*time.Minute)
	if d.State != "ready" {
		t.Fatalf("vite build: %s (%s)\n%s", d.State, d.Error, buildLog(t, dev, d.ID))
	}
	if d.Framework != "vite" {
		t.Errorf("framework = %q, want vite", d.Framework)
	}
	host := "spa." + dev.BaseDomain
	testenv.WaitFor(t, 10*time.Second, "spa live", func() bool {
		return dev.Get(t, 0, host, "/").StatusCode == 200
	})

	index := readBody(t, dev.Get(t, 0, host, "/"))
	if !strings.Contains(index, `<div id="root"></div>`) {
		t.Fatalf("index = %q", index)
	}
	// The built index references a hashed bundle under /assets/.
	i := strings.Index(index, "/assets/index-")
	if i < 0 {
		t.Fatalf("no hashed bundle in %q", index)
	}
	asset := index[i : i+strings.IndexByte(index[i:], '"')]
	resp := dev.Get(t, 0, host, asset, "Accept-Encoding", "br, gzip")
	body := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("GET %s = %d, Cache-Control %q", asset, resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if resp.Header.Get("Content-Encoding") != "br" || len(body) == 0 {
		t.Errorf("GET %s: Content-Encoding %q, %d bytes; want br", asset, resp.Header.Get("Content-Encoding"), len(body))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("bundle Content-Type = %q", ct)
	}

	// SPA fallback: client routes serve index.html; missing assets do not.
	resp = dev.Get(t, 0, host, "/dashboard/settings")
	if body := readBody(t, resp); resp.StatusCode != 200 || body != index {
		t.Errorf("SPA route = %d, want index.html", resp.StatusCode)
	}
	resp = dev.Get(t, 0, host, "/assets/missing-0123abcd.js")
	if readBody(t, resp); resp.StatusCode != 404 {
		t.Errorf("missing asset = %d, want 404", resp.StatusCode)
	}
}

func TestDevAPIErrors(t *testing.T) {
	dev := testenv.StartDev(t, t.TempDir())
	var e apiError
	tests := []struct {
		name   string
		token  string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"no token", "", "GET", "/v1/projects", nil, 401, "unauthorized"},
		{"bad token", "pier_nope", "GET", "/v1/projects", nil, 401, "unauthorized"},
		{"bad name", dev.Token, "POST", "/v1/projects", map[string]string{"name": "Bad_Name", "repo_url": "https://example.test/x.git"}, 400, "invalid"},
		{"repo not http", dev.Token, "POST", "/v1/projects", map[string]string{"name": "ok", "repo_url": "ftp://example.test/x.git"}, 400, "invalid"},
		{"credentials in url", dev.Token, "POST", "/v1/projects", map[string]string{"name": "ok", "repo_url": "https://u:p@example.test/x.git"}, 400, "invalid"},
		{"unknown field", dev.Token, "POST", "/v1/projects", map[string]string{"nmae": "x"}, 400, "bad_request"},
		{"bad output dir", dev.Token, "POST", "/v1/projects", map[string]string{"name": "ok", "repo_url": "https://example.test/x.git", "output_dir": "../../etc"}, 400, "invalid"},
		{"unknown project", dev.Token, "GET", "/v1/projects/nope", nil, 404, "not_found"},
		{"unknown deployment", dev.Token, "GET", "/v1/deployments/dpl-nope", nil, 404, "not_found"},
		{"bad ref", dev.Token, "POST", "/v1/projects/nope/deployments", map[string]string{"ref": "x"}, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e = apiError{}
			if code := dev.APIWithToken(t, tt.token, tt.method, tt.path, tt.body, &e); code != tt.status || e.Error.Code != tt.code {
				t.Errorf("%s %s = %d %q (%s), want %d %q", tt.method, tt.path, code, e.Error.Code, e.Error.Message, tt.status, tt.code)
			}
			if e.Error.Message == "" {
				t.Error("error without a message")
			}
		})
	}

	// A read-only token may read but not write (403); duplicates conflict (409).
	var tok struct{ Token string }
	if code := dev.API(t, "POST", "/v1/tokens", map[string]string{"name": "ci", "scope": "read"}, &tok); code != 201 || tok.Token == "" {
		t.Fatalf("create read token: %d", code)
	}
	if code := dev.APIWithToken(t, tok.Token, "GET", "/v1/projects", nil, nil); code != 200 {
		t.Errorf("read token GET = %d, want 200", code)
	}
	if code := dev.APIWithToken(t, tok.Token, "POST", "/v1/projects", map[string]string{"name": "x", "repo_url": "https://example.test/x.git"}, &e); code != 403 || e.Error.Code != "forbidden" {
		t.Errorf("read token POST = %d %q, want 403 forbidden", code, e.Error.Code)
	}
	body := map[string]string{"name": "dup", "repo_url": "https://example.test/x.git"}
	if code := dev.API(t, "POST", "/v1/projects", body, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	if code := dev.API(t, "POST", "/v1/projects", body, &e); code != 409 || e.Error.Code != "conflict" {
		t.Errorf("duplicate = %d %q, want 409 conflict", code, e.Error.Code)
	}
	if code := dev.API(t, "POST", "/v1/projects/dup/deployments", map[string]string{"ref": "../etc"}, &e); code != 400 {
		t.Errorf("bad ref = %d, want 400", code)
	}
	if code := dev.API(t, "DELETE", "/v1/projects/dup", nil, nil); code != 204 {
		t.Errorf("delete = %d, want 204", code)
	}
	if code := dev.API(t, "GET", "/v1/projects/dup", nil, nil); code != 404 {
		t.Errorf("get deleted = %d, want 404", code)
	}
}
