package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
)

// Framework names, as stored in jobs.BuildRequest.Framework and
// jobs.BuildResult.Framework.
const (
	FrameworkStatic     = "static"     // plain files: index.html at the root or in public/
	FrameworkVite       = "vite"       // Vite (React, Vue, Svelte, ... SPAs) → dist
	FrameworkNext       = "nextjs"     // Next.js static export (output: 'export') → out
	FrameworkAstro      = "astro"      // Astro → dist
	FrameworkSvelteKit  = "sveltekit"  // SvelteKit with @sveltejs/adapter-static → build
	FrameworkHugo       = "hugo"       // Hugo → public
	FrameworkDocusaurus = "docusaurus" // Docusaurus → build
	FrameworkNPM        = "npm"        // any other package.json with a build script → dist
	FrameworkOther      = "other"      // nothing detected; commands and output set by the project
)

// ErrNotDetected is returned by Detect when dir matches no known framework.
var ErrNotDetected = errors.New("could not detect the framework: add an index.html, or set the build command and output directory")

// Plan is how a repository is built: what to run and what to publish.
// Commands run with /bin/sh -c in the checkout; an empty command is
// skipped.
type Plan struct {
	Framework      string   `json:"framework"`
	InstallCommand string   `json:"install_command,omitempty"`
	BuildCommand   string   `json:"build_command,omitempty"`
	OutputDir      string   `json:"output_dir"`      // slash path relative to the repository root, "." for the root
	Notes          []string `json:"notes,omitempty"` // hints worth showing in the build log
}

const npmFlags = " --no-audit --no-fund"

// Frameworks lists the framework names Detect can return and PlanFor
// accepts.
func Frameworks() []string {
	return []string{FrameworkStatic, FrameworkVite, FrameworkNext, FrameworkAstro,
		FrameworkSvelteKit, FrameworkHugo, FrameworkDocusaurus, FrameworkNPM}
}

type packageJSON struct {
	Scripts         map[string]string `json:"scripts"`
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
}

func (p *packageJSON) has(dep string) bool {
	if p == nil {
		return false
	}
	_, a := p.Dependencies[dep]
	_, b := p.DevDependencies[dep]
	return a || b
}

// repo reads a checkout without following symbolic links out of it.
type repo struct {
	root *os.Root
	pkg  *packageJSON // nil without package.json
}

func openRepo(dir string) (*repo, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	r := &repo{root: root}
	b, err := root.ReadFile("package.json")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		root.Close()
		return nil, fmt.Errorf("read package.json: %w", err)
	default:
		r.pkg = new(packageJSON)
		if err := json.Unmarshal(b, r.pkg); err != nil {
			root.Close()
			return nil, errors.New("package.json is not valid JSON")
		}
	}
	return r, nil
}

func (r *repo) close() { r.root.Close() }

func (r *repo) isFile(name string) bool {
	fi, err := r.root.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

func (r *repo) anyFile(names ...string) string {
	for _, n := range names {
		if r.isFile(n) {
			return n
		}
	}
	return ""
}

// Detect looks at the checkout in dir (config files and package.json) and
// returns the framework with its default install command, build command
// and output directory. It returns an error wrapping ErrNotDetected when
// nothing matches.
func Detect(dir string) (Plan, error) {
	r, err := openRepo(dir)
	if err != nil {
		return Plan{}, err
	}
	defer r.close()
	fw := r.detect()
	if fw == "" {
		return Plan{}, ErrNotDetected
	}
	return r.plan(fw), nil
}

// PlanFor returns the defaults of the named framework for the checkout in
// dir, without detection (a project that pins its framework).
func PlanFor(dir, framework string) (Plan, error) {
	if !slices.Contains(Frameworks(), framework) {
		return Plan{}, fmt.Errorf("unknown framework %q", framework)
	}
	r, err := openRepo(dir)
	if err != nil {
		return Plan{}, err
	}
	defer r.close()
	return r.plan(framework), nil
}

func (r *repo) detect() string {
	if p := r.pkg; p != nil {
		switch {
		case p.has("next"):
			return FrameworkNext
		case p.has("astro"):
			return FrameworkAstro
		case p.has("@sveltejs/kit"):
			return FrameworkSvelteKit
		case p.has("@docusaurus/core"):
			return FrameworkDocusaurus
		case p.has("vite"):
			return FrameworkVite
		case p.Scripts["build"] != "":
			return FrameworkNPM
		}
	}
	if r.anyFile(hugoConfigs...) != "" {
		return FrameworkHugo
	}
	if r.isFile("index.html") || r.isFile("public/index.html") {
		return FrameworkStatic
	}
	return ""
}

var hugoConfigs = []string{"hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json", "config.toml"}

var nextConfigs = []string{"next.config.js", "next.config.mjs", "next.config.cjs", "next.config.ts", "next.config.mts"}

var staticExport = regexp.MustCompile("output\\s*:\\s*[\"'`]export[\"'`]")

func (r *repo) plan(fw string) Plan {
	p := Plan{Framework: fw}
	node := func(cli, out string) {
		if r.isFile("package-lock.json") || r.isFile("npm-shrinkwrap.json") {
			p.InstallCommand = "npm ci" + npmFlags
		} else {
			p.InstallCommand = "npm install" + npmFlags
		}
		if r.pkg != nil && r.pkg.Scripts["build"] != "" {
			p.BuildCommand = "npm run build"
		} else {
			p.BuildCommand = cli
		}
		p.OutputDir = out
	}
	switch fw {
	case FrameworkStatic:
		p.OutputDir = "."
		if !r.isFile("index.html") && r.isFile("public/index.html") {
			p.OutputDir = "public"
		}
	case FrameworkHugo:
		p.BuildCommand = "hugo --minify"
		p.OutputDir = "public"
	case FrameworkVite:
		node("npx vite build", "dist")
	case FrameworkNext:
		node("npx next build", "out")
		cfg := r.anyFile(nextConfigs...)
		if b, err := r.root.ReadFile(cfg); cfg == "" || err != nil || !staticExport.Match(b) {
			p.Notes = append(p.Notes, "Next.js is served as a static export: set output: 'export' in next.config.js so the build writes out/")
		}
	case FrameworkAstro:
		node("npx astro build", "dist")
	case FrameworkSvelteKit:
		node("npx vite build", "build")
		if !r.pkg.has("@sveltejs/adapter-static") {
			p.Notes = append(p.Notes, "SvelteKit is served as a static site: use @sveltejs/adapter-static so the build writes build/")
		}
	case FrameworkDocusaurus:
		node("npx docusaurus build", "build")
	case FrameworkNPM:
		node("npm run build", "dist")
		p.Notes = append(p.Notes, "no known framework in package.json: publishing dist/ (set the output directory if the build writes elsewhere)")
	}
	return p
}

// nodeFramework reports whether fw builds with npm (and so gets
// NODE_ENV=production for its build step).
func nodeFramework(fw string) bool {
	switch fw {
	case FrameworkVite, FrameworkNext, FrameworkAstro, FrameworkSvelteKit, FrameworkDocusaurus, FrameworkNPM:
		return true
	}
	return false
}
