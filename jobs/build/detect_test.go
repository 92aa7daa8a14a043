package build_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pierhq/pier/jobs/build"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	npmCI      = "npm ci --no-audit --no-fund"
	npmInstall = "npm install --no-audit --no-fund"
)

func TestDetect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		files     map[string]string
		want      build.Plan
		wantNotes int
		wantErr   error
	}{
		{"static root", map[string]string{"index.html": "<h1>hi</h1>", "about.html": ""},
			build.Plan{Framework: "static", OutputDir: "."}, 0, nil},
		{"static public", map[string]string{"public/index.html": "<h1>hi</h1>", "README.md": ""},
			build.Plan{Framework: "static", OutputDir: "public"}, 0, nil},
		{"vite with lock and build script", map[string]string{
			"package.json":      `{"scripts":{"build":"vite build"},"devDependencies":{"vite":"^7.0.0"}}`,
			"package-lock.json": "{}", "index.html": ""},
			build.Plan{Framework: "vite", InstallCommand: npmCI, BuildCommand: "npm run build", OutputDir: "dist"}, 0, nil},
		{"vite without lock or script", map[string]string{"package.json": `{"dependencies":{"vite":"7"}}`},
			build.Plan{Framework: "vite", InstallCommand: npmInstall, BuildCommand: "npx vite build", OutputDir: "dist"}, 0, nil},
		{"next static export", map[string]string{
			"package.json":    `{"scripts":{"build":"next build"},"dependencies":{"next":"16.4.5","react":"19"}}`,
			"next.config.mjs": "export default { output: 'export', images: { unoptimized: true } }"},
			build.Plan{Framework: "nextjs", InstallCommand: npmInstall, BuildCommand: "npm run build", OutputDir: "out"}, 0, nil},
		{"next without export", map[string]string{
			"package.json":   `{"dependencies":{"next":"16.4.5"}}`,
			"next.config.js": "module.exports = {}"},
			build.Plan{Framework: "nextjs", InstallCommand: npmInstall, BuildCommand: "npx next build", OutputDir: "out"}, 1, nil},
		{"astro", map[string]string{"package.json": `{"dependencies":{"astro":"5"},"scripts":{"build":"astro build"}}`},
			build.Plan{Framework: "astro", InstallCommand: npmInstall, BuildCommand: "npm run build", OutputDir: "dist"}, 0, nil},
		{"sveltekit static", map[string]string{
			"package.json":        `{"devDependencies":{"@sveltejs/kit":"2","@sveltejs/adapter-static":"3","vite":"7"},"scripts":{"build":"vite build"}}`,
			"npm-shrinkwrap.json": "{}"},
			build.Plan{Framework: "sveltekit", InstallCommand: npmCI, BuildCommand: "npm run build", OutputDir: "build"}, 0, nil},
		{"sveltekit without adapter-static", map[string]string{
			"package.json": `{"devDependencies":{"@sveltejs/kit":"2","vite":"7"}}`},
			build.Plan{Framework: "sveltekit", InstallCommand: npmInstall, BuildCommand: "npx vite build", OutputDir: "build"}, 1, nil},
		{"docusaurus", map[string]string{"package.json": `{"dependencies":{"@docusaurus/core":"3"},"scripts":{"build":"docusaurus build"}}`},
			build.Plan{Framework: "docusaurus", InstallCommand: npmInstall, BuildCommand: "npm run build", OutputDir: "build"}, 0, nil},
		{"generic npm", map[string]string{"package.json": `{"scripts":{"build":"webpack"}}`},
			build.Plan{Framework: "npm", InstallCommand: npmInstall, BuildCommand: "npm run build", OutputDir: "dist"}, 1, nil},
		{"package.json without build, index.html", map[string]string{"package.json": `{"devDependencies":{"prettier":"3"}}`, "index.html": ""},
			build.Plan{Framework: "static", OutputDir: "."}, 0, nil},
		{"hugo.toml", map[string]string{"hugo.toml": "title = 'x'", "content/_index.md": ""},
			build.Plan{Framework: "hugo", BuildCommand: "hugo --minify", OutputDir: "public"}, 0, nil},
		{"hugo config.toml", map[string]string{"config.toml": "baseURL = '/'"},
			build.Plan{Framework: "hugo", BuildCommand: "hugo --minify", OutputDir: "public"}, 0, nil},
		{"nothing", map[string]string{"README.md": "hi"}, build.Plan{}, 0, build.ErrNotDetected},
		{"index.html is a directory", map[string]string{"index.html/x": ""}, build.Plan{}, 0, build.ErrNotDetected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := build.Detect(writeTree(t, tt.files))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Detect() error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Detect(): %v", err)
			}
			if len(got.Notes) != tt.wantNotes {
				t.Errorf("notes = %q, want %d", got.Notes, tt.wantNotes)
			}
			got.Notes = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Detect() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDetectBadPackageJSON(t *testing.T) {
	t.Parallel()
	_, err := build.Detect(writeTree(t, map[string]string{"package.json": "{nope", "index.html": ""}))
	if err == nil || !strings.Contains(err.Error(), "package.json is not valid JSON") {
		t.Fatalf("Detect() error = %v, want invalid package.json", err)
	}
}

// Detection never follows a symlink out of the checkout.
func TestDetectSymlinkOut(t *testing.T) {
	t.Parallel()
	outside := writeTree(t, map[string]string{"package.json": `{"dependencies":{"next":"1"}}`})
	dir := writeTree(t, map[string]string{"index.html": ""})
	if err := os.Symlink(filepath.Join(outside, "package.json"), filepath.Join(dir, "package.json")); err != nil {
		t.Fatal(err)
	}
	if p, err := build.Detect(dir); err == nil && p.Framework == "nextjs" {
		t.Fatal("Detect read a package.json outside the checkout")
	}
}

func TestPlanFor(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"package.json": `{"scripts":{"build":"x"}}`, "package-lock.json": "{}"})
	got, err := build.PlanFor(dir, "vite")
	if err != nil {
		t.Fatal(err)
	}
	want := build.Plan{Framework: "vite", InstallCommand: npmCI, BuildCommand: "npm run build", OutputDir: "dist"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("PlanFor(vite) = %+v, want %+v", got, want)
	}
	if _, err := build.PlanFor(dir, "rails"); err == nil {
		t.Fatal("PlanFor(rails): no error")
	}
}
