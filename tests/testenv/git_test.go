package testenv_test

import (
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pierhq/pier/tests/testenv"
)

// gitCmd runs the git CLI as a client would, without user configuration.
func gitCmd(t *testing.T, dir string, extraEnv []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
	}, extraEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func header(v string) []string {
	return []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=" + v}
}

func TestGitServer(t *testing.T) {
	const token = "s3cr3t-token"
	g := testenv.GitServer(t, token)
	url, sha1 := g.CreateRepo(t, "app", map[string]string{"index.html": "v1", "a/b.txt": "b"})
	if want := g.URL + "/app.git"; url != want {
		t.Fatalf("url = %q, want %q", url, want)
	}
	sha2 := g.Commit(t, "app", map[string]string{"index.html": "v2"}, "a/b.txt")
	sha3 := g.Commit(t, "app", map[string]string{"new.txt": "n"})
	if sha1 == sha2 || sha2 == sha3 || len(sha1) != 40 {
		t.Fatalf("shas not distinct 40-hex: %s %s %s", sha1, sha2, sha3)
	}

	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
	tests := []struct {
		name    string
		env     []string
		url     string
		ref     string
		wantErr string
		want    map[string]string // file → content; "" = absent
	}{
		{"basic header, non-tip sha", header(basic), url, sha2, "", map[string]string{"index.html": "v2", "a/b.txt": "", "new.txt": ""}},
		{"bearer header, first sha", header("Authorization: Bearer " + token), url, sha1, "", map[string]string{"index.html": "v1", "a/b.txt": "b"}},
		{"token in url, branch", nil, strings.Replace(url, "http://", "http://x-access-token:"+token+"@", 1), "main", "", map[string]string{"new.txt": "n"}},
		{"no token", nil, url, "main", "could not read Username", nil},
		{"wrong token", header("Authorization: Bearer nope"), url, "main", "could not read Username", nil},
		{"missing repo", header(basic), g.URL + "/nope.git", "main", "not found", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if out, err := gitCmd(t, dir, nil, "init", "-q"); err != nil {
				t.Fatalf("init: %v\n%s", err, out)
			}
			out, err := gitCmd(t, dir, tt.env, "fetch", "--depth=1", "--no-tags", tt.url, tt.ref)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(out, tt.wantErr) {
					t.Fatalf("fetch: err = %v, output %q; want failure containing %q", err, out, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("fetch: %v\n%s", err, out)
			}
			if out, err := gitCmd(t, dir, nil, "checkout", "-q", "FETCH_HEAD"); err != nil {
				t.Fatalf("checkout: %v\n%s", err, out)
			}
			for f, want := range tt.want {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if want == "" {
					if err == nil {
						t.Errorf("%s exists, want absent", f)
					}
					continue
				}
				if string(b) != want {
					t.Errorf("%s = %q, %v; want %q", f, b, err, want)
				}
			}
		})
	}
}

func TestGitServerUnauthorized(t *testing.T) {
	g := testenv.GitServer(t, "tok")
	g.CreateRepo(t, "app", map[string]string{"f": "x"})
	resp, err := http.Get(g.RepoURL("app") + "/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("status %d, WWW-Authenticate %q; want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestGitServerCopyDir(t *testing.T) {
	g := testenv.GitServer(t, "")
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "public", "assets"), 0o755))
	must(os.WriteFile(filepath.Join(src, "public", "index.html"), []byte("<h1>hi</h1>"), 0o644))
	must(os.WriteFile(filepath.Join(src, "build.sh"), []byte("#!/bin/sh\necho built\n"), 0o755))
	must(os.Symlink("index.html", filepath.Join(src, "public", "home.html")))
	sha := g.CopyDir(t, "site", src)

	// A second copy replaces the tree: files that are gone are removed.
	must(os.Remove(filepath.Join(src, "build.sh")))
	sha2 := g.CopyDir(t, "site", src)
	if sha2 == sha {
		t.Fatal("second CopyDir made no new commit")
	}

	dir := t.TempDir()
	if out, err := gitCmd(t, dir, nil, "clone", "-q", g.RepoURL("site"), "."); err != nil {
		t.Fatalf("clone (no token needed): %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "build.sh")); err == nil {
		t.Error("build.sh survived the second CopyDir")
	}
	if link, err := os.Readlink(filepath.Join(dir, "public", "home.html")); err != nil || link != "index.html" {
		t.Errorf("symlink = %q, %v; want index.html", link, err)
	}
	if out, err := gitCmd(t, dir, nil, "checkout", "-q", sha); err != nil {
		t.Fatalf("checkout first commit: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "build.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("build.sh in the first commit: %v, %v; want an executable file", fi, err)
	}
}
