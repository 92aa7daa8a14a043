package build_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/jobs"
)

const worker = "export default { fetch() { return new Response('ssr') } }\n"

// TestServerCode: the build marks the server entry and functions in the
// manifest, from a _worker.js at the output root or from pier.json; the
// code files are uploaded like every file (the edge syncs them) and
// pier.json itself is not published.
func TestServerCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		files     map[string]string
		server    string
		functions map[string]string
		log       []string
	}{
		{
			name:   "worker at the output root",
			files:  map[string]string{"index.html": "<h1>hi</h1>", "_worker.js": worker},
			server: "_worker.js",
			log:    []string{"==> Server entry: _worker.js"},
		},
		{
			name: "pier.json with an output directory",
			files: map[string]string{
				"public/index.html":  "<h1>hi</h1>",
				"public/_worker.js":  "// not the entry: pier.json names another\n" + worker,
				"public/srv/main.js": worker,
				"public/fn/api.js":   worker,
				"public/fn/hello.js": worker,
				"pier.json":          `{"server": "./public/srv/main.js", "functions": {"/api/*": "public/fn/api.js", "/hello": "public/fn/hello.js"}}`,
			},
			server:    "srv/main.js",
			functions: map[string]string{"/api/*": "fn/api.js", "/hello": "fn/hello.js"},
			log:       []string{"==> Server entry: srv/main.js", "==> Function /api/*: fn/api.js", "==> Function /hello: fn/hello.js"},
		},
		{
			name: "functions only at the repository root",
			files: map[string]string{
				"index.html": "<h1>hi</h1>",
				"api.js":     worker,
				"pier.json":  `{"functions": {"/api": "api.js"}}`,
			},
			functions: map[string]string{"/api": "api.js"},
		},
		{
			name: "schedules and queues",
			files: map[string]string{
				"index.html": "<h1>hi</h1>", "_worker.js": worker,
				"pier.json": `{"schedules": [{"cron": "*/5 * * * *", "function": "cleanup"}, {"name": "hourly", "cron": "rate(1 hour)"}],
					"queues": [{"name": "emails", "function": "send", "batch_size": 20}]}`,
			},
			server: "_worker.js",
			log:    []string{"==> Schedule cleanup: */5 * * * * -> cleanup", "==> Schedule hourly: rate(1 hour) -> scheduled", "==> Queue emails -> send (batches of 20, 3 attempts)"},
		},
		{
			name:  "static site",
			files: map[string]string{"index.html": "<h1>hi</h1>", "worker.js": worker},
		},
	}
	e := newEnv(t, "")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, sha := e.git.CreateRepo(t, strings.ReplaceAll(tt.name, " ", "-"), tt.files)
			cfg, _ := e.config("")
			id := "dpl-code-" + string(rune('a'+i))
			res, log := e.run(t, cfg, jobs.BuildRequest{DeploymentID: id, ProjectID: "prj", ProjectName: "code", RepoURL: url, Ref: sha})
			wantOK(t, res)
			m := e.manifest(t, id)
			var server string
			if m.Server != nil {
				server = m.Server.Entry
			}
			if server != tt.server || !maps.Equal(m.Functions, tt.functions) {
				t.Fatalf("server %q functions %v, want %q %v", server, m.Functions, tt.server, tt.functions)
			}
			for _, f := range append(slices.Collect(maps.Values(m.Functions)), server) {
				if _, ok := m.Files[f]; f != "" && !ok {
					t.Errorf("code file %q is not in the manifest's files", f)
				}
			}
			if _, ok := m.Files["pier.json"]; ok {
				t.Error("pier.json was published")
			}
			for _, want := range tt.log {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q", want)
				}
			}
		})
	}
}

func TestServerCodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, config, want string
	}{
		{"not json", `{"server": `, "pier.json is not valid JSON"},
		{"outside the output", `{"server": "src/server.js"}`, `pier.json: server entry "src/server.js" is not in the output directory "public"`},
		{"missing", `{"server": "public/nope.js"}`, `pier.json: server entry "public/nope.js" is not a file of the output directory "public"`},
		{"escapes", `{"server": "../x.js"}`, `must be a relative path inside the repository`},
		{"bad route", `{"functions": {"api": "public/fn.js"}}`, `pier.json: invalid function route "api"`},
		{"wildcard inside", `{"functions": {"/a/*/b": "public/fn.js"}}`, `invalid function route "/a/*/b"`},
		{"schedule without server", `{"schedules": [{"cron": "* * * * *"}]}`, `pier.json: schedules need a server entry`},
		{"bad cron", `{"server": "public/fn.js", "schedules": [{"cron": "61 * * * *", "function": "x"}]}`, `pier.json: schedule 1 ("x"): cron "61 * * * *"`},
		{"bad rate", `{"server": "public/fn.js", "schedules": [{"cron": "rate(2 weeks)"}]}`, `pier.json: schedule 1 ("scheduled"): "rate(2 weeks)": the unit is seconds, minutes, hours or days`},
		{"duplicate schedule", `{"server": "public/fn.js", "schedules": [{"cron": "@hourly"}, {"cron": "@daily"}]}`, `two schedules have this name`},
		{"bad schedule name", `{"server": "public/fn.js", "schedules": [{"name": "a b", "cron": "@hourly"}]}`, `a name is 1 to 64 letters`},
		{"queue without server", `{"queues": [{"name": "q"}]}`, `pier.json: queues need a server entry`},
		{"queue without name", `{"server": "public/fn.js", "queues": [{}]}`, `pier.json: queue 1 (""): a name is 1 to 64`},
		{"queue batch", `{"server": "public/fn.js", "queues": [{"name": "q", "batch_size": 500}]}`, `batch_size is 1 to 100`},
		{"queue twice", `{"server": "public/fn.js", "queues": [{"name": "q"}, {"name": "q"}]}`, `declared twice`},
	}
	e := newEnv(t, "")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, sha := e.git.CreateRepo(t, "bad-"+strings.ReplaceAll(tt.name, " ", "-"), map[string]string{
				"public/index.html": "hi", "public/fn.js": worker, "src/server.js": worker, "pier.json": tt.config,
			})
			cfg, _ := e.config("")
			res, _ := e.run(t, cfg, jobs.BuildRequest{DeploymentID: "dpl-bad-" + string(rune('a'+i)), ProjectID: "prj", RepoURL: url, Ref: sha})
			wantError(t, res, tt.want)
		})
	}
}

func TestValidRoute(t *testing.T) {
	for route, ok := range map[string]bool{
		"/": true, "/*": true, "/api": true, "/api/": true, "/api/*": true, "/a/b-c_d.e/*": true,
		"": false, "api": false, "//*": false, "/a//b": false, "/a/../b": false, "/a/./b": false, "/a/*/b": false,
		"/a*": false, "/a b": false, "/a?b": false, "/a#b": false, "/a%20": false, `/a\b`: false, "/*/*": false,
	} {
		if err := edge.ValidRoute(route); (err == nil) != ok {
			t.Errorf("ValidRoute(%q) = %v, want ok %v", route, err, ok)
		}
	}
}
