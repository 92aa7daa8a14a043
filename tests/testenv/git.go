// Package testenv starts real dependencies for Pier's tests (a git server,
// PostgreSQL, the HashiCorp agents, S3), in process or as child processes
// on 127.0.0.1, each torn down when the test or the test binary ends. Each
// file says what it starts.
//
// It is test support: only tests import it.
package testenv

// git.go: a git smart-HTTP server (git http-backend behind net/http/cgi)
// with token auth, and helpers that create repositories and commits. It
// uses the git CLI and the standard library only.

import (
	"bytes"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Git is a git smart-HTTP server for tests. Its repositories are bare
// repositories under Root, served at URL/<name>.git, each with a work
// clone the helpers commit in and push from.
type Git struct {
	URL   string // http://127.0.0.1:PORT, no trailing slash
	Root  string // GIT_PROJECT_ROOT: the bare repositories
	Token string // "" = no authentication

	git  string // the git binary
	work string // work clones, one per repository

	mu     sync.Mutex
	stderr bytes.Buffer // git http-backend's stderr, logged if the test fails
	repos  map[string]bool
}

var repoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$`)

// GitServer starts a git server on 127.0.0.1:0. With a non-empty token,
// every request must carry it, as the password of HTTP Basic auth (any
// user name) or as a Bearer token; others get a 401 with a Basic
// challenge. The server is closed by t.Cleanup. Without a git binary the
// test is skipped (or failed, see Unavailable).
func GitServer(t testing.TB, token string) *Git {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		Unavailable(t, "git not installed")
	}
	g := &Git{
		Root:  t.TempDir(),
		Token: token,
		git:   gitPath,
		work:  t.TempDir(),
		repos: make(map[string]bool),
	}
	backend := &cgi.Handler{
		Path:   gitPath,
		Args:   []string{"http-backend"},
		Env:    []string{"GIT_PROJECT_ROOT=" + g.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + g.work},
		Stderr: lockedWriter{&g.mu, &g.stderr},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			_, pass, basic := r.BasicAuth()
			if !(basic && pass == token) && r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(h)
	g.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.stderr.Len() > 0 {
				t.Logf("git http-backend stderr:\n%s", g.stderr.String())
			}
		}
	})
	return g
}

// RepoURL is the clone URL of the named repository.
func (g *Git) RepoURL(name string) string { return g.URL + "/" + name + ".git" }

// CreateRepo creates the bare repository root/<name>.git with one commit
// of files (slash path → content) on branch main, and returns its clone
// URL and the commit SHA.
func (g *Git) CreateRepo(t testing.TB, name string, files map[string]string) (url, sha string) {
	t.Helper()
	g.initRepo(t, name)
	g.writeFiles(t, name, files)
	return g.RepoURL(name), g.commit(t, name)
}

// Commit adds the next commit on main of the named repository: files are
// written (created or replaced), the remove paths are deleted. It returns
// the new commit SHA. An unchanged tree still makes a (empty) commit.
func (g *Git) Commit(t testing.TB, name string, files map[string]string, remove ...string) (sha string) {
	t.Helper()
	g.mustExist(t, name)
	g.writeFiles(t, name, files)
	for _, p := range remove {
		full := g.workPath(t, name, p)
		if err := os.RemoveAll(full); err != nil {
			t.Fatalf("testenv: remove %s: %v", p, err)
		}
	}
	return g.commit(t, name)
}

// CopyDir commits the directory tree srcDir (a fixture) as the whole
// content of the named repository, creating the repository if needed:
// files not in srcDir are removed. Symbolic links are committed as links
// and file modes (executable or not) are kept. It returns the commit SHA.
func (g *Git) CopyDir(t testing.TB, name, srcDir string) (sha string) {
	t.Helper()
	g.mu.Lock()
	exists := g.repos[name]
	g.mu.Unlock()
	if !exists {
		g.initRepo(t, name)
	}
	dst := filepath.Join(g.work, name)
	ents, err := os.ReadDir(dst)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for _, e := range ents {
		if e.Name() != ".git" {
			if err := os.RemoveAll(filepath.Join(dst, e.Name())); err != nil {
				t.Fatalf("testenv: %v", err)
			}
		}
	}
	err = filepath.WalkDir(srcDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(srcDir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if d.Name() == ".git" && d.IsDir() {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm()|0o600)
		}
		return nil // sockets, devices: not committable
	})
	if err != nil {
		t.Fatalf("testenv: copy %s: %v", srcDir, err)
	}
	return g.commit(t, name)
}

func (g *Git) mustExist(t testing.TB, name string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.repos[name] {
		t.Fatalf("testenv: no repository %q (CreateRepo first)", name)
	}
}

func (g *Git) initRepo(t testing.TB, name string) {
	t.Helper()
	if !repoName.MatchString(name) || strings.Contains(name, "..") {
		t.Fatalf("testenv: bad repository name %q", name)
	}
	g.mu.Lock()
	if g.repos[name] {
		g.mu.Unlock()
		t.Fatalf("testenv: repository %q already exists", name)
	}
	g.repos[name] = true
	g.mu.Unlock()

	bare := filepath.Join(g.Root, name+".git")
	work := filepath.Join(g.work, name)
	g.run(t, "", "init", "-q", "--bare", "-b", "main", bare)
	g.run(t, "", "init", "-q", "-b", "main", work)
	g.run(t, work, "remote", "add", "origin", bare)
}

func (g *Git) workPath(t testing.TB, name, rel string) string {
	t.Helper()
	if !filepath.IsLocal(filepath.FromSlash(rel)) || strings.HasPrefix(rel, ".git") {
		t.Fatalf("testenv: bad file path %q", rel)
	}
	return filepath.Join(g.work, name, filepath.FromSlash(rel))
}

func (g *Git) writeFiles(t testing.TB, name string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := g.workPath(t, name, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
}

// commit stages everything in the work clone, commits on main with a
// fixed identity and pushes to the bare repository.
func (g *Git) commit(t testing.TB, name string) string {
	t.Helper()
	work := filepath.Join(g.work, name)
	g.run(t, work, "add", "-A")
	g.run(t, work, "commit", "-q", "--allow-empty", "--no-verify", "-m", "test commit")
	g.run(t, work, "push", "-q", "origin", "main")
	return strings.TrimSpace(g.run(t, work, "rev-parse", "HEAD"))
}

// run runs git without any user or system configuration, with a fixed
// author and committer, and returns its stdout.
func (g *Git) run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(g.git, args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + g.work,
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Pier Test",
		"GIT_AUTHOR_EMAIL=test@pier.invalid",
		"GIT_COMMITTER_NAME=Pier Test",
		"GIT_COMMITTER_EMAIL=test@pier.invalid",
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testenv: git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
